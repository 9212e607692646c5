//! The tokio driver: runs a [`Session`](crate::Session) over any
//! `AsyncRead + AsyncWrite` (a `TcpStream`, a `UnixStream`, an in-memory
//! duplex), with TLS tuning through tokio-rustls.
//!
//! [`Connection::spawn`] starts a driver task that owns the stream and the
//! session; the [`Connection`] handle (cheap to clone) and [`Channel`]s talk
//! to it over channels. Backpressure: a sender waits while more than
//! [`DriverConfig::channel_send_buffer`] octets of its channel are queued
//! and unwritten; received messages are advertised to the peer as buffer
//! space again only once the application has taken them
//! ([`Channel::next_message`]), so a slow reader slows its peer through the
//! RFC 3081 window rather than growing memory.

mod driver;
mod transport;

use crate::error::{SessionError, UserError};
use crate::mgmt::{ErrorReply, Greeting, Profile};
use crate::reply_code::ReplyCode;
use crate::session::{Config, StartRequest};
use crate::tuning::sasl::SaslClient;
use bytes::Bytes;
use std::sync::Arc;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

/// Why a driver operation failed.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The transport failed.
    #[error("transport error: {0}")]
    Io(Arc<std::io::Error>),
    /// The peer violated the protocol; the session was terminated.
    #[error("session terminated: {0}")]
    Session(#[from] SessionError),
    /// The request was not valid in the session's state.
    #[error(transparent)]
    User(#[from] UserError),
    /// The peer answered with an error.
    #[error("peer refused: {0}")]
    Refused(ErrorReply),
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The session ended before the peer's greeting arrived (RFC 3080
    /// §2.3.1.1), for the reason given.
    #[error("greeting exchange failed: {0}")]
    Greeting(Box<Self>),
    /// The peer closed the transport while the session was open.
    #[error("the peer closed the connection")]
    PeerClosed,
    /// Releasing the session (RFC 3080 §2.4) failed. The driver ended the
    /// session anyway, after everything exchanged before the release.
    #[error("session release failed: {0}")]
    Release(ReleaseError),
    /// The session has ended (released, refused, or the driver stopped).
    #[error("the session has ended")]
    Closed,
}

/// How a release (RFC 3080 §2.4) failed.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The peer answered a `<close>` (of channel 0, or of a channel closed
    /// on the way) with an `<error>`.
    #[error("the peer declined: {0}")]
    Declined(ErrorReply),
    /// The peer closed the transport instead of answering.
    #[error("the peer closed the connection without answering")]
    PeerClosed,
    /// The peer did not answer within the close timeout.
    #[error("no answer within the close timeout")]
    Timeout,
    /// Anything else that ended the session during the release.
    #[error("{0}")]
    Other(Box<DriverError>),
}

impl ReleaseError {
    /// The release failure that `error`, ending the session while a
    /// release was under way, amounts to.
    pub(crate) fn from_end(error: DriverError) -> Self {
        match error {
            DriverError::PeerClosed => Self::PeerClosed,
            DriverError::Session(SessionError::CloseTimeout) => Self::Timeout,
            DriverError::Release(release) => release,
            DriverError::Refused(error) => Self::Declined(error),
            other => Self::Other(Box::new(other)),
        }
    }
}

impl From<std::io::Error> for DriverError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(Arc::new(error))
    }
}

/// TLS material for tuning (RFC 3080 §3.1).
#[derive(Clone, Default)]
pub enum TlsSetup {
    /// No TLS: the TLS profile is neither offered nor used.
    #[default]
    None,
    /// Act as TLS server when the peer sends `<ready />`.
    Server(Arc<rustls::ServerConfig>),
    /// Act as TLS client after our `<ready />` is accepted.
    Client {
        /// Client configuration (trust anchors, client certificate).
        config: Arc<rustls::ClientConfig>,
        /// The name the server's certificate must carry.
        server_name: rustls::pki_types::ServerName<'static>,
    },
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => write!(f, "TlsSetup::None"),
            Self::Server(_) => write!(f, "TlsSetup::Server"),
            Self::Client { server_name, .. } => write!(f, "TlsSetup::Client({server_name:?})"),
        }
    }
}

/// Maps the peer's verified certificate chain (end entity first) to the
/// identity SASL EXTERNAL (RFC 4422 Appendix A) authenticates as; see
/// [`DriverConfig::peer_identity`].
pub type PeerIdentity =
    Arc<dyn Fn(&[rustls::pki_types::CertificateDer<'static>]) -> Option<String> + Send + Sync>;

/// How long to hold back output after the peer failed a SASL exchange; see
/// [`DriverConfig::auth_failure_delay`].
pub type AuthFailureDelay = Arc<dyn Fn() -> std::time::Duration + Send + Sync>;

/// Driver settings.
#[derive(Clone)]
pub struct DriverConfig {
    /// The session settings.
    pub session: Config,
    /// TLS material.
    pub tls: TlsSetup,
    /// Unwritten octets a channel may queue before senders wait.
    pub channel_send_buffer: usize,
    /// Size of the read buffer.
    pub read_buffer: usize,
    /// After a TLS handshake, derives the identity of the peer's verified
    /// certificate, which the session hands to SASL mechanisms as
    /// [`AuthContext::tls_peer_identity`](crate::tuning::sasl::AuthContext)
    /// (EXTERNAL). `None`: no identity.
    pub peer_identity: Option<PeerIdentity>,
    /// Called when the peer's SASL exchange fails (as server); the driver
    /// then writes nothing on this session for the returned time, so the
    /// failure reply reaches the peer late. Only this session waits: the
    /// delay is a timer in its own task. `None`: no delay.
    pub auth_failure_delay: Option<AuthFailureDelay>,
    /// Time allowed for the TLS handshake once `<proceed />` was exchanged;
    /// over it the session is terminated. `None`: no limit.
    pub handshake_timeout: Option<std::time::Duration>,
    /// When nothing has been written for this long on an open session,
    /// send a SEQ on channel 0 ([`Session::keepalive`](crate::Session::keepalive))
    /// so that a peer with an idle timeout sees traffic. `None`: never.
    pub keepalive: Option<std::time::Duration>,
}

impl std::fmt::Debug for DriverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverConfig")
            .field("session", &self.session)
            .field("tls", &self.tls)
            .field("channel_send_buffer", &self.channel_send_buffer)
            .field("read_buffer", &self.read_buffer)
            .field("peer_identity", &self.peer_identity.is_some())
            .field("auth_failure_delay", &self.auth_failure_delay.is_some())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("keepalive", &self.keepalive)
            .finish()
    }
}

impl DriverConfig {
    /// Defaults around `session`: no TLS, 1 MiB send buffer per channel,
    /// 30 s for the TLS handshake, no keepalive.
    pub fn new(session: Config) -> Self {
        Self {
            session,
            tls: TlsSetup::None,
            channel_send_buffer: 1024 * 1024,
            read_buffer: 64 * 1024,
            peer_identity: None,
            auth_failure_delay: None,
            handshake_timeout: Some(std::time::Duration::from_secs(30)),
            keepalive: None,
        }
    }
}

/// What the peer answered to a MSG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// RPY.
    Reply(Bytes),
    /// ERR.
    Error(Bytes),
    /// ANS… NUL: the answers in ansno order of arrival.
    Answers(Vec<Bytes>),
}

/// A MSG received on a channel, to be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    /// Message number, to reply to.
    pub msgno: u32,
    /// The payload.
    pub payload: Bytes,
}

/// Observable session state.
#[derive(Debug, Clone, Default)]
pub struct SessionState {
    /// The peer's current greeting (after tuning: the new one).
    pub greeting: Option<Greeting>,
    /// Number of greetings received (1 before tuning, 2 after TLS).
    pub greetings: u32,
    /// TLS is active.
    pub tls_active: bool,
    /// The certificate chain the TLS peer presented (end entity first),
    /// verified by the rustls configuration in use; empty without TLS or
    /// when the peer sent none.
    pub peer_certificates: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The SASL identity (the peer's if it authenticated to us, ours as client).
    pub authenticated: Option<String>,
    /// The session has ended; with the reason if it was not a clean release.
    pub ended: Option<Option<String>>,
    /// Why the session ended, when it was not a clean release.
    pub error: Option<DriverError>,
}

pub(crate) enum Command {
    Start {
        profiles: Vec<Profile>,
        server_name: Option<String>,
        done: oneshot::Sender<Result<Channel, DriverError>>,
    },
    Accept {
        channel: u32,
        profile: Profile,
        done: oneshot::Sender<Result<Channel, DriverError>>,
    },
    Reject {
        channel: u32,
        error: ErrorReply,
    },
    Send {
        channel: u32,
        payload: Bytes,
        credit: u32,
        done: oneshot::Sender<Result<Response, DriverError>>,
    },
    Reply {
        channel: u32,
        msgno: u32,
        kind: ReplyKind,
        payload: Bytes,
        done: oneshot::Sender<Result<(), DriverError>>,
    },
    Consumed {
        channel: u32,
        octets: usize,
    },
    Close {
        channel: u32,
        code: ReplyCode,
        done: oneshot::Sender<Result<(), DriverError>>,
    },
    Release {
        done: oneshot::Sender<Result<(), DriverError>>,
    },
    StartTls {
        done: oneshot::Sender<Result<(), DriverError>>,
    },
    Authenticate {
        client: Box<dyn SaslClient>,
        done: oneshot::Sender<Result<String, DriverError>>,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum ReplyKind {
    Rpy,
    Err,
    Ans,
    Nul,
}

/// A handle on a running session. Dropping every handle does not stop the
/// session; [`Connection::release`] does.
#[derive(Clone)]
pub struct Connection {
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<SessionState>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

/// Channels the peer asks to start on our application profiles.
pub struct Incoming {
    requests: mpsc::UnboundedReceiver<StartRequest>,
    commands: mpsc::UnboundedSender<Command>,
}

/// A peer's request to start a channel; accept or reject it.
pub struct IncomingStart {
    /// What the peer asked for.
    pub request: StartRequest,
    commands: mpsc::UnboundedSender<Command>,
}

impl Connection {
    /// Starts a driver task for `stream` on the current tokio runtime. The
    /// greeting is sent at once. Returns the handle, the stream of start
    /// requests from the peer, and the driver task (which ends with the
    /// session, returning why it ended).
    pub fn spawn<S>(
        stream: S,
        config: DriverConfig,
    ) -> (
        Self,
        Incoming,
        tokio::task::JoinHandle<Result<(), DriverError>>,
    )
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (request_tx, requests) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(SessionState::default());
        let task = tokio::spawn(driver::run(
            stream,
            config,
            command_rx,
            commands.clone(),
            request_tx,
            state_tx,
        ));
        (
            Self {
                commands: commands.clone(),
                state,
            },
            Incoming { requests, commands },
            task,
        )
    }

    fn command<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, DriverError>>) -> Command,
    ) -> oneshot::Receiver<Result<T, DriverError>> {
        let (done, wait) = oneshot::channel();
        // If the driver is gone, `wait` reports it as Closed below.
        let _ = self.commands.send(make(done));
        wait
    }

    /// The current session state.
    pub fn state(&self) -> SessionState {
        self.state.borrow().clone()
    }

    /// Waits until the peer has greeted `count` times in total (1: the
    /// initial greeting; 2: the greeting after TLS), and returns that greeting.
    pub async fn greeting(&self, count: u32) -> Result<Greeting, DriverError> {
        let mut state = self.state.clone();
        let state = state
            .wait_for(|s| s.greetings >= count || s.ended.is_some())
            .await
            .map_err(|_| DriverError::Closed)?;
        match (&state.greeting, &state.ended, &state.error) {
            (Some(greeting), None, _) => Ok(greeting.clone()),
            // The error names the step that failed (greeting, TLS, …).
            (_, _, Some(error)) => Err(error.clone()),
            _ => Err(DriverError::Closed),
        }
    }

    /// Waits until the session ends.
    pub async fn ended(&self) -> Option<String> {
        let mut state = self.state.clone();
        match state.wait_for(|s| s.ended.is_some()).await {
            Ok(state) => state.ended.clone().flatten(),
            Err(_) => None,
        }
    }

    /// Starts a channel on one of `profiles` (RFC 3080 §2.3.1.2).
    pub async fn open_channel(
        &self,
        profiles: Vec<Profile>,
        server_name: Option<String>,
    ) -> Result<Channel, DriverError> {
        self.greeting(1).await?;
        flatten(
            self.command(|done| Command::Start {
                profiles,
                server_name,
                done,
            })
            .await,
        )
    }

    /// Negotiates TLS (RFC 3080 §3.1) and waits for the new greeting.
    pub async fn start_tls(&self) -> Result<Greeting, DriverError> {
        let before = self.greeting(1).await.map(|_| self.state().greetings)?;
        flatten(self.command(|done| Command::StartTls { done }).await)?;
        self.greeting(before + 1).await
    }

    /// Authenticates with SASL (RFC 3080 §4.1); returns the identity.
    pub async fn authenticate(&self, client: Box<dyn SaslClient>) -> Result<String, DriverError> {
        self.greeting(1).await?;
        flatten(
            self.command(|done| Command::Authenticate { client, done })
                .await,
        )
    }

    /// Releases the session (RFC 3080 §2.4): closes every open channel,
    /// then channel 0 (`<close number='0' code='200' />`), waiting for each
    /// `<ok />`. Whatever the answer, the session ends: when the peer
    /// declines, closes the transport or does not answer, the driver ends
    /// it cleanly (after writing what was queued) and this returns
    /// [`DriverError::Release`].
    pub async fn release(&self) -> Result<(), DriverError> {
        flatten(self.command(|done| Command::Release { done }).await)
    }
}

fn flatten<T>(
    result: Result<Result<T, DriverError>, oneshot::error::RecvError>,
) -> Result<T, DriverError> {
    result.unwrap_or(Err(DriverError::Closed))
}

impl Incoming {
    /// The next start request from the peer; `None` when the session ended.
    pub async fn next(&mut self) -> Option<IncomingStart> {
        let request = self.requests.recv().await?;
        Some(IncomingStart {
            request,
            commands: self.commands.clone(),
        })
    }
}

impl IncomingStart {
    /// Accepts on `profile` (one of `request.profiles`), with optional init reply.
    pub async fn accept(self, profile: Profile) -> Result<Channel, DriverError> {
        let (done, wait) = oneshot::channel();
        let _ = self.commands.send(Command::Accept {
            channel: self.request.channel,
            profile,
            done,
        });
        flatten(wait.await)
    }

    /// Refuses the request.
    pub fn reject(self, error: ErrorReply) {
        let _ = self.commands.send(Command::Reject {
            channel: self.request.channel,
            error,
        });
    }
}

/// An open channel: receives the peer's MSGs, and sends through its
/// [`ChannelHandle`] (which it dereferences to).
pub struct Channel {
    handle: ChannelHandle,
    profile: String,
    init: Option<Vec<u8>>,
    inbound: mpsc::UnboundedReceiver<IncomingMessage>,
}

/// The sending side of a channel; cheap to clone, usable from many tasks.
#[derive(Clone)]
pub struct ChannelHandle {
    number: u32,
    commands: mpsc::UnboundedSender<Command>,
    credit: Arc<Semaphore>,
    credit_limit: usize,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("number", &self.handle.number)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ChannelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelHandle")
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

/// A reply that will arrive; `await` it with [`PendingResponse::response`].
#[derive(Debug)]
pub struct PendingResponse(oneshot::Receiver<Result<Response, DriverError>>);

impl PendingResponse {
    /// Waits for the peer's reply.
    pub async fn response(self) -> Result<Response, DriverError> {
        flatten(self.0.await)
    }
}

impl std::ops::Deref for Channel {
    type Target = ChannelHandle;

    fn deref(&self) -> &ChannelHandle {
        &self.handle
    }
}

impl Channel {
    /// The profile URI.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// Init content the peer piggybacked on the start exchange.
    pub fn init(&self) -> Option<&[u8]> {
        self.init.as_deref()
    }

    /// A sending handle for other tasks.
    pub fn handle(&self) -> ChannelHandle {
        self.handle.clone()
    }

    /// The next MSG from the peer; `None` once the channel or session closed.
    pub async fn next_message(&mut self) -> Option<IncomingMessage> {
        let message = self.inbound.recv().await?;
        let _ = self.handle.commands.send(Command::Consumed {
            channel: self.handle.number,
            octets: message.payload.len(),
        });
        Some(message)
    }

    /// Closes the channel (RFC 3080 §2.3.1.3) and waits for the peer's answer.
    pub async fn close(self, code: ReplyCode) -> Result<(), DriverError> {
        self.handle.close(code).await
    }
}

impl ChannelHandle {
    /// The channel number.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Sends a MSG without waiting for its reply (pipelining). Waits while
    /// the channel's unwritten queue is full.
    pub async fn send(&self, payload: Bytes) -> Result<PendingResponse, DriverError> {
        let credit = payload.len().min(self.credit_limit).max(1) as u32;
        self.credit
            .acquire_many(credit)
            .await
            .map_err(|_| DriverError::Closed)?
            .forget();
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Send {
                channel: self.number,
                payload,
                credit,
                done,
            })
            .map_err(|_| DriverError::Closed)?;
        Ok(PendingResponse(wait))
    }

    /// Sends a MSG and waits for the reply.
    pub async fn request(&self, payload: Bytes) -> Result<Response, DriverError> {
        self.send(payload).await?.response().await
    }

    async fn reply_with(
        &self,
        msgno: u32,
        kind: ReplyKind,
        payload: Bytes,
    ) -> Result<(), DriverError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Reply {
                channel: self.number,
                msgno,
                kind,
                payload,
                done,
            })
            .map_err(|_| DriverError::Closed)?;
        flatten(wait.await)
    }

    /// Answers MSG `msgno` with RPY.
    pub async fn reply(&self, msgno: u32, payload: Bytes) -> Result<(), DriverError> {
        self.reply_with(msgno, ReplyKind::Rpy, payload).await
    }

    /// Answers MSG `msgno` with ERR.
    pub async fn reply_error(&self, msgno: u32, payload: Bytes) -> Result<(), DriverError> {
        self.reply_with(msgno, ReplyKind::Err, payload).await
    }

    /// Sends one ANS to MSG `msgno`.
    pub async fn answer(&self, msgno: u32, payload: Bytes) -> Result<(), DriverError> {
        self.reply_with(msgno, ReplyKind::Ans, payload).await
    }

    /// Ends the answers to MSG `msgno` with NUL.
    pub async fn end_answers(&self, msgno: u32) -> Result<(), DriverError> {
        self.reply_with(msgno, ReplyKind::Nul, Bytes::new()).await
    }

    /// Closes the channel (RFC 3080 §2.3.1.3) and waits for the peer's answer.
    pub async fn close(&self, code: ReplyCode) -> Result<(), DriverError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Close {
                channel: self.number,
                code,
                done,
            })
            .map_err(|_| DriverError::Closed)?;
        flatten(wait.await)
    }
}
