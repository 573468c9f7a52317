//! Linux: the signals the server handles, as a pollable file descriptor (`signalfd`).

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::os::Signal;

/// A `signalfd` (non-blocking, close-on-exec) for SIGCHLD, SIGTERM, SIGINT and SIGHUP.
///
/// [`new`](Self::new) blocks those signals in the calling thread, so the kernel queues
/// them for the signalfd instead of running their default actions. The mask is per
/// thread and inherited by threads started later, so create this on the main thread
/// before any other thread exists: a thread without the mask would be chosen to take
/// process-wide signals, and SIGTERM would kill the process unannounced. Children must
/// not inherit the mask (nor ignored SIGPIPE): [`spawn`](crate::os::spawn) resets both.
///
/// Register it with mio for [`Interest::READABLE`] and call [`read`](Self::read) when it
/// is readable. Signals of one kind that arrive together are merged into one by the
/// kernel: a [`Signal::Child`] means "one or more children changed state".
#[derive(Debug)]
pub struct Signals {
    fd: OwnedFd,
}

impl Signals {
    /// Blocks the handled signals in this thread, sets SIGPIPE to ignored (a peer that
    /// goes away makes a write fail with `EPIPE` instead of killing us) and SIGCHLD to
    /// its default (an ignored SIGCHLD inherited from our parent would make the kernel
    /// reap children before we can learn how they exited), and opens the signalfd.
    pub fn new() -> io::Result<Self> {
        // SAFETY: an all-zero sigset_t is a valid value to hand to sigemptyset.
        let mut set: libc::sigset_t = unsafe { mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t; the signal numbers are valid constants.
        unsafe {
            libc::sigemptyset(&mut set);
            for signal in Signal::HANDLED {
                libc::sigaddset(&mut set, signal);
            }
        }
        // SAFETY: `set` is initialised and only read; a null old mask is allowed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: setting a disposition to SIG_IGN or SIG_DFL installs no handler code.
        unsafe {
            if libc::signal(libc::SIGPIPE, libc::SIG_IGN) == libc::SIG_ERR
                || libc::signal(libc::SIGCHLD, libc::SIG_DFL) == libc::SIG_ERR
            {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: -1 asks for a new signalfd; `set` is initialised and only read.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Signals {
            // SAFETY: `fd` was just opened and is owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Every signal queued since the last call, in the order the kernel reports them.
    /// Returns an empty list when there is none; stops early only on an error that a
    /// valid signalfd does not produce.
    pub fn read(&mut self) -> Vec<Signal> {
        let mut signals = Vec::new();
        loop {
            // SAFETY: an all-zero signalfd_siginfo is a valid value (plain integers).
            let mut info: libc::signalfd_siginfo = unsafe { mem::zeroed() };
            let size = mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: the fd is an open signalfd and `info` is `size` writable bytes.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut info).cast(), size) };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if usize::try_from(n) != Ok(size) {
                return signals;
            }
            if let Some(signal) = i32::try_from(info.ssi_signo)
                .ok()
                .and_then(Signal::from_raw)
            {
                signals.push(signal);
            }
        }
    }
}

super::fd_source!(Signals);
