//! Unix-socket and user-database calls the command-line client needs: connecting with a
//! bound on the time, and the name of a user id.

use std::ffi::{CStr, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::sys;

/// Connects to the Unix socket at `path`, waiting at most `timeout`. The stream keeps
/// `timeout` as its send timeout.
///
/// `UnixStream::connect` can block forever when the server is stopped and its listen
/// backlog is full, and std has no connect with a timeout for Unix sockets, so the
/// socket is made and connected here ([`sys::connect_within`] bounds the wait).
pub fn connect_unix(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: an all-zero `sockaddr_un` is valid (an empty path).
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    // One byte is kept for the terminating NUL.
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long for a Unix socket",
        ));
    }
    addr.sun_family = libc::sa_family_t::try_from(libc::AF_UNIX).unwrap_or_default();
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // The path starts after the family (and, on macOS and the BSDs, a length byte before
    // it), wherever the system's header puts it.
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    sys::set_address_length(&mut addr, len);
    let len = libc::socklen_t::try_from(len).unwrap_or(libc::socklen_t::MAX);
    let stream = UnixStream::from(sys::stream_socket()?);
    stream.set_write_timeout(Some(timeout))?;
    sys::connect_within(&stream, &addr, len, timeout)?;
    Ok(stream)
}

/// The name of user id `uid` in the password database, if it has a non-empty one.
pub fn user_name(uid: u32) -> Option<OsString> {
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: an all-zero `passwd` is a valid value (null pointers, zero ids).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the length given; getpwuid_r writes strings
        // only into `buf` and sets `result` to `&pwd` or null.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`, which
        // is still alive here.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        return Some(OsStr::from_bytes(name.to_bytes()).to_owned()).filter(|n| !n.is_empty());
    }
}
