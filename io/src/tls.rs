//! TLS configurations, for rustls's buffer API beside each socket.
//!
//! Both sides use the *ring* provider explicitly and rustls's safe default protocol
//! versions (TLS 1.3 and 1.2), and offer only the ALPN protocol `http/1.1`.
//!
//! - [`client_config`]: for token endpoints, verified against the webpki roots plus every
//!   certificate in the PEM bundle named by `$SSL_CERT_FILE` (for private CAs and tests).
//! - [`SelfSigned`]: for the HTTPS redirect listener, a certificate made in memory once
//!   per run of the server, when first needed, and never written to disk; users compare its [`fingerprint`](SelfSigned::fingerprint)
//!   with the one their browser shows.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};

/// The environment variable naming an extra PEM bundle of trusted roots.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";

/// The names the self-signed certificate is valid for.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The client configuration for token endpoints: the webpki roots, plus every certificate
/// in the PEM bundle named by `$SSL_CERT_FILE` if that is set and not empty.
///
/// Errors (each naming the bundle's path): the bundle cannot be read, is not PEM, holds no
/// certificate, or holds one that is not a usable trust anchor.
pub fn client_config() -> Result<Arc<ClientConfig>, String> {
    let bundle: Option<OsString> = std::env::var_os(SSL_CERT_FILE).filter(|p| !p.is_empty());
    client_config_with(bundle.as_deref().map(Path::new))
}

/// [`client_config`] with the extra bundle given explicitly (`None`: webpki roots only).
pub fn client_config_with(bundle: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = bundle {
        for cert in read_bundle(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("unusable certificate in {}: {e}", path.display()))?;
        }
    }
    client_config_from(roots)
}

/// The client configuration with exactly these trust anchors (tests use this to trust a
/// [`SelfSigned`] certificate and nothing else).
pub fn client_config_from(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The name to verify a token endpoint's certificate against: a DNS name, or an IP
/// address (with or without the brackets a URL puts around IPv6).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(crate::resolver::unbracketed(host).to_owned())
        .map_err(|_| format!("invalid tls server name {host:?}"))
}

/// Every certificate in a PEM bundle; at least one.
fn read_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificates in {}", path.display()));
    }
    Ok(certs)
}

/// The crypto provider both sides use.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration for the HTTPS redirect listener with a fresh self-signed
/// certificate (ECDSA P-256) for `localhost`, `127.0.0.1` and `::1`. The key exists only
/// in memory.
#[derive(Clone)]
pub struct SelfSigned {
    /// The server configuration holding the certificate and its key.
    pub config: Arc<ServerConfig>,
    /// The SHA-256 fingerprint of the certificate's DER, as browsers show it: uppercase
    /// hex pairs joined by colons (`AB:CD:...`, 95 characters).
    pub fingerprint: String,
    /// The certificate itself (DER), for clients that should trust it (tests).
    pub certificate: CertificateDer<'static>,
}

impl SelfSigned {
    /// Makes a new key pair and certificate, and a server configuration using them.
    pub fn generate() -> Result<Self, String> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| format!("cannot generate a key pair: {e}"))?;
        let names: Vec<String> = LOCAL_NAMES.iter().map(|&n| n.to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names)
            .map_err(|e| format!("cannot make certificate parameters: {e}"))?;
        let mut subject = rcgen::DistinguishedName::new();
        subject.push(rcgen::DnType::CommonName, "pizauth redirect listener");
        params.distinguished_name = subject;
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("cannot sign the certificate: {e}"))?;
        let certificate = cert.der().clone();
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot configure tls: {e}"))?
            .with_no_client_auth()
            .with_single_cert(vec![certificate.clone()], private)
            .map_err(|e| format!("cannot use the certificate: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(SelfSigned {
            config: Arc::new(config),
            fingerprint: fingerprint(&certificate),
            certificate,
        })
    }
}

/// Shows the fingerprint only.
impl std::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// The SHA-256 of `der` as uppercase colon-separated hex.
fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, byte) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02X}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls::{ClientConnection, ServerConnection};

    /// Moves TLS records between the two sides until neither has anything to say;
    /// returns the first error either side reports.
    fn handshake(
        client: &mut ClientConnection,
        server: &mut ServerConnection,
    ) -> Result<(), rustls::Error> {
        for _ in 0..16 {
            let mut to_server = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut to_server).expect("write to a vec");
            }
            if !to_server.is_empty() {
                server
                    .read_tls(&mut to_server.as_slice())
                    .expect("read from a slice");
                server.process_new_packets()?;
            }
            let mut to_client = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut to_client).expect("write to a vec");
            }
            if !to_client.is_empty() {
                client
                    .read_tls(&mut to_client.as_slice())
                    .expect("read from a slice");
                client.process_new_packets()?;
            }
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not finish");
    }

    fn connect(roots: RootCertStore, name: &str) -> (Result<(), rustls::Error>, ServerConnection) {
        let server_side = SelfSigned::generate().expect("self-signed certificate");
        let mut server = ServerConnection::new(server_side.config.clone()).expect("server");
        let mut roots = roots;
        roots
            .add(server_side.certificate.clone())
            .expect("trust anchor");
        let config = client_config_from(roots).expect("client config");
        let mut client =
            ClientConnection::new(config, server_name(name).expect("name")).expect("client");
        (handshake(&mut client, &mut server), server)
    }

    #[test]
    fn handshake_succeeds_when_the_certificate_is_trusted() {
        for name in LOCAL_NAMES.iter().chain(&["[::1]"]) {
            let (result, server) = connect(RootCertStore::empty(), name);
            assert_eq!(result, Ok(()), "{name}");
            assert_eq!(server.alpn_protocol(), Some(&b"http/1.1"[..]));
        }
    }

    #[test]
    fn handshake_fails_without_the_certificate() {
        let server_side = SelfSigned::generate().expect("self-signed certificate");
        let mut server = ServerConnection::new(server_side.config.clone()).expect("server");
        let config = client_config_with(None).expect("client config");
        let mut client =
            ClientConnection::new(config, server_name("localhost").expect("name")).expect("client");
        let result = handshake(&mut client, &mut server);
        assert!(
            matches!(result, Err(rustls::Error::InvalidCertificate(_))),
            "{result:?}"
        );
    }

    #[test]
    fn handshake_fails_for_another_name() {
        let (result, _) = connect(RootCertStore::empty(), "example.com");
        assert!(
            matches!(result, Err(rustls::Error::InvalidCertificate(_))),
            "{result:?}"
        );
    }

    #[test]
    fn fingerprint_is_uppercase_colon_separated_sha256() {
        let s = SelfSigned::generate().expect("self-signed certificate");
        assert_eq!(s.fingerprint.len(), 32 * 3 - 1);
        assert!(
            s.fingerprint
                .split(':')
                .all(|p| p.len() == 2 && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')))
        );
        assert_eq!(s.fingerprint, fingerprint(&s.certificate));
        // The empty string's SHA-256, a fixed point to check the formatting against.
        assert!(fingerprint(b"").starts_with("E3:B0:C4:42:98:FC:1C:14"));
        assert_ne!(
            SelfSigned::generate().expect("second").fingerprint,
            s.fingerprint
        );
    }

    #[test]
    fn bundle_certificates_are_trusted_and_bad_bundles_name_their_path() {
        let dir = std::env::temp_dir().join(format!("pizauth-io-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let s = SelfSigned::generate().expect("self-signed certificate");
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64(&s.certificate)
        );
        let good = dir.join("good.pem");
        std::fs::write(&good, pem).expect("write bundle");
        assert!(client_config_with(Some(&good)).is_ok());

        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write bundle");
        let err = client_config_with(Some(&empty)).expect_err("empty bundle");
        assert!(
            err.starts_with("no certificates in") && err.contains("empty.pem"),
            "{err}"
        );

        let missing = dir.join("missing.pem");
        let err = client_config_with(Some(&missing)).expect_err("missing bundle");
        assert!(
            err.starts_with("cannot read") && err.contains("missing.pem"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn server_names_accept_bracketed_ipv6() {
        assert!(server_name("[::1]").is_ok());
        assert!(server_name("login.example.com").is_ok());
        assert!(server_name("bad name").is_err());
    }

    /// Standard base64 with padding, enough to write a PEM file in a test.
    fn base64(data: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
