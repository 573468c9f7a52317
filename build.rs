//! Link options of the `pizauth` binary.
//!
//! 1. Its functions are laid out in the order `symbol-order.txt` lists them: every
//!    function start-up and the common control requests run, together (docs/
//!    PERFORMANCE.md, change 12). The kernel maps a binary's code 64 KiB around each
//!    page first touched, so code run at start-up scattered over the whole text makes
//!    nearly all of it resident; gathered, it is a few hundred kilobytes. The names are
//!    v0-mangled (`.cargo/config.toml`), which edits of the code leave unchanged; names
//!    the file does not match (another toolchain, a changed dependency) are ignored: the
//!    program is the same, only laid out as without the file. `tools/symbol-order.sh`
//!    regenerates it. The option is lld's (rustc's own linker on x86-64 Linux): it is
//!    used only if a test link with it succeeds. `PIZAUTH_NO_SYMBOL_ORDER=1` turns it off.
//! 2. A release build is stripped here rather than by the profile's `strip`, which
//!    changes the symbol names (and the order must name the symbols of the build it
//!    lays out). `PIZAUTH_KEEP_SYMBOLS=1` keeps them, for profiling.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    if env::var_os("PIZAUTH_NO_SYMBOL_ORDER").is_some() || !order.is_file() {
        return;
    }
    // One linker option per argument (`-Wl,` would split a path at its commas).
    let args = [
        "-Xlinker".to_owned(),
        format!("--symbol-ordering-file={}", order.display()),
        "-Xlinker".to_owned(),
        "--no-warn-symbol-ordering".to_owned(),
    ];
    if links_with(&args) {
        for arg in args {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    }
}

/// Whether an empty program links for the target, with the build's own compiler and
/// flags, when the linker is also given `args`.
fn links_with(args: &[String]) -> bool {
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = match env::var_os("RUSTC_WRAPPER").filter(|w| !w.is_empty()) {
        Some(wrapper) => {
            let mut c = Command::new(wrapper);
            c.arg(rustc);
            c
        }
        None => Command::new(rustc),
    };
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()))
        .args([
            "--crate-name",
            "link_probe",
            "--crate-type",
            "bin",
            "--edition",
            "2021",
        ])
        .arg("--target")
        .arg(env::var_os("TARGET").unwrap_or_default())
        .arg("-o")
        .arg(out.join("link-probe"))
        .args(
            args.iter()
                .flat_map(|a| ["-C".to_owned(), format!("link-arg={a}")]),
        )
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(b"fn main() {}\n");
    }
    child.wait().is_ok_and(|s| s.success())
}
