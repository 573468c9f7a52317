//! `pizauth`: an OAuth2 token daemon and its command-line client.
//!
//! `pizauth server` runs the daemon (the loop lives in `pizauth-io`, every decision in
//! `pizauth-fsm`); every other command is a client that sends one request over the
//! control socket and prints the reply. The flow of `main`:
//!
//! 1. [`cli::parse`] the arguments; bad usage prints [`cli::USAGE`] to stderr and exits 1,
//!    `-h`/`--help` prints it to stdout and exits 0.
//! 2. `server` goes to [`server::run`]; `info` and the other commands go to [`client`],
//!    which connects before doing anything else.
//! 3. A [`Failure`] becomes `ERROR <message>` on stderr and exit code 1.
//!
//! Modules: [`cli`] (arguments), [`paths`] (config file, runtime directory, socket),
//! [`client`] (the control protocol's client side), [`render`] (the text of `status` and
//! `info`), [`server`] (start-up and daemonising), [`log`] (stderr and syslog sinks).

#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
// On Linux with glibc the entry point is the C `main` below, not Rust's runtime start-up:
// see `main`.
#![cfg_attr(all(not(test), target_os = "linux", target_env = "gnu"), no_main)]

use std::ffi::OsString;
use std::path::Path;

use pizauth_fsm::protocol::Request;

use crate::cli::{Command, Invocation, USAGE};

pub mod cli;
pub mod client;
pub mod log;
pub mod paths;
pub mod render;
pub mod server;

/// Why the program exits with status 1.
#[derive(Debug)]
pub enum Failure {
    /// Print `ERROR <message>` on stderr.
    Error(String),
    /// The problem has already been reported (config diagnostics printed, or the server's
    /// last error logged): print nothing more.
    Reported,
}

/// The process's entry point on Linux with glibc, called by the C runtime.
///
/// `pizauth show` runs as a password command many times a day, and Rust's own start-up
/// (`fn main`) costs it a tenth of its time, measured side by side (docs/PERFORMANCE.md):
/// it reads and parses `/proc/self/maps` to find the main thread's stack guard and maps an
/// alternate signal stack, a dozen system calls and page faults. This entry point does
/// only what pizauth relies on of that start-up ([`prepare_process`]);
/// `std::env::args_os` still works, as the standard library takes the arguments from
/// glibc itself (elsewhere, musl and the BSDs among them, it gets them only from Rust's
/// start-up, so they keep it).
#[cfg(all(not(test), target_os = "linux", target_env = "gnu"))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    restrict_process();
    prepare_process();
    let code = run();
    // Rust's runtime would flush stdout at exit; the C runtime does not know its buffer.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}

/// The process's entry point elsewhere: Rust's start-up, which does what
/// [`prepare_process`] does on Linux.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() -> std::process::ExitCode {
    restrict_process();
    std::process::ExitCode::from(u8::try_from(run()).unwrap_or(1))
}

// Test builds get the test harness's `main`: keep the real one's callees in use there.
#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
const _: [fn(); 2] = [restrict_process, prepare_process];
#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
const _: fn() -> libc::c_int = run;

/// Restricts the process before it does anything else (OpenBSD's pledge; nothing
/// elsewhere).
fn restrict_process() {
    if let Err(e) = pizauth_io::os::restrict_process() {
        eprintln!("ERROR cannot restrict the process: {e}");
        std::process::exit(1);
    }
}

/// What Rust's runtime start-up did that pizauth relies on: SIGPIPE ignored (a write to a
/// closed pipe or socket fails with `EPIPE` instead of killing the process; children get
/// the default back), and descriptors 0, 1 and 2 open (if one is closed, `/dev/null`
/// takes its place, so that no socket or file opened later becomes stdout or stderr).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn prepare_process() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: plain system calls on valid arguments: three pollfds, a nul-terminated
    // path, and a disposition that installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        if libc::poll(fds.as_mut_ptr(), 3, 0) > 0 {
            for p in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
                // open() returns the lowest free descriptor: the closed one.
                let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if fd != p.fd {
                    libc::abort();
                }
            }
        }
    }
}

/// Parses the arguments, runs the command, and returns the exit status.
fn run() -> libc::c_int {
    let mut args = std::env::args_os();
    let executed_as = executed_as(args.next());
    let command = match cli::parse(args) {
        Ok(Invocation::Run(command)) => command,
        Ok(Invocation::Help) => {
            print!("{USAGE}");
            return 0;
        }
        Err(_) => {
            eprint!("{USAGE}");
            return 1;
        }
    };
    match dispatch(command, &executed_as) {
        Ok(()) => 0,
        Err(Failure::Error(message)) => {
            eprintln!("ERROR {message}");
            1
        }
        Err(Failure::Reported) => 1,
    }
}

/// Runs one command.
fn dispatch(command: Command, executed_as: &str) -> Result<(), Failure> {
    match command {
        Command::Server {
            config,
            foreground,
            verbosity,
        } => server::run(config.as_deref(), foreground, verbosity),
        Command::Info { config, json } => client::info(config.as_deref(), json, executed_as),
        Command::Show {
            account,
            with_url,
            wait,
        } => client::show(account, with_url, wait),
        Command::Status { json } => client::status(json),
        Command::Dump => client::dump(),
        Command::Restore => client::restore(),
        Command::Refresh { account, with_url } => {
            client::expect_done(Request::Refresh { account, with_url })
        }
        Command::Revoke { account } => client::expect_done(Request::Revoke { account }),
        Command::Reload => client::expect_done(Request::Reload),
        Command::Shutdown => client::expect_done(Request::Shutdown),
    }
}

/// The file name of `argv[0]`, for `info -j`'s `executed_as`.
fn executed_as(argv0: Option<OsString>) -> String {
    argv0
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .map_or_else(
            || "pizauth".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executed_as_is_the_file_name() {
        assert_eq!(executed_as(Some("/usr/bin/pizauth".into())), "pizauth");
        assert_eq!(executed_as(Some("pz".into())), "pz");
        assert_eq!(executed_as(None), "pizauth");
        assert_eq!(executed_as(Some("".into())), "pizauth");
    }
}
