//! Keeping tokens fresh (SPEC.md section 5): when to refresh, sending the refresh,
//! transient versus permanent failures, and the transient-error check.

use std::time::Duration;

use crate::event::{HttpResponse, Level, Output, TransportError};
use crate::oauth::{self, TokenError, TokenResponse};
use crate::time::{Instant, Now};

use super::account::{Active, InFlight, Next, Refreshing, State, Tokens};
use super::children::TokenEvent;
use super::discovery::{Resolved, Want, Which};
use super::failure::{Cause, Failure};
use super::{AccountId, Server};
use crate::config::Flow;

impl Server {
    /// How long a new token lives: `expires_in`, or `refresh_at_least` if absent.
    pub(super) fn lifetime(&self, id: AccountId, expires_in: Option<Duration>) -> Duration {
        expires_in.unwrap_or_else(|| {
            self.accounts
                .get(&id)
                .map_or(crate::config::DEFAULT_REFRESH_AT_LEAST, |s| {
                    s.config.timing.refresh_at_least
                })
        })
    }

    /// The tokens of a successful token response to a request sent at `sent` (from which
    /// `expires_in` counts).
    pub(super) fn tokens_from(&self, id: AccountId, t: TokenResponse, sent: Instant) -> Tokens {
        let lifetime = self.lifetime(id, t.expires_in);
        Tokens {
            access: t.access_token,
            refresh: t.refresh_token,
            obtained: sent,
            expires: sent + lifetime,
        }
    }

    /// Makes account `id` active with `tokens` (replacing whatever it was doing), its
    /// refresh scheduled: the state is built once, complete.
    pub(super) fn install(&mut self, now: Now, id: AccountId, tokens: Tokens) {
        if let Some(slot) = self.accounts.get(&id)
            && let Some(w) = oauth::no_refresh_token_warning(&slot.config, tokens.refresh.is_some())
        {
            self.log(Level::Warn, format!("{}: {w}", slot.config.name));
        }
        let Some(slot) = self.accounts.get_mut(&id) else {
            return;
        };
        slot.quiet_until = None;
        let (timing, flow) = (slot.config.timing, slot.config.flow);
        let next = next_step(&tokens, 0, None, timing, flow, now);
        self.update(id, |_, _| {
            State::Active(Active {
                tokens,
                failures: 0,
                last_attempt: None,
                told_expired: false,
                next,
            })
        });
    }

    /// Sets again when an active account next acts (after a failure, or a reload that
    /// may have changed its timing); see [`next_step`]. A running transient check stays.
    pub(super) fn schedule(&mut self, now: Now, id: AccountId) {
        let Some(slot) = self.accounts.get(&id) else {
            return;
        };
        let (timing, flow) = (slot.config.timing, slot.config.flow);
        self.update(id, |_, state| match state {
            State::Active(mut a) => {
                if !matches!(a.next, Next::Checking(_)) {
                    a.next = next_step(&a.tokens, a.failures, a.last_attempt, timing, flow, now);
                }
                State::Active(a)
            }
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        });
    }

    /// An active account's deadline: refresh, or drop a token that cannot be refreshed.
    pub(super) fn active_due(&mut self, now: Now, id: AccountId) {
        let next = match self.accounts.get(&id).map(|s| &s.state) {
            Some(State::Active(a)) => a.next,
            _ => return,
        };
        match next {
            Next::RefreshAt(_) => self.start_refresh(now, id),
            Next::ExpireAt(_) => {
                self.log(
                    Level::Info,
                    format!(
                        "{}: token expired and there is no refresh token",
                        self.name_of(id)
                    ),
                );
                self.update(id, |_, _| State::Unauthorised);
                self.token_event(id, TokenEvent::Invalidated);
            }
            Next::Checking(_) | Next::Discovering => (),
        }
    }

    /// Sends a refresh request now, if the account is active, not waiting for
    /// `transient_error_if_cmd`, and can refresh; an expired token without a refresh token
    /// is dropped.
    pub(super) fn start_refresh(&mut self, now: Now, id: AccountId) {
        let Some(slot) = self.accounts.get(&id) else {
            return;
        };
        let State::Active(a) = &slot.state else {
            return;
        };
        if matches!(a.next, Next::Checking(_)) {
            return;
        }
        if let Some(until) = self.held(id, now) {
            // The provider just gave no usable token: the retry is already scheduled, at
            // `until` or later; asking sooner (for `show`, `refresh`) would hammer it.
            return self.defer_refresh(now, id, until);
        }
        // Client-credentials accounts renew by asking again; others need a refresh token.
        if a.tokens.refresh.is_none() && slot.config.flow != Flow::ClientCredentials {
            if a.tokens.expires <= now.boot {
                self.update(id, |_, _| State::Unauthorised);
                self.token_event(id, TokenEvent::Invalidated);
            }
            return;
        }
        let url = match self.resolve(now, id, Which::Token) {
            Resolved::Url(u) => u,
            Resolved::Discovering(issuer) => {
                self.await_issuer(&issuer, id, Want::Refresh);
                return self.update(id, |_, state| match state {
                    State::Active(mut a) => {
                        a.next = Next::Discovering;
                        State::Active(a)
                    }
                    other @ (State::Unauthorised
                    | State::Discovering(_)
                    | State::Pending(_)
                    | State::Exchanging(_)
                    | State::Device(_)
                    | State::Refreshing(_)
                    | State::Failed(_)) => other,
                });
            }
            Resolved::Held(why) => {
                // Keep the token; the metadata is fetched again after refresh_retry.
                self.note_error(id, &Failure::Retrying(Cause::Endpoint(why)));
                return self.retry_refresh_later(now, id);
            }
            Resolved::Missing(why) => return self.invalidate(now, id, why),
        };
        let Some(slot) = self.accounts.get(&id) else {
            return;
        };
        let State::Active(a) = &slot.state else {
            return;
        };
        let auth = self.client_auth(&slot.config);
        let req = match &a.tokens.refresh {
            Some(refresh_token) => oauth::refresh_body(&slot.config, auth, refresh_token),
            None => oauth::client_credentials_body(&slot.config, auth),
        };
        let request = self.fresh_request();
        let timeout = self.tunables.http_timeout;
        let http = req.post(url, timeout);
        self.update(id, |_, state| match state {
            State::Active(a) => State::Refreshing(Refreshing {
                tokens: a.tokens,
                failures: a.failures,
                told_expired: a.told_expired,
                flight: InFlight {
                    request,
                    sent: now.boot,
                    deadline: now.boot + timeout,
                },
            }),
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        });
        self.log(Level::Debug, format!("{}: refreshing", self.name_of(id)));
        self.outputs.push_back(Output::SendHttp { request, http });
    }

    /// The refresh request got no answer in time.
    pub(super) fn refresh_timed_out(&mut self, now: Now, id: AccountId) {
        let flight = match self.accounts.get(&id).map(|s| &s.state) {
            Some(State::Refreshing(r)) => r.flight,
            _ => return,
        };
        let timeout = self.no_answer(" from the token endpoint");
        self.refresh_finished(now, id, flight, Err(timeout));
    }

    /// The refresh ended: new tokens, a transient failure (keep the token, retry), or a
    /// permanent one (drop the token).
    pub(super) fn refresh_finished(
        &mut self,
        now: Now,
        id: AccountId,
        flight: InFlight,
        result: Result<HttpResponse, TransportError>,
    ) {
        let outcome = match result {
            Ok(response) => oauth::parse_token_response(&response).map_err(|e| {
                let retry_after = match &e {
                    TokenError::Transient { retry_after, .. } => *retry_after,
                    _ => None,
                };
                (e.is_transient(), Cause::Answer(e), retry_after, true)
            }),
            Err(e) => Err((true, Cause::Transport(e.message), None, false)),
        };
        match outcome {
            Ok(t) => {
                let mut tokens = self.tokens_from(id, t, flight.sent);
                if tokens.refresh.is_none() {
                    // An absent refresh token keeps the old one (RFC 6749 6).
                    tokens.refresh = match self.accounts.get_mut(&id).map(|s| &mut s.state) {
                        Some(State::Refreshing(r)) => r.tokens.refresh.take(),
                        _ => None,
                    };
                }
                self.install(now, id, tokens);
                self.token_event(id, TokenEvent::Refreshed);
            }
            Err((true, cause, retry_after, answered)) => {
                self.transient_failure(now, id, flight, cause, retry_after, answered)
            }
            Err((false, cause, _, _)) => {
                self.hold(id, flight.sent, None);
                self.invalidate(now, id, Failure::Refresh(cause))
            }
        }
    }

    /// A transient refresh failure: keep the token; after every `check_every`-th one in a
    /// row ask `transient_error_if_cmd`, otherwise retry after `refresh_retry` (or the
    /// provider's `Retry-After`, if longer).
    fn transient_failure(
        &mut self,
        now: Now,
        id: AccountId,
        flight: InFlight,
        cause: Cause,
        retry_after: Option<Duration>,
        answered: bool,
    ) {
        let Some(slot) = self.accounts.get(&id) else {
            return;
        };
        let State::Refreshing(r) = &slot.state else {
            return;
        };
        let failures = r.failures + 1;
        let tell = !r.told_expired && r.tokens.expires <= now.boot;
        let (timing, flow) = (slot.config.timing, slot.config.flow);
        if tell {
            // Once per token: the user holds nothing usable any more, and should hear
            // why before their mail program does.
            let why = Failure::ExpiredWhileFailing(cause.clone());
            self.error_notify(id, &why.to_string());
        }
        let message = cause.to_string();
        self.note_error(id, &Failure::Retrying(cause));
        if answered {
            self.hold(id, flight.sent, retry_after);
        }
        self.log(
            Level::Warn,
            format!(
                "{}: refreshing failed ({message}), attempt {failures} in a row; will retry",
                self.name_of(id)
            ),
        );
        let every = self.tunables.check_every.max(1);
        let check = if failures % every == 0 {
            self.start_check(id)
        } else {
            None
        };
        self.update(id, |_, state| match state {
            State::Refreshing(r) => {
                let next = match check {
                    Some(child) => Next::Checking(child),
                    None => {
                        match next_step(&r.tokens, failures, Some(flight.sent), timing, flow, now) {
                            // The provider's Retry-After, if longer (bounded).
                            Next::RefreshAt(t) => Next::RefreshAt(match retry_after {
                                Some(extra) => {
                                    t.max(flight.sent + extra.min(super::MAX_RETRY_AFTER))
                                }
                                None => t,
                            }),
                            n @ (Next::ExpireAt(_) | Next::Checking(_) | Next::Discovering) => n,
                        }
                    }
                };
                State::Active(Active {
                    tokens: r.tokens,
                    failures,
                    last_attempt: Some(flight.sent),
                    told_expired: r.told_expired || tell,
                    next,
                })
            }
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Active(_)
            | State::Failed(_)) => other,
        });
    }

    /// Moves a scheduled refresh no earlier than `at`.
    fn defer_refresh(&mut self, now: Now, id: AccountId, at: Instant) {
        self.update(id, |_, state| match state {
            State::Active(mut a) => {
                if let Next::RefreshAt(t) = a.next {
                    a.next = Next::RefreshAt(t.max(at).max(now.boot));
                }
                State::Active(a)
            }
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        });
    }

    /// After `transient_error_if_cmd` said to keep going: retry on the usual schedule.
    pub(super) fn schedule_retry(&mut self, now: Now, id: AccountId) {
        self.update(id, |_, state| match state {
            State::Active(mut a) => {
                a.next = Next::RefreshAt(now.boot);
                State::Active(a)
            }
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        });
        self.schedule(now, id);
    }

    /// Drops the token for good: the next `show` starts a new authorisation.
    pub(super) fn invalidate(&mut self, now: Now, id: AccountId, why: Failure) {
        self.fail_with(now, id, why, Some(TokenEvent::Invalidated));
    }
}

/// When an active account with `tokens` next acts: at
/// `min(expires - refresh_before_expiry, obtained + refresh_at_least)`, or after a failed
/// attempt at `last_attempt + refresh_retry`; never before now. Without a refresh token
/// (outside the client-credentials flow, which asks again), the token is kept until it
/// expires and then dropped.
fn next_step(
    tokens: &Tokens,
    failures: u32,
    last_attempt: Option<Instant>,
    timing: crate::config::Timing,
    flow: Flow,
    now: Now,
) -> Next {
    if tokens.refresh.is_none() && flow != Flow::ClientCredentials {
        return Next::ExpireAt(tokens.expires.max(now.boot + Duration::from_millis(1)));
    }
    let due = match last_attempt.filter(|_| failures > 0) {
        // At least a second apart, whatever the config says (0s is accepted).
        Some(last) => last + timing.refresh_retry.max(Duration::from_secs(1)),
        None => {
            let t = tokens;
            let due = (t.expires - timing.refresh_before_expiry)
                .min(t.obtained + timing.refresh_at_least);
            // A token living no longer than refresh_before_expiry (or a refresh_at_least
            // of 0s) would be refreshed the moment it arrives, and so would its
            // successor: a busy loop against the provider. Refresh it at half its life
            // instead, and never within a second of obtaining it.
            let due = if due > t.obtained {
                due
            } else {
                t.obtained + t.expires.saturating_since(t.obtained) / 2
            };
            due.max(t.obtained + Duration::from_secs(1))
        }
    };
    Next::RefreshAt(due.max(now.boot))
}
