//! macOS, FreeBSD and OpenBSD: the poller's own timeout for deadlines, signals through a
//! self-pipe, `getpeereid`, and each system's own ways to keep out debuggers and to
//! confine the server.
//!
//! What differs from Linux, and why:
//! - No timerfd: the loop's poll timeout is the time to the next deadline, capped at
//!   [`timer::MAX_SLEEP`], because a kqueue timeout may not count time spent suspended;
//!   the cap makes the server look at the boot clock again soon after a resume.
//! - The boot clock ([`BOOT_CLOCK`]) is one that counts time spent suspended:
//!   `CLOCK_MONOTONIC` on macOS ("will continue to increment while the system is
//!   asleep", clock_gettime(3)) and on FreeBSD ("increments in SI seconds, even while the
//!   system is suspended", clock_gettime(2); its `CLOCK_BOOTTIME` is an alias of it in
//!   current releases, and of `CLOCK_UPTIME`, which stops, in older ones), and
//!   `CLOCK_BOOTTIME` on OpenBSD (its `CLOCK_MONOTONIC` makes no such promise).
//! - No signalfd: a signal handler writes to a pipe the poller watches (signal-hook).
//! - No `SO_PEERCRED`: `getpeereid`, which gives the same answer (the peer's effective
//!   uid when it connected).
//! - Tracing: FreeBSD's `procctl(PROC_TRACE_CTL)`; macOS and OpenBSD keep core dumps off
//!   through the core-size limit alone (OpenBSD's pledge also forbids ptrace).
//! - No systemd.

mod signals;
mod timer;

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

pub use signals::Signals;
pub use timer::BootTimer;

#[cfg(any(target_os = "macos", target_os = "freebsd"))]
pub(super) const BOOT_CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;
#[cfg(target_os = "openbsd")]
pub(super) const BOOT_CLOCK: libc::clockid_t = libc::CLOCK_BOOTTIME;

/// Stops other processes of the same user from attaching a debugger to the server (and
/// so from reading its tokens), where the system has a way to say so.
pub(super) fn forbid_tracing() -> io::Result<()> {
    #[cfg(target_os = "freebsd")]
    {
        let mut disable: libc::c_int = libc::PROC_TRACE_CTL_DISABLE;
        // SAFETY: P_PID with id 0 names this process; `disable` is a valid c_int that
        // the call only reads, as PROC_TRACE_CTL wants.
        let rc = unsafe {
            libc::procctl(
                libc::P_PID,
                0,
                libc::PROC_TRACE_CTL,
                (&raw mut disable).cast(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The effective user id of the process on the other end of a connected Unix socket,
/// as the kernel recorded it when the connection was made (`getpeereid`).
pub(super) fn peer_uid(socket: impl AsFd) -> io::Result<u32> {
    let fd = socket.as_fd();
    let (mut uid, mut gid): (libc::uid_t, libc::gid_t) = (0, 0);
    // SAFETY: `fd` is open for the duration of the call (it is borrowed), and `uid` and
    // `gid` are valid and writable.
    if unsafe { libc::getpeereid(fd.as_raw_fd(), &mut uid, &mut gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(uid)
}

/// Nothing to do: systemd is Linux's.
pub(super) fn notify_ready() -> io::Result<()> {
    Ok(())
}

/// A Unix stream socket, close-on-exec (macOS has no `SOCK_CLOEXEC`: the flag is set
/// right after, and no other thread of the client can exec in between).
pub(super) fn stream_socket() -> io::Result<OwnedFd> {
    #[cfg(target_os = "macos")]
    let kind = libc::SOCK_STREAM;
    #[cfg(not(target_os = "macos"))]
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    // SAFETY: plain system call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, kind, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    #[cfg(target_os = "macos")]
    // SAFETY: F_SETFD on an open descriptor, with a plain integer.
    if unsafe { libc::fcntl(socket.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

/// These systems' `sockaddr_un` starts with its own length.
pub(super) fn set_address_length(addr: &mut libc::sockaddr_un, len: usize) {
    addr.sun_len = u8::try_from(len).unwrap_or(u8::MAX);
}

/// Connects `socket` to `addr`, waiting at most `timeout`. These systems do not apply
/// the send timeout to `connect`, so it is made without blocking and waited for with
/// `poll`; the socket is blocking again afterwards.
pub(super) fn connect_within(
    socket: &impl AsRawFd,
    addr: &libc::sockaddr_un,
    len: libc::socklen_t,
    timeout: std::time::Duration,
) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL on an open descriptor, with plain integers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `addr` is a valid `sockaddr_un` of at least `len` bytes, and the caller
    // keeps the socket open for the duration of the call.
    let rc = unsafe { libc::connect(fd, (&raw const *addr).cast(), len) };
    let connected = if rc == 0 {
        Ok(())
    } else {
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINPROGRESS | libc::EAGAIN) => wait_connected(fd, timeout),
            _ => Err(err),
        }
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    connected
}

/// Waits up to `timeout` for a connection begun without blocking, and reports how it
/// ended (`ETIMEDOUT` if it has not).
fn wait_connected(fd: libc::c_int, timeout: std::time::Duration) -> io::Result<()> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid, writable pollfd of an open descriptor.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n > 0 {
            break;
        }
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let mut error: libc::c_int = 0;
    let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `error` and `size` are valid and writable, `size` holding the size of
    // `error`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut error).cast(),
            &mut size,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    match error {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// What every command may do at most, from its first instruction (OpenBSD's pledge;
/// nothing elsewhere): pizauth 1.1.0's set less `tmppath` and `ps`, which no command of
/// this one uses. The server narrows it in [`confine`].
pub(super) fn restrict_process() -> io::Result<()> {
    #[cfg(target_os = "openbsd")]
    openbsd::pledge(c"stdio rpath wpath cpath inet fattr flock unix dns proc exec unveil")?;
    Ok(())
}

/// Confines the running server to what it needs from here on (OpenBSD's unveil and
/// pledge; nothing elsewhere).
pub(super) fn confine(config: &std::path::Path, socket: &std::path::Path) -> io::Result<()> {
    #[cfg(target_os = "openbsd")]
    openbsd::confine(config, socket)?;
    let _ = (config, socket);
    Ok(())
}

#[cfg(target_os = "openbsd")]
mod openbsd {
    use std::ffi::{CStr, CString, OsStr};
    use std::io;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// See [`super::confine`]. The paths the server uses once it runs, as pizauth 1.1.0
    /// unveils them, and then a pledge without `wpath` (the server writes no file) and
    /// without `unveil`, so neither can be widened again:
    /// - the config file, read again on `reload`: `r`;
    /// - the control socket: `rwc` (touched every 6 hours, removed at exit);
    /// - the shells commands run through, `$SHELL` and `/bin/sh`: `rx`, and the run-time
    ///   linker a dynamically linked shell needs: `r`;
    /// - `$SSL_CERT_FILE`, if set, read when the first TLS connection is made: `r`;
    /// - the resolver's files, for host names of token endpoints: `r`;
    /// - syslog's socket: `rw`.
    pub(super) fn confine(config: &Path, socket: &Path) -> io::Result<()> {
        unveil(config.as_os_str(), c"r")?;
        unveil(socket.as_os_str(), c"rwc")?;
        // Optional paths: one that does not exist (a $SHELL or $SSL_CERT_FILE in a
        // directory that is not there) is left out rather than failing the start.
        let mut optional: Vec<(std::ffi::OsString, &CStr)> = Vec::new();
        if let Some(shell) = std::env::var_os("SHELL").filter(|s| !s.is_empty()) {
            optional.push((shell, c"rx"));
        }
        optional.push(("/bin/sh".into(), c"rx"));
        // The run-time linker: exec looks a dynamically linked program's interpreter up
        // before it clears the unveiled paths (a $SHELL from ports, bash or zsh, is one).
        optional.push(("/usr/libexec/ld.so".into(), c"r"));
        if let Some(bundle) = std::env::var_os(crate::tls::SSL_CERT_FILE).filter(|s| !s.is_empty())
        {
            optional.push((bundle, c"r"));
        }
        for file in ["/etc/resolv.conf", "/etc/hosts"] {
            optional.push((file.into(), c"r"));
        }
        // syslog's socket, should the logger have to connect again.
        optional.push(("/dev/log".into(), c"rw"));
        for (path, permissions) in optional {
            match unveil(&path, permissions) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => (),
                other => other?,
            }
        }
        // SAFETY: two null pointers lock the list of unveiled paths, as unveil(2) says.
        if unsafe { libc::unveil(std::ptr::null(), std::ptr::null()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        pledge(c"stdio rpath cpath fattr unix inet dns proc exec")
    }

    fn unveil(path: &OsStr, permissions: &CStr) -> io::Result<()> {
        let path = CString::new(path.as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a nul byte"))?;
        // SAFETY: both are nul-terminated strings that live for the duration of the call.
        if unsafe { libc::unveil(path.as_ptr(), permissions.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub(super) fn pledge(promises: &CStr) -> io::Result<()> {
        // SAFETY: a nul-terminated string that lives for the duration of the call; a null
        // execpromises leaves the commands the server runs unrestricted.
        if unsafe { libc::pledge(promises.as_ptr(), std::ptr::null()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
