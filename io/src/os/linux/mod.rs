//! Linux: `timerfd` and `signalfd` for the poller, `SO_PEERCRED`, `prctl`, and systemd's
//! notification socket.

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

mod signals;
mod timer;

use std::ffi::OsStr;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;

pub use signals::Signals;
pub use timer::BootTimer;

/// The clock every deadline is on: it keeps counting while the machine is suspended
/// (`CLOCK_MONOTONIC` does not on Linux), and timerfds can be set on it.
pub(super) const BOOT_CLOCK: libc::clockid_t = libc::CLOCK_BOOTTIME;

/// Marks the process non-dumpable, which also stops other processes of the same user
/// from attaching a debugger or reading `/proc/<pid>/mem`.
pub(super) fn forbid_tracing() -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes plain integers and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The user id of the process on the other end of a connected Unix socket, as the
/// kernel recorded it when the connection was made (`SO_PEERCRED`).
pub(super) fn peer_uid(socket: impl AsFd) -> io::Result<u32> {
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

/// Tells systemd the service is ready (`READY=1`), if it asked to be told: when
/// `$NOTIFY_SOCKET` is unset or empty this does nothing.
pub(super) fn notify_ready() -> io::Result<()> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(socket) if !socket.is_empty() => notify(&socket, "READY=1"),
        _ => Ok(()),
    }
}

/// Sends `state` (e.g. `READY=1` or `STOPPING=1`) as one datagram to a systemd
/// notification socket: a path, or an abstract socket if it starts with `@`.
pub(super) fn notify(socket: &OsStr, state: &str) -> io::Result<()> {
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

/// Nothing to do on Linux: see the OpenBSD implementation.
pub(super) fn restrict_process() -> io::Result<()> {
    Ok(())
}

/// Nothing to do on Linux: see the OpenBSD implementation.
pub(super) fn confine(_config: &Path, _socket: &Path) -> io::Result<()> {
    Ok(())
}

/// A Unix stream socket, close-on-exec from the start.
pub(super) fn stream_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain system call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Linux's `sockaddr_un` has no length field.
pub(super) fn set_address_length(_addr: &mut libc::sockaddr_un, _len: usize) {}

/// Connects `socket` to `addr`, waiting at most `timeout`: Linux applies a socket's send
/// timeout to `connect` on Unix sockets (it then fails with `EAGAIN`), so with the send
/// timeout set this is one plain `connect`, and the request follows at once.
pub(super) fn connect_within(
    socket: &impl AsRawFd,
    addr: &libc::sockaddr_un,
    len: libc::socklen_t,
    _timeout: std::time::Duration,
) -> io::Result<()> {
    // SAFETY: `addr` is a valid `sockaddr_un` of at least `len` bytes, and the caller
    // keeps the socket open for the duration of the call.
    let rc = unsafe { libc::connect(socket.as_raw_fd(), (&raw const *addr).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
