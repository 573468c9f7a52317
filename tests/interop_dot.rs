//! The real binary against a second real, independently written OAuth2 server:
//! django-oauth-toolkit, in the one-file Django project `tests/interop/dot_provider.py`,
//! from a virtual environment in `tests/interop/dot-venv` that `.ci/run` makes
//! (`tests/interop/requirements.txt` pins every package). Everything runs on 127.0.0.1.
//!
//! It checks the README's redirect URI advice against a provider that compares ports as
//! RFC 8252 section 7.3 allows: the default `http://localhost/` is refused on pizauth's
//! port (`Mismatching redirect URI`), `redirect_uri = "http://127.0.0.1/"` logs in, and
//! its refresh tokens rotate.
//!
//! Without the virtual environment these tests fail when `CI=true` and otherwise say
//! loudly that they did not run.

mod common;

#[path = "interop/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command};

use common::{PROCESSING_PAGE, Sandbox};
use harness::*;
use url::Url;

/// The client `dot_provider.py` registers.
const DOT_SECRET: &str = "dot-secret-0123456789";

/// A running django-oauth-toolkit.
struct Dot {
    child: Child,
    stdin: Option<ChildStdin>,
    /// `http://127.0.0.1:PORT/`.
    base: String,
    port: u16,
    stderr: PathBuf,
}

impl Dot {
    fn start(sb: &Sandbox) -> Option<Dot> {
        let dir = interop_dir();
        let python = dir.join("dot-venv/bin/python");
        let ok = Command::new(&python)
            .args(["-c", "import oauth2_provider"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let why = format!(
                "django-oauth-toolkit is not installed (python3 -m venv {0}/dot-venv && \
                 {0}/dot-venv/bin/pip install -r {0}/requirements.txt)",
                dir.display()
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{why}: in CI the interop tests must run");
            }
            eprintln!("NOT RUN: {why}");
            return None;
        }
        let db = sb.path("dot-db");
        std::fs::create_dir_all(&db).expect("db dir");
        let stderr = sb.path("dot.log");
        let mut command = Command::new(&python);
        command
            .arg(dir.join("dot_provider.py"))
            .current_dir(&dir)
            .env("DOT_DB_DIR", &db);
        let (child, stdin, base) = spawn_listening(command, &stderr, "django-oauth-toolkit");
        let port = Url::parse(&base).unwrap().port().unwrap();
        Some(Dot {
            child,
            stdin,
            base,
            port,
            stderr,
        })
    }

    /// An account of this provider, with `extra` options.
    fn account(&self, name: &str, extra: &str) -> String {
        format!(
            "account \"{name}\" {{\n    auth_uri = \"{0}o/authorize/\";\n    \
             token_uri = \"{0}o/token/\";\n    revoke_uri = \"{0}o/revoke_token/\";\n    \
             client_id = \"pizauth\";\n    client_secret = \"{DOT_SECRET}\";\n    \
             scopes = [\"mail\"];\n{extra}\n}}\n",
            self.base
        )
    }
}

impl Drop for Dot {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if std::thread::panicking() {
            eprintln!(
                "---- django-oauth-toolkit log ----\n{}---- end ----",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The default `redirect_uri = "http://localhost/"` gets `http://localhost:PORT/`, which
/// this provider refuses; `http://127.0.0.1/`, as the README advises, logs in, refreshes
/// with rotation twice and is revoked at the provider.
#[test]
fn localhost_is_refused_and_127_0_0_1_logs_in() {
    let mut sb = Sandbox::new("dot");
    let Some(dot) = Dot::start(&sb) else {
        return;
    };
    sb.write_config(&format!(
        "{}{}",
        dot.account("default", ""),
        dot.account("loopback", "    redirect_uri = \"http://127.0.0.1/\";")
    ));
    sb.start();

    // The default: the provider stops at its own error page; pizauth never hears back.
    let url = auth_url(&sb, "default");
    assert!(
        url.contains("redirect_uri=http%3A%2F%2Flocalhost%3A"),
        "{url}"
    );
    let mut browser = Browser::new("me");
    let stopped = browser
        .through_provider(&url, dot.port)
        .expect_err("the provider refuses the localhost redirect");
    assert!(
        stopped.body.contains("Mismatching redirect URI"),
        "{stopped:?}"
    );
    let line = sb.status_of("default");
    assert!(line.starts_with("default: Access token pending"), "{line}");

    // The advice: any port of 127.0.0.1.
    let url = auth_url(&sb, "loopback");
    let redirect = browser
        .through_provider(&url, dot.port)
        .unwrap_or_else(|p| panic!("the provider stopped at {p:?}"));
    let page = browser.get(&redirect);
    assert_eq!((page.status, page.body.as_str()), (200, PROCESSING_PAGE));
    let mut token = wait_show(&sb, "loopback");
    for _ in 0..2 {
        assert_eq!(sb.run(&["refresh", "loopback"]).code, 0);
        token = wait_new_token(&sb, "loopback", &token);
    }
    let line = sb.status_of("loopback");
    assert!(line.starts_with("loopback: Active access token"), "{line}");
    assert!(!line.contains("warning"), "{line}");
    let run = sb.run(&["revoke", "loopback"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stderr,
        "loopback: revoked locally and at the provider\n"
    );
}
