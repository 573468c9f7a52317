//! Property tests: random sequences of inputs and time steps, with the invariants of
//! DESIGN.md checked after every step (by `Sim`), plus determinism and secrecy.

use proptest::prelude::*;

use super::*;

const NAMES: [&str; 5] = ["a", "b", "c", "d", "i"];

#[derive(Clone, Debug)]
enum Op {
    Show(usize, bool),
    ShowWait(usize, u8),
    Refresh(usize),
    Revoke(usize),
    Status,
    DumpRestore,
    GoodRedirect(usize, bool),
    BadRedirect(String),
    Respond(usize, u16, u8),
    Fail(usize),
    Exit(usize, i32),
    Advance(u64),
    Suspend(u64),
    Reload(u8),
    Garbage(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..5usize, any::<bool>()).prop_map(|(a, u)| Op::Show(a, u)),
        (0..5usize, 0..60u8).prop_map(|(a, w)| Op::ShowWait(a, w)),
        (0..5usize).prop_map(Op::Refresh),
        (0..5usize).prop_map(Op::Revoke),
        Just(Op::Status),
        Just(Op::DumpRestore),
        (0..5usize, any::<bool>()).prop_map(|(a, e)| Op::GoodRedirect(a, e)),
        "[ -~]{0,40}".prop_map(Op::BadRedirect),
        (
            0..4usize,
            prop_oneof![Just(200u16), Just(400), Just(429), Just(500)],
            0..BODIES.len() as u8
        )
            .prop_map(|(i, s, b)| Op::Respond(i, s, b)),
        (0..4usize).prop_map(Op::Fail),
        (0..4usize, -1..3i32).prop_map(|(i, c)| Op::Exit(i, c)),
        (0..4000u64).prop_map(Op::Advance),
        (0..200_000u64).prop_map(Op::Suspend),
        (0..3u8).prop_map(Op::Reload),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Garbage),
    ]
}

const BODIES: [&str; 9] = [
    r#"{"access_token":"TOKEN-A","token_type":"bearer","expires_in":120,"refresh_token":"REFRESH-A"}"#,
    r#"{"access_token":"TOKEN-B","token_type":"Bearer"}"#,
    r#"{"access_token":"TOKEN-C","token_type":"bearer","expires_in":0}"#,
    r#"{"error":"invalid_grant"}"#,
    "garbage",
    r#"{"access_token":"TOKEN-D","token_type":"bearer","expires_in":99999999999999}"#,
    r#"{"device_code":"DEVICE-CODE","user_code":"U","verification_uri":"https://p.example/v","interval":1,"expires_in":30}"#,
    r#"{"error":"authorization_pending"}"#,
    r#"{"issuer":"https://p.example/","authorization_endpoint":"https://p.example/a","token_endpoint":"https://p.example/t","device_authorization_endpoint":"https://p.example/d","revocation_endpoint":"https://p.example/r"}"#,
];

fn reload_text(v: u8) -> String {
    let acct = |name: &str, id: &str| {
        format!(
            "account \"{name}\" {{ auth_uri = \"https://p.example/a\"; token_uri = \"https://p.example/t\"; client_id = \"{id}\"; client_secret = \"CLIENT-SECRET\"; refresh_retry = 5s; }}\n"
        )
    };
    match v {
        0 => format!("{}{}{}", acct("a", "x"), acct("b", "x"), acct("c", "x")),
        1 => format!(
            "auth_notify_cmd = \"n\";\ntoken_event_cmd = \"e\";\ntransient_error_if_cmd = \"t\";\n{}{}",
            acct("a", "y"),
            acct("c", "x")
        ),
        _ => "account \"a\" { broken".to_owned(),
    }
}

/// A simulation that remembers requests in flight and children running.
struct World {
    sim: Sim,
    in_flight: Vec<RequestId>,
    children: Vec<ChildId>,
    next_client: u64,
}

impl World {
    fn new() -> World {
        let cfg = Config::parse(&reload_text(1), "pizauth.conf")
            .unwrap()
            .config;
        World {
            sim: Sim::with_tunables(
                cfg,
                Tunables {
                    check_every: 2,
                    max_children: 3,
                    ..Tunables::default()
                },
            ),
            in_flight: Vec::new(),
            children: Vec::new(),
            next_client: 0,
        }
    }

    fn note(&mut self, out: &[Output]) {
        for o in out {
            match o {
                Output::SendHttp { request, .. } => self.in_flight.push(*request),
                Output::CancelHttp { request } => self.in_flight.retain(|r| r != request),
                Output::Spawn { child, .. } => self.children.push(*child),
                _ => (),
            }
        }
    }

    fn step(&mut self, op: Op) {
        let out = match op {
            Op::Show(a, with_url) => {
                let (reply, out) = self.sim.ask(Request::Show {
                    account: NAMES[a].into(),
                    with_url,
                    wait: None,
                });
                if let Reply::Token { token } = &reply {
                    self.assert_unexpired(NAMES[a], token.as_str());
                }
                out
            }
            Op::ShowWait(a, w) => self.sim.input(Input::ClientAsked {
                // Client ids are unique, as the driver makes them.
                client: {
                    self.next_client += 1;
                    ClientId(1_000_000 + self.next_client)
                },
                bytes: Secret::new(
                    Request::Show {
                        account: NAMES[a].into(),
                        with_url: true,
                        wait: Some(u32::from(w)),
                    }
                    .encode(),
                ),
            }),
            Op::Refresh(a) => {
                self.sim
                    .ask(Request::Refresh {
                        account: NAMES[a].into(),
                        with_url: true,
                    })
                    .1
            }
            Op::Revoke(a) => {
                self.sim
                    .ask(Request::Revoke {
                        account: NAMES[a].into(),
                    })
                    .1
            }
            Op::Status => self.sim.ask(Request::Status).1,
            Op::DumpRestore => {
                let (reply, mut out) = self.sim.ask(Request::Dump);
                if let Reply::Dump { dump } = reply {
                    out.extend(self.sim.ask(Request::Restore { dump }).1);
                }
                out
            }
            Op::GoodRedirect(a, error) => {
                let url = match self
                    .sim
                    .server
                    .by_name
                    .get(NAMES[a])
                    .and_then(|id| self.sim.server.accounts.get(id))
                {
                    Some(slot) => match &slot.state {
                        super::super::account::State::Pending(p) => {
                            Some(p.state.as_str().to_owned())
                        }
                        _ => None,
                    },
                    None => None,
                };
                match url {
                    Some(state) if error => {
                        self.sim
                            .redirect(&format!("/?state={state}&error=denied"))
                            .2
                    }
                    Some(state) => self.sim.redirect(&format!("/?state={state}&code=CODE")).2,
                    None => Vec::new(),
                }
            }
            Op::BadRedirect(target) => self.sim.redirect(&target).2,
            Op::Respond(i, status, b) => match self.take_request(i) {
                Some(id) => self.sim.respond(id, status, BODIES[b as usize]),
                None => Vec::new(),
            },
            Op::Fail(i) => match self.take_request(i) {
                Some(id) => self.sim.fail_http(id, TransportErrorKind::Connect),
                None => Vec::new(),
            },
            Op::Exit(i, code) => {
                if self.children.is_empty() {
                    Vec::new()
                } else {
                    let c = self.children.remove(i % self.children.len());
                    let status = if code < 0 {
                        ExitStatus::Signal(9)
                    } else {
                        ExitStatus::Code(code)
                    };
                    self.sim.input(Input::ChildExited {
                        child: c,
                        status,
                        stdout: None,
                    })
                }
            }
            Op::Advance(ms) => self.sim.advance(Duration::from_millis(ms * 37)),
            Op::Suspend(s) => self.sim.suspend(Duration::from_secs(s)),
            Op::Reload(v) => {
                let mut out = self.sim.input(Input::ReloadAsked);
                out.extend(self.sim.input(Input::ConfigRead {
                    result: Ok(reload_text(v)),
                }));
                out
            }
            Op::Garbage(bytes) => self.sim.input(Input::ClientAsked {
                client: ClientId(1),
                bytes: Secret::new(bytes),
            }),
        };
        self.note(&out);
    }

    fn take_request(&mut self, i: usize) -> Option<RequestId> {
        if self.in_flight.is_empty() {
            return None;
        }
        Some(self.in_flight.remove(i % self.in_flight.len()))
    }

    fn assert_unexpired(&self, name: &str, token: &str) {
        let id = self.sim.server.by_name[name];
        let tokens = self.sim.server.accounts[&id]
            .state
            .tokens()
            .expect("token handed out without tokens");
        assert_eq!(tokens.access.as_str(), token);
        assert!(
            tokens.expires > self.sim.now.boot,
            "handed out an expired token"
        );
    }
}

proptest! {
    // proptest's default: 256 cases, or as many as `PROPTEST_CASES` says.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn invariants_hold_under_random_sequences(ops in proptest::collection::vec(op(), 1..60)) {
        let mut w = World::new();
        for op in ops {
            w.step(op);
        }
    }

    #[test]
    fn no_secret_reaches_a_log(ops in proptest::collection::vec(op(), 1..60)) {
        let mut w = World::new();
        for op in ops {
            w.step(op);
        }
        for line in w.sim.transcript.iter().filter(|l| !l.starts_with("Reply")) {
            for secret in ["TOKEN-", "REFRESH-", "CLIENT-SECRET", "CODE", "DEVICE-CODE"] {
                prop_assert!(!line.contains(secret), "{} in {}", secret, line);
            }
        }
    }
}

#[test]
fn same_inputs_and_entropy_give_the_same_transcript() {
    let run = || {
        let mut w = World::new();
        let ops = [
            Op::Show(0, true),
            Op::Show(1, false),
            Op::GoodRedirect(0, false),
            Op::Respond(0, 200, 0),
            Op::Advance(3000),
            Op::Respond(0, 500, 0),
            Op::Exit(0, 0),
            Op::Reload(0),
            Op::DumpRestore,
            Op::Status,
            Op::Suspend(100_000),
            Op::Show(2, true),
        ];
        for op in ops {
            w.step(op);
        }
        w.sim.transcript
    };
    let (one, two) = (run(), run());
    assert!(one.len() > 20);
    assert_eq!(one, two);
}

#[test]
fn a_whole_session_logs_no_token_or_secret() {
    let mut c = Config::parse(&reload_text(1), "pizauth.conf")
        .unwrap()
        .config;
    c.error_notify_cmd = None;
    let mut sim = Sim::new(c);
    sim.authorise("a", "TOKEN-1", Some("REFRESH-1"), 100);
    let out = sim.advance(secs(10));
    let (id, _) = single_http(&out);
    sim.respond(id, 400, r#"{"error":"invalid_grant"}"#);
    sim.authorise("a", "TOKEN-2", Some("REFRESH-2"), 100);
    sim.ask(Request::Dump);
    sim.ask(Request::Revoke {
        account: "a".into(),
    });
    for line in sim.transcript.iter().filter(|l| !l.starts_with("Reply")) {
        for secret in ["TOKEN-", "REFRESH-", "CLIENT-SECRET", "the-code"] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
    }
}
