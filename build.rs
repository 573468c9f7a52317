//! Link options of the `pizauth` binary.
//!
//! 1. Its functions are laid out in the order `symbol-order.txt` lists them: every
//!    function start-up and the common control requests run, together (docs/
//!    PERFORMANCE.md, "Function order"). The kernel maps a binary's code 64 KiB around
//!    each page first touched, so code run at start-up scattered over the whole text
//!    makes nearly all of it resident; gathered, it is a few hundred kilobytes. Names
//!    the file does not match (another toolchain, a changed dependency) are ignored:
//!    the program is the same, only laid out as without the file.
//!    `tools/symbol-order.sh` regenerates it. `PIZAUTH_NO_SYMBOL_ORDER=1` turns it off.
//! 2. A release build is stripped here rather than by the profile's `strip`, which
//!    changes the symbol names (and the order must name the symbols of the build it
//!    lays out). `PIZAUTH_KEEP_SYMBOLS=1` keeps them, for profiling.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=symbol-order.txt");
    println!("cargo:rerun-if-env-changed=PIZAUTH_NO_SYMBOL_ORDER");
    println!("cargo:rerun-if-env-changed=PIZAUTH_KEEP_SYMBOLS");
    let var = |name: &str| env::var(name).unwrap_or_default();
    // pizauth runs on Linux only (signalfd, timerfd); its linkers take GNU options.
    if var("CARGO_CFG_TARGET_OS") != "linux" {
        return;
    }
    if var("PROFILE") == "release" && env::var_os("PIZAUTH_KEEP_SYMBOLS").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,--strip-all");
    }
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join("symbol-order.txt");
    if env::var_os("PIZAUTH_NO_SYMBOL_ORDER").is_none() && order.is_file() && links_with_lld() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={},--no-warn-symbol-ordering",
            order.display()
        );
    }
}

/// Whether the binary is linked by rustc's own lld, which knows the option: the default
/// for x86_64-unknown-linux-gnu from Rust 1.90, when the toolchain ships it and no other
/// linker is configured.
fn links_with_lld() -> bool {
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || env::var_os("RUSTC_LINKER").is_some()
        || env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|f| f.contains("link"))
    {
        return false;
    }
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let ask = |arg: &str| {
        Command::new(&rustc)
            .arg(arg)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let minor = ask("--version").and_then(|v| {
        let version = v.split_whitespace().nth(1)?.to_owned();
        let mut parts = version.split('.');
        (parts.next()? == "1").then_some(())?;
        parts.next()?.parse::<u32>().ok()
    });
    let lld = ask("--print=sysroot")
        .map(|s| PathBuf::from(s).join("lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld/ld.lld"));
    minor.is_some_and(|m| m >= 90) && lld.is_some_and(|p| p.is_file())
}
