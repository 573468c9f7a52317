//! OAuth2 wire details (RFC 6749, RFC 7636): PKCE, the authorisation URL, token-request
//! bodies, and the classification of token-endpoint responses.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

pub use crate::config::ClientAuth;
use crate::config::{Account, Flow};
use crate::event::{Entropy, HttpRequest, HttpResponse, Method};
use crate::secret::Secret;

/// Bytes of entropy in a `state` parameter (SPEC.md section 5).
pub const STATE_BYTES: usize = 32;
/// Bytes of entropy in a PKCE verifier; 64 bytes encode to 86 characters, within RFC 7636
/// section 4.1's 43 to 128.
pub const VERIFIER_BYTES: usize = 64;
/// The longest provider-supplied text we repeat in messages.
const MAX_PROVIDER_TEXT: usize = 200;

/// `n` random bytes, base64url-encoded without padding.
pub fn random_token(entropy: &mut dyn Entropy, n: usize) -> Secret {
    let mut buf = vec![0u8; n];
    entropy.fill(&mut buf);
    let s = URL_SAFE_NO_PAD.encode(&buf);
    buf.fill(0);
    Secret::new(s)
}

/// The S256 code challenge for `verifier`: base64url(SHA-256(verifier)), RFC 7636 4.2.
pub fn code_challenge(verifier: &Secret) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_str().as_bytes()))
}

/// The redirect URI pizauth gives the provider: `redirect_uri` with its port replaced by
/// that of our own listener (the HTTPS one if `redirect_uri` is `https:` and HTTPS is
/// on, else the HTTP one). `None` if no suitable listener is on.
pub fn redirect_uri(
    account: &Account,
    http_port: Option<u16>,
    https_port: Option<u16>,
) -> Option<Url> {
    let port = match (account.redirect_uri.scheme(), https_port, http_port) {
        ("https", Some(p), _) => p,
        (_, _, Some(p)) => p,
        _ => return None,
    };
    let mut uri = Url::clone(&account.redirect_uri);
    let scheme = if account.redirect_uri.scheme() == "https" && https_port.is_some() {
        "https"
    } else {
        "http"
    };
    // Both calls only fail for URLs that cannot have a port or scheme switched between
    // the two "special" schemes; an http(s) URL with a host always can.
    uri.set_scheme(scheme).ok()?;
    uri.set_port(Some(port)).ok()?;
    Some(uri)
}

/// The redirect URI as sent to the provider: as written in the config but for the
/// port (RFC 8252 7.3 lets only the port vary), so without a path when the config has
/// none (RFC 6749 3.1.2.3 compares the strings).
pub fn redirect_text(account: &Account, redirect_uri: &Url) -> String {
    if account.redirect_uri_bare && redirect_uri.path() == "/" {
        format!(
            "{}{}",
            &redirect_uri[..url::Position::BeforePath],
            &redirect_uri[url::Position::AfterPath..]
        )
    } else {
        redirect_uri.as_str().to_owned()
    }
}

/// The authorisation URL (SPEC.md section 5): `auth_uri` plus, in this order,
/// `access_type`, `code_challenge`, `code_challenge_method`, `client_id`, `redirect_uri`,
/// `response_type`, `state`, `scope` (if any scopes), then `auth_uri_fields`.
pub fn authorization_url(
    account: &Account,
    auth_uri: &Url,
    redirect_uri: &Url,
    state: &Secret,
    challenge: &str,
) -> Url {
    let mut url = auth_uri.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("access_type", "offline")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("client_id", &account.client_id)
            .append_pair("redirect_uri", &redirect_text(account, redirect_uri))
            .append_pair("response_type", "code")
            .append_pair("state", state.as_str());
        if !account.scopes.is_empty() {
            q.append_pair("scope", &account.scopes.join(" "));
        }
        for (k, v) in &account.auth_uri_fields {
            q.append_pair(k, v);
        }
    }
    url
}

/// A form body for the token endpoint. It holds secrets, so it is built straight into a
/// [`Secret`].
fn form(pairs: &[(&str, &str)]) -> Secret<Vec<u8>> {
    // Room for the usual case up front: growing the buffer would copy the secrets into
    // memory that is freed without being zeroed (and costs time).
    let room = pairs
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum::<usize>()
        + 16;
    let mut s = url::form_urlencoded::Serializer::new(String::with_capacity(room));
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    Secret::new(s.finish().into_bytes())
}

/// A request that authenticates the client: its form body and, with
/// `client_secret_basic`, the value of its `Authorization` header. Both hold secrets.
#[derive(Debug)]
pub struct ClientRequest {
    /// The `application/x-www-form-urlencoded` body.
    pub body: Secret<Vec<u8>>,
    /// `Basic base64(client_id ":" client_secret)`, each form-urlencoded first (RFC 6749
    /// section 2.3.1), when the client authenticates with HTTP Basic.
    pub authorization: Option<Secret>,
}

impl ClientRequest {
    /// The request, as a `POST` of the form to `url`, given up after `timeout`.
    pub fn post(self, url: std::sync::Arc<Url>, timeout: std::time::Duration) -> HttpRequest {
        HttpRequest {
            method: Method::Post,
            url,
            body: self.body,
            authorization: self.authorization,
            timeout,
        }
    }
}

/// The client authentication method an account uses: `client_auth` if it is given; else,
/// from its issuer's metadata (`token_endpoint_auth_methods_supported`, when known),
/// `client_secret_post` if listed, else `client_secret_basic` if listed; else
/// `client_secret_post`, as pizauth 1.1.0 always does.
pub fn client_auth_method(
    configured: Option<ClientAuth>,
    metadata: Option<&Metadata>,
) -> ClientAuth {
    if let Some(method) = configured {
        return method;
    }
    let supported = metadata.and_then(|m| m.token_endpoint_auth_methods.as_deref());
    match supported {
        Some(list)
            if !list.iter().any(|m| m == "client_secret_post")
                && list.iter().any(|m| m == "client_secret_basic") =>
        {
            ClientAuth::Basic
        }
        _ => ClientAuth::Post,
    }
}

/// Adds the client's credentials to `pairs` (which name `client_id`) as `method` says. A
/// client without a secret is a public client: it sends its `client_id` in the body
/// whatever the method.
fn authenticate<'a>(
    mut pairs: Vec<(&'a str, &'a str)>,
    client_id: &str,
    client_secret: Option<&'a Secret>,
    method: ClientAuth,
) -> ClientRequest {
    match (client_secret, method) {
        (Some(secret), ClientAuth::Basic) => {
            // RFC 6749 4.1.3: `client_id` goes in the body only for a client that does
            // not authenticate; one method per request (section 2.3).
            pairs.retain(|(k, _)| *k != "client_id");
            let id = form(&[("", client_id)]);
            let pass = form(&[("", secret.as_str())]);
            // `form` writes "=value": skip the "=".
            let mut plain = Vec::with_capacity(id.expose().len() + pass.expose().len());
            plain.extend_from_slice(&id.expose()[1..]);
            plain.push(b':');
            plain.extend_from_slice(&pass.expose()[1..]);
            let plain = Secret::new(plain);
            let mut header = String::with_capacity(6 + plain.expose().len().div_ceil(3) * 4);
            header.push_str("Basic ");
            STANDARD.encode_string(plain.expose(), &mut header);
            ClientRequest {
                body: form(&pairs),
                authorization: Some(Secret::new(header)),
            }
        }
        (Some(secret), ClientAuth::Post) => {
            pairs.push(("client_secret", secret.as_str()));
            ClientRequest {
                body: form(&pairs),
                authorization: None,
            }
        }
        (None, _) => ClientRequest {
            body: form(&pairs),
            authorization: None,
        },
    }
}

/// An authorisation-code exchange (RFC 6749 4.1.3, RFC 7636 4.5).
pub fn code_exchange_body(
    account: &Account,
    method: ClientAuth,
    code: &Secret,
    verifier: &Secret,
    redirect_uri: &Url,
) -> ClientRequest {
    let redirect_text = redirect_text(account, redirect_uri);
    let pairs = vec![
        ("code", code.as_str()),
        ("client_id", account.client_id.as_str()),
        ("code_verifier", verifier.as_str()),
        ("redirect_uri", &redirect_text),
        ("grant_type", "authorization_code"),
    ];
    authenticate(
        pairs,
        &account.client_id,
        account.client_secret.as_ref(),
        method,
    )
}

/// A refresh request (RFC 6749 section 6).
pub fn refresh_body(
    account: &Account,
    method: ClientAuth,
    refresh_token: &Secret,
) -> ClientRequest {
    let pairs = vec![
        ("client_id", account.client_id.as_str()),
        ("refresh_token", refresh_token.as_str()),
        ("grant_type", "refresh_token"),
    ];
    authenticate(
        pairs,
        &account.client_id,
        account.client_secret.as_ref(),
        method,
    )
}

/// A client-credentials request (RFC 6749 4.4.2).
pub fn client_credentials_body(account: &Account, method: ClientAuth) -> ClientRequest {
    let scope = account.scopes.join(" ");
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_id", account.client_id.as_str()),
    ];
    if !account.scopes.is_empty() {
        pairs.push(("scope", scope.as_str()));
    }
    authenticate(
        pairs,
        &account.client_id,
        account.client_secret.as_ref(),
        method,
    )
}

/// A device authorisation request (RFC 8628 3.1).
pub fn device_request_body(account: &Account, method: ClientAuth) -> ClientRequest {
    let scope = account.scopes.join(" ");
    let mut pairs = vec![("client_id", account.client_id.as_str())];
    if !account.scopes.is_empty() {
        pairs.push(("scope", scope.as_str()));
    }
    authenticate(
        pairs,
        &account.client_id,
        account.client_secret.as_ref(),
        method,
    )
}

/// The grant type of a device-flow token request (RFC 8628 3.4).
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A device-flow token request (RFC 8628 3.4).
pub fn device_poll_body(
    account: &Account,
    method: ClientAuth,
    device_code: &Secret,
) -> ClientRequest {
    let pairs = vec![
        ("grant_type", DEVICE_GRANT),
        ("device_code", device_code.as_str()),
        ("client_id", account.client_id.as_str()),
    ];
    authenticate(
        pairs,
        &account.client_id,
        account.client_secret.as_ref(),
        method,
    )
}

/// A revocation request (RFC 7009 2.1). `hint` is `refresh_token` or `access_token`.
pub fn revocation_body(
    client_id: &str,
    client_secret: Option<&Secret>,
    method: ClientAuth,
    token: &Secret,
    hint: &str,
) -> ClientRequest {
    let pairs = vec![
        ("token", token.as_str()),
        ("token_type_hint", hint),
        ("client_id", client_id),
    ];
    authenticate(pairs, client_id, client_secret, method)
}

/// Why a redirect is refused by the mix-up defence of RFC 9207, if it is. `iss` is the
/// redirect's `iss` parameter; `issuer` the account's configured issuer (without one there
/// is nothing to compare with, and the check is off); `iss_promised` whether the issuer's
/// metadata says `authorization_response_iss_parameter_supported` (then a redirect without
/// `iss` is refused too, RFC 9207 section 2.4). Issuers are compared as parsed URLs, as
/// the metadata's own `issuer` is.
pub fn redirect_issuer_mismatch(
    iss: Option<&str>,
    issuer: Option<&Url>,
    iss_promised: bool,
) -> Option<String> {
    let issuer = issuer?;
    match iss {
        Some(claimed) if Url::parse(claimed).ok().as_ref() == Some(issuer) => None,
        Some(claimed) => Some(format!(
            "the redirect names issuer '{}', not '{issuer}' (RFC 9207): the code was not used",
            clean_provider_text(claimed)
        )),
        None if iss_promised => Some(format!(
            "the redirect names no issuer, although the metadata of {issuer} says it would \
             (RFC 9207): the code was not used"
        )),
        None => None,
    }
}

/// The warning for a token obtained without a refresh token although the account asked
/// for `offline_access`: it cannot be refreshed and lapses at expiry. OpenID Connect
/// providers hand out refresh tokens for `offline_access` only after a consent prompt
/// (OpenID Connect Core section 11). Client credentials need no refresh token.
pub fn no_refresh_token_warning(account: &Account, has_refresh_token: bool) -> Option<String> {
    let asked = account.scopes.iter().any(|s| s == "offline_access");
    (asked && !has_refresh_token && account.flow != Flow::ClientCredentials).then(|| {
        "no refresh token came although offline_access was asked for: the token cannot be \
         refreshed and lapses when it expires (with OpenID Connect, add \"prompt\": \
         \"consent\" to auth_uri_fields)"
            .to_owned()
    })
}

/// A device authorisation response (RFC 8628 3.2).
#[derive(Debug)]
pub struct DeviceResponse {
    /// `device_code`.
    pub device_code: Secret,
    /// `user_code`.
    pub user_code: String,
    /// `verification_uri` (Google calls it `verification_url`).
    pub verification_uri: String,
    /// `verification_uri_complete`, if given.
    pub verification_uri_complete: Option<String>,
    /// `expires_in`.
    pub expires_in: Duration,
    /// `interval`, default 5 s (RFC 8628 3.2).
    pub interval: Duration,
}

/// Interprets a device authorisation response.
pub fn parse_device_response(resp: &HttpResponse) -> Result<DeviceResponse, TokenError> {
    let json = successful_json(resp)?;
    let obj = &json;
    let string = |key: &str| match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let seconds = |key: &str| match obj.get(key) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let device_code =
        string("device_code").ok_or_else(|| TokenError::Malformed("no 'device_code'".into()))?;
    let user_code =
        string("user_code").ok_or_else(|| TokenError::Malformed("no 'user_code'".into()))?;
    let verification_uri = string("verification_uri")
        .or_else(|| string("verification_url"))
        .ok_or_else(|| TokenError::Malformed("no 'verification_uri'".into()))?;
    Ok(DeviceResponse {
        device_code: Secret::new(device_code),
        user_code: clean_provider_text(&user_code),
        verification_uri: clean_provider_text(&verification_uri),
        verification_uri_complete: string("verification_uri_complete")
            .map(|s| clean_provider_text(&s)),
        // RFC 8628 makes expires_in mandatory; be lenient with a sane default.
        expires_in: Duration::from_secs(seconds("expires_in").unwrap_or(1800).min(86_400)),
        interval: Duration::from_secs(seconds("interval").unwrap_or(5).clamp(1, 600)),
    })
}

/// Endpoints learnt from an issuer's metadata (RFC 8414 section 2, OpenID Connect
/// Discovery section 3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `authorization_endpoint`.
    pub authorization_endpoint: Option<Arc<Url>>,
    /// `token_endpoint`.
    pub token_endpoint: Option<Arc<Url>>,
    /// `device_authorization_endpoint`.
    pub device_authorization_endpoint: Option<Arc<Url>>,
    /// `revocation_endpoint`.
    pub revocation_endpoint: Option<Arc<Url>>,
    /// `token_endpoint_auth_methods_supported`, if given as a list of strings.
    pub token_endpoint_auth_methods: Option<Vec<String>>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207 section 3).
    pub iss_parameter_supported: bool,
}

/// Where to fetch an issuer's metadata: RFC 8414 (the well-known path inserted before
/// the issuer's path) first, then OpenID Connect discovery (appended to it).
pub fn discovery_urls(issuer: &Url) -> [Url; 2] {
    let path = issuer.path().trim_end_matches('/');
    let mut rfc8414 = issuer.clone();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    rfc8414.set_query(None);
    let mut oidc = issuer.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    oidc.set_query(None);
    [rfc8414, oidc]
}

/// Interprets a metadata document; its `issuer` must be the configured one (RFC 8414
/// 3.3), and every endpoint must be an absolute http(s) URL.
pub fn parse_metadata(resp: &HttpResponse, issuer: &Url) -> Result<Metadata, String> {
    if !(200..300).contains(&resp.status) {
        return Err(format!("HTTP {}", resp.status));
    }
    let json: Value = serde_json::from_slice(resp.body.expose())
        .map_err(|_| "the metadata is not JSON".to_owned())?;
    let Some(obj) = json.as_object() else {
        return Err("the metadata is not a JSON object".to_owned());
    };
    let claimed = obj
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if Url::parse(claimed).ok().as_ref() != Some(issuer) {
        return Err(format!(
            "the metadata names issuer '{}', not '{issuer}'",
            clean_provider_text(claimed)
        ));
    }
    let endpoint = |key: &str| -> Result<Option<Arc<Url>>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => match Url::parse(s) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.fragment().is_none() =>
                {
                    Ok(Some(Arc::new(u)))
                }
                _ => Err(format!("'{key}' is not an absolute http(s) URL")),
            },
            Some(_) => Err(format!("'{key}' is not a string")),
        }
    };
    Ok(Metadata {
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint: endpoint("token_endpoint")?,
        device_authorization_endpoint: endpoint("device_authorization_endpoint")?,
        revocation_endpoint: endpoint("revocation_endpoint")?,
        token_endpoint_auth_methods: obj
            .get("token_endpoint_auth_methods_supported")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            }),
        iss_parameter_supported: obj
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// A successful token response (RFC 6749 5.1).
#[derive(Debug)]
pub struct TokenResponse {
    /// `access_token`.
    pub access_token: Secret,
    /// `refresh_token`, if the provider sent one.
    pub refresh_token: Option<Secret>,
    /// `expires_in`, if the provider sent it.
    pub expires_in: Option<Duration>,
}

/// Why a token response was not a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// A status worth retrying: 408, 429, 500, 502, 503, 504. `retry_after` is the
    /// `Retry-After` header in seconds form, if any.
    Transient {
        /// The HTTP status.
        status: u16,
        /// The provider's `Retry-After`, if given in seconds.
        retry_after: Option<Duration>,
    },
    /// Any other HTTP error status, or an `error` field (RFC 6749 5.2).
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The `error` code, if the body had one (e.g. `invalid_grant`).
        error: Option<String>,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// A 2xx response that is not a usable token response.
    Malformed(String),
}

impl TokenError {
    /// Whether a refresh that failed this way should keep the token and retry. Only a
    /// well-formed OAuth error answer (RFC 6749 5.2: a 4xx whose JSON `error` is
    /// `invalid_grant`, `invalid_client` and the like) is a refusal; a CDN's 52x, an HTML
    /// page, a body cut short or a token nobody can use is a hiccup.
    pub fn is_transient(&self) -> bool {
        match self {
            TokenError::Rejected {
                status,
                error: Some(e),
                ..
            } => !(400..500).contains(status) || TRANSIENT_ERRORS.contains(&e.as_str()),
            TokenError::Transient { .. }
            | TokenError::Rejected { .. }
            | TokenError::Malformed(_) => true,
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Transient { status, .. } => {
                write!(f, "token endpoint answered HTTP {status} (temporary)")
            }
            TokenError::Rejected {
                status,
                error,
                description,
            } => {
                write!(f, "token endpoint answered HTTP {status}")?;
                if let Some(e) = error {
                    write!(f, ": {e}")?;
                }
                if let Some(d) = description {
                    write!(f, " ({d})")?;
                }
                Ok(())
            }
            TokenError::Malformed(why) => write!(f, "unusable token response: {why}"),
        }
    }
}

/// OAuth `error` codes that say "not now" rather than "no" (RFC 6749 5.2 and 4.1.2.1,
/// RFC 8628 3.5).
const TRANSIENT_ERRORS: [&str; 4] = [
    "temporarily_unavailable",
    "server_error",
    "slow_down",
    "authorization_pending",
];

/// Whether `token` is made of RFC 6750 2.1's `b64token` characters:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`. A token with anything
/// else (a space, a newline, an ANSI escape) would be printed raw by `show`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The JSON object of a successful answer from a token or device endpoint, or the error
/// it amounts to: a status worth retrying (SPEC.md section 5), another error status or an
/// `error` field (RFC 6749 5.2), or a body that is not a JSON object.
fn successful_json(resp: &HttpResponse) -> Result<serde_json::Map<String, Value>, TokenError> {
    let json: Option<Value> = serde_json::from_slice(resp.body.expose()).ok();
    let text = |key: &str| -> Option<String> {
        json.as_ref()
            .and_then(|j| j.get(key))
            .and_then(Value::as_str)
            .map(clean_provider_text)
    };
    if is_transient_status(resp.status) {
        return Err(TokenError::Transient {
            status: resp.status,
            retry_after: retry_after(resp),
        });
    }
    let error = text("error");
    if !(200..300).contains(&resp.status) || error.is_some() {
        return Err(TokenError::Rejected {
            status: resp.status,
            error,
            description: text("error_description"),
        });
    }
    match json {
        Some(Value::Object(obj)) => Ok(obj),
        _ => Err(TokenError::Malformed(
            "the body is not a JSON object".into(),
        )),
    }
}

/// Whether an HTTP status from a token endpoint is worth retrying (SPEC.md section 5).
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Interprets a token-endpoint response.
pub fn parse_token_response(resp: &HttpResponse) -> Result<TokenResponse, TokenError> {
    let json = successful_json(resp)?;
    let obj = &json;
    let access_token = match obj.get("access_token") {
        Some(Value::String(s)) if is_b64token(s) => Secret::new(s.clone()),
        Some(Value::String(s)) if !s.is_empty() => {
            return Err(TokenError::Malformed(
                "'access_token' has characters outside RFC 6750's b64token".into(),
            ));
        }
        Some(_) => {
            return Err(TokenError::Malformed(
                "'access_token' is not a non-empty string".into(),
            ));
        }
        None => return Err(TokenError::Malformed("no 'access_token'".into())),
    };
    match obj.get("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => (),
        Some(Value::String(t)) => {
            return Err(TokenError::Malformed(format!(
                "'token_type' is '{}', not 'bearer'",
                clean_provider_text(t)
            )));
        }
        _ => return Err(TokenError::Malformed("no 'token_type'".into())),
    }
    let refresh_token = match obj.get("refresh_token") {
        Some(Value::String(s)) if !s.is_empty() => Some(Secret::new(s.clone())),
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(TokenError::Malformed(
                "'refresh_token' is not a string".into(),
            ));
        }
    };
    let expires_in = match obj.get("expires_in") {
        None | Some(Value::Null) => None,
        // Some providers send the number as a string.
        Some(Value::String(s)) => match s.trim().parse::<u64>() {
            Ok(n) => Some(Duration::from_secs(n)),
            Err(_) => {
                return Err(TokenError::Malformed(
                    "'expires_in' is not a number of seconds".into(),
                ));
            }
        },
        Some(Value::Number(n)) => match n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        {
            Some(n) => Some(Duration::from_secs(n)),
            None => return Err(TokenError::Malformed("'expires_in' is negative".into())),
        },
        Some(_) => return Err(TokenError::Malformed("'expires_in' is not a number".into())),
    };
    if expires_in == Some(Duration::ZERO) {
        // Nothing can use it, and refreshing it at once would bring another one.
        return Err(TokenError::Malformed(
            "'expires_in' is 0: the token has already expired".into(),
        ));
    }
    Ok(TokenResponse {
        access_token,
        refresh_token,
        expires_in,
    })
}

/// `Retry-After` in its delay-seconds form (RFC 9110 10.2.3); the HTTP-date form is
/// ignored (refresh_retry applies instead).
pub fn retry_after(resp: &HttpResponse) -> Option<Duration> {
    resp.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Provider text made safe to repeat in one log line or status message: control
/// characters replaced, length capped.
pub fn clean_provider_text(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_PROVIDER_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > MAX_PROVIDER_TEXT {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("retry-after".into(), "120".into())],
            body: Secret::new(body.as_bytes().to_vec()),
        }
    }

    #[test]
    fn rfc7636_appendix_b_challenge() {
        let v = Secret::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned());
        assert_eq!(
            code_challenge(&v),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn token_response_accepts_bearer_in_any_case_and_string_expiry() {
        let t = parse_token_response(&resp(
            200,
            r#"{"access_token":"a","token_type":"Bearer","expires_in":"3600","refresh_token":"r"}"#,
        ))
        .unwrap();
        assert_eq!(t.access_token.as_str(), "a");
        assert_eq!(t.refresh_token.unwrap().as_str(), "r");
        assert_eq!(t.expires_in, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn token_response_classification() {
        assert_eq!(
            parse_token_response(&resp(503, "")).unwrap_err(),
            TokenError::Transient {
                status: 503,
                retry_after: Some(Duration::from_secs(120))
            }
        );
        let e = parse_token_response(&resp(
            400,
            r#"{"error":"invalid_grant","error_description":"expired\nrefresh"}"#,
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "token endpoint answered HTTP 400: invalid_grant (expired refresh)"
        );
        assert!(!e.is_transient());
        let e = parse_token_response(&resp(200, r#"{"error":"slow_down"}"#)).unwrap_err();
        assert!(matches!(e, TokenError::Rejected { status: 200, .. }));
        // Only a 4xx carrying an OAuth refusal is permanent (issue 12, case 6).
        for (status, body, transient) in [
            (401, r#"{"error":"invalid_client"}"#, false),
            (400, r#"{"error":"unauthorized_client"}"#, false),
            (400, r#"{"error":"invalid_scope"}"#, false),
            (400, r#"{"error":"temporarily_unavailable"}"#, true),
            (520, "", true),
            (524, "<html>Gateway timeout</html>", true),
            (401, "<html>log in</html>", true),
            (200, "<html>down for maintenance</html>", true),
            (200, r#"{"access_token":"a","tok"#, true),
            (200, r#"{"error":"invalid_grant"}"#, true),
        ] {
            let e = parse_token_response(&resp(status, body)).unwrap_err();
            assert_eq!(e.is_transient(), transient, "{status} {body}");
        }
        for token in ["eyJh.eyJz.c2ln", "EwB+/A==", "ya29.a0-_~"] {
            let body = format!(r#"{{"access_token":"{token}","token_type":"bearer"}}"#);
            assert!(parse_token_response(&resp(200, &body)).is_ok(), "{token}");
        }
        for body in [
            "not json",
            "[]",
            r#"{"token_type":"bearer"}"#,
            r#"{"access_token":"a"}"#,
            r#"{"access_token":"a","token_type":"mac"}"#,
            r#"{"access_token":"a","token_type":"bearer","expires_in":-5}"#,
            r#"{"access_token":5,"token_type":"bearer"}"#,
            r#"{"access_token":"a","token_type":"bearer","expires_in":0}"#,
            "{\"access_token\":\"a\\u001b[31mb\",\"token_type\":\"bearer\"}",
            r#"{"access_token":"a\nb","token_type":"bearer"}"#,
            r#"{"access_token":"a b","token_type":"bearer"}"#,
            r#"{"access_token":"==","token_type":"bearer"}"#,
        ] {
            assert!(
                matches!(
                    parse_token_response(&resp(200, body)),
                    Err(TokenError::Malformed(_))
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn discovery_urls_follow_both_specifications() {
        let [a, b] = discovery_urls(&Url::parse("https://login.example.com/tenant/v2.0").unwrap());
        assert_eq!(
            a.as_str(),
            "https://login.example.com/.well-known/oauth-authorization-server/tenant/v2.0"
        );
        assert_eq!(
            b.as_str(),
            "https://login.example.com/tenant/v2.0/.well-known/openid-configuration"
        );
        let [a, b] = discovery_urls(&Url::parse("https://accounts.example.com").unwrap());
        assert_eq!(
            a.as_str(),
            "https://accounts.example.com/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            b.as_str(),
            "https://accounts.example.com/.well-known/openid-configuration"
        );
    }

    #[test]
    fn metadata_must_name_the_configured_issuer() {
        let issuer = Url::parse("https://id.example.com").unwrap();
        let m = parse_metadata(
            &resp(200, r#"{"issuer":"https://id.example.com","token_endpoint":"https://id.example.com/t","revocation_endpoint":"https://id.example.com/r"}"#),
            &issuer,
        )
        .unwrap();
        assert_eq!(
            m.token_endpoint.unwrap().as_str(),
            "https://id.example.com/t"
        );
        assert!(m.authorization_endpoint.is_none());
        let e = parse_metadata(
            &resp(200, r#"{"issuer":"https://evil.example.com"}"#),
            &issuer,
        )
        .unwrap_err();
        assert!(e.contains("evil"), "{e}");
        assert!(
            parse_metadata(
                &resp(
                    200,
                    r#"{"issuer":"https://id.example.com","token_endpoint":"javascript:x"}"#
                ),
                &issuer
            )
            .is_err()
        );
    }

    #[test]
    fn device_response_accepts_google_spelling_and_defaults() {
        let d = parse_device_response(&resp(
            200,
            r#"{"device_code":"D","user_code":"ABCD-EFGH","verification_url":"https://example.com/device","expires_in":"900"}"#,
        ))
        .unwrap();
        assert_eq!(d.verification_uri, "https://example.com/device");
        assert_eq!(d.interval, Duration::from_secs(5));
        assert_eq!(d.expires_in, Duration::from_secs(900));
        assert!(parse_device_response(&resp(200, r#"{"user_code":"x"}"#)).is_err());
    }

    #[test]
    fn malformed_messages_never_quote_tokens() {
        let e = parse_token_response(&resp(
            200,
            r#"{"access_token":"SECRETTOKEN","token_type":"mac"}"#,
        ))
        .unwrap_err();
        assert!(!e.to_string().contains("SECRETTOKEN"));
    }

    /// An account parsed from `extra` options (plus the endpoints and a client id).
    fn account(extra: &str) -> Account {
        let src = format!(
            "account \"a\" {{ auth_uri = \"https://a.example/auth\"; token_uri = \
             \"https://a.example/token\"; client_id = \"my client\"; {extra} }}"
        );
        let mut config = crate::Config::parse(&src, "test.conf").unwrap().config;
        config.accounts.remove(0)
    }

    fn body_pairs(r: &ClientRequest) -> Vec<(String, String)> {
        url::form_urlencoded::parse(r.body.expose())
            .into_owned()
            .collect()
    }

    /// RFC 6749 2.3.1: Basic carries form-urlencoded id and secret, and then neither is in
    /// the body; every request that authenticates the client does so the same way.
    #[test]
    fn basic_client_authentication_moves_the_credentials_to_a_header() {
        let a = account(r#"client_secret = "s3:cr&t é";"#);
        let rt = Secret::new("RT".to_owned());
        let redirect = Url::parse("http://127.0.0.1:1/").unwrap();
        let requests = [
            refresh_body(&a, ClientAuth::Basic, &rt),
            code_exchange_body(&a, ClientAuth::Basic, &rt, &rt, &redirect),
            client_credentials_body(&a, ClientAuth::Basic),
            device_request_body(&a, ClientAuth::Basic),
            device_poll_body(&a, ClientAuth::Basic, &rt),
            revocation_body(
                "my client",
                a.client_secret.as_ref(),
                ClientAuth::Basic,
                &rt,
                "x",
            ),
        ];
        for r in &requests {
            let header = r.authorization.as_ref().expect("a Basic header");
            let encoded = header.as_str().strip_prefix("Basic ").expect("Basic");
            let plain = STANDARD.decode(encoded).unwrap();
            assert_eq!(plain, b"my+client:s3%3Acr%26t+%C3%A9");
            let pairs = body_pairs(r);
            assert!(
                pairs
                    .iter()
                    .all(|(k, _)| k != "client_id" && k != "client_secret"),
                "{pairs:?}"
            );
        }
        assert_eq!(
            body_pairs(&requests[0]),
            [
                ("refresh_token".to_owned(), "RT".to_owned()),
                ("grant_type".to_owned(), "refresh_token".to_owned())
            ]
        );
    }

    #[test]
    fn post_client_authentication_is_the_body_as_before() {
        let a = account(r#"client_secret = "sec";"#);
        let r = refresh_body(&a, ClientAuth::Post, &Secret::new("RT".to_owned()));
        assert!(r.authorization.is_none());
        assert_eq!(
            std::str::from_utf8(r.body.expose()).unwrap(),
            "client_id=my+client&refresh_token=RT&grant_type=refresh_token&client_secret=sec"
        );
        // A public client sends its id in the body, whatever the method.
        let public = account("");
        for method in [ClientAuth::Basic, ClientAuth::Post] {
            let r = client_credentials_body(&public, method);
            assert!(r.authorization.is_none());
            assert_eq!(
                std::str::from_utf8(r.body.expose()).unwrap(),
                "grant_type=client_credentials&client_id=my+client"
            );
        }
    }

    #[test]
    fn the_method_is_configured_else_chosen_from_the_metadata() {
        let listing = |methods: Option<&[&str]>| Metadata {
            token_endpoint_auth_methods: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
            ..Metadata::default()
        };
        let basic_only = listing(Some(&["client_secret_basic", "private_key_jwt"]));
        let both = listing(Some(&["client_secret_basic", "client_secret_post"]));
        let unlisted = listing(None);
        let neither = listing(Some(&["private_key_jwt"]));
        use ClientAuth::{Basic, Post};
        assert_eq!(client_auth_method(None, None), Post);
        assert_eq!(client_auth_method(None, Some(&basic_only)), Basic);
        assert_eq!(client_auth_method(None, Some(&both)), Post);
        assert_eq!(client_auth_method(None, Some(&unlisted)), Post);
        assert_eq!(client_auth_method(None, Some(&neither)), Post);
        assert_eq!(client_auth_method(Some(Post), Some(&basic_only)), Post);
        assert_eq!(client_auth_method(Some(Basic), Some(&both)), Basic);
        assert_eq!(client_auth_method(Some(Basic), None), Basic);
    }

    #[test]
    fn metadata_gives_the_auth_methods_and_the_iss_promise() {
        let issuer = Url::parse("https://id.example/").unwrap();
        let m = parse_metadata(
            &resp(
                200,
                r#"{"issuer":"https://id.example/","token_endpoint_auth_methods_supported":["client_secret_basic"],"authorization_response_iss_parameter_supported":true}"#,
            ),
            &issuer,
        )
        .unwrap();
        assert_eq!(
            m.token_endpoint_auth_methods.as_deref(),
            Some(&["client_secret_basic".to_owned()][..])
        );
        assert!(m.iss_parameter_supported);
        let m = parse_metadata(&resp(200, r#"{"issuer":"https://id.example/"}"#), &issuer).unwrap();
        assert_eq!(m.token_endpoint_auth_methods, None);
        assert!(!m.iss_parameter_supported);
    }

    /// RFC 9207: a redirect's `iss` must be the account's issuer; a missing one is refused
    /// only when the metadata promised it; without an issuer there is nothing to compare.
    #[test]
    fn the_redirect_issuer_is_checked() {
        let issuer = Url::parse("https://id.example/tenant").unwrap();
        let i = Some(&issuer);
        assert_eq!(
            redirect_issuer_mismatch(Some("https://id.example/tenant"), i, true),
            None
        );
        assert_eq!(redirect_issuer_mismatch(None, i, false), None);
        assert_eq!(
            redirect_issuer_mismatch(Some("https://evil.example/"), None, true),
            None
        );
        assert_eq!(redirect_issuer_mismatch(None, None, true), None);
        let why = redirect_issuer_mismatch(Some("https://evil.example/\x1b[0m"), i, false).unwrap();
        assert!(
            why.starts_with("the redirect names issuer 'https://evil.example/"),
            "{why}"
        );
        assert!(!why.contains('\x1b'), "{why}");
        let why = redirect_issuer_mismatch(None, i, true).unwrap();
        assert!(why.contains("names no issuer"), "{why}");
        assert!(redirect_issuer_mismatch(Some("https://id.example/tenant/x"), i, false).is_some());
    }

    #[test]
    fn a_missing_refresh_token_is_a_warning_only_if_offline_access_was_asked() {
        let offline = account(r#"scopes = ["mail", "offline_access"];"#);
        let w = no_refresh_token_warning(&offline, false).unwrap();
        assert!(w.contains("\"prompt\": \"consent\""), "{w}");
        assert_eq!(no_refresh_token_warning(&offline, true), None);
        assert_eq!(
            no_refresh_token_warning(&account(r#"scopes = ["mail"];"#), false),
            None
        );
        let cc = account(
            r#"scopes = ["offline_access"]; auth_flow = client_credentials; client_secret = "s";"#,
        );
        assert_eq!(no_refresh_token_warning(&cc, false), None);
    }
}
