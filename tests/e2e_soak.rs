//! A bounded soak of the server under every pressure at once: 2,000 concurrent control
//! clients (a quarter of them waiting with `show -w`), 200 redirect connections that
//! trickle a byte every 0.3 s, a descriptor limit of 64 for part of the run, and a
//! 400-refresh storm. Every client is served or cleanly refused, descriptors and memory
//! return to their baseline afterwards, and no token is lost. The figures are printed
//! (`cargo test --test e2e_soak -- --nocapture`); nothing here is timed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::provider::{Provider, Reply};
use common::{Sandbox, WAIT, account, wait_for};

const ACCOUNTS: usize = 400;
const CLIENTS: usize = 2000;
const CLIENT_THREADS: usize = 20;
const TRICKLERS: usize = 200;
/// Of every 4 control clients, one waits for the token of the account authorised last.
const WAITER_EVERY: usize = 4;

fn cc_account(i: usize, provider: &Provider) -> String {
    format!(
        "account \"c{i:03}\" {{\n    auth_flow = client_credentials;\n    token_uri = \"{}\";\n    \
         client_id = \"c\";\n    client_secret = \"s\";\n}}\n",
        provider.url("/token")
    )
}

/// One request on a connection of its own, answered before `timeout`: the reply, or
/// empty if the server closed without one.
fn ask(socket: &Path, request: &str, timeout: Duration) -> std::io::Result<String> {
    let mut s = pizauth_io::os::connect_unix(socket, timeout)?;
    s.write_all(request.as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    finish(s, timeout)
}

fn finish(mut s: UnixStream, timeout: Duration) -> std::io::Result<String> {
    s.set_read_timeout(Some(timeout))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply)
}

fn status_field(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Sets the server's soft limit on open files (the hard one stays, so that the soft one
/// can be raised again without privileges) and returns the old soft limit.
#[cfg(target_os = "linux")]
fn set_fd_limit(pid: u32, soft: u64) -> u64 {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: `old` is valid for writing; a null new limit only reads.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: `new` is valid for reading; the process is our child.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    old.rlim_cur
}

/// prlimit is Linux's; the soak is skipped elsewhere.
#[cfg(not(target_os = "linux"))]
fn set_fd_limit(_pid: u32, _soft: u64) -> u64 {
    unreachable!("the soak runs on Linux only")
}

/// How many accounts have a token, by `status -j`.
fn active(sb: &Sandbox) -> usize {
    let run = sb.run(&["status", "-j"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    v["accounts"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|a| a["state"] == "active").count())
}

#[cfg_attr(
    not(target_os = "linux"),
    ignore = "reads /proc and sets limits with prlimit, which only Linux has"
)]
#[test]
fn soak_under_every_pressure_at_once() {
    common::raise_fd_limit();
    let provider = Provider::start();
    provider.set_fallback(Reply::token("cc-token", None, Some(3600)));
    // The account authorised under pressure has a provider of its own, so that its token
    // cannot go to one of the storm's requests.
    let late = Provider::start();
    let mut sb = Sandbox::new("soak");
    let mut config = format!("refresh_retry = 1s;\n{}", account("late", &late, ""));
    config.extend((0..ACCOUNTS).map(|i| cc_account(i, &provider)));
    sb.write_config(&config);
    sb.start();
    let socket = sb.socket();
    let pid = sb.server_pid();
    let http = sb.http_port();

    // Every client-credentials account asks for its token when first shown.
    for i in 0..ACCOUNTS {
        let request = format!(r#"{{"cmd":"show","account":"c{i:03}","with_url":false}}"#);
        ask(&socket, &request, WAIT).expect("show");
    }
    wait_for("every account's first token", WAIT, || {
        (active(&sb) == ACCOUNTS).then_some(())
    });
    let url = sb.auth_url("late");
    let baseline_fds = sb.server_fds();
    let baseline_rss = status_field(pid, "RssAnon:");
    let requests_before = provider.token_requests().len();
    let started = Instant::now();

    // From the start, 64 descriptors: the server has 13 open, and 2,000 clients are
    // coming. It is lifted after 2 s, with every kind of connection waiting.
    let old_limit = set_fd_limit(pid, 64);
    let served = AtomicUsize::new(0);
    let waiters_served = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let trickle_cut = AtomicUsize::new(0);
    let storm_done = AtomicUsize::new(0);
    let peak_fds = AtomicUsize::new(0);
    let peak_rss = AtomicUsize::new(0);
    std::thread::scope(|s| {
        // 200 redirect connections, each sending its request a byte every 0.3 s: far too
        // slow to finish within the 10 s limit, and more than a listener keeps.
        s.spawn(|| {
            let request = format!("GET /?state=x HTTP/1.1\r\nHost: 127.0.0.1:{http}\r\n\r\n");
            let mut open: Vec<(TcpStream, usize)> = (0..TRICKLERS)
                .filter_map(|_| TcpStream::connect(("127.0.0.1", http)).ok())
                .map(|t| (t, 0))
                .collect();
            let deadline = Instant::now() + Duration::from_secs(25);
            while !open.is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(300));
                open.retain_mut(|(t, sent)| {
                    let byte = &request.as_bytes()[*sent % request.len()..][..1];
                    *sent += 1;
                    let alive = t.write_all(byte).is_ok();
                    if !alive {
                        trickle_cut.fetch_add(1, Ordering::SeqCst);
                    }
                    alive
                });
            }
        });
        // 2,000 control clients at once, from 20 threads: each connects its share, sends,
        // and only then reads the replies, so that all are open together.
        for t in 0..CLIENT_THREADS {
            let (socket, served, waiters_served, refused, failed) =
                (&socket, &served, &waiters_served, &refused, &failed);
            s.spawn(move || {
                let share = CLIENTS / CLIENT_THREADS;
                let mut pending = Vec::new();
                for k in 0..share {
                    let n = t * share + k;
                    let waiter = n.is_multiple_of(WAITER_EVERY);
                    let request = if waiter {
                        r#"{"cmd":"show","account":"late","with_url":false,"wait":60}"#.to_owned()
                    } else {
                        format!(
                            r#"{{"cmd":"show","account":"c{:03}","with_url":false}}"#,
                            n % ACCOUNTS
                        )
                    };
                    let sent = pizauth_io::os::connect_unix(socket, Duration::from_secs(60))
                        .and_then(|mut c| {
                            c.write_all(request.as_bytes())?;
                            c.shutdown(std::net::Shutdown::Write)?;
                            Ok(c)
                        });
                    match sent {
                        Ok(c) => pending.push((c, waiter)),
                        Err(_) => {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                for (c, waiter) in pending {
                    let reply = finish(c, Duration::from_secs(90)).unwrap_or_default();
                    let want = if waiter { "late-token" } else { "cc-token" };
                    if reply == format!(r#"{{"reply":"token","token":"{want}"}}"#) {
                        served.fetch_add(1, Ordering::SeqCst);
                        if waiter {
                            waiters_served.fetch_add(1, Ordering::SeqCst);
                        }
                    } else {
                        eprintln!("client {t} after {:?}: {reply:?}", started.elapsed());
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        // The storm: every account refreshed at once (each client waits for its `Done`).
        s.spawn(|| {
            let pending: Vec<UnixStream> = (0..ACCOUNTS)
                .filter_map(|i| {
                    let request =
                        format!(r#"{{"cmd":"refresh","account":"c{i:03}","with_url":false}}"#);
                    let mut c =
                        pizauth_io::os::connect_unix(&socket, Duration::from_secs(60)).ok()?;
                    c.write_all(request.as_bytes()).ok()?;
                    c.shutdown(std::net::Shutdown::Write).ok()?;
                    Some(c)
                })
                .collect();
            for c in pending {
                if finish(c, Duration::from_secs(60)).is_ok_and(|r| r == r#"{"reply":"done"}"#) {
                    storm_done.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let sample = |sb: &mut Sandbox| {
            peak_fds.fetch_max(sb.server_fds(), Ordering::SeqCst);
            peak_rss.fetch_max(status_field(pid, "RssAnon:") as usize, Ordering::SeqCst);
        };
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(100));
            sample(&mut sb);
        }
        set_fd_limit(pid, old_limit);
        // The account the waiters wait for, through the browser, meanwhile.
        late.push([Reply::token("late-token", None, Some(3600))]);
        let visit = common::browser::visit(&url, None).expect("the browser flow");
        assert_eq!(visit.page.status, 200, "{visit:?}");
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            sample(&mut sb);
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let busy = started.elapsed();

    // No token lost: every account has one (the storm's refreshes that failed while
    // the server had no descriptors were retried).
    wait_for("every account to hold a token", WAIT, || {
        (active(&sb) == ACCOUNTS + 1).then_some(())
    });
    wait_for(
        "the server's descriptors to return to their baseline",
        WAIT,
        || (sb.server_fds() <= baseline_fds).then_some(()),
    );
    let after_fds = sb.server_fds();
    let after_rss = status_field(pid, "RssAnon:");
    let requests = provider.token_requests().len() - requests_before;
    let log = sb.log();
    let count = |text: &str| log.lines().filter(|l| l.contains(text)).count();
    eprintln!(
        "soak figures: {CLIENTS} control clients: {} served ({} of them waiters), {} refused, \
         {} failed; {TRICKLERS} trickling redirect connections: {} cut by the server; storm: \
         {} of {ACCOUNTS} refreshes acknowledged, {requests} token requests; \
         descriptors: baseline {baseline_fds}, peak {}, after {after_fds}; RssAnon: baseline \
         {baseline_rss} KiB, peak {} KiB, after {after_rss} KiB; out-of-descriptor episodes \
         logged {} (ends {}); {:.1} s under pressure",
        served.load(Ordering::SeqCst),
        waiters_served.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
        trickle_cut.load(Ordering::SeqCst),
        storm_done.load(Ordering::SeqCst),
        peak_fds.load(Ordering::SeqCst),
        peak_rss.load(Ordering::SeqCst),
        count("new connections wait until descriptors are freed"),
        count("file descriptors are available again"),
        busy.as_secs_f64(),
    );
    // Every client served (none needed refusing), every trickler cut off.
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert_eq!(
        served.load(Ordering::SeqCst) + refused.load(Ordering::SeqCst),
        CLIENTS
    );
    assert_eq!(
        waiters_served.load(Ordering::SeqCst),
        CLIENTS / WAITER_EVERY
    );
    assert_eq!(trickle_cut.load(Ordering::SeqCst), TRICKLERS);
    assert_eq!(storm_done.load(Ordering::SeqCst), ACCOUNTS);
    assert!(requests >= ACCOUNTS, "{requests} token requests");
    assert!(count("new connections wait until descriptors are freed") >= 1);
    // Memory back to its baseline, within what the allocator keeps of its arenas.
    assert!(
        after_rss <= baseline_rss + 640,
        "RssAnon {after_rss} KiB after, {baseline_rss} KiB before"
    );
    assert_eq!(
        sb.run(&["show", "late"]).stdout,
        "late-token\n",
        "the token of the account authorised under pressure"
    );
}
