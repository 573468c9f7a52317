//! `Input::ClientGone`: a `show -w` client that hung up is forgotten by the core (its
//! deadline goes, and nothing is ever sent to it), while other waiters are still served.

use pizauth_fsm::event::{ClientId, Entropy, Input, Output};
use pizauth_fsm::{Config, Instant, Listeners, Now, Secret, Server, WallTime};

struct Fixed;

impl Entropy for Fixed {
    fn fill(&mut self, buf: &mut [u8]) {
        buf.fill(7);
    }
}

fn at(ms: u64) -> Now {
    Now {
        boot: Instant::from_millis(ms),
        wall: WallTime::from_unix_millis(1_800_000_000_000 + ms as i64),
    }
}

fn ask(server: &mut Server, now: Now, client: u64, request: &str) -> Vec<Output> {
    let bytes = Secret::new(request.as_bytes().to_vec());
    let input = Input::ClientAsked {
        client: ClientId(client),
        bytes,
    };
    server.handle(now, input, &mut Fixed);
    std::iter::from_fn(|| server.poll_output()).collect()
}

fn replies_to(out: &[Output], client: u64) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Reply { client: c, .. } if *c == ClientId(client)))
        .count()
}

#[test]
fn a_waiter_that_hung_up_is_forgotten() {
    let config = "account \"work\" {\n    auth_uri = \"https://e.com/a\";\n    \
                  token_uri = \"https://e.com/t\";\n    client_id = \"c\";\n}\n";
    let parsed = Config::parse(config, "test.conf").expect("config");
    let listeners = Listeners {
        http_port: Some(8765),
        https_port: None,
        https_fingerprint: None,
    };
    let mut server = Server::new(parsed.config, listeners);
    server.handle(at(0), Input::Started, &mut Fixed);
    while server.poll_output().is_some() {}
    let show =
        |wait: u32| format!(r#"{{"cmd":"show","account":"work","with_url":false,"wait":{wait}}}"#);
    // Two clients wait: one for 5 s, one for 7 s.
    let out = ask(&mut server, at(0), 1, &show(5));
    assert_eq!(replies_to(&out, 1), 0, "{out:?}");
    ask(&mut server, at(0), 2, &show(7));
    assert_eq!(server.poll_timeout(), Some(Instant::from_millis(5000)));
    // The first hangs up: its deadline goes, the other's stays.
    server.handle(
        at(100),
        Input::ClientGone {
            client: ClientId(1),
        },
        &mut Fixed,
    );
    let out: Vec<Output> = std::iter::from_fn(|| server.poll_output()).collect();
    assert_eq!(replies_to(&out, 1), 0, "{out:?}");
    assert_eq!(server.poll_timeout(), Some(Instant::from_millis(7000)));
    // At the end of the first wait, nothing is sent to it; the second is answered at its.
    server.handle(at(5000), Input::Tick, &mut Fixed);
    let out: Vec<Output> = std::iter::from_fn(|| server.poll_output()).collect();
    assert_eq!(replies_to(&out, 1), 0, "{out:?}");
    server.handle(at(7000), Input::Tick, &mut Fixed);
    let out: Vec<Output> = std::iter::from_fn(|| server.poll_output()).collect();
    assert_eq!(
        (replies_to(&out, 1), replies_to(&out, 2)),
        (0, 1),
        "{out:?}"
    );
}
