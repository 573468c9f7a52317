//! The device authorisation grant (RFC 8628), for headless machines and for
//! organisations that forbid localhost redirects: ask for a device code and a user code,
//! tell the user where to enter it, and poll the token endpoint until they have.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::event::{HttpResponse, Level, Output, TransportError};
use crate::oauth::{self, TokenError};
use crate::time::Now;

use super::account::{Device, InFlight, Polling, State, Step};
use super::children::TokenEvent;
use super::discovery::{Resolved, Want, Which};
use super::failure::Failure;
use super::{AccountId, Server};

impl Server {
    /// Asks the device authorisation endpoint `url` for codes.
    pub(super) fn start_device(&mut self, now: Now, id: AccountId, url: Arc<Url>) {
        let request = self.fresh_request();
        let Some(slot) = self.accounts.get(&id) else {
            return;
        };
        let timeout = self.tunables.http_timeout;
        let req = oauth::device_request_body(&slot.config, self.client_auth(&slot.config));
        let http = req.post(url, timeout);
        self.update(id, |_, _| {
            State::Device(Device::Requesting(InFlight {
                request,
                sent: now.boot,
                deadline: now.boot + timeout,
            }))
        });
        self.log(
            Level::Info,
            format!("{}: requesting a device code", self.name_of(id)),
        );
        self.outputs.push_back(Output::SendHttp { request, http });
    }

    /// The answer to the request for codes.
    pub(super) fn codes_received(
        &mut self,
        now: Now,
        id: AccountId,
        result: Result<HttpResponse, TransportError>,
    ) {
        let sent = match self.accounts.get(&id).map(|s| &s.state) {
            Some(State::Device(Device::Requesting(f))) => f.sent,
            _ => return,
        };
        let answered = result.is_ok();
        let retry_after = result.as_ref().ok().and_then(oauth::retry_after);
        let parsed = match result {
            Ok(r) => oauth::parse_device_response(&r).map_err(|e| {
                e.to_string()
                    .replace("token endpoint", "device authorisation endpoint")
            }),
            Err(e) => Err(e.message),
        };
        let codes = match parsed {
            Ok(c) => c,
            Err(why) => {
                if answered {
                    // An answer without codes: not asked again before refresh_retry.
                    self.hold(id, sent, retry_after);
                }
                return self.fail(now, id, Failure::DeviceCodes(why));
            }
        };
        let polling = Polling {
            device_code: codes.device_code,
            user_code: codes.user_code,
            verification_uri: codes.verification_uri,
            verification_uri_complete: codes.verification_uri_complete,
            expires: now.boot + codes.expires_in,
            interval: codes.interval,
            step: Step::RetryAt(now.boot + codes.interval),
            notified: now.boot,
            next_notify: self.next_notify(now),
        };
        let env = device_env(&polling);
        self.log(
            Level::Info,
            format!(
                "{}: visit {} and enter code {}",
                self.name_of(id),
                polling.verification_uri,
                polling.user_code
            ),
        );
        self.update(id, |_, _| State::Device(Device::Polling(Box::new(polling))));
        self.auth_notify_with(id, env);
    }

    /// A device-flow account's deadline: the codes expired, a notification is due, a
    /// poll is due, or a poll timed out.
    pub(super) fn device_due(&mut self, now: Now, id: AccountId) {
        let (expires, notify, step) = match self.accounts.get(&id).map(|s| &s.state) {
            Some(State::Device(Device::Polling(p))) => (p.expires, p.next_notify, p.step),
            Some(State::Device(Device::Requesting(_))) => {
                let timeout = self.no_answer("");
                return self.codes_received(now, id, Err(timeout));
            }
            _ => return,
        };
        if expires <= now.boot {
            return self.fail(now, id, Failure::DeviceExpired);
        }
        if notify.is_some_and(|t| t <= now.boot) {
            let next = self.next_notify(now);
            let mut env = None;
            self.update(id, |_, state| match state {
                State::Device(Device::Polling(mut p)) => {
                    p.notified = now.boot;
                    p.next_notify = next;
                    env = Some(device_env(&p));
                    State::Device(Device::Polling(p))
                }
                other @ (State::Unauthorised
                | State::Discovering(_)
                | State::Pending(_)
                | State::Exchanging(_)
                | State::Device(Device::Requesting(_))
                | State::Active(_)
                | State::Refreshing(_)
                | State::Failed(_)) => other,
            });
            if let Some(env) = env {
                self.auth_notify_with(id, env);
            }
        }
        match step {
            Step::RetryAt(t) if t <= now.boot => self.poll(now, id),
            Step::InFlight(f) if f.deadline <= now.boot => {
                let timeout = self.no_answer(" from the token endpoint");
                self.poll_finished(now, id, f, Err(timeout));
            }
            Step::RetryAt(_) | Step::InFlight(_) | Step::Discovering => (),
        }
    }

    /// Polls the token endpoint (RFC 8628 3.4).
    pub(super) fn poll(&mut self, now: Now, id: AccountId) {
        let url = match self.resolve(now, id, Which::Token) {
            Resolved::Url(u) => u,
            Resolved::Discovering(issuer) => {
                // Poll the moment the metadata names the token endpoint.
                self.await_issuer(&issuer, id, Want::Poll);
                return self.update(id, |_, state| match state {
                    State::Device(Device::Polling(mut p)) => {
                        p.step = Step::Discovering;
                        State::Device(Device::Polling(p))
                    }
                    other @ (State::Unauthorised
                    | State::Discovering(_)
                    | State::Pending(_)
                    | State::Exchanging(_)
                    | State::Device(Device::Requesting(_))
                    | State::Active(_)
                    | State::Refreshing(_)
                    | State::Failed(_)) => other,
                });
            }
            Resolved::Held(_) => return self.poll_again(now, id, Duration::ZERO),
            Resolved::Missing(why) => return self.fail(now, id, why),
        };
        let request = self.fresh_request();
        let timeout = self.tunables.http_timeout;
        let mut http = None;
        self.update(id, |s, state| match state {
            State::Device(Device::Polling(mut p)) => {
                if let Some(slot) = s.accounts.get(&id) {
                    let auth = s.client_auth(&slot.config);
                    let req = oauth::device_poll_body(&slot.config, auth, &p.device_code);
                    http = Some(req.post(url, timeout));
                }
                p.step = Step::InFlight(InFlight {
                    request,
                    sent: now.boot,
                    deadline: now.boot + timeout,
                });
                State::Device(Device::Polling(p))
            }
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(Device::Requesting(_))
            | State::Active(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        });
        if let Some(http) = http {
            self.outputs.push_back(Output::SendHttp { request, http });
        }
    }

    /// Whether account `id` polls and waits for its issuer's metadata.
    pub(super) fn poll_discovering(&self, id: AccountId) -> bool {
        matches!(
            self.accounts.get(&id).map(|s| &s.state),
            Some(State::Device(Device::Polling(p))) if p.step == Step::Discovering
        )
    }

    /// Schedules the next poll `interval + extra` from now (`extra` grows the interval).
    pub(super) fn poll_again(&mut self, now: Now, id: AccountId, extra: Duration) {
        self.update(id, |_, state| match state {
            State::Device(Device::Polling(mut p)) => {
                p.interval += extra;
                p.step = Step::RetryAt(now.boot + p.interval);
                State::Device(Device::Polling(p))
            }
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(Device::Requesting(_))
            | State::Active(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        });
    }

    /// A poll's answer.
    pub(super) fn poll_finished(
        &mut self,
        now: Now,
        id: AccountId,
        flight: InFlight,
        result: Result<HttpResponse, TransportError>,
    ) {
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                self.log(
                    Level::Debug,
                    format!(
                        "{}: polling failed ({}); polling on",
                        self.name_of(id),
                        e.message
                    ),
                );
                return self.poll_again(now, id, Duration::ZERO);
            }
        };
        match oauth::parse_token_response(&response) {
            Ok(t) => {
                let tokens = self.tokens_from(id, t, flight.sent);
                self.install(now, id, tokens);
                self.token_event(id, TokenEvent::New);
            }
            Err(TokenError::Rejected { error: Some(e), .. }) if e == "authorization_pending" => {
                self.poll_again(now, id, Duration::ZERO)
            }
            Err(TokenError::Rejected { error: Some(e), .. }) if e == "slow_down" => {
                // RFC 8628 3.5: the interval grows by 5 seconds (the tunable's default).
                self.poll_again(now, id, self.tunables.slow_down)
            }
            Err(TokenError::Rejected { error: Some(e), .. }) if e == "access_denied" => {
                self.fail(now, id, Failure::DeviceDenied)
            }
            Err(TokenError::Rejected { error: Some(e), .. }) if e == "expired_token" => {
                self.fail(now, id, Failure::DeviceExpired)
            }
            // A hiccup (a 5xx, a CDN's error page) does not lose the user's code.
            Err(e) if e.is_transient() => self.poll_again(now, id, Duration::ZERO),
            Err(e) => {
                // A refusal: the next device request waits refresh_retry (issue 12).
                self.hold(id, flight.sent, None);
                self.fail(now, id, Failure::Device(e))
            }
        }
    }
}

/// The environment of `auth_notify_cmd` for a device-flow request.
fn device_env(p: &Polling) -> Vec<(String, String)> {
    vec![
        ("PIZAUTH_URL".to_owned(), p.url().to_owned()),
        ("PIZAUTH_USER_CODE".to_owned(), p.user_code.clone()),
        (
            "PIZAUTH_VERIFICATION_URI".to_owned(),
            p.verification_uri.clone(),
        ),
    ]
}
