//! The system interfaces the driver needs and std lacks: every call that differs between
//! the systems pizauth runs on is here, one implementation per system behind `cfg`
//! (`linux/`; `bsd/` for macOS, FreeBSD and OpenBSD), and nothing outside this module
//! names a system.
//!
//! - [`now`]: both clocks the core wants, boot time and wall time.
//! - [`BootTimer`]: the core's next deadline. Linux: a `timerfd` on `CLOCK_BOOTTIME`,
//!   which wakes the poller itself, so an idle server never wakes early. Elsewhere: the
//!   poller's timeout ([`BootTimer::poll_timeout`]), at most 60 s so that a suspend is
//!   noticed soon after resume.
//! - [`Signals`]: SIGCHLD, SIGTERM, SIGINT and SIGHUP as a pollable source (a
//!   `signalfd` on Linux, a self-pipe elsewhere).
//! - [`spawn`] and [`Children`]: `$SHELL -c` commands, killed and reaped by id.
//! - [`peer_uid`], [`getuid`], [`hung_up`]: who is on the other end of the control socket
//!   (`SO_PEERCRED` on Linux, `getpeereid` elsewhere), and whether they are still there.
//! - [`connect_unix`], [`user_name`]: what the command-line client needs.
//! - [`local_offset`], [`daemonise`], [`set_backlog`], [`release_free_memory`]: the
//!   process itself (time zone, detaching, listen queues, the allocator).
//! - [`notify_ready`]: systemd's `READY=1` (Linux only).
//! - [`touch`]: keep the socket file fresh so runtime-directory cleaners spare it.
//! - [`disable_core_dumps`]: tokens must never reach a core file or a debugger.
//! - [`restrict_process`] and [`confine`]: OpenBSD's pledge and unveil.
//!
//! Start-up order matters: create [`Signals`] before any other thread exists (the signal
//! mask is inherited by threads, and a thread that does not block SIGTERM would die of
//! it instead of letting the signalfd report it). Every file descriptor the driver opens
//! must be close-on-exec so children inherit none of them: std's and mio's are, and so
//! are the ones made here.

#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "freebsd",
    target_os = "openbsd"
)))]
compile_error!("pizauth runs on Linux, macOS, FreeBSD and OpenBSD: io/src/os has no other port");

#[cfg(any(target_os = "macos", target_os = "freebsd", target_os = "openbsd"))]
mod bsd;
#[cfg(target_os = "linux")]
mod linux;
mod process;
mod process_state;
mod unix;

#[cfg(any(target_os = "macos", target_os = "freebsd", target_os = "openbsd"))]
use bsd as sys;
#[cfg(target_os = "linux")]
use linux as sys;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use pizauth_fsm::config::MAX_CONFIG_BYTES;
use pizauth_fsm::{Instant, Now, WallTime};

pub use process::{Children, Reaped, run_captured, spawn, spawn_capturing};
pub use process_state::{daemonise, local_offset, release_free_memory, set_backlog};
pub use sys::{BootTimer, Signals};
pub use unix::{connect_unix, user_name};

/// A signal the server acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGCHLD: a child changed state; reap.
    Child,
    /// SIGTERM: shut down.
    Terminate,
    /// SIGINT: shut down.
    Interrupt,
    /// SIGHUP: reload the configuration.
    Hangup,
}

impl Signal {
    /// The signals [`Signals`] delivers.
    const HANDLED: [libc::c_int; 4] = [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

    /// The signal of this number, if it is one the server handles.
    fn from_raw(signal: libc::c_int) -> Option<Signal> {
        match signal {
            libc::SIGCHLD => Some(Signal::Child),
            libc::SIGTERM => Some(Signal::Terminate),
            libc::SIGINT => Some(Signal::Interrupt),
            libc::SIGHUP => Some(Signal::Hangup),
            _ => None,
        }
    }
}

/// The present on both clocks: a boot clock, which keeps counting while the machine is
/// suspended (`CLOCK_BOOTTIME` on Linux and OpenBSD, `CLOCK_MONOTONIC` on macOS and
/// FreeBSD), for deadlines, and `CLOCK_REALTIME` for display, both in milliseconds.
pub fn now() -> Now {
    let boot = clock_millis(sys::BOOT_CLOCK);
    Now {
        boot: Instant::from_millis(u64::try_from(boot).unwrap_or(0)),
        wall: WallTime::from_unix_millis(clock_millis(libc::CLOCK_REALTIME)),
    }
}

/// Reads a clock, in milliseconds.
fn clock_millis(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the only memory the call touches.
    // It fails only for an unknown clock or a bad pointer: both clocks exist on every
    // system supported (Linux since 2.6.39), so `ts` is always filled in.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    // `time_t` and `c_long` are i64 on 64-bit systems, where the conversions do nothing,
    // and narrower on 32-bit targets, where they widen.
    #[allow(clippy::useless_conversion)]
    let (secs, nanos) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
    secs.saturating_mul(1000).saturating_add(nanos / 1_000_000)
}

/// Keeps tokens out of core files and debuggers: sets `RLIMIT_CORE` to zero and, where
/// the system has a way to say so, forbids tracing (Linux: the process is marked
/// non-dumpable, which also stops other processes of the same user from attaching a
/// debugger or reading `/proc/<pid>/mem`; FreeBSD: `PROC_TRACE_CTL`).
pub fn disable_core_dumps() -> io::Result<()> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is a valid rlimit that the call only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        return Err(io::Error::last_os_error());
    }
    sys::forbid_tracing()
}

/// The real user id of this process (asked once: the server checks it for every control
/// client, and it never changes).
pub fn getuid() -> u32 {
    static UID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    // SAFETY: getuid has no preconditions and cannot fail.
    *UID.get_or_init(|| unsafe { libc::getuid() })
}

/// The user id of the process on the other end of a connected Unix socket, as the
/// kernel recorded it when the connection was made.
pub fn peer_uid(socket: impl AsFd) -> io::Result<u32> {
    sys::peer_uid(socket)
}

/// Whether the peer of a connected stream socket has closed both directions (not just
/// shut down its writing half, as a control client does once its request is sent): it
/// will read no reply. Asked without waiting: `poll` reports `POLLHUP` once the socket
/// can neither receive nor send. It is asked about writing, because macOS's poll watches
/// only the events asked for (with none it reports nothing), and it turns an end of the
/// sending side, which only the peer's close causes, into `POLLHUP`; asking about reading
/// would report the half-close of every client as a hang-up there.
pub fn hung_up(socket: impl AsFd) -> bool {
    let mut p = libc::pollfd {
        fd: socket.as_fd().as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `p` is one valid, writable pollfd whose descriptor is open for the duration
    // of the call (it is borrowed); a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

/// Raises this process's soft limit on open descriptors to `want`, as far as its hard
/// limit allows (it never lowers it), and returns the soft limit then in force. Linux
/// starts processes with 1,024; macOS with 256 and OpenBSD's default class with 512,
/// fewer than the server's connection caps add up to.
pub fn raise_descriptor_limit(want: u64) -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // rlim_t is unsigned on Linux and macOS and signed on the BSDs, where a negative
    // value (RLIM_INFINITY is not one) does not occur.
    #[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
    let (soft, hard) = (
        u64::try_from(limit.rlim_cur).unwrap_or(0),
        u64::try_from(limit.rlim_max).unwrap_or(0),
    );
    let target = want.min(hard);
    if soft >= target {
        return Ok(soft);
    }
    #[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
    let raised = libc::rlim_t::try_from(target).unwrap_or(limit.rlim_max);
    limit.rlim_cur = raised;
    // SAFETY: `limit` is a valid rlimit that the call only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(target)
}

/// Tells systemd the service is ready (`READY=1`), if it asked to be told: when
/// `$NOTIFY_SOCKET` is unset or empty, and off Linux, this does nothing.
pub fn notify_ready() -> io::Result<()> {
    sys::notify_ready()
}

/// Restricts what the process may ever do to what some command of pizauth needs, as the
/// first thing it does: OpenBSD's `pledge`; nothing elsewhere.
pub fn restrict_process() -> io::Result<()> {
    sys::restrict_process()
}

/// Confines the server, once its sockets are bound and it has detached, to the files
/// and system calls it needs from then on: OpenBSD's `unveil` and `pledge`, as pizauth
/// 1.1.0 does there; nothing elsewhere.
pub fn confine(config: &Path, socket: &Path) -> io::Result<()> {
    sys::confine(config, socket)
}

/// Sets a file's access and modification times to now, without following a symlink
/// (`utimensat` with `UTIME_NOW` and `AT_SYMLINK_NOFOLLOW`).
pub fn touch(path: &Path) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a nul byte"))?;
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: libc::UTIME_NOW,
    };
    let times = [now, now];
    // SAFETY: `path` is a nul-terminated string and `times` an array of two timespecs,
    // both valid for the duration of the call, which only reads them.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads the config file: at most [`MAX_CONFIG_BYTES`] of valid UTF-8. Errors are one
/// line starting `config file PATH`.
///
/// With `again` (a reload), only a regular file is read: the loop must never block on a
/// FIFO with no writer, and a pipe or a device (`-c <(gpg -d ...)` at start) would give an
/// empty or different text, and an empty text would drop every account. Opening without
/// blocking and checking what was opened is free of races. At start any file is read, a
/// pipe to its end.
pub fn read_config(path: &Path, again: bool) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |why: String| format!("config file {} {why}", path.display());
    let flags = if again { libc::O_NONBLOCK } else { 0 };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => fail("not found".into()),
            _ => fail(format!("cannot be read: {e}")),
        })?;
    if again {
        let meta = file
            .metadata()
            .map_err(|e| fail(format!("cannot be read: {e}")))?;
        if !meta.is_file() {
            return Err(fail(
                "is not a regular file, so it cannot be read again: restart the server to read a pipe or a device"
                    .into(),
            ));
        }
    }
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_CONFIG_BYTES).unwrap_or(u64::MAX);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot be read: {e}")))?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "is larger than the limit of {} KiB",
            MAX_CONFIG_BYTES >> 10
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        fail(format!("is not valid UTF-8 (byte {at})"))
    })
}

#[cfg(test)]
mod tests;

// The other systems' timer is plain Rust over the boot clock: test it here too.
#[cfg(all(test, target_os = "linux"))]
#[path = "bsd/timer.rs"]
mod poll_timer;
