//! Timeline tests of the state machine on a simulated clock: at time t, this input;
//! expect exactly these outputs; the next deadline is d.

use std::time::Duration;

use url::Url;

use super::{Listeners, Server, Tunables};
use crate::config::{Account, Config, Flow, Timing};
use crate::event::{
    ChildId, ClientId, ConnId, Entropy, ExitStatus, HttpRequest, HttpResponse, Input, Level,
    Output, RedirectRequest, RequestId, Scheme, TransportError, TransportErrorKind,
};
use crate::protocol::{Reply, Request};
use crate::secret::Secret;
use crate::time::{Instant, Now, WallTime};

mod cases;
mod device;
mod edges;
mod endpoints;
mod flows;
mod liveness;
mod props;
mod refresh;
mod server;
mod waiting;

/// A deterministic entropy source (xorshift64*), so runs replay bit for bit.
pub struct TestRng(u64);

impl TestRng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
}

impl Entropy for TestRng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            *b = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        }
    }
}

/// Where the simulated clocks start.
pub use crate::fuzzing::{T0_BOOT, T0_WALL};

/// An account for tests, with endpoints under `https://auth.example/`.
pub fn account(name: &str) -> Account {
    Account {
        name: name.to_owned(),
        flow: Flow::Code,
        issuer: None,
        auth_uri: Some(Url::parse("https://auth.example/authorize").unwrap().into()),
        token_uri: Some(Url::parse("https://auth.example/token").unwrap().into()),
        device_auth_uri: None,
        revoke_uri: None,
        client_id: format!("client-{name}"),
        client_secret: None,
        client_secret_cmd: None,
        client_auth: None,
        scopes: vec!["mail".into(), "offline_access".into()].into(),
        auth_uri_fields: Vec::new(),
        redirect_uri: Url::parse("http://localhost/").unwrap().into(),
        redirect_uri_bare: false,
        timing: Timing::default(),
    }
}

/// A config holding `accounts` (sorted by name, as the parser guarantees).
pub fn config(mut accounts: Vec<Account>) -> Config {
    accounts.sort_by(|a, b| a.name.cmp(&b.name));
    Config {
        accounts,
        ..Config::default()
    }
}

pub fn listeners() -> Listeners {
    Listeners {
        http_port: Some(8765),
        https_port: Some(8766),
        https_fingerprint: Some("AA:BB".into()),
    }
}

/// A server on a simulated clock that checks the invariants after every step.
pub struct Sim {
    pub server: Server,
    pub now: Now,
    pub rng: TestRng,
    next_client: u64,
    /// Every output so far, in order (for whole-session checks such as secrets in logs).
    pub transcript: Vec<String>,
}

impl Sim {
    pub fn new(config: Config) -> Sim {
        Sim::with_tunables(config, Tunables::default())
    }

    pub fn with_tunables(config: Config, tunables: Tunables) -> Sim {
        Sim {
            server: Server::with_tunables(config, listeners(), tunables),
            now: Now {
                boot: Instant::from_millis(T0_BOOT),
                wall: WallTime::from_unix_millis(T0_WALL),
            },
            rng: TestRng::new(42),
            next_client: 1,
            transcript: Vec::new(),
        }
    }

    /// Milliseconds since the start of the simulation.
    pub fn elapsed(&self) -> Duration {
        self.now
            .boot
            .saturating_since(Instant::from_millis(T0_BOOT))
    }

    /// The next deadline, relative to the start of the simulation.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.server
            .poll_timeout()
            .map(|t| t.saturating_since(Instant::from_millis(T0_BOOT)))
    }

    /// Feeds one input now and returns everything it caused.
    pub fn input(&mut self, input: Input) -> Vec<Output> {
        self.server.handle(self.now, input, &mut self.rng);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        while let Some(o) = self.server.poll_output() {
            self.transcript.push(format!("{:?}", o));
            if let Output::Log { message, .. } = &o {
                self.transcript.push(message.clone());
            }
            out.push(o);
        }
        self.server.check_invariants();
        out
    }

    /// Moves both clocks forward by `d`, firing every deadline on the way at its own
    /// time, and returns all outputs.
    pub fn advance(&mut self, d: Duration) -> Vec<Output> {
        let target = self.now.boot + d;
        let mut out = Vec::new();
        for _ in 0..100_000 {
            match self.server.poll_timeout() {
                Some(t) if t <= target => {
                    self.set_boot(t);
                    out.extend(self.input(Input::Tick));
                }
                _ => break,
            }
        }
        self.set_boot(target);
        out
    }

    /// A suspend: both clocks jump by `d` with no tick on the way; then one tick.
    pub fn suspend(&mut self, d: Duration) -> Vec<Output> {
        let target = self.now.boot + d;
        self.set_boot(target);
        self.input(Input::Tick)
    }

    fn set_boot(&mut self, t: Instant) {
        self.now = self.now.advanced_to(t);
    }

    /// Sends `request` as `client`; returns everything it caused (the reply, if there is
    /// one yet, among it).
    pub fn send(&mut self, client: ClientId, request: Request) -> Vec<Output> {
        self.input(Input::ClientAsked {
            client,
            bytes: Secret::new(request.encode()),
        })
    }

    /// Sends a control request; returns the reply to it and the other outputs.
    pub fn ask(&mut self, request: Request) -> (Reply, Vec<Output>) {
        let client = ClientId(self.next_client);
        self.next_client += 1;
        let out = self.send(client, request);
        let mut reply = None;
        let mut rest = Vec::new();
        for o in out {
            match o {
                Output::Reply {
                    client: c,
                    reply: r,
                } if c == client => {
                    assert!(reply.is_none(), "two replies to one request");
                    reply = Some(r);
                }
                other => rest.push(other),
            }
        }
        (reply.expect("no reply to the request"), rest)
    }

    pub fn show(&mut self, name: &str) -> (Reply, Vec<Output>) {
        self.ask(Request::Show {
            account: name.into(),
            with_url: true,
            wait: None,
        })
    }

    /// The token `show` prints, or the error message.
    pub fn show_text(&mut self, name: &str) -> Result<String, String> {
        match self.show(name).0 {
            Reply::Token { token } => Ok(token.as_str().to_owned()),
            Reply::Error { message } => Err(message),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// A browser GET on the HTTP redirect listener; returns (status, body, outputs).
    pub fn redirect(&mut self, target: &str) -> (u16, String, Vec<Output>) {
        let out = self.input(Input::RedirectReceived {
            conn: ConnId(77),
            scheme: Scheme::Http,
            request: RedirectRequest {
                method: "GET".into(),
                target: target.into(),
                host: Some("localhost:8765".into()),
            },
        });
        let mut answer = None;
        let mut rest = Vec::new();
        for o in out {
            match o {
                Output::AnswerRedirect {
                    conn: ConnId(77),
                    status,
                    body,
                } => answer = Some((status, body)),
                other => rest.push(other),
            }
        }
        let (status, body) = answer.expect("redirect not answered");
        (status, body, rest)
    }

    /// Answers request `id` with `status` and a JSON body.
    pub fn respond(&mut self, id: RequestId, status: u16, body: &str) -> Vec<Output> {
        self.respond_with_headers(id, status, Vec::new(), body)
    }

    pub fn respond_with_headers(
        &mut self,
        id: RequestId,
        status: u16,
        headers: Vec<(String, String)>,
        body: &str,
    ) -> Vec<Output> {
        self.input(Input::HttpResponded {
            request: id,
            response: HttpResponse {
                status,
                headers,
                body: Secret::new(body.as_bytes().to_vec()),
            },
        })
    }

    pub fn fail_http(&mut self, id: RequestId, kind: TransportErrorKind) -> Vec<Output> {
        self.input(Input::HttpFailed {
            request: id,
            error: TransportError {
                kind,
                message: "connection refused".into(),
            },
        })
    }

    pub fn exit(&mut self, child: ChildId, code: i32) -> Vec<Output> {
        self.input(Input::ChildExited {
            child,
            status: ExitStatus::Code(code),
            stdout: None,
        })
    }

    /// Runs the whole authorisation flow for `name`: `show`, the browser's redirect, the
    /// code exchange answered with `access`/`refresh` tokens valid for `expires_in` s.
    /// Returns the outputs after the exchange.
    pub fn authorise(
        &mut self,
        name: &str,
        access: &str,
        refresh: Option<&str>,
        expires_in: u64,
    ) -> Vec<Output> {
        let url = match self.show(name).0 {
            Reply::Error { message } => message
                .rsplit(' ')
                .next()
                .map(str::to_owned)
                .expect("a URL"),
            other => panic!("expected no token, got {other:?}"),
        };
        let state = query_param(&url, "state").expect("state in URL");
        let (status, _, out) = self.redirect(&format!("/?state={state}&code=the-code"));
        assert_eq!(status, 200);
        let (id, _) = single_http(&out);
        let mut body = format!(
            r#"{{"access_token":"{access}","token_type":"bearer","expires_in":{expires_in}"#
        );
        if let Some(r) = refresh {
            body.push_str(&format!(r#","refresh_token":"{r}""#));
        }
        body.push('}');
        self.respond(id, 200, &body)
    }
}

/// The value of query parameter `key` in `url`.
pub fn query_param(url: &str, key: &str) -> Option<String> {
    Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The HTTP requests among `out`.
pub fn http_requests(out: &[Output]) -> Vec<(RequestId, &HttpRequest)> {
    out.iter()
        .filter_map(|o| match o {
            Output::SendHttp { request, http } => Some((*request, http)),
            _ => None,
        })
        .collect()
}

/// The one HTTP request among `out`.
pub fn single_http(out: &[Output]) -> (RequestId, &HttpRequest) {
    let reqs = http_requests(out);
    assert_eq!(reqs.len(), 1, "expected one HTTP request in {out:?}");
    reqs[0]
}

/// The form fields of a request body.
pub fn form(http: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(http.body.expose())
        .into_owned()
        .collect()
}

/// The spawned commands among `out`: (child, command, env).
/// A spawned command: (child, command, env).
pub type Spawned<'a> = (ChildId, &'a str, &'a [(String, String)]);

pub fn spawns(out: &[Output]) -> Vec<Spawned<'_>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Spawn {
                child,
                command,
                env,
                ..
            } => Some((*child, command.as_str(), env.as_slice())),
            _ => None,
        })
        .collect()
}

/// The value of environment variable `key` in `env`.
pub fn env_of<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Outputs that are not logs (logs are checked separately).
pub fn effects(out: Vec<Output>) -> Vec<Output> {
    out.into_iter()
        .filter(|o| !matches!(o, Output::Log { .. }))
        .collect()
}

/// Log messages at `level` or more important.
pub fn logs(out: &[Output], level: Level) -> Vec<&str> {
    out.iter()
        .filter_map(|o| match o {
            Output::Log { level: l, message } if *l <= level => Some(message.as_str()),
            _ => None,
        })
        .collect()
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
