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

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

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

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let executed_as = executed_as(args.next());
    let command = match cli::parse(args) {
        Ok(Invocation::Run(command)) => command,
        Ok(Invocation::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(_) => {
            eprint!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match dispatch(command, &executed_as) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Error(message)) => {
            eprintln!("ERROR {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Reported) => ExitCode::FAILURE,
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
