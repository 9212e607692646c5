//! Application commands: messages, replies, starts, closes, release and
//! tuning requests.

use super::channel::{Channel, LocalClose, OnSent, Outgoing, Outstanding, Owed};
use super::{PendingOp, Phase, Session, StartKind};
use crate::error::UserError;
use crate::frame::Keyword;
use crate::mgmt::{self, Profile};
use crate::reply_code::ReplyCode;
use crate::tuning::sasl::SaslClient;
use crate::tuning::tls::TLS_URI;
use bytes::Bytes;
use std::time::Instant;

impl Session {
    pub(super) fn check_open(&self) -> Result<(), UserError> {
        match self.phase {
            Phase::Open => Ok(()),
            Phase::Greeting => Err(UserError::NotGreeted),
            _ => Err(UserError::NotOpen),
        }
    }

    pub(super) fn app_channel_mut(&mut self, number: u32) -> Result<&mut Channel, UserError> {
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

    pub(super) fn check_size(&self, size: usize) -> Result<(), UserError> {
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

    pub(super) fn queue_reply(
        &mut self,
        channel: u32,
        msgno: u32,
        keyword: Keyword,
        payload: Bytes,
    ) -> Result<(), UserError> {
        self.queue_reply_with(channel, msgno, keyword, payload, None, None)
    }

    /// Queues a reply message for an owed MSG, keeping replies in arrival order.
    pub(super) fn queue_reply_with(
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

    pub(super) fn start(
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

    pub(super) fn allocate_channel(&mut self) -> Result<u32, UserError> {
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

    /// Asks to release the whole session (RFC 3080 §2.4), the way
    /// long-lived implementations do: every open channel is closed first
    /// with `code` (each `<close>` once our MSGs on it are acknowledged,
    /// §2.3.1.3), and once all of them are closed, channel 0 is, with
    /// `<close number='0' …>`. Start requests still awaiting the
    /// application's decision are refused (550). `Event::Released` or
    /// `Event::CloseRefused { channel: 0, .. }` follows; the latter also
    /// when the peer declines to close one of the channels (after that
    /// channel's own `CloseRefused`), and the session then stays open.
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
        let undecided: Vec<u32> = self.start_requests.keys().copied().collect();
        for channel in undecided {
            let _ = self.reject_start(
                channel,
                mgmt::ErrorReply::new(ReplyCode::ACTION_NOT_TAKEN, "the session is being released"),
            );
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
}

pub(super) fn find_owed(
    channel: &mut Channel,
    number: u32,
    msgno: u32,
) -> Result<&mut Owed, UserError> {
    channel
        .owed
        .iter_mut()
        .find(|o| o.msgno == msgno && !o.complete)
        .ok_or(UserError::NoSuchMessage {
            channel: number,
            msgno,
        })
}
