//! What the interop tests share: node's `oidc-provider` started from
//! `tests/interop/provider.mjs`, an HTTP client for 127.0.0.1, and a small browser with a
//! cookie jar that goes through the provider's own login and consent pages.
//!
//! Included by each `tests/interop_*.rs` with `#[path]`; each uses a different part.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use url::Url;

use crate::common::{PROCESSING_PAGE, Sandbox, WAIT, wait_for};

/// The secrets `provider.mjs` registers.
pub const POST_SECRET: &str = "post-secret-0123456789";
pub const BASIC_SECRET: &str = "basic:secret&0123456789";
pub const DOVECOT_SECRET: &str = "dovecot-secret-0123456789";

/// The directory holding `provider.mjs` and its `node_modules`.
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// A running `oidc-provider`. Dropping it closes its standard input, which ends it, and
/// kills it to be sure.
pub struct Oidc {
    child: Child,
    stdin: Option<ChildStdin>,
    /// `http://127.0.0.1:PORT/`, as the provider names itself.
    pub issuer: String,
    pub port: u16,
    stderr: PathBuf,
}

impl Oidc {
    /// Starts the provider, or returns `None` (outside CI only) if node or the package
    /// is not installed. `access_ttl` is the access tokens' lifetime in seconds.
    pub fn start(sandbox: &Sandbox, access_ttl: u64) -> Option<Oidc> {
        let dir = interop_dir();
        let installed = dir.join("node_modules/oidc-provider/package.json").exists();
        let node = Command::new("node").arg("--version").output();
        if !installed || node.is_err() {
            let why = format!(
                "oidc-provider is not installed (run `npm ci` in {}; node: {})",
                dir.display(),
                node.map_or_else(|e| e.to_string(), |_| "found".into())
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{why}: in CI the interop tests must run");
            }
            eprintln!("NOT RUN: {why}");
            return None;
        }
        let stderr = sandbox.path("oidc-provider.log");
        let mut command = Command::new("node");
        command
            .arg(dir.join("provider.mjs"))
            .current_dir(&dir)
            .env("ACCESS_TTL", access_ttl.to_string());
        let (child, stdin, issuer) = spawn_listening(command, &stderr, "oidc-provider");
        let port = Url::parse(&issuer).unwrap().port().unwrap();
        Some(Oidc {
            child,
            stdin,
            issuer,
            port,
            stderr,
        })
    }

    /// A URL on the provider.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path.trim_start_matches('/'))
    }

    /// The provider's answer on introspecting `token` (RFC 7662), as the dovecot client.
    pub fn introspect(&self, token: &str) -> serde_json::Value {
        let body = form(&[("token", token)]);
        let basic = basic_auth("dovecot", DOVECOT_SECRET);
        let page = http(
            "POST",
            &self.url("token/introspection"),
            &[("Authorization", &basic)],
            Some(&body),
        )
        .expect("introspection");
        assert_eq!(page.status, 200, "introspection: {page:?}");
        serde_json::from_str(&page.body).expect("introspection JSON")
    }

    /// Whether the provider says `token` is active.
    pub fn active(&self, token: &str) -> bool {
        self.introspect(token)["active"] == serde_json::Value::Bool(true)
    }

    /// How each request authenticated its client: (path, client, `basic` or `post`).
    pub fn client_auth_seen(&self) -> Vec<(String, String, String)> {
        let page = http("GET", &self.url("test/client-auth"), &[], None).expect("client-auth");
        let v: serde_json::Value = serde_json::from_str(&page.body).expect("JSON");
        let field = |e: &serde_json::Value, k: &str| e[k].as_str().unwrap_or_default().to_owned();
        v.as_array()
            .expect("a list")
            .iter()
            .filter(|e| e["path"] != "/token/introspection")
            .map(|e| (field(e, "path"), field(e, "client"), field(e, "method")))
            .collect()
    }

    /// What the provider wrote on stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Oidc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if std::thread::panicking() {
            eprintln!("---- oidc-provider log ----\n{}---- end ----", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a provider that prints `listening URL` once it accepts connections, with its
/// stderr in `stderr`; returns it, its stdin (closing it ends the provider) and the URL.
pub fn spawn_listening(
    mut command: Command,
    stderr: &std::path::Path,
    what: &str,
) -> (Child, Option<ChildStdin>, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).expect("provider log"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = BufReader::new(stdout);
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = tx.send(line);
        // Keep reading: a provider writing to a closed pipe would die of EPIPE.
        let _ = std::io::copy(&mut out, &mut std::io::sink());
    });
    let line = rx
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{what} did not start within {WAIT:?}"));
    let url = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| {
            panic!(
                "{what} said {line:?}: {}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            )
        })
        .to_owned();
    (child, stdin, url)
}

/// `application/x-www-form-urlencoded`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// An `Authorization: Basic` value (RFC 6749 2.3.1: each part form-urlencoded first).
pub fn basic_auth(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let enc = |s: &str| form(&[("", s)])[1..].to_owned();
    let plain = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(plain)
    )
}

/// An HTTP response.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 exchange on a connection of its own (127.0.0.1 only), bounded in time.
pub fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Page> {
    let url = Url::parse(url).map_err(std::io::Error::other)?;
    let host = url.host_str().unwrap_or_default();
    assert!(
        host == "127.0.0.1" || host == "localhost",
        "test traffic stays on 127.0.0.1, not {url}"
    );
    let port = url.port_or_known_default().unwrap_or(80);
    let mut tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut req =
        format!("{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    tcp.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw)?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> std::io::Result<Page> {
    let bad = || std::io::Error::other(format!("bad response {:?}", String::from_utf8_lossy(raw)));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..nl])
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim(),
                16,
            )
            .map_err(|_| bad())?;
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(..size).ok_or_else(bad)?);
            rest = rest.get(size + 2..).ok_or_else(bad)?;
        }
        body = out;
    }
    Ok(Page {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A form in a page: where it goes and its fields (hidden inputs with their values, and
/// the names of the other inputs).
#[derive(Debug)]
pub struct Form {
    pub id: String,
    pub action: String,
    pub fields: BTreeMap<String, String>,
}

/// The value of attribute `name` in a tag's text.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[at..].find('"')? + at;
    Some(
        tag[at..end]
            .replace("&amp;", "&")
            .replace("&quot;", "\"")
            .replace("&#x2F;", "/")
            .replace("&#39;", "'"),
    )
}

/// The forms of an HTML page.
pub fn forms(html: &str) -> Vec<Form> {
    let mut out = Vec::new();
    for part in html.split("<form").skip(1) {
        let tag_end = part.find('>').unwrap_or(part.len());
        let tag = &part[..tag_end];
        let inner = &part[tag_end..part.find("</form>").unwrap_or(part.len())];
        let mut fields = BTreeMap::new();
        for input in inner.split("<input").skip(1) {
            let t = &input[..input.find('>').unwrap_or(input.len())];
            if let Some(name) = attribute(t, "name") {
                fields.insert(name, attribute(t, "value").unwrap_or_default());
            }
        }
        out.push(Form {
            id: attribute(tag, "id").unwrap_or_default(),
            action: attribute(tag, "action").unwrap_or_default(),
            fields,
        });
    }
    out
}

/// What the user does on the consent page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    Grant,
    Deny,
}

/// A browser: a cookie jar for 127.0.0.1, and the user who logs in.
pub struct Browser {
    cookies: BTreeMap<String, String>,
    pub user: String,
    /// The `user_code` to type on a device-flow page.
    pub user_code: Option<String>,
    pub consent: Consent,
    /// Every URL visited, for messages.
    pub trail: Vec<String>,
}

impl Browser {
    pub fn new(user: &str) -> Browser {
        Browser {
            cookies: BTreeMap::new(),
            user: user.to_owned(),
            user_code: None,
            consent: Consent::Grant,
            trail: Vec::new(),
        }
    }

    fn request(&mut self, method: &str, url: &str, body: Option<&str>) -> Page {
        self.trail.push(format!("{method} {url}"));
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut headers = vec![("User-Agent", "pizauth-interop-browser")];
        if !cookie.is_empty() {
            headers.push(("Cookie", &cookie));
        }
        let page = http(method, url, &headers, body)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}; visited {:#?}", self.trail));
        for (k, v) in &page.headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                let pair = v.split(';').next().unwrap_or_default();
                if let Some((name, value)) = pair.split_once('=') {
                    if value.is_empty() || v.contains("expires=Thu, 01 Jan 1970") {
                        self.cookies.remove(name.trim());
                    } else {
                        self.cookies
                            .insert(name.trim().to_owned(), value.to_owned());
                    }
                }
            }
        }
        page
    }

    /// Goes through the provider's pages from `url` until the provider sends the browser
    /// to another port (pizauth's listener): returns that URL, unvisited. Returns the
    /// last page instead if the provider ends the interaction itself (the device flow's
    /// success page).
    pub fn through_provider(&mut self, url: &str, provider_port: u16) -> Result<String, Page> {
        let mut page = self.request("GET", url, None);
        let mut at = Url::parse(url).unwrap();
        for _ in 0..30 {
            if (300..400).contains(&page.status) {
                let location = page.header("Location").expect("a redirect has a Location");
                let next = at.join(location).expect("a valid Location");
                if next.port_or_known_default() != Some(provider_port) {
                    return Ok(next.to_string());
                }
                at = next;
                page = self.request("GET", at.as_str(), None);
                continue;
            }
            if page.status != 200 {
                return Err(page);
            }
            let forms = forms(&page.body);
            let submit = |form: &Form, extra: &[(&str, &str)]| {
                let mut fields = form.fields.clone();
                for (k, v) in extra {
                    fields.insert((*k).to_owned(), (*v).to_owned());
                }
                let pairs: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                (at.join(&form.action).unwrap(), form_body(&pairs))
            };
            let (next, body) =
                if let Some(f) = forms.iter().find(|f| f.fields.contains_key("login")) {
                    let user = self.user.clone();
                    submit(f, &[("login", &user), ("password", "any password")])
                } else if let Some(f) = forms.iter().find(|f| f.fields.contains_key("username")) {
                    // django-oauth-toolkit: Django's login form.
                    let user = self.user.clone();
                    let password = format!("{user}-password");
                    submit(f, &[("username", &user), ("password", &password)])
                } else if let Some(f) = forms.iter().find(|f| f.fields.contains_key("allow")) {
                    // django-oauth-toolkit's consent form: its "Authorize" button is
                    // named `allow`; "Cancel" has no name.
                    let mut fields = f.fields.clone();
                    if self.consent == Consent::Deny {
                        fields.remove("allow");
                    }
                    let chosen = Form {
                        id: f.id.clone(),
                        action: f.action.clone(),
                        fields,
                    };
                    submit(&chosen, &[])
                } else if let Some(f) = forms
                    .iter()
                    .find(|f| f.fields.get("prompt").is_some_and(|p| p == "consent"))
                {
                    if self.consent == Consent::Deny {
                        // The page's own cancel link.
                        let abort = page
                            .body
                            .split("href=\"")
                            .skip(1)
                            .filter_map(|s| s.split('"').next())
                            .find(|h| h.ends_with("/abort"))
                            .expect("the consent page has a cancel link")
                            .replace("&#x2F;", "/");
                        at = at.join(&abort).unwrap();
                        page = self.request("GET", at.as_str(), None);
                        continue;
                    }
                    submit(f, &[])
                } else if let Some(f) = forms.iter().find(|f| f.id == "op.deviceInputForm") {
                    let code = self.user_code.clone().expect("a user code to enter");
                    submit(f, &[("user_code", &code)])
                } else if let Some(f) = forms.iter().find(|f| f.id == "op.deviceConfirmForm") {
                    submit(f, &[])
                } else {
                    return Err(page);
                };
            at = next;
            page = self.request("POST", at.as_str(), Some(&body));
        }
        panic!("too many pages; visited {:#?}", self.trail);
    }

    /// A plain GET (pizauth's redirect listener).
    pub fn get(&mut self, url: &str) -> Page {
        self.request("GET", url, None)
    }
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    form(pairs)
}

/// An account block for the provider's client `client`.
pub fn account(name: &str, oidc: &Oidc, client: &str, extra: &str) -> String {
    let secret = match client {
        "pizauth-basic" => BASIC_SECRET,
        _ => POST_SECRET,
    };
    format!(
        "account \"{name}\" {{\n    issuer = \"{}\";\n    client_id = \"{client}\";\n    \
         client_secret = \"{secret}\";\n    redirect_uri = \"http://127.0.0.1/\";\n{extra}\n}}\n",
        oidc.issuer
    )
}

/// The options that get a refresh token from an OpenID Connect provider.
pub const OFFLINE: &str = "    scopes = [\"openid\", \"offline_access\", \"mail\"];\n    \
                       auth_uri_fields = { \"prompt\": \"consent\" };\n";

/// The URL `show` hands out once the endpoints are discovered.
pub fn auth_url(sb: &Sandbox, account: &str) -> String {
    wait_for(&format!("an authorisation URL for {account}"), WAIT, || {
        let run = sb.run(&["show", account]);
        assert_eq!(run.code, 1, "{run:?}");
        run.stderr
            .strip_prefix(crate::common::UNAVAILABLE_WITH_URL)
            .map(|u| u.trim_end().to_owned())
    })
}

/// Logs in to `account` through the provider's pages; returns the token `show` prints.
pub fn log_in(sb: &Sandbox, oidc: &Oidc, account: &str, user: &str) -> String {
    let url = auth_url(sb, account);
    let mut browser = Browser::new(user);
    let redirect = browser
        .through_provider(&url, oidc.port)
        .unwrap_or_else(|p| panic!("the provider stopped at {p:?}"));
    assert!(
        redirect.starts_with("http://127.0.0.1:"),
        "redirected to {redirect}"
    );
    let page = browser.get(&redirect);
    assert_eq!((page.status, page.body.as_str()), (200, PROCESSING_PAGE));
    wait_show(sb, account)
}

/// Waits until `show` prints a token; returns it.
pub fn wait_show(sb: &Sandbox, account: &str) -> String {
    wait_for(&format!("a token for {account}"), WAIT, || {
        let run = sb.run(&["show", account]);
        (run.code == 0).then(|| run.stdout.trim_end().to_owned())
    })
}

/// Waits until `show` prints a token other than `old`; returns it.
pub fn wait_new_token(sb: &Sandbox, account: &str, old: &str) -> String {
    wait_for(
        &format!("a token for {account} other than the last"),
        WAIT,
        || {
            let run = sb.run(&["show", account]);
            (run.code == 0 && run.stdout.trim_end() != old)
                .then(|| run.stdout.trim_end().to_owned())
        },
    )
}
