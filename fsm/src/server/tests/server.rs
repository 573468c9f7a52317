//! Control requests, commands, token events, reload, dump and restore (SPEC.md 3, 6, 7).

use super::*;
use crate::protocol::TokenStatus;

fn status(sim: &mut Sim) -> Vec<(String, TokenStatus)> {
    match sim.ask(Request::Status).0 {
        Reply::Status { accounts } => accounts.into_iter().map(|a| (a.name, a.state)).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_accounts_and_garbage_get_clear_errors() {
    let mut sim = Sim::new(config(vec![account("work")]));
    assert_eq!(sim.show_text("nope").unwrap_err(), "No account 'nope'");
    for bytes in [&b"garbage"[..], b"", b"{\"cmd\":\"show\"}", b"\xff"] {
        let out = sim.input(Input::ClientAsked {
            client: ClientId(9),
            bytes: Secret::new(bytes.to_vec()),
        });
        assert!(
            out.iter().any(|o| matches!(o, Output::Reply { client: ClientId(9), reply: Reply::Error { message } } if message.starts_with("malformed request"))),
            "{out:?}"
        );
    }
    // Still serving: `work` starts its flow as if nothing had happened.
    assert!(sim.show_text("work").unwrap_err().contains("with URL"));
}

#[test]
fn status_reports_every_state_sorted_by_name() {
    let mut sim = Sim::new(config(vec![account("b"), account("a"), account("c")]));
    sim.authorise("a", "A", Some("R"), 3600);
    sim.advance(secs(60));
    sim.show("b");
    let st = status(&mut sim);
    let names: Vec<&str> = st.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(
        st[0].1,
        TokenStatus::Active {
            obtained: WallTime::from_unix_millis(T0_WALL),
            expires: WallTime::from_unix_millis(T0_WALL + 3_600_000),
        }
    );
    assert_eq!(
        st[1].1,
        TokenStatus::Pending {
            last_notification: WallTime::from_unix_millis(T0_WALL + 60_000),
            url: Some(
                sim.show_text("b")
                    .unwrap_err()
                    .rsplit(' ')
                    .next()
                    .unwrap()
                    .to_owned()
            ),
            user_code: None,
        }
    );
    assert_eq!(st[2].1, TokenStatus::NoToken { last_error: None });
}

#[test]
fn info_reports_the_listeners() {
    let mut sim = Sim::new(config(vec![]));
    let (reply, _) = sim.ask(Request::Info);
    assert!(matches!(
        reply,
        Reply::Info { http_port: Some(8765), https_port: Some(8766), https_fingerprint: Some(ref f) } if f == "AA:BB"
    ));
}

#[test]
fn info_waits_for_the_certificate_made_when_first_needed() {
    let mut sim = Sim::new(config(vec![]));
    sim.server.listeners.https_fingerprint = None;
    let info = |sim: &mut Sim, client: u64| {
        sim.input(Input::ClientAsked {
            client: ClientId(client),
            bytes: Secret::new(Request::Info.encode()),
        })
    };
    // Two clients ask before the certificate exists: it is asked for once, and neither
    // is answered yet.
    let out = info(&mut sim, 901);
    assert!(matches!(out[..], [Output::MakeCertificate]), "{out:?}");
    assert!(info(&mut sim, 902).is_empty());
    let out = sim.input(Input::CertificateMade {
        fingerprint: Ok("CC:DD".into()),
    });
    let answered: Vec<u64> = out
        .iter()
        .map(|o| match o {
            Output::Reply {
                client,
                reply:
                    Reply::Info {
                        https_fingerprint: Some(f),
                        https_port: Some(8766),
                        ..
                    },
            } if f == "CC:DD" => client.0,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(answered, [901, 902]);
    // From then on `info` answers at once.
    let (reply, out) = sim.ask(Request::Info);
    assert!(out.is_empty());
    assert!(matches!(reply, Reply::Info { https_fingerprint: Some(ref f), .. } if f == "CC:DD"));
}

#[test]
fn a_certificate_that_cannot_be_made_is_an_error_and_asked_for_again() {
    let mut sim = Sim::new(config(vec![]));
    sim.server.listeners.https_fingerprint = None;
    let out = sim.send(ClientId(901), Request::Info);
    assert!(matches!(out[..], [Output::MakeCertificate]));
    let out = sim.input(Input::CertificateMade {
        fingerprint: Err("no randomness".into()),
    });
    assert_eq!(
        logs(&out, Level::Error),
        ["cannot make the HTTPS listener's certificate: no randomness"]
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Reply { client: ClientId(901), reply: Reply::Error { message } }
            if message == "cannot make the HTTPS listener's certificate: no randomness"
    )));
    let out = sim.send(ClientId(902), Request::Info);
    assert!(matches!(out[..], [Output::MakeCertificate]));
}

#[test]
fn without_an_https_listener_info_never_asks_for_a_certificate() {
    let mut sim = Sim::new(config(vec![]));
    sim.server.listeners.https_port = None;
    sim.server.listeners.https_fingerprint = None;
    let (reply, out) = sim.ask(Request::Info);
    assert!(out.is_empty());
    assert!(matches!(
        reply,
        Reply::Info {
            http_port: Some(8765),
            https_port: None,
            https_fingerprint: None
        }
    ));
}

#[test]
fn shutdown_replies_then_exits_and_stops_everything() {
    let mut sim = Sim::new(config(vec![account("a")]));
    sim.authorise("a", "A", Some("R"), 3600);
    let (reply, out) = sim.ask(Request::Shutdown);
    assert!(matches!(reply, Reply::Done));
    assert!(out.iter().any(|o| matches!(o, Output::Exit)));
    assert_eq!(sim.server.poll_timeout(), None);
    let out = sim.input(Input::ShutdownAsked);
    assert!(out.is_empty());
}

/// Regression: a notification command that never ended outlived the server, since only
/// the server kills commands at their time limit. Shutting down now kills every running
/// command that has a limit, and leaves `startup_cmd` (which has none) alone.
#[test]
fn shutdown_kills_the_commands_that_have_a_time_limit() {
    let mut c = config(vec![account("a")]);
    c.auth_notify_cmd = Some("notify".into());
    c.startup_cmd = Some("startup".into());
    let mut sim = Sim::new(c);
    let started = spawns(&sim.input(Input::Started))[0].0;
    let (_, out) = sim.show("a");
    let notify = spawns(&out)[0].0;
    let out = sim.input(Input::ShutdownAsked);
    let kills: Vec<ChildId> = out
        .iter()
        .filter_map(|o| match o {
            Output::Kill { child } => Some(*child),
            _ => None,
        })
        .collect();
    assert_eq!(kills, [notify]);
    assert_ne!(notify, started);
    assert!(matches!(out.last(), Some(Output::Exit)));
}

#[test]
fn revoke_forgets_tokens_cancels_work_and_drops_stale_answers() {
    let mut c = config(vec![account("a")]);
    c.token_event_cmd = Some("ev".into());
    let mut sim = Sim::new(c);
    let out = sim.authorise("a", "A", Some("R"), 3600);
    sim.exit(spawns(&out)[0].0, 0);
    let (_, out) = sim.ask(Request::Refresh {
        account: "a".into(),
        with_url: true,
    });
    let (id, _) = single_http(&out);
    let (reply, out) = sim.ask(Request::Revoke {
        account: "a".into(),
    });
    assert!(matches!(reply, Reply::Done));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::CancelHttp { request } if *request == id))
    );
    let sp = spawns(&out);
    assert_eq!(env_of(sp[0].2, "PIZAUTH_EVENT"), Some("token_revoked"));
    sim.exit(sp[0].0, 0);
    let out = sim.respond(id, 200, r#"{"access_token":"NEW","token_type":"bearer"}"#);
    assert!(effects(out).is_empty());
    assert_eq!(
        status(&mut sim)[0].1,
        TokenStatus::NoToken { last_error: None }
    );
    assert_eq!(sim.next_deadline(), None);
    // Revoking a pending request forgets it too.
    let url = sim.show_text("a").unwrap_err();
    sim.ask(Request::Revoke {
        account: "a".into(),
    });
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    let (status, _, _) = sim.redirect(&format!("/?state={state}&code=c"));
    assert_eq!(status, 200);
    assert!(matches!(sim.show_text("a"), Err(m) if m != url));
}

#[test]
fn token_events_run_one_at_a_time_in_order() {
    let mut c = config(vec![account("a"), account("b")]);
    c.token_event_cmd = Some("ev".into());
    let mut sim = Sim::new(c);
    let out = sim.authorise("a", "A", Some("R"), 3600);
    let sp = spawns(&out);
    assert_eq!(sp.len(), 1);
    let first = sp[0].0;
    assert_eq!(env_of(sp[0].2, "PIZAUTH_ACCOUNT"), Some("a"));
    assert_eq!(env_of(sp[0].2, "PIZAUTH_EVENT"), Some("token_new"));
    // Two more events while the first runs: nothing starts yet.
    let out = sim.authorise("b", "B", Some("R"), 3600);
    assert!(spawns(&out).is_empty());
    let (_, out) = sim.ask(Request::Revoke {
        account: "a".into(),
    });
    assert!(spawns(&out).is_empty());
    let out = sim.exit(first, 0);
    let sp = spawns(&out);
    assert_eq!(
        (
            env_of(sp[0].2, "PIZAUTH_ACCOUNT"),
            env_of(sp[0].2, "PIZAUTH_EVENT")
        ),
        (Some("b"), Some("token_new"))
    );
    let next = sp[0].0;
    // A hung event command is killed after 10 s and the queue moves on.
    let out = sim.advance(secs(10));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Kill { child } if *child == next))
    );
    let out = sim.input(Input::ChildExited {
        child: next,
        status: ExitStatus::Signal(9),
        stdout: None,
    });
    let sp = spawns(&out);
    assert_eq!(
        (
            env_of(sp[0].2, "PIZAUTH_ACCOUNT"),
            env_of(sp[0].2, "PIZAUTH_EVENT")
        ),
        (Some("a"), Some("token_revoked"))
    );
}

#[test]
fn startup_cmd_runs_once_started() {
    let mut c = config(vec![]);
    c.startup_cmd = Some("pizauth restore < ~/.pizauth.dump".into());
    let mut sim = Sim::new(c);
    let out = sim.input(Input::Started);
    assert_eq!(spawns(&out)[0].1, "pizauth restore < ~/.pizauth.dump");
    // It has no timeout.
    assert_eq!(sim.next_deadline(), None);
}

#[test]
fn children_beyond_the_limit_wait_their_turn() {
    let names: Vec<String> = (0..5).map(|i| format!("acct{i}")).collect();
    let mut c = config(names.iter().map(|n| account(n)).collect());
    c.auth_notify_cmd = Some("notify".into());
    let tunables = Tunables {
        max_children: 2,
        ..Tunables::default()
    };
    let mut sim = Sim::with_tunables(c, tunables);
    let mut started = Vec::new();
    for n in &names {
        let (_, out) = sim.show(n);
        started.extend(spawns(&out).into_iter().map(|s| s.0));
    }
    assert_eq!(started.len(), 2);
    let out = sim.exit(started[0], 0);
    assert_eq!(spawns(&out).len(), 1);
}

#[test]
fn dump_and_restore_move_tokens_between_servers() {
    let mut a = account("a");
    a.client_secret = Some(Secret::new("CLIENTSECRET".into()));
    let cfg = config(vec![a, account("b"), account("c")]);
    let mut one = Sim::new(cfg.clone());
    one.authorise("a", "ATA", Some("RTA"), 3600);
    one.authorise("b", "ATB", None, 3600);
    let (reply, _) = one.ask(Request::Dump);
    let Reply::Dump { dump } = reply else {
        panic!()
    };
    assert!(
        !dump.as_str().contains("CLIENTSECRET"),
        "the client secret is never dumped"
    );
    assert!(dump.as_str().contains("ATA"));

    let mut two = Sim::new(cfg.clone());
    two.advance(secs(100));
    // Malformed input changes nothing.
    let (reply, _) = two.ask(Request::Restore {
        dump: Secret::new("{\"format\":\"pizauth-dump\",\"version\":1,\"accounts\":".into()),
    });
    assert!(matches!(reply, Reply::Error { .. }));
    assert!(two.show_text("a").is_err());
    // b is already pending, c has nothing in the dump.
    two.show("b");
    let (reply, out) = two.ask(Request::Restore { dump: dump.clone() });
    assert!(matches!(reply, Reply::Done), "{reply:?}");
    assert!(logs(&out, Level::Info).contains(&"restore: 2 accounts restored, 0 skipped"));
    assert_eq!(two.show_text("a").unwrap(), "ATA");
    assert_eq!(two.show_text("b").unwrap(), "ATB");
    // The refresh schedule follows the dumped times: due 3510 s after the first server
    // got the token (both simulations share a clock origin).
    let out = two.advance(secs(3510 - 100));
    assert_eq!(form(single_http(&out).1)[1].1, "RTA");

    // An account that holds a token keeps it; one whose options changed is skipped.
    let mut changed = cfg.clone();
    changed.accounts[1].client_id = "other".into();
    let mut three = Sim::new(changed);
    three.authorise("a", "KEEP", Some("R"), 3600);
    let (_, out) = three.ask(Request::Restore { dump });
    assert!(logs(&out, Level::Info).contains(&"restore: 0 accounts restored, 2 skipped"));
    assert_eq!(three.show_text("a").unwrap(), "KEEP");
    assert!(three.show_text("b").is_err());
}

fn reload_with(sim: &mut Sim, text: &str) -> Reply {
    let (reply_none, out) = {
        let client = ClientId(500);
        let out = sim.send(client, Request::Reload);
        (out.iter().any(|o| matches!(o, Output::Reply { .. })), out)
    };
    assert!(!reply_none, "reload replies only after the config is read");
    assert!(out.iter().any(|o| matches!(o, Output::ReadConfig)));
    let out = sim.input(Input::ConfigRead {
        result: Ok(text.to_owned()),
    });
    out.into_iter()
        .find_map(|o| match o {
            Output::Reply {
                client: ClientId(500),
                reply,
            } => Some(reply),
            _ => None,
        })
        .expect("a reply to reload")
}

const BASE: &str = r#"
account "changed" { auth_uri = "https://auth.example/authorize"; token_uri = "https://auth.example/token"; client_id = "one"; }
account "removed" { auth_uri = "https://auth.example/authorize"; token_uri = "https://auth.example/token"; client_id = "x"; }
account "same" { auth_uri = "https://auth.example/authorize"; token_uri = "https://auth.example/token"; client_id = "x"; }
"#;

#[test]
fn reload_keeps_exactly_the_unchanged_accounts() {
    let cfg = Config::parse(BASE, "pizauth.conf").unwrap().config;
    let mut sim = Sim::new(cfg);
    sim.authorise("changed", "C", Some("R"), 3600);
    sim.authorise("same", "S", Some("R"), 3600);
    sim.authorise("removed", "X", Some("R"), 3600);
    let (_, out) = sim.ask(Request::Refresh {
        account: "removed".into(),
        with_url: true,
    });
    let (in_flight, _) = single_http(&out);

    // A broken file changes nothing.
    let reply = reload_with(&mut sim, "account \"same\" { nonsense }");
    assert!(
        matches!(reply, Reply::Error { ref message } if message.contains("pizauth.conf:1:")),
        "{reply:?}"
    );
    assert_eq!(sim.show_text("removed").unwrap(), "X");

    let new = r#"
account "changed" { auth_uri = "https://auth.example/authorize"; token_uri = "https://auth.example/token"; client_id = "two"; }
account "same" { auth_uri = "https://auth.example/authorize"; token_uri = "https://auth.example/token"; client_id = "x"; refresh_at_least = 10m; }
account "new" { auth_uri = "https://auth.example/authorize"; token_uri = "https://auth.example/token"; client_id = "n"; }
"#;
    let out_reply = reload_with(&mut sim, new);
    assert!(matches!(out_reply, Reply::Done));
    assert_eq!(sim.show_text("same").unwrap(), "S");
    assert!(sim.show_text("changed").unwrap_err().contains("with URL"));
    assert_eq!(
        sim.show_text("removed").unwrap_err(),
        "No account 'removed'"
    );
    assert!(sim.show_text("new").unwrap_err().contains("with URL"));
    // The removed account's refresh was cancelled; its late answer changes nothing.
    let out = sim.respond(
        in_flight,
        200,
        r#"{"access_token":"Z","token_type":"bearer"}"#,
    );
    assert!(effects(out).is_empty());
    // The unchanged account follows its new timing: 10 minutes after it was obtained.
    let out = sim.advance(secs(600));
    assert_eq!(http_requests(&out).len(), 1);
}

#[test]
fn sighup_reload_without_a_client() {
    let mut sim = Sim::new(config(vec![account("a")]));
    let out = sim.input(Input::ReloadAsked);
    assert!(out.iter().any(|o| matches!(o, Output::ReadConfig)));
    let out = sim.input(Input::ConfigRead {
        result: Err("permission denied".into()),
    });
    assert!(
        logs(&out, Level::Error)
            .iter()
            .any(|m| m.contains("permission denied"))
    );
    assert!(
        sim.show_text("a").unwrap_err().contains("with URL"),
        "account a still configured"
    );
}

/// SPEC.md section 7: the fingerprint covers every security-relevant option (and only
/// those: timing may change without losing tokens).
#[test]
fn the_fingerprint_covers_every_security_relevant_option_and_nothing_else() {
    use crate::config::Flow;
    use crate::dump::fingerprint;
    let base = account("a");
    let url = |s: &str| Url::parse(s).unwrap();
    type Change = fn(&mut Account, &dyn Fn(&str) -> Url);
    let changes: [(&str, Change); 12] = [
        ("auth_uri", |a, u| {
            a.auth_uri = Some(u("https://other.example/authorize").into())
        }),
        ("token_uri", |a, u| {
            a.token_uri = Some(u("https://other.example/token").into())
        }),
        ("client_id", |a, _| a.client_id = "other".into()),
        ("client_secret", |a, _| {
            a.client_secret = Some(Secret::new("s".into()))
        }),
        ("redirect_uri", |a, u| {
            a.redirect_uri = u("http://localhost/other").into()
        }),
        ("scopes", |a, _| a.scopes = vec!["mail".to_owned()].into()),
        ("scope order", |a, _| {
            a.scopes = vec!["offline_access".to_owned(), "mail".to_owned()].into()
        }),
        ("auth_uri_fields", |a, _| {
            a.auth_uri_fields = vec![("login_hint".into(), "me@example.com".into())]
        }),
        ("auth_flow", |a, _| a.flow = Flow::Device),
        ("device_auth_uri", |a, u| {
            a.device_auth_uri = Some(u("https://d.example/").into())
        }),
        ("issuer", |a, u| {
            a.issuer = Some(u("https://id.example/").into())
        }),
        ("revoke_uri", |a, u| {
            a.revoke_uri = Some(u("https://r.example/").into())
        }),
    ];
    for (what, change) in changes {
        let mut changed = base.clone();
        change(&mut changed, &url);
        assert_ne!(
            fingerprint(&changed),
            fingerprint(&base),
            "{what} is not covered"
        );
    }
    let mut fields = base.clone();
    fields.auth_uri_fields = vec![("a".into(), "1".into()), ("b".into(), "2".into())];
    let mut swapped = base.clone();
    swapped.auth_uri_fields = vec![("b".into(), "2".into()), ("a".into(), "1".into())];
    assert_ne!(
        fingerprint(&fields),
        fingerprint(&swapped),
        "auth_uri_fields order"
    );
    let mut timing = base.clone();
    timing.timing.refresh_at_least = secs(1);
    timing.timing.refresh_before_expiry = secs(2);
    timing.timing.refresh_retry = secs(3);
    timing.client_secret_cmd = Some("pass show x".into());
    assert_eq!(
        fingerprint(&timing),
        fingerprint(&base),
        "timing is not security-relevant"
    );
}
