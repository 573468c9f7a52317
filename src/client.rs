//! The client side of the control protocol: connect to the server's socket, send one
//! [`Request`], read one [`Reply`], print it.
//!
//! Nothing happens before the connection: no config parsing, no TLS, no directories
//! created. `show` runs many times a day from mail programs, so it must be quick and must
//! never hang: the whole exchange, connection included, is bounded by [`TIMEOUT`].

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use pizauth_fsm::Secret;
use pizauth_fsm::protocol::{MAX_REQUEST_BYTES, Reply, Request};

use crate::Failure;
use crate::paths::{Env, socket_path};
use crate::render::{self, Info, ServerInfo};

/// The longest a client waits for the server, from connecting to the end of the reply.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest reply read (a dump of as many accounts as a restore may carry, escaped).
pub const MAX_REPLY_BYTES: usize = 4 * MAX_REQUEST_BYTES;
/// What a client says when no server answers.
pub const NOT_RUNNING: &str = "pizauth authenticator not running or not responding";

/// Why an exchange with the server failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ExchangeError {
    /// Nobody answered: no socket, connection refused, no reply in time, or the server
    /// closed without replying.
    NotRunning,
    /// Something else, as one line for the user.
    Failed(String),
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::NotRunning => f.write_str(NOT_RUNNING),
            ExchangeError::Failed(m) => f.write_str(m),
        }
    }
}

impl From<ExchangeError> for Failure {
    fn from(e: ExchangeError) -> Failure {
        Failure::Error(e.to_string())
    }
}

/// `pizauth show [-u] [-w seconds] account`: prints the token and a newline.
pub fn show(account: String, with_url: bool, wait: Option<u32>) -> Result<(), Failure> {
    let request = Request::Show {
        account,
        with_url,
        wait,
    };
    match ask(request)? {
        // Two writes to the locked stdout: no extra copy of the token is made.
        Reply::Token { token } => write_stdout(&[token.as_str().as_bytes(), b"\n"]),
        other => unexpected(other),
    }
}

/// `refresh`, `revoke`, `reload` and `shutdown`: succeed silently on `Done`; a notice
/// (such as the outcome of revoking at the provider) goes to stderr.
pub fn expect_done(request: Request) -> Result<(), Failure> {
    match ask(request)? {
        Reply::Done => Ok(()),
        Reply::Notice { message } => {
            eprintln!("{message}");
            Ok(())
        }
        other => unexpected(other),
    }
}

/// `pizauth status [-j]`: one line per account, sorted by name, times in local time; or
/// versioned JSON.
pub fn status(json: bool) -> Result<(), Failure> {
    match ask(Request::Status)? {
        Reply::Status { mut accounts } => {
            accounts.sort_by(|a, b| a.name.cmp(&b.name));
            if json {
                let out = render::status_json(&accounts);
                return write_stdout(&[out.as_bytes(), b"\n"]);
            }
            let mut out = String::new();
            for a in &accounts {
                out.push_str(&render::status_line(a, &render::local_time));
                out.push('\n');
            }
            write_stdout(&[out.as_bytes()])
        }
        other => unexpected(other),
    }
}

/// `pizauth dump`: writes the dump to stdout exactly as the server sent it.
pub fn dump() -> Result<(), Failure> {
    match ask(Request::Dump)? {
        Reply::Dump { dump } => write_stdout(&[dump.as_str().as_bytes()]),
        other => unexpected(other),
    }
}

/// `pizauth restore`: sends the dump read from stdin (read before connecting, so a slow
/// pipe does not count against the server's time).
pub fn restore() -> Result<(), Failure> {
    let mut buf = Vec::new();
    let limit = u64::try_from(MAX_REQUEST_BYTES).unwrap_or(u64::MAX);
    io::stdin()
        .lock()
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| Failure::Error(format!("cannot read the dump from stdin: {e}")))?;
    let buf = Secret::new(buf);
    if buf.expose().len() > MAX_REQUEST_BYTES {
        return Err(Failure::Error(format!(
            "the dump on stdin is larger than the limit of {} MiB",
            MAX_REQUEST_BYTES >> 20
        )));
    }
    let text = std::str::from_utf8(buf.expose())
        .map_err(|_| Failure::Error("the dump on stdin is not valid UTF-8".into()))?;
    expect_done(Request::Restore {
        dump: Secret::new(text.to_owned()),
    })
}

/// `pizauth info [-c config] [-j]`: works without a config file and without a server.
pub fn info(config: Option<&Path>, json: bool, executed_as: &str) -> Result<(), Failure> {
    let env = Env::from_process();
    let runtime_dir = env.runtime_dir().map_err(Failure::Error)?;
    let config_file = env.config_path(config).map_err(Failure::Error)?;
    let config_file = std::path::absolute(&config_file).unwrap_or(config_file);
    let server = match exchange(&socket_path(&runtime_dir), &Request::Info) {
        Ok(Reply::Info {
            http_port,
            https_port,
            https_fingerprint,
        }) => Some(ServerInfo {
            http_port,
            https_port,
            https_fingerprint,
        }),
        Ok(other) => return unexpected(other),
        Err(ExchangeError::NotRunning) => None,
        Err(e) => return Err(e.into()),
    };
    let info = Info {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        cache_directory: runtime_dir.display().to_string(),
        config_file: config_file.display().to_string(),
        executed_as: executed_as.to_owned(),
        server,
    };
    if json {
        write_stdout(&[info.json().as_bytes(), b"\n"])
    } else {
        write_stdout(&[info.text().as_bytes()])
    }
}

/// Sends `request` to the server of this user's runtime directory.
fn ask(request: Request) -> Result<Reply, Failure> {
    let runtime_dir = Env::from_process().runtime_dir().map_err(Failure::Error)?;
    let timeout = timeout_for(&request);
    Ok(exchange_within(
        &socket_path(&runtime_dir),
        &request,
        timeout,
    )?)
}

/// How long to wait for the reply to `request`: [`TIMEOUT`], plus what the server may
/// legitimately spend first (`show -w` its wait; a reload runs `client_secret_cmd`s; a
/// revoke may discover the revocation endpoint and then wait for it, each bounded by the
/// HTTP timeout).
fn timeout_for(request: &Request) -> Duration {
    const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
    match request {
        Request::Show { wait, .. } => TIMEOUT + Duration::from_secs(u64::from(wait.unwrap_or(0))),
        Request::Reload => TIMEOUT + pizauth_fsm::server::SECRET_TIMEOUT,
        Request::Revoke { .. } => TIMEOUT + 2 * HTTP_TIMEOUT,
        _ => TIMEOUT,
    }
}

/// The failure for a reply that does not fit the request: the server's error message, or
/// a hint that client and server are different versions.
fn unexpected(reply: Reply) -> Result<(), Failure> {
    match reply {
        Reply::Error { message } => Err(Failure::Error(message)),
        _ => Err(Failure::Error(
            "unexpected reply from the server: is it a different version of pizauth?".into(),
        )),
    }
}

/// Writes `parts` to stdout. The error never quotes what was being written.
fn write_stdout(parts: &[&[u8]]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    parts
        .iter()
        .try_for_each(|p| out.write_all(p))
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Error(format!("cannot write to stdout: {e}")))
}

/// One request, one reply, over the socket at `socket`, all within [`TIMEOUT`].
pub fn exchange(socket: &Path, request: &Request) -> Result<Reply, ExchangeError> {
    exchange_within(socket, request, TIMEOUT)
}

/// [`exchange`] with another bound (`show -w` waits longer).
pub fn exchange_within(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Reply, ExchangeError> {
    let deadline = Instant::now() + timeout;
    let bytes = Secret::new(request.encode());
    if bytes.expose().len() > MAX_REQUEST_BYTES {
        return Err(ExchangeError::Failed(format!(
            "request too large to send (the limit is {} MiB)",
            MAX_REQUEST_BYTES >> 20
        )));
    }
    let me = pizauth_io::os::getuid();
    if let Some(dir) = socket.parent() {
        check_runtime_dir(dir, me)?;
    }
    let mut stream =
        pizauth_io::os::connect_unix(socket, TIMEOUT).map_err(|e| match e.raw_os_error() {
            Some(
                libc::ENOENT
                | libc::ECONNREFUSED
                | libc::EAGAIN
                | libc::ETIMEDOUT
                | libc::EINPROGRESS,
            ) => ExchangeError::NotRunning,
            _ => ExchangeError::Failed(format!("cannot connect to {}: {e}", socket.display())),
        })?;
    // Whoever listens there gets the request (a `restore` carries every token) and is
    // believed (a `show` prints what it says): it must be this user's own server.
    match pizauth_io::os::peer_uid(&stream) {
        Ok(uid) if uid == me => (),
        Ok(uid) => {
            return Err(ExchangeError::Failed(format!(
                "the server on {} runs as another user (uid {uid}): refusing to talk to it",
                socket.display()
            )));
        }
        Err(e) => {
            return Err(ExchangeError::Failed(format!(
                "cannot check who runs the server on {}: {e}",
                socket.display()
            )));
        }
    }

    // A server that closed early (say, refusing the request as too large) may still have
    // written a reply, so a failed write goes on to read.
    let sent = send(&mut stream, bytes.expose(), deadline);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let reply = receive(&mut stream, deadline);
    match (sent, reply) {
        // The decoder's own message is dropped: serde can quote the offending value, and
        // in a reply to `show` or `dump` that value may be a token.
        (_, Ok(buf)) if !buf.expose().is_empty() => Reply::decode(buf.expose()).map_err(|_| {
            ExchangeError::Failed(
                "malformed reply from the server: is it a different version of pizauth?".into(),
            )
        }),
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(_)) => Err(ExchangeError::NotRunning),
    }
}

/// Checks that the runtime directory `dir` is a directory of user `me` that nobody else
/// can enter (the server makes it so; without `$XDG_RUNTIME_DIR` it lies under `/tmp`,
/// where another user could have made it first). No directory: no server.
fn check_runtime_dir(dir: &Path, me: u32) -> Result<(), ExchangeError> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ExchangeError::NotRunning),
        Err(e) => {
            return Err(ExchangeError::Failed(format!(
                "cannot inspect the runtime directory {}: {e}",
                dir.display()
            )));
        }
    };
    let refuse = |why: String| {
        Err(ExchangeError::Failed(format!(
            "runtime directory {} {why}: refusing to use it",
            dir.display()
        )))
    };
    let kind = meta.file_type();
    if !kind.is_dir() {
        let what = if kind.is_symlink() {
            "a symbolic link"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a directory"
        };
        return refuse(format!("is {what}"));
    }
    if meta.uid() != me {
        return refuse(format!("belongs to another user (uid {})", meta.uid()));
    }
    if meta.mode() & 0o077 != 0 {
        return refuse(format!(
            "can be entered by other users (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Writes all of `bytes` before `deadline`.
///
/// The first write goes out right after connecting, under the send timeout `connect`
/// set ([`TIMEOUT`]): the server wakes up for the connection, and finds the whole
/// request there if nothing comes between connecting and sending it.
fn send(stream: &mut UnixStream, bytes: &[u8], deadline: Instant) -> Result<(), ExchangeError> {
    let mut done = 0;
    while done < bytes.len() {
        if done > 0 {
            stream
                .set_write_timeout(Some(remaining(deadline)?))
                .map_err(io_failure)?;
        }
        match stream.write(&bytes[done..]) {
            Ok(0) => return Err(ExchangeError::NotRunning),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(peer_failure(e)),
        }
    }
    Ok(())
}

/// Reads until end of file, at most [`MAX_REPLY_BYTES`], before `deadline`.
fn receive(stream: &mut UnixStream, deadline: Instant) -> Result<Secret<Vec<u8>>, ExchangeError> {
    let mut buf = Vec::new();
    // One page: a token fits, and every page of stack a `show` touches costs it a fault.
    let mut chunk = [0u8; 4096];
    loop {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(io_failure)?;
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(Secret::new(buf)),
            Ok(n) if buf.len() + n > MAX_REPLY_BYTES => {
                return Err(ExchangeError::Failed(format!(
                    "reply from the server is larger than the limit of {} MiB",
                    MAX_REPLY_BYTES >> 20
                )));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(peer_failure(e)),
        }
    }
}

/// The time left before `deadline`; none left means the server is not responding.
fn remaining(deadline: Instant) -> Result<Duration, ExchangeError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(ExchangeError::NotRunning)
    } else {
        Ok(left)
    }
}

/// An I/O error while talking to the server: a timeout or a reset means it is not
/// responding; anything else is reported as it is.
fn peer_failure(e: io::Error) -> ExchangeError {
    match e.kind() {
        io::ErrorKind::WouldBlock
        | io::ErrorKind::TimedOut
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset => ExchangeError::NotRunning,
        _ => io_failure(e),
    }
}

/// An I/O error that says something is wrong on this side.
fn io_failure(e: io::Error) -> ExchangeError {
    ExchangeError::Failed(format!("cannot talk to the server: {e}"))
}
