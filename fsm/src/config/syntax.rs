//! Placeholder: replaced by the config-language work.
