//! What the client prints for `status` and `info`: pure functions of the server's reply
//! (and, for times, of a UTC offset), so the exact text is tested without a server or a
//! time zone. [`local_time`] is the one impure helper, reading the local zone (through
//! `pizauth_io::os::local_offset`).

use pizauth_fsm::WallTime;
use pizauth_fsm::protocol::{AccountStatus, TokenStatus};
use pizauth_fsm::time::civil_from_unix;

/// The `info_format_version` of `info -j` output (pizauth 1.1.0 uses 2; keep it so that
/// scripts written for it still parse ours).
pub const INFO_FORMAT_VERSION: u32 = 2;

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats `secs` (Unix seconds) as RFC 2822 (section 3.3) in a zone `offset` seconds east
/// of UTC, e.g. `Sat, 28 Nov 2026 18:30:07 +0000`. Like pizauth 1.1.0 (chrono), the day
/// has two digits.
pub fn rfc2822(secs: i64, offset: i32) -> String {
    let local = secs.saturating_add(i64::from(offset));
    let (y, mo, d, h, mi, s) = civil_from_unix(local);
    // 1970-01-01 was a Thursday.
    let weekday =
        WEEKDAYS[usize::try_from((local.div_euclid(86_400) + 4).rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::try_from(mo.saturating_sub(1)).unwrap_or(0) % 12];
    let sign = if offset < 0 { '-' } else { '+' };
    let off_min = offset.unsigned_abs() / 60;
    format!(
        "{weekday}, {d:02} {month} {y:04} {h:02}:{mi:02}:{s:02} {sign}{:02}{:02}",
        off_min / 60,
        off_min % 60
    )
}

/// Formats `t` in the local time zone (`$TZ` or the system's), RFC 2822.
pub fn local_time(t: WallTime) -> String {
    let secs = t.as_unix_secs();
    rfc2822(secs, local_offset(secs))
}

/// The local zone's offset from UTC, in seconds, at Unix time `secs`; 0 if unknown.
fn local_offset(secs: i64) -> i32 {
    pizauth_io::os::local_offset(secs)
}

/// The `status` line of one account, without its trailing newline: `name: text`.
pub fn status_line(account: &AccountStatus, time: &dyn Fn(WallTime) -> String) -> String {
    let text = match &account.state {
        TokenStatus::NoToken { last_error: None } => "No access token".to_owned(),
        TokenStatus::NoToken {
            last_error: Some(e),
        } => format!("No access token (last error {}: {})", time(e.at), e.message),
        TokenStatus::Pending {
            last_notification, ..
        } => format!(
            "Access token pending authentication (last notification {})",
            time(*last_notification)
        ),
        TokenStatus::Active { obtained, expires } => format!(
            "Active access token (obtained {}; expires {})",
            time(*obtained),
            time(*expires)
        ),
        TokenStatus::Expired {
            last_refresh_attempt,
        } => {
            // While refreshes keep failing, say why the last one did (issue 12).
            let why = match (last_refresh_attempt, &account.last_error) {
                (Some(attempt), Some(e)) if e.at >= *attempt => {
                    format!("; last error: {}", e.message)
                }
                _ => String::new(),
            };
            format!(
                "Access token expired (last refresh attempt {}{why})",
                last_refresh_attempt.map_or_else(|| "never".to_owned(), time)
            )
        }
    };
    match &account.warning {
        Some(w) => format!("{}: {text}; warning: {w}", account.name),
        None => format!("{}: {text}", account.name),
    }
}

/// The version of `status -j`'s format; bumped when a field changes meaning or goes.
pub const STATUS_FORMAT_VERSION: u32 = 1;

/// `status -j`: one JSON object, `status_format_version` and one object per account with
/// its state, flow, times (RFC 3339, UTC), pending URL or user code, and last error.
pub fn status_json(accounts: &[AccountStatus]) -> String {
    let rfc3339 = |t: &WallTime| serde_json::Value::String(t.to_string());
    let list: Vec<serde_json::Value> = accounts
        .iter()
        .map(|a| {
            let mut o = serde_json::Map::new();
            o.insert("name".into(), a.name.clone().into());
            o.insert("flow".into(), a.flow.clone().into());
            let (state, obtained, expires, attempt, url, code) = match &a.state {
                TokenStatus::NoToken { .. } => ("no_token", None, None, None, None, None),
                TokenStatus::Pending {
                    last_notification,
                    url,
                    user_code,
                } => (
                    "pending",
                    None,
                    None,
                    Some(*last_notification),
                    url.clone(),
                    user_code.clone(),
                ),
                TokenStatus::Active { obtained, expires } => {
                    ("active", Some(*obtained), Some(*expires), None, None, None)
                }
                TokenStatus::Expired {
                    last_refresh_attempt,
                } => ("expired", None, None, *last_refresh_attempt, None, None),
            };
            o.insert("state".into(), state.into());
            let opt_time =
                |t: Option<WallTime>| t.as_ref().map_or(serde_json::Value::Null, rfc3339);
            o.insert("obtained".into(), opt_time(obtained));
            o.insert("expires".into(), opt_time(expires));
            let when = if state == "pending" {
                "last_notification"
            } else {
                "last_refresh_attempt"
            };
            o.insert(when.into(), opt_time(attempt));
            o.insert(
                "url".into(),
                url.map_or(serde_json::Value::Null, Into::into),
            );
            o.insert(
                "user_code".into(),
                code.map_or(serde_json::Value::Null, Into::into),
            );
            let error = a.last_error.as_ref().map_or(
                serde_json::Value::Null,
                |e| serde_json::json!({ "at": rfc3339(&e.at), "message": e.message }),
            );
            o.insert("last_error".into(), error);
            o.insert(
                "warning".into(),
                a.warning
                    .clone()
                    .map_or(serde_json::Value::Null, Into::into),
            );
            serde_json::Value::Object(o)
        })
        .collect();
    serde_json::json!({
        "status_format_version": STATUS_FORMAT_VERSION,
        "accounts": list,
    })
    .to_string()
}

/// What `info` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// This binary's version.
    pub version: String,
    /// The runtime directory (called the cache directory by pizauth 1.1.0).
    pub cache_directory: String,
    /// The config file a server started now would read.
    pub config_file: String,
    /// The file name this program was run as.
    pub executed_as: String,
    /// What the running server said, if one answered.
    pub server: Option<ServerInfo>,
}

/// The running server's part of `info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    /// The HTTP redirect listener's port, if on.
    pub http_port: Option<u16>,
    /// The HTTPS redirect listener's port, if on.
    pub https_port: Option<u16>,
    /// The HTTPS certificate's fingerprint, if HTTPS is on.
    pub https_fingerprint: Option<String>,
}

impl Info {
    /// The text form, laid out as pizauth 1.1.0 does, ending with a newline.
    pub fn text(&self) -> String {
        let mut out = format!(
            "pizauth version {}:\n  cache directory: {}\n  config file: {}\n",
            self.version, self.cache_directory, self.config_file
        );
        match &self.server {
            None => out.push_str("server not running\n"),
            Some(s) => {
                out.push_str("server running:\n");
                out.push_str(&format!("  HTTP port: {}\n", port(s.http_port)));
                out.push_str(&format!("  HTTPS port: {}\n", port(s.https_port)));
                if let Some(fp) = s
                    .https_fingerprint
                    .as_deref()
                    .filter(|_| s.https_port.is_some())
                {
                    out.push_str(&format!("  HTTPS public key: {fp}\n"));
                }
            }
        }
        out
    }

    /// The `-j` form: one JSON object, without a trailing newline.
    pub fn json(&self) -> String {
        let mut obj = serde_json::json!({
            "info_format_version": INFO_FORMAT_VERSION,
            "pizauth_version": self.version,
            "cache_directory": self.cache_directory,
            "config_file": self.config_file,
            "executed_as": self.executed_as,
            "server_running": self.server.is_some(),
        });
        if let (Some(s), Some(map)) = (&self.server, obj.as_object_mut()) {
            let mut server = serde_json::json!({
                "http_port": port(s.http_port),
                "https_port": port(s.https_port),
            });
            let fingerprint = s
                .https_fingerprint
                .as_ref()
                .filter(|_| s.https_port.is_some());
            if let (Some(fp), Some(m)) = (fingerprint, server.as_object_mut()) {
                m.insert("https_pub_key".into(), fp.clone().into());
            }
            map.insert("server_info".into(), server);
        }
        obj.to_string()
    }
}

/// A port as `info` shows it: the number, or `none` for a listener that is off.
fn port(p: Option<u16>) -> String {
    p.map_or_else(|| "none".to_owned(), |p| p.to_string())
}

#[cfg(test)]
mod tests {
    use pizauth_fsm::protocol::LastError;

    use super::*;

    fn utc(t: WallTime) -> String {
        rfc2822(t.as_unix_secs(), 0)
    }

    fn at(secs: i64) -> WallTime {
        WallTime::from_unix_millis(secs * 1000)
    }

    #[test]
    fn rfc2822_in_several_zones() {
        // 2026-11-28T18:30:07Z, a Saturday.
        let t = 1_795_890_607;
        assert_eq!(rfc2822(t, 0), "Sat, 28 Nov 2026 18:30:07 +0000");
        assert_eq!(rfc2822(t, 3600), "Sat, 28 Nov 2026 19:30:07 +0100");
        assert_eq!(rfc2822(t, 19_800), "Sun, 29 Nov 2026 00:00:07 +0530");
        assert_eq!(rfc2822(t, -8 * 3600), "Sat, 28 Nov 2026 10:30:07 -0800");
        assert_eq!(rfc2822(0, 0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(-1, 0), "Wed, 31 Dec 1969 23:59:59 +0000");
        assert_eq!(rfc2822(951_782_400, 0), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn local_time_does_not_panic_at_extremes() {
        for ms in [i64::MIN, -1, 0, i64::MAX] {
            let _ = local_time(WallTime::from_unix_millis(ms));
        }
    }

    #[test]
    fn status_json_is_versioned_with_rfc3339_times() {
        let accounts = vec![
            AccountStatus {
                name: "a".into(),
                flow: "device".into(),
                state: TokenStatus::Pending {
                    last_notification: at(60),
                    url: Some("https://example.com/device".into()),
                    user_code: Some("ABCD-EFGH".into()),
                },
                last_error: None,
                warning: None,
            },
            AccountStatus {
                name: "b".into(),
                flow: "code".into(),
                state: TokenStatus::Active {
                    obtained: at(0),
                    expires: at(3600),
                },
                last_error: Some(LastError {
                    at: at(30),
                    message: "HTTP 503".into(),
                }),
                warning: None,
            },
        ];
        let v: serde_json::Value = serde_json::from_str(&status_json(&accounts)).unwrap();
        assert_eq!(v["status_format_version"], 1);
        assert_eq!(v["accounts"][0]["state"], "pending");
        assert_eq!(v["accounts"][0]["flow"], "device");
        assert_eq!(v["accounts"][0]["user_code"], "ABCD-EFGH");
        assert_eq!(v["accounts"][0]["url"], "https://example.com/device");
        assert_eq!(
            v["accounts"][0]["last_notification"],
            "1970-01-01T00:01:00Z"
        );
        assert_eq!(v["accounts"][1]["state"], "active");
        assert_eq!(v["accounts"][1]["obtained"], "1970-01-01T00:00:00Z");
        assert_eq!(v["accounts"][1]["expires"], "1970-01-01T01:00:00Z");
        assert_eq!(v["accounts"][1]["last_error"]["message"], "HTTP 503");
        assert_eq!(v["accounts"][1]["last_error"]["at"], "1970-01-01T00:00:30Z");
    }

    #[test]
    fn a_warning_follows_the_state() {
        let mut a = AccountStatus {
            name: "work".into(),
            flow: "code".into(),
            state: TokenStatus::Active {
                obtained: at(0),
                expires: at(3600),
            },
            last_error: None,
            warning: Some("no refresh token came".into()),
        };
        assert!(status_line(&a, &utc).ends_with("; warning: no refresh token came"));
        let v: serde_json::Value = serde_json::from_str(&status_json(&[a.clone()])).unwrap();
        assert_eq!(v["accounts"][0]["warning"], "no refresh token came");
        a.warning = None;
        assert!(status_line(&a, &utc).ends_with(")"));
        let v: serde_json::Value = serde_json::from_str(&status_json(&[a])).unwrap();
        assert!(v["accounts"][0]["warning"].is_null());
    }

    #[test]
    fn status_lines() {
        let line = |state| {
            status_line(
                &AccountStatus {
                    name: "work".into(),
                    flow: "code".into(),
                    state,
                    last_error: None,
                    warning: None,
                },
                &utc,
            )
        };
        assert_eq!(
            line(TokenStatus::NoToken { last_error: None }),
            "work: No access token"
        );
        assert_eq!(
            line(TokenStatus::NoToken {
                last_error: Some(LastError {
                    at: at(0),
                    message: "invalid_grant".into()
                })
            }),
            "work: No access token (last error Thu, 01 Jan 1970 00:00:00 +0000: invalid_grant)"
        );
        assert_eq!(
            line(TokenStatus::Pending {
                last_notification: at(60),
                url: Some("https://example.com/auth".into()),
                user_code: None,
            }),
            "work: Access token pending authentication (last notification \
             Thu, 01 Jan 1970 00:01:00 +0000)"
        );
        assert_eq!(
            line(TokenStatus::Active {
                obtained: at(0),
                expires: at(3600)
            }),
            "work: Active access token (obtained Thu, 01 Jan 1970 00:00:00 +0000; \
             expires Thu, 01 Jan 1970 01:00:00 +0000)"
        );
        assert_eq!(
            line(TokenStatus::Expired {
                last_refresh_attempt: Some(at(7200))
            }),
            "work: Access token expired (last refresh attempt Thu, 01 Jan 1970 02:00:00 +0000)"
        );
        assert_eq!(
            line(TokenStatus::Expired {
                last_refresh_attempt: None
            }),
            "work: Access token expired (last refresh attempt never)"
        );
        // While refreshes keep failing, the last one's reason; an older error is not it.
        let expired = |error_at| {
            status_line(
                &AccountStatus {
                    name: "work".into(),
                    flow: "code".into(),
                    state: TokenStatus::Expired {
                        last_refresh_attempt: Some(at(7200)),
                    },
                    last_error: Some(LastError {
                        at: at(error_at),
                        message: "token endpoint answered HTTP 503 (temporary)".into(),
                    }),
                    warning: None,
                },
                &utc,
            )
        };
        assert_eq!(
            expired(7201),
            "work: Access token expired (last refresh attempt Thu, 01 Jan 1970 02:00:00 +0000; \
             last error: token endpoint answered HTTP 503 (temporary))"
        );
        assert_eq!(
            expired(100),
            "work: Access token expired (last refresh attempt Thu, 01 Jan 1970 02:00:00 +0000)"
        );
    }

    fn info(server: Option<ServerInfo>) -> Info {
        Info {
            version: "1.2.3".into(),
            cache_directory: "/run/user/1/pizauth".into(),
            config_file: "/h/.config/pizauth.conf".into(),
            executed_as: "pizauth".into(),
            server,
        }
    }

    #[test]
    fn info_text() {
        assert_eq!(
            info(None).text(),
            "pizauth version 1.2.3:\n  cache directory: /run/user/1/pizauth\n  \
             config file: /h/.config/pizauth.conf\nserver not running\n"
        );
        let on = info(Some(ServerInfo {
            http_port: Some(8765),
            https_port: Some(8766),
            https_fingerprint: Some("ab:cd".into()),
        }));
        assert!(on.text().ends_with(
            "server running:\n  HTTP port: 8765\n  HTTPS port: 8766\n  HTTPS public key: ab:cd\n"
        ));
        let off = info(Some(ServerInfo {
            http_port: Some(1),
            https_port: None,
            https_fingerprint: None,
        }));
        assert!(
            off.text()
                .ends_with("server running:\n  HTTP port: 1\n  HTTPS port: none\n")
        );
    }

    #[test]
    fn info_json_shape() {
        let v: serde_json::Value = serde_json::from_str(&info(None).json()).unwrap();
        assert_eq!(v["info_format_version"], 2);
        assert!(v["info_format_version"].is_u64());
        assert_eq!(v["pizauth_version"], "1.2.3");
        assert_eq!(v["cache_directory"], "/run/user/1/pizauth");
        assert_eq!(v["config_file"], "/h/.config/pizauth.conf");
        assert_eq!(v["executed_as"], "pizauth");
        assert_eq!(v["server_running"], false);
        assert!(v.get("server_info").is_none());

        let on = info(Some(ServerInfo {
            http_port: None,
            https_port: Some(443),
            https_fingerprint: Some("ab:cd".into()),
        }));
        let v: serde_json::Value = serde_json::from_str(&on.json()).unwrap();
        assert_eq!(v["server_running"], true);
        assert_eq!(
            v["server_info"],
            serde_json::json!({"http_port": "none", "https_port": "443", "https_pub_key": "ab:cd"})
        );
        let off = info(Some(ServerInfo {
            http_port: Some(80),
            https_port: None,
            https_fingerprint: None,
        }));
        let v: serde_json::Value = serde_json::from_str(&off.json()).unwrap();
        assert_eq!(
            v["server_info"],
            serde_json::json!({"http_port": "80", "https_port": "none"})
        );
    }
}
