//! Why an account has no token, or why its last attempt failed: typed where the
//! failure happens, turned into words only where a user reads them (`show`, `status`,
//! `error_notify_cmd`, the log). The words are those pizauth has always used.

use std::fmt;

use crate::oauth::TokenError;

/// A failure of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The endpoint needed is unknown.
    Endpoint(Endpoint),
    /// No redirect listener suits the account's `redirect_uri`.
    NoListener,
    /// The account was removed while this was under way.
    Gone,
    /// The browser came back with a code from another issuer than the account's (RFC
    /// 9207): this says how (already cleaned).
    IssuerMismatch(String),
    /// The browser came back with an `error` (RFC 6749 4.1.2.1), already cleaned.
    Authorisation {
        /// The `error` code.
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// Exchanging a code or the client credentials failed, after `tries` attempts if
    /// they ran out (`None`: the one attempt failed for good, or a retry follows).
    Exchange {
        /// What was exchanged.
        grant: GrantKind,
        /// Attempts made, when there are no more.
        tries: Option<u32>,
        /// Why.
        cause: Cause,
    },
    /// The request for device codes failed, for this (cleaned) reason.
    DeviceCodes(String),
    /// The user refused the device authorisation.
    DeviceDenied,
    /// The device code expired before the user entered it.
    DeviceExpired,
    /// The token endpoint refused the device code.
    Device(TokenError),
    /// A refresh failed and the token is gone.
    Refresh(Cause),
    /// A refresh failed and is retried (the token is kept).
    Retrying(Cause),
    /// Refreshes kept failing and `transient_error_if_cmd` said to give up.
    GaveUp,
    /// The token expired while refreshes kept failing (told once per token).
    ExpiredWhileFailing(Cause),
}

/// Why an endpoint is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// Neither the config nor an issuer gives it: the option's name.
    NotConfigured(&'static str),
    /// The issuer's metadata lacks it.
    MetadataLacks {
        /// The issuer.
        issuer: String,
        /// The metadata field.
        field: &'static str,
        /// The config option that would give it.
        option: &'static str,
    },
    /// The issuer's metadata could not be had, for this (cleaned) reason.
    Discovery {
        /// The issuer.
        issuer: String,
        /// Why.
        why: String,
    },
}

/// What a request met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// No answer: the transport's message (connection refused, a timeout, ...).
    Transport(String),
    /// An answer that gave no usable token.
    Answer(TokenError),
    /// No endpoint to send it to.
    Endpoint(Endpoint),
}

/// What an exchange sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GrantKind {
    /// An authorisation code.
    Code,
    /// The client's credentials.
    ClientCredentials,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Endpoint(e) => e.fmt(f),
            Failure::NoListener => f.write_str(
                "no redirect listener suits this account's redirect_uri (http_listen or https_listen is none)",
            ),
            Failure::Gone => f.write_str("the account no longer exists"),
            Failure::IssuerMismatch(why) => write!(f, "authorisation refused: {why}"),
            Failure::Authorisation { error, description } => {
                write!(f, "authorisation failed: {error}")?;
                match description {
                    Some(d) => write!(f, " ({d})"),
                    None => Ok(()),
                }
            }
            Failure::Exchange {
                grant,
                tries: Some(n),
                cause,
            } => write!(f, "{grant} failed after {n} tries: {cause}"),
            Failure::Exchange {
                grant,
                tries: None,
                cause,
            } => write!(f, "{grant} failed: {cause}"),
            Failure::DeviceCodes(why) => write!(f, "requesting a device code failed: {why}"),
            Failure::DeviceDenied => f.write_str("authorisation was denied"),
            Failure::DeviceExpired => f.write_str(
                "the device code expired before it was entered: run pizauth show for a new one",
            ),
            Failure::Device(e) => write!(f, "device authorisation failed: {e}"),
            Failure::Refresh(cause) => write!(f, "refreshing failed: {cause}"),
            Failure::Retrying(cause) => cause.fmt(f),
            Failure::GaveUp => {
                f.write_str("refreshing kept failing and transient_error_if_cmd said to give up")
            }
            Failure::ExpiredWhileFailing(cause) => write!(
                f,
                "the access token has expired and refreshing it keeps failing ({cause}); pizauth keeps trying"
            ),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::NotConfigured(option) => write!(f, "no {option} is configured"),
            Endpoint::MetadataLacks {
                issuer,
                field,
                option,
            } => write!(
                f,
                "the metadata of {issuer} has no {field} (give {option} in the config)"
            ),
            Endpoint::Discovery { issuer, why } => {
                write!(f, "cannot discover the endpoints of {issuer}: {why}")
            }
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Transport(message) => f.write_str(message),
            Cause::Answer(e) => e.fmt(f),
            Cause::Endpoint(e) => e.fmt(f),
        }
    }
}

impl fmt::Display for GrantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GrantKind::Code => "exchanging the authorisation code",
            GrantKind::ClientCredentials => "requesting a token with the client credentials",
        })
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words users read are those pizauth used when failures were strings.
    #[test]
    fn failures_read_as_before() {
        let denied = TokenError::Rejected {
            status: 400,
            error: Some("invalid_grant".into()),
            description: None,
        };
        let discovery = Endpoint::Discovery {
            issuer: "https://id.example/".into(),
            why: "HTTP 404".into(),
        };
        for (failure, words) in [
            (
                Failure::Endpoint(Endpoint::NotConfigured("token_uri")),
                "no token_uri is configured",
            ),
            (
                Failure::Endpoint(Endpoint::MetadataLacks {
                    issuer: "https://id.example/".into(),
                    field: "device_authorization_endpoint",
                    option: "device_auth_uri",
                }),
                "the metadata of https://id.example/ has no device_authorization_endpoint (give device_auth_uri in the config)",
            ),
            (
                Failure::Endpoint(discovery.clone()),
                "cannot discover the endpoints of https://id.example/: HTTP 404",
            ),
            (
                Failure::Authorisation {
                    error: "access_denied".into(),
                    description: Some("no".into()),
                },
                "authorisation failed: access_denied (no)",
            ),
            (
                Failure::Exchange {
                    grant: GrantKind::Code,
                    tries: Some(10),
                    cause: Cause::Transport("connection refused".into()),
                },
                "exchanging the authorisation code failed after 10 tries: connection refused",
            ),
            (
                Failure::Exchange {
                    grant: GrantKind::ClientCredentials,
                    tries: None,
                    cause: Cause::Answer(denied.clone()),
                },
                "requesting a token with the client credentials failed: token endpoint answered HTTP 400: invalid_grant",
            ),
            (
                Failure::Refresh(Cause::Answer(denied)),
                "refreshing failed: token endpoint answered HTTP 400: invalid_grant",
            ),
            (
                Failure::Retrying(Cause::Endpoint(discovery)),
                "cannot discover the endpoints of https://id.example/: HTTP 404",
            ),
            (
                Failure::GaveUp,
                "refreshing kept failing and transient_error_if_cmd said to give up",
            ),
            (Failure::DeviceDenied, "authorisation was denied"),
            (
                Failure::IssuerMismatch("iss is \"https://evil.example\"".into()),
                "authorisation refused: iss is \"https://evil.example\"",
            ),
        ] {
            assert_eq!(failure.to_string(), words);
        }
    }
}
