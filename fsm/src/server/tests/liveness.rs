//! The liveness property (issue 12): over random configurations (every flow; `issuer`
//! with and without explicit endpoints; secrets from commands) and random interleavings
//! of client requests, redirects, provider answers (success, transient, permanent,
//! garbage, slow, none) and time, once the provider answers well and the user completes,
//! every account holds a token within a bounded simulated time. `Sim` checks the
//! invariants after every step, the liveness invariant and the request-rate bound among
//! them.

use proptest::prelude::*;

use super::*;
use crate::server::fill_secret;
use crate::server::secret_commands;

/// How one account is configured.
#[derive(Clone, Debug)]
struct Shape {
    /// 0: code, 1: device, 2: client credentials.
    flow: u8,
    /// 0: explicit endpoints; 1: `issuer` only; 2: `issuer` and explicit `auth_uri` /
    /// `device_auth_uri`.
    endpoints: u8,
    /// `refresh_retry`, seconds.
    retry: u64,
    /// The client secret comes from `client_secret_cmd`.
    secret_cmd: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    (0..3u8, 0..3u8, 1..90u64, any::<bool>()).prop_map(|(flow, endpoints, retry, secret_cmd)| {
        Shape {
            flow,
            endpoints,
            retry,
            secret_cmd,
        }
    })
}

const ISSUER: &str = "https://id.example/";
const METADATA: &str = r#"{"issuer":"https://id.example/","authorization_endpoint":"https://id.example/authorize","token_endpoint":"https://id.example/token","device_authorization_endpoint":"https://id.example/device","revocation_endpoint":"https://id.example/revoke"}"#;

fn config_text(shapes: &[Shape]) -> String {
    let mut text = String::from(
        "auth_notify_cmd = \"notify\";\nerror_notify_cmd = \"error\";\ntransient_error_if_cmd = \"check\";\n",
    );
    for (i, s) in shapes.iter().enumerate() {
        let mut body = String::new();
        let flow = ["code", "device", "client_credentials"][s.flow as usize];
        body.push_str(&format!("auth_flow = {flow}; client_id = \"client-{i}\"; "));
        body.push_str(&format!("refresh_retry = {}s; ", s.retry));
        match s.endpoints {
            0 => body.push_str(
                "auth_uri = \"https://p.example/authorize\"; token_uri = \"https://p.example/token\"; \
                 device_auth_uri = \"https://p.example/device\"; ",
            ),
            1 => body.push_str(&format!("issuer = \"{ISSUER}\"; ")),
            _ => body.push_str(&format!(
                "issuer = \"{ISSUER}\"; auth_uri = \"https://p.example/authorize\"; \
                 device_auth_uri = \"https://p.example/device\"; "
            )),
        }
        if s.secret_cmd {
            body.push_str("client_secret_cmd = \"secret\"; ");
        } else {
            body.push_str("client_secret = \"CLIENT-SECRET\"; ");
        }
        text.push_str(&format!("account \"a{i}\" {{ {body}}}\n"));
    }
    text
}

/// A provider's answer to one request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Good,
    /// 503, with a `Retry-After` of this many seconds if not 0.
    Transient(u16),
    Refused,
    Garbage,
    ExpiresNow,
    BadToken,
    /// A transport error.
    Broken,
}

#[derive(Clone, Debug)]
enum Op {
    Show(usize),
    ShowWait(usize),
    Refresh(usize),
    Revoke(usize),
    Redirect(usize, bool),
    Answer(usize, Answer),
    Exit(usize, i32),
    Advance(u64),
    Reload,
}

fn op() -> impl Strategy<Value = Op> {
    let answer = prop_oneof![
        3 => Just(Answer::Good),
        1 => (0..400u16).prop_map(Answer::Transient),
        1 => Just(Answer::Refused),
        1 => Just(Answer::Garbage),
        1 => Just(Answer::ExpiresNow),
        1 => Just(Answer::BadToken),
        1 => Just(Answer::Broken),
    ];
    prop_oneof![
        3 => (0..4usize).prop_map(Op::Show),
        1 => (0..4usize).prop_map(Op::ShowWait),
        1 => (0..4usize).prop_map(Op::Refresh),
        1 => (0..4usize).prop_map(Op::Revoke),
        2 => (0..4usize, any::<bool>()).prop_map(|(a, e)| Op::Redirect(a, e)),
        4 => (0..4usize, answer).prop_map(|(i, a)| Op::Answer(i, a)),
        1 => (0..4usize, 0..2i32).prop_map(|(i, c)| Op::Exit(i, c)),
        // Up to ten minutes: slow answers, and none (a request left to time out).
        3 => (0..600_000u64).prop_map(Op::Advance),
        1 => Just(Op::Reload),
    ]
}

/// What a request asks, for the test's own check of the request-rate bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A refresh, a client-credentials request or a request for device codes: what an
    /// account sends without the user's new consent.
    Unprompted,
    /// A device-flow poll (paced by the provider's interval).
    Poll,
    /// Anything else (a code exchange, discovery, revocation).
    Other,
}

/// A request in flight, as the test saw it go out.
struct Sent {
    id: RequestId,
    http: HttpRequest,
    at: Instant,
    account: Option<super::super::AccountId>,
    kind: Kind,
}

struct World {
    sim: Sim,
    text: String,
    names: Vec<String>,
    in_flight: Vec<Sent>,
    /// The test's own record of the request-rate bound, independent of the server's:
    /// per account, the earliest instant an unprompted request may go out after an
    /// answer that gave no usable token.
    quiet: std::collections::BTreeMap<super::super::AccountId, Instant>,
    children: Vec<(ChildId, bool)>,
    next_client: u64,
    codes: u64,
}

impl World {
    fn new(shapes: &[Shape]) -> World {
        let text = config_text(shapes);
        let mut config = Config::parse(&text, "pizauth.conf")
            .expect("the generated config parses")
            .config;
        // At start the driver runs the client_secret_cmds.
        for c in secret_commands(&config) {
            fill_secret(
                &mut config,
                c.index,
                ExitStatus::Code(0),
                Some(Secret::new(b"CLIENT-SECRET\n".to_vec())),
            )
            .expect("a secret");
        }
        let names = config.accounts.iter().map(|a| a.name.clone()).collect();
        World {
            sim: Sim::new(config),
            text,
            names,
            in_flight: Vec::new(),
            quiet: std::collections::BTreeMap::new(),
            children: Vec::new(),
            next_client: 10_000,
            codes: 0,
        }
    }

    fn note(&mut self, out: Vec<Output>) {
        for o in out {
            match o {
                Output::SendHttp { request, http } => {
                    let account = self.sim.server.requests.get(&request).copied();
                    let grant = form(&http)
                        .into_iter()
                        .find(|(k, _)| k == "grant_type")
                        .map(|(_, v)| v);
                    let kind = match grant.as_deref() {
                        Some("refresh_token" | "client_credentials") => Kind::Unprompted,
                        Some(g) if g.ends_with("device_code") => Kind::Poll,
                        _ if http.url.path().ends_with("/device") => Kind::Unprompted,
                        _ => Kind::Other,
                    };
                    // Outputs of an `advance` are seen at its end: the state knows when a
                    // request still in flight went out (one already gone was cancelled).
                    let at = account
                        .and_then(|a| self.sim.server.accounts[&a].state.in_flight())
                        .filter(|f| f.request == request)
                        .map_or(self.sim.now.boot, |f| f.sent);
                    if let (Kind::Unprompted, Some(a)) = (kind, account)
                        && let Some(quiet) = self.quiet.get(&a)
                    {
                        assert!(
                            at >= *quiet,
                            "asked the provider {:?} before refresh_retry after an answer with no usable token",
                            quiet.saturating_since(at)
                        );
                    }
                    self.in_flight.push(Sent {
                        id: request,
                        http,
                        at,
                        account,
                        kind,
                    });
                }
                Output::CancelHttp { request } => self.in_flight.retain(|s| s.id != request),
                Output::Spawn { child, capture, .. } => self.children.push((child, capture)),
                _ => (),
            }
        }
    }

    fn name(&self, a: usize) -> String {
        self.names[a % self.names.len()].clone()
    }

    fn answer(&mut self, i: usize, answer: Answer) {
        if self.in_flight.is_empty() {
            return;
        }
        let sent = self.in_flight.remove(i % self.in_flight.len());
        let (id, http) = (sent.id, &sent.http);
        if let Some(a) = sent.account {
            // Only a refusal ends a device flow; other odd answers to a poll are retried at
            // the provider's interval.
            let no_token = match (answer, sent.kind) {
                (Answer::Good | Answer::Broken, _) => false,
                (Answer::Refused, Kind::Poll) => true,
                (_, Kind::Poll) => false,
                _ => true,
            };
            if no_token {
                let retry = self.sim.server.accounts[&a]
                    .config
                    .timing
                    .refresh_retry
                    .max(secs(1));
                let extra = match answer {
                    Answer::Transient(s) => secs(u64::from(s)),
                    _ => Duration::ZERO,
                };
                self.quiet.insert(a, sent.at + retry.max(extra));
            } else if matches!(answer, Answer::Good) {
                self.quiet.remove(&a);
            }
        }
        let token = r#"{"access_token":"TOKEN-1","token_type":"bearer","expires_in":3600,"refresh_token":"REFRESH-1"}"#;
        let out = match answer {
            Answer::Good => {
                let path = http.url.path();
                let body = if path.contains(".well-known") {
                    METADATA
                } else if path.ends_with("/device") {
                    r#"{"device_code":"DEVICE-CODE","user_code":"U-1","verification_uri":"https://p.example/v","interval":5,"expires_in":600}"#
                } else if path.ends_with("/revoke") {
                    ""
                } else {
                    token
                };
                self.sim.respond(id, 200, body)
            }
            Answer::Transient(0) => self.sim.respond(id, 503, ""),
            Answer::Transient(s) => self.sim.respond_with_headers(
                id,
                503,
                vec![("Retry-After".into(), s.to_string())],
                "",
            ),
            Answer::Refused => self.sim.respond(id, 400, r#"{"error":"invalid_grant"}"#),
            Answer::Garbage => self.sim.respond(id, 200, "<html>maintenance</html>"),
            Answer::ExpiresNow => self.sim.respond(
                id,
                200,
                r#"{"access_token":"TOKEN-0","token_type":"bearer","expires_in":0}"#,
            ),
            Answer::BadToken => self.sim.respond(
                id,
                200,
                "{\"access_token\":\"TOKEN\\u001b[0m\",\"token_type\":\"bearer\"}",
            ),
            Answer::Broken => self.sim.fail_http(id, TransportErrorKind::Connect),
        };
        self.note(out);
    }

    fn exit(&mut self, i: usize, code: i32) {
        if self.children.is_empty() {
            return;
        }
        let (child, capture) = self.children.remove(i % self.children.len());
        let out = self.sim.input(Input::ChildExited {
            child,
            status: ExitStatus::Code(code),
            stdout: capture.then(|| Secret::new(b"CLIENT-SECRET\n".to_vec())),
        });
        self.note(out);
    }

    fn pending_state(&self, name: &str) -> Option<String> {
        let id = self.sim.server.by_name.get(name)?;
        match &self.sim.server.accounts.get(id)?.state {
            super::super::account::State::Pending(p) => Some(p.state.as_str().to_owned()),
            _ => None,
        }
    }

    fn has_token(&self, name: &str) -> bool {
        let Some(id) = self.sim.server.by_name.get(name) else {
            return false;
        };
        self.sim.server.accounts[id]
            .state
            .tokens()
            .is_some_and(|t| t.expires > self.sim.now.boot)
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Show(a) => {
                let name = self.name(a);
                let out = self.sim.show(&name).1;
                self.note(out);
            }
            Op::ShowWait(a) => {
                self.next_client += 1;
                let out = self.sim.send(
                    ClientId(self.next_client),
                    Request::Show {
                        account: self.name(a),
                        with_url: false,
                        wait: Some(30),
                    },
                );
                self.note(out);
            }
            Op::Refresh(a) => {
                let out = self
                    .sim
                    .ask(Request::Refresh {
                        account: self.name(a),
                        with_url: false,
                    })
                    .1;
                self.note(out);
            }
            Op::Revoke(a) => {
                // The reply may wait for the provider.
                self.next_client += 1;
                let out = self.sim.send(
                    ClientId(self.next_client),
                    Request::Revoke {
                        account: self.name(a),
                    },
                );
                self.note(out);
            }
            Op::Redirect(a, error) => {
                let name = self.name(a);
                if let Some(state) = self.pending_state(&name) {
                    self.codes += 1;
                    let target = if error {
                        format!("/?state={state}&error=access_denied")
                    } else {
                        format!("/?state={state}&code=CODE-{}", self.codes)
                    };
                    let out = self.sim.redirect(&target).2;
                    self.note(out);
                }
            }
            Op::Answer(i, answer) => self.answer(i, answer),
            Op::Exit(i, code) => self.exit(i, code),
            Op::Advance(ms) => {
                let out = self.sim.advance(Duration::from_millis(ms));
                self.note(out);
            }
            Op::Reload => {
                let mut out = self.sim.input(Input::ReloadAsked);
                out.extend(self.sim.input(Input::ConfigRead {
                    result: Ok(self.text.clone()),
                }));
                self.note(out);
            }
        }
    }

    /// From now on the provider answers well and the user completes every
    /// authorisation. Returns how long until every account holds a token.
    fn settle(&mut self, bound: Duration) -> Result<Duration, String> {
        let start = self.sim.elapsed();
        loop {
            for _ in 0..64 {
                if self.in_flight.is_empty() && self.children.is_empty() {
                    break;
                }
                if !self.in_flight.is_empty() {
                    self.answer(0, Answer::Good);
                }
                if !self.children.is_empty() {
                    self.exit(0, 0);
                }
            }
            for a in 0..self.names.len() {
                let name = self.name(a);
                if self.has_token(&name) {
                    continue;
                }
                self.step(Op::Redirect(a, false));
                if !self.has_token(&name) {
                    self.step(Op::Show(a));
                }
            }
            let waiting: Vec<String> = self
                .names
                .iter()
                .filter(|n| !self.has_token(n))
                .cloned()
                .collect();
            if waiting.is_empty() && self.in_flight.is_empty() {
                return Ok(self.sim.elapsed() - start);
            }
            if self.sim.elapsed() - start > bound {
                let states: Vec<String> = waiting
                    .iter()
                    .map(|n| {
                        let id = self.sim.server.by_name[n];
                        format!("{n}: {}", self.sim.server.accounts[&id].state.name())
                    })
                    .collect();
                return Err(format!("no token within {bound:?}: {states:?}"));
            }
            if self.in_flight.is_empty() && self.children.is_empty() {
                let out = self.sim.advance(secs(1));
                self.note(out);
            }
        }
    }
}

/// Simulated time within which every account must hold a token once the provider
/// answers well: the longest hold (a `Retry-After` of 400 s) plus room for the
/// longest `refresh_retry` (90 s) twice and the device flow's polling.
const BOUND: Duration = Duration::from_secs(400 + 2 * 90 + 60);

proptest! {
    // proptest's default: 256 cases, or as many as `PROPTEST_CASES` says.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn every_account_gets_a_token_once_the_provider_answers_well(
        shapes in proptest::collection::vec(shape(), 1..5),
        ops in proptest::collection::vec(op(), 0..50),
    ) {
        let mut w = World::new(&shapes);
        for op in ops {
            w.step(op);
        }
        let took = w.settle(BOUND);
        prop_assert!(took.is_ok(), "{}\n{}", took.as_ref().unwrap_err(), w.text);
    }
}
