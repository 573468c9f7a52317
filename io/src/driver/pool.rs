//! The outgoing connection pool, as a state machine without I/O: requests, connection
//! events and cancellations in; orders (connect, send, close, fail) out. The driver
//! owns the sockets and carries the orders out (`outgoing.rs`); this decides which
//! request goes on which connection, and when.
//!
//! - Requests wait in a FIFO queue for a connection; at most `cap` connections are open.
//! - A kept-alive connection is reused for the next request to the same origin; at the
//!   cap, an idle connection to another origin is closed to make room.
//! - A request that fails on a reused connection before any of its response arrived (the
//!   server had closed the kept-alive connection) is tried once more, first in the queue,
//!   on a fresh connection.
//! - Whatever ends a request (a response, a failure, a cancellation) or a connection (an
//!   idle timeout, the server closing it) hands the connection or its place to the next
//!   request in the queue.

use std::collections::{BTreeMap, HashMap, VecDeque};

use pizauth_fsm::event::{RequestId, TransportError};

/// Where a request goes: connections are reused only for the same origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

/// A connection, as the pool names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey(pub u64);

/// What the driver must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Order {
    /// Open a connection to `origin`, then report [`Pool::connected`] (or
    /// [`Pool::failed`]).
    Connect { conn: ConnKey, origin: Origin },
    /// Send `request` on `conn` (connected), then report [`Pool::responded`] (or
    /// [`Pool::failed`]).
    Send { conn: ConnKey, request: RequestId },
    /// Close `conn`; the pool has forgotten it already.
    Close { conn: ConnKey },
    /// `request` failed for good with `error`: tell the core.
    Fail {
        request: RequestId,
        error: TransportError,
    },
}

/// A request that has no connection yet.
#[derive(Debug)]
struct Queued {
    request: RequestId,
    origin: Origin,
    /// Already tried once on a kept-alive connection that turned out to be closed.
    retried: bool,
}

#[derive(Debug)]
struct Conn {
    origin: Origin,
    /// The request it serves (or is being opened for); `None` when idle.
    request: Option<(RequestId, bool)>,
    /// It served a request before the current one.
    reused: bool,
}

/// The pool.
#[derive(Debug)]
pub struct Pool {
    cap: usize,
    queue: VecDeque<Queued>,
    conns: BTreeMap<ConnKey, Conn>,
    /// The connection serving each request that has one.
    by_request: HashMap<RequestId, ConnKey>,
    orders: VecDeque<Order>,
    next: u64,
}

impl Pool {
    /// A pool of at most `cap` connections (at least one).
    pub fn new(cap: usize) -> Pool {
        Pool {
            cap: cap.max(1),
            queue: VecDeque::new(),
            conns: BTreeMap::new(),
            by_request: HashMap::new(),
            orders: VecDeque::new(),
            next: 1,
        }
    }

    /// The next order to carry out. Drain after every call.
    pub fn poll_order(&mut self) -> Option<Order> {
        self.orders.pop_front()
    }

    /// A new request to `origin`.
    pub fn request(&mut self, request: RequestId, origin: Origin) {
        self.queue.push_back(Queued {
            request,
            origin,
            retried: false,
        });
        self.dispatch();
    }

    /// The core gave up on `request`: drop it from the queue, or close its connection
    /// (a response may be half read) and hand the place on.
    pub fn cancel(&mut self, request: RequestId) {
        self.queue.retain(|q| q.request != request);
        if let Some(conn) = self.by_request.remove(&request) {
            self.conns.remove(&conn);
            self.orders.push_back(Order::Close { conn });
        }
        self.dispatch();
    }

    /// `conn` is open: send its request.
    pub fn connected(&mut self, conn: ConnKey) {
        // A connection whose request was cancelled meanwhile is closed and forgotten.
        if let Some(Conn {
            request: Some((request, _)),
            ..
        }) = self.conns.get(&conn)
        {
            let request = *request;
            self.orders.push_back(Order::Send { conn, request });
        }
    }

    /// `conn` delivered the whole response to its request; `keep_alive` if it may carry
    /// another. Returns the request answered.
    pub fn responded(&mut self, conn: ConnKey, keep_alive: bool) -> Option<RequestId> {
        let c = self.conns.get_mut(&conn)?;
        let (request, _) = c.request.take()?;
        self.by_request.remove(&request);
        if keep_alive {
            c.reused = true;
        } else {
            self.conns.remove(&conn);
            self.orders.push_back(Order::Close { conn });
        }
        self.dispatch();
        Some(request)
    }

    /// `conn` failed (connecting, sending or reading) with `error`, and is closed.
    /// `response_started`: some of the response had arrived. A request that failed
    /// before any of its response on a reused connection is tried once more, first in
    /// line; otherwise it fails.
    pub fn failed(&mut self, conn: ConnKey, error: TransportError, response_started: bool) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some((request, retried)) = c.request {
            self.by_request.remove(&request);
            if c.reused && !response_started && !retried {
                self.queue.push_front(Queued {
                    request,
                    origin: c.origin,
                    retried: true,
                });
            } else {
                self.orders.push_back(Order::Fail { request, error });
            }
        }
        self.dispatch();
    }

    /// An idle `conn` is closed (the server closed it, or it was idle too long).
    pub fn closed(&mut self, conn: ConnKey) {
        if self.conns.get(&conn).is_some_and(|c| c.request.is_none()) {
            self.conns.remove(&conn);
            self.dispatch();
        }
    }

    /// How many connections are open or being opened.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.conns.len()
    }

    /// Gives queued requests connections while there are connections to give.
    fn dispatch(&mut self) {
        while let Some(front) = self.queue.front() {
            let idle = self
                .conns
                .iter()
                .find(|(_, c)| c.request.is_none() && c.origin == front.origin)
                .map(|(k, _)| *k);
            if let Some(conn) = idle {
                let Some(q) = self.queue.pop_front() else {
                    return;
                };
                self.by_request.insert(q.request, conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.request = Some((q.request, q.retried));
                }
                self.orders.push_back(Order::Send {
                    conn,
                    request: q.request,
                });
                continue;
            }
            if self.conns.len() >= self.cap {
                // Make room by closing an idle connection (to another origin: one to
                // this origin would have been taken above), if any.
                let victim = self
                    .conns
                    .iter()
                    .find(|(_, c)| c.request.is_none())
                    .map(|(k, _)| *k);
                match victim {
                    Some(conn) => {
                        self.conns.remove(&conn);
                        self.orders.push_back(Order::Close { conn });
                    }
                    None => return,
                }
            }
            let Some(q) = self.queue.pop_front() else {
                return;
            };
            let conn = ConnKey(self.next);
            self.next += 1;
            self.by_request.insert(q.request, conn);
            self.conns.insert(
                conn,
                Conn {
                    origin: q.origin.clone(),
                    request: Some((q.request, q.retried)),
                    reused: false,
                },
            );
            self.orders.push_back(Order::Connect {
                conn,
                origin: q.origin,
            });
        }
    }

    /// Checks the pool's invariants (tests).
    #[cfg(test)]
    fn check(&self) {
        assert!(self.conns.len() <= self.cap, "over the cap");
        for (request, conn) in &self.by_request {
            let c = self
                .conns
                .get(conn)
                .expect("a request on a closed connection");
            assert_eq!(c.request.map(|(r, _)| r), Some(*request));
        }
        let busy = self.conns.values().filter(|c| c.request.is_some()).count();
        assert_eq!(busy, self.by_request.len());
        for q in &self.queue {
            assert!(!self.by_request.contains_key(&q.request), "queued and sent");
        }
        // Nobody waits while a connection could be given.
        if let Some(front) = self.queue.front() {
            assert!(self.conns.len() >= self.cap);
            assert!(
                !self
                    .conns
                    .values()
                    .any(|c| c.request.is_none() && c.origin == front.origin),
                "an idle connection to the front's origin"
            );
            assert!(self.conns.values().all(|c| c.request.is_some()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pizauth_fsm::event::TransportErrorKind;

    fn origin(host: &str) -> Origin {
        Origin {
            https: true,
            host: host.into(),
            port: 443,
        }
    }

    fn io_error() -> TransportError {
        TransportError {
            kind: TransportErrorKind::Io,
            message: "reset".into(),
        }
    }

    fn drain(p: &mut Pool) -> Vec<Order> {
        p.check();
        std::iter::from_fn(|| p.poll_order()).collect()
    }

    /// Connects what the orders ask to connect, and returns the sends that follow.
    fn connect_all(p: &mut Pool, orders: &[Order]) -> Vec<Order> {
        for o in orders {
            if let Order::Connect { conn, .. } = o {
                p.connected(*conn);
            }
        }
        drain(p)
    }

    fn connects(orders: &[Order]) -> Vec<ConnKey> {
        orders
            .iter()
            .filter_map(|o| match o {
                Order::Connect { conn, .. } => Some(*conn),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn requests_are_served_in_order_up_to_the_cap() {
        let mut p = Pool::new(2);
        for i in 1..=4 {
            p.request(RequestId(i), origin("a"));
        }
        let orders = drain(&mut p);
        let first = connects(&orders);
        assert_eq!(first.len(), 2, "{orders:?}");
        let sends = connect_all(&mut p, &orders);
        assert_eq!(
            sends,
            [
                Order::Send {
                    conn: first[0],
                    request: RequestId(1)
                },
                Order::Send {
                    conn: first[1],
                    request: RequestId(2)
                },
            ]
        );
        // Request 2 finishes first: its kept-alive connection takes request 3, the
        // first in line.
        assert_eq!(p.responded(first[1], true), Some(RequestId(2)));
        assert_eq!(
            drain(&mut p),
            [Order::Send {
                conn: first[1],
                request: RequestId(3)
            }]
        );
        // Request 1's connection closes after its response: request 4 gets a new one.
        assert_eq!(p.responded(first[0], false), Some(RequestId(1)));
        let orders = drain(&mut p);
        assert_eq!(orders[0], Order::Close { conn: first[0] });
        assert!(
            matches!(&orders[1], Order::Connect { origin: o, .. } if *o == origin("a")),
            "{orders:?}"
        );
        assert_eq!(orders.len(), 2);
    }

    #[test]
    fn connections_are_reused_per_origin_only() {
        let mut p = Pool::new(4);
        p.request(RequestId(1), origin("a"));
        let orders = drain(&mut p);
        let a = connects(&orders)[0];
        connect_all(&mut p, &orders);
        p.responded(a, true);
        drain(&mut p);
        // Another origin: a new connection, the idle one to `a` left alone.
        p.request(RequestId(2), origin("b"));
        let orders = drain(&mut p);
        assert!(
            matches!(&orders[..], [Order::Connect { origin: o, conn }] if *o == origin("b") && *conn != a),
            "{orders:?}"
        );
        // The same origin: the idle connection, no connect.
        p.request(RequestId(3), origin("a"));
        assert_eq!(
            drain(&mut p),
            [Order::Send {
                conn: a,
                request: RequestId(3)
            }]
        );
        assert_eq!(p.open(), 2);
    }

    #[test]
    fn a_stale_kept_alive_connection_is_retried_once_on_a_fresh_one() {
        let mut p = Pool::new(4);
        p.request(RequestId(1), origin("a"));
        let orders = drain(&mut p);
        let a = connects(&orders)[0];
        connect_all(&mut p, &orders);
        p.responded(a, true);
        p.request(RequestId(2), origin("a"));
        p.request(RequestId(3), origin("a"));
        let orders = drain(&mut p);
        // 2 on the kept-alive connection, 3 on a new one.
        assert_eq!(
            orders[0],
            Order::Send {
                conn: a,
                request: RequestId(2)
            }
        );
        let c3 = connects(&orders)[0];
        // The server had closed it: request 2 goes first on a fresh connection.
        p.failed(a, io_error(), false);
        let orders = drain(&mut p);
        let fresh = connects(&orders);
        assert_eq!(fresh.len(), 1, "{orders:?}");
        assert!(fresh[0] != a && fresh[0] != c3);
        p.connected(fresh[0]);
        assert_eq!(
            drain(&mut p),
            [Order::Send {
                conn: fresh[0],
                request: RequestId(2)
            }]
        );
        // A fresh connection that fails fails the request: no second retry.
        p.failed(fresh[0], io_error(), false);
        assert_eq!(
            drain(&mut p),
            [Order::Fail {
                request: RequestId(2),
                error: io_error()
            }]
        );
        // Nor is a request retried once its response had started.
        p.connected(c3);
        drain(&mut p);
        p.responded(c3, true);
        p.request(RequestId(4), origin("a"));
        drain(&mut p);
        p.failed(c3, io_error(), true);
        assert_eq!(
            drain(&mut p),
            [Order::Fail {
                request: RequestId(4),
                error: io_error()
            }]
        );
        assert_eq!(p.open(), 0);
    }

    #[test]
    fn a_cancel_or_a_timeout_hands_the_connection_to_the_next() {
        let mut p = Pool::new(1);
        p.request(RequestId(1), origin("hang"));
        p.request(RequestId(2), origin("ok"));
        p.request(RequestId(3), origin("ok"));
        let orders = drain(&mut p);
        let hang = connects(&orders)[0];
        connect_all(&mut p, &orders);
        // The core's timeout cancels request 1: its connection closes, and request 2
        // gets the place.
        p.cancel(RequestId(1));
        let orders = drain(&mut p);
        assert_eq!(orders[0], Order::Close { conn: hang });
        let ok = connects(&orders);
        assert_eq!(ok.len(), 1, "{orders:?}");
        // Cancelling a queued request only drops it.
        p.cancel(RequestId(3));
        assert_eq!(drain(&mut p), []);
        // Cancelling a request still connecting closes the connection too.
        p.cancel(RequestId(2));
        assert_eq!(drain(&mut p), [Order::Close { conn: ok[0] }]);
        p.connected(ok[0]);
        assert_eq!(drain(&mut p), []);
        // An idle connection that times out (or that the server closes) frees its place.
        p.request(RequestId(4), origin("a"));
        let orders = drain(&mut p);
        let a = connects(&orders)[0];
        connect_all(&mut p, &orders);
        p.responded(a, true);
        p.request(RequestId(5), origin("b"));
        // At the cap, the idle connection to another origin makes room.
        let orders = drain(&mut p);
        assert_eq!(orders[0], Order::Close { conn: a });
        let b = connects(&orders)[0];
        connect_all(&mut p, &orders);
        p.responded(b, true);
        p.closed(b);
        assert_eq!(p.open(), 0);
        p.request(RequestId(6), origin("b"));
        assert_eq!(connects(&drain(&mut p)).len(), 1);
    }

    #[test]
    fn the_cap_holds_whatever_happens() {
        // A pseudo-random run of every input, the invariants checked after each.
        let mut p = Pool::new(3);
        let mut x: u64 = 0x2545_f491;
        let mut next_request = 1;
        let mut answered = Vec::new();
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let conns: Vec<ConnKey> = p.conns.keys().copied().collect();
            let pick = conns.get((x >> 8) as usize % conns.len().max(1)).copied();
            match x % 6 {
                0 | 1 => {
                    let host = ["a", "b", "c", "d"][(x >> 20) as usize % 4];
                    p.request(RequestId(next_request), origin(host));
                    next_request += 1;
                }
                2 => {
                    if let Some(c) = pick {
                        p.connected(c);
                    }
                }
                3 => {
                    if let Some(c) = pick
                        && let Some(r) = p.responded(c, x & 0x100 != 0)
                    {
                        answered.push(r);
                    }
                }
                4 => {
                    if let Some(c) = pick {
                        p.failed(c, io_error(), x & 0x200 != 0);
                    }
                }
                _ => p.cancel(RequestId((x >> 12) % next_request.max(1))),
            }
            let orders = drain(&mut p);
            for o in &orders {
                if let Order::Close { conn } = o {
                    assert!(!p.conns.contains_key(conn));
                }
            }
        }
        // Every request was answered at most once.
        let mut seen = std::collections::HashSet::new();
        assert!(answered.iter().all(|r| seen.insert(*r)));
    }
}
