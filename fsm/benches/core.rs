//! The pure core on its own, in process: how many inputs per second it handles with
//! 10,000 accounts, and what `poll_timeout()` costs as accounts grow (it must not grow
//! linearly: the daemon asks for it on every turn of its loop).
//!
//! Run with `cargo bench -p pizauth-fsm --bench core`. Set `PIZAUTH_BENCH_QUICK=1` for
//! small counts while developing. Every loop is bounded in count and in time; nothing here
//! does I/O but printing.

// The harness reads the wall clock and its own settings; the core it measures never does.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant as Clock};

use pizauth_fsm::config::Config;
use pizauth_fsm::event::{
    ClientId, ConnId, Entropy, HttpResponse, Input, Output, RedirectRequest, RequestId, Scheme,
};
use pizauth_fsm::protocol::Reply;
use pizauth_fsm::{Instant, Listeners, Now, Secret, Server, WallTime};

/// A seeded xorshift generator: the same run every time.
struct Rng(u64);

impl Entropy for Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

/// A server with `n` accounts, all authorised (each has a refresh deadline armed), and a
/// clock. Accounts are `a0000000`, `a0000001`, ...
struct Bench {
    server: Server,
    now: Now,
    rng: Rng,
    next_client: u64,
    next_conn: u64,
}

fn name(i: usize) -> String {
    format!("a{i:07}")
}

impl Bench {
    fn new(n: usize) -> Bench {
        // One account parsed from the config language, copied `n` times under new names:
        // parsing 100,000 accounts would time the parser, not the core.
        let text = "account \"template\" {\n  auth_uri = \"https://auth.example/authorize\";\n  token_uri = \"https://auth.example/token\";\n  client_id = \"template\";\n  scopes = [\"mail\", \"offline_access\"];\n}\n";
        let mut config: Config = match Config::parse(text, "bench.conf") {
            Ok(p) => p.config,
            Err(d) => panic!("bench config: {d:?}"),
        };
        let template = config.accounts.pop().expect("one account");
        config.accounts = (0..n)
            .map(|i| {
                let mut a = template.clone();
                a.name = name(i);
                a.client_id = format!("client-{i}");
                a
            })
            .collect();
        let listeners = Listeners {
            http_port: Some(8765),
            https_port: None,
            https_fingerprint: None,
        };
        let mut b = Bench {
            server: Server::new(config, listeners),
            now: Now {
                boot: Instant::from_millis(1_000_000),
                wall: WallTime::from_unix_millis(1_800_000_000_000),
            },
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            next_client: 1,
            next_conn: 1,
        };
        b.input(Input::Started);
        for i in 0..n {
            b.authorise(i);
        }
        b
    }

    /// Hands one input to the core and drains what it produced.
    fn input(&mut self, input: Input) -> Vec<Output> {
        self.server.handle(self.now, input, &mut self.rng);
        let mut out = Vec::new();
        while let Some(o) = self.server.poll_output() {
            out.push(o);
        }
        out
    }

    /// The same, counting the outputs instead of keeping them (the measured loops).
    fn input_drop(&mut self, input: Input) -> usize {
        self.server.handle(self.now, input, &mut self.rng);
        let mut n = 0;
        while let Some(o) = self.server.poll_output() {
            black_box(&o);
            n += 1;
        }
        n
    }

    fn ask(&mut self, json: String) -> Input {
        let client = ClientId(self.next_client);
        self.next_client += 1;
        Input::ClientAsked {
            client,
            bytes: Secret::new(json.into_bytes()),
        }
    }

    fn show(&mut self, account: &str) -> Input {
        self.ask(format!(
            "{{\"cmd\":\"show\",\"account\":\"{account}\",\"with_url\":true}}"
        ))
    }

    fn redirect(&mut self, target: String) -> Input {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        Input::RedirectReceived {
            conn,
            scheme: Scheme::Http,
            request: RedirectRequest {
                method: "GET".into(),
                target,
                host: Some("localhost:8765".into()),
            },
        }
    }

    /// The whole authorisation-code flow for account `i`, answered with a token valid a day.
    fn authorise(&mut self, i: usize) {
        let show = self.show(&name(i));
        let url = self
            .input(show)
            .into_iter()
            .find_map(|o| match o {
                Output::Reply {
                    reply: Reply::Error { message },
                    ..
                } => message.rsplit(' ').next().map(str::to_owned),
                _ => None,
            })
            .expect("an authorisation URL");
        let state = url
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("state="))
            .expect("state in the URL")
            .to_owned();
        let redirect = self.redirect(format!("/?state={state}&code=code-{i}"));
        let request = self
            .input(redirect)
            .into_iter()
            .find_map(|o| match o {
                Output::SendHttp { request, .. } => Some(request),
                _ => None,
            })
            .expect("a code exchange");
        self.respond(request, i, "g");
    }

    fn respond(&mut self, request: RequestId, i: usize, kind: &str) -> usize {
        let body = format!(
            "{{\"access_token\":\"at-{i}-{kind}-0123456789abcdef0123456789abcdef\",\"token_type\":\"Bearer\",\"expires_in\":86400,\"refresh_token\":\"rt-{i}\"}}"
        );
        self.input_drop(Input::HttpResponded {
            request,
            response: HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: Secret::new(body.into_bytes()),
            },
        })
    }
}

/// What the core bench measured.
pub struct CoreFigures {
    /// Accounts in the server of the throughput measurements.
    pub accounts: usize,
    /// Authorisation flows (show, redirect, code exchange answered) per second.
    pub flows_per_s: f64,
    /// `show` requests of active accounts handled per second.
    pub show_per_s: f64,
    /// Inputs of the mix handled per second.
    pub mix_per_s: f64,
    /// (accounts, ns per `poll_timeout()` call).
    pub poll_timeout_ns: Vec<(usize, f64)>,
}

impl CoreFigures {
    /// How much slower `poll_timeout()` is with the most accounts than with the fewest.
    pub fn poll_timeout_growth(&self) -> f64 {
        match (self.poll_timeout_ns.first(), self.poll_timeout_ns.last()) {
            (Some((_, a)), Some((_, b))) => b / a,
            _ => f64::NAN,
        }
    }
}

/// Runs every measurement; `quick` makes each short (for development).
pub fn measure(quick: bool) -> CoreFigures {
    let accounts = 10_000;
    let budget = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };

    let t0 = Clock::now();
    let mut b = Bench::new(accounts);
    let flows_per_s = accounts as f64 / t0.elapsed().as_secs_f64();

    // `show` of active accounts, round robin.
    let names: Vec<String> = (0..accounts).map(name).collect();
    let (count, elapsed) = timed_loop(budget, 5_000_000, |k| {
        let input = b.show(&names[k % accounts]);
        b.input_drop(input);
    });
    let show_per_s = count as f64 / elapsed.as_secs_f64();

    // A mix: 70% show of an active account, 10% show of an unknown account, 10% a
    // redirect matching no request, 10% a refresh (the request and its answer: 2 inputs).
    let mut inputs = 0usize;
    let (_, elapsed) = timed_loop(budget, 5_000_000, |k| {
        let i = k % accounts;
        match k % 10 {
            0 => {
                let input = b.show("nobody");
                b.input_drop(input);
                inputs += 1;
            }
            1 => {
                let input = b.redirect(format!("/?state=unknown{k}&code=x"));
                b.input_drop(input);
                inputs += 1;
            }
            2 => {
                let input = b.ask(format!(
                    "{{\"cmd\":\"refresh\",\"account\":\"{}\",\"with_url\":false}}",
                    names[i]
                ));
                let request = b.input(input).into_iter().find_map(|o| match o {
                    Output::SendHttp { request, .. } => Some(request),
                    _ => None,
                });
                inputs += 1;
                if let Some(request) = request {
                    b.respond(request, i, "r");
                    inputs += 1;
                }
            }
            _ => {
                let input = b.show(&names[i]);
                b.input_drop(input);
                inputs += 1;
            }
        }
    });
    let mix_per_s = inputs as f64 / elapsed.as_secs_f64();
    drop(b);

    // poll_timeout() as accounts grow, every account with a deadline armed.
    let sizes: &[usize] = if quick {
        &[10, 100, 1_000, 10_000]
    } else {
        &[10, 100, 1_000, 10_000, 100_000]
    };
    let mut poll_timeout_ns = Vec::new();
    for &n in sizes {
        let b = Bench::new(n);
        assert!(b.server.poll_timeout().is_some(), "deadlines are armed");
        // The fastest of 8 rounds: a call takes nanoseconds, so one preemption in a
        // single long round (this VM's other core is busy) would multiply it.
        let fastest = (0..8)
            .map(|_| {
                let (count, elapsed) = timed_loop(budget / 8, 250_000, |_| {
                    black_box(black_box(&b.server).poll_timeout());
                });
                elapsed.as_secs_f64() * 1e9 / count as f64
            })
            .fold(f64::INFINITY, f64::min);
        poll_timeout_ns.push((n, fastest));
    }
    CoreFigures {
        accounts,
        flows_per_s,
        show_per_s,
        mix_per_s,
        poll_timeout_ns,
    }
}

/// `cargo bench -p pizauth-fsm --bench core` prints the figures (the `figures` bench of
/// the root package includes them in its table too).
#[allow(dead_code)]
fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    if !std::env::args().any(|a| a == "--bench") {
        println!("core: measurements run with `cargo bench -p pizauth-fsm --bench core`");
        return;
    }
    let quick = std::env::var_os("PIZAUTH_BENCH_QUICK").is_some_and(|v| v != "0");
    println!(
        "pizauth-fsm core bench ({})",
        if quick { "QUICK" } else { "full" }
    );
    let f = measure(quick);
    let each = |per_s: f64| 1e6 / per_s;
    println!(
        "  authorisation flows, {} accounts: {:>10.0} /s  ({:.2} us each)",
        f.accounts,
        f.flows_per_s,
        each(f.flows_per_s)
    );
    println!(
        "  show of active accounts:           {:>10.0} inputs/s  ({:.2} us each)",
        f.show_per_s,
        each(f.show_per_s)
    );
    println!(
        "  mix (show/unknown/redirect/refresh): {:>8.0} inputs/s  ({:.2} us each)",
        f.mix_per_s,
        each(f.mix_per_s)
    );
    println!("  poll_timeout() with a deadline armed for every account:");
    for (n, ns) in &f.poll_timeout_ns {
        println!("    {n:>7} accounts: {ns:>7.2} ns per call");
    }
    let growth = f.poll_timeout_growth();
    println!(
        "    {growth:.2}x slower with the most accounts: {}",
        if growth < 10.0 {
            "ok (logarithmic, not linear)"
        } else {
            "MISS (grows with the accounts)"
        }
    );
}

/// Runs `f(k)` for k = 0, 1, ... until `max` calls or `budget` has passed (checked every
/// 256 calls); returns the calls made and the time taken.
fn timed_loop(budget: Duration, max: usize, mut f: impl FnMut(usize)) -> (usize, Duration) {
    let t0 = Clock::now();
    let mut k = 0;
    while k < max {
        f(k);
        k += 1;
        if k % 256 == 0 && t0.elapsed() >= budget {
            break;
        }
    }
    (k, t0.elapsed())
}
