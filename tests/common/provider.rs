//! A fake OAuth2 provider on 127.0.0.1: plain threads and `std::net`, HTTP/1.1 with one
//! request per connection, optionally inside TLS.
//!
//! - `GET /authorize?...` answers `302` to `redirect_uri?code=...&state=...` (or
//!   `error=...`, see [`Authorize`]).
//! - A path the test gave a script of its own ([`Provider::push_at`]: a device
//!   authorisation endpoint, a revocation endpoint, a metadata document at a well-known
//!   URL) answers from that script, whatever the method.
//! - Any other `POST` is the token endpoint: it takes the next [`Reply`] of the test's
//!   script (or the fallback once the script is empty) and acts it out.
//!
//! Every request is recorded with its form fields, so tests can check what pizauth sent.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the authorize endpoint answers.
#[derive(Clone, Debug)]
pub enum Authorize {
    /// Redirect with `code=code-N` (N counts authorize requests from 1).
    Code,
    /// Redirect with `error=...` (and the state).
    Error(String),
    /// Redirect with this code every time.
    FixedCode(String),
}

/// What the token endpoint does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Answer with this status, extra headers and body.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Send a head promising more body than is sent, then close.
    CloseMidBody,
    /// Read the request, then answer nothing and keep the connection open (until the
    /// provider is dropped, or a minute passes).
    Hang,
    /// Read the request, then close without answering.
    Close,
    /// Answer exactly these bytes (garbage, or HTTP made by hand) and close.
    Raw(Vec<u8>),
}

impl Reply {
    /// A 200 token response with `token_type` `Bearer`.
    pub fn token(access: &str, refresh: Option<&str>, expires_in: Option<u64>) -> Reply {
        let mut body = serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
        });
        if let Some(r) = refresh {
            body["refresh_token"] = r.into();
        }
        if let Some(e) = expires_in {
            body["expires_in"] = e.into();
        }
        Reply::json(200, &body.to_string())
    }

    /// An OAuth2 error response (RFC 6749 5.2).
    pub fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
        let body = serde_json::json!({"error": error, "error_description": description});
        Reply::json(status, &body.to_string())
    }

    /// A JSON body with this status.
    pub fn json(status: u16, body: &str) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_owned(),
        }
    }
}

/// One request the provider received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The query's pairs, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The form body's pairs, decoded, in order.
    pub form: Vec<(String, String)>,
    /// When the request (head and body) had arrived.
    pub at: Instant,
}

impl Recorded {
    /// The first form field named `key`.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The names of the form fields, in order.
    pub fn field_names(&self) -> Vec<&str> {
        self.form.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// The script of one path with a script of its own.
#[derive(Default)]
struct Route {
    script: VecDeque<Reply>,
    fallback: Option<Reply>,
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    fallback: Option<Reply>,
    /// Paths with scripts of their own.
    routes: HashMap<String, Route>,
    /// Every request but the authorize endpoint's, in order of arrival.
    requests: Vec<Recorded>,
    authorize: Option<Authorize>,
    /// The redirect URI registered for the client, if the authorize endpoint is strict:
    /// it then refuses any other, compared as strings but for a loopback port (RFC 6749
    /// 3.1.2.3, RFC 8252 7.3).
    registered_redirect: Option<String>,
    authorize_count: usize,
    /// Authorize requests.
    authorizations: Vec<Recorded>,
    /// Token endpoint requests.
    token_requests: Vec<Recorded>,
    /// Connections accepted.
    connections: usize,
    /// `Some(idle)`: answers keep the connection open for another request, for at most
    /// `idle`; `None`: every answer closes the connection.
    keep_alive: Option<Duration>,
    /// Kept-alive connections closed for being idle.
    idle_closes: usize,
    /// Send a TLS KeyUpdate on a kept-alive connection once it is idle.
    key_update_when_idle: bool,
    /// KeyUpdates sent so far.
    key_updates: usize,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake provider; stopped when dropped.
pub struct Provider {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl Provider {
    /// A plain HTTP provider on a fresh port.
    pub fn start() -> Provider {
        Provider::bind(0, None)
    }

    /// An HTTPS provider with this server configuration on a fresh port.
    pub fn start_tls(config: Arc<rustls::ServerConfig>) -> Provider {
        Provider::bind(0, Some(config))
    }

    /// A plain HTTP provider on `port` (one that [`super::closed_port`] released).
    pub fn start_at(port: u16) -> Provider {
        Provider::bind(port, None)
    }

    /// An HTTPS provider on `port` (that of a provider just dropped).
    pub fn start_tls_at(port: u16, config: Arc<rustls::ServerConfig>) -> Provider {
        Provider::bind(port, Some(config))
    }

    fn bind(port: u16, tls: Option<Arc<rustls::ServerConfig>>) -> Provider {
        // A port just released can be refused for a moment while the kernel finishes
        // closing the connections of the provider that had it.
        let listener = super::wait_for(
            &format!("port {port} to be free for the provider"),
            Duration::from_secs(5),
            || TcpListener::bind(("127.0.0.1", port)).ok(),
        );
        let addr = listener.local_addr().expect("provider address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                authorize: Some(Authorize::Code),
                ..State::default()
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            tls,
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::spawn(move || accept_loop(&listener, &s));
        Provider {
            shared,
            addr,
            accept: Some(accept),
        }
    }

    /// The URL of `path` on this provider.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Queues replies for the token endpoint, in order.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.lock().script.extend(replies);
    }

    /// What the token endpoint does once the script is empty (by default it answers
    /// `400 invalid_request` "unscripted request").
    pub fn set_fallback(&self, reply: Reply) {
        self.shared.lock().fallback = Some(reply);
    }

    /// Queues replies for requests to `path` (any method), in order.
    pub fn push_at(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        let mut state = self.shared.lock();
        let route = state.routes.entry(path.to_owned()).or_default();
        route.script.extend(replies);
    }

    /// What requests to `path` get once its script is empty (by default `404`, once the
    /// path has a script).
    pub fn set_fallback_at(&self, path: &str, reply: Reply) {
        let mut state = self.shared.lock();
        state.routes.entry(path.to_owned()).or_default().fallback = Some(reply);
    }

    /// Every request so far to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        let state = self.shared.lock();
        state
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Every request so far, but those to the authorize endpoint, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Waits until `path` has had at least `n` requests, and returns them all.
    pub fn wait_requests_to(&self, path: &str, n: usize) -> Vec<Recorded> {
        super::wait_for(&format!("{n} requests to {path}"), super::WAIT, || {
            let r = self.requests_to(path);
            (r.len() >= n).then_some(r)
        })
    }

    /// How the authorize endpoint answers from now on.
    pub fn set_authorize(&self, how: Authorize) {
        self.shared.lock().authorize = Some(how);
    }

    /// Makes the authorize endpoint strict: it answers 400 `invalid_redirect_uri` to any
    /// redirect URI but `uri` (whose port may vary).
    pub fn set_registered_redirect(&self, uri: &str) {
        self.shared.lock().registered_redirect = Some(uri.to_owned());
    }

    /// Keeps connections open for another request (for at most `idle` between requests)
    /// from the next answer on; `None` closes after every answer (the default).
    pub fn set_keep_alive(&self, idle: Option<Duration>) {
        self.shared.lock().keep_alive = idle;
    }

    /// Sends a TLS 1.3 KeyUpdate on each kept-alive connection shortly after each answer.
    pub fn set_key_update_when_idle(&self) {
        self.shared.lock().key_update_when_idle = true;
    }

    /// KeyUpdates sent so far.
    pub fn key_updates(&self) -> usize {
        self.shared.lock().key_updates
    }

    /// Kept-alive connections closed so far for being idle.
    pub fn idle_closes(&self) -> usize {
        self.shared.lock().idle_closes
    }

    /// The token-endpoint requests so far.
    pub fn token_requests(&self) -> Vec<Recorded> {
        self.shared.lock().token_requests.clone()
    }

    /// The authorize requests so far.
    pub fn authorizations(&self) -> Vec<Recorded> {
        self.shared.lock().authorizations.clone()
    }

    /// Connections accepted so far (including ones whose TLS handshake failed).
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }

    /// Waits until the token endpoint has had at least `n` requests, and returns them all.
    pub fn wait_token_requests(&self, n: usize) -> Vec<Recorded> {
        let deadline = Instant::now() + super::WAIT;
        let mut state = self.shared.lock();
        while state.token_requests.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {n} token requests; got {:#?}",
                state.token_requests
            );
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state.token_requests.clone()
    }

    /// Waits until `n` connections have been accepted.
    pub fn wait_connections(&self, n: usize) {
        super::wait_for(
            &format!("{n} connections to the provider"),
            super::WAIT,
            || (self.connections() >= n).then_some(()),
        );
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        shared.lock().connections += 1;
        shared.changed.notify_all();
        let s = Arc::clone(shared);
        std::thread::spawn(move || {
            let _ = serve(stream, &s);
        });
    }
}

/// A connection's byte stream, in the clear or in TLS.
trait Io: Read + Write {
    /// Sends a TLS 1.3 KeyUpdate (nothing in the clear).
    fn key_update(&mut self) -> io::Result<()>;
}

impl Io for TcpStream {
    fn key_update(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Io for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn key_update(&mut self) -> io::Result<()> {
        self.conn.refresh_traffic_keys().map_err(io::Error::other)?;
        self.flush()
    }
}

fn serve(tcp: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_nodelay(true)?;
    let raw = tcp.try_clone()?;
    let mut stream: Box<dyn Io> = match &shared.tls {
        Some(config) => {
            let conn =
                rustls::ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
        None => Box::new(tcp),
    };
    let mut first = true;
    loop {
        let request = match read_request(stream.as_mut()) {
            Ok(r) => r,
            Err(e)
                if !first
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                // A kept-alive connection left idle too long: close it, as servers do.
                shared.lock().idle_closes += 1;
                shared.changed.notify_all();
                break;
            }
            Err(e) => return Err(e),
        };
        first = false;
        let keep_alive = shared.lock().keep_alive;
        if !answer(&mut stream, shared, request, keep_alive.is_some())? {
            break;
        }
        let Some(idle) = keep_alive else { break };
        if shared.lock().key_update_when_idle {
            // As a server rolling its keys on a connection it expects to sit idle: TLS
            // records, but no data for the client.
            std::thread::sleep(Duration::from_millis(100));
            stream.key_update()?;
            shared.lock().key_updates += 1;
            shared.changed.notify_all();
        }
        raw.set_read_timeout(Some(idle))?;
    }
    drop(stream);
    raw.shutdown(Shutdown::Both)
}

/// Answers one request; `Ok(true)` if the connection may carry another.
fn answer(
    stream: &mut Box<dyn Io>,
    shared: &Shared,
    request: Recorded,
    keep_alive: bool,
) -> io::Result<bool> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    if request.method == "GET" && request.path == "/authorize" {
        let answer = authorize(shared, request);
        stream.write_all(answer.as_bytes())?;
        stream.flush()?;
        return Ok(false);
    }
    let not_found = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let routed = {
        let mut state = shared.lock();
        state.requests.push(request.clone());
        shared.changed.notify_all();
        state
            .routes
            .get_mut(&request.path)
            .map(|route| route.script.pop_front().or_else(|| route.fallback.clone()))
    };
    let reply = match routed {
        Some(Some(reply)) => reply,
        Some(None) => {
            stream.write_all(not_found.as_bytes())?;
            return Ok(false);
        }
        None if request.method != "POST" => {
            stream.write_all(not_found.as_bytes())?;
            return Ok(false);
        }
        None => token_reply(shared, request),
    };
    act(stream, shared, reply, connection, keep_alive)
}

/// The token endpoint's next reply, the request recorded.
fn token_reply(shared: &Shared, request: Recorded) -> Reply {
    let mut state = shared.lock();
    state.token_requests.push(request);
    let reply = state.script.pop_front().or_else(|| state.fallback.clone());
    shared.changed.notify_all();
    reply.unwrap_or_else(|| {
        Reply::oauth_error(
            400,
            "invalid_request",
            "unscripted request to the fake provider",
        )
    })
}

/// Acts out `reply`; `Ok(true)` if the connection may carry another request.
fn act(
    stream: &mut Box<dyn Io>,
    shared: &Shared,
    reply: Reply,
    connection: &str,
    keep_alive: bool,
) -> io::Result<bool> {
    match reply {
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: {connection}\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            // Head and body in two segments: pizauth must put the response together from
            // however many reads (and readiness events) it arrives in.
            stream.write_all(head.as_bytes())?;
            stream.flush()?;
            stream.write_all(body.as_bytes())?;
            stream.flush()?;
            return Ok(keep_alive);
        }
        Reply::CloseMidBody => {
            let r = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Content-Length: 200\r\nConnection: close\r\n\r\n{\"access_token\": \"trunc";
            stream.write_all(r.as_bytes())?;
            stream.flush()?;
        }
        Reply::Close => (),
        Reply::Hang => {
            let until = Instant::now() + Duration::from_secs(60);
            while !shared.stop.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(super::POLL);
            }
        }
        Reply::Raw(bytes) => {
            stream.write_all(&bytes)?;
            stream.flush()?;
        }
    }
    Ok(false)
}

/// The 302 (or 400) the authorize endpoint answers `request` with.
fn authorize(shared: &Shared, request: Recorded) -> String {
    let query = |k: &str| {
        request
            .query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let (redirect, state) = (query("redirect_uri"), query("state"));
    let mut s = shared.lock();
    s.authorize_count += 1;
    let n = s.authorize_count;
    let how = s.authorize.clone().unwrap_or(Authorize::Code);
    let registered = s.registered_redirect.clone();
    s.authorizations.push(request);
    shared.changed.notify_all();
    drop(s);
    let (Some(redirect), Some(state)) = (redirect, state) else {
        return "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_owned();
    };
    if let Some(registered) = registered
        && without_port(&redirect) != registered
    {
        let body = "invalid_redirect_uri";
        return format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    let mut location = url::Url::parse(&redirect).expect("redirect_uri is a URL");
    match how {
        Authorize::Code => location
            .query_pairs_mut()
            .append_pair("code", &format!("code-{n}"))
            .append_pair("state", &state),
        Authorize::Error(e) => location
            .query_pairs_mut()
            .append_pair("error", &e)
            .append_pair("state", &state),
        Authorize::FixedCode(code) => location
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &state),
    };
    format!(
        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

/// `uri` as a string with the port of its authority taken out.
fn without_port(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    format!("{scheme}://{host}{tail}")
}

/// Reads one request: head up to 64 KiB, body by `Content-Length` up to 64 KiB.
fn read_request(stream: &mut dyn Io) -> io::Result<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(io::Error::other("head too large"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    if length > 64 * 1024 {
        return Err(io::Error::other("body too large"));
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let pairs = |s: &[u8]| url::form_urlencoded::parse(s).into_owned().collect();
    Ok(Recorded {
        method,
        path: path.to_owned(),
        query: pairs(query.as_bytes()),
        form: pairs(&body),
        at: Instant::now(),
    })
}
