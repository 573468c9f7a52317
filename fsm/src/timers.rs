//! A keyed timer queue: at most one deadline per key, the earliest found in O(log n),
//! replaced or cleared by key alone, so no caller has to remember the old value.
//!
//! The daemon must stay cheap with thousands of accounts, so finding the next deadline
//! is a lookup of the first element of an ordered set, never a scan. The core keeps its
//! deadlines in one (keyed by [`crate::server`]'s timer keys) and the driver its own (its
//! connections' timeouts and its housekeeping) in another.

use std::collections::{BTreeMap, BTreeSet};

use crate::time::Instant;

/// The queue.
#[derive(Debug)]
pub struct Timers<K> {
    by_time: BTreeSet<(Instant, K)>,
    by_key: BTreeMap<K, Instant>,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            by_time: BTreeSet::new(),
            by_key: BTreeMap::new(),
        }
    }
}

impl<K: Copy + Ord> Timers<K> {
    /// Sets (`Some`) or clears (`None`) the deadline of `key`, replacing any previous one.
    pub fn set(&mut self, key: K, at: Option<Instant>) {
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
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        let &(at, key) = self.by_time.first()?;
        if at > now {
            return None;
        }
        self.by_time.remove(&(at, key));
        self.by_key.remove(&key);
        Some(key)
    }

    /// The deadline of `key`, if set.
    pub fn get(&self, key: K) -> Option<Instant> {
        self.by_key.get(&key).copied()
    }

    /// How many deadlines are set.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no deadline is set.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn earliest_first_replaced_and_cleared_by_key() {
        let mut t = Timers::default();
        t.set(1, Some(at(30)));
        t.set(2, Some(at(10)));
        t.set(3, Some(at(20)));
        assert_eq!(t.next(), Some(at(10)));
        // Replacing needs only the key: the old deadline goes.
        t.set(2, Some(at(40)));
        assert_eq!(t.next(), Some(at(20)));
        t.set(3, None);
        assert_eq!((t.get(3), t.get(1)), (None, Some(at(30))));
        assert_eq!(t.pop_due(at(29)), None);
        assert_eq!(t.pop_due(at(40)), Some(1));
        assert_eq!(t.pop_due(at(40)), Some(2));
        assert_eq!((t.pop_due(at(1000)), t.next()), (None, None));
    }

    #[test]
    fn ties_come_out_in_key_order() {
        let mut t = Timers::default();
        for k in [5, 1, 3] {
            t.set(k, Some(at(7)));
        }
        let out: Vec<_> = std::iter::from_fn(|| t.pop_due(at(7))).collect();
        assert_eq!(out, [1, 3, 5]);
    }
}
