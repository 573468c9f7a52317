//! Redirect-listener connections (HTTP and HTTPS): one request per connection, at most
//! 16 KiB of it, answered by the core and closed.
//!
//! Against slowloris: each listener keeps at most [`MAX_REDIRECT_CONNS`] connections, and
//! when a new one arrives at the cap the oldest connection still reading its request is
//! dropped (or, if none is, the oldest already answered and waiting for the peer to
//! close), so idle connections can never lock a real browser out; each connection also
//! has [`Timeouts::redirect`](super::Timeouts::redirect) (10 s) to finish.

use std::io;

use mio::{Interest, Token};
use pizauth_fsm::Now;
use pizauth_fsm::event::{ConnId, Input, Level, Scheme};

use super::stream::{ReadOutcome, Stream};
use super::{Conn, Driver, FIRST_CONN};
use crate::http1::{self, ReadProgress, RequestReader};

/// Connections open at once per redirect listener.
pub const MAX_REDIRECT_CONNS: usize = 128;

/// One connection on a redirect listener.
pub struct RedirectConn {
    /// The id the core knows it by; ids grow in the order connections are accepted, so
    /// the smallest is the oldest (dropped first at the cap).
    pub id: u64,
    pub https: bool,
    pub stream: Stream,
    reader: RequestReader,
    answering: bool,
    /// The answer is sent and our side shut down; reading and discarding until the peer
    /// closes, so that unread bytes do not make the kernel reset the connection (which
    /// can destroy the answer before the browser reads it).
    draining: bool,
}

impl Driver {
    pub(super) fn accept_redirect(&mut self, now: Now, https: bool) {
        loop {
            let listener = match (https, &self.http, &self.https) {
                (false, Some(l), _) => l,
                (true, _, Some(l)) => l,
                _ => return,
            };
            let (tcp, _) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if super::lost_one(&e) => continue,
                Err(e) => return self.accept_failed("a redirect connection", &e),
            };
            let open = self.count(|c| matches!(c, Conn::Redirect(r) if r.https == https));
            if open >= MAX_REDIRECT_CONNS {
                self.evict_oldest(https);
            }
            let stream = if https {
                // Without a certificate (it could not be made: logged) nothing can be
                // served over TLS; the connection is dropped.
                let Some(config) = self.certificate(false) else {
                    continue;
                };
                match rustls::ServerConnection::new(config) {
                    Ok(tls) => Stream::tls(tcp, tls.into()),
                    Err(e) => {
                        self.log(Level::Warn, &format!("cannot start TLS: {e}"));
                        continue;
                    }
                }
            } else {
                Stream::plain(tcp)
            };
            let id = self.fresh_id();
            let slot = self.conns.insert(Conn::Redirect(RedirectConn {
                id,
                https,
                stream,
                reader: RequestReader::new(),
                answering: false,
                draining: false,
            }));
            let Some(Conn::Redirect(conn)) = self.conns.get_mut(slot) else {
                continue;
            };
            let token = Token(FIRST_CONN + slot);
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut conn.stream.tcp, token, interest)
            {
                // Never registered: dropping it closes it.
                self.conns.remove(slot);
                self.log(
                    Level::Warn,
                    &format!("cannot watch a redirect connection: {e}"),
                );
                continue;
            }
            self.ids.insert(id, slot);
            self.set_deadline(slot, Some(now.boot + self.timeouts.redirect));
            self.redirect_event(now, slot);
            self.handle_queued();
        }
    }

    /// Drops the oldest connection of a listener that is not in the middle of being
    /// answered: one still reading its request or, failing that, one already answered
    /// and only waiting for the peer to close.
    ///
    /// Age is the id, given out in the order connections are accepted (an accept time in
    /// milliseconds would tie for connections accepted together, and slots are reused in
    /// no particular order).
    fn evict_oldest(&mut self, https: bool) {
        let oldest = self
            .conns
            .iter()
            .filter_map(|(slot, c)| match c {
                Conn::Redirect(r) if r.https == https && (!r.answering || r.draining) => {
                    Some(((r.draining, r.id), slot))
                }
                _ => None,
            })
            .min();
        if let Some((_, slot)) = oldest {
            self.log(
                Level::Debug,
                "redirect listener full: dropping its oldest connection",
            );
            self.close(slot);
        }
    }

    pub(super) fn redirect_event(&mut self, _now: Now, slot: usize) {
        let Some(Conn::Redirect(c)) = self.conns.get_mut(slot) else {
            return;
        };
        if c.draining {
            let mut scratch = Vec::new();
            return match c.stream.read(&mut scratch, 64 * 1024) {
                Ok(ReadOutcome::Open) => (),
                _ => self.close(slot),
            };
        }
        if c.answering {
            return self.flush_redirect(slot);
        }
        let mut bytes = Vec::new();
        let outcome = c
            .stream
            .read(&mut bytes, http1::MAX_REDIRECT_REQUEST_BYTES + 1);
        let progress = if bytes.is_empty() {
            ReadProgress::NeedMore
        } else {
            c.reader.feed(&bytes)
        };
        bytes.fill(0);
        match progress {
            ReadProgress::Request(request) => {
                c.answering = true;
                let conn = ConnId(c.id);
                let scheme = if c.https { Scheme::Https } else { Scheme::Http };
                self.handle(Input::RedirectReceived {
                    conn,
                    scheme,
                    request,
                });
            }
            ReadProgress::Reject { status, reason } => {
                let id = c.id;
                self.answer_redirect(id, status, &format!("pizauth: {reason}"));
            }
            ReadProgress::NeedMore => match outcome {
                Ok(ReadOutcome::Open) => {
                    // A TLS handshake may have produced bytes to send.
                    if c.stream.flush().is_err() {
                        self.close(slot);
                    }
                }
                Ok(ReadOutcome::TooLarge) => {
                    let id = c.id;
                    self.answer_redirect(id, 431, "pizauth: request too large");
                }
                Ok(ReadOutcome::Closed | ReadOutcome::Cut) | Err(_) => self.close(slot),
            },
        }
    }

    /// Writes the core's (or the framing's) answer on redirect connection `id`.
    pub(super) fn answer_redirect(&mut self, id: u64, status: u16, body: &str) {
        let Some(&slot) = self.ids.get(&id) else {
            return;
        };
        let Some(Conn::Redirect(c)) = self.conns.get_mut(slot) else {
            return;
        };
        c.answering = true;
        if c.stream
            .queue(&http1::encode_response(status, body))
            .is_err()
        {
            return self.close(slot);
        }
        self.flush_redirect(slot);
    }

    fn flush_redirect(&mut self, slot: usize) {
        let Some(Conn::Redirect(c)) = self.conns.get_mut(slot) else {
            return;
        };
        match c.stream.flush() {
            Ok(false) => (),
            Ok(true) => {
                c.stream.close();
                c.draining = true;
                // The peer may have closed already.
                self.redirect_event(self.now, slot);
            }
            Err(_) => self.close(slot),
        }
    }

    pub(super) fn redirect_timed_out(&mut self, slot: usize) {
        self.close(slot);
    }
}
