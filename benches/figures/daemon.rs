//! The real `pizauth` binary as a user runs it: a private sandbox (config and runtime
//! directories), `pizauth server -d`, its clients, and what `/proc` says about it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary cargo built for this bench (the `bench` profile inherits `release`).
pub const CARGO_BIN: &str = env!("CARGO_BIN_EXE_pizauth");

/// The binary under test: [`CARGO_BIN`], or `$PIZAUTH_BENCH_BIN` to measure another build
/// (say, one with different compiler flags) with the same bench.
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("PIZAUTH_BENCH_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| CARGO_BIN.to_owned())
    })
}

/// A temporary home for one daemon: its config and runtime directory.
pub struct Sandbox {
    pub dir: PathBuf,
}

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("pizauth-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run")).expect("sandbox directory");
        Sandbox { dir }
    }

    pub fn runtime(&self) -> PathBuf {
        self.dir.join("run")
    }

    pub fn socket(&self) -> PathBuf {
        self.runtime().join("pizauth").join("pizauth.sock")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("pizauth.conf")
    }

    /// Writes a config of `accounts` accounts named by [`account_name`], all using the
    /// provider at `port`, with `globals` (extra global statements) first.
    pub fn write_config(&self, accounts: usize, port: u16, globals: &str) {
        let mut text = String::with_capacity(200 * accounts + 200);
        text.push_str("http_listen = \"127.0.0.1:0\";\n");
        text.push_str(globals);
        for i in 0..accounts {
            let name = account_name(i);
            text.push_str(&format!(
                "account \"{name}\" {{\n    auth_uri = \"http://127.0.0.1:{port}/authorize\";\n    token_uri = \"http://127.0.0.1:{port}/token\";\n    client_id = \"cid-{name}\";\n    scopes = [\"mail\", \"offline_access\"];\n}}\n"
            ));
        }
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// A command for the binary with this sandbox's environment only.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("HOME", &self.dir)
            .env("XDG_RUNTIME_DIR", self.runtime())
            .env("PATH", "/usr/bin:/bin")
            .env("SHELL", "/bin/sh")
            .env("USER", "bench")
            .stdin(Stdio::null());
        c
    }

    /// Starts `pizauth server -d` and waits (at most 10 s) until it answers on its socket.
    pub fn start(&self) -> Daemon {
        let child = self.spawn_server();
        let daemon = Daemon {
            child,
            socket: self.socket(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if UnixStream::connect(&daemon.socket).is_ok() {
                return daemon;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!(
            "the server did not start; see {}",
            self.dir.join("server.log").display()
        );
    }

    /// Spawns `pizauth server -d -c <config>` without waiting for it.
    pub fn spawn_server(&self) -> Child {
        let log = std::fs::File::create(self.dir.join("server.log")).expect("server log");
        self.command(bin())
            .arg("server")
            .arg("-d")
            .arg("-c")
            .arg(self.config_path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn the server")
    }

    /// Runs the client binary with `args`.
    pub fn client(&self, args: &[&str]) -> Output {
        self.command(bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run the client")
    }

    /// Runs `pizauth show NAME` and returns the token it printed, if any.
    pub fn show(&self, name: &str) -> Result<String, String> {
        let out = self.client(&["show", name]);
        if out.status.success() {
            let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
            if s.ends_with('\n') {
                s.pop();
            }
            Ok(s)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The name of account `i`.
pub fn account_name(i: usize) -> String {
    format!("a{i:05}")
}

/// A running server.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks it to shut down (SIGTERM) and waits at most 10 s for it to exit.
    pub fn stop(mut self) {
        // SAFETY: plain system call on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What `/proc` says about the daemon now.
    pub fn proc(&self) -> ProcSample {
        ProcSample::read(self.pid())
    }

    /// One control request, sent as the `pizauth` client sends it (JSON, write half
    /// shut, reply read to EOF), bounded by 10 s. Returns the reply as JSON.
    pub fn request(&self, json: &str) -> io::Result<serde_json::Value> {
        request(&self.socket, json.as_bytes())
    }

    /// The token `show` would print for `name`, in-process (for checks of 1,000 accounts,
    /// where spawning the client 1,000 times would measure the checks, not the daemon).
    pub fn token(&self, name: &str) -> Option<String> {
        let req = format!("{{\"cmd\":\"show\",\"account\":\"{name}\",\"with_url\":false}}");
        let reply = self.request(&req).ok()?;
        (reply["reply"] == "token")
            .then(|| reply["token"].as_str().map(str::to_owned))
            .flatten()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn request(socket: &Path, bytes: &[u8]) -> io::Result<serde_json::Value> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(bytes)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut reply = Vec::new();
    s.take(64 << 20).read_to_end(&mut reply)?;
    serde_json::from_slice(&reply).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Memory, threads, descriptors, CPU and context switches of a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    /// VmRSS, KiB.
    pub rss_kib: u64,
    /// RssAnon, KiB: the process's own memory (heap, stacks, written data), not the
    /// shared and reclaimable file-backed pages of the binary and libc.
    pub anon_kib: u64,
    pub threads: u64,
    pub fds: u64,
    /// Time on CPU summed over its threads (`/proc/<pid>/task/*/schedstat`), ns.
    pub cpu_ns: u64,
    /// Voluntary plus involuntary context switches summed over its threads.
    pub ctx_switches: u64,
}

impl ProcSample {
    pub fn read(pid: u32) -> ProcSample {
        let (rss_kib, threads) = rss_threads(pid);
        let anon_kib = status_field(
            &std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default(),
            "RssAnon:",
        );
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
        let (cpu_ns, ctx_switches) = cpu_and_switches(pid);
        ProcSample {
            rss_kib,
            anon_kib,
            threads,
            fds,
            cpu_ns,
            ctx_switches,
        }
    }
}

/// VmRSS (KiB) and Threads from `/proc/<pid>/status`: cheap enough to sample every
/// millisecond.
pub fn rss_threads(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (
        status_field(&status, "VmRSS:"),
        status_field(&status, "Threads:"),
    )
}

fn status_field(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Daemon CPU time (ns, first field of each thread's schedstat) and context switches.
pub fn cpu_and_switches(pid: u32) -> (u64, u64) {
    let (mut cpu, mut switches) = (0, 0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for task in tasks.flatten().take(10_000) {
        let path = task.path();
        let sched = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
        cpu += sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        switches += status_field(&status, "voluntary_ctxt_switches:")
            + status_field(&status, "nonvoluntary_ctxt_switches:");
    }
    (cpu, switches)
}

/// The daemon's CPU time alone (ns), for before/after deltas.
pub fn cpu_ns(pid: u32) -> u64 {
    cpu_and_switches(pid).0
}

/// One authorisation flow as a user's browser completes it: `pizauth show` prints the
/// URL, and the "browser" brings the `state` back to the redirect listener with a code.
/// Returns once the listener has answered 200 (the code exchange follows in the daemon).
pub fn authorise(sandbox: &Sandbox, name: &str) -> Result<(), String> {
    let err = match sandbox.show(name) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let url = err
        .trim_end()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http"))
        .ok_or_else(|| format!("no URL in {err:?}"))?;
    let state = query_value(url, "state").ok_or("no state in the URL")?;
    let redirect = query_value(url, "redirect_uri").ok_or("no redirect_uri in the URL")?;
    let port: u16 = redirect
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("no port in redirect_uri")?;
    let target = format!("/?state={state}&code=code-{name}");
    let status = http_get(port, &target).map_err(|e| format!("redirect: {e}"))?;
    if status == 200 {
        Ok(())
    } else {
        Err(format!("redirect answered {status}"))
    }
}

/// The raw (still percent-encoded, except for `%3A`/`%2F`) value of a URL's query key.
fn query_value(url: &str, key: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| crate::provider::percent_decode(v.as_bytes()))
    })
}

/// A GET on 127.0.0.1:`port` with a `Host: localhost` header; returns the status.
fn http_get(port: u16, target: &str) -> io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    let req =
        format!("GET {target} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())?;
    let mut resp = Vec::new();
    s.take(64 * 1024).read_to_end(&mut resp)?;
    let line = String::from_utf8_lossy(&resp);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no status line"))
}
