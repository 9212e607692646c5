//! Outgoing frames: SEQ first, then one data frame per ready channel in
//! turn (RFC 3081 §3.1.4: priority to SEQ, round-robin between channels).

use super::channel::{Channel, OnSent};
use super::{Phase, Session};
use crate::frame::{self, DataHeader, SeqHeader};
use bytes::BytesMut;

impl Session {
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
        // Octets of messages still being assembled are not counted against
        // a channel's window (a message may be larger than it); their
        // session-wide total is bounded instead: over the limit, only the
        // channel with the most assembled (the one closest to completing a
        // message, so progress never stops) gets more window.
        if std::mem::take(&mut self.keepalive_due)
            && self.phase == Phase::Open
            && let Some(zero) = self.channels.get(&0)
        {
            let (ackno, window) = zero.recv.current();
            frame::encode_seq(
                &SeqHeader {
                    channel: 0,
                    ackno,
                    window,
                },
                out,
            );
        }
        let dirty = std::mem::take(&mut self.seq_dirty);
        let over_limit = self.buffered_octets() > self.config.max_assembly_buffer;
        let favoured = over_limit
            .then(|| {
                self.channels
                    .values()
                    .max_by_key(|c| (c.assembling(), std::cmp::Reverse(c.number)))
                    .map(|c| c.number)
            })
            .flatten();
        for number in dirty {
            let assembling = self
                .channels
                .get(&number)
                .is_some_and(|c| c.assembling() > 0);
            if over_limit && assembling && favoured != Some(number) {
                self.seq_dirty.insert(number);
                continue;
            }
            if let Some(channel) = self.channels.get_mut(&number) {
                // Too many MSGs unanswered on this channel: no more window
                // until replies go out (the peer waits, nothing is dropped).
                let busy =
                    channel.service.is_app() && channel.owed.len() >= self.config.max_outstanding;
                if !channel.announced || !self.greeting_sent || busy {
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

    pub(super) fn mark_ready(&mut self, number: u32) {
        if self.ready_set.insert(number) {
            self.ready.push_back(number);
        }
    }

    pub(super) fn channel_mut(&mut self, number: u32) -> &mut Channel {
        self.channels.get_mut(&number).expect("channel exists")
    }
}

/// Writes the next frame of `channel`'s front message; returns its
/// completion action if the message is now fully written.
pub(super) fn write_frame(
    channel: &mut Channel,
    max_frame: u32,
    out: &mut BytesMut,
) -> Option<OnSent> {
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
