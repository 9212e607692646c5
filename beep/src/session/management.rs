//! Channel 0 and the tuning channels: greetings, `start`, `close`, release
//! (RFC 3080 §2.3, §2.4), TLS (§3) and SASL (§4) exchanges.

use super::channel::{Channel, LocalClose, OnSent, Outgoing, Outstanding, Service};
use super::{Event, PendingOp, Phase, Session, StartKind};
use crate::error::{SessionError, UserError};
use crate::frame::Keyword;
use crate::mgmt::{self, Close, ErrorReply, Profile, Reply, Request, Start};
use crate::mime;
use crate::reply_code::ReplyCode;
use crate::tuning::sasl::{self, Blob, BlobStatus, ServerStep};
use crate::tuning::tls::{self, TLS_URI};
use bytes::Bytes;

/// A peer's request to start a channel on one of our application profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRequest {
    /// The channel number the peer chose.
    pub channel: u32,
    /// The `serverName` attribute.
    pub server_name: Option<String>,
    /// The offered profiles we support, in the peer's order of preference.
    pub profiles: Vec<Profile>,
}

/// A start request waiting for the application's decision.
pub(crate) struct PendingStart {
    msgno: u32,
    offered: Vec<String>,
    server_name: Option<String>,
}

impl Session {
    // ===== greeting =====

    pub(super) fn receive_greeting(
        &mut self,
        error: bool,
        payload: &Bytes,
    ) -> Result<(), SessionError> {
        if self.phase != Phase::Greeting {
            return Err(SessionError::UnexpectedManagementReply("second greeting"));
        }
        match mgmt::parse_reply(payload).map_err(SessionError::ManagementReply)? {
            // Refusing the session: the peer's greeting is ignored (RFC 3080 §2.4).
            Reply::Greeting(_) if self.config.refuse.is_some() => Ok(()),
            Reply::Greeting(greeting) if !error => {
                self.phase = Phase::Open;
                self.greeting_deadline = None;
                self.peer_greeting = Some(greeting.clone());
                self.events.push_back(Event::Greeting(greeting));
                Ok(())
            }
            Reply::Error(refusal) if error => {
                self.phase = Phase::Ended;
                self.events.push_back(Event::GreetingRefused(refusal));
                Ok(())
            }
            _ => Err(SessionError::UnexpectedManagementReply(
                "RPY 0 0 must carry <greeting>, ERR 0 0 <error>",
            )),
        }
    }

    // ===== MSGs on management and tuning channels =====

    pub(super) fn service_message(
        &mut self,
        number: u32,
        msgno: u32,
        payload: Bytes,
    ) -> Result<(), SessionError> {
        let channel = self.channel_mut(number);
        match &channel.service {
            Service::Management => match mgmt::parse_request(&payload) {
                Ok(Request::Start(start)) => self.handle_start(msgno, start),
                Ok(Request::Close(close)) => self.handle_close(msgno, close),
                Err(error) => self.reply_error(
                    0,
                    msgno,
                    ErrorReply::new(error.reply_code(), error.to_string()),
                ),
            },
            Service::TlsServer => {
                let ready = mime::beep_xml_body(&payload)
                    .map_err(|e| ErrorReply::new(ReplyCode::SYNTAX_ERROR, e.to_string()))
                    .and_then(tls::parse_ready);
                match ready {
                    Ok(()) if !self.tls_active && self.tls_proceed_pending.is_none() => {
                        self.tls_proceed_pending = Some((number, msgno, false));
                    }
                    Ok(()) => self.reply_error(
                        number,
                        msgno,
                        ErrorReply::new(ReplyCode::ACTION_NOT_TAKEN, "TLS is already negotiated"),
                    ),
                    Err(error) => self.reply_error(number, msgno, error),
                }
            }
            Service::SaslServer(_) => self.sasl_server_message(number, msgno, &payload),
            Service::TlsClient | Service::SaslClient(_) => self.reply_error(
                number,
                msgno,
                ErrorReply::new(
                    ReplyCode::ACTION_NOT_TAKEN,
                    "unexpected MSG on this channel",
                ),
            ),
            Service::App => unreachable!("application MSGs go to the application"),
        }
        Ok(())
    }

    fn reply_error(&mut self, number: u32, msgno: u32, error: ErrorReply) {
        self.reply_on(number, msgno, Keyword::Err, error.to_payload(), None);
    }

    /// Queues a reply on a management or tuning channel. The MSG is owed, so
    /// this cannot fail unless the session is ending, when there is nothing
    /// left to answer.
    fn reply_on(
        &mut self,
        number: u32,
        msgno: u32,
        keyword: Keyword,
        payload: Vec<u8>,
        on_sent: Option<OnSent>,
    ) {
        let _ = self.queue_reply_with(number, msgno, keyword, Bytes::from(payload), None, on_sent);
    }

    fn handle_start(&mut self, msgno: u32, start: Start) {
        let number = start.number;
        let peer_parity = 1 - self.config.role.parity();
        let refuse = |code, text: String| Some(ErrorReply::new(code, text));
        let problem = if self.release_requested.is_some()
            || self.release_pending.is_some()
            || self.tls_proceed_pending.is_some()
        {
            refuse(
                ReplyCode::ACTION_NOT_TAKEN,
                "the session is being released or tuned".into(),
            )
        } else if number % 2 != peer_parity {
            let parity = if peer_parity == 1 { "odd" } else { "even" };
            refuse(
                ReplyCode::PARAMETER_SYNTAX_ERROR,
                format!("number attribute in <start> element must be {parity}-valued"),
            )
        } else if self.channels.contains_key(&number)
            || self.starting.contains(&number)
            || self.start_requests.contains_key(&number)
        {
            refuse(
                ReplyCode::ACTION_NOT_TAKEN,
                format!("channel {number} is already in use"),
            )
        } else if self.channels.len() + self.starting.len() + self.start_requests.len()
            >= self.config.max_channels
        {
            refuse(
                ReplyCode::ACTION_NOT_TAKEN,
                format!("too many channels (limit {})", self.config.max_channels),
            )
        } else {
            None
        };
        if let Some(error) = problem {
            return self.reply_error(0, msgno, error);
        }
        // The first offered profile we can run wins; a SASL mechanism that
        // refuses to start (e.g. 538 without TLS) lets later offers be tried,
        // and its error is the answer if none can (RFC 3080 §2.3.1.2).
        let mut refusal = None;
        for profile in &start.profiles {
            if profile.uri == TLS_URI && self.config.tls_server && !self.tls_active {
                return self.start_tls_server(msgno, &start, profile.init.as_deref());
            }
            if let (Some(mechanism), Some(factory), None) = (
                sasl::mechanism_of(&profile.uri),
                self.config.sasl.clone(),
                &self.authenticated,
            ) && factory
                .mechanisms(&self.auth_context())
                .iter()
                .any(|m| m == mechanism)
            {
                match factory.start(mechanism, &self.auth_context()) {
                    Ok(server) => {
                        let mechanism = mechanism.to_owned();
                        return self.start_sasl_server(msgno, &start, &mechanism, profile, server);
                    }
                    Err(error) => refusal = refusal.or(Some(error)),
                }
            }
        }
        let app: Vec<Profile> = start
            .profiles
            .into_iter()
            .filter(|p| self.app_profiles_available() && self.config.profiles.contains(&p.uri))
            .collect();
        if app.is_empty() {
            if let Some(error) = refusal {
                return self.reply_error(0, msgno, error);
            }
            return self.reply_error(
                0,
                msgno,
                ErrorReply::new(
                    ReplyCode::ACTION_NOT_TAKEN,
                    "all requested profiles are unsupported",
                ),
            );
        }
        self.start_requests.insert(
            number,
            PendingStart {
                msgno,
                offered: app.iter().map(|p| p.uri.clone()).collect(),
                server_name: start.server_name.clone(),
            },
        );
        self.events.push_back(Event::StartRequested(StartRequest {
            channel: number,
            server_name: start.server_name,
            profiles: app,
        }));
    }

    /// Creates a channel the peer asked for; its frames wait for our RPY.
    fn open_channel(
        &mut self,
        number: u32,
        uri: &str,
        service: Service,
        server_name: Option<&str>,
    ) {
        let mut channel = Channel::new(number, uri.to_owned(), service, self.config.receive_window);
        channel.announced = false;
        self.channels.insert(number, channel);
        if self.server_name.is_none() {
            self.server_name = server_name.map(str::to_owned);
        }
    }

    /// Accepts the peer's start request on `profile` (one of those in the
    /// `StartRequested` event), with optional init content in the reply.
    pub fn accept_start(&mut self, channel: u32, profile: Profile) -> Result<(), UserError> {
        let pending = self
            .start_requests
            .get(&channel)
            .ok_or(UserError::NoSuchStart(channel))?;
        if !pending.offered.contains(&profile.uri) {
            return Err(UserError::ProfileNotOffered(profile.uri));
        }
        if profile
            .init
            .as_ref()
            .is_some_and(|i| i.len() > mgmt::MAX_INIT)
        {
            return Err(UserError::InitTooLarge);
        }
        let pending = self.start_requests.remove(&channel).expect("checked");
        self.open_channel(
            channel,
            &profile.uri,
            Service::App,
            pending.server_name.as_deref(),
        );
        self.queue_reply_with(
            0,
            pending.msgno,
            Keyword::Rpy,
            Bytes::from(profile.to_payload()),
            None,
            Some(OnSent::Announce(channel)),
        )
    }

    /// Refuses the peer's start request.
    pub fn reject_start(&mut self, channel: u32, error: ErrorReply) -> Result<(), UserError> {
        let pending = self
            .start_requests
            .remove(&channel)
            .ok_or(UserError::NoSuchStart(channel))?;
        self.queue_reply_with(
            0,
            pending.msgno,
            Keyword::Err,
            Bytes::from(error.to_payload()),
            None,
            None,
        )
    }

    fn handle_close(&mut self, msgno: u32, close: Close) {
        if close.number == 0 {
            self.release_requested = Some(msgno);
            return;
        }
        match self.channels.get_mut(&close.number) {
            Some(channel) if channel.remote_close.is_none() && !channel.close_accepted => {
                channel.remote_close = Some(msgno);
            }
            _ => self.reply_error(
                0,
                msgno,
                ErrorReply::new(
                    ReplyCode::ACTION_NOT_TAKEN,
                    format!("channel {} is not open", close.number),
                ),
            ),
        }
    }

    // ===== TLS, listener side =====

    fn start_tls_server(&mut self, msgno: u32, start: &Start, init: Option<&[u8]>) {
        self.open_channel(
            start.number,
            TLS_URI,
            Service::TlsServer,
            start.server_name.as_deref(),
        );
        match init.map(tls::parse_ready) {
            Some(Ok(())) => self.tls_proceed_pending = Some((0, msgno, true)),
            Some(Err(error)) => self.reply_on(
                0,
                msgno,
                Keyword::Rpy,
                Profile::with_init(TLS_URI, error.to_xml()).to_payload(),
                Some(OnSent::Announce(start.number)),
            ),
            None => self.reply_on(
                0,
                msgno,
                Keyword::Rpy,
                Profile::new(TLS_URI).to_payload(),
                Some(OnSent::Announce(start.number)),
            ),
        }
    }

    /// Sends `<proceed />` once the replies queued before the `<ready />`
    /// are out (RFC 3080 §3.1: finish pending replies, then nothing else).
    pub(super) fn pump_tls(&mut self) {
        let Some((number, msgno, in_start)) = self.tls_proceed_pending else {
            return;
        };
        let replies_pending = self
            .channels
            .values()
            .any(|c| c.queue.iter().any(|m| m.keyword != Keyword::Msg));
        if replies_pending {
            return;
        }
        self.tls_proceed_pending = None;
        let payload = if in_start {
            Profile::with_init(TLS_URI, tls::PROCEED).to_payload()
        } else {
            mime::beep_xml_payload(tls::PROCEED)
        };
        self.reply_on(
            number,
            msgno,
            Keyword::Rpy,
            payload,
            Some(OnSent::TlsProceed),
        );
    }

    // ===== SASL, server side =====

    fn start_sasl_server(
        &mut self,
        msgno: u32,
        start: &Start,
        mechanism: &str,
        profile: &Profile,
        mut server: Box<dyn sasl::SaslServer>,
    ) {
        let step = match profile.init.as_deref().map(Blob::parse) {
            None => server.step(None),
            Some(Ok(blob)) if blob.status == BlobStatus::Abort => ServerStep::Failure(
                ErrorReply::new(ReplyCode::AUTH_FAILURE, "authentication aborted"),
            ),
            Some(Ok(blob)) => server.step(Some(&blob.data)),
            Some(Err(error)) => ServerStep::Failure(error),
        };
        let (init, server) = match self.sasl_outcome(mechanism, step) {
            SaslOutcome::Continue(challenge) if challenge.is_empty() => (None, Some(server)),
            SaslOutcome::Continue(challenge) => (
                Some(
                    Blob {
                        data: challenge,
                        status: BlobStatus::Continue,
                    }
                    .to_xml(),
                ),
                Some(server),
            ),
            SaslOutcome::Success(data) => (Some(complete_blob(data)), None),
            SaslOutcome::Failure(error) => (Some(error.to_xml()), None),
        };
        self.open_channel(
            start.number,
            &profile.uri,
            Service::SaslServer(server),
            None,
        );
        let reply = Profile {
            uri: profile.uri.clone(),
            init: init.map(String::into_bytes),
        };
        self.reply_on(
            0,
            msgno,
            Keyword::Rpy,
            reply.to_payload(),
            Some(OnSent::Announce(start.number)),
        );
    }

    fn sasl_server_message(&mut self, number: u32, msgno: u32, payload: &[u8]) {
        let mechanism = sasl::mechanism_of(&self.channel_mut(number).profile)
            .unwrap_or_default()
            .to_owned();
        let blob = mime::beep_xml_body(payload)
            .map_err(|e| ErrorReply::new(ReplyCode::SYNTAX_ERROR, e.to_string()))
            .and_then(Blob::parse);
        let Service::SaslServer(slot) = &mut self.channel_mut(number).service else {
            return;
        };
        let step = match (slot.as_mut(), blob) {
            (_, Err(error)) => ServerStep::Failure(error),
            (None, Ok(_)) => {
                return self.reply_error(
                    number,
                    msgno,
                    ErrorReply::new(ReplyCode::ACTION_NOT_TAKEN, "no authentication in progress"),
                );
            }
            (Some(_), Ok(blob)) if blob.status == BlobStatus::Abort => ServerStep::Failure(
                ErrorReply::new(ReplyCode::AUTH_FAILURE, "authentication aborted"),
            ),
            (Some(server), Ok(blob)) => server.step(Some(&blob.data)),
        };
        match self.sasl_outcome(&mechanism, step) {
            SaslOutcome::Continue(challenge) => {
                let blob = Blob {
                    data: challenge,
                    status: BlobStatus::Continue,
                };
                self.reply_on(
                    number,
                    msgno,
                    Keyword::Rpy,
                    mime::beep_xml_payload(&blob.to_xml()),
                    None,
                );
            }
            SaslOutcome::Success(data) => {
                self.end_sasl_server(number);
                self.reply_on(
                    number,
                    msgno,
                    Keyword::Rpy,
                    mime::beep_xml_payload(&complete_blob(data)),
                    None,
                );
            }
            SaslOutcome::Failure(error) => {
                self.end_sasl_server(number);
                self.reply_error(number, msgno, error);
            }
        }
    }

    fn end_sasl_server(&mut self, number: u32) {
        if let Some(channel) = self.channels.get_mut(&number) {
            channel.service = Service::SaslServer(None);
        }
    }

    /// Records the result of a server step: one successful authentication
    /// per session (RFC 3080 §4.1).
    fn sasl_outcome(&mut self, mechanism: &str, step: ServerStep) -> SaslOutcome {
        match step {
            ServerStep::Challenge(challenge) => SaslOutcome::Continue(challenge),
            ServerStep::Success { .. } if self.authenticated.is_some() => {
                SaslOutcome::Failure(ErrorReply::new(
                    ReplyCode::ACTION_NOT_TAKEN,
                    "the session is already authenticated",
                ))
            }
            ServerStep::Success { identity, data } => {
                self.authenticated = Some(identity.clone());
                self.events.push_back(Event::Authenticated {
                    mechanism: mechanism.to_owned(),
                    identity,
                    peer: true,
                });
                SaslOutcome::Success(data)
            }
            ServerStep::Failure(error) => {
                self.events.push_back(Event::AuthenticationFailed {
                    mechanism: mechanism.to_owned(),
                    error: error.clone(),
                    peer: true,
                });
                SaslOutcome::Failure(error)
            }
        }
    }

    // ===== replies on management and tuning channels =====

    pub(super) fn service_reply(
        &mut self,
        number: u32,
        msgno: u32,
        error: bool,
        payload: Bytes,
    ) -> Result<(), SessionError> {
        if number != 0 {
            return self.tuning_reply(number, error, &payload);
        }
        let op = self
            .pending_ops
            .remove(&msgno)
            .ok_or(SessionError::UnexpectedManagementReply(
                "reply to no request",
            ))?;
        let reply = mgmt::parse_reply(&payload).map_err(SessionError::ManagementReply)?;
        match (op, reply) {
            (
                PendingOp::Start {
                    number,
                    offered,
                    kind,
                },
                reply,
            ) => {
                self.starting.remove(&number);
                self.start_reply(number, &offered, kind, reply)
            }
            (PendingOp::Close { number, code }, Reply::Ok) => {
                self.close_deadlines.remove(&number);
                // After a simultaneous close (docs/decisions.md, BEEP) the channel
                // is already gone: report it once.
                if self.channels.remove(&number).is_some() {
                    self.events.push_back(Event::ChannelClosed {
                        channel: number,
                        code,
                        local: true,
                    });
                }
                Ok(())
            }
            (PendingOp::Close { number, .. }, Reply::Error(error)) => {
                self.close_deadlines.remove(&number);
                if let Some(channel) = self.channels.get_mut(&number) {
                    channel.local_close = LocalClose::None;
                }
                self.events.push_back(Event::CloseRefused {
                    channel: number,
                    error: error.clone(),
                });
                // A channel that stays open stops the release that closed it.
                if self.release_pending.take().is_some() {
                    self.events
                        .push_back(Event::CloseRefused { channel: 0, error });
                }
                Ok(())
            }
            (PendingOp::Release, Reply::Ok) => {
                self.phase = Phase::Ended;
                self.events.push_back(Event::Released { local: true });
                Ok(())
            }
            (PendingOp::Release, Reply::Error(error)) => {
                self.close_deadlines.remove(&0);
                self.events
                    .push_back(Event::CloseRefused { channel: 0, error });
                Ok(())
            }
            _ => Err(SessionError::UnexpectedManagementReply(
                "reply element does not match the request",
            )),
        }
    }

    fn start_reply(
        &mut self,
        number: u32,
        offered: &[String],
        kind: StartKind,
        reply: Reply,
    ) -> Result<(), SessionError> {
        let profile = match reply {
            Reply::Profile(profile) if offered.contains(&profile.uri) => profile,
            Reply::Error(error) => {
                let event = match kind {
                    StartKind::App => Event::ChannelRefused {
                        channel: number,
                        error,
                    },
                    StartKind::Tls => {
                        self.phase = Phase::Open;
                        Event::TlsRefused(error)
                    }
                    StartKind::Sasl(client) => Event::AuthenticationFailed {
                        mechanism: client.mechanism().to_owned(),
                        error,
                        peer: false,
                    },
                };
                self.events.push_back(event);
                return Ok(());
            }
            _ => {
                return Err(SessionError::UnexpectedManagementReply(
                    "start answered with a profile that was not offered",
                ));
            }
        };
        let service = match kind {
            StartKind::App => Service::App,
            StartKind::Tls => Service::TlsClient,
            StartKind::Sasl(client) => Service::SaslClient(Some(client)),
        };
        let is_app = service.is_app();
        let channel = Channel::new(
            number,
            profile.uri.clone(),
            service,
            self.config.receive_window,
        );
        self.channels.insert(number, channel);
        self.seq_dirty.insert(number);
        if is_app {
            self.events.push_back(Event::ChannelStarted {
                channel: number,
                profile: profile.uri,
                init: profile.init,
            });
            return Ok(());
        }
        match profile.init {
            Some(init) => self.tuning_reply(number, false, &init_as_payload(&init)),
            None => {
                // The peer created the channel without answering the init:
                // continue the exchange with a MSG.
                self.tuning_continue(number);
                Ok(())
            }
        }
    }

    /// Replies on our TLS or SASL client channels (or their init replies).
    fn tuning_reply(
        &mut self,
        number: u32,
        error: bool,
        payload: &[u8],
    ) -> Result<(), SessionError> {
        let body = mime::beep_xml_body(payload)
            .map_err(|e| SessionError::ManagementReply(e.into()))?
            .to_vec();
        let channel = self.channel_mut(number);
        match &mut channel.service {
            Service::TlsClient => {
                match tls::parse_proceed(&body) {
                    Ok(()) if !error => {
                        self.phase = Phase::TlsHandshake;
                        self.events.push_back(Event::TlsProceed {
                            server_name: self.server_name.clone(),
                        });
                    }
                    Ok(()) => {
                        return Err(SessionError::UnexpectedManagementReply(
                            "ERR with <proceed/>",
                        ));
                    }
                    Err(refusal) => {
                        self.phase = Phase::Open;
                        self.events.push_back(Event::TlsRefused(refusal));
                    }
                }
                Ok(())
            }
            Service::SaslClient(slot) => {
                let Some(mut client) = slot.take() else {
                    return Err(SessionError::UnexpectedManagementReply(
                        "SASL reply after the exchange ended",
                    ));
                };
                let mechanism = client.mechanism().to_owned();
                match Blob::parse(&body) {
                    Ok(blob) if !error && blob.status == BlobStatus::Complete => {
                        match client.complete(&blob.data) {
                            Ok(()) => {
                                let identity = client.identity();
                                self.authenticated = Some(identity.clone());
                                self.events.push_back(Event::Authenticated {
                                    mechanism,
                                    identity,
                                    peer: false,
                                });
                            }
                            // The server claims success but could not prove
                            // it (e.g. a wrong SCRAM server signature): the
                            // session stays unauthenticated on this side.
                            Err(reason) => self.events.push_back(Event::AuthenticationFailed {
                                mechanism,
                                error: ErrorReply::new(ReplyCode::AUTH_FAILURE, reason),
                                peer: false,
                            }),
                        }
                    }
                    Ok(blob) if !error => match client.step(&blob.data) {
                        Ok(response) => {
                            *slot = Some(client);
                            let blob = Blob {
                                data: response,
                                status: BlobStatus::Continue,
                            };
                            self.send_internal(number, mime::beep_xml_payload(&blob.to_xml()));
                        }
                        Err(reason) => {
                            let blob = Blob {
                                data: Vec::new(),
                                status: BlobStatus::Abort,
                            };
                            self.send_internal(number, mime::beep_xml_payload(&blob.to_xml()));
                            self.events.push_back(Event::AuthenticationFailed {
                                mechanism,
                                error: ErrorReply::new(ReplyCode::AUTH_FAILURE, reason),
                                peer: false,
                            });
                        }
                    },
                    Ok(_) => {
                        return Err(SessionError::UnexpectedManagementReply(
                            "ERR carrying a <blob>",
                        ));
                    }
                    Err(error) => self.events.push_back(Event::AuthenticationFailed {
                        mechanism,
                        error,
                        peer: false,
                    }),
                }
                Ok(())
            }
            _ => Err(SessionError::UnexpectedManagementReply(
                "reply on a channel without a client exchange",
            )),
        }
    }

    /// The peer created our TLS or SASL channel without init reply.
    fn tuning_continue(&mut self, number: u32) {
        let channel = self.channel_mut(number);
        let payload = match &mut channel.service {
            Service::TlsClient => mime::beep_xml_payload(tls::READY),
            Service::SaslClient(Some(client)) => match client.step(&[]) {
                Ok(data) => mime::beep_xml_payload(
                    &Blob {
                        data,
                        status: BlobStatus::Continue,
                    }
                    .to_xml(),
                ),
                Err(_) => mime::beep_xml_payload(
                    &Blob {
                        data: Vec::new(),
                        status: BlobStatus::Abort,
                    }
                    .to_xml(),
                ),
            },
            _ => return,
        };
        let tls = matches!(channel.service, Service::TlsClient);
        let msgno = self.send_internal(number, payload);
        if tls
            && let Some(message) = self
                .channel_mut(number)
                .queue
                .iter_mut()
                .find(|m| m.msgno == msgno && m.keyword == Keyword::Msg)
        {
            message.on_sent = Some(OnSent::TlsReadySent);
        }
    }

    /// Sends a MSG on a tuning channel; returns its msgno.
    fn send_internal(&mut self, number: u32, payload: Vec<u8>) -> u32 {
        let channel = self.channel_mut(number);
        let msgno = channel.allocate_msgno().unwrap_or_default();
        channel.outstanding.push_back(Outstanding {
            msgno,
            acknowledged: false,
        });
        channel.enqueue(Outgoing::new(Keyword::Msg, msgno, Bytes::from(payload)));
        self.mark_ready(number);
        msgno
    }

    // ===== close and release =====

    pub(super) fn pump_closes(&mut self) {
        let now = self.now;
        let timeout = self.config.close_timeout;
        let to_close: Vec<(u32, ReplyCode, String)> = self
            .channels
            .values()
            // A channel the peer is closing needs no close of ours.
            .filter(|c| c.all_acknowledged() && c.remote_close.is_none() && !c.close_accepted)
            .filter_map(|c| match &c.local_close {
                LocalClose::Pending { code, diagnostic } => {
                    Some((c.number, *code, diagnostic.clone()))
                }
                _ => None,
            })
            .collect();
        for (number, code, diagnostic) in to_close {
            self.channel_mut(number).local_close = LocalClose::Sent;
            let close = Close {
                number,
                code,
                lang: None,
                diagnostic,
            };
            self.send_management(close.to_payload(), PendingOp::Close { number, code });
            if let Some(timeout) = timeout {
                self.close_deadlines.insert(number, now + timeout);
            }
        }
        let to_accept: Vec<(u32, u32)> = self
            .channels
            .values()
            .filter(|c| c.drained())
            .filter_map(|c| c.remote_close.map(|msgno| (c.number, msgno)))
            .collect();
        for (number, msgno) in to_accept {
            let channel = self.channel_mut(number);
            channel.remote_close = None;
            channel.close_accepted = true;
            self.reply_on(
                0,
                msgno,
                Keyword::Rpy,
                mgmt::ok_payload(),
                Some(OnSent::ClosedByPeer(number)),
            );
        }
    }

    pub(super) fn pump_release(&mut self) {
        if let Some(msgno) = self.release_requested {
            let drained = self.channels.values().all(|c| c.number == 0 || c.drained())
                && self
                    .channels
                    .get(&0)
                    .is_some_and(|c| c.outstanding.is_empty());
            if drained {
                self.release_requested = None;
                self.reply_on(
                    0,
                    msgno,
                    Keyword::Rpy,
                    mgmt::ok_payload(),
                    Some(OnSent::Released),
                );
            }
        }
        let Some(code) = self.release_pending else {
            return;
        };
        // Channels first (RFC 3080 §2.4 as long-lived peers do it): every
        // channel not already closing gets a close of its own, including
        // channels whose start completed after `release` was called.
        for channel in self.channels.values_mut() {
            if channel.number != 0
                && channel.local_close == LocalClose::None
                && channel.remote_close.is_none()
                && !channel.close_accepted
            {
                channel.local_close = LocalClose::Pending {
                    code,
                    diagnostic: String::new(),
                };
            }
        }
        self.pump_closes();
        let only_zero = self.channels.keys().all(|&number| number == 0);
        if only_zero
            && self.starting.is_empty()
            && self.channels.values().all(Channel::all_acknowledged)
        {
            self.release_pending = None;
            let close = Close {
                number: 0,
                code,
                lang: None,
                diagnostic: String::new(),
            };
            self.send_management(close.to_payload(), PendingOp::Release);
            if let Some(timeout) = self.config.close_timeout {
                self.close_deadlines.insert(0, self.now + timeout);
            }
        }
    }

    fn send_management(&mut self, payload: Vec<u8>, op: PendingOp) {
        let msgno = self.send_internal(0, payload);
        self.pending_ops.insert(msgno, op);
    }
}

enum SaslOutcome {
    Continue(Vec<u8>),
    /// With the additional data for the complete blob.
    Success(Vec<u8>),
    Failure(ErrorReply),
}

fn complete_blob(data: Vec<u8>) -> String {
    Blob {
        data,
        status: BlobStatus::Complete,
    }
    .to_xml()
}

/// Init content carried inside `<profile>` is a bare element; give it the
/// entity headers so it parses like a MSG/RPY payload.
fn init_as_payload(init: &[u8]) -> Vec<u8> {
    let mut payload = mime::BEEP_XML_HEADERS.to_vec();
    payload.extend_from_slice(init);
    payload
}
