//! The figures bench itself (see main.rs).

use std::fmt::Write as _;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::daemon::{CARGO_BIN, Daemon, ProcSample, Sandbox, account_name, authorise};
use crate::provider::{Provider, lock};
use crate::{core_bench, daemon, floor};

/// How much work each part does.
#[derive(Clone, Copy, Debug)]
struct Scale {
    /// Sequential `show`s (and as many `/bin/true`s, interleaved).
    latency_runs: usize,
    /// Parallel `show`s in all (and as many `/bin/true`s).
    throughput_total: usize,
    workers: usize,
    /// Accounts of the footprint and storm parts.
    accounts: usize,
    /// Authorisation flows in flight at once.
    flows_in_flight: usize,
    idle: Duration,
    /// Start-ups timed per config.
    startup_runs: usize,
}

const FULL: Scale = Scale {
    latency_runs: 500,
    throughput_total: 3_000,
    workers: 16,
    accounts: 1_000,
    flows_in_flight: 8,
    idle: Duration::from_secs(60),
    startup_runs: 9,
};

const QUICK: Scale = Scale {
    latency_runs: 60,
    throughput_total: 480,
    workers: 16,
    accounts: 100,
    flows_in_flight: 8,
    idle: Duration::from_secs(5),
    startup_runs: 3,
};

/// How a figure is judged.
#[derive(Clone, Copy, Debug)]
enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    fn met(self, v: f64) -> bool {
        match self {
            Target::AtMost(t) => v <= t,
            Target::AtLeast(t) => v >= t,
        }
    }

    fn text(self) -> String {
        match self {
            Target::AtMost(t) => format!("<= {}", trim(t)),
            Target::AtLeast(t) => format!(">= {}", trim(t)),
        }
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// One line of the table.
struct Figure {
    key: &'static str,
    label: &'static str,
    value: f64,
    unit: &'static str,
    target: Option<Target>,
    /// pizauth 1.1.0 on the same kind of machine, as given in the issue.
    old: &'static str,
}

#[derive(Default)]
struct Report {
    figures: Vec<Figure>,
    /// Supporting numbers (not judged), for the JSON file.
    details: Vec<(String, f64)>,
}

impl Report {
    fn figure(
        &mut self,
        key: &'static str,
        label: &'static str,
        value: f64,
        unit: &'static str,
        target: Option<Target>,
        old: &'static str,
    ) {
        self.figures.push(Figure {
            key,
            label,
            value,
            unit,
            target,
            old,
        });
    }

    fn detail(&mut self, key: impl Into<String>, value: f64) {
        self.details.push((key.into(), value));
    }
}

pub fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and a test run
    // should not spend minutes measuring.
    if !std::env::args().any(|a| a == "--bench") {
        println!("figures: measurements run with `cargo bench --bench figures`");
        return;
    }
    let quick = std::env::var_os("PIZAUTH_BENCH_QUICK").is_some_and(|v| v != "0");
    let scale = if quick { QUICK } else { FULL };
    let only: Option<Vec<String>> = std::env::var("PIZAUTH_BENCH_ONLY")
        .ok()
        .map(|s| s.split(',').map(|p| p.trim().to_owned()).collect());
    let wants = |part: &str| only.as_ref().is_none_or(|o| o.iter().any(|p| p == part));
    eprintln!(
        "pizauth figures: binary {}, {} cores, {}",
        daemon::bin(),
        cores(),
        if quick { "QUICK scale" } else { "full scale" }
    );
    let mut report = Report::default();
    let provider = Provider::start().expect("start the fake provider");

    if wants("size") {
        let bytes = std::fs::metadata(daemon::bin())
            .map(|m| m.len())
            .unwrap_or(0);
        report.figure(
            "binary_size_mib",
            "binary size",
            bytes as f64 / (1024.0 * 1024.0),
            "MiB",
            Some(Target::AtMost(3.5)),
            "5.1",
        );
    }
    if wants("latency") || wants("throughput") || wants("idle") {
        one_account(&provider, scale, &wants, &mut report);
    }
    if wants("footprint") || wants("storm") {
        many_accounts(&provider, scale, &wants, &mut report);
    }
    if wants("startup") {
        startup(&provider, scale, &mut report);
    }
    if wants("core") {
        core(quick, &mut report);
    }
    let bad = provider.stats.bad.load(Ordering::SeqCst);
    report.detail("provider_bad_requests", bad as f64);

    print_table(&report);
    let path = write_json(&report, scale, quick);
    eprintln!("wrote {path}");
}

/// Show latency, throughput and idle behaviour, and the footprint of a one-account daemon.
fn one_account(
    provider: &Provider,
    scale: Scale,
    wants: &dyn Fn(&str) -> bool,
    report: &mut Report,
) {
    let sandbox = Sandbox::new("one");
    sandbox.write_config(1, provider.port, "");
    let daemon = sandbox.start();
    thread::sleep(Duration::from_millis(200));
    let start = daemon.proc();
    report.figure(
        "anon_start_1_account_kib",
        "RssAnon after start, 1 account",
        start.anon_kib as f64,
        "KiB",
        Some(Target::AtMost(256.0)),
        "",
    );
    report.detail("rss_start_1_account_mb", mb(start.rss_kib));
    report.detail("threads_start_1_account", start.threads as f64);
    report.detail("fds_start_1_account", start.fds as f64);

    let name = account_name(0);
    authorise(&sandbox, &name).expect("authorise the account");
    let token = wait_for_token(&daemon, &name, Duration::from_secs(10)).expect("a token");

    if wants("latency") {
        show_latency(&sandbox, daemon.pid(), &name, &token, scale, report);
    }
    if wants("throughput") {
        show_throughput(&sandbox, &daemon, &name, &token, scale, report);
    }
    if wants("idle") {
        idle(&daemon, start.fds, scale, report);
    }
    daemon.stop();
}

/// 500 sequential shows, interleaved with `/bin/true` as the floor of spawning a process.
fn show_latency(
    sandbox: &Sandbox,
    pid: u32,
    name: &str,
    token: &str,
    scale: Scale,
    report: &mut Report,
) {
    let show = || {
        timed(
            sandbox.command(daemon::bin()).args(["show", name]),
            Some(token),
        )
    };
    let truth = || timed(&mut sandbox.command("/bin/true"), None);
    // Warm the page cache and the daemon's allocator.
    for _ in 0..20 {
        show();
        truth();
    }
    let mut shows = Vec::with_capacity(scale.latency_runs);
    let mut trues = Vec::with_capacity(scale.latency_runs);
    let before = ProcSample::read(pid);
    for _ in 0..scale.latency_runs {
        trues.push(truth());
        shows.push(show());
    }
    let after = ProcSample::read(pid);
    let runs = scale.latency_runs as f64;
    report.detail(
        "daemon_cpu_us_per_show_sequential",
        (after.cpu_ns - before.cpu_ns) as f64 / 1000.0 / runs,
    );
    report.detail(
        "daemon_context_switches_per_show_sequential",
        (after.ctx_switches - before.ctx_switches) as f64 / runs,
    );
    let (s50, s90) = (percentile(&mut shows, 0.5), percentile(&mut shows, 0.9));
    let (t50, t90) = (percentile(&mut trues, 0.5), percentile(&mut trues, 0.9));
    report.detail("show_p50_us", s50);
    report.detail("show_p90_us", s90);
    report.detail("true_p50_us", t50);
    report.detail("true_p90_us", t90);
    report.figure(
        "show_p50_over_true_p50",
        "show p50 / /bin/true p50",
        s50 / t50,
        "x",
        Some(Target::AtMost(1.25)),
        "1.97",
    );
    report.figure("show_p90_us", "show p90 (sequential)", s90, "us", None, "");
}

/// 16 workers, 3,000 shows in all, in blocks alternating with as many `/bin/true`s.
fn show_throughput(
    sandbox: &Sandbox,
    daemon: &Daemon,
    name: &str,
    token: &str,
    scale: Scale,
    report: &mut Report,
) {
    let pid = daemon.pid();
    let block = scale.throughput_total / 2;
    let (mut show_time, mut true_time) = (Duration::ZERO, Duration::ZERO);
    let (mut show_lat, mut true_lat) = (Vec::new(), Vec::new());
    let (mut cpu, mut switches) = (0, 0);
    // The same shows against the least a server can do per show, in the same run.
    let floor = floor::Floor::start(token);
    let mut floor_cpu = 0;
    for _ in 0..2 {
        let (t, mut l) = parallel(scale.workers, block, || {
            timed(&mut sandbox.command("/bin/true"), None)
        });
        true_time += t;
        true_lat.append(&mut l);
        let before = ProcSample::read(pid);
        let (t, mut l) = parallel(scale.workers, block, || {
            timed(
                sandbox.command(daemon::bin()).args(["show", name]),
                Some(token),
            )
        });
        let after = ProcSample::read(pid);
        cpu += after.cpu_ns - before.cpu_ns;
        switches += after.ctx_switches - before.ctx_switches;
        show_time += t;
        show_lat.append(&mut l);
        let before = floor.cpu_ns();
        parallel(scale.workers, block, || {
            timed(
                floor.sandbox.command(daemon::bin()).args(["show", name]),
                Some(token),
            )
        });
        floor_cpu += floor.cpu_ns() - before;
    }
    drop(floor);
    let shows = show_lat.len() as f64;
    let show_rate = shows / show_time.as_secs_f64();
    let true_rate = true_lat.len() as f64 / true_time.as_secs_f64();
    report.detail("show_per_s_16_workers", show_rate);
    report.detail("true_per_s_16_workers", true_rate);
    report.detail("true_p99_us_16_workers", percentile(&mut true_lat, 0.99));
    report.detail(
        "daemon_context_switches_per_show_16_workers",
        switches as f64 / shows,
    );
    report.figure(
        "show_throughput_over_true",
        "show/s over /bin/true/s, 16 workers",
        show_rate / true_rate,
        "x",
        Some(Target::AtLeast(0.85)),
        "0.44-0.56",
    );
    report.figure(
        "show_p99_us_16_workers",
        "show p99, 16 workers",
        percentile(&mut show_lat, 0.99),
        "us",
        None,
        "",
    );
    report.figure(
        "daemon_cpu_per_show_us",
        "daemon CPU per show",
        cpu as f64 / 1000.0 / shows,
        "us",
        None,
        "19-21",
    );
    report.detail(
        "floor_cpu_per_show_us_16_workers",
        floor_cpu as f64 / 1000.0 / shows,
    );
    report.figure(
        "daemon_cpu_per_show_over_floor",
        "daemon CPU per show / floor server's",
        cpu as f64 / floor_cpu.max(1) as f64,
        "x",
        None,
        "",
    );
}

/// Context switches and CPU of the daemon over the idle period, one token valid a day.
fn idle(daemon: &Daemon, start_fds: u64, scale: Scale, report: &mut Report) {
    // Let connections from earlier parts close (the provider closes idle ones after 2 s,
    // the daemon's control connections close at once) so that the idle period starts
    // with the daemon as a user's would be: nothing open but its listeners.
    let deadline = Instant::now() + Duration::from_secs(40);
    while daemon.proc().fds > start_fds && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_millis(200));
    let before = daemon.proc();
    thread::sleep(scale.idle);
    let after = daemon.proc();
    let minutes = scale.idle.as_secs_f64() / 60.0;
    report.figure(
        "idle_context_switches_per_min",
        "idle context switches per minute",
        (after.ctx_switches - before.ctx_switches) as f64 / minutes,
        "",
        Some(Target::AtMost(0.0)),
        "2",
    );
    report.figure(
        "idle_threads",
        "threads (idle)",
        after.threads as f64,
        "",
        Some(Target::AtMost(2.0)),
        "6",
    );
    report.detail(
        "idle_cpu_us_per_min",
        (after.cpu_ns - before.cpu_ns) as f64 / 1000.0 / minutes,
    );
    report.detail("idle_rss_mb", mb(after.rss_kib));
    report.detail("idle_fds", after.fds as f64);
}

/// Footprint while authorising 1, 100 and 1,000 accounts, then the refresh storm.
fn many_accounts(
    provider: &Provider,
    scale: Scale,
    wants: &dyn Fn(&str) -> bool,
    report: &mut Report,
) {
    let n = scale.accounts;
    let sandbox = Sandbox::new("many");
    // Refresh exactly at expiry, so the storm's tokens all come due together.
    sandbox.write_config(n, provider.port, "refresh_before_expiry = 0s;\n");
    provider.grant_expires_in.store(86_400, Ordering::SeqCst);
    let daemon = sandbox.start();
    thread::sleep(Duration::from_millis(200));
    let start = daemon.proc();
    let tag = |k: &str| format!("{k}_{n}_accounts");
    report.detail(tag("rss_mb_start"), mb(start.rss_kib));
    report.detail(tag("threads_start"), start.threads as f64);
    report.detail(tag("fds_start"), start.fds as f64);

    let grants_before = provider.stats.grants.load(Ordering::SeqCst);
    let mut cpu = 0;
    let mut done = 0;
    let mut last = ProcSample::default();
    for stage in [1, 100, n] {
        let stage = stage.min(n);
        if stage <= done {
            continue;
        }
        let before = daemon::cpu_ns(daemon.pid());
        let failures = flows(&sandbox, done..stage, scale.flows_in_flight);
        // Until the provider has answered every exchange, then a moment for the daemon
        // to take the last answers in.
        let want = grants_before + stage as u64;
        let deadline = Instant::now() + Duration::from_secs(30);
        while provider.stats.grants.load(Ordering::SeqCst) < want && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(20));
        cpu += daemon::cpu_ns(daemon.pid()) - before;
        done = stage;
        last = daemon.proc();
        report.detail(format!("flow_failures_to_{stage}"), failures as f64);
        report.detail(format!("rss_mb_after_{stage}_authorised"), mb(last.rss_kib));
        report.detail(
            format!("threads_after_{stage}_authorised"),
            last.threads as f64,
        );
        report.detail(format!("fds_after_{stage}_authorised"), last.fds as f64);
    }
    report.detail(tag("anon_kib_start"), start.anon_kib as f64);
    if wants("footprint") {
        report.figure(
            "anon_after_1000_authorised_mib",
            "RssAnon after authorising 1,000 accounts",
            last.anon_kib as f64 / 1024.0,
            "MiB",
            Some(Target::AtMost(1.5)),
            "",
        );
        report.detail("rss_after_1000_authorised_mb", mb(last.rss_kib));
        report.figure(
            "cpu_authorise_1000_s",
            "daemon CPU to authorise 1,000 accounts",
            cpu as f64 / 1e9,
            "s",
            Some(Target::AtMost(0.15)),
            "1.37-1.41",
        );
    }
    // Lost: accounts without a token once everything has settled (checked for 5 s).
    let mut missing: Vec<String> = (0..n).map(account_name).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !missing.is_empty() && Instant::now() < deadline {
        missing.retain(|name| daemon.token(name).is_none());
        if !missing.is_empty() {
            thread::sleep(Duration::from_millis(100));
        }
    }
    if wants("footprint") {
        report.figure(
            "authorisations_lost",
            "authorisations lost, 8 flows in flight",
            missing.len() as f64,
            "",
            Some(Target::AtMost(0.0)),
            "42-115",
        );
    }
    if !wants("storm") {
        daemon.stop();
        return;
    }
    let dump = sandbox.client(&["dump"]);
    assert!(dump.status.success(), "dump failed");
    daemon.stop();
    storm(provider, &sandbox, &dump.stdout, n, report);
}

/// Runs authorisation flows for accounts `range` with `in_flight` of them at once;
/// returns how many flows failed on the client side.
fn flows(sandbox: &Sandbox, range: std::ops::Range<usize>, in_flight: usize) -> usize {
    let next = AtomicUsize::new(range.start);
    let failures = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..in_flight {
            s.spawn(|| {
                for _ in 0..range.len() {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= range.end {
                        return;
                    }
                    if let Err(e) = authorise(sandbox, &account_name(i)) {
                        eprintln!("flow {i}: {e}");
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    failures.into_inner()
}

/// The refresh storm: `n` accounts whose tokens all expire at the same millisecond.
///
/// The tokens come from the footprint part: its dump is restored, with every account's
/// expiry set to one instant a moment ahead, into a fresh daemon (restoring is the one way
/// to give 1,000 tokens the same expiry to the millisecond: `expires_in` has a resolution
/// of a second, and each exchange starts at its own moment). `refresh_before_expiry = 0s`
/// makes every refresh due at that instant.
fn storm(provider: &Provider, sandbox: &Sandbox, dump: &[u8], n: usize, report: &mut Report) {
    let daemon = sandbox.start();
    thread::sleep(Duration::from_millis(100));
    let lead = Duration::from_millis(1000);
    let due = Instant::now() + lead;
    let due_wall = unix_ms() + lead.as_millis() as i64;
    let mut dump: serde_json::Value = serde_json::from_slice(dump).expect("dump is JSON");
    let accounts = dump["accounts"].as_object_mut().expect("dump accounts");
    assert_eq!(accounts.len(), n, "every account in the dump");
    for account in accounts.values_mut() {
        account["obtained"] = (due_wall - 60_000).into();
        account["expires"] = due_wall.into();
    }
    let text = serde_json::to_vec(&dump).expect("encode dump");
    provider.reset_refreshes();
    let mut restore = sandbox
        .command(daemon::bin())
        .arg("restore")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("restore");
    if let Some(mut stdin) = restore.stdin.take() {
        use std::io::Write;
        stdin.write_all(&text).expect("write the dump");
    }
    assert!(restore.wait().expect("restore").success(), "restore failed");
    assert!(
        Instant::now() + Duration::from_millis(100) < due,
        "restore too slow"
    );

    // Sample memory and threads every millisecond from shortly before the storm.
    let stop = Arc::new(AtomicBool::new(false));
    let peaks = Arc::new(Mutex::new((0u64, 0u64, 0u64)));
    let sampler = {
        let (stop, peaks, pid) = (stop.clone(), peaks.clone(), daemon.pid());
        thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                let (rss, threads) = daemon::rss_threads(pid);
                let mut p = lock(&peaks);
                p.0 = p.0.max(rss);
                p.1 = p.1.max(threads);
                p.2 += 1;
                drop(p);
                thread::sleep(Duration::from_millis(1));
            }
        })
    };
    sleep_until(due - Duration::from_millis(50));
    let before = daemon.proc();
    report.detail("storm_rss_mb_before", mb(before.rss_kib));
    let cpu_before = before.cpu_ns;
    let deadline = due + Duration::from_secs(30);
    while provider.stats.refreshes.load(Ordering::SeqCst) < n as u64 && Instant::now() < deadline {
        thread::sleep(Duration::from_micros(200));
    }
    let seen = provider.stats.refreshes.load(Ordering::SeqCst);
    let first = lock(&provider.stats.first_refresh).map(|t| ms_since(due, t));
    let last = lock(&provider.stats.last_refresh).map(|t| ms_since(due, t));
    // Every account in turn until `show` prints its refreshed token (checked in-process,
    // with the client's own request bytes; an account not refreshed yet is asked again).
    let check_deadline = Instant::now() + Duration::from_secs(10);
    let mut stale = 0;
    for i in 0..n {
        let name = account_name(i);
        let fresh = format!("at-cid-{name}-r");
        loop {
            if daemon.token(&name).is_some_and(|t| t.starts_with(&fresh)) {
                break;
            }
            if Instant::now() > check_deadline {
                stale += 1;
                break;
            }
            thread::sleep(Duration::from_micros(200));
        }
    }
    let all_new = ms_since(due, Instant::now());
    let cpu = daemon::cpu_ns(daemon.pid()) - cpu_before;
    stop.store(true, Ordering::SeqCst);
    let _ = sampler.join();
    let (peak_rss, peak_threads, samples) = *lock(&peaks);
    report.detail("storm_refreshes_seen", seen as f64);
    report.detail("storm_first_refresh_ms", first.unwrap_or(f64::NAN));
    report.detail("storm_accounts_not_refreshed", stale as f64);
    report.detail("storm_proc_samples", samples as f64);
    report.figure(
        "storm_all_refreshed_s",
        "storm: provider saw all 1,000 refreshes after expiry",
        if seen == n as u64 {
            last.unwrap_or(f64::NAN) / 1000.0
        } else {
            f64::INFINITY
        },
        "s",
        Some(Target::AtMost(0.15)),
        "0.32-0.37",
    );
    report.figure(
        "storm_all_shown_s",
        "storm: every show prints the new token",
        if stale == 0 {
            all_new / 1000.0
        } else {
            f64::INFINITY
        },
        "s",
        None,
        "",
    );
    report.figure(
        "storm_peak_rss_mb",
        "storm: peak RSS",
        mb(peak_rss),
        "MB",
        None,
        "33-75",
    );
    report.figure(
        "storm_peak_threads",
        "storm: peak threads",
        peak_threads as f64,
        "",
        Some(Target::AtMost(2.0)),
        "82-260",
    );
    report.figure(
        "storm_cpu_ms",
        "storm: daemon CPU (incl. the checking shows)",
        cpu as f64 / 1e6,
        "ms",
        Some(Target::AtMost(100.0)),
        "400-440",
    );
    daemon.stop();
}

/// From spawning `server -d` to `startup_cmd` running, for 1 and 1,000 accounts.
fn startup(provider: &Provider, scale: Scale, report: &mut Report) {
    let mut sandboxes = Vec::new();
    for accounts in [1, scale.accounts] {
        let sandbox = Sandbox::new(&format!("startup{accounts}"));
        let fifo = sandbox.dir.join("started");
        make_fifo(&fifo);
        let cmd = format!("startup_cmd = \"echo up > {}\";\n", fifo.display());
        sandbox.write_config(accounts, provider.port, &cmd);
        sandboxes.push((accounts, sandbox, fifo, Vec::new()));
    }
    // The floor: the same shell command, spawned directly.
    let mut floor = Vec::new();
    for _ in 0..scale.startup_runs {
        for (_, sandbox, fifo, times) in &mut sandboxes {
            let reader = open_fifo(fifo);
            let t0 = Instant::now();
            let child = sandbox.spawn_server();
            let woke = wait_readable(&reader, Duration::from_secs(10));
            let elapsed = t0.elapsed();
            let daemon = Daemon {
                child,
                socket: sandbox.socket(),
            };
            assert!(woke, "startup_cmd did not run within 10 s");
            times.push(elapsed.as_secs_f64() * 1e3);
            daemon.stop();
        }
        let (_, sandbox, fifo, _) = &sandboxes[0];
        let reader = open_fifo(fifo);
        let t0 = Instant::now();
        let mut child = sandbox
            .command("/bin/sh")
            .arg("-c")
            .arg(format!("echo up > {}", fifo.display()))
            .spawn()
            .expect("sh");
        let woke = wait_readable(&reader, Duration::from_secs(10));
        floor.push(t0.elapsed().as_secs_f64() * 1e3);
        assert!(woke, "sh did not write the fifo");
        let _ = child.wait();
    }
    report.detail("startup_sh_floor_ms", median(&mut floor));
    for (accounts, _, _, mut times) in sandboxes {
        let m = median(&mut times);
        if accounts == 1 {
            report.figure(
                "startup_1_account_ms",
                "start-up to startup_cmd, 1 account",
                m,
                "ms",
                Some(Target::AtMost(3.0)),
                "5.0",
            );
        } else {
            report.figure(
                "startup_1000_accounts_ms",
                "start-up to startup_cmd, 1,000 accounts",
                m,
                "ms",
                Some(Target::AtMost(8.0)),
                "40",
            );
        }
    }
}

/// The pure core in process (fsm/benches/core.rs): inputs per second with 10,000
/// accounts, and `poll_timeout()` as accounts grow.
fn core(quick: bool, report: &mut Report) {
    let f = core_bench::measure(quick);
    report.detail("core_authorisation_flows_per_s", f.flows_per_s);
    report.figure(
        "core_show_inputs_per_s",
        "core: show inputs/s, 10,000 accounts",
        f.show_per_s,
        "/s",
        None,
        "",
    );
    report.figure(
        "core_mix_inputs_per_s",
        "core: mixed inputs/s, 10,000 accounts",
        f.mix_per_s,
        "/s",
        None,
        "",
    );
    for (n, ns) in &f.poll_timeout_ns {
        report.detail(format!("core_poll_timeout_ns_{n}_accounts"), *ns);
    }
    let (few, many) = (
        f.poll_timeout_ns.first().map_or(0, |p| p.0),
        f.poll_timeout_ns.last().map_or(0, |p| p.0),
    );
    report.detail("core_poll_timeout_accounts_ratio", many as f64 / few as f64);
    report.figure(
        "core_poll_timeout_growth",
        "core: poll_timeout() growth, 10 to most accounts",
        f.poll_timeout_growth(),
        "x",
        Some(Target::AtMost(10.0)),
        "",
    );
}

fn make_fifo(path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("fifo path");
    // SAFETY: `c` is a valid nul-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// Opens the FIFO for reading without waiting for a writer.
fn open_fifo(path: &std::path::Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .expect("open fifo")
}

/// Waits until the FIFO has data (the start-up command wrote it), at most `timeout`;
/// empties it.
fn wait_readable(f: &std::fs::File, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if rc > 0 && pfd.revents & libc::POLLIN != 0 {
            let mut buf = [0u8; 64];
            use std::io::Read;
            let _ = (&*f).read(&mut buf);
            return true;
        }
    }
}

/// Runs `job` `total` times on `workers` threads; returns the wall time and latencies.
fn parallel(workers: usize, total: usize, job: impl Fn() -> f64 + Sync) -> (Duration, Vec<f64>) {
    let next = AtomicUsize::new(0);
    let all = Mutex::new(Vec::with_capacity(total));
    let t0 = Instant::now();
    thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut mine = Vec::new();
                for _ in 0..total {
                    if next.fetch_add(1, Ordering::SeqCst) >= total {
                        break;
                    }
                    mine.push(job());
                }
                lock(&all).append(&mut mine);
            });
        }
    });
    let elapsed = t0.elapsed();
    (elapsed, all.into_inner().unwrap_or_default())
}

/// Runs a command to completion with stdout and stderr piped, as a mail program runs a
/// password command; returns the microseconds it took. With `expect`, checks stdout.
fn timed(cmd: &mut Command, expect: Option<&str>) -> f64 {
    let t0 = Instant::now();
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run a command");
    let us = t0.elapsed().as_secs_f64() * 1e6;
    if let Some(token) = expect {
        let printed = out.stdout.strip_suffix(b"\n").unwrap_or(&out.stdout);
        assert!(
            out.status.success() && printed == token.as_bytes(),
            "show failed after {us:.0} us ({cmd:?}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    us
}

fn wait_for_token(daemon: &Daemon, name: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(t) = daemon.token(name) {
            return Some(t);
        }
        thread::sleep(Duration::from_millis(2));
    }
    None
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn median(v: &mut [f64]) -> f64 {
    percentile(v, 0.5)
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn ms_since(from: Instant, to: Instant) -> f64 {
    if to >= from {
        (to - from).as_secs_f64() * 1e3
    } else {
        -((from - to).as_secs_f64() * 1e3)
    }
}

fn sleep_until(t: Instant) {
    let left = t.saturating_duration_since(Instant::now());
    thread::sleep(left);
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn cores() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

fn print_table(report: &Report) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<52} {:>12} {:<6} {:>10} {:>12} pass",
        "figure", "value", "unit", "target", "1.1.0"
    );
    for f in &report.figures {
        let target = f.target.map_or_else(String::new, Target::text);
        let pass = match f.target {
            Some(t) if t.met(f.value) => "ok",
            Some(_) => "MISS",
            None => "",
        };
        let _ = writeln!(
            out,
            "{:<52} {:>12} {:<6} {:>10} {:>12} {}",
            f.label,
            format_value(f.value),
            f.unit,
            target,
            f.old,
            pass
        );
    }
    let _ = writeln!(out, "\nsupporting numbers:");
    for (k, v) in &report.details {
        let _ = writeln!(out, "  {k:<44} {}", format_value(*v));
    }
    println!("{out}");
}

fn format_value(v: f64) -> String {
    if !v.is_finite() {
        format!("{v}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn write_json(report: &Report, scale: Scale, quick: bool) -> String {
    let figures: Vec<serde_json::Value> = report
        .figures
        .iter()
        .map(|f| {
            serde_json::json!({
                "key": f.key,
                "label": f.label,
                "value": json_number(f.value),
                "unit": f.unit,
                "target": f.target.map(Target::text),
                "pass": f.target.map(|t| t.met(f.value)),
                "pizauth_1_1_0": f.old,
            })
        })
        .collect();
    let details: serde_json::Map<String, serde_json::Value> = report
        .details
        .iter()
        .map(|(k, v)| (k.clone(), json_number(*v)))
        .collect();
    let json = serde_json::json!({
        "binary": daemon::bin(),
        "cores": cores(),
        "quick": quick,
        "scale": format!("{scale:?}"),
        "unix_time": unix_ms() / 1000,
        "figures": figures,
        "details": details,
    });
    // The binary is `<target>/release/pizauth`.
    let target = std::path::Path::new(CARGO_BIN)
        .parent()
        .and_then(|p| p.parent())
        .map_or_else(|| std::path::PathBuf::from("target"), |p| p.to_path_buf());
    let dir = target.join("bench");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("figures.json");
    let text = serde_json::to_string_pretty(&json).unwrap_or_default();
    std::fs::write(&path, text + "\n").expect("write figures.json");
    path.display().to_string()
}

fn json_number(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}
