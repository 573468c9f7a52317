//! Endpoints: the ones written in the config win; the rest come from the issuer's
//! metadata (RFC 8414, else OpenID Connect discovery), fetched when first needed, kept in
//! memory, and fetched again the next time they are needed after a failure.

use std::sync::Arc;

use url::Url;

use crate::config::{Account, ClientAuth, Flow};
use crate::event::{
    ClientId, Entropy, HttpRequest, HttpResponse, Level, Method, Output, RequestId, TransportError,
};
use crate::oauth::{self, Metadata};
use crate::secret::Secret;
use crate::time::{Instant, Now};

use super::account::{Next, State};
use super::failure::{Cause, Endpoint, Failure};
use super::timers::TimerKey;
use super::{AccountId, Server};

/// Which endpoint an account needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    /// `auth_uri` / `authorization_endpoint`.
    Auth,
    /// `token_uri` / `token_endpoint`.
    Token,
    /// `device_auth_uri` / `device_authorization_endpoint`.
    Device,
    /// `revoke_uri` / `revocation_endpoint`.
    Revoke,
}

impl Which {
    fn option(self) -> &'static str {
        match self {
            Which::Auth => "auth_uri",
            Which::Token => "token_uri",
            Which::Device => "device_auth_uri",
            Which::Revoke => "revoke_uri",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Which::Auth => "authorization_endpoint",
            Which::Token => "token_endpoint",
            Which::Device => "device_authorization_endpoint",
            Which::Revoke => "revocation_endpoint",
        }
    }

    fn from(self, m: &Metadata) -> Option<Arc<Url>> {
        match self {
            Which::Auth => m.authorization_endpoint.clone(),
            Which::Token => m.token_endpoint.clone(),
            Which::Device => m.device_authorization_endpoint.clone(),
            Which::Revoke => m.revocation_endpoint.clone(),
        }
    }
}

/// An endpoint, or why there is none yet.
#[derive(Debug)]
pub(crate) enum Resolved {
    /// Here it is.
    Url(Arc<Url>),
    /// The issuer's metadata is being fetched; wait with [`Server::await_issuer`].
    Discovering(String),
    /// There is none, for this reason.
    Missing(Failure),
    /// The issuer answered with no usable metadata a moment ago, for this reason: it is
    /// not asked again before `refresh_retry` has passed (issue 12, case 2).
    Held(Endpoint),
}

/// What an account waits for the metadata to do.
#[derive(Debug)]
pub(crate) enum Want {
    /// Start obtaining a token (the user asked with `show` or `refresh`).
    Authorise,
    /// Refresh the token.
    Refresh,
    /// Poll for the device flow's token, waiting in [`Step::Discovering`].
    ///
    /// [`Step::Discovering`]: super::account::Step::Discovering
    Poll,
    /// Send the exchange of an `Exchanging` account waiting in [`Step::Discovering`].
    ///
    /// [`Step::Discovering`]: super::account::Step::Discovering
    Exchange,
    /// Revoke a token at the provider.
    Revoke(RevokeJob),
}

/// A revocation to send once the endpoint is known; the account has already forgotten
/// the token locally.
#[derive(Debug)]
pub(crate) struct RevokeJob {
    /// The client waiting for the outcome.
    pub client: ClientId,
    /// The account's name, for messages.
    pub name: String,
    /// The token to revoke.
    pub token: Secret,
    /// `refresh_token` or `access_token`.
    pub hint: &'static str,
    /// The account's client id.
    pub client_id: String,
    /// The account's client secret, if any.
    pub client_secret: Option<Secret>,
}

/// What is known of one issuer.
#[derive(Debug)]
pub(crate) enum IssuerState {
    /// Its metadata is being fetched; these accounts wait for it. The instant is the
    /// hold of the failure before: nothing of this fetch was
    /// sent before it (checked by the invariants).
    Fetching(
        Vec<(AccountId, Want)>,
        // Read only by the invariants.
        #[cfg_attr(not(any(test, feature = "invariants")), allow(dead_code))] Option<Instant>,
    ),
    /// Its metadata.
    Known(Box<Metadata>),
    /// Fetching failed, for this reason; tried again when next needed, but not before
    /// `until`.
    Failed {
        /// Not fetched again before this.
        until: Option<Instant>,
        /// Why it failed.
        why: Endpoint,
    },
}

/// A request that belongs to no account state.
#[derive(Debug)]
pub(crate) enum Side {
    /// Fetching an issuer's metadata; `stage` 0 is RFC 8414, 1 is OpenID Connect.
    Discovery {
        /// The issuer, as configured.
        issuer: Arc<Url>,
        /// Which well-known URL.
        stage: usize,
        /// When it was sent (read only by the invariants).
        #[cfg_attr(not(any(test, feature = "invariants")), allow(dead_code))]
        sent: crate::time::Instant,
    },
    /// Revoking a token.
    Revocation(RevokeJob),
}

impl Server {
    /// The endpoint `which` of account `id`: from the config, else from its issuer's
    /// metadata (starting to fetch it if need be).
    pub(super) fn resolve(&mut self, now: Now, id: AccountId, which: Which) -> Resolved {
        let Some(slot) = self.accounts.get(&id) else {
            return Resolved::Missing(Failure::Gone);
        };
        let c = &slot.config;
        let explicit = match which {
            Which::Auth => &c.auth_uri,
            Which::Token => &c.token_uri,
            Which::Device => &c.device_auth_uri,
            Which::Revoke => &c.revoke_uri,
        };
        if let Some(u) = explicit {
            return Resolved::Url(Arc::clone(u));
        }
        let Some(issuer) = c.issuer.clone() else {
            return Resolved::Missing(Failure::Endpoint(Endpoint::NotConfigured(which.option())));
        };
        match self.issuers.get(issuer.as_str()) {
            Some(IssuerState::Known(m)) => match which.from(m) {
                Some(u) => Resolved::Url(u),
                None => Resolved::Missing(Failure::Endpoint(Endpoint::MetadataLacks {
                    issuer: issuer.to_string(),
                    field: which.field(),
                    option: which.option(),
                })),
            },
            Some(IssuerState::Fetching(..)) => Resolved::Discovering(issuer.to_string()),
            Some(IssuerState::Failed {
                until: Some(until),
                why,
            }) if now.boot < *until => Resolved::Held(why.clone()),
            None | Some(IssuerState::Failed { .. }) => {
                let held = match self.issuers.get(issuer.as_str()) {
                    Some(IssuerState::Failed { until, .. }) => *until,
                    _ => None,
                };
                self.issuers
                    .insert(issuer.to_string(), IssuerState::Fetching(Vec::new(), held));
                self.fetch_metadata(now, issuer.clone(), 0);
                Resolved::Discovering(issuer.to_string())
            }
        }
    }

    /// Asks to do `want` for account `id` once `issuer`'s metadata is known.
    pub(super) fn await_issuer(&mut self, issuer: &str, id: AccountId, want: Want) {
        if let Some(IssuerState::Fetching(waiters, _)) = self.issuers.get_mut(issuer) {
            let duplicate = waiters.iter().any(|(w, x)| {
                *w == id
                    && matches!(
                        (x, &want),
                        (Want::Authorise, Want::Authorise)
                            | (Want::Refresh, Want::Refresh)
                            | (Want::Exchange, Want::Exchange)
                            | (Want::Poll, Want::Poll)
                    )
            });
            if !duplicate {
                waiters.push((id, want));
            }
        }
    }

    /// The metadata of `config`'s issuer, if it has one and it is known.
    pub(super) fn metadata(&self, config: &Account) -> Option<&Metadata> {
        match self.issuers.get(config.issuer.as_ref()?.as_str()) {
            Some(IssuerState::Known(m)) => Some(m),
            _ => None,
        }
    }

    /// How `config`'s client authenticates (`client_auth`, else from the metadata).
    pub(super) fn client_auth(&self, config: &Account) -> ClientAuth {
        oauth::client_auth_method(config.client_auth, self.metadata(config))
    }

    fn fetch_metadata(&mut self, now: Now, issuer: Arc<Url>, stage: usize) {
        let [rfc8414, oidc] = oauth::discovery_urls(&issuer);
        let url = Arc::new(if stage == 0 { rfc8414 } else { oidc });
        self.log(
            Level::Debug,
            format!("fetching the metadata of {issuer} from {url}"),
        );
        let http = HttpRequest {
            method: Method::Get,
            url,
            body: Secret::new(Vec::new()),
            authorization: None,
            timeout: self.tunables.http_timeout,
        };
        let sent = now.boot;
        self.send_side(
            now,
            Side::Discovery {
                issuer,
                stage,
                sent,
            },
            http,
        );
    }

    /// Sends a request that belongs to no account, with its own deadline.
    pub(super) fn send_side(&mut self, now: Now, side: Side, http: HttpRequest) {
        let request = self.fresh_request();
        self.side.insert(request, side);
        self.timers
            .set(TimerKey::Request(request), Some(now.boot + http.timeout));
        self.outputs.push_back(Output::SendHttp { request, http });
    }

    /// The outcome of a side request.
    pub(super) fn side_finished(
        &mut self,
        now: Now,
        request: RequestId,
        result: Result<HttpResponse, TransportError>,
        entropy: &mut dyn Entropy,
    ) {
        let Some(side) = self.side.remove(&request) else {
            return;
        };
        self.timers.set(TimerKey::Request(request), None);
        match side {
            Side::Revocation(job) => self.revocation_finished(job, result),
            Side::Discovery { issuer, stage, .. } => {
                let outcome = match &result {
                    Ok(r) => oauth::parse_metadata(r, &issuer),
                    Err(e) => Err(e.message.clone()),
                };
                match outcome {
                    Ok(metadata) => self.discovered(now, issuer, metadata, entropy),
                    // Not an RFC 8414 server (or not there): try OpenID Connect discovery.
                    Err(_) if stage == 0 && result.is_ok() => self.fetch_metadata(now, issuer, 1),
                    Err(why) => self.discovery_failed(now, issuer, why),
                }
            }
        }
    }

    /// A side request got no answer in time.
    pub(super) fn side_timed_out(
        &mut self,
        now: Now,
        request: RequestId,
        entropy: &mut dyn Entropy,
    ) {
        if !self.side.contains_key(&request) {
            return;
        }
        // Side requests are not an account's state: `update` does not cancel them.
        self.outputs.push_back(Output::CancelHttp { request });
        let timeout = self.no_answer("");
        self.side_finished(now, request, Err(timeout), entropy);
    }

    fn discovered(
        &mut self,
        now: Now,
        issuer: Arc<Url>,
        metadata: Metadata,
        entropy: &mut dyn Entropy,
    ) {
        self.log(Level::Info, format!("learnt the endpoints of {issuer}"));
        let waiters = match self
            .issuers
            .insert(issuer.to_string(), IssuerState::Known(Box::new(metadata)))
        {
            Some(IssuerState::Fetching(w, _)) => w,
            _ => Vec::new(),
        };
        for (id, want) in waiters {
            match want {
                Want::Authorise => {
                    let waiting = matches!(
                        self.accounts.get(&id).map(|s| &s.state),
                        Some(State::Discovering(_))
                    );
                    if waiting && let Err(why) = self.begin(now, id, entropy) {
                        self.fail(now, id, why);
                    }
                }
                Want::Refresh => self.start_refresh(now, id),
                Want::Exchange => {
                    if self.exchange_discovering(id) {
                        self.send_exchange(now, id);
                    }
                }
                Want::Poll => {
                    if self.poll_discovering(id) {
                        self.poll(now, id);
                    }
                }
                Want::Revoke(job) => self.send_revocation(now, job),
            }
        }
    }

    /// The metadata could not be had: the issuer is not asked again before `refresh_retry`
    /// (the shortest of the accounts waiting for it), whether it answered with something
    /// unusable or not at all.
    fn discovery_failed(&mut self, now: Now, issuer: Arc<Url>, why: String) {
        let why = Endpoint::Discovery {
            issuer: issuer.to_string(),
            why,
        };
        self.log(Level::Warn, why.to_string());
        let waiters = match self.issuers.remove(issuer.as_str()) {
            Some(IssuerState::Fetching(w, _)) => w,
            _ => Vec::new(),
        };
        // Metadata cut short or a dropped connection must not be fetched again by every
        // `show` either.
        let until = Some({
            let retry = waiters
                .iter()
                .filter_map(|(id, _)| self.accounts.get(id))
                .map(|s| s.config.timing.refresh_retry)
                .min()
                .unwrap_or(crate::config::DEFAULT_REFRESH_RETRY);
            now.boot + retry.max(std::time::Duration::from_secs(1))
        });
        self.issuers.insert(
            issuer.to_string(),
            IssuerState::Failed {
                until,
                why: why.clone(),
            },
        );
        for (id, want) in waiters {
            match want {
                Want::Authorise => {
                    if matches!(
                        self.accounts.get(&id).map(|s| &s.state),
                        Some(State::Discovering(_))
                    ) {
                        self.fail(now, id, Failure::Endpoint(why.clone()));
                    }
                }
                Want::Exchange => {
                    if self.exchange_discovering(id) {
                        self.discovery_failed_for_exchange(now, id, Cause::Endpoint(why.clone()));
                    }
                }
                // Poll again at the interval; the codes' expiry ends it if need be.
                Want::Poll => {
                    if self.poll_discovering(id) {
                        self.poll_again(now, id, std::time::Duration::ZERO);
                    }
                }
                Want::Refresh => {
                    // Keep the token; try again after refresh_retry.
                    self.note_error(id, &Failure::Retrying(Cause::Endpoint(why.clone())));
                    self.retry_refresh_later(now, id);
                }
                Want::Revoke(job) => self.reply(
                    job.client,
                    crate::protocol::Reply::Notice {
                        message: format!("{}: revoked locally; {why}", job.name),
                    },
                ),
            }
        }
    }

    /// An active account that could not start its refresh tries again after
    /// `refresh_retry`.
    pub(super) fn retry_refresh_later(&mut self, now: Now, id: AccountId) {
        let Some(retry) = self
            .accounts
            .get(&id)
            .map(|s| s.config.timing.refresh_retry)
        else {
            return;
        };
        let at = now.boot + retry.max(std::time::Duration::from_secs(1));
        self.update(id, |_, state| match state {
            State::Active(mut a) if !matches!(a.next, Next::Checking(_)) => {
                a.next = Next::RefreshAt(at);
                State::Active(a)
            }
            // While transient_error_if_cmd decides, it decides.
            checking @ State::Active(_) => checking,
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        });
    }

    /// The flow of account `id`.
    pub(super) fn flow(&self, id: AccountId) -> Flow {
        self.accounts.get(&id).map_or(Flow::Code, |s| s.config.flow)
    }
}
