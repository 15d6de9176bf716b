//! Findings as text, JSON and SARIF 2.1.0.
