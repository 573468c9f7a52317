//! Placeholder: replaced by the config-language work.
use super::{Diagnostic, Diagnostics, Parsed, Severity};
pub(super) fn parse(_source: &str, _file: &str) -> Result<Parsed, Diagnostics> {
    Err(vec![Diagnostic { severity: Severity::Error, message: "config parser not yet written".into() }])
}
