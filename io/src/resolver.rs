//! Host-name resolution off the loop thread.
//!
//! `getaddrinfo` blocks (for seconds when DNS is slow), so lookups run on one helper
//! thread, started on the first lookup that needs it and fed through a bounded channel.
//! Each result is queued and the loop is woken through its [`mio::Waker`]; the loop then
//! calls [`Resolver::take_results`]. IP literals, and lookups refused because the queue is
//! full, are answered at once through the same queue and wake-up, so the loop handles
//! every answer in one place.
//!
//! The helper thread inherits the signal mask of the thread that starts it: create
//! [`crate::os::Signals`] first, so that it too leaves SIGTERM and friends to the signalfd
//! on Linux (elsewhere signals are handled per process, by any thread).
//! It is never joined: dropping the [`Resolver`] closes the channel, and the thread ends
//! after its current lookup (a process that exits does not wait for it).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use mio::Waker;

/// The most lookups waiting for the helper thread (beyond the one it is running).
pub const MAX_QUEUED: usize = 32;

/// The answer to one lookup: the lookup's id and its addresses (never empty) or why
/// there are none.
pub type Resolution = (u64, Result<Vec<SocketAddr>, String>);

/// One lookup for the helper thread.
struct Job {
    id: u64,
    host: String,
    port: u16,
}

/// What the loop and the helper thread share.
struct Shared {
    waker: Arc<Waker>,
    results: Mutex<Vec<Resolution>>,
}

/// Resolves host names without blocking the loop. See the [module docs](self).
pub struct Resolver {
    shared: Arc<Shared>,
    /// The helper thread's queue, once started.
    jobs: Mutex<Option<SyncSender<Job>>>,
}

impl Resolver {
    /// A resolver that wakes the loop through `waker` whenever results are ready. No
    /// thread is started until the first lookup of a name.
    pub fn new(waker: Arc<Waker>) -> Self {
        Resolver {
            shared: Arc::new(Shared {
                waker,
                results: Mutex::new(Vec::new()),
            }),
            jobs: Mutex::new(None),
        }
    }

    /// Starts resolving the name `host` for a connection to `port` (an IP literal needs
    /// no lookup: callers connect to [`ip_literal`]'s address at once). The answer,
    /// tagged with `id`, comes back from [`take_results`](Self::take_results) after a
    /// wake-up, never from this call.
    pub fn resolve(&self, id: u64, host: String, port: u16) {
        let mut job = Job { id, host, port };
        // Try twice: the second time with a fresh thread, should the first have died.
        for _ in 0..2 {
            let sender = match self.sender() {
                Ok(sender) => sender,
                Err(e) => {
                    self.shared.publish(id, Err(e));
                    return;
                }
            };
            match sender.try_send(job) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => {
                    self.shared
                        .publish(id, Err("too many lookups queued".to_owned()));
                    return;
                }
                Err(TrySendError::Disconnected(returned)) => {
                    *self.jobs.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    job = returned;
                }
            }
        }
        self.shared
            .publish(id, Err("the resolver thread stopped".to_owned()));
    }

    /// Every answer that arrived since the last call, oldest first.
    pub fn take_results(&self) -> Vec<Resolution> {
        let mut results = self
            .shared
            .results
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *results)
    }

    /// The helper thread's queue, starting the thread if need be.
    fn sender(&self) -> Result<SyncSender<Job>, String> {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = &*jobs {
            return Ok(sender.clone());
        }
        let (sender, receiver) = mpsc::sync_channel(MAX_QUEUED);
        let shared = Arc::clone(&self.shared);
        thread::Builder::new()
            .name("pizauth-resolver".to_owned())
            .spawn(move || run(&shared, &receiver))
            .map_err(|e| format!("cannot start the resolver thread: {e}"))?;
        *jobs = Some(sender.clone());
        Ok(sender)
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Shared {
    /// Queues an answer and wakes the loop.
    fn publish(&self, id: u64, result: Result<Vec<SocketAddr>, String>) {
        self.results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, result));
        // If the loop's poller is gone the loop is gone too: nobody is left to tell.
        let _ = self.waker.wake();
    }
}

/// `host` without the brackets a URL puts around an IPv6 address.
pub fn unbracketed(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The address of `host` if it is an IP literal (an IPv6 one possibly in brackets): it
/// needs no lookup, so a caller may connect at once instead of waiting for
/// [`Resolver::resolve`] to pass it back.
pub fn ip_literal(host: &str, port: u16) -> Option<SocketAddr> {
    let ip = unbracketed(host).parse::<IpAddr>().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// The helper thread: resolves jobs until the channel closes.
fn run(shared: &Shared, jobs: &Receiver<Job>) {
    while let Ok(Job { id, host, port }) = jobs.recv() {
        let result = match (host.as_str(), port).to_socket_addrs() {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                if addrs.is_empty() {
                    Err(format!("{host} has no addresses"))
                } else {
                    Ok(addrs)
                }
            }
            Err(e) => Err(format!("cannot resolve {host}: {e}")),
        };
        shared.publish(id, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Duration, Instant};

    use mio::{Events, Poll, Token};

    const WAKE: Token = Token(7);

    /// Polls until `want` answers have arrived or ten seconds pass.
    fn collect(poll: &mut Poll, resolver: &Resolver, want: usize) -> Vec<Resolution> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = Events::with_capacity(8);
        let mut got = Vec::new();
        while got.len() < want && Instant::now() < deadline {
            poll.poll(&mut events, Some(Duration::from_millis(200)))
                .expect("poll");
            got.extend(resolver.take_results());
        }
        got.sort_by_key(|(id, _)| *id);
        got
    }

    fn setup() -> (Poll, Resolver) {
        let poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).expect("waker"));
        (poll, Resolver::new(waker))
    }

    #[test]
    fn ip_literals_need_no_lookup_and_names_do() {
        let addr = |s: &str| Some(s.parse::<SocketAddr>().expect("addr"));
        assert_eq!(ip_literal("127.0.0.1", 80), addr("127.0.0.1:80"));
        assert_eq!(ip_literal("[::1]", 443), addr("[::1]:443"));
        assert_eq!(ip_literal("::1", 8080), addr("[::1]:8080"));
        for name in [
            "localhost",
            "auth.example",
            "[localhost]",
            "127.0.0.1.example",
            "",
        ] {
            assert_eq!(ip_literal(name, 80), None, "{name}");
        }
    }

    #[test]
    fn names_resolve_on_the_helper_thread() {
        let (mut poll, resolver) = setup();
        resolver.resolve(1, "localhost".to_owned(), 8765);
        // A name getaddrinfo cannot even be asked about fails the same way as one that
        // does not exist, without depending on how fast this machine's DNS says so.
        resolver.resolve(2, "no\0such".to_owned(), 80);
        let results = collect(&mut poll, &resolver, 2);
        assert_eq!(results.len(), 2, "{results:?}");
        let addrs = results[0].1.as_ref().expect("localhost resolves");
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8765)
        );
        let err = results[1].1.as_ref().expect_err("a nul never resolves");
        assert!(err.starts_with("cannot resolve no"), "{err}");
    }

    #[test]
    fn the_queue_is_bounded() {
        let (mut poll, resolver) = setup();
        // The thread takes at most one job off the queue, so of MAX_QUEUED + 2 lookups
        // queued faster than it can answer them, at least one is refused: but the timing
        // is the kernel's, so only check that every lookup gets exactly one answer and
        // that any refusal says why.
        let n = MAX_QUEUED as u64 + 40;
        for id in 0..n {
            resolver.resolve(id, "localhost".to_owned(), 1);
        }
        let results = collect(&mut poll, &resolver, n as usize);
        assert_eq!(results.len(), n as usize);
        for (i, (id, result)) in results.iter().enumerate() {
            assert_eq!(*id, i as u64);
            if let Err(e) = result {
                assert_eq!(e, "too many lookups queued");
            }
        }
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        let (_poll, resolver) = setup();
        // A queue whose thread never reads: plug in a channel we hold ourselves.
        let (sender, _receiver) = mpsc::sync_channel(MAX_QUEUED);
        *resolver.jobs.lock().expect("lock") = Some(sender);
        for id in 0..=MAX_QUEUED as u64 {
            resolver.resolve(id, "example.com".to_owned(), 443);
        }
        let results = resolver.take_results();
        assert_eq!(
            results,
            vec![(MAX_QUEUED as u64, Err("too many lookups queued".to_owned()))]
        );
    }
}
