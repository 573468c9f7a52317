//! The control protocol between `pizauth` clients and the server.
//!
//! A client connects to the Unix socket, writes one JSON [`Request`], shuts down its
//! write half, reads one JSON [`Reply`] and closes. Both sides use these types, so they
//! cannot drift apart. Decoding is here, in the core, so that garbage on the socket is
//! judged (and fuzzed) in one place.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::time::WallTime;

/// The largest request the server reads (a `restore` of thousands of accounts fits).
pub const MAX_REQUEST_BYTES: usize = 16 << 20;

/// What a client asks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// `pizauth show [-u] [-w SECONDS] ACCOUNT`.
    Show {
        /// The account's name.
        account: String,
        /// Include the authorisation URL in the error when there is no token.
        with_url: bool,
        /// Wait up to this many seconds for a token instead of failing at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait: Option<u32>,
    },
    /// `pizauth refresh [-u] ACCOUNT`.
    Refresh {
        /// The account's name.
        account: String,
        /// Include the authorisation URL in the error when there is no token.
        with_url: bool,
    },
    /// `pizauth revoke ACCOUNT`.
    Revoke {
        /// The account's name.
        account: String,
    },
    /// `pizauth status`.
    Status,
    /// `pizauth info` (the server's part of it).
    Info,
    /// `pizauth dump`.
    Dump,
    /// `pizauth restore`, with the dump read from the client's stdin.
    Restore {
        /// The dump's text.
        dump: Secret,
    },
    /// `pizauth reload`.
    Reload,
    /// `pizauth shutdown`.
    Shutdown,
}

impl Request {
    /// Decodes a request as read from the socket.
    pub fn decode(bytes: &[u8]) -> Result<Request, String> {
        serde_json::from_slice(bytes).map_err(|e| {
            // serde's own messages may quote values (a dump holds tokens): only the
            // category and position are repeated.
            format!(
                "malformed request ({:?} error at line {} column {}): is the client a different version of pizauth?",
                e.classify(),
                e.line(),
                e.column()
            )
        })
    }

    /// Encodes a request for the socket.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising these plain types cannot fail (no maps with non-string keys).
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What the server answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// `show` succeeded: print the token and a newline.
    Token {
        /// The access token.
        token: Secret,
    },
    /// The request succeeded and there is nothing to print.
    Done,
    /// The request succeeded; print this note on stderr and exit 0.
    Notice {
        /// One line, for the user.
        message: String,
    },
    /// The request failed: print `ERROR <message>` and exit 1.
    Error {
        /// One line, for the user.
        message: String,
    },
    /// `status`: one entry per account, sorted by name.
    Status {
        /// The accounts.
        accounts: Vec<AccountStatus>,
    },
    /// `info`: what only the running server knows.
    Info {
        /// Port of the HTTP redirect listener, if on.
        http_port: Option<u16>,
        /// Port of the HTTPS redirect listener, if on.
        https_port: Option<u16>,
        /// SHA-256 fingerprint of the HTTPS listener's certificate, if on.
        https_fingerprint: Option<String>,
    },
    /// `dump`: the text to write to stdout.
    Dump {
        /// The dump (it holds tokens).
        dump: Secret,
    },
}

impl Reply {
    /// Decodes a reply as read from the socket.
    pub fn decode(bytes: &[u8]) -> Result<Reply, String> {
        serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "malformed reply from the server ({:?} error at line {} column {}): is it a different version of pizauth?",
                e.classify(),
                e.line(),
                e.column()
            )
        })
    }

    /// Encodes a reply for the socket.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Shorthand for an error reply.
    pub fn error(message: impl Into<String>) -> Reply {
        Reply::Error {
            message: message.into(),
        }
    }
}

/// One account in a `status` reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStatus {
    /// The account's name.
    pub name: String,
    /// Its `auth_flow`: `code`, `device` or `client_credentials`.
    pub flow: String,
    /// What it is doing.
    pub state: TokenStatus,
    /// The last thing that went wrong for it (even if it has recovered since), if any.
    pub last_error: Option<LastError>,
}

/// The token state of an account as `status` reports it. Times are wall-clock; the client
/// renders them in local time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TokenStatus {
    /// No token and no authorisation under way.
    NoToken {
        /// The last failure, if the account is here because something failed.
        last_error: Option<LastError>,
    },
    /// Waiting for the user to authorise (or for the code exchange to finish).
    Pending {
        /// When the user was last notified (or the request started).
        last_notification: WallTime,
        /// The URL to visit: the authorisation URL, or the device flow's verification URI.
        url: Option<String>,
        /// The code to enter there (device flow).
        user_code: Option<String>,
    },
    /// A token that has not expired.
    Active {
        /// When the token was obtained.
        obtained: WallTime,
        /// When it expires.
        expires: WallTime,
    },
    /// A token that has expired and not yet been refreshed.
    Expired {
        /// When a refresh was last tried, if ever.
        last_refresh_attempt: Option<WallTime>,
    },
}

/// What went wrong last, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// When.
    pub at: WallTime,
    /// What, in one line, without secrets.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let r = Request::Show {
            account: "work".into(),
            with_url: false,
            wait: None,
        };
        let bytes = r.encode();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"cmd":"show","account":"work","with_url":false}"#
        );
        assert!(matches!(
            Request::decode(&bytes),
            Ok(Request::Show { account, with_url: false, wait: None }) if account == "work"
        ));
    }

    #[test]
    fn decode_errors_never_quote_the_input() {
        let e = Request::decode(br#"{"cmd":"restore","dump":5,"x":"SECRET"}"#).unwrap_err();
        assert!(!e.contains("SECRET"), "{e}");
        let e = Request::decode(br#"{"cmd":"SECRET"}"#).unwrap_err();
        assert!(!e.contains("SECRET"), "{e}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"{", b"\xff\xfe", br#"{"cmd":"explode"}"#, b"[]"] {
            assert!(Request::decode(bad).is_err());
        }
    }
}
