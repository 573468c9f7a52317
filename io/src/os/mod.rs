//! Linux system interfaces the driver needs and std lacks.
//!
//! - [`now`]: both clocks the core wants, boot time and wall time.
//! - [`BootTimer`]: a `timerfd` on `CLOCK_BOOTTIME`, armed to the core's next deadline.
//! - [`Signals`]: a `signalfd` for SIGCHLD, SIGTERM, SIGINT and SIGHUP.
//! - [`spawn`] and [`Children`]: `$SHELL -c` commands, killed and reaped by id.
//! - [`peer_uid`], [`getuid`], [`hung_up`]: who is on the other end of the control socket,
//!   and whether they are still there.
//! - [`connect_unix`], [`user_name`]: what the command-line client needs.
//! - [`local_offset`], [`daemonise`], [`set_backlog`], [`release_free_memory`]: the
//!   process itself (time zone, detaching, listen queues, the allocator).
//! - [`notify_ready`]: systemd's `READY=1`.
//! - [`touch`]: keep the socket file fresh so runtime-directory cleaners spare it.
//! - [`disable_core_dumps`]: tokens must never reach a core file.
//!
//! Start-up order matters: create [`Signals`] before any other thread exists (the signal
//! mask is inherited by threads, and a thread that does not block SIGTERM would die of
//! it instead of letting the signalfd report it). Every file descriptor the driver opens
//! must be close-on-exec so children inherit none of them: std's and mio's are, and so
//! are the ones made here.

/// Lets the poller watch a type through the descriptor in its `fd` field.
macro_rules! fd_source {
    ($t:ty) => {
        impl mio::event::Source for $t {
            fn register(
                &mut self,
                registry: &mio::Registry,
                token: mio::Token,
                interests: mio::Interest,
            ) -> std::io::Result<()> {
                let fd = std::os::fd::AsRawFd::as_raw_fd(&self.fd);
                mio::unix::SourceFd(&fd).register(registry, token, interests)
            }

            fn reregister(
                &mut self,
                registry: &mio::Registry,
                token: mio::Token,
                interests: mio::Interest,
            ) -> std::io::Result<()> {
                let fd = std::os::fd::AsRawFd::as_raw_fd(&self.fd);
                mio::unix::SourceFd(&fd).reregister(registry, token, interests)
            }

            fn deregister(&mut self, registry: &mio::Registry) -> std::io::Result<()> {
                let fd = std::os::fd::AsRawFd::as_raw_fd(&self.fd);
                mio::unix::SourceFd(&fd).deregister(registry)
            }
        }
    };
}
use fd_source;

mod process;
mod process_state;
mod signals;
mod timer;
mod unix;

use std::ffi::{CString, OsStr};
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;

use pizauth_fsm::config::MAX_CONFIG_BYTES;
use pizauth_fsm::{Instant, Now, WallTime};

pub use process::{Children, Reaped, run_captured, spawn, spawn_capturing};
pub use process_state::{daemonise, local_offset, release_free_memory, set_backlog};
pub use signals::{Signal, Signals};
pub use timer::BootTimer;
pub use unix::{connect_unix, user_name};

/// The present on both clocks: `CLOCK_BOOTTIME` (which keeps counting during suspend)
/// for deadlines and `CLOCK_REALTIME` for display, both in milliseconds.
pub fn now() -> Now {
    let boot = clock_millis(libc::CLOCK_BOOTTIME);
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
    // Linux since 2.6.39, so `ts` is always filled in.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    // `time_t` and `c_long` are i64 on 64-bit Linux, where the conversions do nothing,
    // and narrower on 32-bit targets, where they widen.
    #[allow(clippy::useless_conversion)]
    let (secs, nanos) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
    secs.saturating_mul(1000).saturating_add(nanos / 1_000_000)
}

/// Keeps tokens out of core files: sets `RLIMIT_CORE` to zero and marks the process
/// non-dumpable (which also stops other processes of the same user from attaching a
/// debugger or reading `/proc/<pid>/mem`).
pub fn disable_core_dumps() -> io::Result<()> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is a valid rlimit that the call only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: PR_SET_DUMPABLE takes plain integers and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The real user id of this process (asked once: the server checks it for every control
/// client, and it never changes).
pub fn getuid() -> u32 {
    static UID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    // SAFETY: getuid has no preconditions and cannot fail.
    *UID.get_or_init(|| unsafe { libc::getuid() })
}

/// The user id of the process on the other end of a connected Unix socket, as the
/// kernel recorded it when the connection was made (`SO_PEERCRED`).
pub fn peer_uid(socket: impl AsFd) -> io::Result<u32> {
    let fd = socket.as_fd();
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `fd` is open for the duration of the call (it is borrowed), and `cred` and
    // `len` are valid and writable, with `len` holding the size of `cred`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != mem::size_of::<libc::ucred>() {
        return Err(io::Error::other("short SO_PEERCRED answer"));
    }
    Ok(cred.uid)
}

/// Whether the peer of a connected stream socket has closed both directions (not just
/// shut down its writing half, as a control client does once its request is sent): it
/// will read no reply. Asked without waiting (`poll` with `POLLHUP`).
pub fn hung_up(socket: impl AsFd) -> bool {
    let mut p = libc::pollfd {
        fd: socket.as_fd().as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: `p` is one valid, writable pollfd whose descriptor is open for the duration
    // of the call (it is borrowed); a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

/// Tells systemd the service is ready (`READY=1`), if it asked to be told: when
/// `$NOTIFY_SOCKET` is unset or empty this does nothing.
pub fn notify_ready() -> io::Result<()> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(socket) if !socket.is_empty() => notify(&socket, "READY=1"),
        _ => Ok(()),
    }
}

/// Sends `state` (e.g. `READY=1` or `STOPPING=1`) as one datagram to a systemd
/// notification socket: a path, or an abstract socket if it starts with `@`.
pub fn notify(socket: &OsStr, state: &str) -> io::Result<()> {
    let sender = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(Path::new(socket))?,
    };
    let sent = sender.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::other("short write to the notification socket"));
    }
    Ok(())
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
