//! One account's token state. Each variant carries exactly the data valid in it, so
//! impossible combinations (a refresh in flight without a token, a pending request
//! without a verifier) cannot be written down.

use std::time::Duration;

use url::Url;

use crate::event::{ChildId, RequestId};
use crate::protocol::{LastError, TokenStatus};
use crate::secret::Secret;
use crate::time::{Instant, Now};

/// The state of one account.
///
/// The states of a flow under way are boxed: at any moment almost every account is
/// unauthorised or holds a token, and an inline `Pending` (216 bytes) would make every
/// account's state that large (a boxed one keeps `State` at 104 bytes, the size of
/// `Active`).
#[derive(Debug)]
pub(crate) enum State {
    /// No token, nothing under way.
    Unauthorised,
    /// Waiting for the issuer's metadata before an authorisation can start (queued on
    /// the issuer, whose fetch has its own deadline).
    Discovering(Box<Discovering>),
    /// An authorisation URL has been handed out; waiting for the browser's redirect.
    Pending(Box<Pending>),
    /// Exchanging a grant for tokens: the code the redirect brought, or (for
    /// `client_credentials`) the client's own credentials.
    Exchanging(Box<Exchanging>),
    /// The device flow (RFC 8628): asking for codes, then polling while the user enters
    /// the code elsewhere.
    Device(Device),
    /// A token is held (possibly expired, while refreshes keep failing transiently).
    Active(Active),
    /// A token is held and a refresh request is in flight.
    Refreshing(Refreshing),
    /// No token because something failed; behaves as `Unauthorised` for `show`, but
    /// `status` says what went wrong.
    Failed(Failed),
}

/// Waiting for an issuer's metadata to start an authorisation.
#[derive(Debug)]
pub(crate) struct Discovering {
    /// The issuer, as configured.
    pub issuer: String,
    /// The failure the account was in when this started, if any (`show` and `status`
    /// still say what went wrong last time).
    pub last: Option<Failed>,
}

/// Waiting for the user to authorise in a browser.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The `state` parameter: 32 random bytes, base64url. Matched in constant time.
    pub state: Secret,
    /// SHA-256 of `state`: the key of the server's lookup index (looking up by a hash
    /// leaks nothing useful through timing).
    pub state_key: [u8; 32],
    /// The PKCE verifier: 64 random bytes, base64url.
    pub verifier: Secret,
    /// The redirect URI sent in the URL (and again in the code exchange).
    pub redirect_uri: Url,
    /// The authorisation URL handed to the user.
    pub url: String,
    /// When the user was last notified (or the request started).
    pub notified: Instant,
    /// When to run `auth_notify_cmd` again; `None` when it is unset.
    pub next_notify: Option<Instant>,
}

/// Exchanging a grant for tokens.
#[derive(Debug)]
pub(crate) struct Exchanging {
    /// What is exchanged.
    pub grant: Grant,
    /// Attempts made so far, counting the one in flight (1..=exchange_tries).
    pub attempt: u32,
    /// When the user was last notified of the request this code answers.
    pub notified: Instant,
    /// What happens next.
    pub step: Step,
}

/// What an exchange sends to the token endpoint.
#[derive(Debug)]
pub(crate) enum Grant {
    /// An authorisation code (RFC 6749 4.1.3, RFC 7636 4.5).
    Code {
        /// The code from the redirect.
        code: Secret,
        /// The PKCE verifier of the request the code answers.
        verifier: Secret,
        /// The redirect URI of that request.
        redirect_uri: Url,
    },
    /// The client's own credentials (RFC 6749 4.4).
    ClientCredentials,
}

/// The device flow.
#[derive(Debug)]
pub(crate) enum Device {
    /// Asking the device authorisation endpoint for codes (RFC 8628 3.1).
    Requesting(InFlight),
    /// Polling the token endpoint while the user enters the code (RFC 8628 3.4).
    Polling(Box<Polling>),
}

/// Codes obtained; waiting for the user.
#[derive(Debug)]
pub(crate) struct Polling {
    /// `device_code`: what the token endpoint is polled with.
    pub device_code: Secret,
    /// `user_code`: what the user enters.
    pub user_code: String,
    /// `verification_uri`: where the user enters it.
    pub verification_uri: String,
    /// `verification_uri_complete`, if the provider gave one (it embeds the code).
    pub verification_uri_complete: Option<String>,
    /// When the codes expire; polling stops then.
    pub expires: Instant,
    /// Seconds between polls (RFC 8628 3.5: grows by 5 s on `slow_down`).
    pub interval: Duration,
    /// The poll in flight, or when to poll next.
    pub step: Step,
    /// When the user was last notified.
    pub notified: Instant,
    /// When to run `auth_notify_cmd` again; `None` when it is unset.
    pub next_notify: Option<Instant>,
}

impl Polling {
    /// The URL to show the user: the complete one if given.
    pub fn url(&self) -> &str {
        self.verification_uri_complete
            .as_deref()
            .unwrap_or(&self.verification_uri)
    }
}

/// The progress of an HTTP request that is retried after transport errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// In flight; abandoned as a timeout at `deadline`.
    InFlight(InFlight),
    /// Waiting to send again at this instant.
    RetryAt(Instant),
    /// Waiting for the issuer's metadata to name the endpoint; sent the moment it
    /// arrives. The account is in that issuer's queue, and the fetch has its own
    /// deadline.
    Discovering,
}

impl Step {
    /// The request in flight, if one is.
    pub fn in_flight(&self) -> Option<InFlight> {
        match self {
            Step::InFlight(f) => Some(*f),
            Step::RetryAt(_) | Step::Discovering => None,
        }
    }
}

/// A request in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InFlight {
    /// Its id.
    pub request: RequestId,
    /// When it was sent; `expires_in` counts from here.
    pub sent: Instant,
    /// When it is abandoned as a timeout (sent + http_timeout).
    pub deadline: Instant,
}

/// Tokens and when they were obtained.
#[derive(Debug)]
pub(crate) struct Tokens {
    /// The access token.
    pub access: Secret,
    /// The refresh token; without one the account cannot refresh.
    pub refresh: Option<Secret>,
    /// When the request that brought them was sent.
    pub obtained: Instant,
    /// When the access token expires (obtained + expires_in, or + refresh_at_least
    /// when the provider gave no `expires_in`). Never handed out at or after this.
    pub expires: Instant,
}

/// Holding a token.
#[derive(Debug)]
pub(crate) struct Active {
    /// The tokens.
    pub tokens: Tokens,
    /// Transient refresh failures in a row (reset by a success).
    pub failures: u32,
    /// When the last refresh attempt was sent, if any since the token was obtained.
    pub last_attempt: Option<Instant>,
    /// Whether the user was told that the token expired while refreshes kept failing
    /// (they are told once per token).
    pub told_expired: bool,
    /// What happens next.
    pub next: Next,
}

/// What an active account does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Refresh at this instant.
    RefreshAt(Instant),
    /// No refresh token: forget the token when it expires, at this instant.
    ExpireAt(Instant),
    /// `transient_error_if_cmd` is deciding whether to keep retrying.
    Checking(ChildId),
    /// Refresh once the issuer's metadata names the token endpoint (queued on the
    /// issuer, whose fetch has its own deadline).
    Discovering,
}

/// Holding a token and refreshing it.
#[derive(Debug)]
pub(crate) struct Refreshing {
    /// The tokens being refreshed (still handed out until they expire).
    pub tokens: Tokens,
    /// Transient failures in a row before this attempt.
    pub failures: u32,
    /// The request.
    /// As [`Active::told_expired`].
    pub told_expired: bool,
    pub flight: InFlight,
}

/// No token, because of this failure.
#[derive(Debug)]
pub(crate) struct Failed {
    /// When it failed.
    pub at: Instant,
    /// What failed (its words are one line, with no secrets).
    pub why: super::failure::Failure,
}

impl State {
    /// The one deadline this state needs, if any. The server keeps the timer queue
    /// equal to this for every account.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            // Discovering waits for the fetch, which has its own deadline.
            State::Unauthorised | State::Failed(_) | State::Discovering(_) => None,
            State::Pending(p) => p.next_notify,
            State::Exchanging(e) => e.step.deadline(),
            State::Device(Device::Requesting(f)) => Some(f.deadline),
            State::Device(Device::Polling(p)) => {
                [p.step.deadline(), p.next_notify, Some(p.expires)]
                    .into_iter()
                    .flatten()
                    .min()
            }
            State::Active(a) => match a.next {
                Next::RefreshAt(t) | Next::ExpireAt(t) => Some(t),
                Next::Checking(_) | Next::Discovering => None,
            },
            State::Refreshing(r) => Some(r.flight.deadline),
        }
    }

    /// The HTTP request in flight, if any (at most one per account).
    pub fn in_flight(&self) -> Option<InFlight> {
        match self {
            State::Exchanging(e) => e.step.in_flight(),
            State::Refreshing(r) => Some(r.flight),
            State::Device(Device::Requesting(f)) => Some(*f),
            State::Device(Device::Polling(p)) => p.step.in_flight(),
            State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Active(_)
            | State::Failed(_) => None,
        }
    }

    /// The id of the request in flight, if any.
    pub fn request(&self) -> Option<RequestId> {
        self.in_flight().map(|f| f.request)
    }

    /// The key under which a pending request is indexed.
    pub fn pending_key(&self) -> Option<[u8; 32]> {
        match self {
            State::Pending(p) => Some(p.state_key),
            State::Unauthorised
            | State::Discovering(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Active(_)
            | State::Refreshing(_)
            | State::Failed(_) => None,
        }
    }

    /// The tokens held, if any.
    pub fn tokens(&self) -> Option<&Tokens> {
        match self {
            State::Active(a) => Some(&a.tokens),
            State::Refreshing(r) => Some(&r.tokens),
            State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Failed(_) => None,
        }
    }

    /// A short name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            State::Unauthorised => "unauthorised",
            State::Discovering(_) => "discovering",
            State::Pending(_) => "pending",
            State::Exchanging(_) => "exchanging",
            State::Device(Device::Requesting(_)) => "device-requesting",
            State::Device(Device::Polling(_)) => "device-polling",
            State::Active(_) => "active",
            State::Refreshing(_) => "refreshing",
            State::Failed(_) => "failed",
        }
    }

    /// What `status` reports.
    pub fn status(&self, now: Now) -> TokenStatus {
        match self {
            State::Unauthorised => TokenStatus::NoToken { last_error: None },
            State::Failed(f) => failed_status(now, Some(f)),
            State::Discovering(d) => failed_status(now, d.last.as_ref()),
            State::Pending(p) => TokenStatus::Pending {
                last_notification: now.wall_at(p.notified),
                url: Some(p.url.clone()),
                user_code: None,
            },
            State::Exchanging(e) => TokenStatus::Pending {
                last_notification: now.wall_at(e.notified),
                url: None,
                user_code: None,
            },
            State::Device(Device::Requesting(f)) => TokenStatus::Pending {
                last_notification: now.wall_at(f.sent),
                url: None,
                user_code: None,
            },
            State::Device(Device::Polling(p)) => TokenStatus::Pending {
                last_notification: now.wall_at(p.notified),
                url: Some(p.url().to_owned()),
                user_code: Some(p.user_code.clone()),
            },
            State::Active(a) => token_status(now, &a.tokens, a.last_attempt),
            State::Refreshing(r) => token_status(now, &r.tokens, Some(r.flight.sent)),
        }
    }
}

/// `status` of an account with no token, after `failed` if any.
fn failed_status(now: Now, failed: Option<&Failed>) -> TokenStatus {
    TokenStatus::NoToken {
        last_error: failed.map(|f| LastError {
            at: now.wall_at(f.at),
            message: f.why.to_string(),
        }),
    }
}

fn token_status(now: Now, t: &Tokens, last_attempt: Option<Instant>) -> TokenStatus {
    if t.expires > now.boot {
        TokenStatus::Active {
            obtained: now.wall_at(t.obtained),
            expires: now.wall_at(t.expires),
        }
    } else {
        TokenStatus::Expired {
            last_refresh_attempt: last_attempt.map(|at| now.wall_at(at)),
        }
    }
}

impl Step {
    /// When this step next needs attention (`None`: when the metadata arrives).
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Step::InFlight(f) => Some(f.deadline),
            Step::RetryAt(t) => Some(*t),
            Step::Discovering => None,
        }
    }
}
