use crate::cli::InitArgs;
use crate::report::Failure;
pub fn run(_a: &InitArgs) -> Result<u8, Failure> {
    Ok(0)
}
