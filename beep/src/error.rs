//! Errors, split by scope (STYLE B1.5): [`SessionError`] ends the session
//! without a response; [`UserError`] is a misuse of the API and changes
//! nothing on the wire. Errors answered on the wire are
//! [`ErrorReply`](crate::mgmt::ErrorReply) values.

use crate::frame::{FrameError, Keyword};
use crate::mgmt::MgmtError;
use thiserror::Error;

/// A fatal protocol violation (RFC 3080 §2.2.1.1, §2.2.1.3, RFC 3081
/// §3.1.3) or a local limit: the session is terminated without a response
/// (the driver aborts the transport).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The byte stream is not a well-formed frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame or SEQ names a channel that does not exist (case 3).
    #[error("frame for channel {0}, which does not exist")]
    UnknownChannel(u32),
    /// A MSG reuses a msgno whose reply has not been completely sent (case 4).
    #[error("MSG {msgno} on channel {channel} while its earlier reply is still pending")]
    MsgnoInUse {
        /// Channel.
        channel: u32,
        /// Message number.
        msgno: u32,
    },
    /// A reply frame for a msgno that was never sent or is already answered (cases 5, 6).
    #[error("{keyword:?} for msgno {msgno} on channel {channel}, which has no outstanding MSG")]
    UnsolicitedReply {
        /// Channel.
        channel: u32,
        /// Message number.
        msgno: u32,
        /// The frame's keyword.
        keyword: Keyword,
    },
    /// A message continues with a different keyword (cases 7, 8).
    #[error("{got:?} frame continues a {expected:?} message on channel {channel}")]
    KeywordChanged {
        /// Channel.
        channel: u32,
        /// The keyword of the message in progress.
        expected: Keyword,
        /// The keyword received.
        got: Keyword,
    },
    /// A frame of another message arrives before the previous one completed (case 9).
    #[error("frame for msgno {got} on channel {channel} interrupts msgno {expected}")]
    Interleaved {
        /// Channel.
        channel: u32,
        /// The msgno of the message in progress.
        expected: u32,
        /// The msgno received.
        got: u32,
    },
    /// Wrong sequence number (case 10, RFC 3080 §2.2.1.2).
    #[error("seqno {got} on channel {channel}, expected {expected}")]
    Seqno {
        /// Channel.
        channel: u32,
        /// The expected seqno.
        expected: u32,
        /// The seqno received.
        got: u32,
    },
    /// A frame larger than the window we advertised (RFC 3081 §3.1.2).
    #[error("frame of {size} octets overruns the window of {available} on channel {channel}")]
    WindowOverrun {
        /// Channel.
        channel: u32,
        /// Payload size.
        size: u32,
        /// Octets the window allowed.
        available: u32,
    },
    /// A SEQ acknowledges octets never sent (RFC 3081 §3.1.3).
    #[error("SEQ on channel {channel} acknowledges {ackno}, beyond the {sent} octets sent")]
    AckBeyondSent {
        /// Channel.
        channel: u32,
        /// The ackno received.
        ackno: u32,
        /// Our next seqno.
        sent: u32,
    },
    /// The first frame from the peer is not its greeting (RFC 3080 §2.3.1.1).
    #[error("the peer's first frame is not a greeting")]
    ExpectedGreeting,
    /// A reply on channel 0 that is not a valid management reply (RFC 3080 §2.2.2.1).
    #[error("poorly-formed reply on channel 0: {0}")]
    ManagementReply(MgmtError),
    /// A reply on channel 0 that does not answer what we asked.
    #[error("unexpected reply on channel 0: {0}")]
    UnexpectedManagementReply(&'static str),
    /// A reply larger than the configured maximum message size.
    #[error("reply on channel {channel} exceeds the maximum message size of {limit} octets")]
    MessageTooLarge {
        /// Channel.
        channel: u32,
        /// The configured limit.
        limit: usize,
    },
    /// The peer did not greet in time.
    #[error("no greeting from the peer within the greeting timeout")]
    GreetingTimeout,
    /// The peer did not answer a close in time.
    #[error("no reply to close within the close timeout")]
    CloseTimeout,
    /// Bytes arrived while transport-security negotiation owned the stream.
    #[error("data received after TLS negotiation began")]
    InputDuringTuning,
    /// The session already ended.
    #[error("the session has ended")]
    Ended,
}

/// A misuse of the session API; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UserError {
    /// No such channel (or it is not open yet).
    #[error("channel {0} is not open")]
    NoSuchChannel(u32),
    /// The channel is being closed: no new MSGs (RFC 3080 §2.3.1.3).
    #[error("channel {0} is closing")]
    ChannelClosing(u32),
    /// No MSG with this msgno awaits a reply, or its reply is complete.
    #[error("no MSG {msgno} awaits a reply on channel {channel}")]
    NoSuchMessage {
        /// Channel.
        channel: u32,
        /// Message number.
        msgno: u32,
    },
    /// An ANS/NUL after RPY/ERR, or RPY/ERR after ANS, for one MSG.
    #[error("reply style mismatch for MSG {msgno} on channel {channel}")]
    ReplyStyle {
        /// Channel.
        channel: u32,
        /// Message number.
        msgno: u32,
    },
    /// No start request with this number is waiting for a decision.
    #[error("no start request for channel {0} is pending")]
    NoSuchStart(u32),
    /// The profile chosen was not among those offered.
    #[error("profile {0} was not offered")]
    ProfileNotOffered(String),
    /// Init content over 4096 octets (RFC 3080 §2.3.1.2).
    #[error("init content exceeds 4096 octets")]
    InitTooLarge,
    /// Too many channels are open or being started.
    #[error("channel numbers exhausted or channel limit reached")]
    TooManyChannels,
    /// Transport-security or SASL negotiation not possible now.
    #[error("tuning not possible: {0}")]
    Tuning(&'static str),
    /// The peer has not greeted yet.
    #[error("the peer has not sent its greeting yet")]
    NotGreeted,
    /// The session is ending, ended, or being tuned.
    #[error("the session is not open")]
    NotOpen,
    /// A message larger than the configured maximum message size.
    #[error("message of {size} octets exceeds the maximum of {limit}")]
    MessageTooLarge {
        /// Message size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}
