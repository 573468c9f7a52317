//! Real mail programs with the README's own configuration, against dovecot, whose `oauth2`
//! passdb checks every token at the introspection endpoint of a real OpenID Connect
//! provider (node's `oidc-provider`, see `tests/interop/provider.mjs`): mbsync (isync),
//! through the Cyrus SASL XOAUTH2 plugin the README names, syncs a mailbox from dovecot's
//! IMAP service, and msmtp sends mail through dovecot's submission service (which relays
//! it to aiosmtpd). Each does so with the first token and again after pizauth has
//! refreshed it. Everything runs on 127.0.0.1.
//!
//! The configurations are the README's blocks, read from README.md, with only their host,
//! port and TLS settings changed (and, for isync before 1.5, `TLSType` spelt `SSLType`, as
//! the README says), so the two cannot drift apart.
//!
//! Needs root (dovecot runs its processes as its own users), dovecot with its submission
//! service, mbsync and the plugin, msmtp and aiosmtpd: `.ci/run` installs them. Without them these tests fail when `CI=true` and
//! otherwise say loudly that they did not run.

mod common;

#[path = "interop/harness.rs"]
mod harness;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PIZAUTH, Sandbox, WAIT, wait_for};
use harness::*;

/// The README's mbsync block.
fn readme_mbsync_block() -> String {
    readme_block("**mbsync / isync**")
}

/// The first `text` block of README.md after `heading`.
fn readme_block(heading: &str) -> String {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let from = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README.md has no {heading}"));
    let rest = &readme[from..];
    let start = rest.find("```text\n").expect("a text block") + "```text\n".len();
    let end = rest[start..].find("```").expect("the block ends") + start;
    rest[start..end].to_owned()
}

/// Whether this system's isync is older than 1.5 (then `TLSType` is `SSLType`).
fn isync_before_1_5() -> bool {
    let out = Command::new("mbsync")
        .arg("--version")
        .output()
        .expect("mbsync");
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(1).unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) < (1, 5)
}

/// The README's block with the host, port and TLS changed: a server on 127.0.0.1:`port`
/// without TLS.
fn mbsyncrc(port: u16) -> String {
    let block = readme_mbsync_block();
    let mut out = String::new();
    let mut changed = 0;
    for line in block.lines() {
        if line.starts_with("Host ") {
            out.push_str(&format!("Host 127.0.0.1\nPort {port}\n"));
            changed += 1;
        } else if line.starts_with("TLSType ") {
            let keyword = if isync_before_1_5() {
                "SSLType"
            } else {
                "TLSType"
            };
            out.push_str(&format!("{keyword} None\n"));
            changed += 1;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert_eq!(
        changed, 2,
        "the README's mbsync block changed shape:\n{block}"
    );
    assert!(out.contains("PassCmd \"pizauth show work\""), "{out}");
    assert!(out.contains("AuthMechs XOAUTH2"), "{out}");
    out
}

/// The README's msmtp block with the host, port and TLS changed: dovecot's submission
/// service on 127.0.0.1:`port` without TLS.
fn msmtprc(port: u16) -> String {
    let block = readme_block("**msmtp**");
    let mut out = String::new();
    let mut changed = 0;
    for line in block.lines() {
        let line = match line {
            l if l.starts_with("host ") => "host 127.0.0.1".to_owned(),
            l if l.starts_with("port ") => format!("port {port}"),
            "tls on" => "tls off".to_owned(),
            "tls_starttls on" => "tls_starttls off".to_owned(),
            l => {
                out.push_str(l);
                out.push('\n');
                continue;
            }
        };
        changed += 1;
        out.push_str(&line);
        out.push('\n');
    }
    assert_eq!(
        changed, 4,
        "the README's msmtp block changed shape:\n{block}"
    );
    assert!(out.contains("passwordeval pizauth show work"), "{out}");
    assert!(out.contains("auth xoauth2"), "{out}");
    out
}

/// What is missing to run these tests, if anything.
fn missing() -> Option<String> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Some("root (dovecot runs as its own users)".into());
    }
    for (program, package) in [
        ("dovecot", "dovecot-core dovecot-imapd"),
        ("mbsync", "isync"),
        ("msmtp", "msmtp"),
        ("node", "nodejs"),
    ] {
        if Command::new(program).arg("--version").output().is_err() {
            return Some(format!("{program} (apt-get install {package})"));
        }
    }
    let plugin = [
        "/usr/lib/x86_64-linux-gnu/sasl2",
        "/usr/lib/aarch64-linux-gnu/sasl2",
        "/usr/lib/sasl2",
    ]
    .iter()
    .any(|d| Path::new(d).join("libkdexoauth2.so").exists());
    if !Path::new("/usr/lib/dovecot/submission").exists() {
        return Some("dovecot's submission service (apt-get install dovecot-submissiond)".into());
    }
    let sink = Command::new("/usr/bin/python3")
        .args(["-c", "import aiosmtpd"])
        .status();
    if !sink.is_ok_and(|s| s.success()) {
        return Some("aiosmtpd (apt-get install python3-aiosmtpd)".into());
    }
    (!plugin)
        .then(|| "the XOAUTH2 SASL plugin (apt-get install libsasl2-modules-kdexoauth2)".into())
}

/// Returns false (outside CI only) if the tests cannot run here.
fn can_run() -> bool {
    match missing() {
        None => true,
        Some(what) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{what} is missing: in CI the mail interop test must run")
        }
        Some(what) => {
            eprintln!("NOT RUN: {what} is missing");
            false
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A dovecot of our own, in the foreground, on 127.0.0.1 without TLS; its `oauth2`
/// passdb asks the provider's introspection endpoint about each token.
struct Dovecot {
    child: Child,
    port: u16,
    /// The submission (SMTP) listener, which relays to `sink`.
    submission_port: u16,
    sink: Child,
    sink_out: std::path::PathBuf,
    log: std::path::PathBuf,
    mail: std::path::PathBuf,
}

impl Dovecot {
    fn start(sb: &Sandbox, oidc: &Oidc) -> Dovecot {
        let dir = sb.path("dovecot");
        let mail = dir.join("mail");
        for d in [dir.join("base"), dir.join("state"), mail.clone()] {
            fs::create_dir_all(&d).expect("dovecot dirs");
        }
        // The mail user is nobody: its home must be writable.
        fs::set_permissions(&mail, fs::Permissions::from_mode(0o777)).expect("chmod");
        let port = free_port();
        let submission_port = free_port();
        let sink_port = free_port();
        // Where dovecot's submission service relays what it accepts: aiosmtpd, which
        // prints each message it receives.
        let sink_out = dir.join("sink.out");
        let sink = Command::new("/usr/bin/python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{sink_port}"),
            ])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&sink_out).expect("sink out"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        wait_for("aiosmtpd to listen", WAIT, || {
            TcpStream::connect(("127.0.0.1", sink_port))
                .ok()
                .map(|_| ())
        });
        let introspection = oidc
            .url("token/introspection")
            .replace("http://", &format!("http://dovecot:{DOVECOT_SECRET}@"));
        let oauth2 = dir.join("oauth2.conf.ext");
        fs::write(
            &oauth2,
            format!(
                "introspection_mode = post\nintrospection_url = {introspection}\n\
                 username_attribute = sub\nactive_attribute = active\nactive_value = true\n"
            ),
        )
        .expect("oauth2 conf");
        fs::set_permissions(&oauth2, fs::Permissions::from_mode(0o644)).expect("chmod");
        let log = dir.join("dovecot.log");
        let d = dir.display();
        let conf = dir.join("dovecot.conf");
        fs::write(
            &conf,
            format!(
                "protocols = imap submission\nlisten = 127.0.0.1\nbase_dir = {d}/base\nstate_dir = {d}/state\n\
                 instance_name = pizauth-interop-{port}\nlog_path = {}\nssl = no\n\
                 disable_plaintext_auth = no\nauth_mechanisms = xoauth2 oauthbearer\n\
                 default_internal_user = dovecot\ndefault_login_user = dovenull\n\
                 mail_location = maildir:~/Maildir\nauth_debug = yes\n\
                 service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    \
                 port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
                 hostname = mail.pizauth.test\nsubmission_relay_host = 127.0.0.1\n\
                 submission_relay_port = {sink_port}\nsubmission_relay_trusted = yes\n\
                 service submission-login {{\n  inet_listener submission {{\n    \
                 address = 127.0.0.1\n    port = {submission_port}\n  }}\n  \
                 inet_listener submissions {{\n    port = 0\n  }}\n}}\n\
                 service anvil {{\n  chroot =\n}}\n\
                 passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}\n}}\n\
                 userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/mail/%u\n}}\n",
                log.display(),
                oauth2.display()
            ),
        )
        .expect("dovecot.conf");
        let child = Command::new("dovecot")
            .args(["-F", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("stderr")).expect("stderr"))
            .spawn()
            .expect("start dovecot");
        let mut dovecot = Dovecot {
            child,
            port,
            submission_port,
            sink,
            sink_out,
            log,
            mail,
        };
        wait_for("dovecot to listen", WAIT, || {
            if let Ok(Some(status)) = dovecot.child.try_wait() {
                panic!(
                    "dovecot exited ({status}): {}",
                    fs::read_to_string(dir.join("stderr")).unwrap_or_default()
                );
            }
            [port, submission_port]
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
                .then_some(())
        });
        dovecot
    }

    /// Delivers a message to `user`'s INBOX, as a local delivery agent would.
    fn deliver(&self, user: &str, name: &str, subject: &str) {
        let inbox = self.mail.join(user).join("Maildir");
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir_all(inbox.join(sub)).expect("maildir");
        }
        for d in [
            self.mail.join(user),
            inbox.clone(),
            inbox.join("new"),
            inbox.join("cur"),
            inbox.join("tmp"),
        ] {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).expect("chmod");
        }
        let file = inbox.join("new").join(name);
        fs::write(
            &file,
            format!("From: a@example.com\r\nTo: {user}\r\nSubject: {subject}\r\n\r\nHello.\r\n"),
        )
        .expect("deliver");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).expect("chmod");
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until dovecot's log (written by a process of its own, so a little later)
    /// shows `n` logins of me@example.com by `service`, and no more.
    fn wait_logins(&self, service: &str, n: usize) {
        let line = format!("{service}: Info: Login: user=<me@example.com>");
        wait_for(&format!("{n} logins in dovecot's log"), WAIT, || {
            (self.log().matches(&line).count() >= n).then_some(())
        });
        assert_eq!(self.log().matches(&line).count(), n, "{}", self.log());
    }

    /// What the relay behind the submission service has received.
    fn relayed(&self) -> String {
        fs::read_to_string(&self.sink_out).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- dovecot log ----\n{}---- end ----", self.log());
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: the child is ours and not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.sink.kill();
        let _ = self.sink.wait();
    }
}

/// Runs `mbsync -a` with `home` as its home and pizauth on its `PATH` (talking to the
/// sandbox's server), for at most 30 s. Returns (exit code, output).
fn mbsync(sb: &Sandbox, home: &Path) -> (i32, String) {
    mail_program(sb, home, &["mbsync", "-V", "-a"], None)
}

/// Runs `argv` as [`mbsync`] does, with `input` on its standard input.
fn mail_program(sb: &Sandbox, home: &Path, argv: &[&str], input: Option<&str>) -> (i32, String) {
    let bin = sb.path("bin");
    fs::create_dir_all(&bin).expect("bin");
    let link = bin.join("pizauth");
    if !link.exists() {
        std::os::unix::fs::symlink(PIZAUTH, &link).expect("symlink pizauth");
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out_file = sb.path(&format!("{}.out", argv[0]));
    let input_file = sb.path(&format!("{}.in", argv[0]));
    fs::write(&input_file, input.unwrap_or_default()).expect("input");
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("HOME", home)
        .env("PATH", path)
        .env("XDG_RUNTIME_DIR", sb.path("run"))
        .env("USER", "tester")
        .stdin(fs::File::open(&input_file).expect("input"))
        .stdout(fs::File::create(&out_file).expect("out"))
        .stderr(
            fs::File::options()
                .append(true)
                .open(&out_file)
                .expect("err"),
        )
        .spawn()
        .expect("run mbsync");
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -2;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, fs::read_to_string(&out_file).unwrap_or_default())
}

/// The subjects of the messages mbsync has copied to the local INBOX.
fn local_subjects(home: &Path) -> Vec<String> {
    let mut subjects = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = fs::read_dir(home.join("Mail/work/INBOX").join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let text = fs::read_to_string(e.path()).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.starts_with("Subject: ")) {
                subjects.push(line["Subject: ".len()..].to_owned());
            }
        }
    }
    subjects.sort();
    subjects
}

#[test]
fn mbsync_logs_in_with_the_token_before_and_after_a_refresh() {
    if !can_run() {
        return;
    }
    let mut sb = Sandbox::new("mail-mbsync");
    let Some(oidc) = Oidc::start(&sb, 60) else {
        return;
    };
    let dovecot = Dovecot::start(&sb, &oidc);
    sb.write_config(&account("work", &oidc, "pizauth-post", OFFLINE));
    sb.start();
    let first = log_in(&sb, &oidc, "work", "me@example.com");

    let home = sb.path("mail-home");
    fs::create_dir_all(home.join("Mail/work")).expect("mail dir");
    fs::write(home.join(".mbsyncrc"), mbsyncrc(dovecot.port)).expect(".mbsyncrc");

    dovecot.deliver("me@example.com", "1.test:2,", "first");
    let (code, out) = mbsync(&sb, &home);
    assert_eq!(code, 0, "mbsync with the first token:\n{out}");
    assert_eq!(local_subjects(&home), ["first"], "{out}");
    assert_eq!(wait_show(&sb, "work"), first, "still the first token");

    // pizauth refreshes the token; mbsync, run again, uses the new one.
    let run = sb.run(&["refresh", "work"]);
    assert_eq!(run.code, 0, "{run:?}");
    let second = wait_new_token(&sb, "work", &first);
    assert!(oidc.active(&second));
    dovecot.deliver("me@example.com", "2.test:2,", "second");
    let (code, out) = mbsync(&sb, &home);
    assert_eq!(code, 0, "mbsync after the refresh:\n{out}");
    assert_eq!(local_subjects(&home), ["first", "second"], "{out}");
    // Dovecot asked the provider both times, and the provider said yes.
    dovecot.wait_logins("imap-login", 2);
}

#[test]
fn msmtp_sends_with_the_token_before_and_after_a_refresh() {
    if !can_run() {
        return;
    }
    let mut sb = Sandbox::new("mail-msmtp");
    let Some(oidc) = Oidc::start(&sb, 60) else {
        return;
    };
    let dovecot = Dovecot::start(&sb, &oidc);
    sb.write_config(&account("work", &oidc, "pizauth-post", OFFLINE));
    sb.start();
    let first = log_in(&sb, &oidc, "work", "me@example.com");
    let home = sb.path("mail-home");
    fs::create_dir_all(&home).expect("home");
    let rc = home.join(".msmtprc");
    fs::write(&rc, msmtprc(dovecot.submission_port)).expect(".msmtprc");
    fs::set_permissions(&rc, fs::Permissions::from_mode(0o600)).expect("chmod");
    let rc = rc.display().to_string();
    let send = |subject: &str| {
        let message = format!(
            "From: me@example.com\r\nTo: you@example.com\r\nSubject: {subject}\r\n\r\nHello.\r\n"
        );
        let argv = ["msmtp", "-C", &rc, "-a", "work", "you@example.com"];
        mail_program(&sb, &home, &argv, Some(&message))
    };

    let (code, out) = send("sent with the first token");
    assert_eq!(
        code,
        0,
        "msmtp with the first token:\n{out}\n{}",
        dovecot.log()
    );
    wait_for("the relay to get the first message", WAIT, || {
        dovecot
            .relayed()
            .contains("Subject: sent with the first token")
            .then_some(())
    });

    let run = sb.run(&["refresh", "work"]);
    assert_eq!(run.code, 0, "{run:?}");
    let second = wait_new_token(&sb, "work", &first);
    assert!(oidc.active(&second));
    let (code, out) = send("sent after the refresh");
    assert_eq!(
        code,
        0,
        "msmtp after the refresh:\n{out}\n{}",
        dovecot.log()
    );
    wait_for("the relay to get the second message", WAIT, || {
        dovecot
            .relayed()
            .contains("Subject: sent after the refresh")
            .then_some(())
    });
    dovecot.wait_logins("submission-login", 2);
}
