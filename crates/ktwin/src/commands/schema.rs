use crate::printer;
use crate::report::Failure;

pub fn run() -> Result<u8, Failure> {
    let s = serde_json::to_string_pretty(&ktwin_config::json_schema()).unwrap_or_default();
    printer::out(&format!("{s}\n"));
    Ok(0)
}
