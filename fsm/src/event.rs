//! What goes into the core and what comes out of it.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::protocol::Reply;
use crate::secret::Secret;

/// A control-socket client, named by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

/// A connection on a redirect listener, named by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// An outgoing HTTP request, named by the core; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// A child process, named by the core; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChildId(pub u64);

/// A source of random bytes. The driver uses the OS; tests use a seeded generator so a
/// whole session replays bit for bit.
pub trait Entropy {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// Which redirect listener a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// The plain HTTP listener.
    Http,
    /// The HTTPS listener.
    Https,
}

/// An HTTP request received on a redirect listener, already framed by the driver.
/// `Debug` hides the query, which carries the authorisation code.
#[derive(Clone, PartialEq, Eq)]
pub struct RedirectRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target, e.g. `/?state=...&code=...`.
    pub target: String,
    /// The `Host` header, if there was one.
    pub host: Option<String>,
}

impl std::fmt::Debug for RedirectRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.target.split('?').next().unwrap_or_default();
        f.debug_struct("RedirectRequest")
            .field("method", &self.method)
            .field("target", &format_args!("{path}?<redacted>"))
            .field("host", &self.host)
            .finish()
    }
}

/// A response from a token endpoint, already framed by the driver.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers (names lower-cased by the driver), in order.
    pub headers: Vec<(String, String)>,
    /// The body; it may hold tokens.
    pub body: Secret<Vec<u8>>,
}

/// Why an HTTP request produced no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// The host name did not resolve.
    Dns,
    /// Connecting failed (refused, unreachable).
    Connect,
    /// The TLS handshake failed (bad certificate, wrong name, protocol error).
    Tls,
    /// Reading or writing failed, or the peer closed early or sent unparseable HTTP.
    Io,
    /// The response was larger than the cap.
    TooLarge,
}

/// An HTTP request that produced no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    /// What kind of failure.
    pub kind: TransportErrorKind,
    /// A one-line description for the user, without secrets.
    pub message: String,
}

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
    /// It could not be started at all.
    FailedToStart,
}

impl ExitStatus {
    /// Exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

/// The most stdout captured from a child (a `client_secret_cmd`).
pub const MAX_CAPTURE_BYTES: usize = 64 * 1024;

/// Something that happened, reported to [`crate::Server::handle`].
#[derive(Debug)]
pub enum Input {
    /// Nothing new but the time: a timer the core asked for has come due.
    Tick,
    /// The control socket is accepting requests (run `startup_cmd`).
    Started,
    /// A control client sent a request (the raw bytes; the core decodes them).
    ClientAsked {
        /// Who asked.
        client: ClientId,
        /// What they sent.
        bytes: Secret<Vec<u8>>,
    },
    /// A control client whose request the core has not answered yet went away (a
    /// `show -w` client that hung up): nothing need be sent to it any more.
    ClientGone {
        /// Who left.
        client: ClientId,
    },
    /// A redirect listener received a request.
    RedirectReceived {
        /// The connection to answer on.
        conn: ConnId,
        /// Which listener.
        scheme: Scheme,
        /// The request.
        request: RedirectRequest,
    },
    /// A token endpoint answered.
    HttpResponded {
        /// The request this answers.
        request: RequestId,
        /// The response.
        response: HttpResponse,
    },
    /// A token-endpoint request failed without an answer.
    HttpFailed {
        /// The request that failed.
        request: RequestId,
        /// Why.
        error: TransportError,
    },
    /// A child process ended (or could not start).
    ChildExited {
        /// Which child.
        child: ChildId,
        /// How.
        status: ExitStatus,
        /// What it wrote to stdout, if the spawn asked for it to be captured (at most
        /// [`MAX_CAPTURE_BYTES`]; it may be a secret).
        stdout: Option<Secret<Vec<u8>>>,
    },
    /// The config file was read after [`Output::ReadConfig`].
    ConfigRead {
        /// Its text, or why it could not be read.
        result: Result<String, String>,
    },
    /// The HTTPS listener's certificate was made (after [`Output::MakeCertificate`], or
    /// because the first HTTPS connection needed it): its fingerprint, or why not.
    CertificateMade {
        /// The SHA-256 fingerprint as `info` shows it, or the error.
        fingerprint: Result<String, String>,
    },
    /// SIGHUP: reload the configuration.
    ReloadAsked,
    /// SIGTERM or SIGINT: shut down.
    ShutdownAsked,
}

/// The HTTP method of an outgoing request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET` (discovery).
    Get,
    /// `POST` (token and revocation endpoints).
    Post,
}

/// An outgoing HTTP request to a provider.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The URL (http or https); shared with the account it came from (a storm of
    /// refreshes sends one request per account to the same endpoint).
    pub url: Arc<Url>,
    /// An `application/x-www-form-urlencoded` body for `POST`, empty for `GET`; it holds
    /// secrets (codes, verifiers, refresh tokens, client secrets).
    pub body: Secret<Vec<u8>>,
    /// The value of an `Authorization` header to send (`client_secret_basic`), if any;
    /// it holds the client secret.
    pub authorization: Option<Secret>,
    /// Give up (and report [`Input::HttpFailed`]) if the whole exchange takes longer.
    pub timeout: Duration,
}

/// Log levels, from the most to the least important.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something is wrong but work goes on.
    Warn,
    /// Something happened that a user may want to know.
    Info,
    /// Details for debugging.
    Debug,
    /// Everything.
    Trace,
}

/// Something for the driver to do, drained with [`crate::Server::poll_output`].
#[derive(Debug)]
pub enum Output {
    /// Answer a control client, then close its connection.
    Reply {
        /// Whom.
        client: ClientId,
        /// What.
        reply: Reply,
    },
    /// Answer a redirect connection, then close it.
    AnswerRedirect {
        /// Which connection.
        conn: ConnId,
        /// HTTP status code.
        status: u16,
        /// A short plain-text body.
        body: String,
    },
    /// Send an HTTP request; its outcome comes back as [`Input::HttpResponded`] or
    /// [`Input::HttpFailed`] with the same id.
    SendHttp {
        /// The request's id.
        request: RequestId,
        /// The request.
        http: HttpRequest,
    },
    /// Abandon an HTTP request; nothing more will be reported for it.
    CancelHttp {
        /// The request's id.
        request: RequestId,
    },
    /// Run `$SHELL -c command` with stdin closed and these extra environment variables;
    /// its end comes back as [`Input::ChildExited`].
    Spawn {
        /// The child's id.
        child: ChildId,
        /// The shell command.
        command: String,
        /// Extra environment variables.
        env: Vec<(String, String)>,
        /// Capture stdout (up to [`MAX_CAPTURE_BYTES`]) and report it with the exit;
        /// otherwise stdout goes to `/dev/null`.
        capture: bool,
    },
    /// Kill a child (its exit is still reported).
    Kill {
        /// Which child.
        child: ChildId,
    },
    /// Read the config file the server was started with, and report [`Input::ConfigRead`].
    ReadConfig,
    /// Make the HTTPS listener's certificate if it has none yet, and report
    /// [`Input::CertificateMade`].
    MakeCertificate,
    /// Log a message. Messages never contain secrets.
    Log {
        /// How important.
        level: Level,
        /// What.
        message: String,
    },
    /// Exit cleanly: remove the socket, stop.
    Exit,
}
