//! A keyed timer queue: at most one deadline per key, earliest found in O(log n).
//!
//! The daemon must stay cheap with thousands of accounts, so finding the next deadline
//! is a lookup of the first element of an ordered set, never a scan.

use std::collections::{BTreeMap, BTreeSet};

use crate::event::{ChildId, ClientId, RequestId};
use crate::time::Instant;

use super::AccountId;

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKey {
    /// The account's state has a deadline (see `State::deadline`).
    Account(AccountId),
    /// A child process must be killed if it is still running.
    Child(ChildId),
    /// A request that belongs to no account state (discovery, revocation) times out.
    Request(RequestId),
    /// A `show -w` client has waited long enough.
    Waiter(ClientId),
}

/// The queue.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    by_time: BTreeSet<(Instant, TimerKey)>,
    by_key: BTreeMap<TimerKey, Instant>,
}

impl Timers {
    /// Sets (`Some`) or clears (`None`) the deadline of `key`, replacing any previous one.
    pub fn set(&mut self, key: TimerKey, at: Option<Instant>) {
        if let Some(old) = self.by_key.remove(&key) {
            self.by_time.remove(&(old, key));
        }
        if let Some(at) = at {
            self.by_key.insert(key, at);
            self.by_time.insert((at, key));
        }
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest key due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerKey> {
        let &(at, key) = self.by_time.first()?;
        if at > now {
            return None;
        }
        self.by_time.remove(&(at, key));
        self.by_key.remove(&key);
        Some(key)
    }

    /// The deadline of `key`, if set.
    #[cfg(any(test, feature = "invariants"))]
    pub fn get(&self, key: TimerKey) -> Option<Instant> {
        self.by_key.get(&key).copied()
    }

    /// How many deadlines are set.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_replacement() {
        let mut t = Timers::default();
        let a = TimerKey::Account(AccountId(1));
        let b = TimerKey::Child(ChildId(1));
        t.set(a, Some(Instant::from_millis(50)));
        t.set(b, Some(Instant::from_millis(20)));
        assert_eq!(t.next(), Some(Instant::from_millis(20)));
        t.set(b, Some(Instant::from_millis(90)));
        assert_eq!(t.next(), Some(Instant::from_millis(50)));
        assert_eq!(t.pop_due(Instant::from_millis(49)), None);
        assert_eq!(t.pop_due(Instant::from_millis(100)), Some(a));
        assert_eq!(t.pop_due(Instant::from_millis(100)), Some(b));
        assert_eq!(t.len(), 0);
        t.set(a, Some(Instant::from_millis(1)));
        t.set(a, None);
        assert_eq!(t.next(), None);
    }
}
