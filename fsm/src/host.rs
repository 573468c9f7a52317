//! Which `Host` a redirect request may name (a defence against DNS rebinding, as
//! pizauth 1.1.0 has): a page on another site whose name an attacker points at
//! 127.0.0.1 can make a browser send requests to the redirect listener, but those name
//! the attacker's host, not ours.

/// The host names every listener answers to, beside its own address and the hosts of
/// the accounts' redirect URIs.
pub const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Whether the `Host` header `host` names a listener on `port` (HTTPS if `https`):
/// one of [`LOOPBACK_NAMES`] or of `own` (the listener's address, the redirect URIs'
/// hosts; IPv6 addresses in brackets), compared without regard to case, with the
/// listener's port (which may be left out only if it is the scheme's default, as
/// browsers do).
pub fn host_allowed<'a>(
    host: &str,
    port: u16,
    https: bool,
    own: impl IntoIterator<Item = &'a str>,
) -> bool {
    let Some((name, given)) = split_host(host) else {
        return false;
    };
    let default = if https { 443 } else { 80 };
    let port_ok = match given {
        Some(p) => p == port,
        None => port == default,
    };
    port_ok
        && LOOPBACK_NAMES
            .into_iter()
            .chain(own)
            .any(|n| n.eq_ignore_ascii_case(name))
}

/// The host of a listen address as `Host` would name it (`127.0.0.1:8080` gives
/// `127.0.0.1`, `[::1]:0` gives `[::1]`); `None` for a wildcard address, which names
/// no host.
pub fn listen_host(addr: &str) -> Option<&str> {
    let (name, _) = addr.rsplit_once(':')?;
    let wildcard = matches!(name, "0.0.0.0" | "[::]" | "" | "*");
    (!wildcard).then_some(name)
}

/// `name[:port]` split in two; `None` if malformed (a bad port, an IPv6 address without
/// brackets, an empty name).
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, rest) = if host.starts_with('[') {
        let end = host.find(']')? + 1;
        host.split_at(end)
    } else {
        match host.find(':') {
            Some(i) => host.split_at(i),
            None => (host, ""),
        }
    };
    if name.is_empty() {
        return None;
    }
    let port = match rest {
        "" => None,
        _ => {
            let digits = rest.strip_prefix(':')?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(digits.parse().ok()?)
        }
    };
    Some((name, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_with_the_listeners_port() {
        for host in [
            "localhost:8080",
            "LocalHost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
        ] {
            assert!(host_allowed(host, 8080, false, []), "{host}");
        }
        for host in ["localhost:8081", "localhost", "127.0.0.1:80", "[::1]"] {
            assert!(!host_allowed(host, 8080, false, []), "{host}");
        }
        // The default port may be left out, as browsers do.
        assert!(host_allowed("localhost", 80, false, []));
        assert!(host_allowed("localhost", 443, true, []));
        assert!(!host_allowed("localhost", 443, false, []));
    }

    #[test]
    fn other_hosts_only_if_they_are_ours() {
        let own = ["pizauth.example", "192.168.1.5"];
        assert!(host_allowed("pizauth.example:9000", 9000, true, own));
        assert!(host_allowed("192.168.1.5:9000", 9000, false, own));
        for host in [
            "attacker.example:9000",
            "pizauth.example.attacker.example:9000",
            "localhost.attacker.example:9000",
            "127.0.0.1.nip.io:9000",
        ] {
            assert!(!host_allowed(host, 9000, false, own), "{host}");
        }
    }

    #[test]
    fn malformed_hosts_are_refused() {
        for host in [
            "",
            ":8080",
            "localhost:",
            "localhost:80x",
            "localhost:99999",
            "localhost:+80",
            "::1:8080",
            "[::1",
            "[::1]x",
            "[::1]:",
            "localhost:8080:8080",
        ] {
            assert!(!host_allowed(host, 8080, false, []), "{host:?}");
        }
    }

    #[test]
    fn listen_hosts() {
        assert_eq!(listen_host("127.0.0.1:0"), Some("127.0.0.1"));
        assert_eq!(listen_host("[::1]:8080"), Some("[::1]"));
        assert_eq!(listen_host("localhost:8080"), Some("localhost"));
        assert_eq!(listen_host("0.0.0.0:8080"), None);
        assert_eq!(listen_host("[::]:8080"), None);
        assert_eq!(listen_host("nonsense"), None);
    }
}
