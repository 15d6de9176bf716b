//! Local-vs-prod parity checks over rendered manifests (`ktwin doctor`).
//!
//! The checks land with the doctor issue; this crate exists now so its dependency direction
//! (doctor → manifest → config) holds from the start.
