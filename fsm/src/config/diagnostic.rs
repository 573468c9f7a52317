//! Placeholder: replaced by the config-language work.
#![allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Severity { Error, Warning }
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic { pub severity: Severity, pub message: String }
pub type Diagnostics = Vec<Diagnostic>;
