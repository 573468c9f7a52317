//! What the core's deadlines are for: the keys of its [`crate::timers::Timers`] queue.

use crate::event::{ChildId, ClientId, RequestId};

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

/// The core's queue.
pub(crate) type Timers = crate::timers::Timers<TimerKey>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Instant;

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
