use super::*;

use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use mio::{Events, Interest, Poll, Token};
use pizauth_fsm::event::{ChildId, ExitStatus};

use super::process::spawn_sh;

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("pizauth-io-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn clocks_are_plausible() {
    let a = now();
    std::thread::sleep(Duration::from_millis(20));
    let b = now();
    assert!(b.boot >= a.boot + Duration::from_millis(20), "{a:?} {b:?}");
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    assert!((b.wall.as_unix_millis() - wall).abs() < 5_000, "{b:?}");
}

/// Polls for up to `limit` and says whether `token` became ready.
fn fires(poll: &mut Poll, token: Token, limit: Duration) -> bool {
    let mut events = Events::with_capacity(4);
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        poll.poll(&mut events, Some(left)).expect("poll");
        if events.iter().any(|e| e.token() == token) {
            return true;
        }
        if left.is_zero() {
            return false;
        }
    }
}

// The timerfd wakes the poller itself; the other systems' timer only sets the poll
// timeout (its tests are in bsd/timer.rs).
#[cfg(target_os = "linux")]
#[test]
fn the_timer_fires_through_mio() {
    let mut poll = Poll::new().expect("poll");
    let mut timer = BootTimer::new().expect("timerfd");
    poll.registry()
        .register(&mut timer, Token(1), Interest::READABLE)
        .expect("register");
    let start = now().boot;
    timer
        .arm(Some(start + Duration::from_millis(50)))
        .expect("arm");
    assert!(fires(&mut poll, Token(1), Duration::from_secs(5)));
    assert!(now().boot >= start + Duration::from_millis(50));
    assert_eq!(timer.drain().expect("drain"), 1);
    assert_eq!(timer.drain().expect("drain again"), 0);

    // Re-arming to the same deadline after it fired fires again, at once.
    timer
        .arm(Some(start + Duration::from_millis(50)))
        .expect("re-arm");
    assert!(fires(&mut poll, Token(1), Duration::from_secs(5)));
    assert_eq!(timer.drain().expect("drain"), 1);
}

#[cfg(target_os = "linux")]
#[test]
fn a_disarmed_timer_stays_quiet() {
    let mut poll = Poll::new().expect("poll");
    let mut timer = BootTimer::new().expect("timerfd");
    poll.registry()
        .register(&mut timer, Token(2), Interest::READABLE)
        .expect("register");
    timer
        .arm(Some(now().boot + Duration::from_millis(30)))
        .expect("arm");
    timer.arm(None).expect("disarm");
    assert!(!fires(&mut poll, Token(2), Duration::from_millis(150)));
    assert_eq!(timer.drain().expect("drain"), 0);
    // A deadline at the clock's origin is long past, and must not mean "disarm".
    timer
        .arm(Some(pizauth_fsm::Instant::from_millis(0)))
        .expect("arm");
    assert!(fires(&mut poll, Token(2), Duration::from_secs(5)));
}

#[test]
fn a_raised_sighup_is_read_from_the_signals_source() {
    let mut signals = Signals::new().expect("signals");
    let mut poll = Poll::new().expect("poll");
    poll.registry()
        .register(&mut signals, Token(3), Interest::READABLE)
        .expect("register");
    // SAFETY: Signals::new blocked SIGHUP in this thread (Linux: raising it queues it for
    // the signalfd) or installed a handler that only writes to its pipe (elsewhere), so
    // the default action does not run.
    assert_eq!(unsafe { libc::raise(libc::SIGHUP) }, 0);
    assert!(fires(&mut poll, Token(3), Duration::from_secs(5)));
    let got = signals.read();
    assert!(got.contains(&Signal::Hangup), "{got:?}");
    assert!(!signals.read().contains(&Signal::Hangup));
    // Leave this test thread as we found it.
    #[cfg(target_os = "linux")]
    // SAFETY: a valid, initialised set, only read.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Reaps until `id` ends, for up to ten seconds.
fn wait_for(children: &mut Children, id: ChildId) -> ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Some((_, status, _)) = children.reap().into_iter().find(|(i, _, _)| *i == id) {
            return status;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("child {id:?} did not end");
}

#[test]
fn children_see_their_environment_and_report_exit_codes() {
    let dir = TempDir::new("spawn");
    let out = dir.0.join("out");
    let env = vec![
        ("PIZAUTH_MSG".to_owned(), "hello world".to_owned()),
        ("OUT".to_owned(), out.display().to_string()),
    ];
    let mut children = Children::new();
    children.insert(
        ChildId(1),
        spawn_sh("echo \"$PIZAUTH_MSG\" > \"$OUT\"", &env).expect("spawn"),
    );
    assert_eq!(wait_for(&mut children, ChildId(1)), ExitStatus::Code(0));
    assert_eq!(
        std::fs::read_to_string(&out).expect("output"),
        "hello world\n"
    );

    children.insert(ChildId(2), spawn_sh("exit 3", &[]).expect("spawn"));
    assert_eq!(wait_for(&mut children, ChildId(2)), ExitStatus::Code(3));
    assert!(children.is_empty());

    // Through $SHELL, whatever it is, a plain command works too.
    children
        .spawn(ChildId(3), "exit 0", &[], false)
        .expect("spawn");
    assert!(
        children.spawn(ChildId(3), "exit 0", &[], false).is_err(),
        "ids are unique"
    );
    assert_eq!(wait_for(&mut children, ChildId(3)), ExitStatus::Code(0));
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
fn children_start_with_clean_signal_state() {
    // SIGPIPE is ignored here (std does that, and so does Signals::new): the child must
    // see its default action, and an empty mask. The shell checks the SigBlk and SigIgn
    // lines of /proc/self/status (as seen by its own children, which inherit both);
    // SIGPIPE is signal 13, bit 0x1000 of SigIgn.
    let mut children = Children::new();
    let script = "grep -q '^SigBlk:[[:space:]]*0*$' /proc/self/status || exit 1; \
                  ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status); \
                  [ $((0x$ign & 0x1000)) -eq 0 ] || exit 2";
    children.insert(ChildId(1), spawn_sh(script, &[]).expect("spawn"));
    assert_eq!(wait_for(&mut children, ChildId(1)), ExitStatus::Code(0));
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
fn kill_reaches_the_whole_process_group() {
    let dir = TempDir::new("kill");
    let pidfile = dir.0.join("pid");
    let env = vec![("PIDFILE".to_owned(), pidfile.display().to_string())];
    let mut children = Children::new();
    children.insert(
        ChildId(7),
        spawn_sh("sleep 60 & echo $! > \"$PIDFILE\"; wait", &env).expect("spawn"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let grandchild = loop {
        let text = std::fs::read_to_string(&pidfile).unwrap_or_default();
        if let Ok(pid) = text.trim().parse::<u32>() {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "no pid file");
        std::thread::sleep(Duration::from_millis(10));
    };
    children.kill(ChildId(7)).expect("kill");
    assert_eq!(
        wait_for(&mut children, ChildId(7)),
        ExitStatus::Signal(libc::SIGKILL)
    );
    // The grandchild is gone, or a zombie waiting for a reaper that is not us.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match std::fs::read_to_string(format!("/proc/{grandchild}/stat")) {
            Err(_) => break,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z')) =>
            {
                break;
            }
            Ok(_) => {}
        }
        assert!(std::time::Instant::now() < deadline, "grandchild survived");
        std::thread::sleep(Duration::from_millis(10));
    }
    children
        .kill(ChildId(7))
        .expect("killing a reaped child is not an error");
}

#[test]
fn a_peer_that_only_shut_down_its_writing_half_has_not_hung_up() {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    assert!(!hung_up(&ours), "connected");
    // What every control client does once its request is sent.
    theirs
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    assert!(!hung_up(&ours), "half-closed: still waiting for its reply");
    drop(theirs);
    assert!(hung_up(&ours), "closed: gone");
}

#[test]
fn peer_uid_of_a_socketpair_is_ours() {
    let (a, b) = UnixStream::pair().expect("socketpair");
    assert_eq!(peer_uid(&a).expect("peer uid"), getuid());
    assert_eq!(peer_uid(&b).expect("peer uid"), getuid());
}

#[cfg(target_os = "linux")]
#[test]
fn notify_reaches_a_path_socket() {
    use std::os::unix::net::UnixDatagram;
    let dir = TempDir::new("notify");
    let path = dir.0.join("notify.sock");
    let receiver = UnixDatagram::bind(&path).expect("bind");
    sys::notify(path.as_os_str(), "READY=1").expect("notify");
    let mut buf = [0u8; 64];
    let n = receiver.recv(&mut buf).expect("recv");
    assert_eq!(&buf[..n], b"READY=1");
}

#[cfg(target_os = "linux")]
#[test]
fn notify_reaches_an_abstract_socket() {
    use std::ffi::OsStr;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let name = format!("pizauth-io-notify-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
    let receiver = UnixDatagram::bind_addr(&addr).expect("bind");
    sys::notify(OsStr::new(&format!("@{name}")), "READY=1").expect("notify");
    let mut buf = [0u8; 64];
    let n = receiver.recv(&mut buf).expect("recv");
    assert_eq!(&buf[..n], b"READY=1");
}

#[test]
fn touch_updates_times_without_following_symlinks() {
    let dir = TempDir::new("touch");
    let file = dir.0.join("sock");
    let link = dir.0.join("link");
    std::fs::write(&file, "").expect("create");
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let times = std::fs::FileTimes::new()
        .set_accessed(old)
        .set_modified(old);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .expect("open")
        .set_times(times)
        .expect("set times");
    symlink(&file, &link).expect("symlink");

    touch(&link).expect("touch link");
    let target = std::fs::metadata(&file)
        .expect("metadata")
        .modified()
        .expect("mtime");
    assert_eq!(target, old, "the symlink's target is untouched");

    touch(&file).expect("touch");
    let modified = std::fs::metadata(&file)
        .expect("metadata")
        .modified()
        .expect("mtime");
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(60), "{age:?}");
    assert!(touch(&dir.0.join("missing")).is_err());
}

#[test]
fn core_dumps_are_disabled() {
    disable_core_dumps().expect("disable core dumps");
    let mut limit = libc::rlimit {
        rlim_cur: 1,
        rlim_max: 1,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) }, 0);
    assert_eq!((limit.rlim_cur, limit.rlim_max), (0, 0));
    // SAFETY: PR_GET_DUMPABLE takes no pointers.
    #[cfg(target_os = "linux")]
    assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
}

#[test]
fn config_read_errors_name_the_file() {
    let dir = TempDir::new("config");
    let message = |path: &Path, again: bool| read_config(path, again).unwrap_err();
    let missing = dir.0.join("missing.conf");
    assert_eq!(
        message(&missing, false),
        format!("config file {} not found", missing.display())
    );
    let big = dir.0.join("big.conf");
    std::fs::write(&big, vec![b' '; MAX_CONFIG_BYTES + 1]).unwrap();
    assert!(message(&big, false).ends_with("is larger than the limit of 1024 KiB"));
    // Exactly at the limit is read, whole.
    std::fs::write(&big, vec![b' '; MAX_CONFIG_BYTES]).unwrap();
    assert_eq!(
        read_config(&big, true).ok().map(|t| t.len()),
        Some(MAX_CONFIG_BYTES)
    );
    let binary = dir.0.join("binary.conf");
    std::fs::write(&binary, b"ok\xff").unwrap();
    assert!(message(&binary, false).ends_with("is not valid UTF-8 (byte 2)"));
    let fine = dir.0.join("fine.conf");
    std::fs::write(&fine, "http_listen = none;\n").unwrap();
    assert_eq!(
        read_config(&fine, false).ok().as_deref(),
        Some("http_listen = none;\n")
    );
    // Read again (a reload): a FIFO with no writer is refused at once, not waited on.
    let fifo = dir.0.join("fifo.conf");
    let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path in our own temporary directory.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_eq!(
        message(&fifo, true),
        format!(
            "config file {} is not a regular file, so it cannot be read again: restart the server to read a pipe or a device",
            fifo.display()
        )
    );
}
