//! Per-channel bookkeeping: windows, messages being assembled, MSGs owed a
//! reply (in arrival order), MSGs awaiting the peer's reply, and the
//! outgoing queue.
//!
//! ```text
//!   (start accepted) ──► Open ──close sent──► Closing(local) ──ok──► gone
//!                          │                      │ ERR: back to Open
//!                          └──close received──► Draining ──ok sent──► gone
//! ```

use crate::frame::Keyword;
use crate::tuning::sasl::{SaslClient, SaslServer};
use crate::window::{RecvWindow, SendWindow};
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, HashSet, VecDeque};

/// What runs on a channel.
pub(crate) enum Service {
    /// Channel management (channel 0).
    Management,
    /// An application profile: messages go to the application as events.
    App,
    /// TLS profile, listener side: waits for `<ready />`.
    TlsServer,
    /// TLS profile, initiator side: waits for `<proceed />`.
    TlsClient,
    /// SASL server exchange; `None` once it has ended.
    SaslServer(Option<Box<dyn SaslServer>>),
    /// SASL client exchange; `None` once it has ended.
    SaslClient(Option<Box<dyn SaslClient>>),
}

impl Service {
    pub(crate) fn is_app(&self) -> bool {
        matches!(self, Self::App)
    }
}

/// Something to do once the last frame of an outgoing message is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnSent {
    /// The RPY creating this channel went out: its frames may follow.
    Announce(u32),
    /// The `<ok />` to the peer's close of this channel went out.
    ClosedByPeer(u32),
    /// The `<ok />` to the peer's release went out.
    Released,
    /// `<proceed />` went out (listener): hand the stream to TLS.
    TlsProceed,
    /// `<ready />` went out (initiator): send nothing more until the answer.
    TlsReadySent,
    /// Our greeting went out: SEQ frames for channel 0 may follow.
    Greeted,
    /// The negative greeting went out: the session is over.
    Refused,
}

/// An outgoing message, sent frame by frame as the peer's window allows.
pub(crate) struct Outgoing {
    pub(crate) keyword: Keyword,
    pub(crate) msgno: u32,
    pub(crate) ansno: Option<u32>,
    pub(crate) payload: Bytes,
    /// Octets already framed.
    pub(crate) offset: usize,
    /// The peer answered mid-message: send one empty final frame and stop
    /// (RFC 3080 §2.6.3).
    pub(crate) truncated: bool,
    /// This message completes the reply to `msgno` (RPY, ERR or NUL).
    pub(crate) completes_reply: bool,
    pub(crate) on_sent: Option<OnSent>,
}

impl Outgoing {
    pub(crate) fn new(keyword: Keyword, msgno: u32, payload: Bytes) -> Self {
        Self {
            keyword,
            msgno,
            ansno: None,
            payload,
            offset: 0,
            truncated: false,
            completes_reply: matches!(keyword, Keyword::Rpy | Keyword::Err | Keyword::Nul),
            on_sent: None,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.payload.len() - self.offset
    }
}

/// A MSG we received, owed a reply (RFC 3080 §2.6: replies in arrival order).
pub(crate) struct Owed {
    pub(crate) msgno: u32,
    /// Reply messages given by the application, not yet moved to the queue.
    pub(crate) replies: Vec<Outgoing>,
    /// ANS frames were queued (so only ANS/NUL may follow).
    pub(crate) answering: bool,
    /// RPY, ERR or NUL was given: the reply is complete.
    pub(crate) complete: bool,
    /// Next ansno to hand out.
    pub(crate) next_ansno: u32,
}

impl Owed {
    pub(crate) fn new(msgno: u32) -> Self {
        Self {
            msgno,
            replies: Vec::new(),
            answering: false,
            complete: false,
            next_ansno: 0,
        }
    }
}

/// A MSG we sent that awaits the peer's reply.
pub(crate) struct Outstanding {
    pub(crate) msgno: u32,
    /// The first frame of the reply arrived (RFC 3080 §2.3.1.3 "acknowledged").
    pub(crate) acknowledged: bool,
}

/// An incoming message being assembled.
pub(crate) struct Partial {
    pub(crate) keyword: Keyword,
    pub(crate) msgno: u32,
    /// The frames' payloads so far (kept as received: a one-frame message
    /// is handed over without a copy).
    chunks: Vec<Bytes>,
    /// Octets in `chunks`.
    len: usize,
    /// Over the size limit and already answered: drop the rest.
    pub(crate) discard: bool,
}

impl Partial {
    /// Octets received so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds a frame's payload.
    pub(crate) fn push(&mut self, payload: Bytes) {
        self.len += payload.len();
        if !payload.is_empty() {
            self.chunks.push(payload);
        }
    }

    /// Drops what was received (the rest of the message is discarded).
    pub(crate) fn clear(&mut self) {
        self.chunks = Vec::new();
        self.len = 0;
    }

    /// The whole message: the one frame's payload as is, or the frames
    /// joined once.
    pub(crate) fn into_payload(mut self) -> Bytes {
        match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop().expect("one chunk"),
            _ => {
                let mut joined = BytesMut::with_capacity(self.len);
                for chunk in &self.chunks {
                    joined.extend_from_slice(chunk);
                }
                joined.freeze()
            }
        }
    }

    pub(crate) fn new(keyword: Keyword, msgno: u32) -> Self {
        Self {
            keyword,
            msgno,
            chunks: Vec::new(),
            len: 0,
            discard: false,
        }
    }
}

/// Local close state of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LocalClose {
    None,
    /// Requested; sent once our MSGs are acknowledged.
    Pending {
        code: crate::ReplyCode,
        diagnostic: String,
    },
    /// Sent as MSG `msgno` on channel 0.
    Sent,
}

pub(crate) struct Channel {
    pub(crate) number: u32,
    pub(crate) profile: String,
    pub(crate) service: Service,
    /// Frames may be sent (the RPY creating the channel has been written).
    pub(crate) announced: bool,
    pub(crate) recv: RecvWindow,
    pub(crate) send: SendWindow,
    /// The message (MSG, RPY or ERR) currently arriving in frames.
    pub(crate) partial: Option<Partial>,
    /// Answers in progress for `answering_msgno`, by ansno.
    pub(crate) answers: BTreeMap<u32, BytesMut>,
    /// The msgno whose one-to-many reply is in progress (until NUL).
    pub(crate) answering_msgno: Option<u32>,
    /// MSGs received and owed a reply, in arrival order.
    pub(crate) owed: VecDeque<Owed>,
    /// Replies moved to the queue whose final frame is not yet written.
    pub(crate) replies_in_flight: HashSet<u32>,
    /// MSGs we sent awaiting a reply, in order.
    pub(crate) outstanding: VecDeque<Outstanding>,
    pub(crate) next_msgno: u32,
    /// Outgoing messages in order; the front one is being framed.
    pub(crate) queue: VecDeque<Outgoing>,
    /// Payload octets in `queue` not yet framed.
    pub(crate) queued_bytes: usize,
    pub(crate) local_close: LocalClose,
    /// The peer asked to close: the channel-0 msgno of its `<close>`.
    pub(crate) remote_close: Option<u32>,
    /// Our `<ok />` to the peer's close is queued: nothing more may be sent.
    pub(crate) close_accepted: bool,
}

impl Channel {
    pub(crate) fn new(number: u32, profile: String, service: Service, recv_buffer: u32) -> Self {
        Self {
            number,
            profile,
            service,
            announced: true,
            recv: RecvWindow::new(recv_buffer),
            send: SendWindow::new(),
            partial: None,
            answers: BTreeMap::new(),
            answering_msgno: None,
            owed: VecDeque::new(),
            replies_in_flight: HashSet::new(),
            outstanding: VecDeque::new(),
            next_msgno: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            local_close: LocalClose::None,
            remote_close: None,
            close_accepted: false,
        }
    }

    /// Queues a message for sending.
    pub(crate) fn enqueue(&mut self, message: Outgoing) {
        self.queued_bytes += message.remaining();
        self.queue.push_back(message);
    }

    /// A msgno for a new MSG: not in use by any MSG awaiting a reply.
    pub(crate) fn allocate_msgno(&mut self) -> Option<u32> {
        for _ in 0..=self.outstanding.len() {
            let candidate = self.next_msgno;
            self.next_msgno = (self.next_msgno + 1) & 0x7fff_ffff;
            if !self.outstanding.iter().any(|o| o.msgno == candidate) {
                return Some(candidate);
            }
        }
        None
    }

    /// Moves the replies of owed MSGs to the queue, in arrival order: the
    /// front entry's replies go first, later entries wait until it is complete.
    pub(crate) fn flush_owed(&mut self) {
        while let Some(front) = self.owed.front_mut() {
            let replies = std::mem::take(&mut front.replies);
            let complete = front.complete;
            let msgno = front.msgno;
            if complete || !replies.is_empty() {
                self.replies_in_flight.insert(msgno);
            }
            for reply in replies {
                self.enqueue(reply);
            }
            if !complete {
                break;
            }
            self.owed.pop_front();
        }
    }

    /// True if every MSG we sent has been acknowledged (first reply frame in).
    pub(crate) fn all_acknowledged(&self) -> bool {
        self.outstanding.iter().all(|o| o.acknowledged)
            && !self.queue.iter().any(|m| m.keyword == Keyword::Msg)
    }

    /// The drain rules before accepting a close (RFC 3080 §2.3.1.3): our
    /// queued MSGs sent, replies to them complete, replies we owe sent.
    pub(crate) fn drained(&self) -> bool {
        self.queue.is_empty()
            && self.outstanding.is_empty()
            && self.owed.is_empty()
            && self.replies_in_flight.is_empty()
            && self.partial.is_none()
            && self.answering_msgno.is_none()
    }

    /// Octets of incoming messages received in part.
    pub(crate) fn assembling(&self) -> usize {
        self.partial.as_ref().map_or(0, Partial::len)
            + self.answers.values().map(BytesMut::len).sum::<usize>()
    }

    /// True if a frame could be written now.
    pub(crate) fn can_send(&self) -> bool {
        self.announced
            && self
                .queue
                .front()
                .is_some_and(|m| m.remaining() == 0 || m.truncated || self.send.available() > 0)
    }
}
