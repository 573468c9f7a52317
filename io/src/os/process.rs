//! Child processes: `$SHELL -c` commands, killed and reaped by the core's ids.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Read};
use std::mem;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};

use pizauth_fsm::Secret;
use pizauth_fsm::event::{ChildId, ExitStatus, MAX_CAPTURE_BYTES};

/// The shell used when `$SHELL` is unset or empty.
const DEFAULT_SHELL: &str = "/bin/sh";

/// Runs `$SHELL -c command` (`/bin/sh` if `SHELL` is unset or empty) with `env` added to
/// our environment.
///
/// The child gets stdin and stdout from `/dev/null` and our stderr; an empty signal
/// mask and the default SIGPIPE action (ours are set for [`Signals`](super::Signals));
/// no `NOTIFY_SOCKET` (it is not the service's main process); and a process group of its
/// own, so that [`Children::kill`] also reaches whatever the shell started. It inherits
/// no other file descriptor as long as every descriptor the driver opens is close-on-exec
/// (std's and mio's are).
pub fn spawn(command: &str, env: &[(String, String)]) -> io::Result<Child> {
    spawn_with(&shell(), command, env, false)
}

/// [`spawn`], but with stdout on a non-blocking pipe whose contents
/// [`Children::reap`] (or [`run_captured`]) collects when the child ends.
pub fn spawn_capturing(command: &str, env: &[(String, String)]) -> io::Result<Child> {
    let child = spawn_with(&shell(), command, env, true)?;
    if let Some(out) = &child.stdout {
        set_nonblocking(out.as_raw_fd())?;
    }
    Ok(child)
}

/// `$SHELL`, or `/bin/sh` if unset or empty.
fn shell() -> OsString {
    std::env::var_os("SHELL")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| OsString::from(DEFAULT_SHELL))
}

fn set_nonblocking(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own (the child's stdout pipe), plain integers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whatever a captured child left in its stdout pipe, up to
/// [`MAX_CAPTURE_BYTES`](pizauth_fsm::event::MAX_CAPTURE_BYTES); never blocks.
fn collect(child: &mut Child) -> Option<Secret<Vec<u8>>> {
    let out = child.stdout.as_mut()?;
    let mut bytes = Secret::new(Vec::new());
    let mut buf = [0u8; 4096];
    while bytes.expose().len() < MAX_CAPTURE_BYTES {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = MAX_CAPTURE_BYTES - bytes.expose().len();
                bytes.expose_mut().extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => (),
            Err(_) => break,
        }
    }
    buf.fill(0);
    Some(bytes)
}

/// Runs `command` as [`spawn_capturing`] does and waits for it, at most `timeout`
/// (then kills it): for start-up, before the event loop exists. Returns how it ended
/// and what it printed.
pub fn run_captured(
    command: &str,
    env: &[(String, String)],
    timeout: std::time::Duration,
) -> io::Result<(ExitStatus, Option<Secret<Vec<u8>>>)> {
    let mut child = spawn_capturing(command, env)?;
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let out = collect(&mut child);
            return Ok((exit_status(status), out));
        }
        if start.elapsed() >= timeout {
            if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: plain integers; the child is not reaped, so its pid (and
                // process group id) cannot have been reused.
                unsafe { libc::killpg(pgid, libc::SIGKILL) };
            }
            let status = child.wait()?;
            return Ok((exit_status(status), None));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// [`spawn`] with an explicit shell.
fn spawn_with(
    shell: &OsString,
    command: &str,
    env: &[(String, String)],
    capture: bool,
) -> io::Result<Child> {
    let mut cmd = Command::new(shell);
    cmd.arg("-c")
        .arg(command)
        .env_remove("NOTIFY_SOCKET")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::inherit())
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe functions may be called; it calls sigemptyset, pthread_sigmask
    // and signal, which are, touches only its own stack, and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = mem::zeroed();
            libc::sigemptyset(&mut set);
            let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            if libc::signal(libc::SIGPIPE, libc::SIG_DFL) == libc::SIG_ERR {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// A child that ended: its id, how, and its captured stdout (if captured).
pub type Reaped = (ChildId, ExitStatus, Option<Secret<Vec<u8>>>);

/// The running children, by the core's [`ChildId`].
///
/// Reaping polls each child with [`Child::try_wait`] rather than calling
/// `waitpid(-1, WNOHANG)`: a pid stays ours until we reap it, so [`kill`](Self::kill)
/// can never hit a recycled pid, and we never reap a process some library started and
/// means to wait for itself. The price is one `waitid` per live child per SIGCHLD, and
/// there are only ever a handful (notification and event commands).
#[derive(Debug, Default)]
pub struct Children {
    live: BTreeMap<ChildId, Child>,
}

impl Children {
    /// No children.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `command` as described for [`spawn`] and tracks it as `id`. An error (the
    /// shell could not be run, or `id` is already in use) means no child was started.
    pub fn spawn(
        &mut self,
        id: ChildId,
        command: &str,
        env: &[(String, String)],
        capture: bool,
    ) -> io::Result<()> {
        if self.live.contains_key(&id) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("child {} is already running", id.0),
            ));
        }
        let child = if capture {
            spawn_capturing(command, env)?
        } else {
            spawn(command, env)?
        };
        self.live.insert(id, child);
        Ok(())
    }

    /// Sends SIGKILL to the child's process group (the shell and whatever it started).
    /// Its exit is still reported by [`reap`](Self::reap). An unknown or already reaped
    /// id is not an error.
    pub fn kill(&mut self, id: ChildId) -> io::Result<()> {
        let Some(child) = self.live.get_mut(&id) else {
            return Ok(());
        };
        let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
            return child.kill();
        };
        // SAFETY: plain integer arguments. The child is not reaped yet (it is in `live`),
        // so its pid, which is also its process group id, cannot have been reused.
        if unsafe { libc::killpg(pgid, libc::SIGKILL) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Every tracked child that has ended since the last call, with how it ended and,
    /// if it was spawned capturing, what it printed; they are forgotten. Call it on every
    /// [`Signal::Child`](super::Signal::Child).
    pub fn reap(&mut self) -> Vec<Reaped> {
        let mut ended = Vec::new();
        self.live.retain(|&id, child| match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                ended.push((id, exit_status(status), collect(child)));
                false
            }
            // Only possible if someone else reaped it; its status is lost.
            Err(_) => {
                ended.push((id, ExitStatus::Code(-1), None));
                false
            }
        });
        ended
    }

    /// How many children are running (or ended but not yet reaped).
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

/// The core's view of how a process ended.
fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    match (status.signal(), status.code()) {
        (Some(signal), _) => ExitStatus::Signal(signal),
        (None, Some(code)) => ExitStatus::Code(code),
        // Neither exited nor killed: waitid without WUNTRACED never reports that.
        (None, None) => ExitStatus::Code(-1),
    }
}

#[cfg(test)]
pub(super) fn spawn_sh(command: &str, env: &[(String, String)]) -> io::Result<Child> {
    spawn_with(&OsString::from(DEFAULT_SHELL), command, env, false)
}

#[cfg(test)]
impl Children {
    /// Tracks a child started with [`spawn_sh`].
    pub(super) fn insert(&mut self, id: ChildId, child: Child) {
        self.live.insert(id, child);
    }
}
