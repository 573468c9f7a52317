//! Control-socket connections: accept (same uid only), read one request to EOF (bounded
//! in size and time), hand it to the core, write the reply, close.

use std::io::{self, Read, Write};

use mio::net::UnixStream;
use mio::{Interest, Token};
use pizauth_fsm::Now;
use pizauth_fsm::Secret;
use pizauth_fsm::event::{ClientId, Input, Level};
use pizauth_fsm::protocol::{MAX_REQUEST_BYTES, Reply};

use super::{Conn, Driver, FIRST_CONN};
use crate::os;

/// Control connections open at once; more wait in the listen queue. Each has
/// [`Timeouts::control`](super::Timeouts::control) to send its request, and as long again
/// to read its reply.
pub const MAX_CONTROL_CONNS: usize = 512;
/// A request or reply larger than this is [`ControlConn::large`].
const LARGE: usize = 64 * 1024;

/// One control client.
pub struct ControlConn {
    /// The id the core knows the client by.
    pub id: u64,
    pub stream: UnixStream,
    /// The request so far (it may hold a dump, hence zeroed when dropped).
    request: Secret<Vec<u8>>,
    /// The encoded reply not yet written.
    reply: Secret<Vec<u8>>,
    stage: Stage,
    /// The request or the reply was large (a restore or a dump): once the connection is
    /// closed, the memory they took is given back to the system.
    pub large: bool,
    /// Registered with the poller. Only a connection that has to wait (for the rest of
    /// its request, for the core, or for room to write) ever is: most clients have sent
    /// their whole request by the time it is accepted, and are answered and closed there
    /// and then, without the two `epoll_ctl` calls.
    pub registered: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Reading,
    /// Handed to the core; waiting for its reply.
    Waiting,
    Writing,
}

impl Driver {
    pub(super) fn accept_control(&mut self, now: Now) {
        loop {
            if self.count(|c| matches!(c, Conn::Control(_))) >= MAX_CONTROL_CONNS {
                self.control_paused = true;
                return;
            }
            let (stream, _) = match self.control.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if super::lost_one(&e) => continue,
                Err(e) => return self.accept_failed("a control client", &e),
            };
            match os::peer_uid(&stream) {
                Ok(uid) if uid == os::getuid() => (),
                Ok(uid) => {
                    self.log(
                        Level::Warn,
                        &format!("refused a control client of uid {uid}"),
                    );
                    continue;
                }
                Err(e) => {
                    self.log(Level::Warn, &format!("cannot check a control client: {e}"));
                    continue;
                }
            }
            let id = self.fresh_id();
            let deadline = now.boot + self.timeouts.control;
            let slot = self.conns.insert(Conn::Control(ControlConn {
                id,
                stream,
                request: Secret::new(Vec::new()),
                reply: Secret::new(Vec::new()),
                stage: Stage::Reading,
                large: false,
                registered: false,
            }));
            self.ids.insert(id, slot);
            self.set_deadline(slot, Some(deadline));
            // The request is usually all there already: answer it at once, and watch
            // the connection only if it is still open afterwards.
            self.control_event(now, slot);
            self.handle_queued();
            self.watch_control(slot, id);
        }
    }

    /// Registers control connection `id` in `slot` with the poller, if it is still open
    /// and not registered yet. Registering reports readiness that is already there, so
    /// nothing that happened since the last read or write is missed.
    fn watch_control(&mut self, slot: usize, id: u64) {
        let Some(Conn::Control(c)) = self.conns.get_mut(slot) else {
            return;
        };
        if c.id != id || c.registered {
            return;
        }
        let token = Token(FIRST_CONN + slot);
        let interest = Interest::READABLE | Interest::WRITABLE;
        match self
            .poll
            .registry()
            .register(&mut c.stream, token, interest)
        {
            Ok(()) => c.registered = true,
            Err(e) => {
                self.log(Level::Warn, &format!("cannot watch a control client: {e}"));
                self.close(slot);
            }
        }
    }

    pub(super) fn control_event(&mut self, _now: Now, slot: usize) {
        let Some(Conn::Control(c)) = self.conns.get_mut(slot) else {
            return;
        };
        match c.stage {
            Stage::Reading => match read_request(c) {
                Ok(false) => (),
                // Connected and closed without a word: a liveness probe (a second
                // `pizauth server` checking for this one). Nothing to answer.
                Ok(true) if c.request.expose().is_empty() => self.close(slot),
                // The client gave up (its wait ended while the server was stopped, say)
                // and closed the socket: nobody will read the answer, and nobody expects
                // the request to be carried out any more.
                Ok(true) if os::hung_up(&c.stream) => {
                    self.log(
                        Level::Info,
                        "a control client left before its request was read: not carried out",
                    );
                    self.close(slot);
                }
                Ok(true) => {
                    // The core answers every request (`show -w` waits on the core's own
                    // deadline), so the read deadline no longer applies.
                    c.stage = Stage::Waiting;
                    let bytes = std::mem::take(&mut c.request);
                    c.large |= bytes.expose().len() > LARGE;
                    let client = ClientId(c.id);
                    self.set_deadline(slot, None);
                    self.handle(Input::ClientAsked { client, bytes });
                }
                Err(reply) => {
                    c.stage = Stage::Waiting;
                    let id = c.id;
                    self.reply(id, &reply);
                }
            },
            // A client waiting for the core (`show -w`) that hangs up frees its slot at
            // once, and the core forgets it.
            Stage::Waiting if os::hung_up(&c.stream) => {
                let client = ClientId(c.id);
                self.close(slot);
                self.handle(Input::ClientGone { client });
            }
            Stage::Waiting => (),
            Stage::Writing => self.flush_control(slot),
        }
    }

    /// Queues the core's reply to client `id` and starts writing it.
    pub(super) fn reply(&mut self, id: u64, reply: &Reply) {
        let Some(&slot) = self.ids.get(&id) else {
            return;
        };
        let Some(Conn::Control(c)) = self.conns.get_mut(slot) else {
            return;
        };
        c.reply = Secret::new(reply.encode());
        c.large |= c.reply.expose().len() > LARGE;
        c.stage = Stage::Writing;
        let deadline = self.now.boot + self.timeouts.control;
        self.set_deadline(slot, Some(deadline));
        self.flush_control(slot);
    }

    fn flush_control(&mut self, slot: usize) {
        let Some(Conn::Control(c)) = self.conns.get_mut(slot) else {
            return;
        };
        let mut written = 0;
        let result = loop {
            let rest = &c.reply.expose()[written..];
            if rest.is_empty() {
                break Ok(true);
            }
            match c.stream.write(rest) {
                Ok(0) => break Err(()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => (),
                Err(_) => break Err(()),
            }
        };
        let remaining = c.reply.expose()[written..].to_vec();
        c.reply = Secret::new(remaining);
        // Not all written: the poller says when there is room (every connection still
        // open after `accept_control` answered what it could is registered there).
        if result != Ok(false) {
            self.close(slot);
        }
    }

    /// How many connections satisfy `f`.
    pub(super) fn count(&self, f: impl Fn(&Conn) -> bool) -> usize {
        self.conns.iter().filter(|(_, c)| f(c)).count()
    }
}

/// Reads what is available. `Ok(true)`: the request is complete (the client shut down
/// its write half). `Err(reply)`: answer this and close.
fn read_request(c: &mut ControlConn) -> Result<bool, Reply> {
    SCRATCH.with_borrow_mut(|buf| read_request_into(c, buf))
}

thread_local! {
    /// The buffer requests are read through, made (and zeroed) once per thread rather
    /// than for every read: most requests are a few dozen bytes.
    static SCRATCH: std::cell::RefCell<[u8; 8192]> = const { std::cell::RefCell::new([0; 8192]) };
}

fn read_request_into(c: &mut ControlConn, buf: &mut [u8]) -> Result<bool, Reply> {
    // The request may hold a dump: wipe what was read into `buf` (only that much) on
    // every way out.
    let mut used = 0;
    let result = loop {
        match c.stream.read(buf) {
            Ok(0) => break Ok(true),
            Ok(n) => {
                used = used.max(n);
                if c.request.expose().len() + n > MAX_REQUEST_BYTES {
                    break Err(Reply::error(format!(
                        "request larger than {MAX_REQUEST_BYTES} bytes"
                    )));
                }
                c.request.expose_mut().extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => (),
            Err(e) => break Err(Reply::error(format!("cannot read the request: {e}"))),
        }
    };
    buf[..used].fill(0);
    result
}
