//! The token-endpoint client: HTTP/1.1 over non-blocking TCP, with rustls for `https`.
//!
//! Which request goes on which connection, and when, is decided by the pool
//! ([`pool::Pool`], a state machine without I/O): requests wait in a FIFO queue; at most
//! [`MAX_OUTGOING`] connections are open at once (a storm of 1,000 refreshes queues
//! instead of opening 1,000 sockets); a kept-alive connection is reused for the next
//! request to the same origin. This file carries out the pool's orders on sockets and
//! reports back what the sockets did. Host names are resolved by the resolver thread.
//! The whole-exchange timeout belongs to the core, which cancels a request it has given
//! up on.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Interest, Token};
use pizauth_fsm::event::{HttpRequest, Input, RequestId, TransportError, TransportErrorKind};
use pizauth_fsm::{Now, Secret};

use super::pool::{ConnKey, Order, Origin, Pool};
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

/// One outgoing connection.
pub struct Outgoing {
    /// The pool's name for it.
    key: ConnKey,
    origin: Origin,
    /// `None` while the name is being resolved.
    pub stream: Option<Stream>,
    stage: Stage,
    /// Addresses still to try if connecting fails.
    addrs: Vec<SocketAddr>,
    /// It served a request before the current one.
    reused: bool,
}

enum Stage {
    Resolving,
    Connecting,
    /// Connected (TLS set up if needed), the pool told; its send order follows.
    Ready,
    Busy(Box<ResponseParser>),
    Idle,
}

/// The client's bookkeeping, kept in the driver.
pub struct Client {
    pool: Pool,
    /// The encoded bytes of each request not yet answered (they hold secrets).
    jobs: HashMap<RequestId, Secret<Vec<u8>>>,
    /// The slot of each connection of the pool.
    slots: HashMap<ConnKey, usize>,
    /// Slots waiting for the resolver, by lookup id.
    resolving: HashMap<u64, usize>,
    /// The TLS configuration, made on the first use that succeeds.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            pool: Pool::new(MAX_OUTGOING),
            jobs: HashMap::new(),
            slots: HashMap::new(),
            resolving: HashMap::new(),
            tls: None,
        }
    }
}

impl Client {
    /// Forgets a connection that is being closed (the pool has been told, or told it).
    pub fn forget(&mut self, slot: usize, c: &Outgoing) {
        // Its request's bytes stay: the pool may send it again on another connection.
        self.slots.remove(&c.key);
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
                let message = format!("unsupported scheme {other}");
                return self.http_failed(request, TransportErrorKind::Connect, message);
            }
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            let message = format!("no host in {url}");
            return self.http_failed(request, TransportErrorKind::Connect, message);
        };
        let origin = Origin {
            https,
            host: host.to_owned(),
            port,
        };
        let bytes = Secret::new(http1::encode_request(&http));
        self.http_client.jobs.insert(request, bytes);
        self.http_client.pool.request(request, origin);
        self.carry_out(now);
    }

    pub(super) fn cancel_http(&mut self, request: RequestId) {
        self.http_client.jobs.remove(&request);
        self.http_client.pool.cancel(request);
        let now = self.now;
        self.carry_out(now);
    }

    /// Carries out the pool's orders, and those that carrying them out makes it give.
    /// Every change to the pool is followed by this.
    fn carry_out(&mut self, now: Now) {
        while let Some(order) = self.http_client.pool.poll_order() {
            match order {
                Order::Connect { conn, origin } => self.open_connection(conn, origin),
                Order::Send { conn, request } => match self.http_client.slots.get(&conn) {
                    Some(&slot) => self.start_on(now, slot, request),
                    None => self.http_client.pool.failed(conn, gone(), false),
                },
                Order::Close { conn } => {
                    if let Some(&slot) = self.http_client.slots.get(&conn) {
                        self.close(slot);
                    }
                }
                Order::Fail { request, error } => {
                    self.http_failed(request, error.kind, error.message)
                }
            }
        }
    }

    fn open_connection(&mut self, key: ConnKey, origin: Origin) {
        let conn = Outgoing {
            key,
            origin: origin.clone(),
            stream: None,
            stage: Stage::Resolving,
            addrs: Vec::new(),
            reused: false,
        };
        let slot = self.conns.insert(Conn::Outgoing(conn));
        self.http_client.slots.insert(key, slot);
        match ip_literal(&origin.host, origin.port) {
            Some(addr) => self.resolved_slot(slot, Ok(vec![addr])),
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
            self.resolved_slot(slot, result);
            self.carry_out(now);
        }
    }

    fn resolved_slot(&mut self, slot: usize, result: Result<Vec<SocketAddr>, String>) {
        let Some(Conn::Outgoing(c)) = self.conns.get_mut(slot) else {
            return;
        };
        match result {
            Ok(addrs) if !addrs.is_empty() => {
                c.addrs = addrs;
                c.addrs.reverse();
                self.connect_next(slot, None);
            }
            Ok(_) => {
                let message = format!("{} has no addresses", c.origin.host);
                self.fail_conn(slot, TransportErrorKind::Dns, message, false);
            }
            Err(e) => {
                let message = format!("cannot resolve {}: {e}", c.origin.host);
                self.fail_conn(slot, TransportErrorKind::Dns, message, false);
            }
        }
    }

    /// Connects to the next address left, or fails with `last` if none is.
    fn connect_next(&mut self, slot: usize, last: Option<io::Error>) {
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
            return self.fail_conn(slot, TransportErrorKind::Connect, message, false);
        };
        match TcpStream::connect(addr) {
            Ok(mut tcp) => {
                let token = Token(FIRST_CONN + slot);
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = self.poll.registry().register(&mut tcp, token, interest) {
                    return self.connect_next(slot, Some(e));
                }
                let _ = tcp.set_nodelay(true);
                c.stream = Some(Stream::plain(tcp));
                c.stage = Stage::Connecting;
            }
            Err(e) => self.connect_next(slot, Some(e)),
        }
    }

    pub(super) fn outgoing_event(&mut self, now: Now, slot: usize) {
        self.outgoing_ready(now, slot);
        self.carry_out(now);
    }

    fn outgoing_ready(&mut self, now: Now, slot: usize) {
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
                    Ok(Some(e)) | Err(e) => return self.connect_next(slot, Some(e)),
                    Ok(None) => (),
                }
                match stream.tcp.peer_addr() {
                    Ok(_) => self.connected(slot),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => (),
                    Err(e) => self.connect_next(slot, Some(e)),
                }
            }
            Stage::Busy(_) => self.exchange(now, slot),
            Stage::Ready | Stage::Idle => {
                // An idle connection is done once the server closes it or sends something
                // unasked for. Anything else is no reason to drop it: a readiness event
                // for bytes the last response already consumed (edge-triggered events
                // can trail the data), a writable edge, or TLS records with no plaintext
                // (a TLS 1.3 session ticket or KeyUpdate).
                let keep = c.stream.as_mut().is_some_and(|stream| {
                    let mut unasked = Vec::new();
                    let outcome = stream.read(&mut unasked, 1);
                    let keep = matches!(outcome, Ok(ReadOutcome::Open)) && unasked.is_empty();
                    unasked.fill(0);
                    keep
                });
                if !keep {
                    let message = "the server closed the connection".to_owned();
                    self.fail_conn(slot, TransportErrorKind::Io, message, false);
                }
            }
        }
    }

    /// TCP is up: start TLS if needed, then tell the pool (which orders the send).
    fn connected(&mut self, slot: usize) {
        let tls_config = match self.conns.get(slot) {
            Some(Conn::Outgoing(c)) if c.origin.https => {
                // Made once and kept; a failure (an unreadable $SSL_CERT_FILE, no
                // descriptor left to read it with) is not kept, so the next request tries
                // again once the cause has passed.
                if self.http_client.tls.is_none() {
                    match tls::client_config() {
                        Ok(config) => self.http_client.tls = Some(config),
                        Err(e) => {
                            let message = format!("cannot set up TLS: {e}");
                            return self.fail_conn(slot, TransportErrorKind::Tls, message, false);
                        }
                    }
                }
                self.http_client.tls.clone()
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
                Err(message) => {
                    return self.fail_conn(slot, TransportErrorKind::Tls, message, false);
                }
            };
            let Some(stream) = c.stream.take() else {
                return self.fail_conn(slot, TransportErrorKind::Io, "no stream".into(), false);
            };
            c.stream = Some(Stream::tls(stream.tcp, conn.into()));
        }
        let key = c.key;
        c.stage = Stage::Ready;
        self.http_client.pool.connected(key);
    }

    /// Sends `request` on the connected connection in `slot` (the pool's order).
    fn start_on(&mut self, now: Now, slot: usize, request: RequestId) {
        let Some(Conn::Outgoing(c)) = self.conns.get_mut(slot) else {
            return;
        };
        let queued = match (&mut c.stream, self.http_client.jobs.get(&request)) {
            (Some(s), Some(bytes)) => s.queue(bytes.expose()),
            _ => Err(io::ErrorKind::NotConnected.into()),
        };
        c.reused = matches!(c.stage, Stage::Idle);
        c.stage = Stage::Busy(Box::default());
        self.set_deadline(slot, None);
        if let Err(e) = queued {
            return self.exchange_failed(slot, e, false);
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
            return self.exchange_failed(slot, e, false);
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
        let started = parser.has_started();
        // Closed before any of the response, on a kept-alive connection: the server had
        // closed it; the pool tries the request once more.
        let stale = c.reused && !started;
        match outcome {
            Ok(ReadOutcome::Open) => (),
            Ok(ReadOutcome::Closed) => {
                if matches!(progress, Progress::NeedMore) {
                    if stale {
                        let e = io::ErrorKind::ConnectionReset.into();
                        return self.exchange_failed(slot, e, false);
                    }
                    progress = parser.eof();
                }
            }
            // A response whose end only the connection's end marks (no length, not
            // chunked) is not known to be whole if TLS did not say `close_notify`.
            Ok(ReadOutcome::Cut) if matches!(progress, Progress::NeedMore) => {
                let e = if stale {
                    io::ErrorKind::ConnectionReset.into()
                } else {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection ended without TLS close_notify, so the response may be cut short",
                    )
                };
                return self.exchange_failed(slot, e, started);
            }
            Ok(ReadOutcome::Cut) => (),
            Ok(ReadOutcome::TooLarge) => {
                let message = format!("response larger than {} bytes", http1::MAX_BODY_BYTES);
                return self.fail_conn(slot, TransportErrorKind::TooLarge, message, true);
            }
            Err(e) => return self.exchange_failed(slot, e, started),
        }
        match progress {
            Progress::NeedMore => (),
            Progress::Failed(error) => self.fail_conn(slot, error.kind, error.message, true),
            Progress::Done {
                response,
                keep_alive,
            } => {
                let key = c.key;
                if keep_alive {
                    c.stage = Stage::Idle;
                    self.set_deadline(slot, Some(now.boot + IDLE_TIMEOUT));
                }
                // The pool closes the connection (an order) unless it is kept alive.
                if let Some(request) = self.http_client.pool.responded(key, keep_alive) {
                    self.http_client.jobs.remove(&request);
                    self.handle(Input::HttpResponded { request, response });
                }
            }
        }
    }

    /// Reading or writing failed with `e`.
    fn exchange_failed(&mut self, slot: usize, e: io::Error, started: bool) {
        let Some(Conn::Outgoing(c)) = self.conns.get(slot) else {
            return;
        };
        let (kind, what) = if e.kind() == io::ErrorKind::InvalidData {
            (TransportErrorKind::Tls, "TLS with")
        } else {
            (TransportErrorKind::Io, "connection to")
        };
        let message = format!("{what} {}:{} failed: {e}", c.origin.host, c.origin.port);
        self.fail_conn(slot, kind, message, started);
    }

    /// Closes the connection in `slot` and tells the pool, which fails its request (or,
    /// if it failed before any of its response on a kept-alive connection, tries it once
    /// more).
    fn fail_conn(&mut self, slot: usize, kind: TransportErrorKind, message: String, started: bool) {
        let key = match self.conns.get(slot) {
            Some(Conn::Outgoing(c)) => c.key,
            _ => return,
        };
        self.close(slot);
        let error = TransportError { kind, message };
        self.http_client.pool.failed(key, error, started);
    }

    fn http_failed(&mut self, request: RequestId, kind: TransportErrorKind, message: String) {
        self.http_client.jobs.remove(&request);
        self.handle(Input::HttpFailed {
            request,
            error: TransportError { kind, message },
        });
    }

    pub(super) fn outgoing_timed_out(&mut self, now: Now, slot: usize) {
        // Only idle connections have a driver deadline.
        if let Some(Conn::Outgoing(c)) = self.conns.get(slot) {
            let key = c.key;
            self.close(slot);
            self.http_client.pool.closed(key);
            self.carry_out(now);
        }
    }
}

/// The error of a send ordered on a connection the driver no longer has.
fn gone() -> TransportError {
    TransportError {
        kind: TransportErrorKind::Io,
        message: "the connection was closed".into(),
    }
}
