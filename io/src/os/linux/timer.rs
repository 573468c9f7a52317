//! Linux: a one-shot timer on the boot-time clock, as a pollable file descriptor
//! (`timerfd`), so that an idle server sleeps in the poller until its next deadline.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use pizauth_fsm::Instant;

/// A `timerfd` on `CLOCK_BOOTTIME` (non-blocking, close-on-exec), for the core's
/// `poll_timeout()`.
///
/// Register it with mio for [`Interest::READABLE`]; after every turn, [`arm`](Self::arm)
/// it with the core's next deadline. When it is readable, [`drain`](Self::drain) it and
/// give the core a tick. Deadlines are absolute boot-clock instants, so time spent
/// suspended counts and a deadline that passed during a suspend fires on resume; a
/// deadline already past fires at once.
#[derive(Debug)]
pub struct BootTimer {
    fd: OwnedFd,
    /// What the kernel timer is set to, when known: `Some(None)` disarmed,
    /// `Some(Some(t))` armed for `t`, `None` unknown (after a failed `arm`).
    armed: Option<Option<Instant>>,
}

impl BootTimer {
    /// A disarmed timer.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain integer arguments; the result is checked before use.
        let fd = unsafe {
            libc::timerfd_create(libc::CLOCK_BOOTTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(BootTimer {
            // SAFETY: `fd` was just opened and is owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            armed: Some(None),
        })
    }

    /// Sets the timer to fire at `at` on the boot clock, or disarms it for `None`. Does
    /// nothing when it is already set that way.
    pub fn arm(&mut self, at: Option<Instant>) -> io::Result<()> {
        if self.armed == Some(at) {
            return Ok(());
        }
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let mut value = zero;
        if let Some(at) = at {
            let ms = at.as_millis();
            value.tv_sec = libc::time_t::try_from(ms / 1000).unwrap_or(libc::time_t::MAX);
            // Below 1e9, so it fits any c_long.
            value.tv_nsec = ((ms % 1000) * 1_000_000) as libc::c_long;
            if value.tv_sec == 0 && value.tv_nsec == 0 {
                // All zeros would disarm; the clock's origin is long past anyway.
                value.tv_nsec = 1;
            }
        }
        let spec = libc::itimerspec {
            it_interval: zero,
            it_value: value,
        };
        // SAFETY: the fd is an open timerfd; `spec` is valid and only read; a null old
        // value is allowed.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc != 0 {
            self.armed = None;
            return Err(io::Error::last_os_error());
        }
        self.armed = Some(at);
        Ok(())
    }

    /// How long the poller may wait before the driver looks at the clocks again: never
    /// bounded here, since the timerfd itself wakes the poller at the deadline, suspend
    /// included.
    pub fn poll_timeout(&self, _now: Instant) -> Option<Duration> {
        None
    }

    /// Reads how many times the timer expired since the last read (0 or 1 for this
    /// one-shot timer), clearing its readiness. Once it has expired it is disarmed.
    pub fn drain(&mut self) -> io::Result<u64> {
        let mut count = [0u8; 8];
        loop {
            // SAFETY: the fd is an open timerfd and `count` is 8 writable bytes, the size
            // a timerfd read needs.
            let n =
                unsafe { libc::read(self.fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
            if n == 8 {
                self.armed = Some(None);
                return Ok(u64::from_ne_bytes(count));
            }
            if n >= 0 {
                return Err(io::Error::other("short read from the timer"));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(err),
            }
        }
    }
}

super::fd_source!(BootTimer);
