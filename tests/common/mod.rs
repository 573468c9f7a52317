//! The end-to-end harness: the real `pizauth` binary in a private sandbox, a scriptable
//! fake OAuth2 provider ([`provider`]), a tiny browser ([`browser`]) and test TLS
//! ([`tls`]).
//!
//! Every test makes its own [`Sandbox`]: a fresh temporary directory holding the config,
//! `$XDG_RUNTIME_DIR`, files that commands run by the server write to, and the server's
//! log. Dropping the sandbox stops the server and removes the directory; if the test is
//! failing, the server's log is printed first. Nothing waits a fixed time: every wait
//! polls a condition with a bounded deadline ([`wait_for`]).

// Each test file uses a different part of the harness.
#![allow(dead_code)]

pub mod browser;
pub mod provider;
pub mod tls;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use provider::Provider;

/// The path of the binary under test.
pub const PIZAUTH: &str = env!("CARGO_BIN_EXE_pizauth");
/// What every client prints when no server answers.
pub const NOT_RUNNING: &str = "ERROR pizauth authenticator not running or not responding\n";
/// The page the redirect listener shows once it has a code.
pub const PROCESSING_PAGE: &str =
    "pizauth processing authentication: you can safely close this page.";
/// The start of `show`'s error when the account has no token.
pub const UNAVAILABLE_WITH_URL: &str = "ERROR Access token unavailable until authorised with URL ";
/// `show -u`'s error when the account has no token.
pub const UNAVAILABLE: &str = "ERROR Access token unavailable until authorised\n";
/// The longest any single wait in these tests may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);
/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(25);

/// Polls `f` every [`POLL`] until it returns `Some`, for at most `timeout`; panics
/// naming `what` if it never does.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return t;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// What a client command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The exit code (-1 if killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success with exactly this on stdout and nothing on stderr.
    #[track_caller]
    pub fn ok(&self, stdout: &str) {
        assert_eq!(
            (self.code, self.stdout.as_str(), self.stderr.as_str()),
            (0, stdout, ""),
            "unexpected result"
        );
    }

    /// Asserts failure (exit 1) with exactly this on stderr and nothing on stdout.
    #[track_caller]
    pub fn fails(&self, stderr: &str) {
        assert_eq!(
            (self.code, self.stdout.as_str(), self.stderr.as_str()),
            (1, "", stderr),
            "unexpected result"
        );
    }
}

/// A private directory with a config, a runtime directory and (once started) a server.
pub struct Sandbox {
    pub dir: PathBuf,
    /// The server started with `-d`, if any.
    server: Option<Child>,
    /// Extra environment for the server and every client.
    env: Vec<(String, String)>,
    /// Environment variables left out.
    unset: Vec<String>,
    /// Whether a daemonised server may be running (stopped with `shutdown` on drop).
    daemon: bool,
    /// No `$XDG_RUNTIME_DIR`: the runtime directory is under `$TMPDIR` instead.
    tmpdir_runtime: bool,
    /// The working directory of the server and clients (else the test's).
    cwd: Option<PathBuf>,
}

static SANDBOXES: AtomicUsize = AtomicUsize::new(0);

impl Sandbox {
    /// A new, empty sandbox; `name` only makes the directory easier to recognise.
    pub fn new(name: &str) -> Sandbox {
        let n = SANDBOXES.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("pizauth-e2e-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("run")).expect("create the sandbox");
        Sandbox {
            dir,
            server: None,
            env: Vec::new(),
            unset: Vec::new(),
            daemon: false,
            tmpdir_runtime: false,
            cwd: None,
        }
    }

    /// A path inside the sandbox.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A path inside the sandbox, as a string for a config file or shell command.
    pub fn path_str(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// The config file the server is started with.
    pub fn config_path(&self) -> PathBuf {
        self.path("pizauth.conf")
    }

    /// Writes the config file.
    pub fn write_config(&self, text: &str) {
        fs::write(self.config_path(), text).expect("write the config");
    }

    /// The server's runtime directory.
    pub fn runtime_dir(&self) -> PathBuf {
        if self.tmpdir_runtime {
            self.path("tmp").join("runtime-tester").join("pizauth")
        } else {
            self.path("run").join("pizauth")
        }
    }

    /// The server's control socket.
    pub fn socket(&self) -> PathBuf {
        self.runtime_dir().join("pizauth.sock")
    }

    /// Makes the runtime directory as the server would (private to this user), for a
    /// test that plays the server itself.
    pub fn make_runtime_dir(&self) {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.runtime_dir();
        fs::create_dir_all(&dir).expect("create the runtime directory");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
    }

    /// Leaves `$XDG_RUNTIME_DIR` unset, with `$TMPDIR` the sandbox's `tmp` (which must
    /// then hold the runtime directory).
    pub fn use_tmpdir_runtime(&mut self) {
        self.tmpdir_runtime = true;
    }

    /// Runs the server and every client in `dir`.
    pub fn set_cwd(&mut self, dir: &Path) {
        self.cwd = Some(dir.to_owned());
    }

    /// Adds an environment variable for the server and every client.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Leaves `key` out of the environment of every command from now on (even those the
    /// sandbox sets itself, such as `SHELL`).
    pub fn unset_env(&mut self, key: &str) {
        self.unset.push(key.to_owned());
    }

    /// `pizauth ARGS` with the sandbox's environment and nothing else of ours.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(PIZAUTH);
        c.args(args)
            .env_clear()
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("USER", "tester")
            .env("TZ", "UTC")
            .env("SHELL", "/bin/sh")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        for key in &self.unset {
            c.env_remove(key);
        }
        if self.tmpdir_runtime {
            c.env_remove("XDG_RUNTIME_DIR")
                .env("TMPDIR", self.path("tmp"));
        }
        if let Some(dir) = &self.cwd {
            c.current_dir(dir);
        }
        c
    }

    /// Runs a client command to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, b"")
    }

    /// Runs a client command with `input` on its stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pizauth");
        let mut stdin = child.stdin.take().expect("stdin");
        // A client that stops reading early is not our failure to report.
        let _ = stdin.write_all(input);
        drop(stdin);
        let out = child.wait_with_output().expect("wait for pizauth");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts `pizauth server -d -c CONFIG -vvvv` (stderr to `server.log`) and waits until
    /// `pizauth status` answers.
    pub fn start(&mut self) {
        self.start_with_stdin(Stdio::null());
    }

    /// [`Sandbox::start`] with `stdin` as the server's standard input.
    pub fn start_with_stdin(&mut self, stdin: Stdio) {
        let child = self.spawn_server_with_stdin(stdin);
        self.server = Some(child);
        self.wait_ready();
    }

    /// [`Sandbox::start`] with the server's limit on open files set to `max_fds`.
    pub fn start_with_fd_limit(&mut self, max_fds: u64) {
        self.start_with_fd_limits(max_fds, max_fds);
    }

    /// [`Sandbox::start`] with the server's soft and hard limits on open files set.
    pub fn start_with_fd_limits(&mut self, soft: u64, hard: u64) {
        use std::os::unix::process::CommandExt;
        let mut command = self.server_command(Stdio::null());
        // rlim_t is unsigned on Linux and macOS, signed on the BSDs.
        #[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
        let limit = |n: u64| libc::rlim_t::try_from(n).unwrap_or(libc::rlim_t::MAX);
        let (soft, hard) = (limit(soft), limit(hard));
        // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        self.server = Some(command.spawn().expect("start the server"));
        self.wait_ready();
    }

    /// Starts the server in the foreground without waiting for it.
    pub fn spawn_server(&self) -> Child {
        self.spawn_server_with_stdin(Stdio::null())
    }

    fn spawn_server_with_stdin(&self, stdin: Stdio) -> Child {
        self.server_command(stdin)
            .spawn()
            .expect("start the server")
    }

    fn server_command(&self, stdin: Stdio) -> Command {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("server.log"))
            .expect("open the server log");
        let config = self.config_path();
        let mut command =
            self.command(&["server", "-d", "-c", &config.display().to_string(), "-vvvv"]);
        command.stdin(stdin).stdout(Stdio::null()).stderr(log);
        command
    }

    /// Waits until `status` succeeds; fails at once if the server has exited.
    pub fn wait_ready(&mut self) {
        wait_for("the server to answer `status`", WAIT, || {
            if let Some(child) = &mut self.server
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("the server exited early ({status})");
            }
            (self.run(&["status"]).code == 0).then_some(())
        });
    }

    /// The server process started by [`start`](Self::start).
    pub fn server(&mut self) -> &mut Child {
        self.server.as_mut().expect("a server was started")
    }

    /// The server's process id.
    pub fn server_pid(&mut self) -> u32 {
        self.server().id()
    }

    /// How many file descriptors the server has open (sockets included).
    pub fn server_fds(&mut self) -> usize {
        let dir = format!("/proc/{}/fd", self.server_pid());
        fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .count()
    }

    /// Sends `request` as it is on a connection of its own to the control socket, closes
    /// the write half, and returns whatever the server answered before closing.
    pub fn control_raw(&self, request: &[u8]) -> String {
        let mut s =
            std::os::unix::net::UnixStream::connect(self.socket()).expect("connect the socket");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        // The server may answer (and close) before taking everything.
        let _ = s.write_all(request);
        let _ = s.shutdown(std::net::Shutdown::Write);
        String::from_utf8_lossy(&read_all(&mut s)).into_owned()
    }

    /// Forgets the server process (a test that stopped it itself).
    pub fn take_server(&mut self) -> Option<Child> {
        self.server.take()
    }

    /// Marks that a daemonised server may run here, to be shut down on drop.
    pub fn expect_daemon(&mut self) {
        self.daemon = true;
    }

    /// Sends `signal` to the server.
    pub fn signal(&mut self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.server().id()).expect("pid");
        // SAFETY: the child is ours and not yet reaped, so the pid is still its.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill");
    }

    /// Waits for the server to exit and returns its exit code.
    pub fn wait_server_exit(&mut self) -> Option<i32> {
        let child = self.server.as_mut().expect("a server was started");
        let status = wait_for("the server to exit", WAIT, || {
            child.try_wait().expect("try_wait")
        });
        self.server = None;
        status.code()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.path("server.log")).unwrap_or_default()
    }

    /// The contents of a file in the sandbox (empty if it does not exist yet).
    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// The lines of a file in the sandbox.
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.read(name).lines().map(str::to_owned).collect()
    }

    /// Waits until file `name` has at least `n` lines, and returns them.
    pub fn wait_lines(&self, name: &str, n: usize) -> Vec<String> {
        wait_for(&format!("{n} lines in {name}"), WAIT, || {
            let lines = self.lines(name);
            (lines.len() >= n).then_some(lines)
        })
    }

    /// `pizauth info -j`, parsed.
    pub fn info_json(&self) -> serde_json::Value {
        let run = self.run(&["info", "-j"]);
        assert_eq!(run.code, 0, "info -j: {run:?}");
        serde_json::from_str(&run.stdout).expect("info -j prints JSON")
    }

    /// The HTTP redirect listener's port.
    pub fn http_port(&self) -> u16 {
        let info = self.info_json();
        let port = info["server_info"]["http_port"]
            .as_str()
            .expect("http_port is a string");
        port.parse().expect("http_port is a number")
    }

    /// The URL `show ACCOUNT` hands out (the account must have no token).
    #[track_caller]
    pub fn auth_url(&self, account: &str) -> String {
        let run = self.run(&["show", account]);
        assert_eq!((run.code, run.stdout.as_str()), (1, ""), "show: {run:?}");
        let url = run
            .stderr
            .strip_prefix(UNAVAILABLE_WITH_URL)
            .and_then(|s| s.strip_suffix('\n'))
            .unwrap_or_else(|| panic!("show gave no URL: {:?}", run.stderr));
        assert!(!url.contains('\n'), "one line: {url:?}");
        url.to_owned()
    }

    /// Waits until `show ACCOUNT` prints exactly `token`.
    pub fn wait_token(&self, account: &str, token: &str) {
        let want = format!("{token}\n");
        wait_for(&format!("`show {account}` to print {token}"), WAIT, || {
            let run = self.run(&["show", account]);
            (run.code == 0 && run.stdout == want && run.stderr.is_empty()).then_some(())
        });
    }

    /// The whole authorisation of `account`: `show` for the URL, the browser through the
    /// provider to our redirect listener (which must answer with the processing page),
    /// then `show` until it prints `token`. The provider must have the token response
    /// scripted. Returns the URL.
    pub fn authorise(&self, account: &str, token: &str) -> String {
        let url = self.auth_url(account);
        let visit = browser::visit(&url, None).expect("the browser flow");
        assert_eq!(
            (visit.page.status, visit.page.body.as_str()),
            (200, PROCESSING_PAGE),
            "redirect page for {}",
            visit.redirect
        );
        self.wait_token(account, token);
        url
    }

    /// The line `status` prints for `account`.
    pub fn status_of(&self, account: &str) -> String {
        let run = self.run(&["status"]);
        assert_eq!(run.code, 0, "status: {run:?}");
        let prefix = format!("{account}: ");
        run.stdout
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no status line for {account}: {:?}", run.stdout))
            .to_owned()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: the child is ours and not yet reaped.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.daemon && self.socket().exists() {
            let _ = self.run(&["shutdown"]);
        }
        if std::thread::panicking() {
            eprintln!(
                "---- server log of {} ----\n{}---- end of server log ----",
                self.dir.display(),
                self.log()
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// An account block for `provider`, with `extra` options inside the braces.
pub fn account(name: &str, provider: &Provider, extra: &str) -> String {
    format!(
        "account \"{name}\" {{\n    auth_uri = \"{}\";\n    token_uri = \"{}\";\n    \
         client_id = \"client-{name}\";\n{extra}\n}}\n",
        provider.url("/authorize"),
        provider.url("/token"),
    )
}

/// `s` escaped for the inside of a config string.
pub fn config_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A shell command (for `*_cmd` options) appending `line` to `file`; `line` may name
/// `$PIZAUTH_*` variables. The result is escaped for the inside of a config string.
pub fn append_cmd(file: &Path, line: &str) -> String {
    config_string(&format!(
        "printf '%s\\n' \"{line}\" >> '{}'",
        file.display()
    ))
}

/// The unix time in seconds an RFC 2822 date in UTC (`Sat, 28 Nov 2026 18:30:07 +0000`)
/// stands for, or `None` if `s` is not one.
pub fn parse_rfc2822_utc(s: &str) -> Option<i64> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (weekday, rest) = s.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "+0000"] = parts.as_slice() else {
        return None;
    };
    let two = |t: &str| (t.len() == 2).then(|| t.parse::<i64>().ok()).flatten();
    let day = two(day)?;
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time.split(':').map(two).collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    let days = days_from_civil(year, month, day);
    if DAYS[days.rem_euclid(7) as usize] != weekday {
        return None;
    }
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Count years from March, so that the leap day ends a year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The unix time now, in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Asserts that `date` is an RFC 2822 UTC date within `slack` seconds of `expected`.
#[track_caller]
pub fn assert_time_near(date: &str, expected: i64, slack: i64) {
    let t = parse_rfc2822_utc(date).unwrap_or_else(|| panic!("not an RFC 2822 date: {date:?}"));
    assert!(
        (t - expected).abs() <= slack,
        "{date} is not within {slack} s of unix time {expected}"
    );
}

/// `n` pseudo-random bytes from `seed` (xorshift: repeatable, no dependency).
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Raises this process's soft limit on open files to its hard limit (servers started
/// afterwards inherit it), for tests that open a thousand sockets.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit, written by the first call and read by the second.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// Processes running exactly `argv` (zombies, whose command line is gone, excluded).
pub fn processes_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

/// A port on 127.0.0.1 that nothing listens on, for a provider that comes and goes.
///
/// It is taken below the kernel's ephemeral range, where nothing bound to port 0 (another
/// test's provider, the local end of any connection) can land on it in the meantime and
/// keep it from being bound again. Ports are handed out in turn from a place that depends
/// on the process, so concurrent tests (and test processes) get different ones.
pub fn closed_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let low: u16 = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let span = usize::from(low.saturating_sub(1024)).clamp(1, 16384);
    let start = std::process::id() as usize * 97;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = low - 1 - offset as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {low}");
}

/// Reads everything from `r` until EOF or an error (such as the socket's read timeout);
/// what was read either way.
pub fn read_all(r: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A sandbox whose account `work` has these extra options, started, and authorised with
/// access token `fake-access-1`, refresh token `fake-refresh-1` and `expires_in`; the
/// token endpoint answers the refreshes that follow with `then`. `token_event_cmd` and
/// `error_notify_cmd` write to `events.log` and `errors.log`.
pub fn authorised(
    name: &str,
    provider: &Provider,
    options: &str,
    expires_in: u64,
    then: impl IntoIterator<Item = provider::Reply>,
) -> Sandbox {
    let mut sb = Sandbox::new(name);
    let events = sb.path("events.log");
    let errors = sb.path("errors.log");
    sb.write_config(&format!(
        "token_event_cmd = \"{}\";\nerror_notify_cmd = \"{}\";\n{}",
        append_cmd(&events, "$PIZAUTH_ACCOUNT|$PIZAUTH_EVENT"),
        append_cmd(&errors, "$PIZAUTH_ACCOUNT|$PIZAUTH_MSG"),
        account("work", provider, options)
    ));
    sb.set_env("PIZAUTH_TEST_TUNABLES", "http_timeout_ms=1000");
    sb.start();
    provider.push([provider::Reply::token(
        "fake-access-1",
        Some("fake-refresh-1"),
        Some(expires_in),
    )]);
    provider.push(then);
    sb.authorise("work", "fake-access-1");
    sb
}
