//! The configuration language (SPEC.md section 4): lexed and parsed with winnow into a
//! syntax tree that keeps source spans (modules `lexer` and `syntax`), then checked against
//! a table of known options (`options`) and validated into a typed [`Config`]
//! (`validate`). Every problem becomes a [`Diagnostic`] naming file, line and column; the
//! parser recovers after a syntax error, so one run reports every problem in a file.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::secret::Secret;

mod diagnostic;
mod lexer;
mod options;
mod syntax;
#[cfg(test)]
mod tests;
mod validate;

pub use diagnostic::{Diagnostic, Diagnostics, Severity};

/// Default for `auth_notify_interval`.
pub const DEFAULT_AUTH_NOTIFY_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Default for `refresh_at_least`.
pub const DEFAULT_REFRESH_AT_LEAST: Duration = Duration::from_secs(90 * 60);
/// Default for `refresh_before_expiry`.
pub const DEFAULT_REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(90);
/// Default for `refresh_retry`.
pub const DEFAULT_REFRESH_RETRY: Duration = Duration::from_secs(40);
/// Default for `http_listen` and `https_listen`: loopback, any free port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";
/// Default for an account's `redirect_uri`.
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost/";
/// The largest config file we read (a sane bound: real files are a few KiB).
pub const MAX_CONFIG_BYTES: usize = 1 << 20;
/// The longest time a config file may give (100 years, `36500d`): longer ones are
/// rejected, so that adding any configured time to a point in time cannot overflow.
pub const MAX_TIME: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Accounts, sorted by name; names are unique.
    pub accounts: Vec<Account>,
    /// `auth_notify_cmd`: run when an authorisation request starts and while it is pending.
    pub auth_notify_cmd: Option<String>,
    /// `auth_notify_interval`: how often `auth_notify_cmd` is repeated while pending.
    pub auth_notify_interval: Duration,
    /// `error_notify_cmd` (or the deprecated `auth_error_cmd`); unset: errors go to the log.
    pub error_notify_cmd: Option<String>,
    /// `http_listen`: bind address of the HTTP redirect listener; `None` when `none`.
    pub http_listen: Option<String>,
    /// `https_listen`: bind address of the HTTPS redirect listener; `None` when `none`.
    pub https_listen: Option<String>,
    /// `startup_cmd`: run once, after the control socket accepts requests.
    pub startup_cmd: Option<String>,
    /// `token_event_cmd`: run, one at a time and in order, for each token event.
    pub token_event_cmd: Option<String>,
    /// `transient_error_if_cmd`: asked after every 6th consecutive transient failure.
    pub transient_error_if_cmd: Option<String>,
}

/// How the client authenticates itself to the provider (`client_auth`; RFC 6749 section
/// 2.3.1), in every request that carries its secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: `client_id` and `client_secret` in an HTTP `Authorization:
    /// Basic` header, and neither in the body.
    Basic,
    /// `client_secret_post`: both in the request body (what pizauth 1.1.0 does).
    Post,
}

impl ClientAuth {
    /// The name used in the config language and in provider metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::Basic => "client_secret_basic",
            ClientAuth::Post => "client_secret_post",
        }
    }
}

/// How an account obtains its first token (`auth_flow`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flow {
    /// The authorisation-code flow with PKCE and a browser redirect (the default).
    #[default]
    Code,
    /// The device authorisation grant (RFC 8628): the user enters a code on another
    /// device; no redirect listener is involved.
    Device,
    /// The client-credentials grant (RFC 6749 4.4): tokens without a user.
    ClientCredentials,
}

impl Flow {
    /// The name used in the config language and in `status -j`.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Code => "code",
            Flow::Device => "device",
            Flow::ClientCredentials => "client_credentials",
        }
    }
}

/// One `account "name" { ... }` block, with the global defaults already folded in.
///
/// Endpoints and scopes are shared, not copied: accounts of one provider usually name the
/// same URIs and scopes, so the parser gives every account that writes the same text the
/// same `Arc` (a daemon with a thousand accounts holds each endpoint once).
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    /// The account's name, as given after `account`.
    pub name: String,
    /// `auth_flow`.
    pub flow: Flow,
    /// `issuer`: where to discover the endpoints not given here (RFC 8414, OpenID
    /// Connect discovery).
    pub issuer: Option<Arc<Url>>,
    /// `auth_uri`: absolute http(s), no fragment. Given unless discovered from `issuer`
    /// or unused by the flow.
    pub auth_uri: Option<Arc<Url>>,
    /// `token_uri`: absolute http(s), no fragment. Given unless discovered.
    pub token_uri: Option<Arc<Url>>,
    /// `device_auth_uri`, for the device flow. Given unless discovered.
    pub device_auth_uri: Option<Arc<Url>>,
    /// `revoke_uri`: the RFC 7009 revocation endpoint, if given (or discovered).
    pub revoke_uri: Option<Arc<Url>>,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`, if any; filled in from `client_secret_cmd` by whoever runs it.
    pub client_secret: Option<Secret>,
    /// `client_secret_cmd`: a shell command whose trimmed stdout is the client secret.
    pub client_secret_cmd: Option<String>,
    /// `client_auth`, if given; unset means: from the issuer's metadata, else
    /// `client_secret_post` ([`crate::oauth::client_auth_method`]).
    pub client_auth: Option<ClientAuth>,
    /// `scopes`, in order (may be empty).
    pub scopes: Arc<[String]>,
    /// `auth_uri_fields`, in order, keys may repeat; a deprecated `login_hint` is folded in
    /// here as the entry `login_hint`.
    pub auth_uri_fields: Vec<(String, String)>,
    /// `redirect_uri` (default `http://localhost/`); its port is replaced by the listener's.
    pub redirect_uri: Arc<Url>,
    /// Whether `redirect_uri` was written with no path (`http://localhost`, as
    /// Microsoft's registration writes it): the URI sent to the provider then has none
    /// either, since providers compare it as a string (RFC 6749 3.1.2.3).
    pub redirect_uri_bare: bool,
    /// Refresh timing, the account's own value or the global one.
    pub timing: Timing,
}

/// When to refresh (SPEC.md section 5), resolved per account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// `refresh_at_least`: refresh no later than this long after obtaining a token.
    pub refresh_at_least: Duration,
    /// `refresh_before_expiry`: refresh this long before the token expires.
    pub refresh_before_expiry: Duration,
    /// `refresh_retry`: wait this long after a failed refresh before trying again.
    pub refresh_retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            refresh_at_least: DEFAULT_REFRESH_AT_LEAST,
            refresh_before_expiry: DEFAULT_REFRESH_BEFORE_EXPIRY,
            refresh_retry: DEFAULT_REFRESH_RETRY,
        }
    }
}

impl Default for Config {
    /// The configuration of an empty file.
    fn default() -> Self {
        Self {
            accounts: Vec::new(),
            auth_notify_cmd: None,
            auth_notify_interval: DEFAULT_AUTH_NOTIFY_INTERVAL,
            error_notify_cmd: None,
            http_listen: Some(DEFAULT_LISTEN.to_owned()),
            https_listen: Some(DEFAULT_LISTEN.to_owned()),
            startup_cmd: None,
            token_event_cmd: None,
            transient_error_if_cmd: None,
        }
    }
}

/// A successfully parsed file, with any warnings (deprecated names) to show the user.
#[derive(Debug)]
pub struct Parsed {
    /// The configuration.
    pub config: Config,
    /// Warnings, in source order; each already names file, line and column.
    pub warnings: Diagnostics,
}

/// The name of every option the language knows, global and per account, deprecated
/// names included (some names appear twice, once per scope). For documentation checks.
pub fn option_names() -> impl Iterator<Item = &'static str> {
    options::OPTIONS.iter().map(|o| o.name)
}

impl Config {
    /// Parses and validates `source`, the text of the file named `file` (used in messages).
    /// On failure every error found is returned, not only the first.
    pub fn parse(source: &str, file: &str) -> Result<Parsed, Diagnostics> {
        validate::parse(source, file)
    }

    /// The account called `name`.
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts
            .binary_search_by(|a| a.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.accounts[i])
    }
}
