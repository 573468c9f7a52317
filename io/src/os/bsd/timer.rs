//! macOS and the BSDs: the core's next deadline as the poller's timeout.

use std::io;
use std::time::Duration;

use pizauth_fsm::Instant;

/// The longest the poller waits before the driver reads the boot clock again. A kqueue
/// timeout need not count time spent suspended, so a deadline that passed during a
/// suspend is noticed at most this long after the resume.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// The core's next deadline, kept for the poller's timeout: these systems have no
/// timerfd. It has no descriptor; registering it with mio does nothing, and it never
/// becomes readable. Deadlines are absolute boot-clock instants, as on Linux.
#[derive(Debug, Default)]
pub struct BootTimer {
    at: Option<Instant>,
}

impl BootTimer {
    /// A disarmed timer.
    pub fn new() -> io::Result<Self> {
        Ok(BootTimer::default())
    }

    /// Sets the deadline to `at` on the boot clock, or none for `None`.
    pub fn arm(&mut self, at: Option<Instant>) -> io::Result<()> {
        self.at = at;
        Ok(())
    }

    /// How long the poller may wait, at `now`, before the driver must look at the
    /// clocks again: until the deadline (at once if it has passed), at most
    /// [`MAX_SLEEP`]; `None` (no limit) while disarmed.
    pub fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        let at = self.at?;
        let ms = at.as_millis().saturating_sub(now.as_millis());
        Some(Duration::from_millis(ms).min(MAX_SLEEP))
    }

    /// Nothing to read: the timer is never readable.
    pub fn drain(&mut self) -> io::Result<u64> {
        Ok(0)
    }
}

impl mio::event::Source for BootTimer {
    fn register(
        &mut self,
        _registry: &mio::Registry,
        _token: mio::Token,
        _interests: mio::Interest,
    ) -> io::Result<()> {
        Ok(())
    }

    fn reregister(
        &mut self,
        _registry: &mio::Registry,
        _token: mio::Token,
        _interests: mio::Interest,
    ) -> io::Result<()> {
        Ok(())
    }

    fn deregister(&mut self, _registry: &mio::Registry) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn the_poll_timeout_runs_to_the_deadline_and_no_further_than_the_cap() {
        let mut timer = BootTimer::new().expect("timer");
        assert_eq!(timer.poll_timeout(at(1_000)), None, "disarmed: no limit");
        timer.arm(Some(at(1_250))).expect("arm");
        assert_eq!(
            timer.poll_timeout(at(1_000)),
            Some(Duration::from_millis(250))
        );
        // A deadline hours away: wake within the cap, to read the boot clock after a
        // possible suspend.
        timer.arm(Some(at(1_000 + 3_600_000))).expect("arm");
        assert_eq!(timer.poll_timeout(at(1_000)), Some(MAX_SLEEP));
        // Passed (during a suspend, say): poll without waiting.
        timer.arm(Some(at(500))).expect("arm");
        assert_eq!(timer.poll_timeout(at(1_000)), Some(Duration::ZERO));
        assert_eq!(timer.drain().expect("drain"), 0);
        timer.arm(None).expect("disarm");
        assert_eq!(timer.poll_timeout(at(1_000)), None);
    }
}
