//! What the binary does to its own process: the local time zone's offset, detaching
//! from the terminal, and listen backlogs and allocator trimming for the driver.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd};

unsafe extern "C" {
    /// POSIX `tzset` (the libc crate does not declare it for Unix targets).
    fn tzset();
}

/// The local zone's offset from UTC (`$TZ` or the system's), in seconds, at Unix time
/// `secs`; 0 if unknown.
pub fn local_offset(secs: i64) -> i32 {
    static TZSET: std::sync::Once = std::sync::Once::new();
    // SAFETY: tzset only reads the environment and sets libc's zone globals; `Once`
    // keeps calls from racing with each other. POSIX only promises that localtime_r
    // honours `$TZ` after tzset has been called.
    TZSET.call_once(|| unsafe { tzset() });
    // Clamped for targets with a 32-bit `time_t`; elsewhere the conversions are no-ops.
    #[allow(clippy::useless_conversion)]
    let range = (i64::from(libc::time_t::MIN), i64::from(libc::time_t::MAX));
    let t = secs.clamp(range.0, range.1) as libc::time_t;
    // SAFETY: an all-zero `tm` is valid (its zone pointer is null until filled in).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the reentrant form.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        i32::try_from(tm.tm_gmtoff).unwrap_or(0)
    } else {
        0
    }
}

/// Detaches from the terminal: fork (the parent exits 0), start a new session, fork again
/// (so the daemon, no longer a session leader, can never acquire a terminal), move to `/`
/// and point stdin, stdout and stderr at `/dev/null`. Call while the process has a single
/// thread. Errors say which step failed.
pub fn daemonise() -> Result<(), String> {
    let os_failure = |what: &str| format!("{what}: {}", io::Error::last_os_error());
    fork_and_leave_parent().map_err(|e| format!("cannot fork: {e}"))?;
    // SAFETY: plain system call; the result is checked.
    if unsafe { libc::setsid() } < 0 {
        return Err(os_failure("cannot start a new session"));
    }
    fork_and_leave_parent().map_err(|e| format!("cannot fork: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("cannot move to /: {e}"))?;
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("cannot open /dev/null: {e}"))?
        .into_raw_fd();
    for fd in 0..=2 {
        // SAFETY: both descriptors are open; dup2 replaces `fd` atomically.
        if unsafe { libc::dup2(null, fd) } < 0 {
            return Err(os_failure("cannot redirect standard streams to /dev/null"));
        }
    }
    if null > 2 {
        // SAFETY: `null` is ours (from into_raw_fd) and no longer needed.
        unsafe { libc::close(null) };
    }
    Ok(())
}

/// Forks; the parent exits 0 at once and the child returns.
fn fork_and_leave_parent() -> io::Result<()> {
    // SAFETY: the process has a single thread here (see `daemonise`), so the child
    // inherits a consistent state; the parent leaves with `_exit` so that nothing it owns
    // (sockets, the prepared server) is dropped or cleaned up on the child's behalf.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(()),
        // SAFETY: `_exit` ends the process at once; it has no preconditions.
        _ => unsafe { libc::_exit(0) },
    }
}

/// Sets the listen backlog of a listening socket (std binds with a backlog of 128).
pub fn set_backlog(listener: &impl AsRawFd, backlog: libc::c_int) {
    // SAFETY: plain integer arguments on a socket the caller owns; calling listen again
    // on a listening socket only changes its backlog.
    unsafe { libc::listen(listener.as_raw_fd(), backlog) };
}

/// Gives the allocator's free pages back to the system. Parsing the config and building
/// the server free far more memory than the loop then holds, and glibc keeps freed pages
/// in the middle of its heap, where they count as the daemon's resident memory.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free memory of the allocator back to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
