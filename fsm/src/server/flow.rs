//! The authorisation-code flow with PKCE (SPEC.md section 5): starting a request,
//! notifying the user, interpreting the redirect, and exchanging the code.

use std::time::Duration;

use sha2::{Digest, Sha256};
use url::Url;

use crate::event::{
    ConnId, Entropy, HttpResponse, Level, Output, RedirectRequest, RequestId, Scheme,
    TransportError,
};
use crate::oauth::{self, STATE_BYTES, VERIFIER_BYTES};
use crate::secret::Secret;
use crate::time::{Instant, Now};

use super::account::{
    Device, Discovering, Exchanging, Failed, Grant, InFlight, Pending, State, Step,
};
use super::children::TokenEvent;
use super::discovery::{Resolved, Want, Which};
use super::failure::{Cause, Failure, GrantKind};
use super::{AccountId, Server};
use crate::config::Flow;

/// The page shown once the browser has brought a code.
pub const PROCESSING_PAGE: &str =
    "pizauth processing authentication: you can safely close this page.";
/// The page shown for a `state` that matches no pending request.
pub const NO_MATCH_PAGE: &str = "pizauth: no pending authorisation request matches this page (it was already answered, revoked, or the server restarted); run pizauth show again for a fresh URL.";

impl Server {
    /// Starts obtaining a token for account `id` the way its flow says: an authorisation
    /// URL, a device code, or a client-credentials request; first discovering the
    /// endpoints if need be. `Err` says why nothing could be started.
    pub(super) fn begin(
        &mut self,
        now: Now,
        id: AccountId,
        entropy: &mut dyn Entropy,
    ) -> Result<(), Failure> {
        let which = match self.flow(id) {
            Flow::Code => Which::Auth,
            Flow::Device => Which::Device,
            Flow::ClientCredentials => Which::Token,
        };
        let url = match self.resolve(now, id, which) {
            Resolved::Url(u) => u,
            Resolved::Discovering(issuer) => {
                self.await_issuer(&issuer, id, Want::Authorise);
                self.update(id, |_, old| {
                    let last = match old {
                        State::Failed(f) => Some(f),
                        State::Discovering(d) => d.last,
                        State::Unauthorised
                        | State::Pending(_)
                        | State::Exchanging(_)
                        | State::Device(_)
                        | State::Active(_)
                        | State::Refreshing(_) => None,
                    };
                    State::Discovering(Box::new(Discovering { issuer, last }))
                });
                return Ok(());
            }
            Resolved::Missing(why) => return Err(why),
            Resolved::Held(why) => return Err(Failure::Endpoint(why)),
        };
        match self.flow(id) {
            Flow::Code => self.start_code(now, id, &url, entropy),
            Flow::Device => {
                self.start_device(now, id, url);
                Ok(())
            }
            Flow::ClientCredentials => {
                self.log(
                    Level::Info,
                    format!(
                        "{}: requesting a token with the client credentials",
                        self.name_of(id)
                    ),
                );
                self.start_exchange(now, id, Grant::ClientCredentials, now.boot);
                Ok(())
            }
        }
    }

    /// Starts an authorisation-code request with PKCE against `auth_uri`.
    fn start_code(
        &mut self,
        now: Now,
        id: AccountId,
        auth_uri: &Url,
        entropy: &mut dyn Entropy,
    ) -> Result<(), Failure> {
        let Some(slot) = self.accounts.get(&id) else {
            return Err(Failure::Gone);
        };
        let Some(redirect_uri) = oauth::redirect_uri(
            &slot.config,
            self.listeners.http_port,
            self.listeners.https_port,
        ) else {
            return Err(Failure::NoListener);
        };
        let state = oauth::random_token(entropy, STATE_BYTES);
        let verifier = oauth::random_token(entropy, VERIFIER_BYTES);
        let challenge = oauth::code_challenge(&verifier);
        let url =
            oauth::authorization_url(&slot.config, auth_uri, &redirect_uri, &state, &challenge)
                .to_string();
        // A new grant from the user: whatever the provider said before is moot.
        if let Some(slot) = self.accounts.get_mut(&id) {
            slot.quiet_until = None;
        }
        let pending = Pending {
            state_key: Sha256::digest(state.as_str().as_bytes()).into(),
            state,
            verifier,
            redirect_uri,
            url: url.clone(),
            notified: now.boot,
            next_notify: self.next_notify(now),
        };
        self.update(id, |_, _| State::Pending(Box::new(pending)));
        self.log(
            Level::Info,
            format!("{}: authorisation request started", self.name_of(id)),
        );
        self.auth_notify(id, &url);
        Ok(())
    }

    /// When to repeat `auth_notify_cmd`, if it is set (at least a second apart).
    pub(super) fn next_notify(&self, now: Now) -> Option<Instant> {
        self.globals.auth_notify_cmd.as_ref()?;
        Some(
            now.boot
                + self
                    .globals
                    .auth_notify_interval
                    .max(Duration::from_secs(1)),
        )
    }

    /// `auth_notify_interval` has passed with the request still pending.
    pub(super) fn notify_again(&mut self, now: Now, id: AccountId) {
        let next = self.next_notify(now);
        let mut url = None;
        self.update(id, |_, state| match state {
            State::Pending(mut p) => {
                p.notified = now.boot;
                p.next_notify = next;
                url = Some(p.url.clone());
                State::Pending(p)
            }
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Active(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        });
        if let Some(url) = url {
            self.auth_notify(id, &url);
        }
    }

    /// A request on a redirect listener. Everything that is not a good redirect gets an
    /// error page and changes nothing.
    pub(super) fn redirect_received(
        &mut self,
        now: Now,
        conn: ConnId,
        scheme: Scheme,
        request: &RedirectRequest,
    ) {
        let (status, body) = self.interpret_redirect(now, scheme, request);
        self.outputs
            .push_back(Output::AnswerRedirect { conn, status, body });
    }

    fn interpret_redirect(
        &mut self,
        now: Now,
        scheme: Scheme,
        request: &RedirectRequest,
    ) -> (u16, String) {
        if request.method != "GET" {
            return (405, "pizauth: only GET is supported".into());
        }
        let Some(host) = &request.host else {
            return (400, "pizauth: request has no Host header".into());
        };
        if !self.names_a_listener(scheme, host) {
            return (421, "pizauth: request for another host".into());
        }
        let Some((path, query)) = split_target(&request.target) else {
            return (400, "pizauth: malformed request target".into());
        };
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let param = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(state) = param("state") else {
            return (404, "pizauth: not found".into());
        };
        let Some(id) = self.find_pending(state) else {
            return (200, NO_MATCH_PAGE.into());
        };
        let Some(State::Pending(p)) = self.accounts.get(&id).map(|s| &s.state) else {
            return (200, NO_MATCH_PAGE.into());
        };
        if !redirect_matches(&p.redirect_uri, path, &pairs) {
            return (404, "pizauth: not found".into());
        }
        if let Some(c) = self.accounts.get(&id).map(|s| &s.config) {
            let promised = self.metadata(c).is_some_and(|m| m.iss_parameter_supported);
            let issuer = c.issuer.as_deref();
            if let Some(why) = oauth::redirect_issuer_mismatch(param("iss"), issuer, promised) {
                let why = Failure::IssuerMismatch(why);
                let page = format!("pizauth: {why}");
                self.fail(now, id, why);
                return (400, page);
            }
        }
        if let Some(error) = param("error") {
            let why = Failure::Authorisation {
                error: oauth::clean_provider_text(error),
                description: param("error_description").map(oauth::clean_provider_text),
            };
            let page = format!("pizauth: {why}");
            self.fail(now, id, why);
            return (400, page);
        }
        let Some(code) = param("code").filter(|c| !c.is_empty()) else {
            return (400, "pizauth: the redirect carries no code".into());
        };
        let grant = Grant::Code {
            code: Secret::new(code.to_owned()),
            verifier: p.verifier.clone(),
            redirect_uri: p.redirect_uri.clone(),
        };
        let notified = p.notified;
        self.log(
            Level::Info,
            format!("{}: authorisation code received", self.name_of(id)),
        );
        self.start_exchange(now, id, grant, notified);
        (200, PROCESSING_PAGE.into())
    }

    /// The pending account whose `state` is `state`, compared in constant time.
    fn find_pending(&self, state: &str) -> Option<AccountId> {
        let key: [u8; 32] = Sha256::digest(state.as_bytes()).into();
        let id = *self.pending.get(&key)?;
        match self.accounts.get(&id).map(|s| &s.state) {
            Some(State::Pending(p))
                if constant_time_eq(p.state.as_str().as_bytes(), state.as_bytes()) =>
            {
                Some(id)
            }
            _ => None,
        }
    }

    /// Makes account `id` exchange `grant`, the state built once with its first step: the
    /// request in flight, the wait for the issuer's metadata, or (the issuer being held
    /// back) a retry.
    fn start_exchange(&mut self, now: Now, id: AccountId, grant: Grant, notified: Instant) {
        let (attempt, step, send) = match self.resolve(now, id, Which::Token) {
            Resolved::Url(url) => {
                let Some(slot) = self.accounts.get(&id) else {
                    return;
                };
                let req = exchange_body(&slot.config, self.client_auth(&slot.config), &grant);
                let request = self.fresh_request();
                let timeout = self.tunables.http_timeout;
                let http = req.post(url, timeout);
                let flight = InFlight {
                    request,
                    sent: now.boot,
                    deadline: now.boot + timeout,
                };
                (1, Step::InFlight(flight), Some((request, http)))
            }
            Resolved::Discovering(issuer) => {
                self.await_issuer(&issuer, id, Want::Exchange);
                (0, Step::Discovering, None)
            }
            Resolved::Held(why) => {
                let what = exchange_what(&grant);
                let no_more = (self.tunables.exchange_tries <= 1).then_some(1);
                if self.exchange_try_failed(now, id, what, Cause::Endpoint(why), no_more) {
                    return;
                }
                let at = now.boot + self.tunables.exchange_retry_delay;
                (1, Step::RetryAt(at), None)
            }
            Resolved::Missing(why) => return self.fail(now, id, why),
        };
        self.update(id, |_, _| {
            State::Exchanging(Box::new(Exchanging {
                grant,
                attempt,
                notified,
                step,
            }))
        });
        if let Some((request, http)) = send {
            self.outputs.push_back(Output::SendHttp { request, http });
        }
    }

    /// Sends again the exchange of an `Exchanging` account.
    pub(super) fn send_exchange(&mut self, now: Now, id: AccountId) {
        let url = match self.resolve(now, id, Which::Token) {
            Resolved::Url(u) => u,
            Resolved::Discovering(issuer) => {
                // The token endpoint comes from the issuer's metadata: send the exchange
                // the moment it arrives.
                self.update(id, |_, state| match state {
                    State::Exchanging(mut e) => {
                        e.step = Step::Discovering;
                        State::Exchanging(e)
                    }
                    other @ (State::Unauthorised
                    | State::Discovering(_)
                    | State::Pending(_)
                    | State::Device(_)
                    | State::Active(_)
                    | State::Refreshing(_)
                    | State::Failed(_)) => other,
                });
                return self.await_issuer(&issuer, id, Want::Exchange);
            }
            Resolved::Missing(why) => return self.fail(now, id, why),
            Resolved::Held(why) => {
                return self.discovery_failed_for_exchange(now, id, Cause::Endpoint(why));
            }
        };
        let request = self.fresh_request();
        let timeout = self.tunables.http_timeout;
        let mut http = None;
        self.update(id, |s, state| match state {
            State::Exchanging(mut e) => {
                if let Some(slot) = s.accounts.get(&id) {
                    let req = exchange_body(&slot.config, s.client_auth(&slot.config), &e.grant);
                    http = Some(req.post(url, timeout));
                }
                e.attempt += 1;
                e.step = Step::InFlight(InFlight {
                    request,
                    sent: now.boot,
                    deadline: now.boot + timeout,
                });
                State::Exchanging(e)
            }
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Device(_)
            | State::Active(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        });
        if let Some(http) = http {
            self.outputs.push_back(Output::SendHttp { request, http });
        }
    }

    /// Whether account `id` is exchanging and waits for its issuer's metadata.
    pub(super) fn exchange_discovering(&self, id: AccountId) -> bool {
        matches!(
            self.accounts.get(&id).map(|s| &s.state),
            Some(State::Exchanging(e)) if e.step == Step::Discovering
        )
    }

    /// The metadata an exchange waited for could not be fetched: that counts as a failed
    /// attempt (the code is kept for the next one, `exchange_retry_delay` later).
    pub(super) fn discovery_failed_for_exchange(&mut self, now: Now, id: AccountId, cause: Cause) {
        let tries = self.tunables.exchange_tries;
        let mut attempt = 0;
        self.update(id, |_, state| match state {
            State::Exchanging(mut e) => {
                e.attempt += 1;
                attempt = e.attempt;
                State::Exchanging(e)
            }
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Device(_)
            | State::Active(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        });
        let what = self.exchange_what(id);
        if self.exchange_try_failed(now, id, what, cause, (attempt >= tries).then_some(attempt)) {
            return;
        }
        self.retry_exchange_later(now, id);
    }

    /// An exchanging account's deadline: a retry is due, or the request timed out.
    pub(super) fn exchange_due(&mut self, now: Now, id: AccountId) {
        let step = match self.accounts.get(&id).map(|s| &s.state) {
            Some(State::Exchanging(e)) => e.step,
            _ => return,
        };
        match step {
            Step::RetryAt(_) => self.send_exchange(now, id),
            Step::Discovering => (),
            Step::InFlight(f) => {
                let timeout = self.no_answer(" from the token endpoint");
                self.exchange_finished(now, id, f, Err(timeout));
            }
        }
    }

    /// A response (or failure) for a request: route it to the account expecting it.
    pub(super) fn http_finished(
        &mut self,
        now: Now,
        request: RequestId,
        result: Result<HttpResponse, TransportError>,
        entropy: &mut dyn Entropy,
    ) {
        if self.side.contains_key(&request) {
            return self.side_finished(now, request, result, entropy);
        }
        let Some(id) = self.requests.get(&request).copied() else {
            self.log(
                Level::Debug,
                format!(
                    "dropping the outcome of request {}: no longer expected",
                    request.0
                ),
            );
            return;
        };
        let Some(state) = self.accounts.get(&id).map(|s| &s.state) else {
            return;
        };
        let Some(flight) = state.in_flight() else {
            return;
        };
        // The driver is done with this request: the next state drops it uncancelled.
        self.answered = Some(request);
        match state {
            State::Exchanging(_) => self.exchange_finished(now, id, flight, result),
            State::Refreshing(_) => self.refresh_finished(now, id, flight, result),
            State::Device(Device::Requesting(_)) => self.codes_received(now, id, result),
            State::Device(Device::Polling(_)) => self.poll_finished(now, id, flight, result),
            // No request of theirs is in flight (in_flight() said so above).
            State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Active(_)
            | State::Failed(_) => (),
        }
        self.answered = None;
    }

    /// The code exchange ended: tokens, a retry after a transport error, or failure.
    fn exchange_finished(
        &mut self,
        now: Now,
        id: AccountId,
        flight: InFlight,
        result: Result<HttpResponse, TransportError>,
    ) {
        let name = self.name_of(id).to_owned();
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                let attempt = match self.accounts.get(&id).map(|s| &s.state) {
                    Some(State::Exchanging(x)) => x.attempt,
                    _ => return,
                };
                let what = self.exchange_what(id);
                let cause = Cause::Transport(e.message.clone());
                if attempt >= self.tunables.exchange_tries {
                    let tries = Some(attempt);
                    return self.fail(
                        now,
                        id,
                        Failure::Exchange {
                            grant: what,
                            tries,
                            cause,
                        },
                    );
                }
                self.note_error(
                    id,
                    &Failure::Exchange {
                        grant: what,
                        tries: None,
                        cause,
                    },
                );
                self.log(
                    Level::Warn,
                    format!("{name}: {what} failed ({}); retrying", e.message),
                );
                return self.retry_exchange_later(now, id);
            }
        };
        match oauth::parse_token_response(&response) {
            Ok(t) => {
                let tokens = self.tokens_from(id, t, flight.sent);
                self.install(now, id, tokens);
                self.token_event(id, TokenEvent::New);
            }
            Err(e) => {
                let retry_after = match &e {
                    oauth::TokenError::Transient { retry_after, .. } => *retry_after,
                    _ => None,
                };
                self.hold(id, flight.sent, retry_after);
                let what = self.exchange_what(id);
                let cause = Cause::Answer(e);
                self.fail(
                    now,
                    id,
                    Failure::Exchange {
                        grant: what,
                        tries: None,
                        cause,
                    },
                );
            }
        }
    }

    /// Sends the exchange again after `exchange_retry_delay`.
    pub(super) fn retry_exchange_later(&mut self, now: Now, id: AccountId) {
        let at = now.boot + self.tunables.exchange_retry_delay;
        self.update(id, |_, state| match state {
            State::Exchanging(mut x) => {
                x.step = Step::RetryAt(at);
                State::Exchanging(x)
            }
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Device(_)
            | State::Active(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        });
    }

    /// What account `id`'s exchange is, for messages.
    /// A try at exchanging `what` failed for `cause`. With no tries left (`no_more`: how
    /// many were made) the account fails and this returns true; otherwise the failure is
    /// noted and logged for the retry that follows.
    fn exchange_try_failed(
        &mut self,
        now: Now,
        id: AccountId,
        what: GrantKind,
        cause: Cause,
        no_more: Option<u32>,
    ) -> bool {
        if let Some(n) = no_more {
            let why = Failure::Exchange {
                grant: what,
                tries: Some(n),
                cause,
            };
            self.fail(now, id, why);
            return true;
        }
        let name = self.name_of(id).to_owned();
        let why = cause.to_string();
        self.note_error(
            id,
            &Failure::Exchange {
                grant: what,
                tries: None,
                cause,
            },
        );
        self.log(
            Level::Warn,
            format!("{name}: {what} failed ({why}); retrying"),
        );
        false
    }

    fn exchange_what(&self, id: AccountId) -> GrantKind {
        match self.accounts.get(&id).map(|s| &s.state) {
            Some(State::Exchanging(e)) => exchange_what(&e.grant),
            _ => GrantKind::Code,
        }
    }

    /// The account ends up with no token because of `why`; the user is told.
    pub(super) fn fail(&mut self, now: Now, id: AccountId, why: Failure) {
        self.fail_with(now, id, why, None);
    }

    /// [`Server::fail`], with `event` (a token that was held is gone) queued before the
    /// user is told.
    pub(super) fn fail_with(
        &mut self,
        now: Now,
        id: AccountId,
        why: Failure,
        event: Option<TokenEvent>,
    ) {
        self.note_error(id, &why);
        self.update(id, |_, _| {
            State::Failed(Failed {
                at: now.boot,
                why: why.clone(),
            })
        });
        if let Some(event) = event {
            self.token_event(id, event);
        }
        self.error_notify(id, &why.to_string());
    }
}

/// What exchanging `grant` is, for messages.
fn exchange_what(grant: &Grant) -> GrantKind {
    match grant {
        Grant::ClientCredentials => GrantKind::ClientCredentials,
        Grant::Code { .. } => GrantKind::Code,
    }
}

/// The token-endpoint body that exchanges `grant`.
fn exchange_body(
    account: &crate::config::Account,
    auth: oauth::ClientAuth,
    grant: &Grant,
) -> oauth::ClientRequest {
    match grant {
        Grant::Code {
            code,
            verifier,
            redirect_uri,
        } => oauth::code_exchange_body(account, auth, code, verifier, redirect_uri),
        Grant::ClientCredentials => oauth::client_credentials_body(account, auth),
    }
}

/// Splits a request target into its path and query (without the `?`).
fn split_target(target: &str) -> Option<(&str, &str)> {
    if !target.starts_with('/') {
        return None;
    }
    let target = target.split('#').next().unwrap_or(target);
    Some(target.split_once('?').unwrap_or((target, "")))
}

/// Whether a redirect's path and query carry the redirect URI's path and query pairs.
impl Server {
    /// Whether `host` (a redirect request's `Host`) names the listener of `scheme`: see
    /// [`crate::host::host_allowed`]; its own names are its listen address and the hosts
    /// of the accounts' redirect URIs.
    fn names_a_listener(&self, scheme: Scheme, host: &str) -> bool {
        let (port, listen) = match scheme {
            Scheme::Http => (self.listeners.http_port, &self.globals.http_listen),
            Scheme::Https => (self.listeners.https_port, &self.globals.https_listen),
        };
        let Some(port) = port else {
            return false;
        };
        let listen = listen.as_deref().and_then(crate::host::listen_host);
        let redirect_hosts = self
            .accounts
            .values()
            .filter_map(|slot| slot.config.redirect_uri.host_str());
        let own = listen.into_iter().chain(redirect_hosts);
        crate::host::host_allowed(host, port, scheme == Scheme::Https, own)
    }
}

fn redirect_matches(redirect_uri: &Url, path: &str, pairs: &[(String, String)]) -> bool {
    if path != redirect_uri.path() {
        return false;
    }
    redirect_uri
        .query_pairs()
        .all(|(k, v)| pairs.iter().any(|(pk, pv)| *pk == *k && *pv == *v))
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
