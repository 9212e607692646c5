//! A datagram's trail through the relay: one log line and one count per
//! spool transition, in the habit of Postfix's `qmgr` and `smtp` lines, so
//! that an operator greps one datagram id and reads its life.
//!
//! Every line has the same fields (docs/operations.md lists the events
//! and what each field holds for them): `event` (an [`Event`] name),
//! `id`, `originator`, `recipient`, `hop` (the next hop for a delivery:
//! `local` or `domain host[address]:port`; where a queued datagram came
//! from), `delay` (seconds since the datagram arrived here) and `status`
//! (what happened, in words: the next hop's reply, the failure). The
//! lines are written with the target `imxp_relay::trail`; the
//! `imxp_datagram_events_total` counter counts the same events.

use crate::metrics::{Metrics, label};
use imxp_spool::{DatagramId, Event};

/// One transition of a datagram, or of one of its recipients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transition<'a> {
    /// What happened.
    pub(crate) event: Event,
    /// The datagram.
    pub(crate) id: DatagramId,
    /// Its originator.
    pub(crate) originator: &'a str,
    /// The recipient concerned (for events about the whole datagram:
    /// every recipient, comma-separated).
    pub(crate) recipient: &'a str,
    /// The next hop, or where the datagram came from.
    pub(crate) hop: &'a str,
    /// Milliseconds since the datagram arrived at this relay.
    pub(crate) delay_ms: u64,
    /// What happened, in words.
    pub(crate) status: &'a str,
}

/// Logs `transition` and counts it in `metrics`.
pub(crate) fn record(metrics: &Metrics, transition: &Transition<'_>) {
    let Transition {
        event,
        id,
        originator,
        recipient,
        hop,
        delay_ms,
        status,
    } = *transition;
    metrics
        .events
        .get_or_create(&label("event", event.as_str()))
        .inc();
    let delay = delay_ms as f64 / 1000.0;
    tracing::info!(
        target: "imxp_relay::trail",
        event = event.as_str(),
        %id,
        originator,
        recipient,
        hop,
        delay,
        status,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transition_is_counted_by_its_event() {
        let metrics = Metrics::new();
        let transition = Transition {
            event: Event::Deferred,
            id: DatagramId::from_bytes([7; 16]),
            originator: "fred@a.test",
            recipient: "barney@b.test",
            hop: "b.test",
            delay_ms: 1500,
            status: "connection refused",
        };
        record(&metrics, &transition);
        record(&metrics, &transition);
        assert!(
            metrics
                .encode()
                .contains("imxp_datagram_events_total{event=\"deferred\"} 2\n")
        );
    }
}
