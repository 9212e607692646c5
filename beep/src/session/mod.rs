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
//! Any [`SessionError`](crate::SessionError) means the session must be terminated without a
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
mod commands;
mod input;
mod management;
mod output;

use crate::frame::Keyword;
use crate::mgmt::{ErrorReply, Greeting};
use crate::reply_code::ReplyCode;
use crate::tuning::sasl::{AuthContext, SaslClient, SaslServerFactory};
use crate::tuning::tls::TLS_URI;
use crate::window::INITIAL_WINDOW;
use bytes::{Bytes, BytesMut};
use channel::{Channel, OnSent, Outgoing, Outstanding, Service};
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
    /// Octets of partly received messages buffered across all channels
    /// before channels that are assembling get no more window (the peer
    /// then waits; RFC 3081 §3.1.4 "advertise windows based on real
    /// buffer space").
    pub max_assembly_buffer: usize,
    /// Largest number of open channels, channel 0 included.
    pub max_channels: usize,
    /// Time allowed for the peer's greeting.
    pub greeting_timeout: Option<Duration>,
    /// Time allowed for the peer to answer a `<close>`.
    pub close_timeout: Option<Duration>,
    /// Release the session (a `<close>` on channel 0 with code 421) once no
    /// frame (SEQ frames included) has arrived for this long while nothing
    /// is outstanding either way: no MSG owed a reply, none of ours awaiting
    /// one, nothing queued, no channel being started or closed. A peer keeps
    /// an idle session open by sending a SEQ now and then
    /// ([`Session::keepalive`]); one that does not answer the close within
    /// `close_timeout` is terminated. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// MSGs received on one application channel and not yet answered, at
    /// most: beyond it the channel's receive window is not reopened until
    /// replies go out, so the peer waits (RFC 3081 §3.1.4); nothing is
    /// dropped. At most one window of further MSGs can still arrive.
    pub max_outstanding: usize,
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
            .field("max_channels", &self.max_channels)
            .field("greeting_timeout", &self.greeting_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_outstanding", &self.max_outstanding)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Defaults for `role`: 64 KiB windows and frames, 16 MiB messages,
    /// 64 MiB of partly received messages, 1024 channels, 30 s greeting
    /// and close timeouts, no idle timeout, 256 unanswered MSGs per channel.
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
            max_assembly_buffer: 64 * 1024 * 1024,
            max_channels: 1024,
            greeting_timeout: Some(Duration::from_secs(30)),
            close_timeout: Some(Duration::from_secs(30)),
            idle_timeout: None,
            max_outstanding: 256,
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
    /// When the last complete frame (data or SEQ) arrived, or the idle
    /// clock was restarted.
    last_frame: Instant,
    /// A keepalive SEQ on channel 0 is due.
    keepalive_due: bool,
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
        config.max_outstanding = config.max_outstanding.max(1);
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
            last_frame: now,
            keepalive_due: false,
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
        self.last_frame = now;
        self.keepalive_due = false;
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

    /// Octets of partly received messages buffered across all channels.
    pub fn buffered_octets(&self) -> usize {
        self.channels.values().map(Channel::assembling).sum()
    }

    /// Octets the peer's window lets us send on `channel` right now.
    pub fn send_window(&self, channel: u32) -> u32 {
        self.channels
            .get(&channel)
            .map_or(0, |c| c.send.available())
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
                        code: ReplyCode::BEEP_OK,
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
