//! Endpoints: the ones written in the config win; the rest come from the issuer's
//! metadata (RFC 8414, else OpenID Connect discovery), fetched when first needed, kept in
//! memory, and fetched again the next time they are needed after a failure.

use std::sync::Arc;

use url::Url;

use crate::config::{Account, ClientAuth};
use crate::event::{
    ClientId, Entropy, HttpRequest, HttpResponse, Level, Method, Output, RequestId, TransportError,
};
use crate::oauth::{self, Metadata};
use crate::secret::Secret;
use crate::time::{Instant, Now};

use super::failure::{Endpoint, Failure};
use super::step::Event;
use super::timers::TimerKey;
use super::{AccountId, Asker, Server};

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
    /// The issuer's metadata is being fetched, or is to be: wait for it with
    /// [`Server::await_issuer`], which fetches it if need be.
    Discovering(String),
    /// There is none, for this reason.
    Missing(Failure),
    /// The issuer answered with no usable metadata a moment ago, for this reason: it is
    /// not asked again before `refresh_retry` has passed (issue 12, case 2).
    Held(Endpoint),
}

/// Who waits for an issuer's metadata.
#[derive(Debug)]
pub(crate) enum Want {
    /// The account (whose state says what for: an [`Event::Metadata`] follows).
    ///
    /// [`Event::Metadata`]: super::step::Event::Metadata
    Account,
    /// A revocation at the provider.
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

/// The endpoint `which` of account `config`: from the config, else from `issuer`'s
/// metadata (what is known of the account's issuer). Asks nothing of anyone: a
/// [`Resolved::Discovering`] is for the caller to wait on.
pub(crate) fn resolve(
    config: &Account,
    issuer: Option<&IssuerState>,
    now: Now,
    which: Which,
) -> Resolved {
    let explicit = match which {
        Which::Auth => &config.auth_uri,
        Which::Token => &config.token_uri,
        Which::Device => &config.device_auth_uri,
        Which::Revoke => &config.revoke_uri,
    };
    if let Some(u) = explicit {
        return Resolved::Url(Arc::clone(u));
    }
    let Some(name) = &config.issuer else {
        return Resolved::Missing(Failure::Endpoint(Endpoint::NotConfigured(which.option())));
    };
    match issuer {
        Some(IssuerState::Known(m)) => match which.from(m) {
            Some(u) => Resolved::Url(u),
            None => Resolved::Missing(Failure::Endpoint(Endpoint::MetadataLacks {
                issuer: name.to_string(),
                field: which.field(),
                option: which.option(),
            })),
        },
        Some(IssuerState::Failed {
            until: Some(until),
            why,
        }) if now.boot < *until => Resolved::Held(why.clone()),
        Some(IssuerState::Fetching(..) | IssuerState::Failed { .. }) | None => {
            Resolved::Discovering(name.to_string())
        }
    }
}

impl Server {
    /// The endpoint `which` of account `id` (see [`resolve`]).
    pub(super) fn resolve(&self, now: Now, id: AccountId, which: Which) -> Resolved {
        let Some(slot) = self.accounts.get(&id) else {
            return Resolved::Missing(Failure::Gone);
        };
        let issuer = (slot.config.issuer.as_ref()).and_then(|i| self.issuers.get(i.as_str()));
        resolve(&slot.config, issuer, now, which)
    }

    /// Queues `want` for account `id` on its issuer, fetching the issuer's metadata
    /// unless that is under way (an account is queued once).
    pub(super) fn await_issuer(&mut self, now: Now, id: AccountId, want: Want) {
        let Some(issuer) = self.accounts.get(&id).and_then(|s| s.config.issuer.clone()) else {
            return;
        };
        let held = match self.issuers.get(issuer.as_str()) {
            Some(IssuerState::Fetching(..)) => None,
            Some(IssuerState::Failed { until, .. }) => Some(*until),
            Some(IssuerState::Known(_)) | None => Some(None),
        };
        if let Some(held) = held {
            self.issuers
                .insert(issuer.to_string(), IssuerState::Fetching(Vec::new(), held));
            self.fetch_metadata(now, issuer.clone(), 0);
        }
        if let Some(IssuerState::Fetching(waiters, _)) = self.issuers.get_mut(issuer.as_str()) {
            let duplicate = matches!(want, Want::Account)
                && waiters
                    .iter()
                    .any(|(w, x)| *w == id && matches!(x, Want::Account));
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
                    Err(why) => self.discovery_failed(now, issuer, why, entropy),
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
        // Side requests are not an account's state: `apply` does not cancel them.
        self.outputs.push_back(Output::CancelHttp { request });
        let timeout = super::step::no_answer(self.tunables.http_timeout, "");
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
                Want::Account => self.apply(now, id, Event::Metadata, Asker::Nobody, entropy),
                Want::Revoke(job) => self.send_revocation(now, job),
            }
        }
    }

    /// The metadata could not be had: the issuer is not asked again before `refresh_retry`
    /// (the shortest of the accounts waiting for it), whether it answered with something
    /// unusable or not at all.
    fn discovery_failed(
        &mut self,
        now: Now,
        issuer: Arc<Url>,
        why: String,
        entropy: &mut dyn Entropy,
    ) {
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
                Want::Account => self.apply(now, id, Event::Metadata, Asker::Nobody, entropy),
                Want::Revoke(job) => self.reply(
                    job.client,
                    crate::protocol::Reply::Notice {
                        message: format!("{}: revoked locally; {why}", job.name),
                    },
                ),
            }
        }
    }
}
