//! `show -w`, `client_secret_cmd` on reload, and the last error in `status`.

use super::*;

fn show_wait(sim: &mut Sim, client: u64, name: &str, secs: u32) -> Vec<Output> {
    sim.input(Input::ClientAsked {
        client: ClientId(client),
        bytes: Secret::new(
            Request::Show {
                account: name.into(),
                with_url: true,
                wait: Some(secs),
            }
            .encode(),
        ),
    })
}

fn reply_to(out: &[Output], client: u64) -> Option<&Reply> {
    out.iter().find_map(|o| match o {
        Output::Reply { client: c, reply } if c.0 == client => Some(reply),
        _ => None,
    })
}

#[test]
fn show_wait_answers_with_the_token_as_soon_as_there_is_one() {
    let mut sim = Sim::new(config(vec![account("a")]));
    let out = show_wait(&mut sim, 70, "a", 60);
    assert!(reply_to(&out, 70).is_none(), "it waits");
    assert_eq!(sim.next_deadline(), Some(secs(60)));
    let url = sim.show_text("a").unwrap_err();
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    sim.advance(secs(20));
    let (_, _, out) = sim.redirect(&format!("/?state={state}&code=c"));
    let (id, _) = single_http(&out);
    let out = sim.respond(
        id,
        200,
        r#"{"access_token":"WAITED","token_type":"bearer","expires_in":3600}"#,
    );
    assert!(
        matches!(reply_to(&out, 70), Some(Reply::Token { token }) if token.as_str() == "WAITED")
    );
    // Its deadline is gone: the next deadline is the refresh.
    assert_eq!(sim.next_deadline(), Some(secs(20 + 3600)));
}

#[test]
fn show_wait_times_out_with_what_show_would_say() {
    let mut sim = Sim::new(config(vec![account("a")]));
    show_wait(&mut sim, 71, "a", 30);
    let out = sim.advance(secs(30));
    match reply_to(&out, 71) {
        Some(Reply::Error { message }) => assert!(
            message.starts_with("Access token unavailable until authorised with URL "),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    // A token already there is returned at once, and so is a refresh in flight's token.
    sim.authorise("a", "NOW", Some("R"), 3600);
    let out = show_wait(&mut sim, 72, "a", 30);
    assert!(matches!(reply_to(&out, 72), Some(Reply::Token { .. })));
}

#[test]
fn show_wait_gets_the_failure_and_the_removal() {
    let mut sim = Sim::new(config(vec![account("a")]));
    show_wait(&mut sim, 73, "a", 300);
    let url = sim.show_text("a").unwrap_err();
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    let (_, _, out) = sim.redirect(&format!("/?state={state}&error=access_denied"));
    assert!(
        matches!(reply_to(&out, 73), Some(Reply::Error { message }) if message == "Access token unavailable: authorisation failed: access_denied")
    );

    show_wait(&mut sim, 74, "a", 300);
    sim.input(Input::ReloadAsked);
    let out = sim.input(Input::ConfigRead {
        result: Ok(String::new()),
    });
    assert!(
        matches!(reply_to(&out, 74), Some(Reply::Error { message }) if message.contains("removed"))
    );
}

const WITH_CMD: &str = r#"
account "a" { auth_uri = "https://auth.example/a"; token_uri = "https://auth.example/t"; client_id = "x"; client_secret_cmd = "pass show a"; }
account "b" { auth_uri = "https://auth.example/a"; token_uri = "https://auth.example/t"; client_id = "y"; }
"#;

#[test]
fn reload_runs_client_secret_cmd_and_uses_its_output() {
    let mut first = Config::parse(WITH_CMD, "pizauth.conf").unwrap().config;
    first.accounts[0].client_secret = Some(Secret::new("OLDSECRET".into()));
    let mut sim = Sim::new(first);
    sim.authorise("a", "AT", Some("RT"), 3600);
    let client = ClientId(80);
    let out = sim.send(client, Request::Reload);
    assert!(out.iter().any(|o| matches!(o, Output::ReadConfig)));
    let out = sim.input(Input::ConfigRead {
        result: Ok(WITH_CMD.into()),
    });
    let capture: Vec<(ChildId, &str)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Spawn {
                child,
                command,
                capture: true,
                env,
            } => {
                assert_eq!(env_of(env, "PIZAUTH_ACCOUNT"), Some("a"));
                Some((*child, command.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(capture.len(), 1);
    assert_eq!(capture[0].1, "pass show a");
    assert!(reply_to(&out, 80).is_none(), "reload waits for the command");
    // The same secret (with a trailing newline, as pass prints it): the token is kept.
    let out = sim.input(Input::ChildExited {
        child: capture[0].0,
        status: ExitStatus::Code(0),
        stdout: Some(Secret::new(b"OLDSECRET\n".to_vec())),
    });
    assert!(matches!(reply_to(&out, 80), Some(Reply::Done)));
    assert_eq!(sim.show_text("a").unwrap(), "AT");
    // The refresh carries the secret.
    let out = sim.advance(secs(3510));
    assert_eq!(
        form(single_http(&out).1).last().unwrap(),
        &("client_secret".to_owned(), "OLDSECRET".to_owned())
    );
}

#[test]
fn a_failing_client_secret_cmd_fails_the_reload_naming_the_account() {
    let mut sim = Sim::new(Config::parse(WITH_CMD, "pizauth.conf").unwrap().config);
    let client = ClientId(81);
    sim.send(client, Request::Reload);
    let out = sim.input(Input::ConfigRead {
        result: Ok(WITH_CMD.replace("\"b\"", "\"c\"")),
    });
    let child = spawns(&out)[0].0;
    let out = sim.input(Input::ChildExited {
        child,
        status: ExitStatus::Code(1),
        stdout: Some(Secret::new(Vec::new())),
    });
    assert!(
        matches!(reply_to(&out, 81), Some(Reply::Error { message }) if message == "account \"a\": client_secret_cmd exited with code 1"),
        "{out:?}"
    );
    // The running config is kept: "b" still exists, "c" does not.
    assert!(sim.show_text("b").is_err_and(|e| e.contains("with URL")));
    assert_eq!(sim.show_text("c").unwrap_err(), "No account 'c'");
}

#[test]
fn status_keeps_the_last_error_even_after_recovery() {
    let mut sim = Sim::new(config(vec![account("a")]));
    sim.authorise("a", "AT", Some("RT"), 3600);
    let out = sim.advance(secs(3510));
    let (id, _) = single_http(&out);
    sim.respond(id, 503, "");
    let Reply::Status { accounts } = sim.ask(Request::Status).0 else {
        panic!()
    };
    let e = accounts[0].last_error.clone().expect("a last error");
    assert_eq!(e.message, "token endpoint answered HTTP 503 (temporary)");
    assert_eq!(e.at, WallTime::from_unix_millis(T0_WALL + 3_510_000));
    assert_eq!(accounts[0].flow, "code");
}
