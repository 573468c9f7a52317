//! The dump format (SPEC.md section 7) and account fingerprints.
//!
//! A dump is a JSON object: `{"format": "pizauth-dump", "version": 1, "accounts": {...}}`,
//! each account holding its tokens, obtained and expiry times as Unix milliseconds, and
//! the fingerprint of the options that decide where its tokens may be used. It never
//! holds a client secret. Readers refuse other major versions with a clear message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Account;
use crate::secret::Secret;
use crate::time::WallTime;

/// The value of the `format` field.
pub const FORMAT: &str = "pizauth-dump";
/// The major version this build writes and reads.
pub const VERSION: u32 = 1;

/// A whole dump.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dump {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] when written by this build.
    pub version: u32,
    /// Accounts with a token, by name.
    pub accounts: BTreeMap<String, DumpedAccount>,
}

/// One account's tokens in a dump.
#[derive(Debug, Serialize, Deserialize)]
pub struct DumpedAccount {
    /// [`fingerprint`] of the account's security-relevant options when dumped.
    pub fingerprint: String,
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, if any.
    pub refresh_token: Option<Secret>,
    /// When the token was obtained (wall clock).
    pub obtained: WallTime,
    /// When it expires (wall clock).
    pub expires: WallTime,
}

impl Dump {
    /// An empty dump of this version.
    pub fn new() -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            accounts: BTreeMap::new(),
        }
    }

    /// Encodes the dump (the text holds tokens, hence the wrapper).
    pub fn encode(&self) -> Secret {
        // Plain structs with string keys: serialisation cannot fail.
        Secret::new(serde_json::to_string(self).unwrap_or_default())
    }

    /// Decodes a dump, refusing anything that is not a dump of this major version. The
    /// messages never quote the input (it holds tokens).
    pub fn decode(text: &str) -> Result<Dump, String> {
        #[derive(Deserialize)]
        struct Header {
            format: Option<String>,
            version: Option<serde_json::Value>,
        }
        let header: Header = serde_json::from_str(text).map_err(|_| {
            "input is not a pizauth dump (dumps of pizauth 1.x cannot be restored: authorise again)"
                .to_owned()
        })?;
        if header.format.as_deref() != Some(FORMAT) {
            return Err("input is not a pizauth dump".to_owned());
        }
        match header.version.as_ref().and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(VERSION) => (),
            Some(v) => {
                return Err(format!(
                    "dump has format version {v}, but this pizauth reads version {VERSION}"
                ));
            }
            None => return Err("dump has no valid format version".to_owned()),
        }
        serde_json::from_str(text).map_err(|e| {
            // Only the position and category, never the offending text.
            format!(
                "malformed dump at line {} column {} ({:?})",
                e.line(),
                e.column(),
                e.classify()
            )
        })
    }
}

impl Default for Dump {
    fn default() -> Self {
        Self::new()
    }
}

/// SHA-256, in lowercase hex, over the options that decide where an account's tokens
/// come from and go to: `auth_uri`, `auth_uri_fields`, `client_id`, `client_secret`,
/// `redirect_uri`, `scopes`, `token_uri`, and (beyond pizauth 1.x) `auth_flow`,
/// `device_auth_uri`, `issuer` and `revoke_uri`. Each field is length-prefixed so that no two
/// different configurations encode alike. Restore and reload compare fingerprints.
pub fn fingerprint(account: &Account) -> String {
    fn field(h: &mut Sha256, bytes: &[u8]) {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    fn optional(h: &mut Sha256, value: Option<&str>) {
        match value {
            Some(v) => {
                field(h, b"1");
                field(h, v.as_bytes());
            }
            None => field(h, b"0"),
        }
    }
    let h = &mut Sha256::new();
    field(h, b"pizauth-account-v1");
    field(h, account.flow.as_str().as_bytes());
    optional(h, account.issuer.as_ref().map(|u| u.as_str()));
    optional(h, account.auth_uri.as_ref().map(|u| u.as_str()));
    field(h, &(account.auth_uri_fields.len() as u64).to_be_bytes());
    for (k, v) in &account.auth_uri_fields {
        field(h, k.as_bytes());
        field(h, v.as_bytes());
    }
    field(h, account.client_id.as_bytes());
    optional(h, account.client_secret.as_ref().map(|s| s.as_str()));
    optional(h, account.device_auth_uri.as_ref().map(|u| u.as_str()));
    field(h, account.redirect_uri.as_str().as_bytes());
    optional(h, account.revoke_uri.as_ref().map(|u| u.as_str()));
    field(h, &(account.scopes.len() as u64).to_be_bytes());
    for s in account.scopes.iter() {
        field(h, s.as_bytes());
    }
    optional(h, account.token_uri.as_ref().map(|u| u.as_str()));
    // Lowercase hex, digit by digit: a `format!` per byte made this the most expensive
    // step of starting a server with many accounts.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = h.clone().finalize();
    let mut hex = String::with_capacity(2 * digest.len());
    for b in digest.iter() {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_other_versions_and_garbage_clearly() {
        assert_eq!(
            Dump::decode(r#"{"format":"pizauth-dump","version":2,"accounts":{}}"#).unwrap_err(),
            "dump has format version 2, but this pizauth reads version 1"
        );
        assert!(
            Dump::decode("\u{1}\u{0}binary")
                .unwrap_err()
                .contains("not a pizauth dump")
        );
        assert!(Dump::decode(r#"{"format":"other"}"#).is_err());
        let e = Dump::decode(
            r#"{"format":"pizauth-dump","version":1,"accounts":{"a":{"access_token":"SEKRIT"}}}"#,
        )
        .unwrap_err();
        assert!(!e.contains("SEKRIT"), "{e}");
    }

    #[test]
    fn round_trips() {
        let mut d = Dump::new();
        d.accounts.insert(
            "a".into(),
            DumpedAccount {
                fingerprint: "f".into(),
                access_token: Secret::new("at".into()),
                refresh_token: None,
                obtained: WallTime::from_unix_millis(1),
                expires: WallTime::from_unix_millis(2),
            },
        );
        let back = Dump::decode(d.encode().as_str()).unwrap();
        assert_eq!(back.accounts["a"].access_token.as_str(), "at");
    }
}
