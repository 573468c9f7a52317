//! Fuzz target `core`: the whole core driven by an arbitrary sequence of inputs.

use std::time::Duration;

use crate::event::{
    ExitStatus, HttpResponse, Input, RedirectRequest, Scheme, TransportError, TransportErrorKind,
};
use crate::protocol::{Reply, Request};
use crate::secret::Secret;
use crate::server::Tunables;

use super::{Cursor, Harness, STANDARD_CONFIG, standard};

/// The most operations one input runs (longer inputs are cut there).
const MAX_OPS: usize = 256;

/// Account names: the six of [`STANDARD_CONFIG`], one that only a reload adds, and one
/// that never exists.
const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "nobody"];

/// The config text a reload reads, by variant: 0 the standard one; 1 one that changes
/// `a`, drops `b`, adds `g` and drops most commands; 2 a broken one; 3 one whose `e` takes
/// its secret from a command and that notifies every minute; 4 the standard one
/// reformatted (same fingerprints, so every token is kept); 5 an empty one.
fn reload_text(variant: u8) -> String {
    match variant % 6 {
        0 => STANDARD_CONFIG.to_owned(),
        1 => r#"
error_notify_cmd = "error";
account "a" {
    auth_uri = "https://auth.example/authorize";
    token_uri = "https://auth.example/token";
    client_id = "client-a-changed";
}
account "c" {
    auth_uri = "https://auth.example/authorize";
    token_uri = "https://auth.example/token";
    client_id = "client-c";
    redirect_uri = "https://localhost/cb";
}
account "g" {
    auth_uri = "https://other.example/authorize";
    token_uri = "https://other.example/token";
    client_id = "client-g";
}
"#
        .to_owned(),
        2 => "account \"a\" { broken".to_owned(),
        3 => r#"
auth_notify_cmd = "notify";
auth_notify_interval = 1m;
token_event_cmd = "event";
transient_error_if_cmd = "check";
account "e" {
    auth_flow = client_credentials;
    token_uri = "https://auth.example/token";
    client_id = "client-e";
    client_secret_cmd = "pass show e";
}
account "f" { issuer = "https://id.example/"; client_id = "client-f"; }
"#
        .to_owned(),
        4 => format!("// reformatted\n{}", STANDARD_CONFIG.replace("    ", "\t")),
        _ => String::new(),
    }
}

/// Statuses a response may have: mostly success, then the errors the rules name.
const STATUSES: [u16; 10] = [200, 200, 200, 400, 401, 408, 429, 500, 503, 302];

/// Fuzz target `core`: `data` decoded into a sequence of operations, each one byte of
/// opcode and a few bytes of arguments: control requests (`show`, `show -w`, `refresh`,
/// `revoke`, `status`, `info`, `dump`, `restore` of an earlier dump or of raw bytes,
/// garbage), browser redirects (good, with `error=`, without a code, stale, raw), token
/// responses (canned bodies with fresh tokens, raw bodies, transport failures, answers to
/// stale requests), child exits, reloads (SIGHUP or a client, then one of several config
/// texts or a read error), time steps, suspends, wall-clock steps, `Started`, and rarely
/// a shutdown.
///
/// The [`Harness`] checks the invariants and its properties after every input; at the
/// end, everything under way is let finish and every client must have had exactly one
/// reply.
pub fn core(data: &[u8]) {
    let tunables = Tunables {
        check_every: 2,
        max_children: 3,
        max_queued_children: 16,
        ..Tunables::default()
    };
    let mut run = Run {
        h: Harness::new(standard(), tunables),
        saved_dump: None,
        old_targets: Vec::new(),
    };
    let mut c = Cursor::new(data);
    for _ in 0..MAX_OPS {
        if c.is_empty() || run.h.exited() {
            break;
        }
        run.step(&mut c);
    }
    run.h.settle(STANDARD_CONFIG);
}

/// The state of one run besides the server.
struct Run {
    h: Harness,
    /// The text of the last `dump`, for a later `restore`.
    saved_dump: Option<Secret>,
    /// Redirect targets used before, to bring them again (stale).
    old_targets: Vec<String>,
}

impl Run {
    fn step(&mut self, c: &mut Cursor<'_>) {
        let name = |c: &mut Cursor<'_>| NAMES[usize::from(c.byte()) % NAMES.len()].to_owned();
        match c.byte() % 27 {
            0 => {
                let (account, with_url) = (name(c), c.byte().is_multiple_of(2));
                self.ask(Request::Show {
                    account,
                    with_url,
                    wait: None,
                });
            }
            1 => {
                let (account, wait) = (name(c), u32::from(c.byte() % 120));
                self.ask(Request::Show {
                    account,
                    with_url: true,
                    wait: Some(wait),
                });
            }
            2 => {
                let (account, with_url) = (name(c), c.byte().is_multiple_of(2));
                self.ask(Request::Refresh { account, with_url });
            }
            3 => {
                let account = name(c);
                self.ask(Request::Revoke { account });
            }
            4 => self.ask(Request::Status),
            5 => self.ask(Request::Info),
            6 => {
                if let Some(Reply::Dump { dump }) = self.h.ask(&Request::Dump) {
                    self.saved_dump = Some(dump);
                }
            }
            7 => {
                if let Some(dump) = self.saved_dump.clone() {
                    self.ask(Request::Restore { dump });
                }
            }
            8 => {
                let raw = String::from_utf8_lossy(c.short()).into_owned();
                self.h.hear(raw.as_bytes());
                self.ask(Request::Restore {
                    dump: Secret::new(raw),
                });
            }
            9 => {
                let raw = c.short().to_vec();
                self.h.hear(&raw);
                self.h.ask_bytes(raw);
            }
            10 => self.good_redirect(c),
            11 => {
                let method = ["GET", "POST", "get", ""][usize::from(c.byte() % 4)].to_owned();
                let host = (!c.byte().is_multiple_of(4)).then(|| "localhost:8765".to_owned());
                let target = String::from_utf8_lossy(c.short()).into_owned();
                self.h.hear(target.as_bytes());
                self.h.redirect(
                    Scheme::Http,
                    RedirectRequest {
                        method,
                        target,
                        host,
                    },
                );
            }
            12 => {
                if !self.old_targets.is_empty() {
                    let i = usize::from(c.byte()) % self.old_targets.len();
                    let target = self.old_targets[i].clone();
                    self.h.redirect_to(&target);
                }
            }
            13 => self.canned_response(c),
            14 => {
                let pick = c.byte();
                let status = c.u16();
                let body = c.short().to_vec();
                self.h.hear(&body);
                if let Some(id) = pick_from(self.h.in_flight(), pick) {
                    self.h.respond(
                        id,
                        HttpResponse {
                            status,
                            headers: Vec::new(),
                            body: Secret::new(body),
                        },
                    );
                }
            }
            15 => {
                let (pick, kind) = (c.byte(), c.byte());
                if let Some(id) = pick_from(self.h.in_flight(), pick) {
                    let kind = [
                        TransportErrorKind::Dns,
                        TransportErrorKind::Connect,
                        TransportErrorKind::Tls,
                        TransportErrorKind::Io,
                        TransportErrorKind::TooLarge,
                    ][usize::from(kind % 5)];
                    self.h.fail(
                        id,
                        TransportError {
                            kind,
                            message: "connection refused".into(),
                        },
                    );
                }
            }
            16 => {
                // An answer to any request ever sent: stale ones must change nothing.
                let pick = c.byte();
                if let Some(id) = pick_from(self.h.all_sent(), pick) {
                    let token = self.h.fresh_token("STALE");
                    let body = format!(
                        r#"{{"access_token":"{token}","token_type":"bearer","expires_in":600}}"#
                    );
                    self.h.respond_json(id, 200, &body);
                }
            }
            17 => {
                let (pick, code) = (c.byte(), c.byte());
                if let Some(child) = pick_from(self.h.children(), pick) {
                    let status = match code % 4 {
                        0 | 1 => ExitStatus::Code(0),
                        2 => ExitStatus::Code(i32::from(code)),
                        _ => ExitStatus::Signal(9),
                    };
                    self.h.exit(child, status);
                }
            }
            18 => {
                let ms = u64::from(c.u16()) * 37;
                self.h.advance(Duration::from_millis(ms));
            }
            19 => {
                let s = u64::from(c.u16()) * 4;
                self.h.suspend(Duration::from_secs(s));
            }
            20 => {
                let step = i64::from(c.u16() as i16) * 1000;
                self.h.step_wall(step);
            }
            21 => {
                if c.byte().is_multiple_of(2) {
                    self.h.handle(Input::ReloadAsked);
                } else {
                    self.ask(Request::Reload);
                }
            }
            22 => {
                let v = c.byte();
                if self.h.config_wanted() {
                    self.h.config_read(Ok(reload_text(v)));
                }
            }
            23 => {
                if self.h.config_wanted() {
                    self.h.config_read(Err("permission denied".to_owned()));
                }
            }
            24 => {
                self.h.handle(Input::Started);
            }
            25 => {
                // Rarely: everything after it is ignored.
                if c.byte() == 0xff {
                    self.h.handle(Input::ShutdownAsked);
                }
            }
            _ => {
                self.h.handle(Input::Tick);
            }
        }
    }

    fn ask(&mut self, request: Request) {
        self.h.ask(&request);
    }

    /// A browser brings a pending account's `state` back: with a code, with `error=`,
    /// without a code, or to the wrong path.
    fn good_redirect(&mut self, c: &mut Cursor<'_>) {
        let account = NAMES[usize::from(c.byte()) % NAMES.len()];
        let kind = c.byte() % 4;
        let tail = match kind {
            0 | 1 => {
                let code = self.h.fresh_token("CODE");
                format!("code={code}")
            }
            2 => "error=access_denied&error_description=the+user+said+no".to_owned(),
            _ => "scope=mail".to_owned(),
        };
        let Some(target) = self.h.redirect_target(account, &tail) else {
            return;
        };
        let target = if c.byte().is_multiple_of(8) {
            format!("/elsewhere{target}")
        } else {
            target
        };
        if self.old_targets.len() < 64 {
            self.old_targets.push(target.clone());
        }
        self.h.redirect_to(&target);
    }

    /// Answers a request in flight with a canned body holding fresh tokens.
    fn canned_response(&mut self, c: &mut Cursor<'_>) {
        let (pick, status, kind, n) = (c.byte(), c.byte(), c.byte(), c.byte());
        let Some(id) = pick_from(self.h.in_flight(), pick) else {
            return;
        };
        let status = STATUSES[usize::from(status) % STATUSES.len()];
        let token = self.h.fresh_token("TOKEN");
        let refresh = self.h.fresh_token("REFRESH");
        let expires = u64::from(n) * 30;
        let body = match kind % 16 {
            0 => format!(
                r#"{{"access_token":"{token}","token_type":"bearer","expires_in":{expires},"refresh_token":"{refresh}"}}"#
            ),
            1 => format!(r#"{{"access_token":"{token}","token_type":"Bearer"}}"#),
            2 => format!(r#"{{"access_token":"{token}","token_type":"bearer","expires_in":0}}"#),
            3 => r#"{"error":"invalid_grant","error_description":"refresh token expired"}"#.into(),
            4 => "<html>gateway</html>".into(),
            5 => format!(
                r#"{{"access_token":"{token}","token_type":"bearer","expires_in":99999999999999}}"#
            ),
            6 => format!(
                r#"{{"device_code":"{refresh}","user_code":"ABCD-EFGH","verification_uri":"https://auth.example/device","interval":{},"expires_in":{expires}}}"#,
                n % 8
            ),
            7 => r#"{"error":"authorization_pending"}"#.into(),
            8 => r#"{"error":"slow_down"}"#.into(),
            9 => r#"{"issuer":"https://id.example/","authorization_endpoint":"https://id.example/a","token_endpoint":"https://id.example/t","device_authorization_endpoint":"https://id.example/d","revocation_endpoint":"https://id.example/r"}"#.into(),
            10 => r#"{"issuer":"https://evil.example/","token_endpoint":"https://evil.example/t"}"#.into(),
            11 => format!(r#"{{"access_token":"{token}","token_type":"mac"}}"#),
            12 => format!(
                r#"{{"access_token":"{token}","token_type":"bearer","expires_in":"{expires}","refresh_token":"{refresh}"}}"#
            ),
            13 => r#"{"error":"expired_token"}"#.into(),
            14 => r#"{"error":"access_denied"}"#.into(),
            _ => format!(
                r#"{{"access_token":"{token}","token_type":"bearer","expires_in":{expires}.5,"refresh_token":null}}"#
            ),
        };
        let headers = match status {
            429 | 503 => vec![("retry-after".to_owned(), (n % 120).to_string())],
            _ => Vec::new(),
        };
        self.h.respond(
            id,
            HttpResponse {
                status,
                headers,
                body: Secret::new(body.into_bytes()),
            },
        );
    }
}

/// The element of `list` that `pick` chooses, if the list is not empty.
fn pick_from<T: Copy>(list: &[T], pick: u8) -> Option<T> {
    match list.len() {
        0 => None,
        n => Some(list[usize::from(pick) % n]),
    }
}
