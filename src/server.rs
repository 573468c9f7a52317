//! `pizauth server`: read and check the config, bind the sockets, detach, hand over to
//! the event loop in `pizauth-io`.
//!
//! The order matters. Everything that can fail for a reason the user should see (a bad
//! config, a server already running, a socket that cannot be bound) happens while stderr
//! is still the terminal. Only then does the process fork into the background, before any
//! thread or epoll instance exists (neither survives `fork`).

use std::io::{self, Write};
use std::path::Path;

use pizauth_fsm::Config;
use pizauth_fsm::config::{Diagnostics, Severity};
use pizauth_fsm::event::Level;
use pizauth_io::driver::{self, Log, Settings};

use crate::Failure;
use crate::log::{SharedLog, StderrLog, SyslogLog, max_level};
use crate::paths::{Env, create_private_dir, socket_path};

/// Runs the server until it is shut down. `config` is the `-c` path, `foreground` is
/// `-d`, `verbosity` counts `-v`.
pub fn run(config: Option<&Path>, foreground: bool, verbosity: u8) -> Result<(), Failure> {
    // Before the config (which may hold client secrets) is even read. Best effort: a
    // failure leaves the server as safe as pizauth 1.1.0 (the driver logs it).
    let core_dumps_disabled = pizauth_io::os::disable_core_dumps();

    let env = Env::from_process();
    let config_path = env.config_path(config).map_err(Failure::Error)?;
    // The daemon moves to `/`, and `reload` must still find the file.
    let config_path = std::path::absolute(&config_path).map_err(|e| {
        Failure::Error(format!(
            "cannot resolve config path {}: {e}",
            config_path.display()
        ))
    })?;
    let text = pizauth_io::os::read_config(&config_path, false).map_err(Failure::Error)?;
    let parsed = match Config::parse(&text, &config_path.display().to_string()) {
        Ok(parsed) => parsed,
        Err(diagnostics) => {
            eprint!("{}", render_diagnostics(&diagnostics));
            // The parser always explains a rejection; never fail in silence if not.
            return Err(if diagnostics.has_errors() {
                Failure::Reported
            } else {
                Failure::Error(format!("config file {} is invalid", config_path.display()))
            });
        }
    };
    eprint!("{}", render_diagnostics(&parsed.warnings));
    // The text is parsed: its memory (and any client secret in it) need not stay around
    // for the life of the server.
    drop(text);

    let runtime_dir = env.runtime_dir().map_err(Failure::Error)?;
    create_private_dir(&runtime_dir).map_err(Failure::Error)?;
    let (confine_config, confine_socket) = (config_path.clone(), socket_path(&runtime_dir));
    let prepared = driver::prepare(Settings {
        config_path,
        config: parsed.config,
        socket_path: socket_path(&runtime_dir),
        core_dumps_disabled,
    })
    .map_err(|e| Failure::Error(e.to_string()))?;

    let max = max_level(verbosity);
    let log = if foreground {
        SharedLog::new(StderrLog::new(max))
    } else {
        let mut syslog = SyslogLog::connect(max).unwrap_or_else(|e| {
            // pizauth 1.1.0 refuses to start here; a token daemon without a log is still
            // far more useful than no token daemon.
            eprintln!(
                "pizauth: warning: cannot reach syslog ({e}): log messages are dropped \
                 until it can be reached"
            );
            SyslogLog::disconnected(max)
        });
        daemonise()?;
        syslog.set_pid();
        SharedLog::new(syslog)
    };

    // From here on the server needs only its own files: on OpenBSD it unveils them and
    // pledges what the loop uses (elsewhere this does nothing).
    if let Err(e) = pizauth_io::os::confine(&confine_config, &confine_socket) {
        log.clone()
            .log(Level::Error, &format!("cannot confine the server: {e}"));
        return Err(Failure::Reported);
    }
    prepared.run(Box::new(log.clone())).map_err(|e| {
        // With -d this reaches stderr; daemonised, stderr is /dev/null and syslog is
        // the only place left to say why the server stopped.
        log.clone().log(Level::Error, &e.to_string());
        Failure::Reported
    })
}

/// The text printed for config diagnostics: each error's first line starts with `ERROR`,
/// as every other error of this program does; warnings say `warning:` themselves.
fn render_diagnostics(diagnostics: &Diagnostics) -> String {
    let mut out = String::new();
    for d in diagnostics {
        if d.severity == Severity::Error {
            out.push_str("ERROR ");
        }
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out
}

/// Detaches from the terminal ([`pizauth_io::os::daemonise`]).
fn daemonise() -> Result<(), Failure> {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    pizauth_io::os::daemonise().map_err(Failure::Error)
}
