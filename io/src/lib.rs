//! The building blocks of the driver that runs the pizauth core on a mio event loop.
//!
//! The core (`pizauth-fsm`) decides everything and performs no I/O; this crate performs
//! it. Each module is a small tool for the event loop, usable and testable on its own:
//!
//! - [`http1`]: sans-IO HTTP/1.1 framing: requests to token endpoints and their
//!   responses, requests on the redirect listeners and their answers.
//! - [`driver`]: the event loop itself, built from the modules below.
//! - [`tls`]: rustls configurations: a client verifying against the webpki roots (plus
//!   `$SSL_CERT_FILE`), and a server with an in-memory self-signed certificate.
//! - [`resolver`]: host-name resolution on a helper thread that wakes the loop.
//! - [`os`]: the system interfaces, one implementation per system (Linux; macOS, FreeBSD
//!   and OpenBSD): both clocks, a boot-time timer, signals, child processes, peer
//!   credentials, readiness notification, core-dump suppression and confinement.
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod driver;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http1;
pub mod os;
pub mod resolver;
pub mod tls;
