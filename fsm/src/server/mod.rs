//! The state machine of the whole server: every account, the child processes, the token
//! event queue, and reloads.
//!
//! [`Server::handle`] is the only input and never fails or panics on input; effects come
//! out of [`Server::poll_output`]; [`Server::poll_timeout`] says when to call `handle`
//! next with [`Input::Tick`]. Time never goes backwards (an earlier `now` is treated as
//! the latest one seen).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::config::{Account, Config};
use crate::dump::fingerprint;
use crate::event::{ClientId, Entropy, Input, Level, Output, RequestId};
use crate::time::{Instant, Now};

mod account;
mod children;
mod control;
mod discovery;
mod failure;
mod flow;
#[cfg(any(test, feature = "invariants"))]
mod liveness;
mod reload;
mod revoke;
mod step;
mod timers;
mod waiters;

pub use reload::{SECRET_TIMEOUT, SecretCommand, fill_secret, secret_commands};

use account::State;
use children::Children;
use discovery::{IssuerState, Side, Want};
use step::{Cx, Effect, Event, Memo};
use timers::{TimerKey, Timers};
use waiters::Waiter;

/// The longest `Retry-After` honoured (a provider cannot silence an account for days).
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// The redirect listeners, as bound by the driver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listeners {
    /// Port of the HTTP listener, if on.
    pub http_port: Option<u16>,
    /// Port of the HTTPS listener, if on.
    pub https_port: Option<u16>,
    /// SHA-256 fingerprint of the HTTPS listener's certificate, if it has one yet. With
    /// `https_port` set and this `None`, the certificate is made when first needed: `info`
    /// asks for it with [`Output::MakeCertificate`](crate::event::Output::MakeCertificate).
    pub https_fingerprint: Option<String>,
}

/// Fixed limits and delays. The defaults are those of SPEC.md; tests and fault-injection
/// runs shorten them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunables {
    /// Give up on a token-endpoint exchange after this long (a transient failure).
    pub http_timeout: Duration,
    /// Attempts at a code exchange that meets transport errors.
    pub exchange_tries: u32,
    /// Delay between those attempts.
    pub exchange_retry_delay: Duration,
    /// Kill `auth_notify_cmd`, `error_notify_cmd` and `token_event_cmd` after this long.
    pub notify_timeout: Duration,
    /// Kill `transient_error_if_cmd` after this long.
    pub check_timeout: Duration,
    /// Run `transient_error_if_cmd` after every this many transient failures in a row.
    pub check_every: u32,
    /// Child processes running at once; more wait in a queue.
    pub max_children: usize,
    /// Child processes waiting to run; notifications past this are dropped (and logged).
    pub max_queued_children: usize,
    /// How much longer the device flow waits between polls after each `slow_down`
    /// (RFC 8628 3.5 says 5 s).
    pub slow_down: Duration,
}

impl Default for Tunables {
    fn default() -> Self {
        Self {
            http_timeout: Duration::from_secs(30),
            exchange_tries: 10,
            exchange_retry_delay: Duration::from_secs(6),
            notify_timeout: Duration::from_secs(10),
            check_timeout: Duration::from_secs(180),
            check_every: 6,
            max_children: 32,
            max_queued_children: 1024,
            slow_down: Duration::from_secs(5),
        }
    }
}

/// Who asked for what an account's step answers.
#[derive(Clone, Copy, Debug)]
enum Asker {
    /// Nobody: a deadline, an answer, a reload.
    Nobody,
    /// A control client.
    Client(ClientId),
    /// The browser, on this redirect connection.
    Redirect(crate::event::ConnId),
}

/// An account, named by the core; never reused, so work for an account that was reloaded
/// away cannot land on its successor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct AccountId(pub u64);

/// One configured account and its state.
#[derive(Debug)]
struct Slot {
    config: Account,
    /// `dump::fingerprint(&config)`, computed on first use (by dump, restore or reload):
    /// a server with many accounts starts without hashing every one of them.
    fingerprint: std::cell::OnceCell<String>,
    state: State,
    /// What the account remembers besides (its last failure, and how long it keeps
    /// quiet after an answer that gave no usable token).
    memo: Memo,
}

impl Slot {
    /// The account's fingerprint (see [`fingerprint`]).
    fn fingerprint(&self) -> &str {
        self.fingerprint.get_or_init(|| fingerprint(&self.config))
    }
}

/// The whole server.
#[derive(Debug)]
pub struct Server {
    /// Global options (its `accounts` is kept empty: accounts live in `accounts`).
    globals: Config,
    listeners: Listeners,
    tunables: Tunables,
    /// Boxed: a slot is 400 bytes, and B-tree leaves filled in id order are half empty,
    /// so storing slots inline would reserve room for twice as many.
    accounts: BTreeMap<AccountId, Box<Slot>>,
    by_name: BTreeMap<String, AccountId>,
    /// Pending authorisation requests by SHA-256 of their `state`.
    pending: BTreeMap<[u8; 32], AccountId>,
    /// Requests in flight and whose they are; kept by [`Server::apply`] alone.
    requests: BTreeMap<RequestId, AccountId>,
    /// Requests in flight that belong to no account state: discovery and revocation.
    side: BTreeMap<RequestId, Side>,
    /// What is known of each issuer's metadata, by issuer URL.
    issuers: BTreeMap<String, IssuerState>,
    /// `show -w` clients waiting for an account's token.
    waiters: BTreeMap<AccountId, Vec<Waiter>>,
    timers: Timers,
    children: Children,
    /// `info` clients waiting for the HTTPS listener's certificate to be made.
    info_waiters: Vec<ClientId>,
    /// Clients waiting for a reload (`None`: SIGHUP), and whether the config was asked for.
    reload_waiters: Vec<Option<ClientId>>,
    /// A reload waiting for its `client_secret_cmd`s.
    pending_reload: Option<reload::PendingReload>,
    outputs: VecDeque<Output>,
    /// The buffer of [`Server::apply`]'s effects, kept empty between steps.
    effects: Vec<Effect>,
    next_id: u64,
    /// The config file's name, for messages about reloads.
    config_name: String,
    /// Log messages less important than this are not even formatted.
    log_level: Level,
    /// The latest time seen.
    latest: Option<Now>,
    exiting: bool,
}

impl Server {
    /// A server for `config`, with no tokens, using the default [`Tunables`].
    pub fn new(config: Config, listeners: Listeners) -> Server {
        Server::with_tunables(config, listeners, Tunables::default())
    }

    /// A server with explicit limits and delays.
    pub fn with_tunables(mut config: Config, listeners: Listeners, tunables: Tunables) -> Server {
        let accounts = std::mem::take(&mut config.accounts);
        let mut server = Server {
            globals: config,
            listeners,
            tunables,
            accounts: BTreeMap::new(),
            by_name: BTreeMap::new(),
            pending: BTreeMap::new(),
            requests: BTreeMap::new(),
            side: BTreeMap::new(),
            issuers: BTreeMap::new(),
            waiters: BTreeMap::new(),
            timers: Timers::default(),
            children: Children::default(),
            info_waiters: Vec::new(),
            reload_waiters: Vec::new(),
            pending_reload: None,
            outputs: VecDeque::new(),
            effects: Vec::new(),
            next_id: 1,
            config_name: "pizauth.conf".to_owned(),
            log_level: Level::Trace,
            latest: None,
            exiting: false,
        };
        for account in accounts {
            server.add_account(account);
        }
        server
    }

    /// Handles one input at time `now`, then everything that has come due by then.
    /// `entropy` is drawn from only to start authorisation requests.
    pub fn handle(&mut self, now: Now, input: Input, entropy: &mut dyn Entropy) {
        let now = self.advance(now);
        if self.exiting {
            return;
        }
        match input {
            Input::Tick => (),
            Input::Started => self.started(),
            Input::ClientAsked { client, bytes } => {
                self.client_asked(now, client, bytes.expose(), entropy)
            }
            Input::ClientGone { client } => self.client_gone(client),
            Input::RedirectReceived {
                conn,
                scheme,
                request,
            } => self.redirect_received(now, conn, scheme, &request, entropy),
            Input::HttpResponded { request, response } => {
                self.http_finished(now, request, Ok(response), entropy)
            }
            Input::HttpFailed { request, error } => {
                self.http_finished(now, request, Err(error), entropy)
            }
            Input::ChildExited {
                child,
                status,
                stdout,
            } => self.child_exited(now, child, status, stdout, entropy),
            Input::ConfigRead { result } => self.config_read(now, result, entropy),
            Input::CertificateMade { fingerprint } => self.certificate_made(fingerprint),
            Input::ReloadAsked => self.reload_asked(None),
            Input::ShutdownAsked => self.shut_down(),
        }
        self.fire_due(now, entropy);
    }

    /// The next effect to perform, if any. Drain after every [`Server::handle`].
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`Server::handle`] with [`Input::Tick`] next; `None`: only when
    /// something happens. After `handle` returns, this is always later than its `now`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.exiting {
            return None;
        }
        self.timers.next()
    }

    /// Names the config file in messages about reloads (default `pizauth.conf`).
    pub fn set_config_name(&mut self, name: impl Into<String>) {
        self.config_name = name.into();
    }

    /// Stops emitting log messages less important than `level` (saves formatting them).
    pub fn set_log_level(&mut self, level: Level) {
        self.log_level = level;
    }

    /// The listeners this server was built with.
    pub fn listeners(&self) -> &Listeners {
        &self.listeners
    }

    /// Clamps time so that it never goes backwards, and remembers it.
    fn advance(&mut self, now: Now) -> Now {
        let now = match self.latest {
            Some(l) if now.boot < l.boot => Now {
                boot: l.boot,
                wall: now.wall,
            },
            _ => now,
        };
        self.latest = Some(now);
        now
    }

    /// Runs every timer due at `now`. Each handler sets only deadlines after `now` or
    /// clears them, so the loop ends; the bound is a second line of defence.
    fn fire_due(&mut self, now: Now, entropy: &mut dyn Entropy) {
        let bound = 4 * self.timers.len() + 16;
        for _ in 0..bound {
            match self.timers.pop_due(now.boot) {
                Some(TimerKey::Account(id)) => {
                    self.apply(now, id, Event::Due, Asker::Nobody, entropy)
                }
                Some(TimerKey::Child(child)) => self.child_due(child),
                Some(TimerKey::Request(request)) => self.side_timed_out(now, request, entropy),
                Some(TimerKey::Waiter(client)) => self.waiter_due(now, client),
                None => return,
            }
        }
        self.log(
            Level::Error,
            "internal error: timers kept coming due; deferring the rest",
        );
    }

    /// Routes `event` to account `id`: runs its [`step`](step::step), keeps every index
    /// in step with the old and the new state alone (the pending-state index, the request
    /// map, where a request the new state no longer carries is cancelled unless it is the
    /// one just answered, and the account's timer), answers `show -w` clients once the
    /// account settles, and carries out the effects.
    fn apply(
        &mut self,
        now: Now,
        id: AccountId,
        event: Event<'_>,
        asker: Asker,
        entropy: &mut dyn Entropy,
    ) {
        let answered = match &event {
            Event::Answered { request, .. } => Some(*request),
            _ => None,
        };
        let due = matches!(event, Event::Due);
        let fresh = self.next_id;
        // One lookup: the slot stays borrowed (its configuration lent to the step) until
        // the new state is back in it; the indexes are updated afterwards.
        let Some(slot) = self.accounts.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut slot.state, State::Unauthorised);
        let memo = std::mem::take(&mut slot.memo);
        let (old_key, old_request, old_deadline) =
            (old.pending_key(), old.request(), old.deadline());
        let old_name = old.name();
        let issuer = slot
            .config
            .issuer
            .as_ref()
            .and_then(|i| self.issuers.get(i.as_str()));
        let mut cx = Cx {
            now,
            config: &slot.config,
            globals: &self.globals,
            tunables: &self.tunables,
            listeners: &self.listeners,
            issuer,
            fresh,
            entropy,
        };
        // The effects go into a buffer kept between steps: most steps (a `show` of an
        // active account) have one effect, and need not allocate for it.
        let mut effects = std::mem::take(&mut self.effects);
        debug_assert!(effects.is_empty(), "a step starts with no effects");
        let (new, memo) = step::step(old, memo, event, &mut cx, &mut effects);
        #[cfg(any(test, feature = "invariants"))]
        step::check_effects(old_request, &new, &effects, fresh);
        let (new_key, new_request, deadline, new_name) =
            (new.pending_key(), new.request(), new.deadline(), new.name());
        let settled = matches!(
            &new,
            State::Active(_) | State::Refreshing(_) | State::Failed(_)
        );
        slot.state = new;
        slot.memo = memo;
        if effects
            .iter()
            .any(|e| matches!(e, Effect::Send(_) | Effect::Check))
        {
            self.next_id += 1;
        }
        if self.log_level >= Level::Trace && old_name != new_name {
            let message = format!("{}: {old_name} -> {new_name}", self.name_of(id));
            self.log(Level::Trace, message);
        }
        if old_key != new_key {
            if let Some(key) = old_key {
                self.pending.remove(&key);
            }
            if let Some(key) = new_key {
                self.pending.insert(key, id);
            }
        }
        if old_request != new_request {
            if let Some(r) = old_request {
                self.requests.remove(&r);
                if answered != Some(r) {
                    self.outputs.push_back(Output::CancelHttp { request: r });
                }
            }
            if let Some(r) = new_request {
                self.requests.insert(r, id);
            }
        }
        // A deadline that came was taken off the queue: it is set again even if the
        // state kept it.
        if deadline != old_deadline || due {
            self.timers.set(TimerKey::Account(id), deadline);
        }
        if settled && self.waiters.contains_key(&id) {
            self.wake_waiters(id);
        }
        for effect in effects.drain(..) {
            self.carry_out(now, id, effect, asker, fresh);
        }
        // Drained, it is empty again (were an effect ever to lead to another step, that
        // step would have had a new buffer).
        self.effects = effects;
    }

    /// Carries out one effect of account `id`'s step; `fresh` is the id its new request
    /// or check takes.
    fn carry_out(&mut self, now: Now, id: AccountId, effect: Effect, asker: Asker, fresh: u64) {
        match effect {
            Effect::Send(http) => {
                let request = RequestId(fresh);
                self.outputs.push_back(Output::SendHttp { request, http });
            }
            Effect::Reply(reply) => match asker {
                Asker::Client(client) => self.reply(client, reply),
                Asker::Nobody | Asker::Redirect(_) => (),
            },
            Effect::Wait { with_url, secs } => match asker {
                Asker::Client(client) => self.wait_for_token(now, client, id, with_url, secs),
                Asker::Nobody | Asker::Redirect(_) => (),
            },
            Effect::Page { status, body } => match asker {
                Asker::Redirect(conn) => {
                    self.outputs
                        .push_back(Output::AnswerRedirect { conn, status, body });
                }
                Asker::Nobody | Asker::Client(_) => (),
            },
            Effect::Log(level, message) => self.log(level, message),
            Effect::AuthNotify(vars) => self.auth_notify_with(id, vars),
            Effect::ErrorNotify(message) => self.error_notify(id, &message),
            Effect::TokenEvent(event) => self.token_event(id, event),
            Effect::Check => self.start_check(id, crate::event::ChildId(fresh)),
            Effect::Discover => self.await_issuer(now, id, Want::Account),
            Effect::RevokeRemotely { token, hint } => match asker {
                Asker::Client(client) => self.revoke_remotely(now, client, id, token, hint),
                Asker::Nobody | Asker::Redirect(_) => (),
            },
        }
    }

    fn add_account(&mut self, config: Account) -> AccountId {
        let id = AccountId(self.fresh_id());
        self.by_name.insert(config.name.clone(), id);
        self.accounts.insert(
            id,
            Box::new(Slot {
                fingerprint: std::cell::OnceCell::new(),
                config,
                state: State::Unauthorised,
                memo: Memo::default(),
            }),
        );
        id
    }

    /// Drops an account and everything in flight for it.
    fn remove_account(&mut self, now: Now, id: AccountId, entropy: &mut dyn Entropy) {
        self.apply(now, id, Event::Removed, Asker::Nobody, entropy);
        self.drop_waiters(id, "the account was removed from the configuration");
        if let Some(slot) = self.accounts.remove(&id) {
            self.by_name.remove(&slot.config.name);
        }
        self.timers.set(TimerKey::Account(id), None);
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn fresh_request(&mut self) -> RequestId {
        RequestId(self.fresh_id())
    }

    fn name_of(&self, id: AccountId) -> &str {
        self.accounts
            .get(&id)
            .map_or("?", |s| s.config.name.as_str())
    }

    fn log(&mut self, level: Level, message: impl Into<String>) {
        if level > self.log_level {
            return;
        }
        self.outputs.push_back(Output::Log {
            level,
            message: message.into(),
        });
    }

    fn shut_down(&mut self) {
        self.log(Level::Info, "shutting down");
        self.kill_children_on_exit();
        self.outputs.push_back(Output::Exit);
        self.exiting = true;
    }

    /// Checks the invariants of DESIGN.md; panics with a description if one fails.
    /// For property tests and fuzzing.
    #[cfg(any(test, feature = "invariants"))]
    pub fn check_invariants(&self) {
        if !self.info_waiters.is_empty() {
            let l = &self.listeners;
            assert!(
                l.https_port.is_some() && l.https_fingerprint.is_none(),
                "info clients wait for a certificate that is not being made"
            );
        }
        let now = self.latest.map(|n| n.boot);
        let mut pending_seen = 0;
        let mut requests_seen = 0;
        for (id, slot) in &self.accounts {
            assert_eq!(self.by_name.get(&slot.config.name), Some(id), "name index");
            assert_eq!(
                self.timers.get(TimerKey::Account(*id)),
                slot.state.deadline(),
                "{}: timer differs from the state's deadline",
                slot.config.name
            );
            if let Some(key) = slot.state.pending_key() {
                pending_seen += 1;
                assert_eq!(self.pending.get(&key), Some(id), "pending index");
            }
            if let Some(r) = slot.state.request() {
                requests_seen += 1;
                assert_eq!(self.requests.get(&r), Some(id), "request map");
            }
            if let (Some(now), Some(d)) = (now, slot.state.deadline()) {
                assert!(d > now, "{}: deadline not after now", slot.config.name);
            }
            let work_pending = matches!(
                slot.state,
                State::Exchanging(_) | State::Refreshing(_) | State::Active(_)
            );
            if work_pending && slot.state.deadline().is_none() {
                // Only a running transient check may leave an active account without a
                // deadline, and that child then has its own; an exchange waiting for its
                // issuer's metadata waits for that fetch's deadline (see liveness.rs).
                match &slot.state {
                    State::Exchanging(e) if e.step == account::Step::Discovering => (),
                    State::Active(account::Active {
                        next: account::Next::Discovering,
                        ..
                    }) => (),
                    State::Active(account::Active {
                        next: account::Next::Checking(c),
                        ..
                    }) => assert!(
                        self.children.is_known(*c),
                        "{}: checking with an unknown child",
                        slot.config.name
                    ),
                    _ => panic!("{}: work pending without a deadline", slot.config.name),
                }
            }
            self.check_liveness(*id, slot);
            if let (Some(f), Some(quiet)) = (slot.state.in_flight(), slot.memo.quiet_until) {
                assert!(
                    f.sent >= quiet,
                    "{}: asked its provider again before refresh_retry after an answer that gave no usable token",
                    slot.config.name
                );
            }
        }
        self.check_issuers();
        assert_eq!(self.by_name.len(), self.accounts.len(), "name index size");
        assert_eq!(self.pending.len(), pending_seen, "stale pending entries");
        assert_eq!(self.requests.len(), requests_seen, "stale request entries");
        for request in self.side.keys() {
            assert!(
                self.timers.get(TimerKey::Request(*request)).is_some(),
                "side request without a deadline"
            );
            assert!(!self.requests.contains_key(request), "request owned twice");
        }
        for (id, list) in &self.waiters {
            assert!(
                self.accounts.contains_key(id),
                "waiter of a removed account"
            );
            for w in list {
                assert!(
                    self.timers.get(TimerKey::Waiter(w.client)).is_some(),
                    "waiter without a deadline"
                );
            }
        }
        if let (Some(now), Some(next)) = (now, self.poll_timeout()) {
            assert!(next > now, "poll_timeout not after now");
        }
        self.children.check_invariants();
    }
}

#[cfg(test)]
mod tests;
