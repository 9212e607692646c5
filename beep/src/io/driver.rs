//! The driver task: moves bytes between the transport and the session,
//! turns commands into session calls and events into answers.

use super::transport::Transport;
use super::{
    Channel, ChannelHandle, Command, DriverConfig, DriverError, IncomingMessage, ReleaseError,
    ReplyKind, Response, SessionState, TlsSetup,
};
use crate::mgmt::ErrorReply;
use crate::reply_code::ReplyCode;
use crate::session::{Event, Session, StartRequest};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

/// Octets of produced output kept ready before writing.
const OUTPUT_HIGH_WATER: usize = 512 * 1024;

type Done<T> = oneshot::Sender<Result<T, DriverError>>;

struct ChannelEntry {
    inbound: mpsc::UnboundedSender<IncomingMessage>,
    credit: Arc<Semaphore>,
    /// Send credit taken by messages not yet fully written.
    held: usize,
}

struct PendingRequest {
    done: Done<Response>,
    answers: Vec<Bytes>,
}

struct Driver {
    session: Session,
    tls: TlsSetup,
    channel_send_buffer: usize,
    commands: mpsc::UnboundedSender<Command>,
    requests: mpsc::UnboundedSender<StartRequest>,
    state: watch::Sender<SessionState>,
    channels: HashMap<u32, ChannelEntry>,
    pending: HashMap<(u32, u32), PendingRequest>,
    opening: HashMap<u32, Done<Channel>>,
    closing: HashMap<u32, Done<()>>,
    release: Option<Done<()>>,
    tls_waiter: Option<Done<()>>,
    auth_waiter: Option<Done<String>>,
    tls_handshake_due: bool,
    handshake_timeout: Option<std::time::Duration>,
    keepalive: Option<std::time::Duration>,
    /// When output was last written (for the keepalive).
    last_write: Instant,
    out: BytesMut,
    peer_identity: Option<super::PeerIdentity>,
    auth_failure_delay: Option<super::AuthFailureDelay>,
    /// No output is written before this instant (failed-auth slowdown).
    hold_until: Option<Instant>,
    /// Why the session is ending although no protocol error occurred (a
    /// refused greeting, a declined release): the driver's result.
    failure: Option<DriverError>,
}

pub(crate) async fn run<S>(
    stream: S,
    config: DriverConfig,
    mut command_rx: mpsc::UnboundedReceiver<Command>,
    commands: mpsc::UnboundedSender<Command>,
    requests: mpsc::UnboundedSender<StartRequest>,
    state: watch::Sender<SessionState>,
) -> Result<(), DriverError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut session_config = config.session;
    session_config.tls_server = matches!(config.tls, TlsSetup::Server(_));
    let mut driver = Driver {
        session: Session::new(session_config, Instant::now()),
        tls: config.tls,
        channel_send_buffer: config.channel_send_buffer.max(1),
        commands,
        requests,
        state,
        channels: HashMap::new(),
        pending: HashMap::new(),
        opening: HashMap::new(),
        closing: HashMap::new(),
        release: None,
        tls_waiter: None,
        auth_waiter: None,
        tls_handshake_due: false,
        handshake_timeout: config.handshake_timeout,
        keepalive: config.keepalive,
        last_write: Instant::now(),
        out: BytesMut::with_capacity(OUTPUT_HIGH_WATER),
        peer_identity: config.peer_identity,
        auth_failure_delay: config.auth_failure_delay,
        hold_until: None,
        failure: None,
    };
    let result = driver
        .run(
            Transport::Plain(stream),
            &mut command_rx,
            config.read_buffer,
        )
        .await
        .map_err(|error| driver.name_failure(error));
    let reason = result.as_ref().err().map(ToString::to_string);
    let error = result.as_ref().err().cloned();
    driver.state.send_modify(|s| {
        s.ended = Some(reason);
        s.error = error;
    });
    for entry in driver.channels.values() {
        entry.credit.close();
    }
    if let Err(error) = &result {
        tracing::debug!(%error, "BEEP session ended");
    }
    result
}

impl Driver {
    async fn run<S>(
        &mut self,
        transport: Transport<S>,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        read_buffer: usize,
    ) -> Result<(), DriverError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut reader, mut writer) = tokio::io::split(transport);
        let mut buffer = vec![0u8; read_buffer.max(4096)];
        let mut commands_open = true;
        loop {
            self.produce();
            if self.tls_handshake_due {
                writer.write_all(&self.out).await?;
                writer.flush().await?;
                self.out.clear();
                let transport = self.handshake(reader.unsplit(writer)).await?;
                (reader, writer) = tokio::io::split(transport);
                continue;
            }
            if self.session.is_ended() && self.out.is_empty() {
                let _ = writer.shutdown().await;
                return self.failure.take().map_or(Ok(()), Err);
            }
            let deadline = self.session.poll_timeout();
            if self.hold_until.is_some_and(|until| until <= Instant::now()) {
                self.hold_until = None;
            }
            let held = self.hold_until;
            let keepalive = self.keepalive.map(|every| self.last_write + every);
            tokio::select! {
                written = writer.write(&self.out), if !self.out.is_empty() && held.is_none() => {
                    let n = written?;
                    if n == 0 {
                        return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
                    }
                    self.out.advance(n);
                    self.last_write = Instant::now();
                    self.return_credit();
                }
                read = reader.read(&mut buffer) => {
                    let n = read?;
                    if n == 0 {
                        if self.session.is_ended() {
                            return self.failure.take().map_or(Ok(()), Err);
                        }
                        return Err(DriverError::PeerClosed);
                    }
                    self.session.handle_input(Instant::now(), &buffer[..n])?;
                }
                command = commands.recv(), if commands_open => match command {
                    Some(command) => self.command(command),
                    None => commands_open = false,
                },
                () = sleep_until(deadline), if deadline.is_some() => {
                    self.session.handle_timeout(Instant::now())?;
                }
                () = sleep_until(held), if held.is_some() => self.hold_until = None,
                () = sleep_until(keepalive), if keepalive.is_some() && self.out.is_empty() => {
                    self.last_write = Instant::now();
                    self.session.keepalive();
                }
            }
        }
    }

    /// Names the step during which `error` ended the session: a release
    /// under way fails (and its caller learns why), a session that was
    /// still waiting for the peer's greeting failed in the greeting
    /// exchange. TLS failures name themselves.
    fn name_failure(&mut self, error: DriverError) -> DriverError {
        if let Some(done) = self.release.take() {
            let error = DriverError::Release(ReleaseError::from_end(error));
            let _ = done.send(Err(error.clone()));
            return error;
        }
        match error {
            DriverError::Tls(_) | DriverError::Greeting(_) => error,
            error if self.session.awaiting_greeting() => DriverError::Greeting(Box::new(error)),
            error => error,
        }
    }

    /// Moves output from the session and dispatches its events.
    fn produce(&mut self) {
        loop {
            self.dispatch_events();
            if self.out.len() >= OUTPUT_HIGH_WATER || !self.session.poll_transmit(&mut self.out) {
                break;
            }
        }
        self.dispatch_events();
        self.return_credit();
    }

    /// Gives senders back the credit of octets that have left the queue.
    fn return_credit(&mut self) {
        for (&number, entry) in &mut self.channels {
            if entry.held == 0 {
                continue;
            }
            let queued = self.session.queued_bytes(number);
            let release = entry.held.saturating_sub(queued);
            if release > 0 {
                entry.credit.add_permits(release);
                entry.held -= release;
            }
        }
    }

    async fn handshake<S>(&mut self, transport: Transport<S>) -> Result<Transport<S>, DriverError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.tls_handshake_due = false;
        let Transport::Plain(stream) = transport else {
            return Err(DriverError::Tls("TLS is already active".into()));
        };
        let handshake = async {
            match &self.tls {
                TlsSetup::Server(config) => tokio_rustls::TlsAcceptor::from(config.clone())
                    .accept(stream)
                    .await
                    .map(|s| Transport::TlsServer(Box::new(s))),
                TlsSetup::Client {
                    config,
                    server_name,
                } => tokio_rustls::TlsConnector::from(config.clone())
                    .connect(server_name.clone(), stream)
                    .await
                    .map(|s| Transport::TlsClient(Box::new(s))),
                TlsSetup::None => Err(std::io::Error::other("no TLS configuration")),
            }
        };
        let result = match self.handshake_timeout {
            Some(limit) => tokio::time::timeout(limit, handshake)
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no TLS handshake within {} ms", limit.as_millis()),
                    ))
                }),
            None => handshake.await,
        };
        match result {
            Ok(transport) => {
                let peer_certificates = transport.peer_certificates();
                let identity = match &self.peer_identity {
                    Some(derive) if !peer_certificates.is_empty() => derive(&peer_certificates),
                    _ => None,
                };
                self.session.tls_complete(Instant::now(), identity);
                self.state.send_modify(|s| {
                    s.tls_active = true;
                    s.peer_certificates = peer_certificates;
                });
                if let Some(done) = self.tls_waiter.take() {
                    let _ = done.send(Ok(()));
                }
                Ok(transport)
            }
            Err(error) => {
                let error = DriverError::Tls(error.to_string());
                if let Some(done) = self.tls_waiter.take() {
                    let _ = done.send(Err(error.clone()));
                }
                Err(error)
            }
        }
    }

    fn new_channel(&mut self, number: u32, profile: String, init: Option<Vec<u8>>) -> Channel {
        let (inbound_tx, inbound) = mpsc::unbounded_channel();
        let credit = Arc::new(Semaphore::new(self.channel_send_buffer));
        self.channels.insert(
            number,
            ChannelEntry {
                inbound: inbound_tx,
                credit: credit.clone(),
                held: 0,
            },
        );
        Channel {
            handle: ChannelHandle {
                number,
                commands: self.commands.clone(),
                credit,
                credit_limit: self.channel_send_buffer,
            },
            profile,
            init,
            inbound,
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Start {
                profiles,
                server_name,
                done,
            } => match self.session.start_channel(profiles, server_name) {
                Ok(number) => {
                    self.opening.insert(number, done);
                }
                Err(error) => {
                    let _ = done.send(Err(error.into()));
                }
            },
            Command::Accept {
                channel,
                profile,
                done,
            } => {
                let uri = profile.uri.clone();
                let result = self
                    .session
                    .accept_start(channel, profile)
                    .map(|()| self.new_channel(channel, uri, None))
                    .map_err(DriverError::from);
                let _ = done.send(result);
            }
            Command::Reject { channel, error } => {
                let _ = self.session.reject_start(channel, error);
            }
            Command::Send {
                channel,
                payload,
                credit,
                done,
            } => match self.session.send_msg(channel, payload) {
                Ok(msgno) => {
                    if let Some(entry) = self.channels.get_mut(&channel) {
                        entry.held += credit as usize;
                    }
                    self.pending.insert(
                        (channel, msgno),
                        PendingRequest {
                            done,
                            answers: Vec::new(),
                        },
                    );
                }
                Err(error) => {
                    if let Some(entry) = self.channels.get(&channel) {
                        entry.credit.add_permits(credit as usize);
                    }
                    let _ = done.send(Err(error.into()));
                }
            },
            Command::Reply {
                channel,
                msgno,
                kind,
                payload,
                done,
            } => {
                let result = match kind {
                    ReplyKind::Rpy => self.session.send_rpy(channel, msgno, payload),
                    ReplyKind::Err => self.session.send_err(channel, msgno, payload),
                    ReplyKind::Ans => self.session.send_ans(channel, msgno, payload).map(drop),
                    ReplyKind::Nul => self.session.send_nul(channel, msgno),
                };
                let _ = done.send(result.map_err(DriverError::from));
            }
            Command::Consumed { channel, octets } => self.session.consumed(channel, octets),
            Command::Close {
                channel,
                code,
                done,
            } => match self.session.close_channel(channel, code, "") {
                Ok(()) => {
                    self.closing.insert(channel, done);
                }
                Err(error) => {
                    let _ = done.send(Err(error.into()));
                }
            },
            Command::Release { done } => match self.session.release(ReplyCode::BEEP_OK) {
                Ok(()) => self.release = Some(done),
                Err(error) => {
                    let _ = done.send(Err(error.into()));
                }
            },
            Command::StartTls { done } => {
                let server_name = match &self.tls {
                    TlsSetup::Client { server_name, .. } => Some(server_name.to_str().into_owned()),
                    _ => {
                        let _ =
                            done.send(Err(DriverError::Tls("no TLS client configuration".into())));
                        return;
                    }
                };
                match self.session.start_tls(server_name) {
                    Ok(_) => self.tls_waiter = Some(done),
                    Err(error) => {
                        let _ = done.send(Err(error.into()));
                    }
                }
            }
            Command::Authenticate { client, done } => match self.session.start_sasl(client) {
                Ok(_) => self.auth_waiter = Some(done),
                Err(error) => {
                    let _ = done.send(Err(error.into()));
                }
            },
        }
    }

    fn dispatch_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            self.event(event);
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Greeting(greeting) => {
                let tls_active = self.session.tls_active();
                self.state.send_modify(|s| {
                    s.greeting = Some(greeting);
                    s.greetings += 1;
                    s.tls_active = tls_active;
                });
            }
            Event::GreetingRefused(error) => {
                self.failure = Some(DriverError::Greeting(Box::new(DriverError::Refused(error))));
            }
            Event::StartRequested(request) => {
                let channel = request.channel;
                if self.requests.send(request).is_err() {
                    let _ = self.session.reject_start(
                        channel,
                        ErrorReply::new(ReplyCode::ACTION_NOT_TAKEN, "not accepting channels"),
                    );
                }
            }
            Event::ChannelStarted {
                channel,
                profile,
                init,
            } => {
                let handle = self.new_channel(channel, profile, init);
                if let Some(done) = self.opening.remove(&channel) {
                    let _ = done.send(Ok(handle));
                }
            }
            Event::ChannelRefused { channel, error } => {
                if let Some(done) = self.opening.remove(&channel) {
                    let _ = done.send(Err(DriverError::Refused(error)));
                }
            }
            Event::Message {
                channel,
                msgno,
                payload,
            } => {
                let delivered = self.channels.get(&channel).is_some_and(|entry| {
                    entry
                        .inbound
                        .send(IncomingMessage {
                            msgno,
                            payload: payload.clone(),
                        })
                        .is_ok()
                });
                if !delivered {
                    self.session.consumed(channel, payload.len());
                    let error = ErrorReply::new(ReplyCode::ACTION_NOT_TAKEN, "channel is not read");
                    let _ = self
                        .session
                        .send_err(channel, msgno, Bytes::from(error.to_payload()));
                }
            }
            Event::Reply {
                channel,
                msgno,
                error,
                payload,
            } => {
                self.session.consumed(channel, payload.len());
                if let Some(request) = self.pending.remove(&(channel, msgno)) {
                    let response = if error {
                        Response::Error(payload)
                    } else {
                        Response::Reply(payload)
                    };
                    let _ = request.done.send(Ok(response));
                }
            }
            Event::Answer {
                channel,
                msgno,
                payload,
                ..
            } => {
                self.session.consumed(channel, payload.len());
                if let Some(request) = self.pending.get_mut(&(channel, msgno)) {
                    request.answers.push(payload);
                }
            }
            Event::AnswersComplete { channel, msgno } => {
                if let Some(request) = self.pending.remove(&(channel, msgno)) {
                    let _ = request.done.send(Ok(Response::Answers(request.answers)));
                }
            }
            Event::ChannelClosed { channel, .. } => {
                if let Some(entry) = self.channels.remove(&channel) {
                    entry.credit.close();
                }
                self.pending.retain(|&(c, _), _| c != channel);
                if let Some(done) = self.closing.remove(&channel) {
                    let _ = done.send(Ok(()));
                }
            }
            Event::CloseRefused { channel: 0, error } => {
                // The application asked to release: the work done on the
                // session stands, so end it cleanly (what is queued is
                // still written) and report the release as failed.
                if let Some(done) = self.release.take() {
                    let error = DriverError::Release(ReleaseError::Declined(error));
                    let _ = done.send(Err(error.clone()));
                    self.failure = Some(error);
                    self.session.terminate();
                }
            }
            Event::CloseRefused { channel, error } => {
                if let Some(done) = self.closing.remove(&channel) {
                    let _ = done.send(Err(DriverError::Refused(error)));
                }
            }
            Event::Released { .. } => {
                if let Some(done) = self.release.take() {
                    let _ = done.send(Ok(()));
                }
            }
            Event::TlsProceed { .. } => self.tls_handshake_due = true,
            Event::TlsRefused(error) => {
                if let Some(done) = self.tls_waiter.take() {
                    let _ = done.send(Err(DriverError::Refused(error)));
                }
            }
            Event::Authenticated { identity, peer, .. } => {
                let shown = identity.clone();
                self.state.send_modify(|s| s.authenticated = Some(shown));
                if !peer && let Some(done) = self.auth_waiter.take() {
                    let _ = done.send(Ok(identity));
                }
            }
            Event::AuthenticationFailed { error, peer, .. } => {
                if !peer && let Some(done) = self.auth_waiter.take() {
                    let _ = done.send(Err(DriverError::Refused(error)));
                }
                if peer && let Some(delay) = &self.auth_failure_delay {
                    let until = Instant::now() + delay();
                    self.hold_until = Some(self.hold_until.map_or(until, |held| held.max(until)));
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
