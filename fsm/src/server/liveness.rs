//! The liveness invariant (checked by property tests and fuzz runs after every step):
//! every account is at rest, or waits for something that is sure to happen.

use super::account::{Device, Next, State, Step};
use super::discovery::{IssuerState, Side, Want};
use super::{AccountId, Server, Slot};

impl Server {
    /// Panics unless account `id` is at rest (no token; a token with its deadline; failed
    /// or pending, waiting for the user) or has a request in flight, a child running, a
    /// deadline it earned by a failed attempt, or a place in the queue of an issuer whose
    /// metadata is being fetched.
    pub(super) fn check_liveness(&self, id: AccountId, slot: &Slot) {
        let name = &slot.config.name;
        match &slot.state {
            State::Unauthorised | State::Failed(_) | State::Pending(_) => (),
            State::Discovering(_) => assert!(
                self.queued_for_issuer(id, slot),
                "{name}: discovering, but not queued on its issuer"
            ),
            State::Exchanging(e) => match e.step {
                Step::InFlight(_) => (),
                Step::RetryAt(_) => assert!(
                    e.attempt >= 1,
                    "{name}: waits to retry an exchange that was never sent"
                ),
                Step::Discovering => assert!(
                    self.queued_for_issuer(id, slot),
                    "{name}: waits for metadata it is not queued for"
                ),
            },
            State::Device(Device::Polling(p)) if p.step == Step::Discovering => assert!(
                self.queued_for_issuer(id, slot),
                "{name}: polls once metadata comes that it is not queued for"
            ),
            State::Device(Device::Requesting(_) | Device::Polling(_)) => (),
            State::Active(a) if a.next == Next::Discovering => assert!(
                self.queued_for_issuer(id, slot),
                "{name}: waits for metadata to refresh, but is not queued for it"
            ),
            State::Active(_) | State::Refreshing(_) => (),
        }
    }

    /// Whether account `id` waits in its issuer's queue.
    fn queued_for_issuer(&self, id: AccountId, slot: &Slot) -> bool {
        let Some(issuer) = &slot.config.issuer else {
            return false;
        };
        match self.issuers.get(issuer.as_str()) {
            Some(IssuerState::Fetching(waiters, _)) => waiters
                .iter()
                .any(|(w, x)| *w == id && matches!(x, Want::Account)),
            _ => false,
        }
    }

    /// Every issuer whose metadata accounts wait for is being fetched, and none is asked
    /// again before the hold of its last unusable answer.
    pub(super) fn check_issuers(&self) {
        for (issuer, state) in &self.issuers {
            if let IssuerState::Fetching(waiters, held) = state {
                // The request-rate bound, for issuers: not asked again before the hold
                // of an answer that gave no usable metadata.
                for s in self.side.values() {
                    if let (
                        Side::Discovery {
                            issuer: i, sent, ..
                        },
                        Some(held),
                    ) = (s, held)
                        && i.as_str() == issuer
                    {
                        assert!(
                            sent >= held,
                            "the metadata of {issuer} was asked for again before refresh_retry"
                        );
                    }
                }
                let fetching = self.side.values().any(
                    |s| matches!(s, Side::Discovery { issuer: i, .. } if i.as_str() == issuer),
                );
                assert!(
                    fetching || waiters.is_empty(),
                    "accounts wait for the metadata of {issuer}, which nobody fetches"
                );
            }
        }
    }
}
