//! A yardstick for the daemon's CPU per `show`: the least any server must do to answer
//! one `pizauth show` over a Unix stream socket (accept, check the peer's uid, read the
//! request to EOF, write a reply, close) and nothing more: no event loop, no decoding, no
//! state, a blocking accept. It answers the real `pizauth` client on a socket in its own
//! sandbox, so that the same workers drive it and the daemon in the same run, and its CPU
//! per show is what the daemon's is measured against.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use pizauth_fsm::Secret;
use pizauth_fsm::protocol::Reply;

use crate::daemon::Sandbox;

/// The floor server: one thread of this process.
pub struct Floor {
    pub sandbox: Sandbox,
    /// The server thread's id, for its `schedstat`.
    tid: libc::pid_t,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Floor {
    /// Starts a server that answers every request with `token`, as the daemon would a
    /// `show` of an authorised account.
    pub fn start(token: &str) -> Floor {
        let sandbox = Sandbox::new("floor");
        let path = sandbox.socket();
        let dir = path.parent().expect("the socket's directory");
        std::fs::create_dir_all(dir).expect("floor socket directory");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .expect("floor socket directory mode");
        let listener = UnixListener::bind(&path).expect("bind the floor socket");
        let reply = Reply::Token {
            token: Secret::new(token.to_owned()),
        }
        .encode();
        let stop = Arc::new(AtomicBool::new(false));
        let (tid_tx, tid_rx) = mpsc::channel();
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || {
                // SAFETY: plain system call.
                let _ = tid_tx.send(unsafe { libc::gettid() });
                serve(&listener, &reply, &stop);
            })
        };
        let tid = tid_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the floor server thread started");
        Floor {
            sandbox,
            tid,
            stop,
            thread: Some(thread),
        }
    }

    /// The server thread's time on CPU so far, ns.
    pub fn cpu_ns(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/self/task/{}/schedstat", self.tid))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; it sees the flag and returns.
        let _ = UnixStream::connect(self.sandbox.socket());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &UnixListener, reply: &[u8], stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else { continue };
        // As the daemon checks it (the same function).
        if pizauth_io::os::peer_uid(&stream).ok() != Some(pizauth_io::os::getuid()) {
            continue;
        }
        // A client that stalls cannot hold the server for long.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        // To end of file, as the daemon reads (a signal to this process interrupts a read).
        let mut total = 0;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) if total + n <= 1 << 16 => total += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => (),
                Ok(_) | Err(_) => break,
            }
        }
        let _ = stream.write_all(reply);
    }
}
