//! The pure core of pizauth: the configuration language, OAuth2 request building and
//! response parsing, the control protocol, the dump format, and the state machine that
//! decides everything the daemon does.
//!
//! Nothing here performs I/O, reads a clock or draws OS randomness: time and entropy come
//! in as arguments, effects go out as values. The driver (crate `pizauth-io`) runs it:
//!
//! 1. Build a [`Server`] from a parsed [`Config`] and the listeners' ports.
//! 2. Read [`Now`] (boot-time and wall-clock) and turn each event (a client request, a
//!    redirect, an HTTP response, a process exit, a signal) into an [`Input`].
//! 3. Call [`Server::handle`] with it; call it with [`Input::Tick`] when the deadline from
//!    [`Server::poll_timeout`] has passed.
//! 4. Drain [`Server::poll_output`] until it returns `None`, performing each [`Output`].
//! 5. Arm a timer for [`Server::poll_timeout`] (`None`: sleep until the next event) and
//!    wait for the next event; go to 2. Stop after [`Output::Exit`].
//!
//! Methods: `new` builds; `handle` is the only input; `poll_output` and `poll_timeout` are
//! the only outputs. Inputs for ids the core no longer expects are logged and dropped.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod config;
pub mod dump;
pub mod event;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod host;
pub mod oauth;
pub mod protocol;
pub mod secret;
pub mod server;
pub mod time;
pub mod timers;

pub use config::{Account, Config};
pub use event::{Entropy, Input, Output};
pub use secret::Secret;
pub use server::{Listeners, Server};
pub use time::{Instant, Now, WallTime};
