//! The token-endpoint client: HTTP/1.1 over non-blocking TCP, with rustls for `https`.
//!
//! Requests wait in a FIFO queue for a connection; at most [`MAX_OUTGOING`] connections
//! are open at once (a storm of 1,000 refreshes queues instead of opening 1,000 sockets),
//! and a kept-alive connection is reused for the next request to the same origin. Host
//! names are resolved by the resolver thread. The whole-exchange timeout belongs to the
//! core, which cancels a request it has given up on.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Interest, Token};
use pizauth_fsm::event::{HttpRequest, Input, RequestId, TransportError, TransportErrorKind};
use pizauth_fsm::{Now, Secret};

use super::stream::{ReadOutcome, Stream};
use super::{Conn, Driver, FIRST_CONN};
use crate::http1::{self, Progress, ResponseParser};
use crate::resolver::ip_literal;
use crate::tls;

/// Outgoing connections open at once.
pub const MAX_OUTGOING: usize = 32;
/// A kept-alive connection unused this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of response read at most (head and body, framing included).
const MAX_RESPONSE_READ: usize = http1::MAX_BODY_BYTES + http1::MAX_HEAD_BYTES + 64 * 1024;

/// Where a request goes: connections are reused only for the same origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    https: bool,
    host: String,
    port: u16,
}

/// A request and its encoded bytes (which hold secrets).
struct Job {
    request: RequestId,
    bytes: Secret<Vec<u8>>,
    /// Already retried once after a kept-alive connection turned out to be closed.
    retried: bool,
}

/// One outgoing connection.
pub struct Outgoing {
    origin: Origin,
    /// `None` while the name is being resolved.
    pub stream: Option<Stream>,
    stage: Stage,
    job: Option<Job>,
    /// Addresses still to try if connecting fails.
    addrs: Vec<SocketAddr>,
    /// Whether this connection served a request before the current one.
    reused: bool,
}

enum Stage {
    Resolving,
    Connecting,
    Busy(Box<ResponseParser>),
    Idle,
}

/// The client's bookkeeping, kept in the driver.
#[derive(Default)]
pub struct Client {
    queue: VecDeque<(Origin, Job)>,
    /// The slot serving each request in flight.
    by_request: HashMap<RequestId, usize>,
    /// Idle connections by origin.
    idle: HashMap<Origin, Vec<usize>>,
    /// Open connections.
    open: usize,
    /// Slots waiting for the resolver, by lookup id.
    resolving: HashMap<u64, usize>,
    /// The TLS configuration, made on first use (or why it cannot be).
    tls: Option<Result<Arc<rustls::ClientConfig>, String>>,
}

impl Client {
    /// Forgets a connection that is being closed.
    pub fn forget(&mut self, slot: usize, c: &Outgoing) {
        self.open = self.open.saturating_sub(1);
        if let Some(job) = &c.job {
            self.by_request.remove(&job.request);
        }
        if let Some(v) = self.idle.get_mut(&c.origin) {
            v.retain(|&s| s != slot);
            if v.is_empty() {
                self.idle.remove(&c.origin);
            }
        }
        self.resolving.retain(|_, &mut s| s != slot);
    }
}

impl Driver {
    pub(super) fn send_http(&mut self, now: Now, request: RequestId, http: HttpRequest) {
        let url = &http.url;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return self.http_failed(
                    request,
                    TransportErrorKind::Connect,
                    format!("unsupported scheme {other}"),
                );
            }
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return self.http_failed(
                request,
                TransportErrorKind::Connect,
                format!("no host in {url}"),
            );
        };
        let origin = Origin {
            https,
            host: host.to_owned(),
            port,
        };
        let job = Job {
            request,
            bytes: Secret::new(http1::encode_request(&http)),
            retried: false,
        };
        self.http_client.queue.push_back((origin, job));
        self.dispatch(now);
    }

    pub(super) fn cancel_http(&mut self, request: RequestId) {
        self.http_client.queue.retain(|(_, j)| j.request != request);
        if let Some(slot) = self.http_client.by_request.remove(&request) {
            if let Some(Conn::Outgoing(c)) = self.conns.get_mut(slot) {
                c.job = None;
            }
            self.close(slot);
        }
        // The connection it held may serve the next request in the queue.
        let now = self.now;
        self.dispatch(now);
    }

    /// Gives queued requests connections while there are connections to give.
    fn dispatch(&mut self, now: Now) {
        while let Some((origin, _)) = self.http_client.queue.front() {
            let origin = origin.clone();
            let idle = self.http_client.idle.get_mut(&origin).and_then(Vec::pop);
            if let Some(slot) = idle {
                let Some((_, job)) = self.http_client.queue.pop_front() else {
                    return;
                };
                self.start_on(now, slot, job);
                continue;
            }
            if self.http_client.open >= MAX_OUTGOING {
                // Make room by closing an idle connection to another origin, if any.
                let victim = self.http_client.idle.values().flatten().next().copied();
                match victim {
                    Some(slot) => self.close(slot),
                    None => return,
                }
            }
            let Some((origin, job)) = self.http_client.queue.pop_front() else {
                return;
            };
            self.open_connection(now, origin, job);
        }
    }

    fn open_connection(&mut self, now: Now, origin: Origin, job: Job) {
        let request = job.request;
        let conn = Outgoing {
            origin: origin.clone(),
            stream: None,
            stage: Stage::Resolving,
            job: Some(job),
            addrs: Vec::new(),
            reused: false,
        };
        let slot = self.conns.insert(Conn::Outgoing(conn));
        self.http_client.open += 1;
        self.http_client.by_request.insert(request, slot);
        match ip_literal(&origin.host, origin.port) {
            Some(addr) => self.resolved_slot(now, slot, Ok(vec![addr])),
            None => {
                let id = self.fresh_id();
                self.http_client.resolving.insert(id, slot);
                self.resolver.resolve(id, origin.host, origin.port);
            }
        }
    }

    /// A lookup finished.
    pub(super) fn resolved(&mut self, now: Now, id: u64, result: Result<Vec<SocketAddr>, String>) {
        if let Some(slot) = self.http_client.resolving.remove(&id) {
            self.resolved_slot(now, slot, result);
        }
    }

    fn resolved_slot(&mut self, now: Now, slot: usize, result: Result<Vec<SocketAddr>, String>) {
        let Some(Conn::Outgoing(c)) = self.conns.get_mut(slot) else {
            return;
        };
        match result {
            Ok(addrs) if !addrs.is_empty() => {
                c.addrs = addrs;
                c.addrs.reverse();
                self.connect_next(now, slot, None);
            }
            Ok(_) => {
                let message = format!("{} has no addresses", c.origin.host);
                self.fail_conn(slot, TransportErrorKind::Dns, message);
            }
            Err(e) => {
                let message = format!("cannot resolve {}: {e}", c.origin.host);
                self.fail_conn(slot, TransportErrorKind::Dns, message);
            }
        }
    }

    /// Connects to the next address left, or fails with `last` if none is.
    fn connect_next(&mut self, now: Now, slot: usize, last: Option<io::Error>) {
        let _ = now;
        let Some(Conn::Outgoing(c)) = self.conns.get_mut(slot) else {
            return;
        };
        if let Some(mut old) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut old.tcp);
        }
        let Some(addr) = c.addrs.pop() else {
            let why = last.map_or_else(|| "no address".to_owned(), |e| e.to_string());
            let message = format!(
                "cannot connect to {}:{}: {why}",
                c.origin.host, c.origin.port
            );
            return self.fail_conn(slot, TransportErrorKind::Connect, message);
        };
        match TcpStream::connect(addr) {
            Ok(mut tcp) => {
                let token = Token(FIRST_CONN + slot);
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = self.poll.registry().register(&mut tcp, token, interest) {
                    return self.connect_next(now, slot, Some(e));
                }
                let _ = tcp.set_nodelay(true);
                c.stream = Some(Stream::plain(tcp));
                c.stage = Stage::Connecting;
            }
            Err(e) => self.connect_next(now, slot, Some(e)),
        }
    }

    pub(super) fn outgoing_event(&mut self, now: Now, slot: usize) {
        let Some(Conn::Outgoing(c)) = self.conns.get_mut(slot) else {
            return;
        };
        match &c.stage {
            Stage::Resolving => (),
            Stage::Connecting => {
                let Some(stream) = &c.stream else {
                    return;
                };
                match stream.tcp.take_error() {
                    Ok(Some(e)) | Err(e) => return self.connect_next(now, slot, Some(e)),
                    Ok(None) => (),
                }
                match stream.tcp.peer_addr() {
                    Ok(_) => self.connected(now, slot),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => (),
                    Err(e) => self.connect_next(now, slot, Some(e)),
                }
            }
            Stage::Busy(_) => self.exchange(now, slot),
            Stage::Idle => {
                // An idle connection is done once the server closes it or sends something
                // unasked for. Anything else is no reason to drop it: a readiness event
                // for bytes the last response already consumed (edge-triggered events
                // can trail the data), a writable edge, or TLS records with no plaintext
                // (a TLS 1.3 session ticket or KeyUpdate).
                let Some(stream) = &mut c.stream else {
                    return self.close(slot);
                };
                let mut unasked = Vec::new();
                let outcome = stream.read(&mut unasked, 1);
                let keep = matches!(outcome, Ok(ReadOutcome::Open)) && unasked.is_empty();
                unasked.fill(0);
                if !keep {
                    self.close(slot);
                }
            }
        }
    }

    /// TCP is up: start TLS if needed, then send the request.
    fn connected(&mut self, now: Now, slot: usize) {
        let tls_config = match self.conns.get(slot) {
            Some(Conn::Outgoing(c)) if c.origin.https => {
                match self.http_client.tls.get_or_insert_with(tls::client_config) {
                    Ok(config) => Some(config.clone()),
                    Err(e) => {
                        let message = format!("cannot set up TLS: {e}");
                        return self.fail_conn(slot, TransportErrorKind::Tls, message);
                    }
                }
            }
            _ => None,
        };
        let Some(Conn::Outgoing(c)) = self.conns.get_mut(slot) else {
            return;
        };
        if let Some(config) = tls_config {
            let setup = tls::server_name(&c.origin.host).and_then(|name| {
                rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())
            });
            let conn = match setup {
                Ok(conn) => conn,
                Err(message) => return self.fail_conn(slot, TransportErrorKind::Tls, message),
            };
            let Some(stream) = c.stream.take() else {
                return self.close(slot);
            };
            c.stream = Some(Stream::tls(stream.tcp, conn.into()));
        }
        let Some(job) = c.job.take() else {
            return self.close(slot);
        };
        self.start_on(now, slot, job);
    }

    /// Sends `job` on the connected connection in `slot`.
    fn start_on(&mut self, now: Now, slot: usize, job: Job) {
        let Some(Conn::Outgoing(c)) = self.conns.get_mut(slot) else {
            return;
        };
        if matches!(c.stage, Stage::Idle) {
            c.reused = true;
        }
        self.http_client.by_request.insert(job.request, slot);
        let queued = match &mut c.stream {
            Some(s) => s.queue(job.bytes.expose()),
            None => Err(io::ErrorKind::NotConnected.into()),
        };
        c.job = Some(job);
        c.stage = Stage::Busy(Box::default());
        self.set_deadline(slot, None);
        if let Err(e) = queued {
            return self.exchange_failed(now, slot, e);
        }
        self.exchange(now, slot);
    }

    /// Writes what is pending and reads what has arrived.
    fn exchange(&mut self, now: Now, slot: usize) {
        let Some(Conn::Outgoing(c)) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(stream) = &mut c.stream else {
            return;
        };
        if let Err(e) = stream.flush() {
            return self.exchange_failed(now, slot, e);
        }
        let mut bytes = Vec::new();
        let outcome = stream.read(&mut bytes, MAX_RESPONSE_READ);
        let Stage::Busy(parser) = &mut c.stage else {
            return;
        };
        let mut progress = if bytes.is_empty() {
            Progress::NeedMore
        } else {
            parser.feed(&bytes)
        };
        bytes.fill(0);
        match outcome {
            Ok(ReadOutcome::Open) => (),
            Ok(ReadOutcome::Closed) => {
                if matches!(progress, Progress::NeedMore) {
                    if c.reused && !parser.has_started() {
                        return self.exchange_failed(
                            now,
                            slot,
                            io::ErrorKind::ConnectionReset.into(),
                        );
                    }
                    progress = parser.eof();
                }
            }
            // A response whose end only the connection's end marks (no length, not
            // chunked) is not known to be whole if TLS did not say `close_notify`.
            Ok(ReadOutcome::Cut) if matches!(progress, Progress::NeedMore) => {
                let reset = c.reused && !parser.has_started();
                let e = if reset {
                    io::ErrorKind::ConnectionReset.into()
                } else {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection ended without TLS close_notify, so the response may be cut short",
                    )
                };
                return self.exchange_failed(now, slot, e);
            }
            Ok(ReadOutcome::Cut) => (),
            Ok(ReadOutcome::TooLarge) => {
                let message = format!("response larger than {} bytes", http1::MAX_BODY_BYTES);
                return self.fail_conn(slot, TransportErrorKind::TooLarge, message);
            }
            Err(e) => return self.exchange_failed(now, slot, e),
        }
        match progress {
            Progress::NeedMore => (),
            Progress::Failed(error) => self.fail_conn(slot, error.kind, error.message),
            Progress::Done {
                response,
                keep_alive,
            } => {
                let Some(job) = c.job.take() else {
                    return self.close(slot);
                };
                self.http_client.by_request.remove(&job.request);
                if keep_alive {
                    c.stage = Stage::Idle;
                    let deadline = now.boot + IDLE_TIMEOUT;
                    let origin = c.origin.clone();
                    self.set_deadline(slot, Some(deadline));
                    self.http_client.idle.entry(origin).or_default().push(slot);
                } else {
                    self.close(slot);
                }
                self.handle(Input::HttpResponded {
                    request: job.request,
                    response,
                });
                self.dispatch(now);
            }
        }
    }

    /// Reading or writing failed. A reused connection that the server had closed before
    /// any of the response arrived gets the request once more on a fresh connection.
    fn exchange_failed(&mut self, now: Now, slot: usize, e: io::Error) {
        let Some(Conn::Outgoing(c)) = self.conns.get_mut(slot) else {
            return;
        };
        let started = matches!(&c.stage, Stage::Busy(p) if p.has_started());
        if c.reused && !started && c.job.as_ref().is_some_and(|j| !j.retried) {
            if let Some(mut job) = c.job.take() {
                job.retried = true;
                self.http_client.by_request.remove(&job.request);
                self.http_client.queue.push_front((c.origin.clone(), job));
            }
            self.close(slot);
            return self.dispatch(now);
        }
        let (kind, what) = if e.kind() == io::ErrorKind::InvalidData {
            (TransportErrorKind::Tls, "TLS with")
        } else {
            (TransportErrorKind::Io, "connection to")
        };
        let message = format!("{what} {}:{} failed: {e}", c.origin.host, c.origin.port);
        self.fail_conn(slot, kind, message);
    }

    /// Fails the request on `slot` (if any) and closes it.
    fn fail_conn(&mut self, slot: usize, kind: TransportErrorKind, message: String) {
        let job = match self.conns.get_mut(slot) {
            Some(Conn::Outgoing(c)) => c.job.take(),
            _ => None,
        };
        self.close(slot);
        if let Some(job) = job {
            self.http_failed(job.request, kind, message);
        }
        let now = self.now;
        self.dispatch(now);
    }

    fn http_failed(&mut self, request: RequestId, kind: TransportErrorKind, message: String) {
        self.http_client.by_request.remove(&request);
        self.handle(Input::HttpFailed {
            request,
            error: TransportError { kind, message },
        });
    }

    pub(super) fn outgoing_timed_out(&mut self, _now: Now, slot: usize) {
        // Only idle connections have a driver deadline.
        self.close(slot);
    }
}
