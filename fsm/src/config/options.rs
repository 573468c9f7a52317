//! The options the language knows: one row per option and scope, saying what kind of
//! value it takes and whether it is mandatory or deprecated. Adding an option is adding a
//! row here and reading it in [`validate`](super::validate).

/// Where an option may appear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scope {
    /// At the top level of the file.
    Global,
    /// Inside an `account "name" { ... }` block.
    Account,
}

/// What an option's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Any string.
    Text,
    /// A string that is not empty.
    NonEmptyText,
    /// An absolute `http` or `https` URI with a host and without a fragment.
    HttpUri,
    /// `"host:port"` or `none`.
    Listen,
    /// A time such as `90s`.
    Time,
    /// A list of strings.
    TextList,
    /// A map of strings to strings, without the keys pizauth sets itself.
    UriFields,
    /// One of the authorisation flows: `code`, `device` or `client_credentials`.
    Flow,
    /// A client authentication method: `client_secret_basic` or `client_secret_post`.
    ClientAuth,
}

impl Kind {
    /// What a value of this kind looks like, for "must be ..." messages.
    pub(super) fn expected(self) -> &'static str {
        match self {
            Kind::Text | Kind::NonEmptyText => "a string",
            Kind::HttpUri => "a string holding an http or https URI",
            Kind::Listen => "a string such as \"127.0.0.1:8765\", or none",
            Kind::Time => "a time such as 90s, 15m, 2h or 1d",
            Kind::TextList => "a list of strings such as [\"a\", \"b\"]",
            Kind::UriFields => "a map of strings such as { \"key\": \"value\" }",
            Kind::Flow => "one of code, device or client_credentials",
            Kind::ClientAuth => "client_secret_basic or client_secret_post",
        }
    }
}

/// Whether an option must be given, and whether its name is still current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    /// May be given.
    Optional,
    /// Must be given.
    Mandatory,
    /// An old name of the option named here: accepted with a warning.
    RenamedTo(&'static str),
    /// Accepted with a warning that says what to use instead.
    Deprecated(&'static str),
}

/// One option in one scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct OptionDef {
    /// Its name.
    pub name: &'static str,
    /// Where it may appear.
    pub scope: Scope,
    /// What its value must be.
    pub kind: Kind,
    /// Mandatory, optional or deprecated.
    pub status: Status,
}

const fn def(name: &'static str, scope: Scope, kind: Kind, status: Status) -> OptionDef {
    OptionDef {
        name,
        scope,
        kind,
        status,
    }
}

use Kind::*;
use Scope::{Account, Global};
use Status::*;

/// Every option, by scope and then by name.
pub(super) const OPTIONS: &[OptionDef] = &[
    def(
        "auth_error_cmd",
        Global,
        Text,
        RenamedTo("error_notify_cmd"),
    ),
    def("auth_notify_cmd", Global, Text, Optional),
    def("auth_notify_interval", Global, Time, Optional),
    def("error_notify_cmd", Global, Text, Optional),
    def("http_listen", Global, Listen, Optional),
    def("https_listen", Global, Listen, Optional),
    def("refresh_at_least", Global, Time, Optional),
    def("refresh_before_expiry", Global, Time, Optional),
    def("refresh_retry", Global, Time, Optional),
    def(
        "refresh_retry_interval",
        Global,
        Time,
        RenamedTo("refresh_retry"),
    ),
    def("startup_cmd", Global, Text, Optional),
    def("token_event_cmd", Global, Text, Optional),
    def("transient_error_if_cmd", Global, Text, Optional),
    def("auth_flow", Account, Flow, Optional),
    // Mandatory unless `issuer` is given, and then only for the flows that use them:
    // checked in `validate::account`.
    def("auth_uri", Account, HttpUri, Optional),
    def("auth_uri_fields", Account, UriFields, Optional),
    def("client_auth", Account, ClientAuth, Optional),
    def("client_id", Account, NonEmptyText, Mandatory),
    def("client_secret", Account, Text, Optional),
    def("client_secret_cmd", Account, NonEmptyText, Optional),
    def("device_auth_uri", Account, HttpUri, Optional),
    def("issuer", Account, HttpUri, Optional),
    def(
        "login_hint",
        Account,
        Text,
        Deprecated("use auth_uri_fields = { \"login_hint\": \"...\" }"),
    ),
    def("redirect_uri", Account, HttpUri, Optional),
    def("revoke_uri", Account, HttpUri, Optional),
    def("refresh_at_least", Account, Time, Optional),
    def("refresh_before_expiry", Account, Time, Optional),
    def("refresh_retry", Account, Time, Optional),
    def(
        "refresh_retry_interval",
        Account,
        Time,
        RenamedTo("refresh_retry"),
    ),
    def("scopes", Account, TextList, Optional),
    def("token_uri", Account, HttpUri, Optional),
];

/// The keys of `auth_uri_fields` that pizauth puts in the authorisation URL itself
/// (SPEC.md section 5).
pub(super) const RESERVED_URI_FIELDS: &[&str] = &[
    "access_type",
    "client_id",
    "code_challenge",
    "code_challenge_method",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
];

/// The option `name` in `scope`.
pub(super) fn lookup(scope: Scope, name: &str) -> Option<&'static OptionDef> {
    OPTIONS.iter().find(|d| d.scope == scope && d.name == name)
}

/// The option `name` in `scope`, with an old name resolved to the current one.
pub(super) fn current(def: &'static OptionDef) -> &'static OptionDef {
    match def.status {
        RenamedTo(new) => lookup(def.scope, new).unwrap_or(def),
        _ => def,
    }
}

/// The current option of `scope` whose name is closest to `name`, if one is close enough
/// to be a likely typo.
pub(super) fn suggest(scope: Scope, name: &str) -> Option<&'static str> {
    // Longer than any option by far: no typo, and not worth the quadratic distance.
    if name.chars().count() > 40 {
        return None;
    }
    let name = name.to_ascii_lowercase().replace('-', "_");
    OPTIONS
        .iter()
        .filter(|d| d.scope == scope && !matches!(d.status, RenamedTo(_) | Deprecated(_)))
        .map(|d| (distance(&name, d.name), d.name))
        .filter(|&(dist, candidate)| dist <= 2 || dist * 3 <= candidate.len())
        .min()
        .map(|(_, candidate)| candidate)
}

/// The edit distance from `a` to `b`: insertions, deletions, substitutions and swaps of
/// neighbours each count one (the "optimal string alignment" distance).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the table: two back, one back, and the current one.
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(prev2[j - 2] + 1);
            }
            cur[j] = best;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("abc", "abc"), 0);
        assert_eq!(distance("client_secert", "client_secret"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest(Account, "client_secert"), Some("client_secret"));
        assert_eq!(suggest(Account, "Client-ID"), Some("client_id"));
        assert_eq!(suggest(Account, "scope"), Some("scopes"));
        assert_eq!(suggest(Global, "http_listne"), Some("http_listen"));
        assert_eq!(suggest(Global, "frobnicate"), None);
        assert_eq!(suggest(Account, &"x".repeat(1000)), None);
    }

    #[test]
    fn the_table_is_consistent() {
        for (i, d) in OPTIONS.iter().enumerate() {
            assert!(
                OPTIONS[..i]
                    .iter()
                    .all(|e| (e.scope, e.name) != (d.scope, d.name)),
                "{} twice",
                d.name
            );
            if let RenamedTo(new) = d.status {
                let target = lookup(d.scope, new).map(|t| (t.kind, t.status));
                assert_eq!(target, Some((d.kind, Optional)), "{}", d.name);
            }
        }
    }
}
