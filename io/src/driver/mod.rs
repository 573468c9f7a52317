//! The event loop: one thread, one `mio::Poll`, driving the core.
//!
//! Each turn: read both clocks; turn readiness events into [`Input`]s, queued; hand each
//! to [`Server::handle`] and perform every [`Output`] (an output that produces an input
//! only queues it); then do the follow-up work the turn found (accept again once a
//! connection closed at a cap or after running out of descriptors, give freed memory
//! back); arm the boot-time timer to the earliest deadline (the core's, or one of the
//! driver's own, all in one keyed queue: [`Timers`]). Nothing calls back into
//! itself: performing an output never accepts, reads or handles anything. Nothing wakes
//! the loop periodically: an idle server sleeps in `epoll_wait` until a client, a
//! signal, or a deadline needs it (the socket touch every 6 hours aside).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::net::TcpListener as StdTcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Token, Waker};
use pizauth_fsm::event::{Entropy, ExitStatus, Input, Level, Output};
use pizauth_fsm::server::Tunables;
use pizauth_fsm::{Config, Instant, Listeners, Now, Server};

use crate::os::{self, BootTimer, Signal, Signals};
use crate::resolver::Resolver;
use crate::tls::SelfSigned;

mod control;
mod outgoing;
mod pool;
mod redirect;
mod slab;
mod stream;

use control::ControlConn;
use outgoing::Outgoing;
use pizauth_fsm::timers::Timers;
use redirect::RedirectConn;
use slab::Slab;

/// How long after running out of file descriptors the listeners are tried again, if no
/// connection of ours closed in the meantime (descriptors freed by a command or by the
/// resolver wake nothing up).
const ACCEPT_RETRY: Duration = Duration::from_millis(200);

/// Connections held at once after which, once most have closed, the memory kept for them
/// is given back.
const COMPACT_AFTER: usize = 64;

/// What a driver deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Deadline {
    /// Touch the socket file.
    Touch,
    /// Try the listeners again after running out of descriptors.
    Accept,
    /// The connection with this key has had its time.
    Conn(usize),
}

/// Where log lines go: stderr with `server -d`, syslog when daemonised.
pub trait Log {
    /// Writes one line. `message` never contains secrets.
    fn log(&mut self, level: Level, message: &str);

    /// The least important level written; less important messages are not even made.
    fn max_level(&self) -> Level {
        Level::Trace
    }
}

/// What the server needs to start.
pub struct Settings {
    /// The config file, re-read on `reload` and SIGHUP.
    pub config_path: PathBuf,
    /// The config, already parsed from `config_path`.
    pub config: Config,
    /// The control socket's path (its directory already exists with mode 0700).
    pub socket_path: PathBuf,
    /// What [`os::disable_core_dumps`] said when the caller ran it, before reading the
    /// config (the limit and the flag are inherited across `fork`); a failure is logged
    /// once the log is set up.
    pub core_dumps_disabled: io::Result<()>,
}

/// Why the server could not start (or stopped abnormally).
#[derive(Debug)]
pub enum StartError {
    /// A live server already answers on the socket.
    AlreadyRunning,
    /// Anything else, as one line for the user.
    Other(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::AlreadyRunning => f.write_str("pizauth authenticator already running"),
            StartError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StartError {}

/// Sockets bound and certificate made, before daemonising: errors still reach the
/// terminal, and no thread or epoll instance exists yet (neither survives `fork`).
pub struct Prepared {
    settings: Settings,
    /// The soft limit on open descriptors after raising it, or why it could not be read.
    descriptor_limit: io::Result<u64>,
    control: StdUnixListener,
    socket_file: SocketFile,
    http: Option<StdTcpListener>,
    /// The HTTPS listener; its certificate is made when first needed.
    https: Option<StdTcpListener>,
    tunables: Tunables,
    timeouts: Timeouts,
}

/// The driver's own time limits on the connections it serves (the core's delays are in
/// [`Tunables`]). The defaults are the production values; debug builds may shorten them
/// through `PIZAUTH_TEST_TUNABLES` (see [`prepare`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A control client must send its whole request within this long of being accepted,
    /// and read its whole reply within this long of the reply being ready.
    pub control: Duration,
    /// A redirect connection must send its request and take the answer within this long
    /// of being accepted.
    pub redirect: Duration,
    /// How often the socket file is touched, so that runtime-directory cleaners (such as
    /// systemd-tmpfiles, which spares files used within 10 days) leave it alone.
    pub touch: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            control: Duration::from_secs(10),
            redirect: Duration::from_secs(10),
            touch: Duration::from_secs(6 * 3600),
        }
    }
}

/// Pending connections the control socket's listen queue holds (so a burst of clients
/// waits in the kernel instead of being refused).
const CONTROL_BACKLOG: libc::c_int = 1024;
/// Pending connections each redirect listener's queue holds: a burst of idle connections
/// (slowloris) waits in the kernel, to be accepted and dropped oldest first, instead of
/// overflowing a short queue and making a browser's connection retry a second later.
const REDIRECT_BACKLOG: libc::c_int = 1024;

/// Binds the control socket (replacing a stale one, refusing if a live server answers),
/// the redirect listeners (the HTTPS certificate is made when first needed). Starts no
/// thread.
///
/// Debug builds (the ones `cargo test` runs) read `PIZAUTH_TEST_TUNABLES` here, a
/// comma-separated list of `key=value` that shortens delays and limits so that
/// fault-injection tests need not wait the real ones. Release builds ignore it: users'
/// environments cannot change timeouts. Unknown keys and malformed items are ignored;
/// times are in milliseconds (at least 1).
///
/// | key | what (default) |
/// |---|---|
/// | `http_timeout_ms` | give up on a request to the provider ([`Tunables::http_timeout`], 30 s) |
/// | `exchange_retry_ms` | delay between code-exchange attempts (6 s) |
/// | `notify_timeout_ms` | kill notification and token-event commands (10 s) |
/// | `check_timeout_ms` | kill `transient_error_if_cmd` (3 min) |
/// | `check_every` | transient failures in a row before `transient_error_if_cmd` runs (6) |
/// | `slow_down_ms` | device-flow interval increase on `slow_down` (5 s) |
/// | `control_timeout_ms` | per control client ([`Timeouts::control`], 10 s) |
/// | `redirect_timeout_ms` | per redirect connection ([`Timeouts::redirect`], 10 s) |
/// | `touch_every_ms` | touch the socket file ([`Timeouts::touch`], 6 h) |
pub fn prepare(mut settings: Settings) -> Result<Prepared, StartError> {
    // Room for every connection the caps allow, and the pipes of the commands running.
    let descriptor_limit = os::raise_descriptor_limit(DESCRIPTORS_WANTED);
    // The socket first: a second server is refused before it runs any command (a
    // `client_secret_cmd` may ask for a passphrase).
    let control = bind_control(&settings.socket_path)?;
    // From here on, every way out (an error below, or the server's end) removes it.
    let socket_file = SocketFile(settings.socket_path.clone());
    fill_secrets(&mut settings.config)?;
    let http = match &settings.config.http_listen {
        Some(addr) => Some(bind_tcp(addr, "http_listen")?),
        None => None,
    };
    let https = match &settings.config.https_listen {
        Some(addr) => Some(bind_tcp(addr, "https_listen")?),
        None => None,
    };
    let (tunables, timeouts) = tunables_from_env();
    Ok(Prepared {
        settings,
        descriptor_limit,
        control,
        socket_file,
        http,
        https,
        tunables,
        timeouts,
    })
}

/// Descriptors the server may need at once: its connection caps (512 control, 128 per
/// redirect listener, 32 outgoing), two pipes for each of the 32 commands that may run,
/// and a margin for its own (listeners, poller, timer, signals, log): Linux's default.
const DESCRIPTORS_WANTED: u64 = 1024;
const _: () = assert!(
    control::MAX_CONTROL_CONNS
        + 2 * redirect::MAX_REDIRECT_CONNS
        + outgoing::MAX_OUTGOING
        + 2 * 32
        + 64
        <= DESCRIPTORS_WANTED as usize
);

/// Runs each account's `client_secret_cmd` (before daemonising, so a passphrase prompt
/// still has the terminal) and fills in its secret; a failure names the account.
fn fill_secrets(config: &mut Config) -> Result<(), StartError> {
    use pizauth_fsm::server::{SECRET_TIMEOUT, fill_secret, secret_commands};
    for c in secret_commands(config) {
        let (status, stdout) = os::run_captured(&c.command, &c.env, SECRET_TIMEOUT)
            .unwrap_or((ExitStatus::FailedToStart, None));
        fill_secret(config, c.index, status, stdout).map_err(StartError::Other)?;
    }
    Ok(())
}

/// The core's tunables and the driver's timeouts: the defaults, or in debug builds as
/// `PIZAUTH_TEST_TUNABLES` says (the keys are listed at [`prepare`]).
fn tunables_from_env() -> (Tunables, Timeouts) {
    let mut t = Tunables::default();
    let mut timeouts = Timeouts::default();
    if !cfg!(debug_assertions) {
        return (t, timeouts);
    }
    let Ok(spec) = std::env::var("PIZAUTH_TEST_TUNABLES") else {
        return (t, timeouts);
    };
    for item in spec.split(',') {
        let Some((k, v)) = item.split_once('=') else {
            continue;
        };
        let Ok(n) = v.trim().parse::<u64>() else {
            continue;
        };
        let d = Duration::from_millis(n.max(1));
        match k.trim() {
            "check_every" => t.check_every = u32::try_from(n.max(1)).unwrap_or(u32::MAX),
            "http_timeout_ms" => t.http_timeout = d,
            "exchange_retry_ms" => t.exchange_retry_delay = d,
            "notify_timeout_ms" => t.notify_timeout = d,
            "check_timeout_ms" => t.check_timeout = d,
            "slow_down_ms" => t.slow_down = d,
            "control_timeout_ms" => timeouts.control = d,
            "redirect_timeout_ms" => timeouts.redirect = d,
            "touch_every_ms" => timeouts.touch = d,
            _ => (),
        }
    }
    (t, timeouts)
}

/// Binds the control socket: refuses if a live server answers on it, replaces a stale
/// socket file, and leaves the socket mode 0600.
///
/// Anything but a socket at the path (a symbolic link, dangling or not, a file, a
/// directory) is left alone and named in the error.
fn bind_control(path: &Path) -> Result<StdUnixListener, StartError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if StdUnixStream::connect(path).is_ok() {
                return Err(StartError::AlreadyRunning);
            }
            std::fs::remove_file(path).map_err(|e| {
                StartError::Other(format!(
                    "cannot remove stale socket {}: {e}",
                    path.display()
                ))
            })?;
        }
        Ok(meta) => {
            let kind = meta.file_type();
            let what = if kind.is_symlink() {
                match std::fs::read_link(path) {
                    Ok(to) if path.exists() => {
                        format!("a symbolic link to {}", to.display())
                    }
                    Ok(to) => format!("a dangling symbolic link to {}", to.display()),
                    Err(_) => "a symbolic link".to_owned(),
                }
            } else if kind.is_dir() {
                "a directory".to_owned()
            } else if kind.is_file() {
                "a regular file".to_owned()
            } else {
                "something other than a socket".to_owned()
            };
            return Err(StartError::Other(format!(
                "{} is {what}, not a socket: remove it to start the server",
                path.display()
            )));
        }
        Err(_) => (),
    }
    let listener = StdUnixListener::bind(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            // Another server bound it between our check and our bind.
            StartError::AlreadyRunning
        } else {
            StartError::Other(format!("cannot listen on {}: {e}", path.display()))
        }
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        StartError::Other(format!("cannot set the mode of {}: {e}", path.display()))
    })?;
    os::set_backlog(&listener, CONTROL_BACKLOG);
    listener
        .set_nonblocking(true)
        .map_err(|e| StartError::Other(e.to_string()))?;
    Ok(listener)
}

fn bind_tcp(addr: &str, option: &str) -> Result<StdTcpListener, StartError> {
    let listener = StdTcpListener::bind(addr)
        .map_err(|e| StartError::Other(format!("cannot listen on {addr} ({option}): {e}")))?;
    os::set_backlog(&listener, REDIRECT_BACKLOG);
    listener
        .set_nonblocking(true)
        .map_err(|e| StartError::Other(e.to_string()))?;
    Ok(listener)
}

/// The operating system's randomness.
struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        if getrandom::fill(buf).is_ok() {
            return;
        }
        // getrandom(2) fails only on kernels older than 3.17 or in odd sandboxes; fall
        // back to the device, and never go on without real randomness.
        let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf));
        if ok.is_err() {
            eprintln!("pizauth: no source of randomness is available");
            std::process::abort();
        }
    }
}

const CONTROL: Token = Token(0);
const HTTP: Token = Token(1);
const HTTPS: Token = Token(2);
const SIGNALS: Token = Token(3);
const TIMER: Token = Token(4);
const WAKER: Token = Token(5);
/// Tokens from here on name connections: `Token(FIRST_CONN + slot)`.
const FIRST_CONN: usize = 16;

/// A connection of any kind.
enum Conn {
    Control(ControlConn),
    Redirect(RedirectConn),
    Outgoing(Outgoing),
}

impl Prepared {
    /// The listeners as the core sees them.
    fn listeners(&self) -> Listeners {
        let port = |l: &StdTcpListener| l.local_addr().ok().map(|a| a.port());
        Listeners {
            http_port: self.http.as_ref().and_then(port),
            https_port: self.https.as_ref().and_then(port),
            // Made when first needed (see `Driver::certificate`).
            https_fingerprint: None,
        }
    }

    /// Runs the server until it is shut down. Call after daemonising.
    pub fn run(self, log: Box<dyn Log>) -> Result<(), StartError> {
        let mut driver = Driver::new(self, log).map_err(|e| StartError::Other(e.to_string()))?;
        driver
            .run()
            .map_err(|e| StartError::Other(format!("event loop failed: {e}")))
    }
}

/// Everything the loop owns.
struct Driver {
    poll: Poll,
    server: Server,
    log: Box<dyn Log>,
    /// The control socket's file (removed when the driver is dropped).
    socket_file: SocketFile,
    config_path: PathBuf,
    control: UnixListener,
    http: Option<TcpListener>,
    https: Option<TcpListener>,
    /// The HTTPS listener's server configuration and certificate fingerprint, once made.
    /// Most users never use the HTTPS listener, so the certificate is made on the first
    /// HTTPS connection or `info`, not at start-up: key generation and signing cost a
    /// millisecond and a third of a megabyte of resident code.
    certificate: Option<(Arc<rustls::ServerConfig>, String)>,
    /// The last attempt to make the certificate failed.
    certificate_failed: bool,
    signals: Signals,
    timer: BootTimer,
    resolver: Resolver,
    children: os::Children,
    /// Connections by slot (the key in the slab, also their poller token).
    conns: Slab<Conn>,
    /// The driver's own deadlines: connection timeouts, the accept retry, the touch.
    timers: Timers<Deadline>,
    /// Control clients and redirect connections by the id the core knows them by.
    ids: HashMap<u64, usize>,
    next_id: u64,
    /// Outgoing HTTP: requests waiting for a connection, and connections by request.
    http_client: outgoing::Client,
    /// Inputs for the core, handled in order by [`Driver::handle_queued`].
    inputs: VecDeque<Input>,
    /// The control listener stopped accepting at its connection cap (redirect listeners
    /// evict their oldest connection instead).
    control_paused: bool,
    /// An `accept` failed for want of descriptors (logged once); the listeners are tried
    /// again when a connection closes or at the [`Deadline::Accept`] retry.
    out_of_descriptors: bool,
    /// `accept`s that failed for want of descriptors, ever.
    exhausted_accepts: u64,
    exiting: bool,
    /// The time of the current loop turn.
    now: Now,
    /// Per-connection time limits.
    timeouts: Timeouts,
    /// Work found during the turn, done at its end.
    followups: Followups,
}

/// Work found while handling events and performing outputs, done at the end of the
/// turn, so that nothing in the middle of closing or answering accepts or reads again.
#[derive(Default)]
struct Followups {
    /// Try every listener again (a connection closed while a listener was paused).
    accept: bool,
    /// Much memory was freed (a reload, a large request or reply): give it back to the
    /// system once the loop has finished with what it is doing.
    trim: bool,
}

impl Driver {
    fn new(mut p: Prepared, log: Box<dyn Log>) -> io::Result<Driver> {
        // Before any thread exists: the signal mask must be inherited by all of them.
        let mut signals = Signals::new()?;
        let core_dumps = std::mem::replace(&mut p.settings.core_dumps_disabled, Ok(()));
        let poll = Poll::new()?;
        let registry = poll.registry();
        let listeners = p.listeners();
        let mut control = UnixListener::from_std(p.control);
        registry.register(&mut control, CONTROL, Interest::READABLE)?;
        let watch = |listener: Option<StdTcpListener>, token| -> io::Result<_> {
            let Some(listener) = listener else {
                return Ok(None);
            };
            let mut listener = TcpListener::from_std(listener);
            registry.register(&mut listener, token, Interest::READABLE)?;
            Ok(Some(listener))
        };
        let http = watch(p.http, HTTP)?;
        let https = watch(p.https, HTTPS)?;
        registry.register(&mut signals, SIGNALS, Interest::READABLE)?;
        let mut timer = BootTimer::new()?;
        registry.register(&mut timer, TIMER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(registry, WAKER)?);
        // Moved, not copied: with many accounts a copy costs start-up time and leaves
        // freed memory behind.
        let config = std::mem::take(&mut p.settings.config);
        let mut server = Server::with_tunables(config, listeners, p.tunables.clone());
        server.set_log_level(log.max_level());
        server.set_config_name(p.settings.config_path.display().to_string());
        let now = os::now();
        let mut driver = Driver {
            poll,
            server,
            log,
            socket_file: p.socket_file,
            config_path: p.settings.config_path.clone(),
            control,
            http,
            https,
            certificate: None,
            certificate_failed: false,
            signals,
            timer,
            resolver: Resolver::new(waker),
            children: os::Children::new(),
            conns: Slab::default(),
            timers: Timers::default(),
            ids: HashMap::new(),
            next_id: 1,
            http_client: outgoing::Client::default(),
            inputs: VecDeque::new(),
            control_paused: false,
            out_of_descriptors: false,
            exhausted_accepts: 0,
            exiting: false,
            now,
            timeouts: p.timeouts,
            followups: Followups::default(),
        };
        driver
            .timers
            .set(Deadline::Touch, Some(now.boot + p.timeouts.touch));
        if let Err(e) = core_dumps {
            driver.log(Level::Warn, &format!("cannot disable core dumps: {e}"));
        }
        match p.descriptor_limit {
            Ok(n) if n < DESCRIPTORS_WANTED => driver.log(
                Level::Warn,
                &format!(
                    "the limit on open files is {n}, below the {DESCRIPTORS_WANTED} the \
                     connection limits can use: under load, connections wait"
                ),
            ),
            Ok(_) => (),
            Err(e) => driver.log(
                Level::Warn,
                &format!("cannot read the limit on open files: {e}"),
            ),
        }
        Ok(driver)
    }

    fn run(&mut self) -> io::Result<()> {
        os::release_free_memory();
        self.log(Level::Info, "server started");
        self.now = os::now();
        self.handle(Input::Started);
        self.handle_queued();
        if let Err(e) = os::notify_ready() {
            self.log(Level::Warn, &format!("cannot notify systemd: {e}"));
        }
        let mut events = Events::with_capacity(256);
        while !self.exiting {
            self.arm_timer()?;
            let timeout = self.timer.poll_timeout(os::now().boot);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = os::now();
            self.now = now;
            for event in events.iter() {
                self.event(now, event.token());
                self.handle_queued();
                if self.exiting {
                    break;
                }
            }
            self.expire(now);
            if self.server.poll_timeout().is_some_and(|t| t <= now.boot) {
                self.handle(Input::Tick);
            }
            self.handle_queued();
            self.follow_up(now);
        }
        Ok(())
    }

    /// The end of a turn: the work found during it.
    fn follow_up(&mut self, now: Now) {
        // Accepting can close connections (a client that sent nothing) and so ask for
        // another round; each round accepts until the listeners are empty or paused
        // again, so this ends.
        while std::mem::take(&mut self.followups.accept) && !self.exiting {
            self.resume_accepting(now);
            self.handle_queued();
        }
        // After a burst of connections (a crowd of clients, a flood on a listener), once
        // most are gone: give back what the slab and the allocator kept for them.
        let peak = self.conns.peak();
        if peak >= COMPACT_AFTER && self.conns.len() <= peak / 8 {
            self.conns.compact();
            self.ids.shrink_to_fit();
            self.inputs.shrink_to_fit();
            self.followups.trim = true;
        }
        if std::mem::take(&mut self.followups.trim) {
            os::release_free_memory();
        }
    }

    fn arm_timer(&mut self) -> io::Result<()> {
        let next = [self.server.poll_timeout(), self.timers.next()]
            .into_iter()
            .flatten()
            .min();
        self.timer.arm(next)
    }

    /// Queues `input` for the core; [`Driver::handle_queued`] hands it over.
    fn handle(&mut self, input: Input) {
        self.inputs.push_back(input);
    }

    /// Hands every queued input to the core, in order, and performs every output. An
    /// output that produces an input (a command that cannot start, a request that fails
    /// at once) only queues it, to be handled in this same loop. Called only at the top
    /// of the driver (after an event, after accepting a connection, at the end of a
    /// turn), never while performing an output.
    fn handle_queued(&mut self) {
        let now = self.now;
        while let Some(input) = self.inputs.pop_front() {
            self.server.handle(now, input, &mut OsEntropy);
            while let Some(output) = self.server.poll_output() {
                self.perform(now, output);
            }
        }
    }

    fn perform(&mut self, now: Now, output: Output) {
        match output {
            Output::Reply { client, reply } => self.reply(client.0, &reply),
            Output::AnswerRedirect { conn, status, body } => {
                self.answer_redirect(conn.0, status, &body)
            }
            Output::SendHttp { request, http } => self.send_http(now, request, http),
            Output::CancelHttp { request } => self.cancel_http(request),
            Output::Spawn {
                child,
                command,
                env,
                capture,
            } => {
                if let Err(e) = self.children.spawn(child, &command, &env, capture) {
                    self.log(Level::Error, &format!("cannot run a command: {e}"));
                    self.handle(Input::ChildExited {
                        child,
                        status: ExitStatus::FailedToStart,
                        stdout: None,
                    });
                }
            }
            Output::Kill { child } => {
                if let Err(e) = self.children.kill(child) {
                    self.log(Level::Warn, &format!("cannot kill a command: {e}"));
                }
            }
            Output::MakeCertificate => {
                if let Some((_, fingerprint)) = &self.certificate {
                    let fingerprint = Ok(fingerprint.clone());
                    self.handle(Input::CertificateMade { fingerprint });
                } else {
                    let _ = self.certificate(true);
                }
            }
            Output::ReadConfig => {
                let result = os::read_config(&self.config_path, true);
                self.handle(Input::ConfigRead { result });
                // Only queued here: the old config is freed once the core has handled it.
                self.followups.trim = true;
            }
            Output::Log { level, message } => self.log(level, &message),
            Output::Exit => self.exiting = true,
        }
    }

    fn event(&mut self, now: Now, token: Token) {
        match token {
            CONTROL => self.accept_control(now),
            HTTP => self.accept_redirect(now, false),
            HTTPS => self.accept_redirect(now, true),
            SIGNALS => {
                for signal in self.signals.read() {
                    match signal {
                        Signal::Child => {
                            for (child, status, stdout) in self.children.reap() {
                                self.handle(Input::ChildExited {
                                    child,
                                    status,
                                    stdout,
                                });
                            }
                        }
                        Signal::Terminate | Signal::Interrupt => self.handle(Input::ShutdownAsked),
                        Signal::Hangup => self.handle(Input::ReloadAsked),
                    }
                }
            }
            TIMER => {
                let _ = self.timer.drain();
            }
            WAKER => {
                for (id, result) in self.resolver.take_results() {
                    self.resolved(now, id, result);
                }
            }
            Token(t) if t >= FIRST_CONN => self.conn_event(now, t - FIRST_CONN),
            Token(_) => (),
        }
    }

    fn conn_event(&mut self, now: Now, slot: usize) {
        match self.conns.get(slot) {
            Some(Conn::Control(_)) => self.control_event(now, slot),
            Some(Conn::Redirect(_)) => self.redirect_event(now, slot),
            Some(Conn::Outgoing(_)) => self.outgoing_event(now, slot),
            None => (),
        }
    }

    /// Does what the driver's deadlines that have passed call for.
    fn expire(&mut self, now: Now) {
        while let Some(key) = self.timers.pop_due(now.boot) {
            match key {
                Deadline::Touch => {
                    let _ = os::touch(&self.socket_file.0);
                    let next = now.boot + self.timeouts.touch;
                    self.timers.set(Deadline::Touch, Some(next));
                }
                Deadline::Accept => self.followups.accept = true,
                Deadline::Conn(slot) => self.timed_out(now, slot),
            }
        }
    }

    fn timed_out(&mut self, now: Now, slot: usize) {
        match self.conns.get(slot) {
            Some(Conn::Control(_)) => self.close(slot),
            Some(Conn::Redirect(_)) => self.redirect_timed_out(slot),
            Some(Conn::Outgoing(_)) => self.outgoing_timed_out(now, slot),
            None => (),
        }
    }

    /// Sets (or clears) the deadline of the connection in `slot`.
    fn set_deadline(&mut self, slot: usize, at: Option<Instant>) {
        self.timers.set(Deadline::Conn(slot), at);
    }

    /// Closes and forgets the connection in `slot`.
    fn close(&mut self, slot: usize) {
        let Some(conn) = self.conns.remove(slot) else {
            return;
        };
        let registry = self.poll.registry();
        match conn {
            Conn::Control(mut c) => {
                if c.registered {
                    let _ = registry.deregister(&mut c.stream);
                }
                self.ids.remove(&c.id);
                self.followups.trim |= c.large;
            }
            Conn::Redirect(mut c) => {
                c.stream.close();
                let _ = registry.deregister(&mut c.stream.tcp);
                self.ids.remove(&c.id);
            }
            Conn::Outgoing(mut c) => {
                if let Some(s) = &mut c.stream {
                    let _ = registry.deregister(&mut s.tcp);
                }
                self.http_client.forget(slot, &c);
            }
        }
        self.set_deadline(slot, None);
        // A descriptor and a slot are free: a paused listener may accept again, at the
        // end of the turn.
        if self.control_paused || self.out_of_descriptors {
            self.followups.accept = true;
        }
    }

    /// Accepts again on every listener, after a pause at the control cap or for want of
    /// descriptors. Says so once the want of descriptors is over.
    fn resume_accepting(&mut self, now: Now) {
        let failures = self.exhausted_accepts;
        self.control_paused = false;
        self.timers.set(Deadline::Accept, None);
        self.accept_control(now);
        self.accept_redirect(now, false);
        self.accept_redirect(now, true);
        if self.out_of_descriptors && self.exhausted_accepts == failures {
            self.out_of_descriptors = false;
            self.log(
                Level::Warn,
                "file descriptors are available again: accepting connections",
            );
        }
    }

    /// An `accept` failed with `e` (not `WouldBlock`, not `EINTR`, not a connection
    /// that was gone before it was accepted). Out of descriptors (or kernel memory):
    /// stop accepting until a connection of ours closes or [`ACCEPT_RETRY`] has passed,
    /// logging it once (the edge-triggered listener would never report the waiting
    /// connections again). Anything else is logged, and the next event tries again.
    fn accept_failed(&mut self, what: &str, e: &io::Error) {
        let exhausted = matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        if !exhausted {
            self.log(Level::Warn, &format!("cannot accept {what}: {e}"));
            return;
        }
        self.exhausted_accepts += 1;
        if !self.out_of_descriptors {
            self.out_of_descriptors = true;
            self.log(
                Level::Warn,
                &format!(
                    "cannot accept {what}: {e}; new connections wait until descriptors are freed"
                ),
            );
        }
        if self.timers.get(Deadline::Accept).is_none() {
            let retry = self.now.boot + ACCEPT_RETRY;
            self.timers.set(Deadline::Accept, Some(retry));
        }
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn log(&mut self, level: Level, message: &str) {
        if level <= self.log.max_level() {
            self.log.log(level, message);
        }
    }
}

/// Whether a failed `accept` only lost the one connection (it was reset or aborted
/// before it was accepted), so that the next one may be accepted at once.
fn lost_one(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) || e.raw_os_error() == Some(libc::EPROTO)
}

impl Driver {
    /// The HTTPS listener's server configuration, made (and its fingerprint told to the
    /// core) the first time it is needed; `None` if it cannot be made.
    ///
    /// After a failure (which takes a broken source of randomness), HTTPS connections are
    /// dropped without trying again (`retry` false), so a peer cannot fill the log by
    /// connecting; `info` tries again (`retry` true) and reports the error to its client.
    fn certificate(&mut self, retry: bool) -> Option<Arc<rustls::ServerConfig>> {
        if let Some((config, _)) = &self.certificate {
            return Some(config.clone());
        }
        if self.certificate_failed && !retry {
            return None;
        }
        let made = SelfSigned::generate();
        self.certificate_failed = made.is_err();
        let fingerprint = made
            .as_ref()
            .map(|c| c.fingerprint.clone())
            .map_err(Clone::clone);
        let config = made.ok().map(|c| {
            self.certificate = Some((c.config.clone(), c.fingerprint));
            c.config
        });
        self.handle(Input::CertificateMade { fingerprint });
        config
    }
}

/// The control socket's file, removed when dropped: on every way out of a server that
/// bound it, a failed start included. (The parent of a daemonising fork leaves with
/// `_exit`, dropping nothing, so the file stays for the child.)
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
