//! The documentation, checked against the code so that the two cannot drift apart.
//!
//! - The manual pages pass `mandoc -T lint` (mandoc must be installed: without it these
//!   tests fail and say so), `docs/pizauth.conf.5` documents exactly the options the
//!   parser knows, and `docs/pizauth.1` exactly the commands and flags of `pizauth --help`.
//! - Every configuration in the documentation parses without errors or warnings: the
//!   blocks tagged `conf` in README.md, the literal blocks of `docs/pizauth.conf.5`, and
//!   `docs/pizauth.conf.example`. A README block that looks like a pizauth configuration
//!   but is not tagged `conf` is an error, so that none escapes the check.
//! - The shell completions offer exactly the commands and flags of `pizauth --help`, and
//!   account names from a running server or from the config file (bash always; fish and
//!   zsh when installed).
//! - `install.sh` puts each file where README.md and `pizauth(1)` say, and the systemd
//!   unit runs the binary `cargo install` made.
//! - The server behaves as the systemd unit relies on (`READY=1` once the socket accepts
//!   requests), and the README's recipes for keeping tokens across restarts work, with
//!   `base64` standing in for age and gpg.
//!
//! Each test works in its own directory under the system's temporary directory, starts
//! its own servers (on port 0), and waits for them by polling with a deadline.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pizauth_fsm::Config;

/// The `pizauth` binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_pizauth");
/// How long a server may take to start, stop or run a command.
const PATIENCE: Duration = Duration::from_secs(10);

/// A file of the repository.
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `program`, or fails the test saying how to install it.
fn run(command: &mut Command, program: &str, install: &str) -> Output {
    match command.output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("{program} is not installed, so this check cannot run: install it ({install})")
        }
        Err(e) => panic!("cannot run {program}: {e}"),
    }
}

/// Whether `program` can be run (for the optional shells).
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

// ---------------------------------------------------------------------------------------
// The command line, as `pizauth --help` prints it.

/// One line of the usage: the command and its flags, e.g. `("server", ["-c", "-d", "-v"])`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct UsageLine {
    command: String,
    flags: BTreeSet<String>,
}

fn usage() -> Vec<UsageLine> {
    let out = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run pizauth");
    assert!(out.status.success(), "pizauth --help failed");
    let help = text(&out.stdout);
    let lines: Vec<UsageLine> = help
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pizauth "))
        .map(|l| {
            let mut words = l.split_whitespace();
            let command = words.next().unwrap_or_default().to_owned();
            let flags = words
                .map(|w| w.trim_start_matches('[').trim_end_matches(['.', ']']))
                .filter(|w| w.len() == 2 && w.starts_with('-'))
                .map(str::to_owned)
                .collect();
            UsageLine { command, flags }
        })
        .collect();
    assert!(lines.len() >= 10, "too few commands in the usage:\n{help}");
    lines
}

fn commands() -> BTreeSet<String> {
    usage().into_iter().map(|u| u.command).collect()
}

// ---------------------------------------------------------------------------------------
// Manual pages.

#[test]
fn manual_pages_pass_mandoc_lint() {
    // Both pages in one run, named as in docs/: mandoc then resolves their references to
    // each other, and the pages refer to no other manual, so nothing depends on what else
    // is installed.
    let out = run(
        Command::new("mandoc")
            .args(["-T", "lint", "pizauth.1", "pizauth.conf.5"])
            .current_dir(repo("docs")),
        "mandoc",
        "`apt-get install mandoc` on Debian and Ubuntu",
    );
    let report = text(&out.stdout) + &text(&out.stderr);
    assert!(
        out.status.success() && report.is_empty(),
        "mandoc -T lint reports problems in the manual pages:\n{report}"
    );
}

/// The lines of `page` after the line `start`, up to the next heading: `.Sh` or, if
/// `subsections_end` is set, `.Ss`.
fn section<'a>(page: &'a str, start: &str, subsections_end: bool) -> Vec<&'a str> {
    let mut lines = page.lines().skip_while(|l| *l != start);
    assert!(lines.next().is_some(), "no line {start:?}");
    lines
        .take_while(|l| !(l.starts_with(".Sh ") || subsections_end && l.starts_with(".Ss ")))
        .collect()
}

/// The word after `.It <mac>` on each item line, e.g. the option of `.It Ic scopes ...`.
fn items(lines: &[&str], mac: &str) -> Vec<String> {
    let prefix = format!(".It {mac} ");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_configuration_page_documents_exactly_the_options_the_parser_knows() {
    let page = read("docs/pizauth.conf.5");
    let mut documented = BTreeSet::new();
    for list in [
        ".Ss Global options",
        ".Ss Account options",
        ".Ss Deprecated names",
    ] {
        documented.extend(items(&section(&page, list, true), "Ic"));
    }
    let known: BTreeSet<String> = pizauth_fsm::config::option_names()
        .map(str::to_owned)
        .collect();
    let missing: Vec<_> = known.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "options without an `.It Ic name` entry in docs/pizauth.conf.5: {missing:?}"
    );
    let unknown: Vec<_> = documented.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "docs/pizauth.conf.5 documents options the parser does not know: {unknown:?}"
    );
}

#[test]
fn the_command_page_documents_exactly_the_commands_and_flags_of_the_usage() {
    let page = read("docs/pizauth.1");
    let usage: BTreeSet<UsageLine> = usage().into_iter().collect();
    let flags_in = |line: &str| -> BTreeSet<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        words
            .windows(2)
            .filter(|w| w[0].trim_start_matches('.') == "Fl" && w[1].len() == 1)
            .map(|w| format!("-{}", w[1]))
            .collect()
    };

    // Each entry of COMMANDS: `.It Cm name [flags]`.
    let entries: BTreeSet<UsageLine> = section(&page, ".Ss COMMANDS", false)
        .iter()
        .filter_map(|l| l.strip_prefix(".It Cm "))
        .map(|rest| UsageLine {
            command: rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned(),
            flags: flags_in(rest),
        })
        .collect();
    assert_eq!(
        entries, usage,
        "the `.It Cm` entries under COMMANDS in docs/pizauth.1 differ from `pizauth --help`"
    );

    // Each line of the SYNOPSIS: `.Nm`, `.Cm name`, then its flags, up to the next `.Nm`.
    let synopsis = section(&page, ".Sh SYNOPSIS", false);
    let mut lines = Vec::new();
    for l in &synopsis {
        if *l == ".Nm" {
            lines.push(UsageLine {
                command: String::new(),
                flags: BTreeSet::new(),
            });
        } else if let Some(last) = lines.last_mut() {
            if let Some(c) = l.strip_prefix(".Cm ") {
                last.command = c.to_owned();
            }
            last.flags.extend(flags_in(l));
        }
    }
    // The last line is `pizauth -h | --help`.
    let help = lines.pop().expect("a synopsis");
    assert!(help.command.is_empty() && help.flags.contains("-h"));
    let synopsis: BTreeSet<UsageLine> = lines.into_iter().collect();
    assert_eq!(
        synopsis, usage,
        "the SYNOPSIS of docs/pizauth.1 differs from `pizauth --help`"
    );
}

// ---------------------------------------------------------------------------------------
// Configurations in the documentation.

/// A fenced code block of a Markdown file.
struct Block {
    info: String,
    text: String,
    line: usize,
}

/// The fenced code blocks of `markdown`, with the fence's indentation removed.
fn fenced_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, usize, String, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    open = Some((i + 1, indent, info.trim().to_owned(), String::new()));
                }
            }
            Some((start, fence_indent, info, text)) => {
                if trimmed.starts_with("```") {
                    blocks.push(Block {
                        info: std::mem::take(info),
                        text: std::mem::take(text),
                        line: *start,
                    });
                    open = None;
                } else {
                    let cut = indent.min(*fence_indent);
                    text.push_str(&line[cut..]);
                    text.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "an unclosed code block");
    blocks
}

/// Parses `source`, failing the test on any error or warning.
fn assert_parses_cleanly(source: &str, name: &str) -> Config {
    match Config::parse(source, name) {
        Ok(parsed) if parsed.warnings.is_empty() => parsed.config,
        Ok(parsed) => panic!(
            "{name} has warnings:\n{}\n--- in:\n{source}",
            parsed.warnings
        ),
        Err(errors) => panic!("{name} does not parse:\n{errors}\n--- in:\n{source}"),
    }
}

/// Whether a line looks like pizauth configuration.
fn looks_like_pizauth(line: &str, options: &BTreeSet<&str>) -> bool {
    let line = line.trim();
    let block = line.starts_with("account \"") && line.ends_with('{');
    let option = line.ends_with(';')
        && line
            .split_once('=')
            .is_some_and(|(name, _)| options.contains(name.trim()));
    block || option
}

#[test]
fn readme_configurations_parse_and_are_tagged_conf() {
    let readme = read("README.md");
    let options: BTreeSet<&str> = pizauth_fsm::config::option_names().collect();
    let blocks = fenced_blocks(&readme);
    let mut parsed = Vec::new();
    for b in &blocks {
        if b.info == "conf" {
            let name = format!("README.md block at line {}", b.line);
            assert_parses_cleanly(&b.text, &name);
            parsed.push(b.text.as_str());
        } else if let Some(l) = b.text.lines().find(|l| looks_like_pizauth(l, &options)) {
            panic!(
                "README.md block at line {} (tagged {:?}) looks like pizauth configuration \
                 ({l:?}): tag it `conf` so that it is checked",
                b.line, b.info
            );
        }
    }
    // The recipes the README promises, so that retagging them cannot skip the check.
    for needle in [
        "https://outlook.office365.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://mail.google.com/",
        "auth_notify_cmd = \"notify-send",
        "http_listen = \"127.0.0.1:8765\"",
        "| age -e",
        "| gpg --batch",
    ] {
        assert!(
            parsed.iter().any(|b| b.contains(needle)),
            "no `conf` block of README.md contains {needle:?}"
        );
    }
}

/// The literal blocks (`.Bd -literal` to `.Ed`) of a manual page, unescaped.
fn literal_blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        if line.starts_with(".Bd -literal") {
            current = Some(String::new());
        } else if line == ".Ed" {
            blocks.extend(current.take());
        } else if let Some(b) = &mut current {
            b.push_str(
                &line
                    .replace("\\e", "\\")
                    .replace("\\&", "")
                    .replace("\\(dq", "\""),
            );
            b.push('\n');
        }
    }
    blocks
}

#[test]
fn manual_page_examples_and_the_example_file_parse() {
    let page = read("docs/pizauth.conf.5");
    let blocks = literal_blocks(&page);
    assert!(blocks.len() >= 8, "too few examples in docs/pizauth.conf.5");
    for (i, b) in blocks.iter().enumerate() {
        assert_parses_cleanly(b, &format!("docs/pizauth.conf.5 literal block {}", i + 1));
    }
    let example = assert_parses_cleanly(
        &read("docs/pizauth.conf.example"),
        "docs/pizauth.conf.example",
    );
    assert!(example.accounts.len() >= 3);

    // The persistence recipes of README.md are those of the manual page.
    let readme = read("README.md");
    for b in fenced_blocks(&readme) {
        if b.info == "conf" && b.text.contains("token_event_cmd") {
            assert!(
                blocks.iter().any(|m| m.trim() == b.text.trim()),
                "README.md block at line {} is not among the examples of pizauth.conf.5",
                b.line
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// A sandbox with its own home, runtime directory and servers.

struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "pizauth-docs-{}-{nanos}-{name}",
            std::process::id()
        ));
        fs::create_dir_all(dir.join("home")).unwrap();
        fs::create_dir_all(dir.join("run")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        Sandbox { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// A command with a clean environment: this sandbox's home and runtime directory,
    /// the directory of the `pizauth` under test first on `PATH`, and `/bin/sh`.
    fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let bin_dir = Path::new(BIN).parent().unwrap();
        let mut c = Command::new(program);
        c.env_clear()
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
            .env("SHELL", "/bin/sh")
            .env("USER", "tester")
            .env("TZ", "UTC")
            .stdin(Stdio::null());
        c
    }

    fn pizauth(&self, args: &[&str]) -> Output {
        self.command(BIN).args(args).output().unwrap()
    }

    fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, contents).unwrap();
        p
    }

    /// Starts `pizauth server -d -c config`, with `extra` environment, and waits until
    /// it answers.
    fn server(&self, config: &Path, extra: &[(&str, &Path)]) -> Server {
        let log = fs::File::create(self.path("server.log")).unwrap();
        let mut c = self.command(BIN);
        c.args(["server", "-d", "-c"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in extra {
            c.env(k, v);
        }
        let child = c.spawn().unwrap();
        let server = Server {
            child,
            log: self.path("server.log"),
        };
        let up = wait_until(|| self.pizauth(&["status"]).status.success());
        assert!(up, "the server did not start:\n{}", server.log());
        server
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A running `pizauth server -d`, killed if the test ends without stopping it.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `pizauth shutdown`, then waits for the process to exit 0.
    fn shut_down(mut self, sandbox: &Sandbox) {
        let out = sandbox.pizauth(&["shutdown"]);
        assert!(out.status.success(), "shutdown: {}", text(&out.stderr));
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "server exited {status}:\n{}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` every 10 ms until it holds or [`PATIENCE`] has passed.
fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An account whose endpoints nobody listens on: nothing in these tests contacts them.
fn account(name: &str) -> String {
    format!(
        "account \"{name}\" {{\n    auth_uri = \"http://127.0.0.1:1/auth\";\n    \
         token_uri = \"http://127.0.0.1:1/token\";\n    client_id = \"id-{name}\";\n}}\n"
    )
}

// ---------------------------------------------------------------------------------------
// Shell completions.

const COMPLETIONS: [&str; 3] = [
    "docs/completions/pizauth.bash",
    "docs/completions/_pizauth",
    "docs/completions/pizauth.fish",
];

#[test]
fn completions_exist_and_mention_every_command() {
    for file in COMPLETIONS {
        let script = read(file);
        for c in commands() {
            assert!(
                script
                    .split(|ch: char| !ch.is_ascii_alphanumeric())
                    .any(|w| w == c),
                "{file} does not mention the command {c}"
            );
        }
    }
}

/// What the bash completion offers for `words` (the last one being completed).
fn bash_complete(sandbox: &Sandbox, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect();
    let script = format!(
        "source '{}' || exit 9\nCOMP_WORDS=({})\nCOMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
         _pizauth\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        repo("docs/completions/pizauth.bash").display(),
        quoted.join(" ")
    );
    let out = run(
        sandbox.command("bash").args(["-c", &script]),
        "bash",
        "your distribution's bash package",
    );
    assert!(out.status.success(), "bash: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What the fish completion offers for `line`, without descriptions.
fn fish_complete(sandbox: &Sandbox, line: &str) -> Vec<String> {
    let script = format!(
        "source '{}'; or exit 9; complete -C '{}'",
        repo("docs/completions/pizauth.fish").display(),
        line.replace('\'', "\\'")
    );
    let out = sandbox
        .command("fish")
        .args(["--no-config", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "fish: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
        .collect()
}

fn sorted(v: Vec<String>) -> Vec<String> {
    let set: BTreeSet<String> = v.into_iter().collect();
    set.into_iter().collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    sorted(v.iter().map(|s| (*s).to_owned()).collect())
}

/// The flags a completion should offer for `u`: its own and `-h`, `--help`.
fn expected_flags(u: &UsageLine) -> Vec<String> {
    let mut flags = u.flags.clone();
    flags.insert("-h".into());
    flags.insert("--help".into());
    flags.into_iter().collect()
}

/// A config at the default path with accounts `work` and `my mail`, and another with
/// `other`.
fn completion_sandbox(name: &str) -> (Sandbox, PathBuf) {
    let s = Sandbox::new(name);
    s.write(
        "config/pizauth.conf",
        &(account("work") + &account("my mail").replacen("account ", "  account   ", 1)),
    );
    let other = s.write("other.conf", &account("other"));
    (s, other)
}

#[test]
fn bash_completion() {
    let syntax = run(
        Command::new("bash").arg("-n").arg(repo(COMPLETIONS[0])),
        "bash",
        "your distribution's bash package",
    );
    assert!(syntax.status.success(), "{}", text(&syntax.stderr));

    let (s, other) = completion_sandbox("bash");
    let all: Vec<String> = commands().into_iter().collect();
    assert_eq!(sorted(bash_complete(&s, &["pizauth", ""])), all);
    assert_eq!(bash_complete(&s, &["pizauth", "sh"]), ["show", "shutdown"]);
    for u in usage() {
        assert_eq!(
            sorted(bash_complete(&s, &["pizauth", &u.command, "-"])),
            expected_flags(&u),
            "flags of {}",
            u.command
        );
    }
    // Accounts from the config file: the default one, or the one after -c.
    assert_eq!(
        sorted(bash_complete(&s, &["pizauth", "show", ""])),
        strings(&["my\\ mail", "work"])
    );
    assert_eq!(bash_complete(&s, &["pizauth", "revoke", "w"]), ["work"]);
    assert!(bash_complete(&s, &["pizauth", "show", "work", ""]).is_empty());
    let other = other.to_str().unwrap();
    assert_eq!(
        bash_complete(&s, &["pizauth", "refresh", "-c", other, ""]),
        ["other"]
    );

    // Accounts from the running server, whatever the config file says.
    let running = s.write("running.conf", &(account("alpha") + &account("be ta")));
    let server = s.server(&running, &[]);
    assert_eq!(
        sorted(bash_complete(&s, &["pizauth", "show", "-u", ""])),
        strings(&["alpha", "be\\ ta"])
    );
    server.shut_down(&s);
}

#[test]
fn fish_completion() {
    if !installed("fish") {
        eprintln!("fish is not installed: its completion is only checked for content");
        return;
    }
    let syntax = Command::new("fish")
        .arg("--no-execute")
        .arg(repo(COMPLETIONS[2]))
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{}", text(&syntax.stderr));

    let (s, other) = completion_sandbox("fish");
    let all: Vec<String> = commands().into_iter().collect();
    assert_eq!(sorted(fish_complete(&s, "pizauth ")), all);
    for u in usage() {
        assert_eq!(
            sorted(fish_complete(&s, &format!("pizauth {} -", u.command))),
            expected_flags(&u),
            "flags of {}",
            u.command
        );
    }
    assert_eq!(
        sorted(fish_complete(&s, "pizauth show ")),
        strings(&["my mail", "work"])
    );
    assert!(fish_complete(&s, "pizauth show work ").is_empty());
    assert_eq!(
        fish_complete(&s, &format!("pizauth revoke -c {} ", other.display())),
        ["other"]
    );
    let running = s.write("running.conf", &(account("alpha") + &account("be ta")));
    let server = s.server(&running, &[]);
    assert_eq!(
        sorted(fish_complete(&s, "pizauth refresh ")),
        strings(&["alpha", "be ta"])
    );
    server.shut_down(&s);
}

#[test]
fn zsh_completion() {
    let script = read(COMPLETIONS[1]);
    assert!(script.starts_with("#compdef pizauth\n"));
    // Each command's arm of `case $command in` offers exactly the usage's flags.
    for u in usage() {
        let arm = script
            .lines()
            .skip_while(|l| {
                let l = l.trim();
                !(l.ends_with(')') && l.trim_end_matches(')').split('|').any(|c| c == u.command))
            })
            .skip(1)
            .take_while(|l| l.trim() != ";;")
            .collect::<Vec<_>>()
            .join("\n");
        let offered: BTreeSet<String> = arm
            .split('\'')
            .filter_map(|spec| {
                let spec = spec.trim_start_matches('*');
                (spec.len() > 2 && spec.starts_with('-') && spec[2..].starts_with(['[', '+']))
                    .then(|| spec[..2].to_owned())
            })
            .collect();
        assert_eq!(
            offered, u.flags,
            "flags of {} in {}",
            u.command, COMPLETIONS[1]
        );
        assert!(arm.contains("{-h,--help}"), "-h of {}", u.command);
    }
    if !installed("zsh") {
        eprintln!("zsh is not installed: its completion is only checked for content");
        return;
    }
    let syntax = Command::new("zsh")
        .arg("-n")
        .arg(repo(COMPLETIONS[1]))
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{}", text(&syntax.stderr));
}

// ---------------------------------------------------------------------------------------
// Installing.

/// Where `install.sh` puts each file, relative to `$DESTDIR$PREFIX`.
const INSTALLED: [(&str, &str); 7] = [
    ("docs/pizauth.1", "share/man/man1/pizauth.1"),
    ("docs/pizauth.conf.5", "share/man/man5/pizauth.conf.5"),
    (
        "docs/completions/pizauth.bash",
        "share/bash-completion/completions/pizauth",
    ),
    (
        "docs/completions/_pizauth",
        "share/zsh/site-functions/_pizauth",
    ),
    (
        "docs/completions/pizauth.fish",
        "share/fish/vendor_completions.d/pizauth.fish",
    ),
    (
        "docs/pizauth.conf.example",
        "share/doc/pizauth/pizauth.conf.example",
    ),
    (
        "docs/systemd/pizauth.service",
        "share/systemd/user/pizauth.service",
    ),
];

fn install(s: &Sandbox, env: &[(&str, &str)]) -> Output {
    let mut c = s.command("sh");
    c.arg(repo("install.sh"));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn install_script_puts_files_where_the_documentation_says() {
    let syntax = Command::new("sh")
        .arg("-n")
        .arg(repo("install.sh"))
        .status()
        .unwrap();
    assert!(syntax.success());

    let s = Sandbox::new("install");
    let prefix = s.path("prefix");
    let prefix = prefix.to_str().unwrap();
    let dest = s.path("dest");
    let out = install(
        &s,
        &[("PREFIX", prefix), ("DESTDIR", dest.to_str().unwrap())],
    );
    assert!(out.status.success(), "install.sh: {}", text(&out.stderr));
    let root = PathBuf::from(format!("{}{prefix}", dest.display()));
    let readme = read("README.md");
    let man = read("docs/pizauth.1");
    for (source, target) in INSTALLED {
        let installed = fs::read_to_string(root.join(target))
            .unwrap_or_else(|e| panic!("{target} not installed: {e}"));
        if !target.ends_with(".service") {
            assert_eq!(installed, read(source), "{target} differs from {source}");
        }
        let mode = fs::metadata(root.join(target))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "{target}");
        let documented = format!("$PREFIX/{target}");
        assert!(
            readme.contains(&documented),
            "README.md does not say {documented}"
        );
        assert!(
            man.contains(&documented),
            "docs/pizauth.1 does not say {documented}"
        );
    }

    // By default the unit runs what `cargo install --path .` installed.
    let unit = fs::read_to_string(root.join(INSTALLED[6].1)).unwrap();
    assert_eq!(unit, read("docs/systemd/pizauth.service"));
    assert!(unit.contains("\nType=notify\n"));
    assert!(unit.contains("\nExecStart=%h/.cargo/bin/pizauth server -d\n"));
    assert!(readme.contains("~/.cargo/bin/pizauth"));

    // Another BINDIR is written into the unit, with %h for the home directory.
    let home_bin = format!("{}/bin", s.home().display());
    let out = install(
        &s,
        &[
            ("PREFIX", prefix),
            ("BINDIR", &home_bin),
            ("CARGO_HOME", "/x"),
        ],
    );
    assert!(out.status.success(), "install.sh: {}", text(&out.stderr));
    let unit = fs::read_to_string(Path::new(prefix).join(INSTALLED[6].1)).unwrap();
    assert!(
        unit.contains("\nExecStart=%h/bin/pizauth server -d\n"),
        "{unit}"
    );
    assert!(unit.contains("PATH=%h/bin:"), "{unit}");
    let out = install(&s, &[("PREFIX", prefix), ("CARGO_HOME", "/opt/cargo")]);
    assert!(out.status.success());
    let unit = fs::read_to_string(Path::new(prefix).join(INSTALLED[6].1)).unwrap();
    assert!(
        unit.contains("\nExecStart=/opt/cargo/bin/pizauth server -d\n"),
        "{unit}"
    );

    assert!(!install(&s, &[("PREFIX", "relative")]).status.success());
}

#[test]
fn systemd_accepts_the_unit() {
    if !installed("systemd-analyze") {
        eprintln!("systemd-analyze is not installed: the unit is not verified");
        return;
    }
    let s = Sandbox::new("unit");
    let prefix = s.path("prefix");
    let bin_dir = Path::new(BIN)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let out = install(
        &s,
        &[("PREFIX", prefix.to_str().unwrap()), ("BINDIR", &bin_dir)],
    );
    assert!(out.status.success());
    let unit = prefix.join(INSTALLED[6].1);
    let out = s
        .command("systemd-analyze")
        .args(["--user", "--man=no", "verify"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = text(&out.stdout) + &text(&out.stderr);
    if report.contains("Failed to initialize manager") || report.contains("Failed to lookup") {
        eprintln!("systemd-analyze cannot run here: the unit is not verified ({report})");
        return;
    }
    let about_unit: Vec<&str> = report.lines().filter(|l| l.contains("pizauth")).collect();
    assert!(about_unit.is_empty(), "systemd-analyze verify:\n{report}");
}

// ---------------------------------------------------------------------------------------
// What the systemd unit and the persistence recipes rely on.

#[test]
fn the_server_tells_systemd_it_is_ready_once_it_answers() {
    let s = Sandbox::new("notify");
    let notify = s.path("notify.sock");
    let listener = UnixDatagram::bind(&notify).unwrap();
    listener.set_read_timeout(Some(PATIENCE)).unwrap();
    let config = s.write(
        "c.conf",
        &(String::from("https_listen = none;\n")
            + "startup_cmd = \"echo ${NOTIFY_SOCKET:-unset} > ~/startup-saw\";\n"
            + &account("a")),
    );
    let mut c = s.command(BIN);
    c.args(["server", "-d", "-c"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Server {
        child: c.spawn().unwrap(),
        log: s.path("none.log"),
    };
    let mut buf = [0u8; 64];
    let n = listener.recv(&mut buf).expect("no READY=1 from the server");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means ready: a client is answered at once.
    let status = s.pizauth(&["status"]);
    assert!(status.success_with("a: No access token\n"));
    // Commands the server runs do not inherit NOTIFY_SOCKET.
    let saw = s.home().join("startup-saw");
    assert!(wait_until(
        || fs::read_to_string(&saw).is_ok_and(|t| t == "unset\n")
    ));
    server.shut_down(&s);
}

trait Succeeds {
    fn success_with(&self, stdout: &str) -> bool;
}

impl Succeeds for Output {
    fn success_with(&self, stdout: &str) -> bool {
        let ok = self.status.success() && text(&self.stdout) == stdout;
        if !ok {
            eprintln!(
                "status {}, stdout {:?}, stderr {:?}",
                self.status,
                text(&self.stdout),
                text(&self.stderr)
            );
        }
        ok
    }
}

/// A `pizauth dump` holding tokens for `accounts` of `config`, valid for an hour.
fn crafted_dump(config: &str, accounts: &[&str]) -> String {
    let parsed = assert_parses_cleanly(config, "test config");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut entries = serde_json::Map::new();
    for name in accounts {
        let a = parsed.account(name).expect("account in config");
        entries.insert(
            (*name).to_owned(),
            serde_json::json!({
                "fingerprint": pizauth_fsm::dump::fingerprint(a),
                "access_token": format!("AT-{name}"),
                "refresh_token": format!("RT-{name}"),
                "obtained": now,
                "expires": now + 3_600_000,
            }),
        );
    }
    serde_json::json!({"format": "pizauth-dump", "version": 1, "accounts": entries}).to_string()
}

/// The README's persistence recipe whose encryption command starts with `encrypt`, with
/// `base64` standing in for the encryption (each replacement must happen exactly once).
fn recipe(encrypt: &str, decrypt: &str) -> String {
    let readme = read("README.md");
    let block = fenced_blocks(&readme)
        .into_iter()
        .find(|b| b.info == "conf" && b.text.contains(&format!("| {encrypt}")))
        .unwrap_or_else(|| panic!("README.md has no `conf` block piping into {encrypt}"));
    let mut text = block.text;
    for (from, to) in [(encrypt, "base64"), (decrypt, "base64 -d")] {
        assert_eq!(text.matches(from).count(), 1, "{from:?} in:\n{text}");
        text = text.replace(from, to);
    }
    text
}

/// Runs a persistence recipe for real: tokens restored into a server, an event writes
/// the encrypted file, and a restarted server gets the tokens back from it by itself.
fn persistence_round_trip(name: &str, encrypt: &str, decrypt: &str, file: &str) {
    let s = Sandbox::new(name);
    let config_text = String::from("https_listen = none;\n")
        + &recipe(encrypt, decrypt)
        + &account("a").replace(
            "client_id",
            "client_secret = \"s3cret-value\";\n    client_id",
        )
        + &account("b");
    let config = s.write("pizauth.conf", &config_text);
    let stored = s.home().join(file);

    let server = s.server(&config, &[]);
    let restore = s
        .command(BIN)
        .arg("restore")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut child = restore;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(crafted_dump(&config_text, &["a", "b"]).as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.success_with(""), "restore");
    }
    assert!(s.pizauth(&["show", "a"]).success_with("AT-a\n"));
    assert!(s.pizauth(&["show", "b"]).success_with("AT-b\n"));
    assert!(!stored.exists(), "restoring fires no event");

    // `revoke` fires token_revoked: the file then holds a's tokens and not b's.
    assert!(s.pizauth(&["revoke", "b"]).success_with(""));
    let decoded = || -> Option<String> {
        let out = Command::new("base64")
            .arg("-d")
            .arg(&stored)
            .output()
            .ok()?;
        out.status.success().then(|| text(&out.stdout))
    };
    assert!(
        wait_until(|| decoded().is_some()),
        "token_event_cmd wrote no {file}:\n{}",
        server.log()
    );
    let dump: serde_json::Value = serde_json::from_str(&decoded().unwrap()).unwrap();
    assert_eq!(dump["accounts"]["a"]["access_token"], "AT-a");
    assert!(dump["accounts"].get("b").is_none());
    assert!(!decoded().unwrap().contains("s3cret-value"));
    let mode = fs::metadata(&stored).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{file} is readable by others");
    server.shut_down(&s);

    // A new server restores the file through startup_cmd, with no help.
    let server = s.server(&config, &[]);
    assert!(
        wait_until(|| s.pizauth(&["show", "a"]).status.success()),
        "startup_cmd did not restore the tokens:\n{}",
        server.log()
    );
    assert!(s.pizauth(&["show", "a"]).success_with("AT-a\n"));
    let b = s.pizauth(&["show", "-u", "b"]);
    assert_eq!(
        text(&b.stderr),
        "ERROR Access token unavailable until authorised\n"
    );
    server.shut_down(&s);
}

#[test]
fn tokens_survive_a_restart_with_the_age_recipe() {
    persistence_round_trip(
        "age",
        "age -e -R ~/.config/pizauth/age.pub",
        "age -d -i ~/.config/pizauth/age.key",
        ".local/state/pizauth/tokens.age",
    );
}

#[test]
fn tokens_survive_a_restart_with_the_gpg_recipe() {
    persistence_round_trip(
        "gpg",
        "gpg --batch --yes -q -e -r me@example.com",
        "gpg --batch -q -d",
        ".local/state/pizauth/tokens.gpg",
    );
}

/// The version is above the pizauth 1.1.0 this replaces (a script checking for at least
/// 1.1.0 must accept it), and README.md names it in the migration notes.
#[test]
fn version_is_above_the_one_replaced() {
    let version = env!("CARGO_PKG_VERSION");
    let parts: Vec<u64> = version
        .split('.')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("version {version}")))
        .collect();
    assert!(
        parts.as_slice() > [1, 1, 0].as_slice(),
        "version {version} is not above 1.1.0"
    );
    let readme = read("README.md");
    assert!(
        readme.contains(&format!("this is pizauth {version}")),
        "README.md does not say this is pizauth {version}"
    );
}

/// Every "SPEC.md section N" (or "SPEC.md N, M") cited in a comment of the code resolves
/// to a section `## N.` of docs/SPEC.md, and the contract names the version.
#[test]
fn every_cited_spec_section_exists() {
    let spec = read("docs/SPEC.md");
    let sections: BTreeSet<u32> = spec
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|l| l.split_once('.'))
        .filter_map(|(n, _)| n.parse().ok())
        .collect();
    assert!(
        !sections.is_empty(),
        "docs/SPEC.md has no numbered sections"
    );
    let mut cited = Vec::new();
    let mut files = Vec::new();
    for dir in ["src", "fsm", "io", "tests", "benches", "fuzz"] {
        rust_files(&repo(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {files:?}");
    for file in &files {
        let source = fs::read_to_string(file).unwrap_or_default();
        for (at, _) in source.match_indices("SPEC.md") {
            let rest = &source[at + "SPEC.md".len()..];
            let rest = rest.strip_prefix(" section").unwrap_or(rest);
            // The numbers that follow: "3", "3, 6, 7", "5: ...".
            let mut numbers = Vec::new();
            for part in rest.split(',') {
                let digits: String = part
                    .trim_start()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                match digits.parse::<u32>() {
                    Ok(n) => numbers.push(n),
                    Err(_) => break,
                }
                if part.trim_start().len() > digits.len() {
                    break;
                }
            }
            for n in numbers {
                cited.push((file.display().to_string(), n));
            }
        }
    }
    assert!(cited.len() >= 20, "only {} citations found", cited.len());
    let missing: Vec<_> = cited
        .iter()
        .filter(|(_, n)| !sections.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "cited sections missing from docs/SPEC.md: {missing:?}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        spec.contains(&format!("The version is {version}")),
        "docs/SPEC.md does not name version {version}"
    );
}

/// The `.rs` files under `dir`, skipping build output and dependencies.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        if path.is_dir() {
            if !matches!(
                name.to_str(),
                Some("target" | "node_modules" | "corpus" | "artifacts")
            ) {
                rust_files(&path, out);
            }
        } else if path.extension() == Some(OsStr::new("rs")) {
            out.push(path);
        }
    }
}

/// The accounts `docs/pizauth.conf.example` shows commented out parse once uncommented,
/// as its text tells the user to do.
#[test]
fn the_commented_out_example_accounts_parse() {
    let example = read("docs/pizauth.conf.example");
    let mut inside = false;
    let mut uncommented = 0;
    let text: String = example
        .lines()
        .map(|l| {
            if l.starts_with("// account \"") {
                inside = true;
                uncommented += 1;
            }
            let out = if inside {
                l.strip_prefix("// ").unwrap_or(l)
            } else {
                l
            };
            if l == "// }" {
                inside = false;
            }
            format!("{out}\n")
        })
        .collect();
    assert!(
        uncommented >= 4,
        "only {uncommented} commented-out accounts"
    );
    let config = assert_parses_cleanly(&text, "docs/pizauth.conf.example, uncommented");
    let oidc = config.account("oidc").expect("the account \"oidc\"");
    assert_eq!(
        oidc.client_auth,
        Some(pizauth_fsm::config::ClientAuth::Basic)
    );
    assert_eq!(oidc.redirect_uri.as_str(), "http://127.0.0.1/");
}
