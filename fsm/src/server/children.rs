//! Commands the server runs (SPEC.md section 6): notifications, token events (queued, one
//! at a time, in order), the transient-error check, and `startup_cmd`. At most
//! `max_children` run at once; the rest wait in a bounded queue.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::event::{ChildId, Entropy, ExitStatus, Level, Output};
use crate::secret::Secret;
use crate::time::Now;

use super::step::Event;
use super::timers::TimerKey;
use super::{AccountId, Asker, Server};

/// Why a child runs; decides what its exit means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `startup_cmd`.
    Startup,
    /// `auth_notify_cmd` or `error_notify_cmd`: only logged.
    Notify,
    /// `token_event_cmd`: the next queued event starts when it ends.
    TokenEvent,
    /// `transient_error_if_cmd` for this account: exit 0 keeps retrying.
    Check(AccountId),
    /// `client_secret_cmd` of this account (by index) of the config being reloaded; its
    /// stdout is captured.
    Secret(usize),
}

/// A child waiting for a free slot.
#[derive(Debug)]
struct Queued {
    child: ChildId,
    purpose: Purpose,
    command: String,
    env: Vec<(String, String)>,
    timeout: Option<Duration>,
}

/// Token events (SPEC.md section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenEvent {
    /// A token was obtained by authorisation.
    New,
    /// A token was refreshed.
    Refreshed,
    /// `pizauth revoke` forgot a token.
    Revoked,
    /// A token was dropped because refreshing failed for good.
    Invalidated,
}

impl TokenEvent {
    fn as_str(self) -> &'static str {
        match self {
            TokenEvent::New => "token_new",
            TokenEvent::Refreshed => "token_refreshed",
            TokenEvent::Revoked => "token_revoked",
            TokenEvent::Invalidated => "token_invalidated",
        }
    }
}

/// Running and waiting children, and the token-event queue.
#[derive(Debug, Default)]
pub(crate) struct Children {
    running: BTreeMap<ChildId, Purpose>,
    queue: VecDeque<Queued>,
    /// Events not yet handed to `token_event_cmd`: (account name, event).
    events: VecDeque<(String, TokenEvent)>,
    /// The `token_event_cmd` child running or queued, if any.
    event_child: Option<ChildId>,
}

impl Children {
    /// Whether `child` is running or queued.
    #[cfg(any(test, feature = "invariants"))]
    pub fn is_known(&self, child: ChildId) -> bool {
        self.running.contains_key(&child) || self.queue.iter().any(|q| q.child == child)
    }

    #[cfg(any(test, feature = "invariants"))]
    pub fn check_invariants(&self) {
        if let Some(c) = self.event_child {
            assert!(self.is_known(c), "event child neither running nor queued");
        } else {
            assert!(self.events.is_empty(), "events queued with no event child");
        }
    }
}

/// Most token events waiting at once; past this the oldest are dropped (and logged) so a
/// hung `token_event_cmd` cannot grow memory without bound.
const MAX_QUEUED_EVENTS: usize = 10_000;

impl Server {
    /// Runs `command` (or queues it when `max_children` already run). Returns its id.
    pub(super) fn spawn(
        &mut self,
        purpose: Purpose,
        command: String,
        env: Vec<(String, String)>,
        timeout: Option<Duration>,
    ) -> Option<ChildId> {
        let child = ChildId(self.fresh_id());
        self.spawn_as(child, purpose, command, env, timeout)
    }

    /// [`Server::spawn`], with the id already chosen.
    fn spawn_as(
        &mut self,
        child: ChildId,
        purpose: Purpose,
        command: String,
        env: Vec<(String, String)>,
        timeout: Option<Duration>,
    ) -> Option<ChildId> {
        let queued = Queued {
            child,
            purpose,
            command,
            env,
            timeout,
        };
        if self.children.running.len() < self.tunables.max_children {
            self.start_child(queued);
        } else if self.children.queue.len() < self.tunables.max_queued_children
            || !matches!(purpose, Purpose::Notify)
        {
            // Checks and token events are bounded by the number of accounts and by the
            // event queue; only notifications are ever dropped.
            self.children.queue.push_back(queued);
        } else {
            self.log(
                Level::Warn,
                "too many commands waiting to run: dropping a notification",
            );
            return None;
        }
        Some(child)
    }

    fn start_child(&mut self, q: Queued) {
        self.children.running.insert(q.child, q.purpose);
        if let (Some(timeout), Some(now)) = (q.timeout, self.latest) {
            self.timers
                .set(TimerKey::Child(q.child), Some(now.boot + timeout));
        }
        self.outputs.push_back(Output::Spawn {
            child: q.child,
            command: q.command,
            env: q.env,
            capture: matches!(q.purpose, Purpose::Secret(_)),
        });
    }

    /// A child's time is up.
    pub(super) fn child_due(&mut self, child: ChildId) {
        if self.children.running.contains_key(&child) {
            self.log(
                Level::Warn,
                format!("command {} timed out: killing it", child.0),
            );
            self.outputs.push_back(Output::Kill { child });
        }
    }

    pub(super) fn child_exited(
        &mut self,
        now: Now,
        child: ChildId,
        status: ExitStatus,
        stdout: Option<Secret<Vec<u8>>>,
        entropy: &mut dyn Entropy,
    ) {
        let Some(purpose) = self.children.running.remove(&child) else {
            self.log(Level::Debug, format!("exit of unknown command {}", child.0));
            return;
        };
        self.timers.set(TimerKey::Child(child), None);
        if !status.success() && !matches!(purpose, Purpose::Secret(_)) {
            let what = match status {
                ExitStatus::Code(c) => format!("exited with code {c}"),
                ExitStatus::Signal(s) => format!("was killed by signal {s}"),
                ExitStatus::FailedToStart => "could not be started".to_owned(),
            };
            let level = if matches!(purpose, Purpose::Check(_)) {
                Level::Info
            } else {
                Level::Warn
            };
            self.log(level, format!("{} command {what}", purpose_name(purpose)));
        }
        match purpose {
            Purpose::Startup | Purpose::Notify => (),
            Purpose::TokenEvent => {
                if self.children.event_child == Some(child) {
                    self.children.event_child = None;
                }
                self.pump_events();
            }
            Purpose::Check(id) => {
                // Exit 0 keeps retrying; anything else gives up on the token.
                let event = Event::Checked {
                    child,
                    keep_going: status.success(),
                };
                self.apply(now, id, event, Asker::Nobody, entropy);
            }
            Purpose::Secret(index) => {
                self.secret_finished(now, child, index, status, stdout, entropy)
            }
        }
        while self.children.running.len() < self.tunables.max_children {
            let Some(q) = self.children.queue.pop_front() else {
                break;
            };
            self.start_child(q);
        }
    }

    /// The server is exiting: kills every running command that has a time limit (it
    /// would have been killed at that limit, and nobody will be left to do it), so that a
    /// stuck notification does not outlive the server. `startup_cmd` has no limit and is
    /// left alone; queued commands never start.
    pub(super) fn kill_children_on_exit(&mut self) {
        let timed: Vec<ChildId> = self
            .children
            .running
            .iter()
            .filter(|(_, purpose)| !matches!(purpose, Purpose::Startup))
            .map(|(child, _)| *child)
            .collect();
        for child in timed {
            self.outputs.push_back(Output::Kill { child });
        }
    }

    /// `startup_cmd`, once the control socket accepts requests.
    pub(super) fn started(&mut self) {
        if let Some(cmd) = self.globals.startup_cmd.clone() {
            self.spawn(Purpose::Startup, cmd, Vec::new(), None);
        }
    }

    /// Queues a token event for `token_event_cmd`, if set.
    pub(super) fn token_event(&mut self, id: AccountId, event: TokenEvent) {
        let name = self.name_of(id).to_owned();
        self.log(Level::Info, format!("{name}: {}", event.as_str()));
        if self.globals.token_event_cmd.is_none() {
            return;
        }
        if self.children.events.len() >= MAX_QUEUED_EVENTS {
            self.children.events.pop_front();
            self.log(
                Level::Warn,
                "token_event_cmd is not keeping up: dropped the oldest event",
            );
        }
        self.children.events.push_back((name, event));
        self.pump_events();
    }

    /// Starts the next token event if none is running.
    fn pump_events(&mut self) {
        if self.children.event_child.is_some() {
            return;
        }
        let Some(cmd) = self.globals.token_event_cmd.clone() else {
            self.children.events.clear();
            return;
        };
        let Some((name, event)) = self.children.events.pop_front() else {
            return;
        };
        let env = vec![
            ("PIZAUTH_ACCOUNT".to_owned(), name),
            ("PIZAUTH_EVENT".to_owned(), event.as_str().to_owned()),
        ];
        let timeout = Some(self.tunables.notify_timeout);
        self.children.event_child = self.spawn(Purpose::TokenEvent, cmd, env, timeout);
    }

    /// Tells the user about a failure: `error_notify_cmd` if set, else the log.
    pub(super) fn error_notify(&mut self, id: AccountId, message: &str) {
        let name = self.name_of(id).to_owned();
        match self.globals.error_notify_cmd.clone() {
            Some(cmd) => {
                self.log(Level::Warn, format!("{name}: {message}"));
                let env = vec![
                    ("PIZAUTH_ACCOUNT".to_owned(), name),
                    ("PIZAUTH_MSG".to_owned(), message.to_owned()),
                ];
                let timeout = Some(self.tunables.notify_timeout);
                self.spawn(Purpose::Notify, cmd, env, timeout);
            }
            None => self.log(Level::Error, format!("{name}: {message}")),
        }
    }

    /// Runs `auth_notify_cmd` with `PIZAUTH_ACCOUNT` and `vars`, if it is set.
    pub(super) fn auth_notify_with(&mut self, id: AccountId, vars: Vec<(String, String)>) {
        let Some(cmd) = self.globals.auth_notify_cmd.clone() else {
            return;
        };
        let mut env = vec![("PIZAUTH_ACCOUNT".to_owned(), self.name_of(id).to_owned())];
        env.extend(vars);
        let timeout = Some(self.tunables.notify_timeout);
        self.spawn(Purpose::Notify, cmd, env, timeout);
    }

    /// Asks `transient_error_if_cmd` whether to keep retrying account `id`, as `child`
    /// (the id its step chose).
    pub(super) fn start_check(&mut self, id: AccountId, child: ChildId) {
        let Some(cmd) = self.globals.transient_error_if_cmd.clone() else {
            return;
        };
        let env = vec![("PIZAUTH_ACCOUNT".to_owned(), self.name_of(id).to_owned())];
        let timeout = Some(self.tunables.check_timeout);
        self.spawn_as(child, Purpose::Check(id), cmd, env, timeout);
    }
}

fn purpose_name(p: Purpose) -> &'static str {
    match p {
        Purpose::Startup => "startup_cmd",
        Purpose::Notify => "notification",
        Purpose::TokenEvent => "token_event_cmd",
        Purpose::Check(_) => "transient_error_if_cmd",
        Purpose::Secret(_) => "client_secret_cmd",
    }
}
