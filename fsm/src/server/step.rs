//! One account's behaviour, as one pure function: [`step`] takes the account's state,
//! what it remembers besides ([`Memo`]), an [`Event`] and its context ([`Cx`]: its
//! configuration, now, the fresh id a new request or check would take, and the entropy an
//! authorisation request draws from) and gives back the new state, memo and the
//! [`Effect`]s. It touches nothing else: [`super::Server`] routes events to accounts,
//! keeps its indexes in step with the old and new states, and carries the effects out.
//!
//! Each event has one function here, and each is an exhaustive `match` over the states
//! with no wildcard: a new state or event does not compile until every pair is decided.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use url::Url;

use crate::config::{Account, Config, Flow};
use crate::event::{ChildId, Entropy, HttpRequest, HttpResponse, Level, RequestId, TransportError};
use crate::oauth::{self, STATE_BYTES, TokenError, TokenResponse, VERIFIER_BYTES};
use crate::protocol::Reply;
use crate::secret::Secret;
use crate::time::{Instant, Now};

use super::account::{
    Active, Device, Discovering, Exchanging, Failed, Grant, InFlight, Next, Pending, Polling,
    Refreshing, State, Step, Tokens,
};
use super::children::TokenEvent;
use super::discovery::{IssuerState, Resolved, Which, resolve};
use super::failure::{Cause, Failure, GrantKind};
use super::flow::{NO_MATCH_PAGE, PROCESSING_PAGE};
use super::{Listeners, MAX_RETRY_AFTER, Tunables};

/// What an account remembers besides its state.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    /// The last failure of any kind, and when (for `status -j`).
    pub last_error: Option<(Instant, Failure)>,
    /// After an answer that gave no usable token: the provider is not asked again for
    /// this account before this instant (`refresh_retry` after the request, or a longer
    /// `Retry-After`), whoever asks.
    pub quiet_until: Option<Instant>,
}

/// What happens to an account.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// `pizauth show` (`wait`: the seconds of `-w`, if given).
    Show {
        /// Whether the answer may carry the authorisation URL.
        with_url: bool,
        /// `-w SECONDS`.
        wait: Option<u32>,
    },
    /// `pizauth refresh`.
    Refresh {
        /// As for `Show`.
        with_url: bool,
    },
    /// `pizauth revoke`: forget the tokens.
    Revoke,
    /// A redirect whose `state` is this account's pending request's.
    Redirect {
        /// The request target's path.
        path: &'a str,
        /// Its query, decoded.
        pairs: &'a [(String, String)],
    },
    /// The account's request in flight was answered, or failed.
    Answered {
        /// Which request.
        request: RequestId,
        /// How.
        result: Result<HttpResponse, TransportError>,
    },
    /// The account's deadline came.
    Due,
    /// The metadata of the account's issuer was learnt, or could not be had
    /// ([`Cx::issuer`] says which).
    Metadata,
    /// `transient_error_if_cmd` ended.
    Checked {
        /// Which run of it.
        child: ChildId,
        /// Whether it said to keep retrying (exit 0).
        keep_going: bool,
    },
    /// A reload kept the account, perhaps with new timing and notification settings.
    Reconfigured {
        /// Whether `auth_notify_cmd` or its interval changed.
        notify_changed: bool,
    },
    /// `pizauth restore` brought these tokens.
    Restored(Tokens),
    /// The account leaves the configuration.
    Removed,
}

/// What the server is to do for an account.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Send this request, with the id [`Cx::request`].
    Send(HttpRequest),
    /// Answer the client whose request this is.
    Reply(Reply),
    /// Make that client wait up to this many seconds for a token (`show -w`).
    Wait {
        /// As for [`Event::Show`].
        with_url: bool,
        /// How long.
        secs: u32,
    },
    /// Answer the redirect with this page.
    Page {
        /// HTTP status.
        status: u16,
        /// The text.
        body: String,
    },
    /// Log this.
    Log(Level, String),
    /// Run `auth_notify_cmd`, if set, with these variables besides `PIZAUTH_ACCOUNT`.
    AuthNotify(Vec<(String, String)>),
    /// Tell the user of a failure (`error_notify_cmd`, else the log).
    ErrorNotify(String),
    /// Queue a token event for `token_event_cmd`.
    TokenEvent(TokenEvent),
    /// Run `transient_error_if_cmd` (set, or this is not asked for), with the id
    /// [`Cx::child`].
    Check,
    /// Queue the account on its issuer, whose metadata is fetched unless it is being
    /// already: an [`Event::Metadata`] follows.
    Discover,
    /// Revoke this token at the provider (the account forgot it already).
    RevokeRemotely {
        /// The token.
        token: Secret,
        /// `refresh_token` or `access_token`.
        hint: &'static str,
    },
}

/// What an account's step may read besides its state.
pub(crate) struct Cx<'a> {
    /// Now.
    pub now: Now,
    /// The account's configuration.
    pub config: &'a Account,
    /// The global options.
    pub globals: &'a Config,
    /// Limits and delays.
    pub tunables: &'a Tunables,
    /// The redirect listeners.
    pub listeners: &'a Listeners,
    /// What is known of the account's issuer, if it has one.
    pub issuer: Option<&'a IssuerState>,
    /// The id that a request sent or a check started by this step takes (at most one of
    /// them is, per step).
    pub fresh: u64,
    /// Drawn from to start an authorisation request, and for nothing else.
    pub entropy: &'a mut dyn Entropy,
}

impl Cx<'_> {
    /// The id of a request this step sends.
    pub fn request(&self) -> RequestId {
        RequestId(self.fresh)
    }

    /// The id of a check this step starts.
    pub fn child(&self) -> ChildId {
        ChildId(self.fresh)
    }
}

/// One account's transition: from its state and memo, on `event`, with `cx`, to its new
/// state and memo; what the server is to do is appended to `out`.
pub(crate) fn step(
    state: State,
    memo: Memo,
    event: Event<'_>,
    cx: &mut Cx<'_>,
    out: &mut Vec<Effect>,
) -> (State, Memo) {
    let mut run = Run { cx, memo, out };
    let state = match event {
        Event::Show { with_url, wait } => run.show(state, with_url, wait),
        Event::Refresh { with_url } => run.refresh(state, with_url),
        Event::Revoke => run.revoke(state),
        Event::Redirect { path, pairs } => run.redirect(state, path, pairs),
        Event::Answered { request, result } => run.answered(state, request, result),
        Event::Due => run.due(state),
        Event::Metadata => run.metadata_came(state),
        Event::Checked { child, keep_going } => run.checked(state, child, keep_going),
        Event::Reconfigured { notify_changed } => run.reconfigured(state, notify_changed),
        Event::Restored(tokens) => run.install(tokens),
        Event::Removed => State::Unauthorised,
    };
    (state, run.memo)
}

/// What came of starting to obtain a token.
enum Began {
    /// This is under way.
    Started(State),
    /// Nothing could be started, for this reason; the state is as it was.
    Refused(State, Failure),
}

/// A step under way: the context, the memo as it changes, and the effects so far.
struct Run<'c, 'a> {
    cx: &'c mut Cx<'a>,
    memo: Memo,
    out: &'c mut Vec<Effect>,
}

impl Run<'_, '_> {
    fn now(&self) -> Now {
        self.cx.now
    }

    fn name(&self) -> &str {
        &self.cx.config.name
    }

    fn log(&mut self, level: Level, message: String) {
        self.out.push(Effect::Log(level, message));
    }

    fn send(&mut self, http: HttpRequest) -> InFlight {
        let now = self.now().boot;
        self.out.push(Effect::Send(http));
        InFlight {
            request: self.cx.request(),
            sent: now,
            deadline: now + self.cx.tunables.http_timeout,
        }
    }

    /// The endpoint `which`, or why there is none yet.
    fn resolve(&self, which: Which) -> Resolved {
        resolve(self.cx.config, self.cx.issuer, self.now(), which)
    }

    fn client_auth(&self) -> crate::config::ClientAuth {
        oauth::client_auth_method(self.cx.config.client_auth, self.metadata())
    }

    fn metadata(&self) -> Option<&oauth::Metadata> {
        match self.cx.issuer {
            Some(IssuerState::Known(m)) => Some(m),
            Some(IssuerState::Fetching(..) | IssuerState::Failed { .. }) | None => None,
        }
    }

    fn no_answer(&self, from: &str) -> TransportError {
        no_answer(self.cx.tunables.http_timeout, from)
    }

    /// An answer to a request sent at `sent` gave no usable token: keep quiet until
    /// `refresh_retry` (at least a second) or `retry_after` has passed since.
    fn hold(&mut self, sent: Instant, retry_after: Option<Duration>) {
        let retry = self
            .cx
            .config
            .timing
            .refresh_retry
            .max(Duration::from_secs(1));
        let extra = retry_after.map_or(Duration::ZERO, |d| d.min(MAX_RETRY_AFTER));
        self.memo.quiet_until = Some(sent + retry.max(extra));
    }

    /// Whether the account must not ask its provider now (see [`Run::hold`]).
    fn held(&self) -> Option<Instant> {
        let until = self.memo.quiet_until?;
        (self.now().boot < until).then_some(until)
    }

    /// Remembers a failure for `status`.
    fn note(&mut self, failure: &Failure) {
        self.memo.last_error = Some((self.now().boot, failure.clone()));
    }

    /// The account ends up with no token because of `why`, after `event` (a token that
    /// was held is gone); the user is told.
    fn fail_with(&mut self, why: Failure, event: Option<TokenEvent>) -> State {
        self.note(&why);
        if let Some(event) = event {
            self.out.push(Effect::TokenEvent(event));
        }
        self.out.push(Effect::ErrorNotify(why.to_string()));
        State::Failed(Failed {
            at: self.now().boot,
            why,
        })
    }

    fn fail(&mut self, why: Failure) -> State {
        self.fail_with(why, None)
    }

    /// Drops the token for good: the next `show` starts a new authorisation.
    fn invalidate(&mut self, why: Failure) -> State {
        self.fail_with(why, Some(TokenEvent::Invalidated))
    }

    /// When to repeat `auth_notify_cmd`, if it is set (at least a second apart).
    fn next_notify(&self) -> Option<Instant> {
        self.cx.globals.auth_notify_cmd.as_ref()?;
        let every = self.cx.globals.auth_notify_interval;
        Some(self.now().boot + every.max(Duration::from_secs(1)))
    }

    // ---- Control requests ----------------------------------------------------------

    /// `show`: the token if there is a valid one; otherwise start what would get one,
    /// and say so (or, with `wait`, answer later). Plain `show` never waits.
    fn show(&mut self, state: State, with_url: bool, wait: Option<u32>) -> State {
        let now = self.now().boot;
        let retry = self
            .cx
            .config
            .timing
            .refresh_retry
            .max(Duration::from_secs(1));
        let mut started = None;
        let state = match state {
            State::Active(a) if a.tokens.expires > now => {
                self.out.push(Effect::Reply(Reply::Token {
                    token: a.tokens.access.clone(),
                }));
                return State::Active(a);
            }
            State::Refreshing(r) if r.tokens.expires > now => {
                self.out.push(Effect::Reply(Reply::Token {
                    token: r.tokens.access.clone(),
                }));
                return State::Refreshing(r);
            }
            // The last answer gave no usable token: the retry is scheduled already.
            State::Active(a) if self.held().is_some() => State::Active(a),
            // The last try got no answer at all (refused, cut short, timed out): its retry
            // is scheduled too. A mail program polling `show` must not turn one outage
            // into a request per poll, nor pile up the failures after which
            // transient_error_if_cmd decides; `pizauth refresh` still tries at once.
            State::Active(a)
                if a.failures > 0 && a.last_attempt.is_some_and(|t| now < t + retry) =>
            {
                State::Active(a)
            }
            State::Active(a) => {
                let state = self.start_refresh(State::Active(a));
                started = Some(match (&state, &self.memo.last_error) {
                    (State::Refreshing(_), _)
                    | (
                        State::Active(Active {
                            next: Next::Discovering,
                            ..
                        }),
                        _,
                    ) => "Access token has expired. Refreshing initiated".to_owned(),
                    // The refresh could not even be sent (its endpoint is not to be had):
                    // say why rather than that it started.
                    (State::Active(_), Some((_, why))) => format!(
                        "Access token has expired. Refreshing failed ({why}); pizauth keeps trying"
                    ),
                    (other, _) => unavailable(other, &self.memo, self.now(), with_url),
                });
                state
            }
            // The provider just refused or garbled what this flow asks of it (issue 12,
            // case 3): say why, and ask again only once refresh_retry has passed. (A new
            // authorisation URL asks the provider nothing, so it is not held back.)
            state @ (State::Unauthorised | State::Failed(_))
                if self.cx.config.flow != Flow::Code && self.held().is_some() =>
            {
                let failed = match &state {
                    State::Failed(f) => Some(&f.why),
                    State::Unauthorised
                    | State::Discovering(_)
                    | State::Pending(_)
                    | State::Exchanging(_)
                    | State::Device(_)
                    | State::Active(_)
                    | State::Refreshing(_) => None,
                };
                let last = self.memo.last_error.as_ref().map(|(_, why)| why);
                let why = failed.or(last).map_or_else(
                    || "the provider gave no usable token".to_owned(),
                    ToString::to_string,
                );
                let reply = Reply::error(format!("Access token unavailable: {why}"));
                self.out.push(Effect::Reply(reply));
                return state;
            }
            state @ (State::Unauthorised | State::Failed(_)) => match self.begin(state) {
                Began::Started(s) => s,
                Began::Refused(state, why) => {
                    let reply = Reply::error(format!("Access token unavailable: {why}"));
                    self.out.push(Effect::Reply(reply));
                    return state;
                }
            },
            state @ (State::Discovering(_)
            | State::Refreshing(_)
            | State::Exchanging(_)
            | State::Pending(_)
            | State::Device(_)) => state,
        };
        match wait {
            Some(secs) if secs > 0 => self.out.push(Effect::Wait { with_url, secs }),
            _ => {
                let message = started
                    .unwrap_or_else(|| unavailable(&state, &self.memo, self.now(), with_url));
                self.out.push(Effect::Reply(Reply::error(message)));
            }
        }
        state
    }

    /// `refresh`: with a token, refresh it now (unless already under way); without one,
    /// behave as `show` (without waiting) does.
    fn refresh(&mut self, state: State, with_url: bool) -> State {
        match state {
            State::Active(a) => {
                let state = self.start_refresh(State::Active(a));
                self.out.push(Effect::Reply(Reply::Done));
                state
            }
            State::Refreshing(r) => {
                self.out.push(Effect::Reply(Reply::Done));
                State::Refreshing(r)
            }
            state @ (State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Failed(_)) => self.show(state, with_url, None),
        }
    }

    /// `revoke`: forget the tokens and any authorisation under way; with a revocation
    /// endpoint (configured, or to be discovered) the server revokes the token there too.
    fn revoke(&mut self, state: State) -> State {
        let token = match &state {
            State::Active(Active { tokens, .. }) | State::Refreshing(Refreshing { tokens, .. }) => {
                Some(match &tokens.refresh {
                    Some(r) => (r.clone(), "refresh_token"),
                    None => (tokens.access.clone(), "access_token"),
                })
            }
            State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Failed(_) => None,
        };
        self.log(Level::Info, format!("{}: revoked", self.name()));
        match token {
            None => self.out.push(Effect::Reply(Reply::Done)),
            Some((token, hint)) => {
                self.out.push(Effect::TokenEvent(TokenEvent::Revoked));
                let c = self.cx.config;
                if c.revoke_uri.is_none() && c.issuer.is_none() {
                    // Nowhere to revoke it remotely: local only, as pizauth 1.x does.
                    self.out.push(Effect::Reply(Reply::Done));
                } else {
                    self.out.push(Effect::RevokeRemotely { token, hint });
                }
            }
        }
        State::Unauthorised
    }

    // ---- Starting ------------------------------------------------------------------

    /// Starts obtaining a token the way the account's flow says: an authorisation URL, a
    /// device code, or a client-credentials request; first discovering the endpoints if
    /// need be; or the state as it was, with why nothing could be started.
    fn begin(&mut self, old: State) -> Began {
        let which = match self.cx.config.flow {
            Flow::Code => Which::Auth,
            Flow::Device => Which::Device,
            Flow::ClientCredentials => Which::Token,
        };
        let url = match self.resolve(which) {
            Resolved::Url(u) => u,
            Resolved::Discovering(issuer) => {
                self.out.push(Effect::Discover);
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
                return Began::Started(State::Discovering(Box::new(Discovering { issuer, last })));
            }
            Resolved::Missing(why) => return Began::Refused(old, why),
            Resolved::Held(why) => return Began::Refused(old, Failure::Endpoint(why)),
        };
        match self.cx.config.flow {
            Flow::Code => match self.start_code(&url) {
                Ok(state) => Began::Started(state),
                Err(why) => Began::Refused(old, why),
            },
            Flow::Device => Began::Started(self.start_device(url)),
            Flow::ClientCredentials => {
                let name = self.name().to_owned();
                self.log(
                    Level::Info,
                    format!("{name}: requesting a token with the client credentials"),
                );
                Began::Started(self.start_exchange(Grant::ClientCredentials, self.now().boot))
            }
        }
    }

    /// Starts an authorisation-code request with PKCE against `auth_uri`.
    fn start_code(&mut self, auth_uri: &Url) -> Result<State, Failure> {
        let l = self.cx.listeners;
        let Some(redirect_uri) = oauth::redirect_uri(self.cx.config, l.http_port, l.https_port)
        else {
            return Err(Failure::NoListener);
        };
        let state = oauth::random_token(self.cx.entropy, STATE_BYTES);
        let verifier = oauth::random_token(self.cx.entropy, VERIFIER_BYTES);
        let challenge = oauth::code_challenge(&verifier);
        let url =
            oauth::authorization_url(self.cx.config, auth_uri, &redirect_uri, &state, &challenge)
                .to_string();
        // A new grant from the user: whatever the provider said before is moot.
        self.memo.quiet_until = None;
        let pending = Pending {
            state_key: Sha256::digest(state.as_str().as_bytes()).into(),
            state,
            verifier,
            redirect_uri,
            url: url.clone(),
            notified: self.now().boot,
            next_notify: self.next_notify(),
        };
        let name = self.name().to_owned();
        self.log(
            Level::Info,
            format!("{name}: authorisation request started"),
        );
        self.out
            .push(Effect::AuthNotify(vec![("PIZAUTH_URL".to_owned(), url)]));
        Ok(State::Pending(Box::new(pending)))
    }

    /// Asks the device authorisation endpoint `url` for codes.
    fn start_device(&mut self, url: Arc<Url>) -> State {
        let req = oauth::device_request_body(self.cx.config, self.client_auth());
        let http = req.post(url, self.cx.tunables.http_timeout);
        let name = self.name().to_owned();
        self.log(Level::Info, format!("{name}: requesting a device code"));
        State::Device(Device::Requesting(self.send(http)))
    }

    /// Installs `tokens` (replacing whatever the account was doing), the refresh
    /// scheduled: the state is built once, complete.
    fn install(&mut self, tokens: Tokens) -> State {
        let c = self.cx.config;
        if let Some(w) = oauth::no_refresh_token_warning(c, tokens.refresh.is_some()) {
            self.log(Level::Warn, format!("{}: {w}", c.name));
        }
        self.memo.quiet_until = None;
        let next = next_step(&tokens, 0, None, c.timing, c.flow, self.now());
        State::Active(Active {
            tokens,
            failures: 0,
            last_attempt: None,
            told_expired: false,
            next,
        })
    }

    /// The tokens of a successful token response to a request sent at `sent` (from which
    /// `expires_in` counts; `refresh_at_least` when the provider gave none).
    fn tokens_from(&self, t: TokenResponse, sent: Instant) -> Tokens {
        let lifetime = t
            .expires_in
            .unwrap_or(self.cx.config.timing.refresh_at_least);
        Tokens {
            access: t.access_token,
            refresh: t.refresh_token,
            obtained: sent,
            expires: sent + lifetime,
        }
    }

    // ---- The authorisation-code flow and exchanges ---------------------------------

    /// A redirect for the pending request: a code to exchange, an error, or nothing
    /// usable (an error page, the request still pending).
    fn redirect(&mut self, state: State, path: &str, pairs: &[(String, String)]) -> State {
        let p = match state {
            State::Pending(p) => p,
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Active(_)
            | State::Refreshing(_)
            | State::Failed(_)) => {
                self.page(200, NO_MATCH_PAGE.into());
                return other;
            }
        };
        let param = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if !redirect_matches(&p.redirect_uri, path, pairs) {
            self.page(404, "pizauth: not found".into());
            return State::Pending(p);
        }
        let promised = self.metadata().is_some_and(|m| m.iss_parameter_supported);
        let issuer = self.cx.config.issuer.as_deref();
        if let Some(why) = oauth::redirect_issuer_mismatch(param("iss"), issuer, promised) {
            let why = Failure::IssuerMismatch(why);
            let page = format!("pizauth: {why}");
            let state = self.fail(why);
            self.page(400, page);
            return state;
        }
        if let Some(error) = param("error") {
            let why = Failure::Authorisation {
                error: oauth::clean_provider_text(error),
                description: param("error_description").map(oauth::clean_provider_text),
            };
            let page = format!("pizauth: {why}");
            let state = self.fail(why);
            self.page(400, page);
            return state;
        }
        let Some(code) = param("code").filter(|c| !c.is_empty()) else {
            self.page(400, "pizauth: the redirect carries no code".into());
            return State::Pending(p);
        };
        let Pending {
            verifier,
            redirect_uri,
            notified,
            ..
        } = *p;
        let grant = Grant::Code {
            code: Secret::new(code.to_owned()),
            verifier,
            redirect_uri,
        };
        let name = self.name().to_owned();
        self.log(Level::Info, format!("{name}: authorisation code received"));
        let state = self.start_exchange(grant, notified);
        self.page(200, PROCESSING_PAGE.into());
        state
    }

    fn page(&mut self, status: u16, body: String) {
        self.out.push(Effect::Page { status, body });
    }

    /// Exchanges `grant`, the state built once with its first step: the request in
    /// flight, the wait for the issuer's metadata, or (the issuer being held back) a
    /// retry.
    fn start_exchange(&mut self, grant: Grant, notified: Instant) -> State {
        let (attempt, step) = match self.resolve(Which::Token) {
            Resolved::Url(url) => {
                let req = exchange_body(self.cx.config, self.client_auth(), &grant);
                let http = req.post(url, self.cx.tunables.http_timeout);
                (1, Step::InFlight(self.send(http)))
            }
            Resolved::Discovering(_) => {
                self.out.push(Effect::Discover);
                (0, Step::Discovering)
            }
            Resolved::Held(why) => {
                let no_more = (self.cx.tunables.exchange_tries <= 1).then_some(1);
                let what = exchange_what(&grant);
                if let Some(failed) = self.exchange_try_failed(what, Cause::Endpoint(why), no_more)
                {
                    return failed;
                }
                let at = self.now().boot + self.cx.tunables.exchange_retry_delay;
                (1, Step::RetryAt(at))
            }
            Resolved::Missing(why) => return self.fail(why),
        };
        State::Exchanging(Box::new(Exchanging {
            grant,
            attempt,
            notified,
            step,
        }))
    }

    /// Sends the exchange again (or waits for the metadata that names its endpoint).
    fn send_exchange(&mut self, mut e: Box<Exchanging>) -> State {
        let url = match self.resolve(Which::Token) {
            Resolved::Url(u) => u,
            Resolved::Discovering(_) => {
                // Sent the moment the metadata arrives.
                self.out.push(Effect::Discover);
                e.step = Step::Discovering;
                return State::Exchanging(e);
            }
            Resolved::Missing(why) => return self.fail(why),
            Resolved::Held(why) => return self.exchange_failed_early(e, Cause::Endpoint(why)),
        };
        let req = exchange_body(self.cx.config, self.client_auth(), &e.grant);
        let http = req.post(url, self.cx.tunables.http_timeout);
        e.attempt += 1;
        e.step = Step::InFlight(self.send(http));
        State::Exchanging(e)
    }

    /// The exchange could not be sent (its endpoint is not to be had): that counts as a
    /// failed attempt; the grant is kept for the next, `exchange_retry_delay` later.
    fn exchange_failed_early(&mut self, mut e: Box<Exchanging>, cause: Cause) -> State {
        e.attempt += 1;
        let no_more = (e.attempt >= self.cx.tunables.exchange_tries).then_some(e.attempt);
        match self.exchange_try_failed(exchange_what(&e.grant), cause, no_more) {
            Some(failed) => failed,
            None => self.retry_exchange_later(e),
        }
    }

    /// A try at exchanging `what` failed for `cause`. With no tries left (`no_more`: how
    /// many were made) the account fails, in the state returned; otherwise the failure is
    /// noted and logged for the retry that follows.
    fn exchange_try_failed(
        &mut self,
        what: GrantKind,
        cause: Cause,
        no_more: Option<u32>,
    ) -> Option<State> {
        if let Some(n) = no_more {
            let why = Failure::Exchange {
                grant: what,
                tries: Some(n),
                cause,
            };
            return Some(self.fail(why));
        }
        let message = format!("{}: {what} failed ({cause}); retrying", self.name());
        self.note(&Failure::Exchange {
            grant: what,
            tries: None,
            cause,
        });
        self.log(Level::Warn, message);
        None
    }

    fn retry_exchange_later(&mut self, mut e: Box<Exchanging>) -> State {
        e.step = Step::RetryAt(self.now().boot + self.cx.tunables.exchange_retry_delay);
        State::Exchanging(e)
    }

    /// An exchanging account's deadline: a retry is due, or the request timed out.
    fn exchange_due(&mut self, e: Box<Exchanging>) -> State {
        match e.step {
            Step::RetryAt(_) => self.send_exchange(e),
            Step::Discovering => State::Exchanging(e),
            Step::InFlight(f) => {
                let timeout = self.no_answer(" from the token endpoint");
                self.exchange_finished(e, f, Err(timeout))
            }
        }
    }

    /// The exchange ended: tokens, a retry after a transport error, or failure.
    fn exchange_finished(
        &mut self,
        e: Box<Exchanging>,
        flight: InFlight,
        result: Result<HttpResponse, TransportError>,
    ) -> State {
        let what = exchange_what(&e.grant);
        let response = match result {
            Ok(r) => r,
            Err(err) => {
                let cause = Cause::Transport(err.message);
                let no_more = (e.attempt >= self.cx.tunables.exchange_tries).then_some(e.attempt);
                return match self.exchange_try_failed(what, cause, no_more) {
                    Some(failed) => failed,
                    None => self.retry_exchange_later(e),
                };
            }
        };
        match oauth::parse_token_response(&response) {
            Ok(t) => {
                let tokens = self.tokens_from(t, flight.sent);
                let state = self.install(tokens);
                self.out.push(Effect::TokenEvent(TokenEvent::New));
                state
            }
            Err(err) => {
                let retry_after = match &err {
                    TokenError::Transient { retry_after, .. } => *retry_after,
                    _ => None,
                };
                self.hold(flight.sent, retry_after);
                self.fail(Failure::Exchange {
                    grant: what,
                    tries: None,
                    cause: Cause::Answer(err),
                })
            }
        }
    }

    /// `auth_notify_interval` has passed with the request still pending.
    fn notify_again(&mut self, mut p: Box<Pending>) -> State {
        p.notified = self.now().boot;
        p.next_notify = self.next_notify();
        self.out.push(Effect::AuthNotify(vec![(
            "PIZAUTH_URL".to_owned(),
            p.url.clone(),
        )]));
        State::Pending(p)
    }

    // ---- The device flow (RFC 8628) ------------------------------------------------

    /// The answer to the request for codes.
    fn codes_received(
        &mut self,
        f: InFlight,
        result: Result<HttpResponse, TransportError>,
    ) -> State {
        let now = self.now().boot;
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
                    self.hold(f.sent, retry_after);
                }
                return self.fail(Failure::DeviceCodes(why));
            }
        };
        let polling = Polling {
            device_code: codes.device_code,
            user_code: codes.user_code,
            verification_uri: codes.verification_uri,
            verification_uri_complete: codes.verification_uri_complete,
            expires: now + codes.expires_in,
            interval: codes.interval,
            step: Step::RetryAt(now + codes.interval),
            notified: now,
            next_notify: self.next_notify(),
        };
        let message = format!(
            "{}: visit {} and enter code {}",
            self.name(),
            polling.verification_uri,
            polling.user_code
        );
        self.log(Level::Info, message);
        self.out.push(Effect::AuthNotify(device_env(&polling)));
        State::Device(Device::Polling(Box::new(polling)))
    }

    /// A polling account's deadline: the codes expired, a notification is due, a poll is
    /// due, or a poll timed out.
    fn polling_due(&mut self, mut p: Box<Polling>) -> State {
        let now = self.now().boot;
        if p.expires <= now {
            return self.fail(Failure::DeviceExpired);
        }
        if p.next_notify.is_some_and(|t| t <= now) {
            p.notified = now;
            p.next_notify = self.next_notify();
            self.out.push(Effect::AuthNotify(device_env(&p)));
        }
        match p.step {
            Step::RetryAt(t) if t <= now => self.poll(p),
            Step::InFlight(f) if f.deadline <= now => {
                let timeout = self.no_answer(" from the token endpoint");
                self.poll_finished(p, f, Err(timeout))
            }
            Step::RetryAt(_) | Step::InFlight(_) | Step::Discovering => {
                State::Device(Device::Polling(p))
            }
        }
    }

    /// Polls the token endpoint (RFC 8628 3.4).
    fn poll(&mut self, mut p: Box<Polling>) -> State {
        let url = match self.resolve(Which::Token) {
            Resolved::Url(u) => u,
            Resolved::Discovering(_) => {
                // Poll the moment the metadata names the token endpoint.
                self.out.push(Effect::Discover);
                p.step = Step::Discovering;
                return State::Device(Device::Polling(p));
            }
            Resolved::Held(_) => return self.poll_again(p, Duration::ZERO),
            Resolved::Missing(why) => return self.fail(why),
        };
        let req = oauth::device_poll_body(self.cx.config, self.client_auth(), &p.device_code);
        let http = req.post(url, self.cx.tunables.http_timeout);
        p.step = Step::InFlight(self.send(http));
        State::Device(Device::Polling(p))
    }

    /// Schedules the next poll `interval + extra` from now (`extra` grows the interval).
    fn poll_again(&mut self, mut p: Box<Polling>, extra: Duration) -> State {
        p.interval += extra;
        p.step = Step::RetryAt(self.now().boot + p.interval);
        State::Device(Device::Polling(p))
    }

    /// A poll's answer.
    fn poll_finished(
        &mut self,
        p: Box<Polling>,
        flight: InFlight,
        result: Result<HttpResponse, TransportError>,
    ) -> State {
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                let message = format!(
                    "{}: polling failed ({}); polling on",
                    self.name(),
                    e.message
                );
                self.log(Level::Debug, message);
                return self.poll_again(p, Duration::ZERO);
            }
        };
        match oauth::parse_token_response(&response) {
            Ok(t) => {
                let tokens = self.tokens_from(t, flight.sent);
                let state = self.install(tokens);
                self.out.push(Effect::TokenEvent(TokenEvent::New));
                state
            }
            Err(TokenError::Rejected { error: Some(e), .. }) if e == "authorization_pending" => {
                self.poll_again(p, Duration::ZERO)
            }
            Err(TokenError::Rejected { error: Some(e), .. }) if e == "slow_down" => {
                // RFC 8628 3.5: the interval grows by 5 seconds (the tunable's default).
                self.poll_again(p, self.cx.tunables.slow_down)
            }
            Err(TokenError::Rejected { error: Some(e), .. }) if e == "access_denied" => {
                self.fail(Failure::DeviceDenied)
            }
            Err(TokenError::Rejected { error: Some(e), .. }) if e == "expired_token" => {
                self.fail(Failure::DeviceExpired)
            }
            // A hiccup (a 5xx, a CDN's error page) does not lose the user's code.
            Err(e) if e.is_transient() => self.poll_again(p, Duration::ZERO),
            Err(e) => {
                // A refusal: the next device request waits refresh_retry (issue 12).
                self.hold(flight.sent, None);
                self.fail(Failure::Device(e))
            }
        }
    }

    // ---- Keeping tokens fresh ------------------------------------------------------

    /// Sends a refresh request now, if the account is active, not waiting for
    /// `transient_error_if_cmd`, and can refresh; an expired token without a refresh
    /// token is dropped.
    fn start_refresh(&mut self, state: State) -> State {
        let mut a = match state {
            State::Active(a) if !matches!(a.next, Next::Checking(_)) => a,
            other @ (State::Active(_)
            | State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Refreshing(_)
            | State::Failed(_)) => return other,
        };
        let now = self.now().boot;
        if let Some(until) = self.held() {
            // The provider just gave no usable token: the retry is scheduled already, at
            // `until` or later; asking sooner (for `show`, `refresh`) would hammer it.
            a.next = match a.next {
                Next::RefreshAt(t) => Next::RefreshAt(t.max(until).max(now)),
                Next::Discovering => Next::RefreshAt(until),
                n @ (Next::ExpireAt(_) | Next::Checking(_)) => n,
            };
            return State::Active(a);
        }
        // Client-credentials accounts renew by asking again; others need a refresh token.
        if a.tokens.refresh.is_none() && self.cx.config.flow != Flow::ClientCredentials {
            if a.tokens.expires <= now {
                self.out.push(Effect::TokenEvent(TokenEvent::Invalidated));
                return State::Unauthorised;
            }
            return State::Active(a);
        }
        let url = match self.resolve(Which::Token) {
            Resolved::Url(u) => u,
            Resolved::Discovering(_) => {
                self.out.push(Effect::Discover);
                a.next = Next::Discovering;
                return State::Active(a);
            }
            Resolved::Held(why) => {
                // Keep the token; the metadata is fetched again after refresh_retry.
                self.note(&Failure::Retrying(Cause::Endpoint(why)));
                return self.retry_refresh_later(a);
            }
            Resolved::Missing(why) => return self.invalidate(why),
        };
        let auth = self.client_auth();
        let req = match &a.tokens.refresh {
            Some(refresh_token) => oauth::refresh_body(self.cx.config, auth, refresh_token),
            None => oauth::client_credentials_body(self.cx.config, auth),
        };
        let http = req.post(url, self.cx.tunables.http_timeout);
        let name = self.name().to_owned();
        self.log(Level::Debug, format!("{name}: refreshing"));
        State::Refreshing(Refreshing {
            tokens: a.tokens,
            failures: a.failures,
            told_expired: a.told_expired,
            flight: self.send(http),
        })
    }

    /// An active account that could not start its refresh tries again after
    /// `refresh_retry`, or at the retry already scheduled if that is sooner (a `show`
    /// that finds the endpoint still unknown does not put the retry off).
    fn retry_refresh_later(&mut self, mut a: Active) -> State {
        let now = self.now().boot;
        let later = now
            + self
                .cx
                .config
                .timing
                .refresh_retry
                .max(Duration::from_secs(1));
        a.next = match a.next {
            Next::RefreshAt(t) if t > now => Next::RefreshAt(t.min(later)),
            // While transient_error_if_cmd decides, it decides.
            checking @ Next::Checking(_) => checking,
            Next::RefreshAt(_) | Next::ExpireAt(_) | Next::Discovering => Next::RefreshAt(later),
        };
        State::Active(a)
    }

    /// An active account's deadline: refresh, or drop a token that cannot be refreshed.
    fn active_due(&mut self, a: Active) -> State {
        match a.next {
            Next::RefreshAt(_) => self.start_refresh(State::Active(a)),
            Next::ExpireAt(_) => {
                let message = format!(
                    "{}: token expired and there is no refresh token",
                    self.name()
                );
                self.log(Level::Info, message);
                self.out.push(Effect::TokenEvent(TokenEvent::Invalidated));
                State::Unauthorised
            }
            Next::Checking(_) | Next::Discovering => State::Active(a),
        }
    }

    /// The refresh ended: new tokens, a transient failure (keep the token, retry), or a
    /// permanent one (drop the token).
    fn refresh_finished(
        &mut self,
        mut r: Refreshing,
        result: Result<HttpResponse, TransportError>,
    ) -> State {
        let flight = r.flight;
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
                let mut tokens = self.tokens_from(t, flight.sent);
                if tokens.refresh.is_none() {
                    // An absent refresh token keeps the old one (RFC 6749 6).
                    tokens.refresh = r.tokens.refresh.take();
                }
                let state = self.install(tokens);
                self.out.push(Effect::TokenEvent(TokenEvent::Refreshed));
                state
            }
            Err((true, cause, retry_after, answered)) => {
                self.transient_failure(r, cause, retry_after, answered)
            }
            Err((false, cause, _, _)) => {
                self.hold(flight.sent, None);
                self.invalidate(Failure::Refresh(cause))
            }
        }
    }

    /// A transient refresh failure: keep the token; after every `check_every`-th one in a
    /// row ask `transient_error_if_cmd`, otherwise retry after `refresh_retry` (or the
    /// provider's `Retry-After`, if longer).
    fn transient_failure(
        &mut self,
        r: Refreshing,
        cause: Cause,
        retry_after: Option<Duration>,
        answered: bool,
    ) -> State {
        let now = self.now();
        let flight = r.flight;
        let failures = r.failures + 1;
        let tell = !r.told_expired && r.tokens.expires <= now.boot;
        if tell {
            // Once per token: the user holds nothing usable any more, and should hear
            // why before their mail program does.
            let why = Failure::ExpiredWhileFailing(cause.clone());
            self.out.push(Effect::ErrorNotify(why.to_string()));
        }
        let message = format!(
            "{}: refreshing failed ({cause}), attempt {failures} in a row; will retry",
            self.name()
        );
        self.note(&Failure::Retrying(cause));
        if answered {
            self.hold(flight.sent, retry_after);
        }
        self.log(Level::Warn, message);
        let every = self.cx.tunables.check_every.max(1);
        let check =
            failures.is_multiple_of(every) && self.cx.globals.transient_error_if_cmd.is_some();
        let next = if check {
            self.out.push(Effect::Check);
            Next::Checking(self.cx.child())
        } else {
            let c = self.cx.config;
            match next_step(
                &r.tokens,
                failures,
                Some(flight.sent),
                c.timing,
                c.flow,
                now,
            ) {
                // The provider's Retry-After, if longer (bounded).
                Next::RefreshAt(t) => Next::RefreshAt(match retry_after {
                    Some(extra) => t.max(flight.sent + extra.min(MAX_RETRY_AFTER)),
                    None => t,
                }),
                n @ (Next::ExpireAt(_) | Next::Checking(_) | Next::Discovering) => n,
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

    // ---- Events routed by the server -----------------------------------------------

    /// The answer to the account's request in flight.
    fn answered(
        &mut self,
        state: State,
        request: RequestId,
        result: Result<HttpResponse, TransportError>,
    ) -> State {
        let Some(flight) = state.in_flight().filter(|f| f.request == request) else {
            return state;
        };
        match state {
            State::Exchanging(e) => self.exchange_finished(e, flight, result),
            State::Refreshing(r) => self.refresh_finished(r, result),
            State::Device(Device::Requesting(f)) => self.codes_received(f, result),
            State::Device(Device::Polling(p)) => self.poll_finished(p, flight, result),
            // No request of theirs is in flight (in_flight() said so above).
            other @ (State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Active(_)
            | State::Failed(_)) => other,
        }
    }

    /// The account's deadline came.
    fn due(&mut self, state: State) -> State {
        match state {
            State::Pending(p) => self.notify_again(p),
            State::Exchanging(e) => self.exchange_due(e),
            State::Device(Device::Requesting(f)) => {
                let timeout = self.no_answer("");
                self.codes_received(f, Err(timeout))
            }
            State::Device(Device::Polling(p)) => self.polling_due(p),
            State::Active(a) => self.active_due(a),
            State::Refreshing(r) => {
                let timeout = self.no_answer(" from the token endpoint");
                self.refresh_finished(r, Err(timeout))
            }
            // Discovering has no deadline: its issuer's fetch has.
            other @ (State::Unauthorised | State::Failed(_) | State::Discovering(_)) => other,
        }
    }

    /// The issuer's metadata came (or could not be had): do what waited for it.
    fn metadata_came(&mut self, state: State) -> State {
        match state {
            State::Discovering(d) => match self.begin(State::Discovering(d)) {
                Began::Started(s) => s,
                Began::Refused(_, why) => self.fail(why),
            },
            State::Exchanging(e) if e.step == Step::Discovering => self.send_exchange(e),
            State::Device(Device::Polling(p)) if p.step == Step::Discovering => self.poll(p),
            State::Active(a) if a.next == Next::Discovering => self.start_refresh(State::Active(a)),
            other @ (State::Unauthorised
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Active(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        }
    }

    /// `transient_error_if_cmd` ended: exit 0 keeps retrying, anything else invalidates.
    fn checked(&mut self, state: State, child: ChildId, keep_going: bool) -> State {
        match state {
            State::Active(mut a) if a.next == Next::Checking(child) => {
                if !keep_going {
                    return self.invalidate(Failure::GaveUp);
                }
                let message = format!("{}: transient_error_if_cmd says keep retrying", self.name());
                self.log(Level::Info, message);
                let c = self.cx.config;
                a.next = next_step(
                    &a.tokens,
                    a.failures,
                    a.last_attempt,
                    c.timing,
                    c.flow,
                    self.now(),
                );
                State::Active(a)
            }
            other @ (State::Active(_)
            | State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        }
    }

    /// A reload kept the account: its refresh follows the new timing, and a pending
    /// request's re-notification the new notify settings. A running check and a wait for
    /// metadata stay.
    fn reconfigured(&mut self, state: State, notify_changed: bool) -> State {
        match state {
            State::Active(mut a) if !matches!(a.next, Next::Checking(_) | Next::Discovering) => {
                let c = self.cx.config;
                a.next = next_step(
                    &a.tokens,
                    a.failures,
                    a.last_attempt,
                    c.timing,
                    c.flow,
                    self.now(),
                );
                State::Active(a)
            }
            State::Pending(mut p) if notify_changed => {
                p.next_notify = self.next_notify();
                State::Pending(p)
            }
            other @ (State::Active(_)
            | State::Pending(_)
            | State::Unauthorised
            | State::Discovering(_)
            | State::Exchanging(_)
            | State::Device(_)
            | State::Refreshing(_)
            | State::Failed(_)) => other,
        }
    }
}

/// Panics unless a step's effects agree with the state it moved to (`old_request`: the
/// request the state before carried; `fresh`: the id handed to the step). For property
/// tests and fuzzing: the server relies on these when it carries effects out.
#[cfg(any(test, feature = "invariants"))]
pub(crate) fn check_effects(
    old_request: Option<RequestId>,
    new: &State,
    effects: &[Effect],
    fresh: u64,
) {
    let sends = effects
        .iter()
        .filter(|e| matches!(e, Effect::Send(_)))
        .count();
    let checks = effects
        .iter()
        .filter(|e| matches!(e, Effect::Check))
        .count();
    let discovers = effects
        .iter()
        .filter(|e| matches!(e, Effect::Discover))
        .count();
    assert!(sends + checks <= 1, "a step used its fresh id twice");
    let request = new.request();
    assert_eq!(
        sends == 1,
        request == Some(RequestId(fresh)),
        "a request sent but not carried by the state, or carried but not sent"
    );
    assert!(
        request.is_none() || request == old_request || request == Some(RequestId(fresh)),
        "the state carries a request nobody sent"
    );
    let checking = matches!(
        new,
        State::Active(Active { next: Next::Checking(c), .. }) if *c == ChildId(fresh)
    );
    assert_eq!(
        checks == 1,
        checking,
        "a check started but not awaited, or awaited but not started"
    );
    let waits_for_metadata = match new {
        State::Discovering(_) => true,
        State::Exchanging(e) => e.step == Step::Discovering,
        State::Device(Device::Polling(p)) => p.step == Step::Discovering,
        State::Active(a) => a.next == Next::Discovering,
        State::Unauthorised
        | State::Pending(_)
        | State::Device(Device::Requesting(_))
        | State::Refreshing(_)
        | State::Failed(_) => false,
    };
    assert!(
        discovers <= 1 && (discovers == 0 || waits_for_metadata),
        "queued on the issuer by a state that waits for no metadata"
    );
}

/// The error a request that got no answer within `timeout` ends with; `from` names whom
/// it was asked of (such as `" from the token endpoint"`).
pub(crate) fn no_answer(timeout: Duration, from: &str) -> TransportError {
    TransportError {
        kind: crate::event::TransportErrorKind::Io,
        message: format!("no answer{from} within {}", crate::time::span(timeout)),
    }
}

/// What `show` says when it has no token to give, without starting anything.
pub(crate) fn unavailable(state: &State, memo: &Memo, now: Now, with_url: bool) -> String {
    // While an account waits to try again after a failure, say what failed.
    let last = memo.last_error.as_ref().map(|(_, why)| why.to_string());
    match state {
        State::Active(a) if a.tokens.expires <= now.boot => match last {
            Some(why) if a.failures > 0 => {
                format!("Access token has expired. Refreshing failed ({why}); pizauth keeps trying")
            }
            _ => "Access token has expired. Refreshing initiated".into(),
        },
        State::Refreshing(r) if r.tokens.expires <= now.boot => {
            "Access token has expired. Refreshing is in progress but has not yet succeeded".into()
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

/// What exchanging `grant` is, for messages.
fn exchange_what(grant: &Grant) -> GrantKind {
    match grant {
        Grant::ClientCredentials => GrantKind::ClientCredentials,
        Grant::Code { .. } => GrantKind::Code,
    }
}

/// The token-endpoint body that exchanges `grant`.
fn exchange_body(
    account: &Account,
    auth: crate::config::ClientAuth,
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

/// Whether a redirect's path and query carry the redirect URI's path and query pairs.
fn redirect_matches(redirect_uri: &Url, path: &str, pairs: &[(String, String)]) -> bool {
    if path != redirect_uri.path() {
        return false;
    }
    redirect_uri
        .query_pairs()
        .all(|(k, v)| pairs.iter().any(|(pk, pv)| *pk == *k && *pv == *v))
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
