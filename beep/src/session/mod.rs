//! The BEEP session state machine (RFC 3080 §2, RFC 3081 §3), sans-IO.
//!
//! A [`Session`] owns no socket and reads no clock. The caller feeds it:
//!
//! 1. bytes read from the transport: [`Session::handle_input`];
//! 2. the current time when the deadline from [`Session::poll_timeout`]
//!    passes: [`Session::handle_timeout`];
//! 3. application commands: [`Session::start_channel`], [`Session::send_msg`],
//!    [`Session::send_rpy`], [`Session::accept_start`], [`Session::close_channel`], …
//!
//! and after each of those drains, in any order:
//!
//! * [`Session::poll_transmit`] — bytes to write to the transport;
//! * [`Session::poll_event`] — what happened ([`Event`]);
//! * [`Session::poll_timeout`] — when to call `handle_timeout` next.
//!
//! Any [`SessionError`] means the session must be terminated without a
//! response (RFC 3080 §2.2.1.1: abort the transport).
//!
//! ```text
//!             new()  ── greeting queued at once, both roles ──┐
//!                                                            ▼
//!   ┌──────────── Greeting (waiting for the peer's RPY 0 0) ─────────────┐
//!   │ ERR 0 0 / timeout                                 greeting received │
//!   ▼                                                                     ▼
//!  Ended ◄── release ok / error ──────────────────────────────────── Open
//!                                                         │ <ready/> ⇄ <proceed/>
//!                                                         ▼
//!                                 TlsHandshake (driver runs TLS) ── tls_complete()/tls_failed()
//!                                                         │   all channels reset,
//!                                                         └── new greetings ──► Greeting
//! ```

mod channel;
mod management;

use crate::error::{SessionError, UserError};
use crate::frame::{self, DataFrame, DataHeader, Frame, Keyword, SeqHeader};
use crate::mgmt::{self, ErrorReply, Greeting, Profile};
use crate::reply_code::ReplyCode;
use crate::tuning::sasl::{AuthContext, SaslClient, SaslServerFactory};
use crate::tuning::tls::TLS_URI;
use crate::window::{INITIAL_WINDOW, WindowViolation};
use bytes::{Bytes, BytesMut};
use channel::{Channel, LocalClose, OnSent, Outgoing, Outstanding, Owed, Partial, Service};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use management::StartRequest;

/// Which end of the transport this peer is (RFC 3080 §2.1, RFC 3081 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The active opener: starts odd-numbered channels.
    Initiator,
    /// The passive opener: starts even-numbered channels.
    Listener,
}

impl Role {
    /// The parity of channel numbers this role starts (1 = odd, 0 = even).
    fn parity(self) -> u32 {
        match self {
            Self::Initiator => 1,
            Self::Listener => 0,
        }
    }
}

/// Session settings.
#[derive(Clone)]
pub struct Config {
    /// Initiator or listener.
    pub role: Role,
    /// Application profile URIs this peer accepts in `<start>` (advertised
    /// in the greeting; tuning profiles are added automatically).
    pub profiles: Vec<String>,
    /// Advertise and accept the application profiles only once TLS is active.
    pub profiles_require_tls: bool,
    /// `features` of our greeting.
    pub features: Vec<String>,
    /// `localize` of our greeting (most preferred first).
    pub localize: Vec<String>,
    /// Offer and accept the TLS profile (the driver must have a TLS acceptor).
    pub tls_server: bool,
    /// Server-side SASL mechanisms offered, if any.
    pub sasl: Option<Arc<dyn SaslServerFactory>>,
    /// Receive buffer per channel, advertised with SEQ (≥ 4096).
    pub receive_window: u32,
    /// Largest frame payload we send.
    pub max_frame_size: u32,
    /// Largest message we accept (over it: 554 for a MSG, session ends for a reply).
    pub max_message_size: usize,
    /// Largest number of open channels, channel 0 included.
    pub max_channels: usize,
    /// Time allowed for the peer's greeting.
    pub greeting_timeout: Option<Duration>,
    /// Time allowed for the peer to answer a `<close>`.
    pub close_timeout: Option<Duration>,
    /// Octets `poll_transmit` produces per call, at most (roughly).
    pub transmit_budget: usize,
    /// Refuse the session with this error instead of greeting (listener
    /// unavailable, RFC 3080 §2.4: usually 421).
    pub refuse: Option<ErrorReply>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("role", &self.role)
            .field("profiles", &self.profiles)
            .field("tls_server", &self.tls_server)
            .field("sasl", &self.sasl.is_some())
            .field("receive_window", &self.receive_window)
            .field("max_frame_size", &self.max_frame_size)
            .field("max_message_size", &self.max_message_size)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Defaults for `role`: 64 KiB windows and frames, 16 MiB messages,
    /// 1024 channels, 30 s greeting and close timeouts.
    pub fn new(role: Role) -> Self {
        Self {
            role,
            profiles: Vec::new(),
            profiles_require_tls: false,
            features: Vec::new(),
            localize: Vec::new(),
            tls_server: false,
            sasl: None,
            receive_window: 64 * 1024,
            max_frame_size: 64 * 1024,
            max_message_size: 16 * 1024 * 1024,
            max_channels: 1024,
            greeting_timeout: Some(Duration::from_secs(30)),
            close_timeout: Some(Duration::from_secs(30)),
            transmit_budget: 256 * 1024,
            refuse: None,
        }
    }

    /// Adds an application profile URI.
    pub fn with_profile(mut self, uri: impl Into<String>) -> Self {
        self.profiles.push(uri.into());
        self
    }
}

/// Something that happened on the session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The peer's greeting arrived: the session is open.
    Greeting(Greeting),
    /// The listener refused the session (RFC 3080 §2.4); it is over.
    GreetingRefused(ErrorReply),
    /// The peer asks to start a channel on one of our application profiles:
    /// answer with [`Session::accept_start`] or [`Session::reject_start`].
    StartRequested(StartRequest),
    /// A channel we asked for was started.
    ChannelStarted {
        /// Channel number.
        channel: u32,
        /// The profile the peer chose.
        profile: String,
        /// The peer's piggybacked init reply.
        init: Option<Vec<u8>>,
    },
    /// The peer refused a channel we asked for.
    ChannelRefused {
        /// Channel number.
        channel: u32,
        /// The peer's error.
        error: ErrorReply,
    },
    /// A complete MSG arrived. Call [`Session::consumed`] with its length once processed.
    Message {
        /// Channel.
        channel: u32,
        /// Message number, to reply to.
        msgno: u32,
        /// The payload (a MIME entity, RFC 3080 §2.2.2).
        payload: Bytes,
    },
    /// A complete RPY or ERR arrived. Call [`Session::consumed`] once processed.
    Reply {
        /// Channel.
        channel: u32,
        /// The msgno of our MSG.
        msgno: u32,
        /// True for ERR.
        error: bool,
        /// The payload.
        payload: Bytes,
    },
    /// A complete ANS arrived. Call [`Session::consumed`] once processed.
    Answer {
        /// Channel.
        channel: u32,
        /// The msgno of our MSG.
        msgno: u32,
        /// Answer number.
        ansno: u32,
        /// The payload.
        payload: Bytes,
    },
    /// NUL: all answers to `msgno` arrived.
    AnswersComplete {
        /// Channel.
        channel: u32,
        /// The msgno of our MSG.
        msgno: u32,
    },
    /// A channel closed.
    ChannelClosed {
        /// Channel number.
        channel: u32,
        /// The close code.
        code: ReplyCode,
        /// True if we asked to close it.
        local: bool,
    },
    /// The peer declined to close a channel (or to release, for channel 0).
    CloseRefused {
        /// Channel number (0: the session release).
        channel: u32,
        /// The peer's error.
        error: ErrorReply,
    },
    /// The session was released (RFC 3080 §2.4); close the transport.
    Released {
        /// True if we asked for the release.
        local: bool,
    },
    /// `<proceed />` was exchanged: run the TLS handshake on the transport
    /// now, then call [`Session::tls_complete`] or [`Session::tls_failed`].
    TlsProceed {
        /// The `serverName` of the session, if any (selects the certificate).
        server_name: Option<String>,
    },
    /// The peer refused our `<ready />`.
    TlsRefused(ErrorReply),
    /// A SASL exchange succeeded: the identity holds for the whole session.
    Authenticated {
        /// The mechanism used.
        mechanism: String,
        /// The authenticated identity (the peer's, or our own as client).
        identity: String,
        /// True if the peer authenticated to us (we are the SASL server).
        peer: bool,
    },
    /// A SASL exchange failed.
    AuthenticationFailed {
        /// The mechanism used.
        mechanism: String,
        /// The error.
        error: ErrorReply,
        /// True if the peer failed to authenticate to us.
        peer: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the peer's greeting.
    Greeting,
    /// Open.
    Open,
    /// We sent `<ready />`: nothing more is sent until the answer.
    TlsReadySent,
    /// The transport belongs to the TLS handshake.
    TlsHandshake,
    /// Released, refused or terminated.
    Ended,
}

/// A channel-0 request of ours awaiting its reply.
enum PendingOp {
    Start {
        number: u32,
        offered: Vec<String>,
        kind: StartKind,
    },
    Close {
        number: u32,
        code: ReplyCode,
    },
    Release,
}

enum StartKind {
    App,
    Tls,
    Sasl(Box<dyn SaslClient>),
}

/// A BEEP session. See the module documentation for the call order.
pub struct Session {
    config: Config,
    phase: Phase,
    channels: BTreeMap<u32, Channel>,
    /// Decoder input not yet parsed.
    input: BytesMut,
    events: VecDeque<Event>,
    /// Channels that may have a frame to send, in round-robin order.
    ready: VecDeque<u32>,
    ready_set: HashSet<u32>,
    /// Channels whose receive window may need a SEQ.
    seq_dirty: BTreeSet<u32>,
    /// Our channel-0 requests awaiting replies, by msgno.
    pending_ops: HashMap<u32, PendingOp>,
    /// Channel numbers of our starts awaiting replies.
    starting: HashSet<u32>,
    /// Start requests waiting for the application's decision, by channel.
    start_requests: HashMap<u32, management::PendingStart>,
    next_channel: u32,
    peer_greeting: Option<Greeting>,
    server_name: Option<String>,
    tls_active: bool,
    tls_peer_identity: Option<String>,
    /// A `<ready />` received (listener): the channel and msgno to answer
    /// `<proceed />` on once other replies are out, and whether the answer
    /// is the reply to a `<start>` (init content) or a plain RPY.
    tls_proceed_pending: Option<(u32, u32, bool)>,
    authenticated: Option<String>,
    /// The peer asked to release: channel-0 msgno of its `<close>`.
    release_requested: Option<u32>,
    /// We asked to release (pending until our MSGs are acknowledged).
    release_pending: Option<ReplyCode>,
    greeting_deadline: Option<Instant>,
    /// Our greeting (or refusal) has been written: nothing else may precede it.
    greeting_sent: bool,
    close_deadlines: BTreeMap<u32, Instant>,
    now: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.config.role)
            .field("phase", &self.phase)
            .field("channels", &self.channels.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session; the greeting (or the refusal) is queued at once,
    /// without waiting for the peer's (RFC 3080 §2.3.1.1).
    pub fn new(config: Config, now: Instant) -> Self {
        let mut config = config;
        config.receive_window = config.receive_window.max(INITIAL_WINDOW);
        config.max_frame_size = config.max_frame_size.max(1);
        config.max_channels = config.max_channels.max(1);
        let mut session = Self {
            phase: Phase::Greeting,
            channels: BTreeMap::new(),
            input: BytesMut::new(),
            events: VecDeque::new(),
            ready: VecDeque::new(),
            ready_set: HashSet::new(),
            seq_dirty: BTreeSet::new(),
            pending_ops: HashMap::new(),
            starting: HashSet::new(),
            start_requests: HashMap::new(),
            next_channel: 0,
            peer_greeting: None,
            server_name: None,
            tls_active: false,
            tls_peer_identity: None,
            tls_proceed_pending: None,
            authenticated: None,
            release_requested: None,
            release_pending: None,
            greeting_deadline: None,
            greeting_sent: false,
            close_deadlines: BTreeMap::new(),
            now,
            config,
        };
        session.begin(now);
        session
    }

    /// (Re)starts the session: channel 0 only, greetings exchanged anew.
    fn begin(&mut self, now: Instant) {
        self.now = now;
        self.phase = Phase::Greeting;
        self.channels.clear();
        self.ready.clear();
        self.ready_set.clear();
        self.seq_dirty.clear();
        self.pending_ops.clear();
        self.starting.clear();
        self.start_requests.clear();
        self.close_deadlines.clear();
        self.peer_greeting = None;
        self.greeting_sent = false;
        self.server_name = None;
        self.tls_proceed_pending = None;
        self.release_requested = None;
        self.release_pending = None;
        self.next_channel = match self.config.role {
            Role::Initiator => 1,
            Role::Listener => 2,
        };
        let mut zero = Channel::new(
            0,
            String::new(),
            Service::Management,
            self.config.receive_window,
        );
        // The greeting is the reply to an implicit MSG 0 in each direction.
        zero.outstanding.push_back(Outstanding {
            msgno: 0,
            acknowledged: false,
        });
        zero.next_msgno = 1;
        let (keyword, payload, on_sent) = match &self.config.refuse {
            Some(error) => (Keyword::Err, error.to_payload(), Some(OnSent::Refused)),
            None => (
                Keyword::Rpy,
                self.greeting().to_payload(),
                Some(OnSent::Greeted),
            ),
        };
        let mut greeting = Outgoing::new(keyword, 0, Bytes::from(payload));
        greeting.on_sent = on_sent;
        zero.enqueue(greeting);
        self.channels.insert(0, zero);
        self.mark_ready(0);
        self.greeting_deadline = self.config.greeting_timeout.map(|t| now + t);
    }

    /// Our greeting: tuning profiles still available, then application profiles.
    fn greeting(&self) -> Greeting {
        // Order as in RFC 3080 §3's examples: SASL, application, then TLS.
        let mut profiles = Vec::new();
        if self.authenticated.is_none()
            && let Some(sasl) = &self.config.sasl
        {
            profiles.extend(
                sasl.mechanisms(&self.auth_context())
                    .iter()
                    .map(|m| crate::tuning::sasl::profile_uri(m)),
            );
        }
        if self.app_profiles_available() {
            profiles.extend(self.config.profiles.iter().cloned());
        }
        if self.config.tls_server && !self.tls_active {
            profiles.push(TLS_URI.to_owned());
        }
        Greeting {
            profiles,
            features: self.config.features.clone(),
            localize: self.config.localize.clone(),
        }
    }

    fn app_profiles_available(&self) -> bool {
        self.tls_active || !self.config.profiles_require_tls
    }

    fn auth_context(&self) -> AuthContext {
        AuthContext {
            tls_active: self.tls_active,
            tls_peer_identity: self.tls_peer_identity.clone(),
        }
    }

    // ===== accessors =====

    /// This peer's role.
    pub fn role(&self) -> Role {
        self.config.role
    }

    /// The peer's greeting, once received.
    pub fn peer_greeting(&self) -> Option<&Greeting> {
        self.peer_greeting.as_ref()
    }

    /// The `serverName` of the first successful start (RFC 3080 §2.3.1.2).
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// True once TLS tuning completed.
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// The SASL-authenticated identity (the peer's if we are the SASL
    /// server, ours if we authenticated as client).
    pub fn authenticated_identity(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// True once the session is over (released, refused or failed) and
    /// everything to send has been produced by `poll_transmit`.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// True while the peer's greeting has not arrived.
    pub fn awaiting_greeting(&self) -> bool {
        self.phase == Phase::Greeting
    }

    /// Open application channels and their profiles.
    pub fn channels(&self) -> impl Iterator<Item = (u32, &str)> {
        self.channels
            .values()
            .filter(|c| c.service.is_app())
            .map(|c| (c.number, c.profile.as_str()))
    }

    /// Payload octets queued on `channel` and not yet written (for backpressure).
    pub fn queued_bytes(&self, channel: u32) -> usize {
        self.channels.get(&channel).map_or(0, |c| c.queued_bytes)
    }

    /// Octets the peer's window lets us send on `channel` right now.
    pub fn send_window(&self, channel: u32) -> u32 {
        self.channels
            .get(&channel)
            .map_or(0, |c| c.send.available())
    }

    // ===== input =====

    /// Feeds bytes read from the transport.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), SessionError> {
        self.now = now;
        match self.phase {
            Phase::Ended => return Err(SessionError::Ended),
            Phase::TlsHandshake if !data.is_empty() => {
                return Err(SessionError::InputDuringTuning);
            }
            _ => {}
        }
        self.input.extend_from_slice(data);
        let limit = self.config.receive_window;
        while !matches!(self.phase, Phase::TlsHandshake | Phase::Ended) {
            let frame = match frame::decode(&mut self.input, limit) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => {
                    self.phase = Phase::Ended;
                    return Err(error.into());
                }
            };
            let result = match frame {
                Frame::Data(data) => self.handle_data(data),
                Frame::Seq(seq) => self.handle_seq(seq),
            };
            if let Err(error) = result {
                self.phase = Phase::Ended;
                return Err(error);
            }
        }
        if self.phase == Phase::TlsHandshake && !self.input.is_empty() {
            self.phase = Phase::Ended;
            return Err(SessionError::InputDuringTuning);
        }
        self.pump();
        Ok(())
    }

    fn handle_seq(&mut self, seq: SeqHeader) -> Result<(), SessionError> {
        if self.phase == Phase::Greeting && self.channels.len() == 1 && seq.channel != 0 {
            return Err(SessionError::ExpectedGreeting);
        }
        let channel = self
            .channels
            .get_mut(&seq.channel)
            .ok_or(SessionError::UnknownChannel(seq.channel))?;
        channel
            .send
            .update(seq.ackno, seq.window)
            .map_err(|v| violation(seq.channel, v))?;
        self.mark_ready(seq.channel);
        Ok(())
    }

    fn handle_data(&mut self, frame: DataFrame) -> Result<(), SessionError> {
        let header = frame.header;
        if self.phase == Phase::Greeting
            && !(header.channel == 0
                && header.msgno == 0
                && matches!(header.keyword, Keyword::Rpy | Keyword::Err))
        {
            return Err(SessionError::ExpectedGreeting);
        }
        let limit = self.config.max_message_size;
        let channel = self
            .channels
            .get_mut(&header.channel)
            .ok_or(SessionError::UnknownChannel(header.channel))?;
        check_sequence(channel, &header)?;
        channel
            .recv
            .receive(header.seqno, header.size)
            .map_err(|v| violation(header.channel, v))?;
        self.seq_dirty.insert(header.channel);
        match header.keyword {
            Keyword::Msg => self.receive_msg(header, frame.payload, limit),
            Keyword::Rpy | Keyword::Err => self.receive_reply(header, frame.payload, limit),
            Keyword::Ans => self.receive_answer(header, frame.payload, limit),
            Keyword::Nul => self.receive_nul(header),
        }
    }

    fn receive_msg(
        &mut self,
        header: DataHeader,
        payload: Bytes,
        limit: usize,
    ) -> Result<(), SessionError> {
        let number = header.channel;
        let channel = self.channel_mut(number);
        let partial = channel.partial.get_or_insert_with(|| Partial {
            keyword: Keyword::Msg,
            msgno: header.msgno,
            data: BytesMut::new(),
            discard: false,
        });
        if partial.discard {
            if !header.more {
                channel.partial = None;
            }
            return Ok(());
        }
        if partial.data.len() + payload.len() > limit {
            // Pre-emptive negative reply (RFC 3080 §2.6.3); drop the rest.
            partial.discard = true;
            partial.data = BytesMut::new();
            let msgno = header.msgno;
            if !header.more {
                channel.partial = None;
            }
            channel.owed.push_back(Owed {
                msgno,
                replies: Vec::new(),
                answering: false,
                complete: false,
                next_ansno: 0,
            });
            let error = ErrorReply::new(
                ReplyCode::TRANSACTION_FAILED,
                format!("message exceeds {limit} octets"),
            );
            return self
                .queue_reply(number, msgno, Keyword::Err, Bytes::from(error.to_payload()))
                .map_err(|_| SessionError::Ended);
        }
        partial.data.extend_from_slice(&payload);
        if header.more {
            return Ok(());
        }
        let partial = channel.partial.take().expect("partial present");
        let payload = partial.data.freeze();
        channel.owed.push_back(Owed {
            msgno: header.msgno,
            replies: Vec::new(),
            answering: false,
            complete: false,
            next_ansno: 0,
        });
        if channel.service.is_app() {
            channel.recv.hold(payload.len());
            self.events.push_back(Event::Message {
                channel: number,
                msgno: header.msgno,
                payload,
            });
            Ok(())
        } else {
            self.service_message(number, header.msgno, payload)
        }
    }

    fn receive_reply(
        &mut self,
        header: DataHeader,
        payload: Bytes,
        limit: usize,
    ) -> Result<(), SessionError> {
        let number = header.channel;
        let channel = self.channel_mut(number);
        acknowledge(channel, header.msgno);
        let partial = channel.partial.get_or_insert_with(|| Partial {
            keyword: header.keyword,
            msgno: header.msgno,
            data: BytesMut::new(),
            discard: false,
        });
        if partial.data.len() + payload.len() > limit {
            return Err(SessionError::MessageTooLarge {
                channel: number,
                limit,
            });
        }
        partial.data.extend_from_slice(&payload);
        if header.more {
            return Ok(());
        }
        let partial = channel.partial.take().expect("partial present");
        complete_outstanding(channel, header.msgno);
        let payload = partial.data.freeze();
        let error = header.keyword == Keyword::Err;
        if number == 0 && header.msgno == 0 {
            return self.receive_greeting(error, &payload);
        }
        if channel.service.is_app() {
            channel.recv.hold(payload.len());
            self.events.push_back(Event::Reply {
                channel: number,
                msgno: header.msgno,
                error,
                payload,
            });
            Ok(())
        } else {
            self.service_reply(number, header.msgno, error, payload)
        }
    }

    fn receive_answer(
        &mut self,
        header: DataHeader,
        payload: Bytes,
        limit: usize,
    ) -> Result<(), SessionError> {
        let number = header.channel;
        let ansno = header.ansno.unwrap_or_default();
        let channel = self.channel_mut(number);
        if !channel.service.is_app() {
            return Err(SessionError::UnexpectedManagementReply(
                "ANS on a management or tuning channel",
            ));
        }
        acknowledge(channel, header.msgno);
        channel.answering_msgno = Some(header.msgno);
        let data = channel.answers.entry(ansno).or_default();
        if data.len() + payload.len() > limit {
            return Err(SessionError::MessageTooLarge {
                channel: number,
                limit,
            });
        }
        data.extend_from_slice(&payload);
        if header.more {
            return Ok(());
        }
        let payload = channel
            .answers
            .remove(&ansno)
            .expect("answer present")
            .freeze();
        channel.recv.hold(payload.len());
        self.events.push_back(Event::Answer {
            channel: number,
            msgno: header.msgno,
            ansno,
            payload,
        });
        Ok(())
    }

    fn receive_nul(&mut self, header: DataHeader) -> Result<(), SessionError> {
        let number = header.channel;
        let channel = self.channel_mut(number);
        if !channel.answers.is_empty() {
            return Err(SessionError::KeywordChanged {
                channel: number,
                expected: Keyword::Ans,
                got: Keyword::Nul,
            });
        }
        channel.answering_msgno = None;
        acknowledge(channel, header.msgno);
        complete_outstanding(channel, header.msgno);
        if !channel.service.is_app() {
            return Err(SessionError::UnexpectedManagementReply(
                "NUL on a management or tuning channel",
            ));
        }
        self.events.push_back(Event::AnswersComplete {
            channel: number,
            msgno: header.msgno,
        });
        Ok(())
    }

    /// Feeds the current time; call when the deadline of `poll_timeout` passes.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        self.now = now;
        if self.phase == Phase::Greeting
            && self
                .greeting_deadline
                .is_some_and(|deadline| now >= deadline)
        {
            self.phase = Phase::Ended;
            return Err(SessionError::GreetingTimeout);
        }
        if self
            .close_deadlines
            .values()
            .any(|&deadline| now >= deadline)
            && !matches!(self.phase, Phase::Ended | Phase::TlsHandshake)
        {
            self.phase = Phase::Ended;
            return Err(SessionError::CloseTimeout);
        }
        Ok(())
    }

    /// The next instant `handle_timeout` must be called at, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let greeting = match self.phase {
            Phase::Greeting => self.greeting_deadline,
            _ => None,
        };
        let close = self.close_deadlines.values().min().copied();
        match (greeting, close) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The application has processed `octets` of payload received on
    /// `channel` (from `Message`, `Reply` or `Answer` events): the buffer
    /// space is advertised to the peer again.
    pub fn consumed(&mut self, channel: u32, octets: usize) {
        if let Some(state) = self.channels.get_mut(&channel) {
            state.recv.release(octets);
            self.seq_dirty.insert(channel);
        }
    }

    // ===== output =====

    /// Appends bytes to write to the transport to `out`; returns false if
    /// there was nothing to send. Produces at most about
    /// `Config::transmit_budget` octets per call.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) -> bool {
        let start = out.len();
        if matches!(
            self.phase,
            Phase::TlsHandshake | Phase::TlsReadySent | Phase::Ended
        ) {
            return false;
        }
        // SEQ frames first: they have priority over data (RFC 3081 §3.1.4).
        let dirty = std::mem::take(&mut self.seq_dirty);
        for number in dirty {
            if let Some(channel) = self.channels.get_mut(&number) {
                if !channel.announced || !self.greeting_sent {
                    self.seq_dirty.insert(number);
                    continue;
                }
                if let Some((ackno, window)) = channel.recv.poll_update() {
                    frame::encode_seq(
                        &SeqHeader {
                            channel: number,
                            ackno,
                            window,
                        },
                        out,
                    );
                }
            }
        }
        // Then data frames, one per channel in turn (fairness).
        while out.len() - start < self.config.transmit_budget {
            let Some(number) = self.ready.pop_front() else {
                break;
            };
            self.ready_set.remove(&number);
            let Some(channel) = self.channels.get_mut(&number) else {
                continue;
            };
            if !channel.can_send() {
                continue;
            }
            let on_sent = write_frame(channel, self.config.max_frame_size, out);
            if channel.can_send() {
                self.mark_ready(number);
            }
            if let Some(action) = on_sent {
                self.on_sent(action);
            }
            if matches!(
                self.phase,
                Phase::TlsHandshake | Phase::TlsReadySent | Phase::Ended
            ) {
                break;
            }
        }
        out.len() > start
    }

    fn mark_ready(&mut self, number: u32) {
        if self.ready_set.insert(number) {
            self.ready.push_back(number);
        }
    }

    fn channel_mut(&mut self, number: u32) -> &mut Channel {
        self.channels.get_mut(&number).expect("channel exists")
    }

    // ===== application commands =====

    fn check_open(&self) -> Result<(), UserError> {
        match self.phase {
            Phase::Open => Ok(()),
            Phase::Greeting => Err(UserError::NotGreeted),
            _ => Err(UserError::NotOpen),
        }
    }

    fn app_channel_mut(&mut self, number: u32) -> Result<&mut Channel, UserError> {
        match self.channels.get_mut(&number) {
            Some(channel) if channel.service.is_app() => Ok(channel),
            _ => Err(UserError::NoSuchChannel(number)),
        }
    }

    /// Sends a MSG on an application channel; returns its msgno.
    pub fn send_msg(&mut self, channel: u32, payload: Bytes) -> Result<u32, UserError> {
        self.check_open()?;
        self.check_size(payload.len())?;
        let state = self.app_channel_mut(channel)?;
        if state.local_close != LocalClose::None
            || state.remote_close.is_some()
            || state.close_accepted
        {
            return Err(UserError::ChannelClosing(channel));
        }
        let msgno = state.allocate_msgno().ok_or(UserError::TooManyChannels)?;
        state.outstanding.push_back(Outstanding {
            msgno,
            acknowledged: false,
        });
        state.enqueue(Outgoing::new(Keyword::Msg, msgno, payload));
        self.mark_ready(channel);
        Ok(msgno)
    }

    fn check_size(&self, size: usize) -> Result<(), UserError> {
        if size > self.config.max_message_size {
            return Err(UserError::MessageTooLarge {
                size,
                limit: self.config.max_message_size,
            });
        }
        Ok(())
    }

    /// Sends the positive reply (RPY) to MSG `msgno`.
    pub fn send_rpy(&mut self, channel: u32, msgno: u32, payload: Bytes) -> Result<(), UserError> {
        self.check_size(payload.len())?;
        self.app_channel_mut(channel)?;
        self.queue_reply(channel, msgno, Keyword::Rpy, payload)
    }

    /// Sends the negative reply (ERR) to MSG `msgno`.
    pub fn send_err(&mut self, channel: u32, msgno: u32, payload: Bytes) -> Result<(), UserError> {
        self.check_size(payload.len())?;
        self.app_channel_mut(channel)?;
        self.queue_reply(channel, msgno, Keyword::Err, payload)
    }

    /// Sends one answer (ANS) of a one-to-many reply to MSG `msgno`; returns its ansno.
    pub fn send_ans(&mut self, channel: u32, msgno: u32, payload: Bytes) -> Result<u32, UserError> {
        self.check_size(payload.len())?;
        self.app_channel_mut(channel)?;
        let owed = find_owed(self.channel_mut(channel), channel, msgno)?;
        let ansno = owed.next_ansno;
        owed.next_ansno = (owed.next_ansno + 1) & 0x7fff_ffff;
        self.queue_reply_with(channel, msgno, Keyword::Ans, payload, Some(ansno), None)?;
        Ok(ansno)
    }

    /// Ends a one-to-many reply to MSG `msgno` (NUL).
    pub fn send_nul(&mut self, channel: u32, msgno: u32) -> Result<(), UserError> {
        self.app_channel_mut(channel)?;
        self.queue_reply(channel, msgno, Keyword::Nul, Bytes::new())
    }

    fn queue_reply(
        &mut self,
        channel: u32,
        msgno: u32,
        keyword: Keyword,
        payload: Bytes,
    ) -> Result<(), UserError> {
        self.queue_reply_with(channel, msgno, keyword, payload, None, None)
    }

    /// Queues a reply message for an owed MSG, keeping replies in arrival order.
    fn queue_reply_with(
        &mut self,
        number: u32,
        msgno: u32,
        keyword: Keyword,
        payload: Bytes,
        ansno: Option<u32>,
        on_sent: Option<OnSent>,
    ) -> Result<(), UserError> {
        if matches!(self.phase, Phase::Ended | Phase::TlsHandshake) {
            return Err(UserError::NotOpen);
        }
        let channel = self
            .channels
            .get_mut(&number)
            .ok_or(UserError::NoSuchChannel(number))?;
        let owed = find_owed(channel, number, msgno)?;
        let answers = matches!(keyword, Keyword::Ans | Keyword::Nul);
        if owed.answering != answers && (owed.answering || !owed.replies.is_empty()) {
            return Err(UserError::ReplyStyle {
                channel: number,
                msgno,
            });
        }
        owed.answering = answers;
        let mut message = Outgoing::new(keyword, msgno, payload);
        message.ansno = ansno;
        message.on_sent = on_sent;
        owed.complete = message.completes_reply;
        owed.replies.push(message);
        channel.flush_owed();
        self.mark_ready(number);
        self.pump();
        Ok(())
    }

    /// Asks the peer to start a channel on one of `profiles` (RFC 3080
    /// §2.3.1.2); returns the channel number. `Event::ChannelStarted` or
    /// `Event::ChannelRefused` follows.
    pub fn start_channel(
        &mut self,
        profiles: Vec<Profile>,
        server_name: Option<String>,
    ) -> Result<u32, UserError> {
        self.start(profiles, server_name, StartKind::App)
    }

    fn start(
        &mut self,
        profiles: Vec<Profile>,
        server_name: Option<String>,
        kind: StartKind,
    ) -> Result<u32, UserError> {
        self.check_open()?;
        if self.release_pending.is_some() || self.release_requested.is_some() {
            return Err(UserError::NotOpen);
        }
        if profiles
            .iter()
            .any(|p| p.init.as_ref().is_some_and(|i| i.len() > mgmt::MAX_INIT))
        {
            return Err(UserError::InitTooLarge);
        }
        if self.channels.len() + self.starting.len() >= self.config.max_channels {
            return Err(UserError::TooManyChannels);
        }
        let number = self.allocate_channel()?;
        let offered = profiles.iter().map(|p| p.uri.clone()).collect();
        let payload = mgmt::Start {
            number,
            server_name,
            profiles,
        }
        .to_payload();
        let zero = self.channel_mut(0);
        let msgno = zero.allocate_msgno().ok_or(UserError::TooManyChannels)?;
        zero.outstanding.push_back(Outstanding {
            msgno,
            acknowledged: false,
        });
        let mut message = Outgoing::new(Keyword::Msg, msgno, Bytes::from(payload));
        if matches!(kind, StartKind::Tls) {
            message.on_sent = Some(OnSent::TlsReadySent);
        }
        zero.enqueue(message);
        self.pending_ops.insert(
            msgno,
            PendingOp::Start {
                number,
                offered,
                kind,
            },
        );
        self.starting.insert(number);
        self.mark_ready(0);
        Ok(number)
    }

    fn allocate_channel(&mut self) -> Result<u32, UserError> {
        for _ in 0..self.config.max_channels + self.starting.len() + 1 {
            let candidate = self.next_channel;
            self.next_channel = if self.next_channel >= 2_147_483_645 {
                2 - self.config.role.parity()
            } else {
                self.next_channel + 2
            };
            if !self.channels.contains_key(&candidate) && !self.starting.contains(&candidate) {
                return Ok(candidate);
            }
        }
        Err(UserError::TooManyChannels)
    }

    /// Asks to close `channel` (RFC 3080 §2.3.1.3; any channel but 0, which
    /// is [`Session::release`]). The `<close>` is sent once every MSG we sent
    /// on it is acknowledged; `Event::ChannelClosed` or
    /// `Event::CloseRefused` follows.
    pub fn close_channel(
        &mut self,
        channel: u32,
        code: ReplyCode,
        diagnostic: impl Into<String>,
    ) -> Result<(), UserError> {
        self.check_open()?;
        let state = match self.channels.get_mut(&channel) {
            Some(state) if channel != 0 => state,
            _ => return Err(UserError::NoSuchChannel(channel)),
        };
        if state.local_close != LocalClose::None {
            return Err(UserError::ChannelClosing(channel));
        }
        state.local_close = LocalClose::Pending {
            code,
            diagnostic: diagnostic.into(),
        };
        self.pump();
        Ok(())
    }

    /// Asks to release the whole session (close of channel 0, RFC 3080 §2.4).
    /// `Event::Released` or `Event::CloseRefused { channel: 0, .. }` follows.
    pub fn release(&mut self, code: ReplyCode) -> Result<(), UserError> {
        self.check_open()?;
        if self.release_pending.is_some()
            || self
                .pending_ops
                .values()
                .any(|op| matches!(op, PendingOp::Release))
        {
            return Err(UserError::ChannelClosing(0));
        }
        self.release_pending = Some(code);
        self.pump();
        Ok(())
    }

    /// Starts TLS tuning as initiator of the exchange (RFC 3080 §3.1): a
    /// channel on the TLS profile with `<ready />` piggybacked. After it is
    /// sent nothing else is; `Event::TlsProceed` or `Event::TlsRefused` follows.
    pub fn start_tls(&mut self, server_name: Option<String>) -> Result<u32, UserError> {
        self.check_open()?;
        if self.tls_active {
            return Err(UserError::Tuning("TLS is already active"));
        }
        let offered = self
            .peer_greeting
            .as_ref()
            .is_some_and(|g| g.profiles.iter().any(|p| p == TLS_URI));
        if !offered {
            return Err(UserError::Tuning("the peer does not offer TLS"));
        }
        self.start(
            vec![Profile::with_init(TLS_URI, crate::tuning::tls::READY)],
            server_name,
            StartKind::Tls,
        )
    }

    /// Starts a SASL exchange as client (RFC 3080 §4.1) with the initial
    /// response piggybacked. `Event::Authenticated` or
    /// `Event::AuthenticationFailed` follows.
    pub fn start_sasl(&mut self, mut client: Box<dyn SaslClient>) -> Result<u32, UserError> {
        self.check_open()?;
        if self.authenticated.is_some() {
            return Err(UserError::Tuning("already authenticated"));
        }
        let uri = crate::tuning::sasl::profile_uri(client.mechanism());
        let init = client.initial_response().map(|data| {
            crate::tuning::sasl::Blob {
                data,
                status: crate::tuning::sasl::BlobStatus::Continue,
            }
            .to_xml()
            .into_bytes()
        });
        let profile = Profile { uri, init };
        self.start(vec![profile], None, StartKind::Sasl(client))
    }

    /// Call after the TLS handshake succeeded: all channels are reset and
    /// new greetings exchanged (RFC 3080 §3.1); pre-TLS state is discarded.
    /// `peer_identity` is the identity from the peer's verified certificate.
    pub fn tls_complete(&mut self, now: Instant, peer_identity: Option<String>) {
        self.tls_active = true;
        self.tls_peer_identity = peer_identity;
        self.authenticated = None;
        self.input.clear();
        self.begin(now);
    }

    /// Call after the TLS handshake failed, if the session is to go on
    /// without TLS: new greetings are exchanged (RFC 3080 §3.1). (The
    /// transport is usually unusable then; dropping it is the other choice.)
    pub fn tls_failed(&mut self, now: Instant) {
        self.input.clear();
        self.begin(now);
    }

    /// Ends the session at once (the caller aborts the transport).
    pub fn terminate(&mut self) {
        self.phase = Phase::Ended;
    }

    // ===== internal scheduling =====

    /// Performs deferred work: queued closes and releases whose conditions
    /// now hold, the TLS proceed, and channel-0 replies.
    fn pump(&mut self) {
        if !matches!(self.phase, Phase::Open) {
            return;
        }
        self.pump_closes();
        self.pump_release();
        self.pump_tls();
    }

    fn on_sent(&mut self, action: OnSent) {
        match action {
            OnSent::Announce(number) => {
                if let Some(channel) = self.channels.get_mut(&number) {
                    channel.announced = true;
                    self.seq_dirty.insert(number);
                    self.mark_ready(number);
                }
            }
            OnSent::ClosedByPeer(number) => {
                if self.channels.remove(&number).is_some() {
                    self.close_deadlines.remove(&number);
                    self.events.push_back(Event::ChannelClosed {
                        channel: number,
                        code: ReplyCode::SUCCESS,
                        local: false,
                    });
                }
            }
            OnSent::Released => {
                self.phase = Phase::Ended;
                self.events.push_back(Event::Released { local: false });
            }
            OnSent::TlsProceed => {
                self.phase = Phase::TlsHandshake;
                self.events.push_back(Event::TlsProceed {
                    server_name: self.server_name.clone(),
                });
            }
            OnSent::TlsReadySent => self.phase = Phase::TlsReadySent,
            OnSent::Greeted => self.greeting_sent = true,
            OnSent::Refused => {
                self.greeting_sent = true;
                self.phase = Phase::Ended;
            }
        }
    }
}

/// Writes the next frame of `channel`'s front message; returns its
/// completion action if the message is now fully written.
fn write_frame(channel: &mut Channel, max_frame: u32, out: &mut BytesMut) -> Option<OnSent> {
    let available = channel.send.available() as usize;
    let message = channel.queue.front_mut()?;
    let remaining = message.remaining();
    let size = if message.truncated {
        0
    } else {
        remaining.min(available).min(max_frame as usize)
    };
    let last = message.truncated || size == remaining;
    let header = DataHeader {
        keyword: message.keyword,
        channel: channel.number,
        msgno: message.msgno,
        more: !last,
        seqno: channel.send.next_seqno(),
        size: size as u32,
        ansno: message.ansno,
    };
    frame::encode_data(
        &header,
        &message.payload[message.offset..message.offset + size],
        out,
    );
    channel.send.consume(size as u32);
    message.offset += size;
    channel.queued_bytes -= size;
    if !last {
        return None;
    }
    let message = channel.queue.pop_front()?;
    if message.completes_reply {
        channel.replies_in_flight.remove(&message.msgno);
    }
    message.on_sent
}

/// Checks the frame against what the channel expects next (RFC 3080
/// §2.2.1.1 cases 4–9).
fn check_sequence(channel: &Channel, header: &DataHeader) -> Result<(), SessionError> {
    let number = channel.number;
    // A message in progress must be continued by the same msgno and keyword.
    if let Some(partial) = &channel.partial {
        if partial.msgno != header.msgno {
            return Err(SessionError::Interleaved {
                channel: number,
                expected: partial.msgno,
                got: header.msgno,
            });
        }
        if partial.keyword != header.keyword {
            return Err(SessionError::KeywordChanged {
                channel: number,
                expected: partial.keyword,
                got: header.keyword,
            });
        }
        return Ok(());
    }
    if !channel.answers.is_empty() {
        let answering = channel.answering_msgno.unwrap_or(header.msgno);
        if header.msgno != answering {
            return Err(SessionError::Interleaved {
                channel: number,
                expected: answering,
                got: header.msgno,
            });
        }
        if header.keyword != Keyword::Ans {
            return Err(SessionError::KeywordChanged {
                channel: number,
                expected: Keyword::Ans,
                got: header.keyword,
            });
        }
        return Ok(());
    }
    match header.keyword {
        Keyword::Msg => {
            let pending = channel.owed.iter().any(|o| o.msgno == header.msgno)
                || channel.replies_in_flight.contains(&header.msgno);
            if pending {
                return Err(SessionError::MsgnoInUse {
                    channel: number,
                    msgno: header.msgno,
                });
            }
        }
        keyword => {
            if !channel.outstanding.iter().any(|o| o.msgno == header.msgno) {
                return Err(SessionError::UnsolicitedReply {
                    channel: number,
                    msgno: header.msgno,
                    keyword,
                });
            }
            if let Some(answering) = channel.answering_msgno {
                if answering != header.msgno {
                    return Err(SessionError::Interleaved {
                        channel: number,
                        expected: answering,
                        got: header.msgno,
                    });
                }
                if !matches!(keyword, Keyword::Ans | Keyword::Nul) {
                    return Err(SessionError::KeywordChanged {
                        channel: number,
                        expected: Keyword::Ans,
                        got: keyword,
                    });
                }
            } else if keyword == Keyword::Nul {
                // NUL must follow answers (case 8): an empty one-to-many reply
                // is the only exception, which the RFC allows (zero ANS).
            }
        }
    }
    Ok(())
}

/// Marks our MSG `msgno` acknowledged (first frame of its reply arrived);
/// if the peer answered while we were still sending it, truncate it with
/// an empty final frame (RFC 3080 §2.6.3).
fn acknowledge(channel: &mut Channel, msgno: u32) {
    if let Some(outstanding) = channel.outstanding.iter_mut().find(|o| o.msgno == msgno) {
        outstanding.acknowledged = true;
    }
    if let Some(message) = channel
        .queue
        .iter_mut()
        .find(|m| m.keyword == Keyword::Msg && m.msgno == msgno)
        && message.offset > 0
        && !message.truncated
    {
        channel.queued_bytes -= message.remaining();
        message.truncated = true;
    }
}

/// Our MSG `msgno` has its complete reply.
fn complete_outstanding(channel: &mut Channel, msgno: u32) {
    channel.outstanding.retain(|o| o.msgno != msgno);
    // A MSG not yet started when the reply came is dropped entirely.
    channel
        .queue
        .retain(|m| !(m.keyword == Keyword::Msg && m.msgno == msgno && m.offset == 0));
    channel.queued_bytes = channel.queue.iter().map(Outgoing::remaining).sum();
}

fn find_owed(channel: &mut Channel, number: u32, msgno: u32) -> Result<&mut Owed, UserError> {
    channel
        .owed
        .iter_mut()
        .find(|o| o.msgno == msgno && !o.complete)
        .ok_or(UserError::NoSuchMessage {
            channel: number,
            msgno,
        })
}

fn violation(channel: u32, violation: WindowViolation) -> SessionError {
    match violation {
        WindowViolation::Seqno { expected, got } => SessionError::Seqno {
            channel,
            expected,
            got,
        },
        WindowViolation::Overrun { size, available } => SessionError::WindowOverrun {
            channel,
            size,
            available,
        },
        WindowViolation::AckBeyondSent { ackno, sent } => SessionError::AckBeyondSent {
            channel,
            ackno,
            sent,
        },
    }
}
