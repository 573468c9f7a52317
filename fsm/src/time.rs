//! Time as the core sees it: passed in, never read.
//!
//! Two clocks come in with every input (see [`Now`]). Deadlines use the boot-time clock,
//! which keeps counting while a laptop is suspended, so a token that expires during a
//! suspend is refreshed as soon as the machine wakes. Wall-clock time is used only for
//! what people read (status lines) and for dumps that outlive the process.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point on the boot-time clock (Linux `CLOCK_BOOTTIME`), in milliseconds from an
/// arbitrary origin. Never goes backwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The instant `ms` milliseconds after the clock's origin.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the clock's origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Saturates at the end of time rather than overflowing: a deadline that far away
    /// never fires, which is what an absurd `expires_in` deserves.
    fn add(self, d: Duration) -> Instant {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;

    /// Saturates at the clock's origin.
    fn sub(self, d: Duration) -> Instant {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_sub(ms))
    }
}

/// Wall-clock time: milliseconds since the Unix epoch (UTC). Used for display and dumps
/// only; it may jump when the user or NTP sets the clock.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct WallTime(i64);

impl WallTime {
    /// The wall-clock time `ms` milliseconds after the Unix epoch.
    pub const fn from_unix_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch, rounded down.
    pub const fn as_unix_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

impl Add<Duration> for WallTime {
    type Output = WallTime;

    fn add(self, d: Duration) -> WallTime {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        WallTime(self.0.saturating_add(ms))
    }
}

impl fmt::Display for WallTime {
    /// RFC 3339 in UTC, to the second (the client renders local time itself).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s) = civil_from_unix(self.as_unix_secs());
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

/// Splits Unix seconds into UTC (year, month, day, hour, minute, second), using Howard
/// Hinnant's days-from-civil inverse (proleptic Gregorian calendar).
pub fn civil_from_unix(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // The casts below are of values already bounded by the arithmetic above
    // (day 1..=31, month 1..=12, and so on).
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// A duration for messages: whole seconds as `30 s`, anything else as `250 ms`.
pub fn span(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The present, on both clocks. Every input to the core comes with one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// For deadlines.
    pub boot: Instant,
    /// For display and dumps.
    pub wall: WallTime,
}

impl Now {
    /// Both clocks moved on to `boot` (never backwards), the wall clock by as much: time
    /// passing in a simulation.
    pub fn advanced_to(self, boot: Instant) -> Now {
        let delta = boot.saturating_since(self.boot);
        Now {
            boot: self.boot.max(boot),
            wall: self.wall + delta,
        }
    }

    /// The wall-clock time that corresponds to `at` on the boot clock, assuming the wall
    /// clock is not stepped in between (good enough for display).
    pub fn wall_at(&self, at: Instant) -> WallTime {
        let delta = i64::try_from(at.as_millis()).unwrap_or(i64::MAX)
            - i64::try_from(self.boot.as_millis()).unwrap_or(i64::MAX);
        WallTime(self.wall.0.saturating_add(delta))
    }

    /// The boot-clock instant that corresponds to wall-clock time `at` (saturating at the
    /// boot clock's origin for times before it).
    pub fn boot_at(&self, at: WallTime) -> Instant {
        let delta = at.0.saturating_sub(self.wall.0);
        if delta >= 0 {
            self.boot + Duration::from_millis(delta.unsigned_abs())
        } else {
            self.boot - Duration::from_millis(delta.unsigned_abs())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_conversion_matches_known_dates() {
        assert_eq!(civil_from_unix(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_from_unix(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil_from_unix(1_798_761_599), (2026, 12, 31, 23, 59, 59));
        assert_eq!(civil_from_unix(-1), (1969, 12, 31, 23, 59, 59));
    }

    #[test]
    fn spans_read_well() {
        assert_eq!(span(Duration::from_secs(30)), "30 s");
        assert_eq!(span(Duration::from_millis(250)), "250 ms");
        assert_eq!(span(Duration::from_millis(1500)), "1500 ms");
    }

    #[test]
    fn instant_arithmetic_saturates() {
        let t = Instant::from_millis(5);
        assert_eq!(t - Duration::from_millis(10), Instant::from_millis(0));
        assert_eq!(t + Duration::MAX, Instant::from_millis(u64::MAX));
    }

    #[test]
    fn clocks_map_both_ways() {
        let now = Now {
            boot: Instant::from_millis(10_000),
            wall: WallTime::from_unix_millis(1_700_000_000_000),
        };
        let later = now.boot + Duration::from_secs(60);
        assert_eq!(now.wall_at(later).as_unix_millis(), 1_700_000_060_000);
        assert_eq!(now.boot_at(now.wall_at(later)), later);
        assert_eq!(
            now.boot_at(WallTime::from_unix_millis(0)),
            Instant::from_millis(0)
        );
    }
}
