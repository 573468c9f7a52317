//! macOS and the BSDs: the signals the server handles, through a self-pipe.

use std::io;

use crate::os::Signal;

/// SIGCHLD, SIGTERM, SIGINT and SIGHUP, reported through a socket pair the poller
/// watches: signal-hook's handler writes to it, and [`read`](Self::read) reads what it
/// wrote. (There is no signalfd here; a handler is the portable way, and a handler's
/// only safe work is such a write.) Handlers are per process, so any thread may take a
/// signal; exec resets them, so children start with default dispositions, and
/// [`spawn`](crate::os::spawn) resets SIGPIPE and the signal mask.
///
/// Register it with mio for [`Interest::READABLE`](mio::Interest::READABLE) and call
/// [`read`](Self::read) when it is readable. Signals of one kind that arrive together
/// may be merged into one: a [`Signal::Child`] means "one or more children changed
/// state".
pub struct Signals {
    pipe: signal_hook_mio::v1_0::Signals,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals")
    }
}

impl Signals {
    /// Sets SIGPIPE to ignored (a peer that goes away makes a write fail with `EPIPE`
    /// instead of killing us) and installs the handlers, which replace the default
    /// actions of the handled signals (and an ignored SIGCHLD inherited from our parent,
    /// which would make the kernel reap children before we can learn how they exited).
    pub fn new() -> io::Result<Self> {
        // SAFETY: setting a disposition to SIG_IGN installs no handler code.
        if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
        let pipe = signal_hook_mio::v1_0::Signals::new(Signal::HANDLED)?;
        Ok(Signals { pipe })
    }

    /// Every signal reported since the last call. Returns an empty list when there is
    /// none.
    pub fn read(&mut self) -> Vec<Signal> {
        self.pipe.pending().filter_map(Signal::from_raw).collect()
    }
}

impl mio::event::Source for Signals {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.pipe.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.pipe.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        self.pipe.deregister(registry)
    }
}
