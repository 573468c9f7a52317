//! Control-socket connections: accept (same uid only), read one request to EOF (bounded
//! in size and time), hand it to the core, write the reply, close.

use std::io::{self, Read, Write};
use std::time::Duration;

use mio::net::UnixStream;
use mio::{Interest, Token};
use pizauth_fsm::Secret;
use pizauth_fsm::event::{ClientId, Input, Level};
use pizauth_fsm::protocol::{MAX_REQUEST_BYTES, Reply};
use pizauth_fsm::{Instant, Now};

use super::{Conn, Driver, FIRST_CONN};
use crate::os;

/// Control connections open at once; more wait in the listen queue.
pub const MAX_CONTROL_CONNS: usize = 512;
/// A client must send its whole request and read its reply within this time.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

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
    pub deadline: Option<Instant>,
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
                self.accept_paused[0] = true;
                return;
            }
            let (mut stream, _) = match self.control.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: stop for now, the next event retries.
                    self.log(Level::Warn, &format!("cannot accept a control client: {e}"));
                    return;
                }
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
            let deadline = now.boot + CONTROL_TIMEOUT;
            let slot = self.free.last().copied().unwrap_or(self.conns.len());
            let token = Token(FIRST_CONN + slot);
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
                self.log(Level::Warn, &format!("cannot watch a control client: {e}"));
                continue;
            }
            // `insert` takes the last free slot, the one the token above names.
            self.insert(Conn::Control(ControlConn {
                id,
                stream,
                request: Secret::new(Vec::new()),
                reply: Secret::new(Vec::new()),
                stage: Stage::Reading,
                deadline: Some(deadline),
            }));
            self.ids.insert(id, slot);
            self.set_deadline(slot, None, Some(deadline));
            // Data may already be there (edge-triggered: no event would tell us).
            self.control_event(now, slot);
        }
    }

    pub(super) fn control_event(&mut self, now: Now, slot: usize) {
        let Some(Some(Conn::Control(c))) = self.conns.get_mut(slot) else {
            return;
        };
        match c.stage {
            Stage::Reading => match read_request(c) {
                Ok(false) => (),
                // Connected and closed without a word: a liveness probe (a second
                // `pizauth server` checking for this one). Nothing to answer.
                Ok(true) if c.request.expose().is_empty() => self.close(slot),
                Ok(true) => {
                    // The core answers every request (`show -w` waits on the core's own
                    // deadline), so the read deadline no longer applies.
                    c.stage = Stage::Waiting;
                    let bytes = std::mem::take(&mut c.request);
                    let client = ClientId(c.id);
                    let old = c.deadline.take();
                    self.set_deadline(slot, old, None);
                    self.handle(now, Input::ClientAsked { client, bytes });
                }
                Err(reply) => {
                    c.stage = Stage::Waiting;
                    let id = c.id;
                    self.reply(id, &reply);
                }
            },
            Stage::Waiting => (),
            Stage::Writing => self.flush_control(slot),
        }
    }

    /// Queues the core's reply to client `id` and starts writing it.
    pub(super) fn reply(&mut self, id: u64, reply: &Reply) {
        let Some(&slot) = self.ids.get(&id) else {
            return;
        };
        let Some(Some(Conn::Control(c))) = self.conns.get_mut(slot) else {
            return;
        };
        c.reply = Secret::new(reply.encode());
        c.stage = Stage::Writing;
        let old = c.deadline.take();
        let new = self.now.boot + CONTROL_TIMEOUT;
        c.deadline = Some(new);
        self.set_deadline(slot, old, Some(new));
        self.flush_control(slot);
    }

    fn flush_control(&mut self, slot: usize) {
        let Some(Some(Conn::Control(c))) = self.conns.get_mut(slot) else {
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
        match result {
            Ok(false) => (),
            Ok(true) | Err(()) => self.close(slot),
        }
    }

    /// How many connections satisfy `f`.
    pub(super) fn count(&self, f: impl Fn(&Conn) -> bool) -> usize {
        self.conns.iter().flatten().filter(|c| f(c)).count()
    }
}

/// Reads what is available. `Ok(true)`: the request is complete (the client shut down
/// its write half). `Err(reply)`: answer this and close.
fn read_request(c: &mut ControlConn) -> Result<bool, Reply> {
    let mut buf = [0u8; 8192];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                if c.request.expose().len() + n > MAX_REQUEST_BYTES {
                    buf.fill(0);
                    return Err(Reply::error(format!(
                        "request larger than {MAX_REQUEST_BYTES} bytes"
                    )));
                }
                c.request.expose_mut().extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                buf.fill(0);
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => (),
            Err(e) => return Err(Reply::error(format!("cannot read the request: {e}"))),
        }
    }
}
