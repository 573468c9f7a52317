//! The hand-made seed inputs of the core's fuzz targets (`control`, `restore`, `core`),
//! written by code so that dumps come from the real encoder and fingerprints from the real
//! config. The files in fuzz/corpus/TARGET/seed-* must equal what this code makes (a
//! test fails otherwise); `PIZAUTH_WRITE_SEEDS=1 cargo test -p pizauth-fsm --test
//! fuzz_seeds` rewrites them. Other tests check that the seeds reach what their names
//! promise, so a seed that stops reaching its flow is noticed.

// Writing the corpus is I/O, which fsm/clippy.toml bans for the core itself, not its tests.
#![allow(clippy::disallowed_methods)]

use pizauth_fsm::Secret;
use pizauth_fsm::dump::{Dump, DumpedAccount, fingerprint};
use pizauth_fsm::fuzzing::{self, Harness, T0_WALL, standard_config};
use pizauth_fsm::protocol::{Request, TokenStatus};
use pizauth_fsm::time::WallTime;

#[path = "../../fuzz/replay.rs"]
mod replay;

/// Seeds for `control`: every request kind, and near misses.
fn control_seeds() -> Seeds {
    let show = |account: &str, with_url, wait| Request::Show {
        account: account.into(),
        with_url,
        wait,
    };
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("show-active", show("a", false, None).encode()),
        ("show-pending-url", show("c", true, None).encode()),
        ("show-unauthorised", show("d", true, None).encode()),
        ("show-discovery", show("f", true, None).encode()),
        ("show-client-credentials", show("e", false, None).encode()),
        ("show-unknown", show("nobody", true, None).encode()),
        ("show-wait", show("d", true, Some(30)).encode()),
        ("show-wait-max", show("c", false, Some(u32::MAX)).encode()),
        ("show-wait-active", show("a", true, Some(5)).encode()),
        (
            "refresh",
            Request::Refresh {
                account: "a".into(),
                with_url: false,
            }
            .encode(),
        ),
        (
            "refresh-unauthorised",
            Request::Refresh {
                account: "d".into(),
                with_url: true,
            }
            .encode(),
        ),
        (
            "revoke-local",
            Request::Revoke {
                account: "a".into(),
            }
            .encode(),
        ),
        (
            "revoke-remote",
            Request::Revoke {
                account: "b".into(),
            }
            .encode(),
        ),
        (
            "revoke-unknown",
            Request::Revoke {
                account: "zz".into(),
            }
            .encode(),
        ),
        ("status", Request::Status.encode()),
        ("info", Request::Info.encode()),
        ("dump", Request::Dump.encode()),
        (
            "restore",
            Request::Restore {
                dump: Harness::with_tokens_dump_text(),
            }
            .encode(),
        ),
        (
            "restore-garbage",
            Request::Restore {
                dump: Secret::new("not a dump".into()),
            }
            .encode(),
        ),
        ("reload", Request::Reload.encode()),
        ("shutdown", Request::Shutdown.encode()),
        // Near misses.
        ("near-empty", Vec::new()),
        (
            "near-truncated",
            br#"{"cmd":"show","account":"a","with_u"#.to_vec(),
        ),
        (
            "near-unknown-field",
            br#"{"cmd":"status","extra":1}"#.to_vec(),
        ),
        (
            "near-missing-field",
            br#"{"cmd":"show","account":"a"}"#.to_vec(),
        ),
        (
            "near-wrong-type",
            br#"{"cmd":"show","account":7,"with_url":true}"#.to_vec(),
        ),
        (
            "near-negative-wait",
            br#"{"cmd":"show","account":"a","with_url":true,"wait":-1}"#.to_vec(),
        ),
        ("near-unknown-cmd", br#"{"cmd":"explode"}"#.to_vec()),
        (
            "near-uppercase",
            br#"{"cmd":"SHOW","account":"a","with_url":false}"#.to_vec(),
        ),
        (
            "near-trailing",
            br#"{"cmd":"info"} {"cmd":"info"}"#.to_vec(),
        ),
        (
            "near-duplicate-key",
            br#"{"cmd":"show","account":"a","account":"b","with_url":false}"#.to_vec(),
        ),
        (
            "near-control-chars",
            "{\"cmd\":\"show\",\"account\":\"a\\u0000\\n\\u001b[31m\",\"with_url\":true}"
                .as_bytes()
                .to_vec(),
        ),
        (
            "near-unicode",
            "{\"cmd\":\"revoke\",\"account\":\"\u{e9}\u{1f600}\"}"
                .as_bytes()
                .to_vec(),
        ),
        (
            "near-not-utf8",
            b"{\"cmd\":\"show\",\"account\":\"\xff\xfe\",\"with_url\":true}".to_vec(),
        ),
        ("near-array", br#"["show","a"]"#.to_vec()),
        ("near-null", b"null".to_vec()),
        ("near-deep", [b"[".repeat(200), b"]".repeat(200)].concat()),
        (
            "near-restore-number",
            br#"{"cmd":"restore","dump":5}"#.to_vec(),
        ),
    ];
    let long = format!(
        r#"{{"cmd":"show","account":"{}","with_url":true}}"#,
        "x".repeat(5000)
    );
    seeds.push(("near-long-name", long.into_bytes()));
    seeds.into_iter().map(|(n, b)| (n.to_owned(), b)).collect()
}

/// A dumped account for `name` of the standard config, with the real fingerprint unless
/// `fingerprint_of` names another account.
fn dumped(
    name: &str,
    access: &str,
    refresh: Option<&str>,
    expires_in_s: i64,
) -> (String, DumpedAccount) {
    let config = standard_config();
    let account = config.account(name).expect("a standard account");
    (
        name.to_owned(),
        DumpedAccount {
            fingerprint: fingerprint(account),
            access_token: Secret::new(access.into()),
            refresh_token: refresh.map(|r| Secret::new(r.into())),
            obtained: WallTime::from_unix_millis(T0_WALL - 60_000),
            expires: WallTime::from_unix_millis(T0_WALL + expires_in_s * 1000),
        },
    )
}

fn dump_of(accounts: Vec<(String, DumpedAccount)>) -> String {
    let mut d = Dump::new();
    d.accounts.extend(accounts);
    d.encode().as_str().to_owned()
}

/// Seeds for `restore`: valid dumps (made with the real encoder) and near misses.
fn restore_seeds() -> Seeds {
    let install = dump_of(vec![
        dumped(
            "c",
            "RESTORED-C-0123456789",
            Some("RESTORED-RC-0123456789"),
            3600,
        ),
        dumped("d", "RESTORED-D-0123456789", None, 600),
        dumped(
            "f",
            "RESTORED-F-0123456789",
            Some("RESTORED-RF-0123456789"),
            7200,
        ),
    ]);
    let mut wrong = dumped("c", "RESTORED-C-0123456789", None, 3600);
    wrong.1.fingerprint = "0".repeat(64);
    let mut extreme = dumped("d", "RESTORED-D-0123456789", None, 0);
    extreme.1.obtained = WallTime::from_unix_millis(i64::MIN);
    extreme.1.expires = WallTime::from_unix_millis(i64::MAX);
    let seeds: Vec<(&str, String)> = vec![
        ("valid-own-dump", Harness::with_tokens_dump_text().as_str().to_owned()),
        ("valid-install-three", install.clone()),
        ("valid-expired", dump_of(vec![dumped("c", "RESTORED-C-0123456789", Some("R-0123456789"), -600)])),
        ("valid-no-refresh-expiring", dump_of(vec![dumped("f", "RESTORED-F-0123456789", None, 30)])),
        ("valid-over-active", dump_of(vec![dumped("a", "RESTORED-A-0123456789", None, 3600)])),
        ("valid-wrong-fingerprint", dump_of(vec![wrong])),
        ("valid-unknown-account", {
            let (_, a) = dumped("c", "RESTORED-X-0123456789", None, 3600);
            dump_of(vec![("nobody".to_owned(), a)])
        }),
        ("valid-extreme-times", dump_of(vec![extreme])),
        ("valid-empty", dump_of(Vec::new())),
        ("near-version-2", install.replacen("\"version\":1", "\"version\":2", 1)),
        ("near-version-string", install.replacen("\"version\":1", "\"version\":\"1\"", 1)),
        ("near-other-format", install.replacen("pizauth-dump", "pizauth-dumb", 1)),
        ("near-truncated", install[..install.len() / 2].to_owned()),
        ("near-extra-field", install.replacen('{', "{\"extra\":true,", 1)),
        ("near-missing-expires", install.replacen("\"expires\"", "\"expired\"", 1)),
        ("near-token-number", install.replacen("\"RESTORED-C-0123456789\"", "42", 1)),
        (
            "near-duplicate-account",
            install.replacen("\"accounts\":{", "\"accounts\":{\"c\":{\"fingerprint\":\"x\",\"access_token\":\"t\",\"refresh_token\":null,\"obtained\":0,\"expires\":0},", 1),
        ),
        ("near-binary-1x", "\u{1}\u{0}\u{0}\u{0}pizauth\u{0}".to_owned()),
        ("near-json-array", "[]".to_owned()),
        ("near-empty", String::new()),
    ];
    seeds
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t.into_bytes()))
        .collect()
}

/// Builds `core` inputs from named operations (see `pizauth_fsm::fuzzing::core`).
#[derive(Default)]
struct Ops(Vec<u8>);

/// Account indices in the `core` target's name table.
const A: u8 = 0;
const B: u8 = 1;
const D: u8 = 3;
const E: u8 = 4;
const F: u8 = 5;
const G: u8 = 6;

impl Ops {
    fn op(mut self, bytes: &[u8]) -> Ops {
        self.0.extend_from_slice(bytes);
        self
    }
    fn show(self, a: u8) -> Ops {
        self.op(&[0, a, 0])
    }
    fn show_wait(self, a: u8, s: u8) -> Ops {
        self.op(&[1, a, s])
    }
    fn refresh(self, a: u8) -> Ops {
        self.op(&[2, a, 0])
    }
    fn revoke(self, a: u8) -> Ops {
        self.op(&[3, a])
    }
    fn status(self) -> Ops {
        self.op(&[4])
    }
    /// A redirect: kind 0 with a code, 2 with `error=`, 3 without a code.
    fn redirect(self, a: u8, kind: u8) -> Ops {
        self.op(&[10, a, kind, 1])
    }
    /// A canned answer to the oldest request in flight: status index (0 is 200, 3 is 400,
    /// 7 is 500), body kind, and a number (expires_in is 30 times it).
    fn answer(self, status: u8, kind: u8, n: u8) -> Ops {
        self.op(&[13, 0, status, kind, n])
    }
    fn fail(self) -> Ops {
        self.op(&[15, 0, 1])
    }
    fn exit(self, code: u8) -> Ops {
        self.op(&[17, 0, code])
    }
    /// Time passes: `ms` (at most 40 minutes).
    fn advance_ms(self, ms: u32) -> Ops {
        let n = u16::try_from(ms / 37).unwrap_or(u16::MAX).to_be_bytes();
        self.op(&[18, n[0], n[1]])
    }
    fn minutes(mut self, m: u32) -> Ops {
        for _ in 0..m / 40 {
            self = self.advance_ms(40 * 60_000);
        }
        self.advance_ms((m % 40) * 60_000)
    }
    fn authorise(self, a: u8, kind: u8, n: u8) -> Ops {
        self.show(a).redirect(a, 0).answer(0, kind, n)
    }
}

/// Seeds for `core`: operation sequences that reach each flow.
fn core_seeds() -> Seeds {
    let seeds: Vec<(&str, Ops)> = vec![
        (
            "code-flow",
            Ops::default()
                .authorise(A, 0, 120)
                .show(A)
                .minutes(58)
                .advance_ms(35_000)
                .show(A)
                .answer(0, 0, 120)
                .show(A)
                .status(),
        ),
        (
            "code-flow-denied",
            Ops::default().show(B).redirect(B, 2).show(B).status(),
        ),
        (
            "code-flow-no-code",
            Ops::default().show(B).redirect(B, 3).status(),
        ),
        (
            "device-flow",
            Ops::default()
                .show(D)
                .answer(0, 6, 60)
                .minutes(1)
                .answer(0, 7, 0)
                .minutes(1)
                .answer(0, 8, 0)
                .minutes(1)
                .answer(0, 0, 100)
                .show(D),
        ),
        (
            "client-credentials",
            Ops::default()
                .show(E)
                .answer(0, 1, 0)
                .show(E)
                .minutes(100)
                .answer(0, 0, 120)
                .show(E),
        ),
        (
            "discovery",
            Ops::default()
                .show(F)
                .answer(0, 9, 0)
                .show(F)
                .redirect(F, 0)
                .answer(0, 0, 120)
                .show(F)
                .revoke(F)
                .answer(0, 1, 0),
        ),
        (
            "discovery-fails",
            Ops::default()
                .show(F)
                .answer(0, 10, 0)
                .fail()
                .show(F)
                .status(),
        ),
        (
            "refresh-transient",
            Ops::default()
                .authorise(A, 0, 120)
                .refresh(A)
                .answer(7, 4, 0)
                .advance_ms(41_000)
                .answer(8, 4, 0)
                .exit(0)
                .exit(0)
                .exit(0)
                .advance_ms(41_000)
                .answer(0, 0, 120)
                .show(A),
        ),
        (
            "refresh-gives-up",
            Ops::default()
                .authorise(A, 0, 120)
                .refresh(A)
                .answer(7, 4, 0)
                .advance_ms(41_000)
                .answer(8, 4, 0)
                .exit(2)
                .exit(2)
                .exit(2)
                .show(A),
        ),
        (
            "refresh-invalid-grant",
            Ops::default()
                .authorise(A, 0, 120)
                .refresh(A)
                .answer(3, 3, 0)
                .show(A),
        ),
        (
            "refresh-timeout",
            Ops::default()
                .authorise(A, 0, 10)
                .minutes(10)
                .show(A)
                .status(),
        ),
        (
            "show-wait",
            Ops::default()
                .show_wait(A, 60)
                .redirect(A, 0)
                .answer(0, 0, 120),
        ),
        (
            "show-wait-times-out",
            Ops::default().show_wait(D, 30).minutes(2),
        ),
        (
            "revoke-remote",
            Ops::default()
                .authorise(B, 1, 0)
                .revoke(B)
                .answer(0, 4, 0)
                .status(),
        ),
        (
            "no-refresh-token-expires",
            Ops::default().authorise(B, 2, 0).show(B).minutes(1).show(B),
        ),
        (
            "huge-expiry",
            Ops::default().authorise(A, 5, 0).minutes(200).show(A),
        ),
        (
            "reload-keeps",
            Ops::default()
                .authorise(A, 0, 120)
                .op(&[21, 0, 22, 4])
                .show(A),
        ),
        (
            "reload-changes",
            Ops::default()
                .authorise(A, 0, 120)
                .op(&[21, 1, 22, 1])
                .show(A)
                .show(G)
                .show(B),
        ),
        (
            "reload-secret-cmd",
            Ops::default().op(&[21, 0, 22, 3]).exit(0).show(E),
        ),
        (
            "reload-broken",
            Ops::default().op(&[21, 1, 22, 2, 21, 0, 23]).status(),
        ),
        (
            "reload-empty",
            Ops::default()
                .authorise(A, 0, 120)
                .refresh(A)
                .op(&[21, 1, 22, 5])
                .answer(0, 0, 1),
        ),
        (
            "dump-restore",
            Ops::default()
                .authorise(A, 0, 120)
                .op(&[6])
                .revoke(A)
                .op(&[7])
                .show(A),
        ),
        (
            "suspend",
            Ops::default()
                .authorise(A, 0, 120)
                .op(&[19, 0xff, 0xff])
                .show(A),
        ),
        (
            "wall-step",
            Ops::default()
                .authorise(A, 0, 120)
                .op(&[20, 0x80, 0x00, 6])
                .op(&[24, 26])
                .status(),
        ),
        (
            "raw-inputs",
            Ops::default()
                .op(&[9, 5, b'{', b'"', b'c', b'm', b'd'])
                .op(&[11, 0, 1, 8])
                .op(b"/?state=")
                .op(&[8, 2, b'{', b'}'])
                .op(&[14, 0, 0, 200, 2, b'{', b'}']),
        ),
        (
            "stale",
            Ops::default()
                .authorise(A, 0, 120)
                .op(&[16, 0, 12, 0])
                .show(A),
        ),
        ("shutdown", Ops::default().show(A).op(&[25, 0xff]).show(A)),
    ];
    seeds
        .into_iter()
        .map(|(n, ops)| (n.to_owned(), ops.0))
        .collect()
}

/// Named seed inputs.
type Seeds = Vec<(String, Vec<u8>)>;

fn all_seeds() -> Vec<(&'static str, Seeds)> {
    vec![
        ("control", control_seeds()),
        ("restore", restore_seeds()),
        ("core", core_seeds()),
    ]
}

#[test]
fn seed_files_are_what_this_code_makes() {
    for (target, seeds) in all_seeds() {
        replay::check_seed_files(target, &seeds);
    }
}

#[test]
fn seeds_pass_their_targets() {
    for (name, bytes) in control_seeds() {
        eprintln!("control {name}");
        fuzzing::control(&bytes);
    }
    for (name, bytes) in restore_seeds() {
        eprintln!("restore {name}");
        fuzzing::restore(&bytes);
    }
    for (name, bytes) in core_seeds() {
        eprintln!("core {name}");
        fuzzing::core(&bytes);
    }
}

#[test]
fn restore_seeds_install_what_their_names_say() {
    let mut h = Harness::with_tokens();
    let text = dump_of(vec![
        dumped("c", "RESTORED-C-0123456789", None, 3600),
        dumped("a", "RESTORED-A-0123456789", None, 3600),
    ]);
    h.ask(&Request::Restore {
        dump: Secret::new(text),
    });
    assert!(matches!(h.state_of("c"), Some(TokenStatus::Active { .. })));
    let dump = h.dump();
    assert_eq!(
        dump.accounts["c"].access_token.as_str(),
        "RESTORED-C-0123456789"
    );
    assert_eq!(
        dump.accounts["a"].access_token.as_str(),
        "TOKEN-SETUP-A-0123456789",
        "an active token is never replaced"
    );
}
