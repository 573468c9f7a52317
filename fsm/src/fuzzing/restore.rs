//! Fuzz target `restore`: arbitrary text given to `pizauth restore`.

use std::time::Duration;

use crate::dump::{Dump, DumpedAccount, fingerprint};
use crate::protocol::{Reply, Request};
use crate::secret::Secret;

use super::{Harness, standard};

/// Fuzz target `restore`: `data` (as text, invalid UTF-8 replaced) is restored into a
/// server that holds tokens for some accounts (see [`Harness::with_tokens`]).
///
/// Text that is not a dump of this version must get an error and change nothing: `status`
/// and `dump` read the same before and after. A dump gets `Done` and installs exactly
/// the dumped accounts that exist with the same fingerprint and hold no token; each
/// installed account then holds the dumped tokens, `show` hands its access token out
/// only while it has not expired, and every other account is as it was.
pub fn restore(data: &[u8]) {
    let mut h = Harness::with_tokens();
    h.hear(data);
    let text = String::from_utf8_lossy(data).into_owned();
    let before_status = h.status();
    let before = h.dump();
    let decoded = Dump::decode(&text);
    let reply = h.ask(&Request::Restore {
        dump: Secret::new(text),
    });
    let after_status = h.status();
    let after = h.dump();
    let dump = match decoded {
        Err(_) => {
            assert!(
                matches!(reply, Some(Reply::Error { .. })),
                "a malformed dump was answered {reply:?}"
            );
            assert_eq!(
                before_status, after_status,
                "a malformed dump changed status"
            );
            assert_eq!(
                before.encode().as_str(),
                after.encode().as_str(),
                "a malformed dump changed the tokens"
            );
            return;
        }
        Ok(d) => d,
    };
    assert!(
        matches!(reply, Some(Reply::Done)),
        "a dump was answered {reply:?}"
    );
    assert_eq!(
        before_status.len(),
        after_status.len(),
        "restore changed the accounts"
    );
    let config = standard();
    let now = h.now();
    let mut installed = Vec::new();
    for (old, new) in before_status.iter().zip(&after_status) {
        let name = old.name.as_str();
        assert_eq!(name, new.name, "restore reordered the accounts");
        let entry = dump.accounts.get(name).filter(|e| {
            !before.accounts.contains_key(name)
                && config
                    .account(name)
                    .is_some_and(|a| fingerprint(a) == e.fingerprint)
        });
        let Some(entry) = entry else {
            assert_eq!(old, new, "{name} changed but was not restored");
            match (before.accounts.get(name), after.accounts.get(name)) {
                (None, None) => (),
                (Some(x), Some(y)) => assert!(same(x, y), "{name}'s tokens changed"),
                _ => panic!("{name} gained or lost its tokens without being restored"),
            }
            continue;
        };
        let Some(got) = after.accounts.get(name) else {
            panic!("{name} was not restored");
        };
        assert_eq!(
            got.access_token, entry.access_token,
            "{name}: wrong access token"
        );
        assert_eq!(
            got.refresh_token, entry.refresh_token,
            "{name}: wrong refresh token"
        );
        assert_eq!(
            got.fingerprint, entry.fingerprint,
            "{name}: wrong fingerprint"
        );
        // Times go through the boot clock and back (saturating at its ends).
        assert_eq!(
            got.expires,
            now.wall_at(now.boot_at(entry.expires)),
            "{name}: expiry"
        );
        assert_eq!(
            got.obtained,
            now.wall_at(now.boot_at(entry.obtained)),
            "{name}: obtained"
        );
        installed.push((name.to_owned(), entry.access_token.as_str().to_owned()));
    }
    // The restored tokens are handed out while valid and not after (the harness checks
    // every token `show` gives against the dumped expiry).
    for step in [0, 40 * 60, 3 * 3600] {
        h.advance(Duration::from_secs(step));
        for (name, _) in &installed {
            h.show(name);
        }
    }
}

/// Whether two dumped accounts hold the same tokens and times.
fn same(x: &DumpedAccount, y: &DumpedAccount) -> bool {
    x.fingerprint == y.fingerprint
        && x.access_token == y.access_token
        && x.refresh_token == y.refresh_token
        && x.obtained == y.obtained
        && x.expires == y.expires
}
