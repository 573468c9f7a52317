//! Control requests from `pizauth` clients (SPEC.md section 3).

use crate::event::{ClientId, Entropy, Level, Output};
use crate::oauth;
use crate::protocol::{AccountStatus, LastError, Reply, Request};
use crate::time::Now;

use super::account::{Device, Grant, State, Step};
use super::{AccountId, Server};
use crate::config::Flow;

impl Server {
    pub(super) fn client_asked(
        &mut self,
        now: Now,
        client: ClientId,
        bytes: &[u8],
        entropy: &mut dyn Entropy,
    ) {
        let request = match Request::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.log(Level::Warn, format!("control client: {e}"));
                return self.reply(client, Reply::error(e));
            }
        };
        let reply = match request {
            Request::Show {
                account,
                with_url,
                wait,
            } => match self.by_name.get(&account).copied() {
                Some(id) => self.show(now, client, id, with_url, wait, entropy),
                None => Some(no_account(&account)),
            },
            Request::Refresh { account, with_url } => match self.by_name.get(&account).copied() {
                Some(id) => Some(self.refresh_asked(now, client, id, with_url, entropy)),
                None => Some(no_account(&account)),
            },
            Request::Revoke { account } => match self.by_name.get(&account).copied() {
                Some(id) => self.revoke(now, client, id),
                None => Some(no_account(&account)),
            },
            Request::Status => Some(self.status(now)),
            Request::Info => self.info(client),
            Request::Dump => Some(self.dump(now)),
            Request::Restore { dump } => Some(self.restore(now, dump.as_str())),
            Request::Reload => return self.reload_asked(Some(client)),
            Request::Shutdown => {
                self.reply(client, Reply::Done);
                return self.shut_down();
            }
        };
        if let Some(reply) = reply {
            self.reply(client, reply);
        }
    }

    /// `info`: the listeners. The HTTPS listener's certificate is made when first needed,
    /// so the first `info` may have to wait for it (the driver makes it at once).
    fn info(&mut self, client: ClientId) -> Option<Reply> {
        let l = &self.listeners;
        if l.https_port.is_some() && l.https_fingerprint.is_none() {
            if self.info_waiters.is_empty() {
                self.outputs.push_back(Output::MakeCertificate);
            }
            self.info_waiters.push(client);
            return None;
        }
        Some(Reply::Info {
            http_port: l.http_port,
            https_port: l.https_port,
            https_fingerprint: l.https_fingerprint.clone(),
        })
    }

    /// The HTTPS listener's certificate was made (by the driver, for `info` or for the
    /// first HTTPS connection), or could not be: remember its fingerprint and answer who
    /// asked, or tell them why not (the next `info` asks again).
    pub(super) fn certificate_made(&mut self, fingerprint: Result<String, String>) {
        let failure = match fingerprint {
            Ok(f) => {
                self.listeners.https_fingerprint = Some(f);
                None
            }
            Err(e) => {
                let why = format!("cannot make the HTTPS listener's certificate: {e}");
                self.log(Level::Error, why.clone());
                Some(why)
            }
        };
        for client in std::mem::take(&mut self.info_waiters) {
            let l = &self.listeners;
            let reply = match &failure {
                Some(why) => Reply::error(why.clone()),
                None => Reply::Info {
                    http_port: l.http_port,
                    https_port: l.https_port,
                    https_fingerprint: l.https_fingerprint.clone(),
                },
            };
            self.reply(client, reply);
        }
    }

    pub(super) fn reply(&mut self, client: ClientId, reply: Reply) {
        self.outputs.push_back(Output::Reply { client, reply });
    }

    /// `show`: the token if there is a valid one; otherwise start what would get one,
    /// and say so (or, with `wait`, answer later). Plain `show` never waits.
    fn show(
        &mut self,
        now: Now,
        client: ClientId,
        id: AccountId,
        with_url: bool,
        wait: Option<u32>,
        entropy: &mut dyn Entropy,
    ) -> Option<Reply> {
        let slot = self.accounts.get(&id)?;
        let mut begin = false;
        let mut message = None;
        match &slot.state {
            State::Active(a) if a.tokens.expires > now.boot => {
                return Some(Reply::Token {
                    token: a.tokens.access.clone(),
                });
            }
            State::Refreshing(r) if r.tokens.expires > now.boot => {
                return Some(Reply::Token {
                    token: r.tokens.access.clone(),
                });
            }
            State::Active(_) if self.held(id, now).is_some() => {
                // The last answer gave no usable token: the retry is scheduled already.
            }
            // The last try got no answer at all (refused, cut short, timed out): its retry
            // is scheduled too. A mail program polling `show` must not turn one outage
            // into a request per poll, nor pile up the failures after which
            // transient_error_if_cmd decides; `pizauth refresh` still tries at once.
            State::Active(a)
                if a.failures > 0
                    && a.last_attempt.is_some_and(|t| {
                        now.boot
                            < t + slot
                                .config
                                .timing
                                .refresh_retry
                                .max(std::time::Duration::from_secs(1))
                    }) => {}
            State::Active(_) => {
                self.start_refresh(now, id);
                message = Some("Access token has expired. Refreshing initiated".to_owned());
            }
            // The provider just refused or garbled what this flow asks of it (issue 12,
            // case 3): say why, and ask again only once refresh_retry has passed. (A new
            // authorisation URL asks the provider nothing, so it is not held back.)
            State::Unauthorised | State::Failed(_)
                if slot.config.flow != Flow::Code && self.held(id, now).is_some() =>
            {
                let why = match (&slot.state, &slot.last_error) {
                    (State::Failed(f), _) => f.why.to_string(),
                    (_, Some((_, why))) => why.to_string(),
                    _ => "the provider gave no usable token".to_owned(),
                };
                return Some(Reply::error(format!("Access token unavailable: {why}")));
            }
            State::Unauthorised | State::Failed(_) => begin = true,
            State::Discovering(_)
            | State::Refreshing(_)
            | State::Exchanging(_)
            | State::Pending(_)
            | State::Device(_) => {}
        }
        if begin && let Err(why) = self.begin(now, id, entropy) {
            return Some(Reply::error(format!("Access token unavailable: {why}")));
        }
        match wait {
            Some(secs) if secs > 0 => {
                self.wait_for_token(now, client, id, with_url, secs);
                None
            }
            _ => {
                Some(Reply::error(message.unwrap_or_else(|| {
                    self.unavailable_message(now, id, with_url)
                })))
            }
        }
    }

    /// What `show` says when it has no token to give, without starting anything.
    pub(super) fn unavailable_message(&self, now: Now, id: AccountId, with_url: bool) -> String {
        let Some(slot) = self.accounts.get(&id) else {
            return "Access token unavailable: the account no longer exists".into();
        };
        // While an account waits to try again after a failure, say what failed.
        let last = slot.last_error.as_ref().map(|(_, why)| why.to_string());
        match &slot.state {
            State::Active(a) if a.tokens.expires <= now.boot => match last {
                Some(why) if a.failures > 0 => format!(
                    "Access token has expired. Refreshing failed ({why}); pizauth keeps trying"
                ),
                _ => "Access token has expired. Refreshing initiated".into(),
            },
            State::Refreshing(r) if r.tokens.expires <= now.boot => {
                "Access token has expired. Refreshing is in progress but has not yet succeeded"
                    .into()
            }
            State::Active(_) | State::Refreshing(_) => {
                "Access token available: run pizauth show again".into()
            }
            State::Pending(p) if with_url => {
                format!(
                    "Access token unavailable until authorised with URL {}",
                    p.url
                )
            }
            State::Pending(_) => "Access token unavailable until authorised".into(),
            State::Exchanging(e) => {
                let what = match e.grant {
                    Grant::ClientCredentials => {
                        "Access token unavailable: requesting a token with the client credentials"
                    }
                    Grant::Code { .. } => {
                        "Access token unavailable until authorised: the authorisation code is being exchanged for a token"
                    }
                };
                match (e.step, last) {
                    (Step::RetryAt(_), Some(why)) if e.attempt >= 1 => {
                        format!("{what} (the last attempt failed: {why})")
                    }
                    _ => what.to_owned(),
                }
            }
            State::Device(Device::Requesting(_)) => {
                "Access token unavailable until authorised: requesting a device code".into()
            }
            State::Device(Device::Polling(p)) if with_url => format!(
                "Access token unavailable until authorised: visit {} and enter code {}",
                p.verification_uri, p.user_code
            ),
            State::Device(Device::Polling(_)) => "Access token unavailable until authorised".into(),
            State::Discovering(d) => match &d.last {
                // Fetching again after a failure: say what went wrong last time.
                Some(f) => format!(
                    "Access token unavailable: discovering the endpoints of {} (last time: {})",
                    d.issuer, f.why
                ),
                None => format!(
                    "Access token unavailable: discovering the endpoints of {}",
                    d.issuer
                ),
            },
            State::Failed(f) => format!("Access token unavailable: {}", f.why),
            State::Unauthorised => "Access token unavailable".into(),
        }
    }

    /// `refresh`: with a token, refresh it now (unless already under way); without one,
    /// behave as `show` (without waiting) does.
    fn refresh_asked(
        &mut self,
        now: Now,
        client: ClientId,
        id: AccountId,
        with_url: bool,
        entropy: &mut dyn Entropy,
    ) -> Reply {
        match self.accounts.get(&id).map(|s| &s.state) {
            Some(State::Active(_)) => {
                self.start_refresh(now, id);
                Reply::Done
            }
            Some(State::Refreshing(_)) => Reply::Done,
            _ => self
                .show(now, client, id, with_url, None, entropy)
                .unwrap_or_else(|| {
                    Reply::error("Access token unavailable: the account no longer exists")
                }),
        }
    }

    fn status(&self, now: Now) -> Reply {
        let accounts = self
            .by_name
            .iter()
            .filter_map(|(name, id)| {
                let slot = self.accounts.get(id)?;
                Some(AccountStatus {
                    name: name.clone(),
                    flow: slot.config.flow.as_str().to_owned(),
                    state: slot.state.status(now),
                    last_error: slot.last_error.as_ref().map(|(at, message)| LastError {
                        at: now.wall_at(*at),
                        message: message.to_string(),
                    }),
                    warning: slot.state.tokens().and_then(|t| {
                        oauth::no_refresh_token_warning(&slot.config, t.refresh.is_some())
                    }),
                })
            })
            .collect();
        Reply::Status { accounts }
    }
}

fn no_account(name: &str) -> Reply {
    Reply::error(format!("No account '{}'", printable(name)))
}

/// A client-supplied name made safe to echo on one line.
fn printable(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
