//! The command line (SPEC.md section 3), compatible with pizauth 1.1.0.
//!
//! Parsing is a pure function of the arguments so that every case can be tested without
//! running the binary. Options may come before or after the account name, as with the
//! getopt-style parser of pizauth 1.1.0; `--` ends the options.

use std::ffi::OsString;
use std::path::PathBuf;

use lexopt::Arg;

/// The usage text, printed to stderr on bad usage and to stdout for `-h`/`--help`.
pub const USAGE: &str = "\
Usage:
  pizauth dump
  pizauth info [-c <config-path>] [-j]
  pizauth refresh [-u] <account>
  pizauth reload
  pizauth restore
  pizauth revoke <account>
  pizauth server [-c <config-path>] [-d] [-v]...
  pizauth show [-u] [-w <seconds>] <account>
  pizauth shutdown
  pizauth status [-j]
";

/// What the user asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// `-h` or `--help` appeared somewhere: print the usage and succeed.
    Help,
    /// Run a command.
    Run(Command),
}

/// One command and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `pizauth dump`.
    Dump,
    /// `pizauth info [-c config] [-j]`.
    Info {
        /// `-c`: the config file to report instead of the default one.
        config: Option<PathBuf>,
        /// `-j`: print JSON instead of text.
        json: bool,
    },
    /// `pizauth refresh [-u] account`.
    Refresh {
        /// The account's name.
        account: String,
        /// Include the authorisation URL in the error (`-u` leaves it out).
        with_url: bool,
    },
    /// `pizauth reload`.
    Reload,
    /// `pizauth restore`.
    Restore,
    /// `pizauth revoke account`.
    Revoke {
        /// The account's name.
        account: String,
    },
    /// `pizauth server [-c config] [-d] [-v]...`.
    Server {
        /// `-c`: the config file to use instead of the default one.
        config: Option<PathBuf>,
        /// `-d`: stay in the foreground and log to stderr.
        foreground: bool,
        /// How many times `-v` was given.
        verbosity: u8,
    },
    /// `pizauth show [-u] [-w seconds] account`.
    Show {
        /// The account's name.
        account: String,
        /// Include the authorisation URL in the error (`-u` leaves it out).
        with_url: bool,
        /// `-w`: wait up to this many seconds for a token.
        wait: Option<u32>,
    },
    /// `pizauth shutdown`.
    Shutdown,
    /// `pizauth status [-j]`.
    Status {
        /// `-j`: print versioned JSON instead of text.
        json: bool,
    },
}

/// The arguments do not match any line of [`USAGE`]. The reason is for tests and
/// debugging; users see the usage text, as with pizauth 1.1.0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError(e.to_string())
    }
}

/// Options and operands collected for one command before they are checked.
#[derive(Default)]
struct Collected {
    config: Option<PathBuf>,
    json: bool,
    without_url: bool,
    foreground: bool,
    verbosity: u8,
    wait: Option<u32>,
    operands: Vec<OsString>,
}

/// Parses the arguments that follow the program name.
pub fn parse<I>(args: I) -> Result<Invocation, UsageError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // `-h`/`--help` wins wherever it appears, even after a mistake, so that a confused
    // user always gets the usage on stdout. Only arguments before `--` are options.
    if args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "-h" || a == "--help")
    {
        return Ok(Invocation::Help);
    }

    let mut parser = lexopt::Parser::from_args(args);
    // getopt (and so pizauth 1.1.0) reads `-c=x` as the path `=x`.
    parser.set_short_equals(false);
    let name = match parser.next()? {
        Some(Arg::Value(v)) => v
            .into_string()
            .map_err(|_| UsageError("the command is not valid UTF-8".into()))?,
        Some(Arg::Short('h') | Arg::Long("help")) => return Ok(Invocation::Help),
        Some(other) => return Err(other.unexpected().into()),
        None => return Err(UsageError("no command given".into())),
    };
    let flags = flags_of(&name).ok_or_else(|| UsageError(format!("unknown command {name}")))?;

    let mut c = Collected::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Invocation::Help),
            Arg::Short(f) if flags.contains(f) => match f {
                'c' if c.config.is_some() => return Err(UsageError("-c given twice".into())),
                'c' => c.config = Some(parser.value()?.into()),
                'j' => c.json = true,
                'u' => c.without_url = true,
                'd' => c.foreground = true,
                'w' if c.wait.is_some() => return Err(UsageError("-w given twice".into())),
                'w' => {
                    let v = parser.value()?;
                    let secs = v
                        .to_str()
                        .and_then(|s| s.parse::<u32>().ok())
                        .ok_or_else(|| UsageError("-w takes a number of seconds".into()))?;
                    c.wait = Some(secs);
                }
                _ => c.verbosity = c.verbosity.saturating_add(1),
            },
            Arg::Value(v) => c.operands.push(v),
            other => return Err(other.unexpected().into()),
        }
    }
    build(&name, c).map(Invocation::Run)
}

/// The short options each command accepts, or `None` for an unknown command.
fn flags_of(command: &str) -> Option<&'static str> {
    Some(match command {
        "dump" | "reload" | "restore" | "revoke" | "shutdown" => "",
        "info" => "cj",
        "status" => "j",
        "refresh" => "u",
        "show" => "uw",
        "server" => "cdv",
        _ => return None,
    })
}

/// Checks the operands of command `name` and builds the [`Command`].
fn build(name: &str, mut c: Collected) -> Result<Command, UsageError> {
    let account = |c: &mut Collected| -> Result<String, UsageError> {
        match c.operands.len() {
            1 => c
                .operands
                .pop()
                .and_then(|a| a.into_string().ok())
                .ok_or_else(|| UsageError("the account name is not valid UTF-8".into())),
            0 => Err(UsageError(format!("{name} needs an account"))),
            _ => Err(UsageError(format!("{name} takes one account"))),
        }
    };
    let command = match name {
        "refresh" => Command::Refresh {
            account: account(&mut c)?,
            with_url: !c.without_url,
        },
        "show" => Command::Show {
            account: account(&mut c)?,
            with_url: !c.without_url,
            wait: c.wait,
        },
        "revoke" => Command::Revoke {
            account: account(&mut c)?,
        },
        _ if !c.operands.is_empty() => {
            return Err(UsageError(format!("{name} takes no operands")));
        }
        "dump" => Command::Dump,
        "info" => Command::Info {
            config: c.config,
            json: c.json,
        },
        "reload" => Command::Reload,
        "restore" => Command::Restore,
        "server" => Command::Server {
            config: c.config,
            foreground: c.foreground,
            verbosity: c.verbosity,
        },
        "shutdown" => Command::Shutdown,
        "status" => Command::Status { json: c.json },
        _ => return Err(UsageError(format!("unknown command {name}"))),
    };
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Command {
        match parse(args) {
            Ok(Invocation::Run(c)) => c,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    fn bad(args: &[&str]) {
        assert!(parse(args).is_err(), "{args:?} should be bad usage");
    }

    #[test]
    fn commands_without_arguments() {
        assert_eq!(run(&["dump"]), Command::Dump);
        assert_eq!(run(&["reload"]), Command::Reload);
        assert_eq!(run(&["restore"]), Command::Restore);
        assert_eq!(run(&["shutdown"]), Command::Shutdown);
        assert_eq!(run(&["status"]), Command::Status { json: false });
        assert_eq!(run(&["status", "-j"]), Command::Status { json: true });
    }

    #[test]
    fn show_and_refresh_take_one_account_and_u() {
        let show = |account: &str, with_url| Command::Show {
            account: account.into(),
            with_url,
            wait: None,
        };
        assert_eq!(
            run(&["show", "-w", "30", "work"]),
            Command::Show {
                account: "work".into(),
                with_url: true,
                wait: Some(30)
            }
        );
        bad(&["show", "-w", "soon", "work"]);
        bad(&["show", "-w", "1", "-w", "2", "work"]);
        assert_eq!(run(&["show", "work"]), show("work", true));
        assert_eq!(run(&["show", "-u", "work"]), show("work", false));
        assert_eq!(run(&["show", "work", "-u"]), show("work", false));
        assert_eq!(run(&["show", "--", "-u"]), show("-u", true));
        assert_eq!(
            run(&["refresh", "-u", "a b"]),
            Command::Refresh {
                account: "a b".into(),
                with_url: false
            }
        );
        assert_eq!(
            run(&["revoke", "x"]),
            Command::Revoke {
                account: "x".into()
            }
        );
    }

    #[test]
    fn info_options() {
        assert_eq!(
            run(&["info"]),
            Command::Info {
                config: None,
                json: false
            }
        );
        assert_eq!(
            run(&["info", "-j", "-c", "/x.conf"]),
            Command::Info {
                config: Some("/x.conf".into()),
                json: true
            }
        );
        assert_eq!(
            run(&["info", "-c/y"]),
            Command::Info {
                config: Some("/y".into()),
                json: false
            }
        );
    }

    #[test]
    fn server_options_and_verbosity() {
        let server = |config: Option<&str>, foreground, verbosity| Command::Server {
            config: config.map(PathBuf::from),
            foreground,
            verbosity,
        };
        assert_eq!(run(&["server"]), server(None, false, 0));
        assert_eq!(run(&["server", "-d"]), server(None, true, 0));
        assert_eq!(run(&["server", "-v"]), server(None, false, 1));
        assert_eq!(run(&["server", "-vv"]), server(None, false, 2));
        assert_eq!(run(&["server", "-vvv", "-d"]), server(None, true, 3));
        assert_eq!(run(&["server", "-dvvvv"]), server(None, true, 4));
        assert_eq!(run(&["server", "-v", "-v", "-vvv"]), server(None, false, 5));
        assert_eq!(
            run(&["server", "-c", "p.conf", "-dv"]),
            server(Some("p.conf"), true, 1)
        );
        assert_eq!(run(&["server", "-c=x"]), server(Some("=x"), false, 0));
    }

    #[test]
    fn bad_usage() {
        bad(&[]);
        bad(&["bogus"]);
        bad(&["-v", "server"]);
        bad(&["show"]);
        bad(&["show", "a", "b"]);
        bad(&["refresh"]);
        bad(&["revoke"]);
        bad(&["revoke", "-u", "a"]);
        bad(&["status", "extra"]);
        bad(&["dump", "-j"]);
        bad(&["info", "-c"]);
        bad(&["info", "-u"]);
        bad(&["info", "-c", "a", "-c", "b"]);
        bad(&["info", "x"]);
        bad(&["server", "-x"]);
        bad(&["server", "--verbose"]);
        bad(&["server", "-j"]);
        bad(&["show", "-d", "a"]);
        bad(&["shutdown", "now"]);
    }

    #[test]
    fn help_anywhere() {
        for args in [
            &["-h"][..],
            &["--help"],
            &["show", "-h"],
            &["server", "-c", "x", "--help"],
            &["bogus", "-h"],
            &["show", "-uh", "a"],
        ] {
            assert_eq!(parse(args), Ok(Invocation::Help), "{args:?}");
        }
        // After `--`, `-h` is an account name.
        assert_eq!(
            run(&["show", "--", "-h"]),
            Command::Show {
                account: "-h".into(),
                with_url: true,
                wait: None
            }
        );
    }

    #[test]
    fn usage_lists_every_command() {
        assert!(
            USAGE.starts_with("Usage:\n  pizauth dump\n  pizauth info [-c <config-path>] [-j]\n")
        );
        for c in [
            "dump", "info", "refresh", "reload", "restore", "revoke", "server", "show", "shutdown",
            "status",
        ] {
            assert!(flags_of(c).is_some());
            assert!(USAGE.contains(&format!("  pizauth {c}")));
        }
    }
}
