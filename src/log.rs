//! The server's log sinks: stderr with `server -d`, syslog when daemonised.
//!
//! Both filter by the level chosen with `-v` and write one line per line of the message,
//! with control characters replaced, so a message can neither forge log lines nor send
//! escape sequences to a terminal. Messages never hold secrets (the core promises it).

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use pizauth_fsm::event::Level;
use pizauth_io::driver::Log;
use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

/// The name under which pizauth logs.
pub const IDENT: &str = "pizauth";

/// The most verbose level shown for `verbosity` uses of `-v`: errors only by default.
pub fn max_level(verbosity: u8) -> Level {
    match verbosity {
        0 => Level::Error,
        1 => Level::Warn,
        2 => Level::Info,
        3 => Level::Debug,
        _ => Level::Trace,
    }
}

/// The lower-case name of `level`, as printed on stderr.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// Splits `message` into the lines to log, with control characters replaced by `?`.
fn clean_lines(message: &str) -> impl Iterator<Item = String> + '_ {
    message.lines().map(|line| {
        line.chars()
            .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
            .collect()
    })
}

/// Logs to stderr as `pizauth: <level>: <message>`.
pub struct StderrLog {
    max: Level,
}

impl StderrLog {
    /// A logger showing messages up to `max`.
    pub fn new(max: Level) -> Self {
        Self { max }
    }

    /// The text written for one message, for tests.
    fn render(level: Level, message: &str) -> String {
        clean_lines(message)
            .map(|l| format!("{IDENT}: {}: {l}\n", level_name(level)))
            .collect()
    }
}

impl Log for StderrLog {
    fn log(&mut self, level: Level, message: &str) {
        if level <= self.max {
            // Nowhere to report a failure to write to stderr.
            let _ = std::io::stderr()
                .lock()
                .write_all(Self::render(level, message).as_bytes());
        }
    }
}

/// Logs to the local syslog daemon (facility `user`, ident `pizauth`).
///
/// If the daemon goes away (a restart), the next message reconnects; while it cannot be
/// reached, messages are dropped rather than stopping the server.
pub struct SyslogLog {
    max: Level,
    logger: Option<Logger<LoggerBackend, Formatter3164>>,
}

impl SyslogLog {
    /// Connects to syslog; the error says why it cannot be reached.
    pub fn connect(max: Level) -> Result<Self, String> {
        let logger = open().map_err(|e| describe(&e))?;
        Ok(Self {
            max,
            logger: Some(logger),
        })
    }

    /// A logger that is not connected yet and will try at each message.
    pub fn disconnected(max: Level) -> Self {
        Self { max, logger: None }
    }

    /// Records the current process id in the messages: call after forking.
    pub fn set_pid(&mut self) {
        if let Some(l) = &mut self.logger {
            l.formatter.pid = std::process::id();
        }
    }

    /// Sends one line, reconnecting once if the connection is gone.
    fn send(&mut self, level: Level, line: &str) {
        for _ in 0..2 {
            if self.logger.is_none() {
                self.logger = open().ok();
            }
            let Some(l) = &mut self.logger else { return };
            let sent = match level {
                Level::Error => l.err(line),
                Level::Warn => l.warning(line),
                Level::Info => l.info(line),
                Level::Debug | Level::Trace => l.debug(line),
            };
            if sent.is_ok() {
                return;
            }
            self.logger = None;
        }
    }
}

impl Log for SyslogLog {
    fn log(&mut self, level: Level, message: &str) {
        if level <= self.max {
            for line in clean_lines(message) {
                self.send(level, &line);
            }
        }
    }
}

/// Opens a connection to the local syslog socket.
fn open() -> syslog::Result<Logger<LoggerBackend, Formatter3164>> {
    syslog::unix(Formatter3164 {
        facility: Facility::LOG_USER,
        // Local syslog adds the host name itself.
        hostname: None,
        process: IDENT.to_owned(),
        pid: std::process::id(),
    })
}

/// A syslog error without the crate's layers of prefixes ("Initialization error: Io
/// error: ..."), e.g. `Connection refused (os error 111)`.
fn describe(e: &syslog::Error) -> String {
    match e {
        syslog::Error::Io(e) | syslog::Error::Write(e) => e.to_string(),
        syslog::Error::Initialization(inner) => match inner.downcast_ref::<syslog::Error>() {
            Some(e) => describe(e),
            None => inner.to_string(),
        },
    }
}

/// One logger shared between the driver (which takes a `Box<dyn Log>`) and `main`, which
/// still needs it to log the driver's final error.
#[derive(Clone)]
pub struct SharedLog(Rc<RefCell<dyn Log>>);

impl SharedLog {
    /// Shares `log`.
    pub fn new(log: impl Log + 'static) -> Self {
        Self(Rc::new(RefCell::new(log)))
    }
}

impl Log for SharedLog {
    fn log(&mut self, level: Level, message: &str) {
        // The driver is single-threaded and never logs from inside a log call, so the
        // cell is never borrowed twice; if it were, dropping the line beats panicking.
        if let Ok(mut log) = self.0.try_borrow_mut() {
            log.log(level, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_maps_to_levels() {
        assert_eq!(max_level(0), Level::Error);
        assert_eq!(max_level(1), Level::Warn);
        assert_eq!(max_level(2), Level::Info);
        assert_eq!(max_level(3), Level::Debug);
        assert_eq!(max_level(4), Level::Trace);
        assert_eq!(max_level(200), Level::Trace);
    }

    #[test]
    fn stderr_lines() {
        assert_eq!(
            StderrLog::render(Level::Warn, "refresh failed"),
            "pizauth: warning: refresh failed\n"
        );
        assert_eq!(
            StderrLog::render(Level::Error, "a\nb\x1b[31m"),
            "pizauth: error: a\npizauth: error: b?[31m\n"
        );
    }

    #[test]
    fn shared_log_reaches_the_inner_log() {
        struct Count(Rc<RefCell<Vec<String>>>);
        impl Log for Count {
            fn log(&mut self, _: Level, m: &str) {
                self.0.borrow_mut().push(m.to_owned());
            }
        }
        let seen = Rc::new(RefCell::new(Vec::new()));
        let shared = SharedLog::new(Count(seen.clone()));
        let mut boxed: Box<dyn Log> = Box::new(shared.clone());
        boxed.log(Level::Info, "one");
        shared.clone().log(Level::Info, "two");
        assert_eq!(*seen.borrow(), ["one", "two"]);
    }
}
