//! A fast fake OAuth2 token endpoint on 127.0.0.1: one thread per connection, HTTP/1.1
//! keep-alive, every token request answered at once with JSON.
//!
//! It identifies accounts by `client_id` (the bench gives each account its own) and hands
//! out access tokens that say which grant made them: `at-<client_id>-g<n>` for a code
//! exchange, `at-<client_id>-r<n>` for a refresh, so the bench can tell a refreshed token
//! from the first one. It counts grants and refreshes and remembers when it saw the last
//! refresh, for the refresh storm.
//!
//! Bounds: at most [`MAX_CONNS`] connections at once (more are closed at once), requests
//! of at most [`MAX_REQUEST`] bytes, and a connection idle for [`IDLE`] is closed (as real
//! providers close idle keep-alive connections).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Connections served at once.
const MAX_CONNS: usize = 256;
/// The largest request (head and body) accepted.
const MAX_REQUEST: usize = 64 * 1024;
/// A keep-alive connection idle this long is closed.
const IDLE: Duration = Duration::from_secs(2);
/// Requests served on one connection at most.
const MAX_REQUESTS_PER_CONN: usize = 1_000_000;
/// Padding that gives access tokens a realistic length (providers' are 100-2,000 bytes).
const PAD: &str = "Xk3v9QpL2mZ7wR4tY8uB1nC6dF0gH5jA";

/// What the provider has seen.
#[derive(Default)]
pub struct Stats {
    /// Code exchanges answered.
    pub grants: AtomicU64,
    /// Refresh requests seen.
    pub refreshes: AtomicU64,
    /// Refresh responses written.
    pub refreshes_answered: AtomicU64,
    /// When the latest refresh request arrived.
    pub last_refresh: Mutex<Option<Instant>>,
    /// When the first refresh request arrived.
    pub first_refresh: Mutex<Option<Instant>>,
    /// Requests that were not understood (should stay 0).
    pub bad: AtomicU64,
}

/// The running provider.
pub struct Provider {
    pub port: u16,
    pub stats: Arc<Stats>,
    /// `expires_in` of the tokens from code exchanges, seconds.
    pub grant_expires_in: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl Provider {
    pub fn start() -> io::Result<Provider> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stats = Arc::new(Stats::default());
        let grant_expires_in = Arc::new(AtomicU64::new(86_400));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (stats, expires, stop) = (stats.clone(), grant_expires_in.clone(), stop.clone());
            thread::Builder::new()
                .name("provider-accept".into())
                .spawn(move || accept_loop(listener, stats, expires, stop))?
        };
        Ok(Provider {
            port,
            stats,
            grant_expires_in,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// Forgets the counts of the refresh storm.
    pub fn reset_refreshes(&self) {
        self.stats.refreshes.store(0, Ordering::SeqCst);
        self.stats.refreshes_answered.store(0, Ordering::SeqCst);
        *lock(&self.stats.last_refresh) = None;
        *lock(&self.stats.first_refresh) = None;
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn accept_loop(
    listener: TcpListener,
    stats: Arc<Stats>,
    expires: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else { continue };
        if open.load(Ordering::SeqCst) >= MAX_CONNS {
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        open.fetch_add(1, Ordering::SeqCst);
        let (stats, expires, mine) = (stats.clone(), expires.clone(), open.clone());
        let spawned = thread::Builder::new()
            .name("provider-conn".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = serve(stream, &stats, &expires);
                mine.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Serves requests on one connection until the peer closes, it idles, or it misbehaves.
fn serve(mut stream: TcpStream, stats: &Stats, expires: &AtomicU64) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IDLE))?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    for _ in 0..MAX_REQUESTS_PER_CONN {
        // Read until a whole request (head and Content-Length body) is buffered.
        let (head_len, body_len) = loop {
            if let Some(framing) = framing(&buf)
                && buf.len() >= framing.0 + framing.1
            {
                break framing;
            }
            if buf.len() > MAX_REQUEST {
                return Ok(());
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let body = &buf[head_len..head_len + body_len];
        let (reply, refresh) = answer(&buf[..head_len], body, stats, expires);
        buf.drain(..head_len + body_len);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: {}\r\n\r\n{}",
            reply.len(),
            reply
        );
        stream.write_all(response.as_bytes())?;
        if refresh {
            stats.refreshes_answered.fetch_add(1, Ordering::SeqCst);
        }
    }
    Ok(())
}

/// (head length including the blank line, body length) once the head is complete.
fn framing(buf: &[u8]) -> Option<(usize, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    Some((end, len.min(MAX_REQUEST)))
}

/// The JSON answer to one token request, and whether it answers a refresh.
fn answer(head: &[u8], body: &[u8], stats: &Stats, expires: &AtomicU64) -> (String, bool) {
    let post_token = head.starts_with(b"POST /token ");
    let client = form_value(body, "client_id").unwrap_or_default();
    match (post_token, form_value(body, "grant_type").as_deref()) {
        (true, Some("authorization_code")) => {
            let n = stats.grants.fetch_add(1, Ordering::SeqCst) + 1;
            let json = format!(
                "{{\"access_token\":\"at-{client}-g{n}-{PAD}{PAD}{PAD}\",\"token_type\":\"Bearer\",\"expires_in\":{},\"refresh_token\":\"rt-{client}-{PAD}\"}}",
                expires.load(Ordering::SeqCst)
            );
            (json, false)
        }
        (true, Some("refresh_token")) => {
            let now = Instant::now();
            let n = stats.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
            {
                let mut last = lock(&stats.last_refresh);
                if last.is_none_or(|l| l < now) {
                    *last = Some(now);
                }
            }
            lock(&stats.first_refresh).get_or_insert(now);
            let json = format!(
                "{{\"access_token\":\"at-{client}-r{n}-{PAD}{PAD}{PAD}\",\"token_type\":\"Bearer\",\"expires_in\":86400}}"
            );
            (json, true)
        }
        _ => {
            stats.bad.fetch_add(1, Ordering::SeqCst);
            ("{\"error\":\"invalid_request\"}".to_owned(), false)
        }
    }
}

/// The decoded value of `key` in an `application/x-www-form-urlencoded` body.
fn form_value(body: &[u8], key: &str) -> Option<String> {
    body.split(|&b| b == b'&').find_map(|pair| {
        let mut kv = pair.splitn(2, |&b| b == b'=');
        let k = kv.next()?;
        let v = kv.next().unwrap_or_default();
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

pub fn percent_decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => {
                let hex = std::str::from_utf8(&s[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
