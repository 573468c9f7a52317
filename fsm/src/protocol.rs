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

/// What a client asks. On the wire: a JSON object whose `cmd` names the variant, beside
/// the variant's fields (`{"cmd":"show","account":"work","with_url":false}`).
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
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
    /// Decodes a request as read from the socket: unknown fields, missing fields and
    /// fields another command takes are errors.
    pub fn decode(bytes: &[u8]) -> Result<Request, String> {
        if !is_object(bytes) {
            return Err(malformed(format_args!("not a JSON object")));
        }
        let wire: WireRequest = serde_json::from_slice(bytes).map_err(|e| {
            // serde's own messages may quote values (a dump holds tokens): only the
            // category and position are repeated.
            malformed(format_args!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        wire.into_request()
    }

    /// Encodes a request for the socket.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising these plain types cannot fail (no maps with non-string keys).
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Whether `bytes` start like a JSON object: a derived struct would also take an array
/// of its fields in order, which no pizauth ever sends.
fn is_object(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().first() == Some(&b'{')
}

fn malformed(what: std::fmt::Arguments) -> String {
    format!("malformed request ({what}): is the client a different version of pizauth?")
}

/// A request as it is decoded: `cmd` and every field any command takes, read in one pass.
/// (A derived internally tagged enum would first copy the whole request into serde's own
/// buffers, which are never wiped, a restore's dump with it; it is also slower for the
/// `show` a mail program sends many times a day.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequest {
    cmd: Cmd,
    account: Option<String>,
    with_url: Option<bool>,
    #[serde(default)]
    wait: Option<u32>,
    dump: Option<Secret>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Cmd {
    Show,
    Refresh,
    Revoke,
    Status,
    Info,
    Dump,
    Restore,
    Reload,
    Shutdown,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Show => "show",
            Cmd::Refresh => "refresh",
            Cmd::Revoke => "revoke",
            Cmd::Status => "status",
            Cmd::Info => "info",
            Cmd::Dump => "dump",
            Cmd::Restore => "restore",
            Cmd::Reload => "reload",
            Cmd::Shutdown => "shutdown",
        }
    }
}

impl WireRequest {
    fn into_request(self) -> Result<Request, String> {
        let WireRequest {
            cmd,
            account,
            with_url,
            wait,
            dump,
        } = self;
        // Which fields `cmd` takes (`true`: required); any other that is present is an error.
        let takes: &[(&str, bool, bool)] = &[
            (
                "account",
                account.is_some(),
                matches!(cmd, Cmd::Show | Cmd::Refresh | Cmd::Revoke),
            ),
            (
                "with_url",
                with_url.is_some(),
                matches!(cmd, Cmd::Show | Cmd::Refresh),
            ),
            ("wait", wait.is_some(), matches!(cmd, Cmd::Show)),
            ("dump", dump.is_some(), matches!(cmd, Cmd::Restore)),
        ];
        for &(field, present, taken) in takes {
            if present && !taken {
                return Err(malformed(format_args!(
                    "`{}` takes no field `{field}`",
                    cmd.name()
                )));
            }
        }
        let missing =
            |field: &str| malformed(format_args!("`{}` needs field `{field}`", cmd.name()));
        Ok(match cmd {
            Cmd::Show => Request::Show {
                account: account.ok_or_else(|| missing("account"))?,
                with_url: with_url.ok_or_else(|| missing("with_url"))?,
                wait,
            },
            Cmd::Refresh => Request::Refresh {
                account: account.ok_or_else(|| missing("account"))?,
                with_url: with_url.ok_or_else(|| missing("with_url"))?,
            },
            Cmd::Revoke => Request::Revoke {
                account: account.ok_or_else(|| missing("account"))?,
            },
            Cmd::Status => Request::Status,
            Cmd::Info => Request::Info,
            Cmd::Dump => Request::Dump,
            Cmd::Restore => Request::Restore {
                dump: dump.ok_or_else(|| missing("dump"))?,
            },
            Cmd::Reload => Request::Reload,
            Cmd::Shutdown => Request::Shutdown,
        })
    }
}

/// What the server answers. On the wire: a JSON object whose `reply` names the variant,
/// beside the variant's fields (`{"reply":"token","token":"..."}`).
#[derive(Debug, Serialize)]
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
    /// Decodes a reply as read from the socket. Fields this version does not know are
    /// ignored (a newer server may add some).
    pub fn decode(bytes: &[u8]) -> Result<Reply, String> {
        if !is_object(bytes) {
            return Err(malformed_reply(format_args!("not a JSON object")));
        }
        let wire: WireReply = serde_json::from_slice(bytes).map_err(|e| {
            malformed_reply(format_args!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        wire.into_reply()
    }

    /// Encodes a reply for the socket, into a buffer sized for it at once: a token or a
    /// dump is written once, never left behind in the freed memory of a buffer that grew.
    pub fn encode(&self) -> Vec<u8> {
        if let Reply::Token { token } = self
            && let Some(out) = encode_plain_token(token.as_str().as_bytes())
        {
            return out;
        }
        let secret = match self {
            Reply::Token { token: s } | Reply::Dump { dump: s } => s.as_str().len(),
            _ => 0,
        };
        // JSON escaping of a secret (quotes and newlines in a dump) may still grow it.
        let mut out = Vec::with_capacity(secret + secret / 8 + 64);
        // Serialising these plain types cannot fail (no maps with non-string keys).
        match serde_json::to_writer(&mut out, self) {
            Ok(()) => out,
            Err(_) => Vec::new(),
        }
    }

    /// Shorthand for an error reply.
    pub fn error(message: impl Into<String>) -> Reply {
        Reply::Error {
            message: message.into(),
        }
    }
}

/// The reply to a `show`, `{"reply":"token","token":"..."}`, byte for byte as serde
/// writes it, for a token that JSON need not escape (every token: RFC 6750 tokens are
/// letters, digits and `-._~+/=`); `None` for one that needs escaping. serde's escaping
/// writer costs about ten instructions per byte of token, and a Microsoft token is 2 KB.
fn encode_plain_token(token: &[u8]) -> Option<Vec<u8>> {
    const HEAD: &[u8] = br#"{"reply":"token","token":""#;
    const TAIL: &[u8] = br#""}"#;
    if needs_escaping(token) {
        return None;
    }
    let mut out = Vec::with_capacity(HEAD.len() + token.len() + TAIL.len());
    out.extend_from_slice(HEAD);
    out.extend_from_slice(token);
    out.extend_from_slice(TAIL);
    Some(out)
}

/// Whether JSON must escape any of `bytes`: a control character, `"` or `\`. Eight bytes
/// at a time (a byte-by-byte loop costs as much as serde's escaping writer).
fn needs_escaping(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGHS: u64 = ONES * 0x80;
    // Per word: some byte is zero / some byte is below 0x20 (exact for the word as a
    // whole, which is all that is asked).
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS != 0;
    let low = |w: u64| w.wrapping_sub(ONES * 0x20) & !w & HIGHS != 0;
    let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut words = bytes.chunks_exact(8);
    let hit = words.by_ref().any(|c| {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        low(w) || zero(w ^ (ONES * u64::from(b'"'))) || zero(w ^ (ONES * u64::from(b'\\')))
    });
    hit || words.remainder().iter().copied().any(special)
}

fn malformed_reply(what: std::fmt::Arguments) -> String {
    format!("malformed reply from the server ({what}): is it a different version of pizauth?")
}

/// A reply as it is decoded: `reply` and every field any reply has, read in one pass (see
/// [`WireRequest`] for why not a derived internally tagged enum).
#[derive(Deserialize)]
struct WireReply {
    reply: ReplyKind,
    token: Option<Secret>,
    message: Option<String>,
    accounts: Option<Vec<AccountStatus>>,
    http_port: Option<u16>,
    https_port: Option<u16>,
    https_fingerprint: Option<String>,
    dump: Option<Secret>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReplyKind {
    Token,
    Done,
    Notice,
    Error,
    Status,
    Info,
    Dump,
}

impl WireReply {
    fn into_reply(self) -> Result<Reply, String> {
        let missing = |field: &str| malformed_reply(format_args!("no field `{field}`"));
        Ok(match self.reply {
            ReplyKind::Token => Reply::Token {
                token: self.token.ok_or_else(|| missing("token"))?,
            },
            ReplyKind::Done => Reply::Done,
            ReplyKind::Notice => Reply::Notice {
                message: self.message.ok_or_else(|| missing("message"))?,
            },
            ReplyKind::Error => Reply::Error {
                message: self.message.ok_or_else(|| missing("message"))?,
            },
            ReplyKind::Status => Reply::Status {
                accounts: self.accounts.ok_or_else(|| missing("accounts"))?,
            },
            ReplyKind::Info => Reply::Info {
                http_port: self.http_port,
                https_port: self.https_port,
                https_fingerprint: self.https_fingerprint,
            },
            ReplyKind::Dump => Reply::Dump {
                dump: self.dump.ok_or_else(|| missing("dump"))?,
            },
        })
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
    /// Something wrong with the token it holds (no refresh token came although
    /// `offline_access` was asked for), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
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

    /// Every request decodes to what was encoded, whatever the order of its fields.
    #[test]
    fn every_request_round_trips() {
        let requests = [
            Request::Show {
                account: "a".into(),
                with_url: true,
                wait: Some(30),
            },
            Request::Refresh {
                account: "b".into(),
                with_url: false,
            },
            Request::Revoke {
                account: "c".into(),
            },
            Request::Status,
            Request::Info,
            Request::Dump,
            Request::Restore {
                dump: Secret::new("{\"version\":1}\n".into()),
            },
            Request::Reload,
            Request::Shutdown,
        ];
        for r in requests {
            let bytes = r.encode();
            let back = Request::decode(&bytes).unwrap();
            assert_eq!(format!("{r:?}"), format!("{back:?}"));
            assert_eq!(back.encode(), bytes);
        }
        match Request::decode(br#"{"with_url":true,"account":"x","cmd":"show"}"#) {
            Ok(Request::Show {
                account,
                with_url: true,
                wait: None,
            }) => assert_eq!(account, "x"),
            other => panic!("{other:?}"),
        }
        let dump = Request::decode(br#"{"cmd":"restore","dump":"line\n\"q\""}"#).unwrap();
        assert!(matches!(dump, Request::Restore { dump } if dump.as_str() == "line\n\"q\""));
    }

    /// A field the command does not take, one it needs and lacks, an unknown or repeated
    /// field, an array instead of an object: each is an error that names the problem.
    /// (serde's derived decoder let unknown fields through for the commands without
    /// fields, and took arrays; no pizauth client sends either.)
    #[test]
    fn requests_with_the_wrong_fields_are_refused() {
        for (bad, says) in [
            (
                &br#"{"cmd":"status","account":"x"}"#[..],
                "`status` takes no field `account`",
            ),
            (
                br#"{"cmd":"revoke","account":"x","with_url":true}"#,
                "`revoke` takes no field `with_url`",
            ),
            (
                br#"{"cmd":"refresh","account":"x","with_url":true,"wait":3}"#,
                "`refresh` takes no field `wait`",
            ),
            (
                br#"{"cmd":"dump","dump":"x"}"#,
                "`dump` takes no field `dump`",
            ),
            (
                br#"{"cmd":"show","account":"x"}"#,
                "`show` needs field `with_url`",
            ),
            (
                br#"{"cmd":"show","with_url":true}"#,
                "`show` needs field `account`",
            ),
            (br#"{"cmd":"restore"}"#, "`restore` needs field `dump`"),
            (br#"{"account":"x"}"#, "malformed request (Data error"),
            (
                br#"{"cmd":"info","extra":1}"#,
                "malformed request (Data error",
            ),
            (
                br#"{"cmd":"info","cmd":"info"}"#,
                "malformed request (Data error",
            ),
            (
                br#"{"cmd":"show","account":"x","with_url":"yes"}"#,
                "malformed request (Data error",
            ),
            (br#"["status"]"#, "malformed request (not a JSON object)"),
            (br#" ["show","x",true,null,null]"#, "(not a JSON object)"),
        ] {
            let e = Request::decode(bad).unwrap_err();
            assert!(e.contains(says), "{}: {e}", String::from_utf8_lossy(bad));
            assert!(
                e.ends_with("is the client a different version of pizauth?"),
                "{e}"
            );
        }
    }

    /// Every reply decodes to what was encoded; fields a newer server adds are ignored;
    /// a reply without the field its kind needs is an error.
    #[test]
    fn every_reply_round_trips() {
        let replies = [
            Reply::Token {
                token: Secret::new("tok".into()),
            },
            Reply::Done,
            Reply::Notice {
                message: "n".into(),
            },
            Reply::error("e"),
            Reply::Status {
                accounts: vec![AccountStatus {
                    name: "a".into(),
                    flow: "code".into(),
                    state: TokenStatus::Expired {
                        last_refresh_attempt: None,
                    },
                    last_error: None,
                    warning: None,
                }],
            },
            Reply::Info {
                http_port: Some(1),
                https_port: None,
                https_fingerprint: Some("ab".into()),
            },
            Reply::Dump {
                dump: Secret::new("{\"x\":\"\n\"}".into()),
            },
        ];
        for r in replies {
            let bytes = r.encode();
            assert_eq!(bytes, serde_json::to_vec(&r).unwrap());
            let back = Reply::decode(&bytes).unwrap();
            assert_eq!(back.encode(), bytes);
        }
        assert!(matches!(
            Reply::decode(br#"{"reply":"token","token":"t","new":[1]}"#),
            Ok(Reply::Token { token }) if token.as_str() == "t"
        ));
        let e = Reply::decode(br#"{"reply":"token"}"#).unwrap_err();
        assert!(e.contains("no field `token`"), "{e}");
        assert!(Reply::decode(br#"{"reply":"party"}"#).is_err());
        let e = Reply::decode(br#"["done"]"#).unwrap_err();
        assert!(e.contains("not a JSON object"), "{e}");
    }

    /// The word-at-a-time check agrees with a byte-by-byte one, at every position of
    /// every special byte and for every byte value near the edges.
    #[test]
    fn needs_escaping_finds_every_special_byte() {
        let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        for len in 0..20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    assert_eq!(needs_escaping(&v), special(b), "{b:#x} at {at} of {len}");
                    // Neighbours above and below a special byte change nothing.
                    v.iter_mut()
                        .for_each(|x| *x = if special(*x) { *x } else { 0xff });
                    assert_eq!(needs_escaping(&v), special(b), "{b:#x} among 0xff");
                    v.iter_mut()
                        .for_each(|x| *x = if special(*x) { *x } else { 0x20 });
                    assert_eq!(needs_escaping(&v), special(b), "{b:#x} among 0x20");
                }
            }
        }
    }

    /// A token reply is what serde writes, whether or not the token needs escaping.
    #[test]
    fn token_replies_are_what_serde_writes() {
        let long = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.sig-_~+/=".repeat(40);
        for token in [
            "",
            "ya29.a0AfB_byC-9xyz",
            long.as_str(),
            "quote\"in",
            "back\\slash",
            "nl\nand\ttab\u{1}",
            "del\u{7f} and é ☃ \u{10ffff}",
        ] {
            let r = Reply::Token {
                token: Secret::new(token.to_owned()),
            };
            assert_eq!(r.encode(), serde_json::to_vec(&r).unwrap(), "{token:?}");
            assert!(
                matches!(Reply::decode(&r.encode()), Ok(Reply::Token { token: t }) if t.as_str() == token)
            );
        }
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
