//! The redirect listeners' side of the authorisation-code flow (SPEC.md section 5):
//! which requests are redirects for a pending request, and whose answer an HTTP outcome
//! is. What the account then does is its step's (`step.rs`).

use sha2::{Digest, Sha256};

use crate::event::{
    ConnId, Entropy, HttpResponse, Level, Output, RedirectRequest, RequestId, Scheme,
    TransportError,
};
use crate::time::Now;

use super::account::State;
use super::step::Event;
use super::{AccountId, Asker, Server};

/// The page shown once the browser has brought a code.
pub const PROCESSING_PAGE: &str =
    "pizauth processing authentication: you can safely close this page.";
/// The page shown for a `state` that matches no pending request.
pub const NO_MATCH_PAGE: &str = "pizauth: no pending authorisation request matches this page (it was already answered, revoked, or the server restarted); run pizauth show again for a fresh URL.";

impl Server {
    /// A request on a redirect listener. Everything that is not a good redirect gets an
    /// error page and changes nothing.
    pub(super) fn redirect_received(
        &mut self,
        now: Now,
        conn: ConnId,
        scheme: Scheme,
        request: &RedirectRequest,
        entropy: &mut dyn Entropy,
    ) {
        if let Err((status, body)) = self.redirect_for(now, conn, scheme, request, entropy) {
            self.outputs
                .push_back(Output::AnswerRedirect { conn, status, body });
        }
    }

    /// Hands a redirect for a pending request to its account (whose step answers it);
    /// anything else gets the page of the error.
    fn redirect_for(
        &mut self,
        now: Now,
        conn: ConnId,
        scheme: Scheme,
        request: &RedirectRequest,
        entropy: &mut dyn Entropy,
    ) -> Result<(), (u16, String)> {
        if request.method != "GET" {
            return Err((405, "pizauth: only GET is supported".into()));
        }
        let Some(host) = &request.host else {
            return Err((400, "pizauth: request has no Host header".into()));
        };
        if !self.names_a_listener(scheme, host) {
            return Err((421, "pizauth: request for another host".into()));
        }
        let Some((path, query)) = split_target(&request.target) else {
            return Err((400, "pizauth: malformed request target".into()));
        };
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let Some(state) = pairs
            .iter()
            .find(|(n, _)| n == "state")
            .map(|(_, v)| v.as_str())
        else {
            return Err((404, "pizauth: not found".into()));
        };
        let Some(id) = self.find_pending(state) else {
            return Err((200, NO_MATCH_PAGE.into()));
        };
        let event = Event::Redirect {
            path,
            pairs: &pairs,
        };
        self.apply(now, id, event, Asker::Redirect(conn), entropy);
        Ok(())
    }

    /// The pending account whose `state` is `state`, compared in constant time.
    fn find_pending(&self, state: &str) -> Option<AccountId> {
        let key: [u8; 32] = Sha256::digest(state.as_bytes()).into();
        let id = *self.pending.get(&key)?;
        let matches = match &self.accounts.get(&id)?.state {
            State::Pending(p) => constant_time_eq(p.state.as_str().as_bytes(), state.as_bytes()),
            State::Unauthorised
            | State::Discovering(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Active(_)
            | State::Refreshing(_)
            | State::Failed(_) => false,
        };
        matches.then_some(id)
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
        // The driver is done with this request: the next state drops it uncancelled.
        let event = Event::Answered { request, result };
        self.apply(now, id, event, Asker::Nobody, entropy);
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

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
