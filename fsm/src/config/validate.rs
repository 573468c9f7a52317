//! Validation: from the syntax tree to a typed [`Config`], checking every rule of SPEC.md
//! section 4 and reporting every problem, not only the first.
//!
//! Each statement is first checked against the table in [`options`](super::options)
//! (known name, not given twice, value of the right kind, converted to a [`Typed`]
//! value that borrows from the syntax tree); the typed values are then copied into the
//! fields of [`Config`] and [`Account`], with defaults and the per-account timing
//! fallback. URIs and scope lists are parsed and stored once per distinct text and
//! shared between the accounts that give them.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use url::Url;

use super::diagnostic::{SourceMap, quote_string, quote_word};
use super::options::{self, Kind, OptionDef, RESERVED_URI_FIELDS, Scope, Status};
use super::syntax::{self, AccountBlock, Assignment, Item, Spanned, Text, Value, quote_name};
use super::{
    Account, ClientAuth, Config, DEFAULT_AUTH_NOTIFY_INTERVAL, DEFAULT_LISTEN,
    DEFAULT_REDIRECT_URI, Diagnostic, Diagnostics, Flow, MAX_CONFIG_BYTES, MAX_TIME, Parsed,
    Severity, Timing,
};
use crate::secret::Secret;

/// How many errors (and, separately, warnings) are reported at most.
const MAX_DIAGNOSTICS: usize = 100;

/// Parses and validates `source`; see [`Config::parse`].
pub(super) fn parse(source: &str, file: &str) -> Result<Parsed, Diagnostics> {
    let mut map = SourceMap::new(source, file);
    if source.len() > MAX_CONFIG_BYTES {
        let message = format!(
            "the file is too large: {} bytes, at most {MAX_CONFIG_BYTES} are allowed",
            source.len()
        );
        return Err(Diagnostics::from(vec![
            map.file_diagnostic(Severity::Error, message),
        ]));
    }
    let syntax = syntax::parse(source);
    map.set_secrets(syntax.secrets.clone());
    let mut v = Validator {
        map: &map,
        errors: Vec::new(),
        warnings: Vec::new(),
        dropped: 0,
        uris: BTreeMap::new(),
        scopes: BTreeMap::new(),
    };
    for e in &syntax.errors {
        v.error(e.offset, || e.message.clone());
    }
    let config = v.config(&syntax.items);
    v.finish(config)
}

/// A value that passed the checks of its [`Kind`], borrowed from the syntax tree where
/// it can be.
#[derive(Clone, Debug, PartialEq)]
enum Typed<'a> {
    Text(&'a str),
    Uri(Arc<Url>),
    Listen(Option<&'a str>),
    Time(Duration),
    List(&'a [Text<'a>]),
    Map(&'a [(Text<'a>, Text<'a>)]),
    Flow(Flow),
    ClientAuth(ClientAuth),
}

/// One option as given in one scope.
struct Setting<'a> {
    /// The option (its current name, if an old one was used).
    def: &'static OptionDef,
    /// The statement.
    assignment: &'a Assignment<'a>,
    /// The value, if it is valid.
    value: Option<Typed<'a>>,
}

/// The options given in one scope: each at most once.
#[derive(Default)]
struct Settings<'a>(Vec<Setting<'a>>);

impl<'a> Settings<'a> {
    fn get(&self, name: &str) -> Option<&Setting<'a>> {
        self.0.iter().find(|s| s.def.name == name)
    }

    fn value(&self, name: &str) -> Option<&Typed<'a>> {
        self.get(name).and_then(|s| s.value.as_ref())
    }

    fn text(&self, name: &str) -> Option<String> {
        match self.value(name) {
            Some(Typed::Text(s)) => Some((*s).to_owned()),
            _ => None,
        }
    }

    fn uri(&self, name: &str) -> Option<Arc<Url>> {
        match self.value(name) {
            Some(Typed::Uri(u)) => Some(Arc::clone(u)),
            _ => None,
        }
    }

    fn time(&self, name: &str) -> Option<Duration> {
        match self.value(name) {
            Some(Typed::Time(d)) => Some(*d),
            _ => None,
        }
    }

    /// `Some(None)` for `none`, `None` when not given (or invalid).
    fn listen(&self, name: &str) -> Option<Option<String>> {
        match self.value(name) {
            Some(Typed::Listen(l)) => Some(l.map(str::to_owned)),
            _ => None,
        }
    }

    fn list(&self, name: &str) -> Option<&'a [Text<'a>]> {
        match self.value(name) {
            Some(Typed::List(l)) => Some(l),
            _ => None,
        }
    }

    fn map(&self, name: &str) -> Option<Vec<(String, String)>> {
        match self.value(name) {
            Some(Typed::Map(m)) => Some(
                m.iter()
                    .map(|(k, v)| (k.value.to_string(), v.value.to_string()))
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// Collects diagnostics while checking a syntax tree.
struct Validator<'a> {
    map: &'a SourceMap<'a>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Diagnostics past [`MAX_DIAGNOSTICS`], counted but not built.
    dropped: usize,
    /// URIs already parsed, by their text: accounts of one provider share their
    /// endpoints, and parsing a URI costs more than the rest of its account.
    uris: BTreeMap<&'a str, Arc<Url>>,
    /// Scope lists already made, by their items: shared in the same way.
    scopes: BTreeMap<Vec<&'a str>, Arc<[String]>>,
}

impl<'a> Validator<'a> {
    /// Records an error at byte `offset` (the message is built only if it is kept).
    fn error(&mut self, offset: usize, message: impl FnOnce() -> String) {
        if self.errors.len() < MAX_DIAGNOSTICS {
            let d = self.map.diagnostic(Severity::Error, offset, message());
            self.errors.push(d);
        } else {
            self.dropped += 1;
        }
    }

    /// Records a warning at byte `offset`.
    fn warning(&mut self, offset: usize, message: impl FnOnce() -> String) {
        if self.warnings.len() < MAX_DIAGNOSTICS {
            let d = self.map.diagnostic(Severity::Warning, offset, message());
            self.warnings.push(d);
        }
    }

    /// The result: the config if there were no errors, else the errors.
    fn finish(self, config: Config) -> Result<Parsed, Diagnostics> {
        if self.errors.is_empty() {
            return Ok(Parsed {
                config,
                warnings: Diagnostics::from(self.warnings),
            });
        }
        let mut errors = Diagnostics::from(self.errors);
        if self.dropped > 0 {
            let last = errors.last().map_or(0, |d| d.offset);
            let message = format!("too many errors: {} more not shown", self.dropped);
            let mut note = self.map.diagnostic(Severity::Error, last, message);
            note.source_line.clear();
            errors.push(note);
        }
        Err(errors)
    }

    /// The whole file, as far as it is valid (only used if there were no errors).
    fn config(&mut self, items: &'a [Item<'a>]) -> Config {
        let globals: Vec<&Assignment> = items
            .iter()
            .filter_map(|i| match i {
                Item::Option(a) => Some(a),
                Item::Account(_) => None,
            })
            .collect();
        let g = self.settings(&globals, Scope::Global, None);
        let defaults = Timing {
            refresh_at_least: g
                .time("refresh_at_least")
                .unwrap_or(super::DEFAULT_REFRESH_AT_LEAST),
            refresh_before_expiry: g
                .time("refresh_before_expiry")
                .unwrap_or(super::DEFAULT_REFRESH_BEFORE_EXPIRY),
            refresh_retry: g
                .time("refresh_retry")
                .unwrap_or(super::DEFAULT_REFRESH_RETRY),
        };
        let default_listen = || Some(DEFAULT_LISTEN.to_owned());
        let http_listen = g.listen("http_listen").unwrap_or_else(default_listen);
        let https_listen = g.listen("https_listen").unwrap_or_else(default_listen);
        if let (None, None, Some(http), Some(https)) = (
            &http_listen,
            &https_listen,
            g.get("http_listen"),
            g.get("https_listen"),
        ) {
            let later = http
                .assignment
                .value
                .span
                .start
                .max(https.assignment.value.span.start);
            self.error(later, || {
                "'http_listen' and 'https_listen' cannot both be none: redirects need a listener"
                    .to_owned()
            });
        }

        let blocks = items.iter().filter_map(|i| match i {
            Item::Account(block) => Some(block),
            Item::Option(_) => None,
        });
        let mut accounts = Vec::with_capacity(blocks.clone().count());
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for block in blocks {
            let name = &block.name;
            if name.value.is_empty() {
                self.error(name.span.start, || {
                    "the account name must not be empty".to_owned()
                });
            }
            if let Some(&first) = seen.get(&*name.value) {
                let line = self.map.line_of(first);
                self.error(name.span.start, || {
                    format!(
                        "account {} defined twice (first on line {line})",
                        quote_name(&name.value)
                    )
                });
            } else {
                seen.insert(&name.value, name.span.start);
            }
            accounts.extend(self.account(block, &defaults, http_listen.is_none()));
        }
        accounts.sort_by(|a: &Account, b| a.name.cmp(&b.name));

        Config {
            accounts,
            auth_notify_cmd: g.text("auth_notify_cmd"),
            auth_notify_interval: g
                .time("auth_notify_interval")
                .unwrap_or(DEFAULT_AUTH_NOTIFY_INTERVAL),
            error_notify_cmd: g.text("error_notify_cmd"),
            http_listen,
            https_listen,
            startup_cmd: g.text("startup_cmd"),
            token_event_cmd: g.text("token_event_cmd"),
            transient_error_if_cmd: g.text("transient_error_if_cmd"),
        }
    }

    /// One account; `None` if it lacks a mandatory option or has an invalid one.
    fn account(
        &mut self,
        block: &'a AccountBlock<'a>,
        defaults: &Timing,
        http_off: bool,
    ) -> Option<Account> {
        let options: Vec<&Assignment> = block.options.iter().collect();
        let s = self.settings(&options, Scope::Account, Some(&block.name.value));
        let flow = match s.value("auth_flow") {
            Some(Typed::Flow(f)) => *f,
            _ => Flow::Code,
        };
        // Without an issuer to discover them from, a flow needs its endpoints given.
        let endpoints: &[&str] = match (s.get("issuer").is_some(), flow) {
            (true, _) => &[],
            (false, Flow::Code) => &["auth_uri", "token_uri"],
            (false, Flow::Device) => &["device_auth_uri", "token_uri"],
            (false, Flow::ClientCredentials) => &["token_uri"],
        };
        let mut missing: Vec<String> = options::OPTIONS
            .iter()
            .filter(|d| d.scope == Scope::Account)
            .filter(|d| d.status == Status::Mandatory || endpoints.contains(&d.name))
            .filter(|d| s.get(d.name).is_none())
            .map(|d| quote_word(d.name))
            .collect();
        missing.sort();
        // In a block with a syntax error, the option may be in the part that was skipped.
        if !missing.is_empty() && !block.damaged {
            self.error(block.name.span.start, || {
                let account = quote_name(&block.name.value);
                match missing.split_last() {
                    Some((last, rest)) if !rest.is_empty() => format!(
                        "account {account} is missing the mandatory options {} and {last}",
                        rest.join(", ")
                    ),
                    _ => format!(
                        "account {account} is missing the mandatory option {}",
                        missing.join("")
                    ),
                }
            });
        }

        let mut fields = s.map("auth_uri_fields").unwrap_or_default();
        if let (Some(hint), Some(Typed::Text(value))) = (s.get("login_hint"), s.value("login_hint"))
        {
            if fields.iter().any(|(k, _)| k == "login_hint") {
                self.error(hint.assignment.name.span.start, || {
                    "'login_hint' given and also as a key of 'auth_uri_fields': keep only the \
                     auth_uri_fields entry"
                        .to_owned()
                });
            } else {
                fields.push(("login_hint".to_owned(), (*value).to_owned()));
            }
        }
        if let (Some(_), Some(cmd)) = (s.get("client_secret"), s.get("client_secret_cmd")) {
            self.error(cmd.assignment.name.span.start, || {
                format!(
                    "'client_secret' and 'client_secret_cmd' cannot both be given in account {}: keep one",
                    quote_name(&block.name.value)
                )
            });
        }
        if flow == Flow::ClientCredentials
            && s.get("client_secret").is_none()
            && s.get("client_secret_cmd").is_none()
            && !block.damaged
        {
            self.error(block.name.span.start, || {
                format!(
                    "account {} uses auth_flow = client_credentials and needs 'client_secret' or 'client_secret_cmd'",
                    quote_name(&block.name.value)
                )
            });
        }
        let redirect_uri = match s.get("redirect_uri") {
            Some(_) => s.uri("redirect_uri")?,
            // The constant is a valid URI (a test checks it), so this never falls back.
            // Parsed once per process, and shared by every account that uses it.
            None => {
                static DEFAULT: OnceLock<Option<Arc<Url>>> = OnceLock::new();
                DEFAULT
                    .get_or_init(|| Url::parse(DEFAULT_REDIRECT_URI).ok().map(Arc::new))
                    .clone()?
            }
        };
        // An http: redirect comes back to the HTTP listener only (an https: one takes the
        // HTTPS listener, else the HTTP one): refuse at start, as pizauth 1.1.0 does,
        // rather than at the first `show`.
        if http_off && flow == Flow::Code && redirect_uri.scheme() == "http" {
            let at = s
                .get("redirect_uri")
                .map_or(block.name.span.start, |r| r.assignment.value.span.start);
            self.error(at, || {
                format!(
                    "account {} has an http redirect_uri ({}), but http_listen is none: redirects could not reach pizauth",
                    quote_name(&block.name.value),
                    redirect_uri.as_str()
                )
            });
        }
        let scopes = match s.list("scopes") {
            Some(items) => self.scopes(items),
            None => Arc::from([]),
        };
        Some(Account {
            name: block.name.value.to_string(),
            flow,
            issuer: s.uri("issuer"),
            auth_uri: s.uri("auth_uri"),
            token_uri: s.uri("token_uri"),
            device_auth_uri: s.uri("device_auth_uri"),
            revoke_uri: s.uri("revoke_uri"),
            client_id: s.text("client_id")?,
            client_secret: s.text("client_secret").map(Secret::new),
            client_secret_cmd: s.text("client_secret_cmd"),
            client_auth: match s.value("client_auth") {
                Some(Typed::ClientAuth(a)) => Some(*a),
                _ => None,
            },
            scopes,
            auth_uri_fields: fields,
            redirect_uri,
            redirect_uri_bare: s.get("redirect_uri").is_some_and(|r| {
                match &r.assignment.value.value {
                    Value::Str(text) => has_no_path(text),
                    _ => false,
                }
            }),
            timing: Timing {
                refresh_at_least: s
                    .time("refresh_at_least")
                    .unwrap_or(defaults.refresh_at_least),
                refresh_before_expiry: s
                    .time("refresh_before_expiry")
                    .unwrap_or(defaults.refresh_before_expiry),
                refresh_retry: s.time("refresh_retry").unwrap_or(defaults.refresh_retry),
            },
        })
    }

    /// The scope list `items`, shared with every account that gives the same list.
    fn scopes(&mut self, items: &'a [Text<'a>]) -> Arc<[String]> {
        let key: Vec<&str> = items.iter().map(|i| &*i.value).collect();
        if let Some(shared) = self.scopes.get(&key) {
            return Arc::clone(shared);
        }
        let list: Arc<[String]> = key.iter().map(|&i| i.to_owned()).collect();
        self.scopes.insert(key, Arc::clone(&list));
        list
    }

    /// Checks the statements of one scope against the option table.
    fn settings(
        &mut self,
        assignments: &[&'a Assignment<'a>],
        scope: Scope,
        account: Option<&str>,
    ) -> Settings<'a> {
        let mut settings = Settings::default();
        let in_account = || {
            account
                .map(|a| format!(" in account {}", quote_name(a)))
                .unwrap_or_default()
        };
        for &a in assignments {
            let name = &a.name;
            let at = name.span.start;
            let Some(def) = options::lookup(scope, name.value) else {
                self.unknown(name, scope, account);
                continue;
            };
            match def.status {
                Status::RenamedTo(new) => self.warning(at, || {
                    format!(
                        "{} is deprecated: use {}",
                        quote_word(def.name),
                        quote_word(new)
                    )
                }),
                Status::Deprecated(advice) => self.warning(at, || {
                    format!("{} is deprecated: {advice}", quote_word(def.name))
                }),
                Status::Optional | Status::Mandatory => {}
            }
            let def = options::current(def);
            if let Some(first) = settings.get(def.name) {
                let line = self.map.line_of(first.assignment.name.span.start);
                let first_name = first.assignment.name.value;
                let alias = if first_name == name.value {
                    String::new()
                } else {
                    format!(" as {}", quote_word(first_name))
                };
                self.error(at, || {
                    format!(
                        "option {} given twice{} (first on line {line}{alias})",
                        quote_word(name.value),
                        in_account()
                    )
                });
                continue;
            }
            let value = self.typed(def, &a.value);
            settings.0.push(Setting {
                def,
                assignment: a,
                value,
            });
        }
        settings
    }

    /// Reports an unknown option, with the best hint we have.
    fn unknown(&mut self, name: &Spanned<&str>, scope: Scope, account: Option<&str>) {
        let (other, here) = match account {
            Some(a) => (Scope::Global, format!(" in account {}", quote_name(a))),
            None => (Scope::Account, String::new()),
        };
        let quoted = quote_word(name.value);
        self.error(name.span.start, || {
            if options::lookup(other, name.value).is_some() {
                return match scope {
                    Scope::Global => {
                        format!("{quoted} is an account option: it belongs inside an account block")
                    }
                    Scope::Account => {
                        format!("{quoted} is a global option: move it out of account blocks")
                    }
                };
            }
            let hint = options::suggest(scope, name.value)
                .map(|s| format!(" (did you mean {}?)", quote_word(s)))
                .unwrap_or_default();
            format!("unknown option {quoted}{here}{hint}")
        });
    }

    /// `value` checked against the kind of `def`; `None` (after reporting) if it is wrong.
    fn typed(
        &mut self,
        def: &'static OptionDef,
        value: &'a Spanned<Value<'a>>,
    ) -> Option<Typed<'a>> {
        // Quoted only for a message: this runs for every option of every account.
        let name = || quote_word(def.name);
        let at = value.span.start;
        let result = match (def.kind, &value.value) {
            (Kind::Text, Value::Str(s)) => Ok(Typed::Text(s)),
            (Kind::NonEmptyText, Value::Str(s)) if s.is_empty() => {
                Err(format!("{} must not be empty", name()))
            }
            (Kind::NonEmptyText, Value::Str(s)) => Ok(Typed::Text(s)),
            (Kind::HttpUri, Value::Str(s)) => match self.uris.get(&**s) {
                Some(url) => Ok(Typed::Uri(Arc::clone(url))),
                None => http_uri(def.name, s).map(|url| {
                    let url = Arc::new(url);
                    self.uris.insert(s, Arc::clone(&url));
                    Typed::Uri(url)
                }),
            },
            (Kind::Listen, Value::Str(s)) => listen(def.name, s).map(|l| Typed::Listen(Some(l))),
            (Kind::Listen, Value::None) => Ok(Typed::Listen(None)),
            (Kind::Time, Value::Time(t)) => time(t).map(Typed::Time),
            (Kind::TextList, Value::List(items)) => Ok(Typed::List(items)),
            (Kind::UriFields, Value::Map(entries)) => {
                for (key, _) in entries {
                    if RESERVED_URI_FIELDS.contains(&&*key.value) {
                        self.error(key.span.start, || {
                            format!(
                                "{} must not set {}: pizauth sets it itself",
                                name(),
                                quote_word(&key.value)
                            )
                        });
                    }
                }
                Ok(Typed::Map(entries))
            }
            (Kind::Flow, Value::Word(w)) => flow(def, w),
            (Kind::Flow, Value::Str(w)) => flow(def, w),
            (Kind::ClientAuth, Value::Word(w)) => client_auth(def, w),
            (Kind::ClientAuth, Value::Str(w)) => client_auth(def, w),
            (kind, found) => Err(format!(
                "{} must be {}, not {}",
                name(),
                kind.expected(),
                describe(found)
            )),
        };
        match result {
            Ok(typed) => Some(typed),
            Err(message) => {
                self.error(at, || message);
                None
            }
        }
    }
}

/// The value of `auth_flow`.
fn flow<'a>(def: &OptionDef, w: &str) -> Result<Typed<'a>, String> {
    match w {
        "code" => Ok(Typed::Flow(Flow::Code)),
        "device" => Ok(Typed::Flow(Flow::Device)),
        "client_credentials" => Ok(Typed::Flow(Flow::ClientCredentials)),
        _ => Err(format!(
            "{} must be {}, not {}",
            quote_word(def.name),
            def.kind.expected(),
            quote_word(w)
        )),
    }
}

/// The value of `client_auth`.
fn client_auth<'a>(def: &OptionDef, w: &str) -> Result<Typed<'a>, String> {
    match w {
        "client_secret_basic" => Ok(Typed::ClientAuth(ClientAuth::Basic)),
        "client_secret_post" => Ok(Typed::ClientAuth(ClientAuth::Post)),
        _ => Err(format!(
            "{} must be {}, not {}",
            quote_word(def.name),
            def.kind.expected(),
            quote_word(w)
        )),
    }
}

/// What kind of value `v` is, for "must be X, not Y" messages (never the value itself:
/// it may be a secret).
fn describe(v: &Value<'_>) -> &'static str {
    match v {
        Value::Str(_) => "a string",
        Value::Time(_) => "a time",
        Value::None => "none",
        Value::Word(_) => "a bare word (strings need double quotes)",
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
    }
}

/// An absolute `http(s)` URI with a host and no fragment; `option` names it in messages.
/// Whether an absolute URI is written with no path: nothing, a `?` or a `#` straight
/// after the authority (`http://localhost`, `http://localhost:8080?x=1`).
fn has_no_path(text: &str) -> bool {
    let Some((_, rest)) = text.split_once("://") else {
        return false;
    };
    rest.find(['/', '?', '#'])
        .is_none_or(|i| rest.as_bytes()[i] != b'/')
}

fn http_uri(option: &str, text: &str) -> Result<Url, String> {
    // Quoted only for a message: this runs for every URI of every account.
    let name = || quote_word(option);
    let url = Url::parse(text).map_err(|e| {
        format!(
            "{} must be an absolute http or https URI, not {} ({e})",
            name(),
            quote_string(text)
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{} must be an http or https URI, not {}",
            name(),
            quote_string(text)
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{} must name a host: {}",
            name(),
            quote_string(text)
        ));
    }
    if url.fragment().is_some() {
        return Err(format!(
            "{} must not have a #fragment: {}",
            name(),
            quote_string(text)
        ));
    }
    Ok(url)
}

/// A listen address: `host:port`, the host non-empty (an IPv6 address in brackets), the
/// port a number from 0 to 65535.
fn listen<'t>(option: &str, text: &'t str) -> Result<&'t str, String> {
    let name = || quote_word(option);
    let wrong = || {
        format!(
            "{} must be host:port, such as \"127.0.0.1:8765\" or \"[::1]:0\", not {}",
            name(),
            quote_string(text)
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(wrong)?;
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|a| !a.is_empty() && !a.contains(['[', ']'])),
        None => !host.is_empty() && !host.contains([':', '[', ']']),
    };
    if !host_ok || host.contains(char::is_whitespace) {
        return Err(wrong());
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(wrong());
    }
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "{} has port {}, but a port must be from 0 to 65535",
            name(),
            quote_word(port)
        ));
    }
    Ok(text)
}

/// A time token (`<digits><s|m|h|d>`, as the lexer guarantees) as a duration.
fn time(text: &str) -> Result<Duration, String> {
    // The unit is one ASCII byte, so cutting it off leaves a valid `str`.
    let (digits, factor) = match text.as_bytes().last() {
        Some(b's') => (&text[..text.len() - 1], 1),
        Some(b'm') => (&text[..text.len() - 1], 60),
        Some(b'h') => (&text[..text.len() - 1], 60 * 60),
        Some(b'd') => (&text[..text.len() - 1], 24 * 60 * 60),
        _ => return Err(format!("{} is not a time", quote_word(text))),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|&secs| secs <= MAX_TIME.as_secs())
        .map(Duration::from_secs)
        .ok_or_else(|| {
            format!(
                "time {} is too large: at most 36500d (100 years)",
                quote_word(text)
            )
        })
}
