//! A server on a simulated clock that checks its properties after every input.

use std::collections::BTreeMap;
use std::time::Duration;

use url::Url;

use crate::config::{Config, DEFAULT_REFRESH_AT_LEAST};
use crate::dump::Dump;
use crate::event::{
    ChildId, ClientId, ConnId, ExitStatus, HttpResponse, Input, Output, RedirectRequest, RequestId,
    Scheme, TransportError,
};
use crate::oauth;
use crate::protocol::{AccountStatus, Reply, Request, TokenStatus};
use crate::secret::Secret;
use crate::server::{Listeners, Server, Tunables};
use crate::time::{Instant, Now, WallTime};

use super::XorShift;

/// Where the simulated boot clock starts (ms).
pub const T0_BOOT: u64 = 1_000_000;
/// Where the simulated wall clock starts (ms since the Unix epoch; 2027).
pub const T0_WALL: i64 = 1_800_000_000_000;

/// The config of the control, restore, redirect and token-response targets: every flow,
/// every command, redirect URIs with a path, a query and the `https` scheme, a
/// revocation endpoint and an issuer to discover. `refresh_at_least` keeps its default
/// everywhere, which the harness's expiry model relies on.
pub const STANDARD_CONFIG: &str = r#"
auth_notify_cmd = "notify";
error_notify_cmd = "error";
token_event_cmd = "event";
transient_error_if_cmd = "check";
account "a" {
    auth_uri = "https://auth.example/authorize";
    token_uri = "https://auth.example/token";
    client_id = "client-a";
    client_secret = "CLIENT-SECRET-A-0123456789";
    scopes = ["mail", "offline_access"];
}
account "b" {
    auth_uri = "https://auth.example/authorize";
    token_uri = "https://auth.example/token";
    revoke_uri = "https://auth.example/revoke";
    client_id = "client-b";
    redirect_uri = "http://localhost/callback?tenant=b";
    auth_uri_fields = { "login_hint": "b@example.com" };
}
account "c" {
    auth_uri = "https://auth.example/authorize";
    token_uri = "https://auth.example/token";
    client_id = "client-c";
    redirect_uri = "https://localhost/cb";
}
account "d" {
    auth_flow = device;
    device_auth_uri = "https://auth.example/device";
    token_uri = "https://auth.example/token";
    client_id = "client-d";
}
account "e" {
    auth_flow = client_credentials;
    token_uri = "https://auth.example/token";
    client_id = "client-e";
    client_secret = "CLIENT-SECRET-E-0123456789";
}
account "f" {
    issuer = "https://id.example/";
    client_id = "client-f";
}
"#;

/// [`STANDARD_CONFIG`], parsed.
pub fn standard_config() -> Config {
    Config::parse(STANDARD_CONFIG, "standard.conf")
        .map(|p| p.config)
        .expect("STANDARD_CONFIG parses")
}

/// The statuses the core may answer a redirect with.
const REDIRECT_STATUSES: [u16; 5] = [200, 400, 404, 405, 421];

/// How the server answered a redirect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The page.
    pub body: String,
}

/// A [`Server`] on a simulated clock, with seeded entropy, that checks after every input:
///
/// - `Server::check_invariants` (the invariants of DESIGN.md), and that
///   `poll_timeout` is later than now;
/// - every control client gets at most one reply, and only clients that asked get one;
/// - every token handed out by `show` was installed by a token response or a `restore`
///   the harness fed, and is handed out only before it expires (the harness keeps its own
///   model of expiries: the send time of the request plus `expires_in`, or the restored
///   expiry);
/// - no secret the harness knows (tokens and codes it made up, client secrets) appears
///   in a log line, an error reply or a notice, unless the fuzzer itself sent that text;
/// - every `Kill` names a running child, every redirect gets exactly one answer with an
///   expected status.
///
/// It also plays the driver's part faithfully: it reports responses only for requests the
/// server sent, exits only for children it spawned, and config text only after
/// `ReadConfig`.
pub struct Harness {
    server: Server,
    now: Now,
    rng: XorShift,
    next_client: u64,
    next_conn: u64,
    next_token: u64,
    exited: bool,
    /// The latest expiry (boot clock) known for each access token; a token handed out at
    /// or after it is a bug.
    expiries: BTreeMap<String, Instant>,
    /// When each request was sent.
    sent: BTreeMap<RequestId, Instant>,
    /// Requests neither answered nor cancelled, in order of sending.
    in_flight: Vec<RequestId>,
    /// Every request ever sent, in order (stale ones included).
    all_sent: Vec<RequestId>,
    /// Children spawned and not yet exited.
    children: Vec<ChildId>,
    /// Whether the server asked for the config text and has not had it yet.
    config_wanted: bool,
    /// Replies each client has had; a client is in here from when it asks.
    replies: BTreeMap<ClientId, u32>,
    /// Secrets the harness made up or configured.
    secrets: Vec<String>,
    /// Everything the fuzzer said, so that text it chose is not mistaken for a leak.
    heard: Vec<u8>,
}

impl Harness {
    /// A harness around a server for `config`, with both redirect listeners on.
    pub fn new(config: Config, tunables: Tunables) -> Harness {
        let mut secrets = Vec::new();
        for a in &config.accounts {
            if let Some(s) = &a.client_secret {
                secrets.push(s.as_str().to_owned());
            }
        }
        let listeners = Listeners {
            http_port: Some(8765),
            https_port: Some(8766),
            https_fingerprint: Some("AA:BB".into()),
        };
        Harness {
            server: Server::with_tunables(config, listeners, tunables),
            now: Now {
                boot: Instant::from_millis(T0_BOOT),
                wall: WallTime::from_unix_millis(T0_WALL),
            },
            rng: XorShift::new(42),
            next_client: 1,
            next_conn: 1,
            next_token: 1,
            exited: false,
            expiries: BTreeMap::new(),
            sent: BTreeMap::new(),
            in_flight: Vec::new(),
            all_sent: Vec::new(),
            children: Vec::new(),
            config_wanted: false,
            replies: BTreeMap::new(),
            secrets,
            heard: Vec::new(),
        }
    }

    /// A harness for [`STANDARD_CONFIG`] with every account unauthorised.
    pub fn standard() -> Harness {
        Harness::new(super::standard(), Tunables::default())
    }

    /// A harness for [`STANDARD_CONFIG`] a minute after this state was reached: `a` holds
    /// a token and a refresh token (an hour to live), `b` a token without a refresh token
    /// (half an hour), `e` a client-credentials token (an hour); `c` is pending
    /// authorisation; `d` and `f` have nothing.
    pub fn with_tokens() -> Harness {
        let mut h = Harness::standard();
        let body = |access: &str, refresh: Option<&str>, expires_in: u64| {
            let refresh = refresh
                .map(|r| format!(r#","refresh_token":"{r}""#))
                .unwrap_or_default();
            format!(
                r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":{expires_in}{refresh}}}"#
            )
        };
        for s in [
            "TOKEN-SETUP-A-0123456789",
            "REFRESH-SETUP-A-0123456789",
            "TOKEN-SETUP-B-0123456789",
            "TOKEN-SETUP-E-0123456789",
        ] {
            h.add_secret(s);
        }
        h.authorise(
            "a",
            &body(
                "TOKEN-SETUP-A-0123456789",
                Some("REFRESH-SETUP-A-0123456789"),
                3600,
            ),
        );
        h.authorise("b", &body("TOKEN-SETUP-B-0123456789", None, 1800));
        h.show("c");
        h.show("e");
        if let Some(id) = h.in_flight.last().copied() {
            h.respond_json(id, 200, &body("TOKEN-SETUP-E-0123456789", None, 3600));
        }
        h.advance(Duration::from_secs(60));
        h
    }

    /// The text `dump` gives in [`Harness::with_tokens`]: a valid dump for seeds.
    pub fn with_tokens_dump_text() -> Secret {
        match Harness::with_tokens().ask(&Request::Dump) {
            Some(Reply::Dump { dump }) => dump,
            _ => Secret::default(),
        }
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The simulated present.
    pub fn now(&self) -> Now {
        self.now
    }

    /// Whether the server has exited (after `shutdown`); it then ignores every input.
    pub fn exited(&self) -> bool {
        self.exited
    }

    /// Requests sent and neither answered nor cancelled, oldest first.
    pub fn in_flight(&self) -> &[RequestId] {
        &self.in_flight
    }

    /// Every request the server has sent, oldest first, answered and cancelled ones too.
    pub fn all_sent(&self) -> &[RequestId] {
        &self.all_sent
    }

    /// Children spawned and not yet exited, oldest first.
    pub fn children(&self) -> &[ChildId] {
        &self.children
    }

    /// Whether the server waits for the config text.
    pub fn config_wanted(&self) -> bool {
        self.config_wanted
    }

    /// Notes bytes the fuzzer chose: secrets found in them are the fuzzer's own words.
    pub fn hear(&mut self, bytes: &[u8]) {
        // Bounded: a long run should not make every check slower.
        if self.heard.len() < 1 << 20 {
            self.heard.extend_from_slice(bytes);
        }
    }

    /// A fresh access token, unique in this run; the harness treats it as a secret.
    pub fn fresh_token(&mut self, kind: &str) -> String {
        let token = format!("{kind}-{:04}-harness", self.next_token);
        self.next_token += 1;
        self.secrets.push(token.clone());
        token
    }

    /// Feeds one input now; returns everything it caused, after checking it.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let asked = match &input {
            Input::ClientAsked { client, bytes } => {
                self.note_restore(bytes.expose());
                Some(*client)
            }
            _ => None,
        };
        if let Some(client) = asked {
            let previous = self.replies.insert(client, 0);
            assert!(previous.is_none(), "the harness reused client {client:?}");
        }
        self.server.handle(self.now, input, &mut self.rng);
        let mut out = Vec::new();
        while let Some(o) = self.server.poll_output() {
            self.observe(&o);
            out.push(o);
        }
        self.server.check_invariants();
        if !self.exited
            && let Some(next) = self.server.poll_timeout()
        {
            assert!(next > self.now.boot, "poll_timeout is not after now");
        }
        out
    }

    /// Checks one output and updates the harness's picture of the world.
    fn observe(&mut self, o: &Output) {
        match o {
            Output::Reply { client, reply } => {
                let count = self
                    .replies
                    .get_mut(client)
                    .unwrap_or_else(|| panic!("reply to {client:?}, who never asked"));
                *count += 1;
                assert_eq!(*count, 1, "two replies to {client:?}");
                match reply {
                    Reply::Token { token } => self.check_token(token.as_str()),
                    Reply::Error { message } | Reply::Notice { message } => {
                        self.check_no_secret(message)
                    }
                    _ => (),
                }
            }
            Output::Log { message, .. } => self.check_no_secret(message),
            Output::SendHttp { request, http } => {
                assert!(
                    matches!(http.url.scheme(), "http" | "https"),
                    "request to a non-http URL"
                );
                assert!(
                    self.sent.insert(*request, self.now.boot).is_none(),
                    "request id {request:?} reused"
                );
                self.in_flight.push(*request);
                if self.all_sent.len() < 4096 {
                    self.all_sent.push(*request);
                }
            }
            Output::CancelHttp { request } => self.in_flight.retain(|r| r != request),
            Output::Spawn { child, env, .. } => {
                assert!(!self.children.contains(child), "child id {child:?} reused");
                self.children.push(*child);
                for (k, v) in env {
                    if k == "PIZAUTH_MSG" {
                        self.check_no_secret(v);
                    }
                }
            }
            Output::Kill { child } => {
                assert!(self.children.contains(child), "kill of unknown {child:?}");
            }
            Output::ReadConfig => self.config_wanted = true,
            // The harness's listeners come with a fingerprint: nothing is left to make.
            Output::MakeCertificate => panic!("asked for a certificate the listener has"),
            Output::Exit => self.exited = true,
            Output::AnswerRedirect { .. } => (),
        }
    }

    /// A token handed out must be one the harness installed, before its expiry.
    fn check_token(&self, token: &str) {
        match self.expiries.get(token) {
            Some(expires) => assert!(
                self.now.boot < *expires,
                "handed out a token {} ms after it expired",
                self.now.boot.saturating_since(*expires).as_millis()
            ),
            None => panic!("handed out a token that no response or restore installed"),
        }
    }

    fn check_no_secret(&self, text: &str) {
        for s in &self.secrets {
            if text.contains(s.as_str()) && !contains(&self.heard, s.as_bytes()) {
                panic!("a secret reached a message: {text}");
            }
        }
    }

    /// Records the expiries a `restore` request may install: the latest bound wins.
    fn note_restore(&mut self, bytes: &[u8]) {
        let Ok(Request::Restore { dump }) = Request::decode(bytes) else {
            return;
        };
        let Ok(dump) = Dump::decode(dump.as_str()) else {
            return;
        };
        for a in dump.accounts.values() {
            let expires = self.now.boot_at(a.expires);
            self.note_expiry(a.access_token.as_str(), expires);
        }
    }

    fn note_expiry(&mut self, token: &str, expires: Instant) {
        let e = self
            .expiries
            .entry(token.to_owned())
            .or_insert(Instant::from_millis(0));
        *e = (*e).max(expires);
    }

    /// Moves both clocks forward by `d`, firing each deadline on the way at its own time.
    pub fn advance(&mut self, d: Duration) -> Vec<Output> {
        let target = self.now.boot + d;
        let mut out = Vec::new();
        // Bounded: a server that keeps asking to be woken at once is caught by the
        // invariant that `poll_timeout` is after now; this only stops a slow crawl.
        for _ in 0..10_000 {
            match self.server.poll_timeout() {
                Some(t) if t <= target && !self.exited => {
                    self.set_boot(t);
                    out.extend(self.handle(Input::Tick));
                }
                _ => break,
            }
        }
        self.set_boot(target);
        out
    }

    /// A suspend: both clocks jump by `d` with no tick on the way, then one tick.
    pub fn suspend(&mut self, d: Duration) -> Vec<Output> {
        let target = self.now.boot + d;
        self.set_boot(target);
        self.handle(Input::Tick)
    }

    /// Steps the wall clock alone by `ms` (the user or NTP set it); boot time goes on.
    pub fn step_wall(&mut self, ms: i64) {
        self.now.wall =
            WallTime::from_unix_millis(self.now.wall.as_unix_millis().saturating_add(ms));
    }

    fn set_boot(&mut self, t: Instant) {
        self.now = self.now.advanced_to(t);
    }

    /// Sends raw bytes on the control socket as a new client; returns the client and
    /// its reply, if it got one at once.
    pub fn ask_bytes(&mut self, bytes: Vec<u8>) -> (ClientId, Option<Reply>, Vec<Output>) {
        let client = ClientId(self.next_client);
        self.next_client += 1;
        let out = self.handle(Input::ClientAsked {
            client,
            bytes: Secret::new(bytes),
        });
        let mut reply = None;
        let mut rest = Vec::new();
        for o in out {
            match o {
                Output::Reply {
                    client: c,
                    reply: r,
                } if c == client => reply = Some(r),
                other => rest.push(other),
            }
        }
        (client, reply, rest)
    }

    /// Sends a request as a new client; returns its reply, if it got one at once.
    pub fn ask(&mut self, request: &Request) -> Option<Reply> {
        self.ask_bytes(request.encode()).1
    }

    /// `show -u NAME` (with the URL).
    pub fn show(&mut self, name: &str) -> Option<Reply> {
        self.ask(&Request::Show {
            account: name.to_owned(),
            with_url: true,
            wait: None,
        })
    }

    /// `status`: every account's state (which must come sorted by name).
    pub fn status(&mut self) -> Vec<AccountStatus> {
        match self.ask(&Request::Status) {
            Some(Reply::Status { accounts }) => {
                assert!(
                    accounts.windows(2).all(|w| w[0].name < w[1].name),
                    "status is not sorted by name"
                );
                accounts
            }
            None if self.exited => Vec::new(),
            other => panic!("status answered {other:?}"),
        }
    }

    /// The state of account `name`, per `status`.
    pub fn state_of(&mut self, name: &str) -> Option<TokenStatus> {
        self.status()
            .into_iter()
            .find(|a| a.name == name)
            .map(|a| a.state)
    }

    /// `dump`, decoded: a dump the server writes must read back.
    pub fn dump(&mut self) -> Dump {
        match self.ask(&Request::Dump) {
            Some(Reply::Dump { dump }) => match Dump::decode(dump.as_str()) {
                Ok(d) => d,
                Err(e) => panic!("the server's own dump does not decode: {e}"),
            },
            None if self.exited => Dump::new(),
            other => panic!("dump answered {other:?}"),
        }
    }

    /// The `state` of account `name`'s pending authorisation request, if it has one.
    pub fn pending_state(&mut self, name: &str) -> Option<String> {
        match self.state_of(name)? {
            TokenStatus::Pending { url: Some(url), .. } => state_param(&url),
            _ => None,
        }
    }

    /// A redirect request arrives on a new connection; returns the answer (exactly one,
    /// with a status the core may use) and the other outputs.
    pub fn redirect(
        &mut self,
        scheme: Scheme,
        request: RedirectRequest,
    ) -> (RedirectAnswer, Vec<Output>) {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let out = self.handle(Input::RedirectReceived {
            conn,
            scheme,
            request,
        });
        let mut answer = None;
        let mut rest = Vec::new();
        for o in out {
            match o {
                Output::AnswerRedirect {
                    conn: c,
                    status,
                    body,
                } if c == conn => {
                    assert!(answer.is_none(), "two answers to one redirect");
                    assert!(
                        REDIRECT_STATUSES.contains(&status),
                        "redirect answered with status {status}"
                    );
                    answer = Some(RedirectAnswer { status, body });
                }
                Output::AnswerRedirect { .. } => panic!("answer on a connection not asking"),
                other => rest.push(other),
            }
        }
        match answer {
            Some(a) => (a, rest),
            None if self.exited => (
                RedirectAnswer {
                    status: 0,
                    body: String::new(),
                },
                rest,
            ),
            None => panic!("redirect not answered"),
        }
    }

    /// A browser brings `target` to the HTTP listener with a proper `Host`.
    pub fn redirect_to(&mut self, target: &str) -> (RedirectAnswer, Vec<Output>) {
        self.redirect(
            Scheme::Http,
            RedirectRequest {
                method: "GET".into(),
                target: target.into(),
                host: Some("localhost:8765".into()),
            },
        )
    }

    /// Answers request `id` (which must be in flight) with `response`. A token the
    /// response carries is recorded with its expiry: the send time plus `expires_in`
    /// (`refresh_at_least` when absent).
    pub fn respond(&mut self, id: RequestId, response: HttpResponse) -> Vec<Output> {
        if let Ok(t) = oauth::parse_token_response(&response) {
            let sent = self.sent.get(&id).copied().unwrap_or(self.now.boot);
            let lifetime = t.expires_in.unwrap_or(DEFAULT_REFRESH_AT_LEAST);
            self.note_expiry(t.access_token.as_str(), sent + lifetime);
        }
        self.in_flight.retain(|r| *r != id);
        self.handle(Input::HttpResponded {
            request: id,
            response,
        })
    }

    /// Answers request `id` with `status` and a body made by the harness.
    pub fn respond_json(&mut self, id: RequestId, status: u16, body: &str) -> Vec<Output> {
        self.respond(
            id,
            HttpResponse {
                status,
                headers: vec![("content-type".into(), "application/json".into())],
                body: Secret::new(body.as_bytes().to_vec()),
            },
        )
    }

    /// Reports that request `id` failed without an answer.
    pub fn fail(&mut self, id: RequestId, error: TransportError) -> Vec<Output> {
        self.in_flight.retain(|r| *r != id);
        self.handle(Input::HttpFailed { request: id, error })
    }

    /// Reports that `child` (which must have been spawned) ended.
    pub fn exit(&mut self, child: ChildId, status: ExitStatus) -> Vec<Output> {
        self.children.retain(|c| *c != child);
        // A client_secret_cmd's output: harmless for the other purposes.
        let stdout = Some(Secret::new(b"CLIENT-SECRET-CMD-0123456789\n".to_vec()));
        self.handle(Input::ChildExited {
            child,
            status,
            stdout,
        })
    }

    /// Hands the server the config text it asked for (or a read error).
    pub fn config_read(&mut self, result: Result<String, String>) -> Vec<Output> {
        self.config_wanted = false;
        self.handle(Input::ConfigRead { result })
    }

    /// Runs the whole authorisation-code flow for `name`: `show`, the browser's redirect
    /// (to the path and query of the redirect URI in the authorisation URL) with a fresh
    /// code, and the exchange answered with `body` (HTTP 200).
    pub fn authorise(&mut self, name: &str, body: &str) -> Vec<Output> {
        self.show(name);
        let Some(target) = self.redirect_target(name, "code=") else {
            return Vec::new();
        };
        let code = self.fresh_token("CODE");
        let (answer, _) = self.redirect_to(&format!("{target}{code}"));
        if answer.status != 200 {
            return Vec::new();
        }
        match self.in_flight.last().copied() {
            Some(id) => self.respond_json(id, 200, body),
            None => Vec::new(),
        }
    }

    /// The request target a browser would bring for account `name`'s pending request:
    /// the redirect URI's path and query, then `state` and then `tail` (for example
    /// `code=` or `error=access_denied`), or `None` if it is not pending.
    pub fn redirect_target(&mut self, name: &str, tail: &str) -> Option<String> {
        let url = match self.state_of(name)? {
            TokenStatus::Pending { url: Some(url), .. } => url,
            _ => return None,
        };
        let state = state_param(&url)?;
        let redirect = Url::parse(&url)
            .ok()?
            .query_pairs()
            .find(|(k, _)| k == "redirect_uri")
            .and_then(|(_, v)| Url::parse(&v).ok())?;
        let mut target = redirect.path().to_owned();
        target.push('?');
        if let Some(q) = redirect.query() {
            target.push_str(q);
            target.push('&');
        }
        target.push_str("state=");
        target.extend(url::form_urlencoded::byte_serialize(state.as_bytes()));
        target.push('&');
        target.push_str(tail);
        Some(target)
    }

    /// Adds a secret to look for in messages.
    pub fn add_secret(&mut self, secret: &str) {
        self.secrets.push(secret.to_owned());
    }

    /// Lets everything under way finish: the config is read (`config_text`), children
    /// exit, time passes (a day and more, so every `show -w` and request times out).
    /// Then every client that asked must have had its one reply.
    pub fn settle(&mut self, config_text: &str) {
        for _ in 0..8 {
            if self.exited {
                return;
            }
            if self.config_wanted {
                self.config_read(Ok(config_text.to_owned()));
            }
            for child in self.children.clone() {
                self.exit(child, ExitStatus::Code(0));
            }
            self.advance(Duration::from_secs(4 * 3600));
        }
        if self.exited {
            return;
        }
        for (client, count) in &self.replies {
            assert_eq!(*count, 1, "{client:?} never got its reply");
        }
    }
}

/// The `state` query parameter of an authorisation URL.
pub fn state_param(url: &str) -> Option<String> {
    Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
