//! `pizauth show -w SECONDS`: clients that wait for a token instead of failing at once.
//! They get the token as soon as the account has one, the failure if it fails, and at
//! their deadline whatever plain `show` would say then.

use std::time::Duration;

use crate::event::ClientId;
use crate::protocol::Reply;
use crate::time::{Instant, Now};

use super::account::{Active, Refreshing, State};
use super::timers::TimerKey;
use super::{AccountId, Server};

/// The longest wait accepted (a day): a bound, not a promise.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A waiting client.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// Who waits.
    pub client: ClientId,
    /// Whether its final error may include the URL.
    pub with_url: bool,
}

impl Server {
    /// Makes `client` wait up to `secs` for account `id`'s token.
    pub(super) fn wait_for_token(
        &mut self,
        now: Now,
        client: ClientId,
        id: AccountId,
        with_url: bool,
        secs: u32,
    ) {
        let deadline: Instant = now.boot + Duration::from_secs(u64::from(secs)).min(MAX_WAIT);
        self.timers.set(TimerKey::Waiter(client), Some(deadline));
        self.waiters
            .entry(id)
            .or_default()
            .push(Waiter { client, with_url });
    }

    /// The account's state settled (a token, or a failure): answer its waiters.
    pub(super) fn wake_waiters(&mut self, id: AccountId) {
        let Some(now) = self.latest else {
            return;
        };
        let Some(state) = self.accounts.get(&id).map(|s| &s.state) else {
            return;
        };
        let reply = match state {
            State::Active(Active { tokens, .. }) | State::Refreshing(Refreshing { tokens, .. })
                if tokens.expires > now.boot =>
            {
                Some(Reply::Token {
                    token: tokens.access.clone(),
                })
            }
            State::Failed(f) => Some(Reply::error(format!("Access token unavailable: {}", f.why))),
            // Still under way: they wait on.
            State::Active(_)
            | State::Refreshing(_)
            | State::Unauthorised
            | State::Discovering(_)
            | State::Pending(_)
            | State::Exchanging(_)
            | State::Device(_) => None,
        };
        let Some(reply) = reply else {
            return;
        };
        for w in self.waiters.remove(&id).unwrap_or_default() {
            self.timers.set(TimerKey::Waiter(w.client), None);
            let r = match &reply {
                Reply::Token { token } => Reply::Token {
                    token: token.clone(),
                },
                Reply::Error { message } => Reply::error(message.clone()),
                _ => Reply::Done,
            };
            self.reply(w.client, r);
        }
    }

    /// A waiter's deadline: answer with what plain `show` would say now.
    pub(super) fn waiter_due(&mut self, now: Now, client: ClientId) {
        let found = self.waiters.iter().find_map(|(id, list)| {
            list.iter()
                .position(|w| w.client == client)
                .map(|i| (*id, i))
        });
        let Some((id, i)) = found else {
            return;
        };
        let waiter = match self.waiters.get_mut(&id) {
            Some(list) => {
                let w = list.remove(i);
                if list.is_empty() {
                    self.waiters.remove(&id);
                }
                w
            }
            None => return,
        };
        let Some(slot) = self.accounts.get(&id) else {
            return;
        };
        let message = super::step::unavailable(&slot.state, &slot.memo, now, waiter.with_url);
        self.reply(client, Reply::error(message));
    }

    /// A client went away before its answer: forget it if it is waiting for a token.
    pub(super) fn client_gone(&mut self, client: ClientId) {
        self.timers.set(TimerKey::Waiter(client), None);
        self.waiters.retain(|_, list| {
            list.retain(|w| w.client != client);
            !list.is_empty()
        });
    }

    /// Answers and forgets every waiter of account `id` with `why`.
    pub(super) fn drop_waiters(&mut self, id: AccountId, why: &str) {
        for w in self.waiters.remove(&id).unwrap_or_default() {
            self.timers.set(TimerKey::Waiter(w.client), None);
            self.reply(
                w.client,
                Reply::error(format!("Access token unavailable: {why}")),
            );
        }
    }
}
