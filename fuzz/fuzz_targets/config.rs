//! The config parser on arbitrary bytes: it must never panic, must explain every
//! rejection, and must render its diagnostics without panicking either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pizauth_fsm::config::Config;

fuzz_target!(|data: &[u8]| {
    // The driver reads the file as UTF-8 and refuses anything else before parsing, so
    // only valid UTF-8 is interesting; lossy conversion still lets every input count.
    let source = String::from_utf8_lossy(data);
    match Config::parse(&source, "fuzz.conf") {
        Ok(parsed) => {
            let names: Vec<_> = parsed.config.accounts.iter().map(|a| &a.name).collect();
            assert!(
                names.windows(2).all(|w| w[0] < w[1]),
                "accounts sorted and unique"
            );
            let _ = parsed.warnings.to_string();
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "rejected without a diagnostic");
            let _ = errors.to_string();
        }
    }
});
