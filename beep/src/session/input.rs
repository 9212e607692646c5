//! Incoming frames: sequence checks (RFC 3080 §2.2.1.1), windows
//! (RFC 3081 §3), message assembly, timers.

use super::channel::{Channel, Outgoing, Owed, Partial};
use super::{Event, Phase, Session};
use crate::error::SessionError;
use crate::frame::{self, DataFrame, DataHeader, Frame, Keyword, SeqHeader};
use crate::mgmt::ErrorReply;
use crate::reply_code::ReplyCode;
use crate::window::WindowViolation;
use bytes::Bytes;
use std::time::Instant;

impl Session {
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
            self.last_frame = now;
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

    pub(super) fn handle_seq(&mut self, seq: SeqHeader) -> Result<(), SessionError> {
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

    pub(super) fn handle_data(&mut self, frame: DataFrame) -> Result<(), SessionError> {
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

    pub(super) fn receive_msg(
        &mut self,
        header: DataHeader,
        payload: Bytes,
        limit: usize,
    ) -> Result<(), SessionError> {
        let number = header.channel;
        let channel = self.channel_mut(number);
        let partial = channel
            .partial
            .get_or_insert_with(|| Partial::new(Keyword::Msg, header.msgno));
        if partial.discard {
            if !header.more {
                channel.partial = None;
            }
            return Ok(());
        }
        if partial.len() + payload.len() > limit {
            // Pre-emptive negative reply (RFC 3080 §2.6.3); drop the rest.
            partial.discard = true;
            partial.clear();
            let msgno = header.msgno;
            if !header.more {
                channel.partial = None;
            }
            channel.owed.push_back(Owed::new(msgno));
            let error = ErrorReply::new(
                ReplyCode::TRANSACTION_FAILED,
                format!("message exceeds {limit} octets"),
            );
            return self
                .queue_reply(number, msgno, Keyword::Err, Bytes::from(error.to_payload()))
                .map_err(|_| SessionError::Ended);
        }
        partial.push(payload);
        if header.more {
            return Ok(());
        }
        let partial = channel.partial.take().expect("partial present");
        let payload = partial.into_payload();
        channel.owed.push_back(Owed::new(header.msgno));
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

    pub(super) fn receive_reply(
        &mut self,
        header: DataHeader,
        payload: Bytes,
        limit: usize,
    ) -> Result<(), SessionError> {
        let number = header.channel;
        let channel = self.channel_mut(number);
        acknowledge(channel, header.msgno);
        let partial = channel
            .partial
            .get_or_insert_with(|| Partial::new(header.keyword, header.msgno));
        if partial.len() + payload.len() > limit {
            return Err(SessionError::MessageTooLarge {
                channel: number,
                limit,
            });
        }
        partial.push(payload);
        if header.more {
            return Ok(());
        }
        let partial = channel.partial.take().expect("partial present");
        complete_outstanding(channel, header.msgno);
        let payload = partial.into_payload();
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

    pub(super) fn receive_answer(
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

    pub(super) fn receive_nul(&mut self, header: DataHeader) -> Result<(), SessionError> {
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
        if let Some(deadline) = self.idle_deadline()
            && now >= deadline
        {
            if self.quiescent() {
                // Cannot fail: the session is open and not releasing.
                let _ = self.release(ReplyCode::SERVICE_NOT_AVAILABLE);
            } else {
                // Busy (something is owed or awaited): not idle; look again
                // one idle period from now.
                self.last_frame = now;
            }
        }
        Ok(())
    }

    /// When the session counts as idle (see `Config::idle_timeout`), if it
    /// is open and not already being released.
    fn idle_deadline(&self) -> Option<Instant> {
        let timeout = self.config.idle_timeout?;
        let releasing = self.release_pending.is_some()
            || self.release_requested.is_some()
            || self
                .pending_ops
                .values()
                .any(|op| matches!(op, super::PendingOp::Release));
        (self.phase == Phase::Open && !releasing).then(|| self.last_frame + timeout)
    }

    /// Nothing is outstanding either way: no MSG owed a reply or awaiting
    /// one, nothing queued to send, no channel being started or closed.
    /// (A message the peer left half sent does not keep the session busy.)
    fn quiescent(&self) -> bool {
        self.pending_ops.is_empty()
            && self.starting.is_empty()
            && self.start_requests.is_empty()
            && self.channels.values().all(|c| {
                c.queue.is_empty()
                    && c.outstanding.is_empty()
                    && c.owed.is_empty()
                    && c.replies_in_flight.is_empty()
            })
    }

    /// Asks for a SEQ on channel 0 re-advertising its window unchanged: a
    /// frame that costs nothing and shows the peer the session is alive
    /// (RFC 3081 §3.1.3 lets a SEQ be sent at any time). The driver calls
    /// it when it has written nothing for a while.
    pub fn keepalive(&mut self) {
        if self.phase == Phase::Open && self.greeting_sent {
            self.keepalive_due = true;
        }
    }

    /// The next instant `handle_timeout` must be called at, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let greeting = match self.phase {
            Phase::Greeting => self.greeting_deadline,
            _ => None,
        };
        let close = self.close_deadlines.values().min().copied();
        [greeting, close, self.idle_deadline()]
            .into_iter()
            .flatten()
            .min()
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
}

/// Checks the frame against what the channel expects next (RFC 3080
/// §2.2.1.1 cases 4–9).
pub(super) fn check_sequence(channel: &Channel, header: &DataHeader) -> Result<(), SessionError> {
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
pub(super) fn acknowledge(channel: &mut Channel, msgno: u32) {
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
pub(super) fn complete_outstanding(channel: &mut Channel, msgno: u32) {
    channel.outstanding.retain(|o| o.msgno != msgno);
    // A MSG not yet started when the reply came is dropped entirely.
    channel
        .queue
        .retain(|m| !(m.keyword == Keyword::Msg && m.msgno == msgno && m.offset == 0));
    channel.queued_bytes = channel.queue.iter().map(Outgoing::remaining).sum();
}

pub(super) fn violation(channel: u32, violation: WindowViolation) -> SessionError {
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
