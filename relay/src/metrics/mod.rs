//! The relay's metrics: one `prometheus-client` registry per running
//! relay, exposed in the Prometheus/OpenMetrics text format by [`http`]
//! when `[metrics] listen` is set (docs/operations.md lists every metric).
//!
//! Counters are bumped where the events already happen: the spool
//! transitions go through [`crate::trail`] (one log line and one count
//! each), sessions and attachments in `listen/`, deliveries in flight in
//! the dispatcher, group commits through the spool's
//! [`imxp_spool::CommitObserver`]. Gauges that describe the queue as a
//! whole (depth by state, oldest age) are set from a spool scan just
//! before each scrape ([`Metrics::set_queue`]).
//!
//! Adding a metric is one line in the `metrics!` table below: its field,
//! its type, how it is made, its name and its help text.

pub(crate) mod http;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// One label: its name and value (`event="delivered"`).
pub(crate) type Label = [(&'static str, String); 1];

/// Counters by one label.
pub(crate) type Counters = Family<Label, Counter>;
/// Gauges by one label.
pub(crate) type Gauges = Family<Label, Gauge>;
/// A gauge holding a float (seconds).
pub(crate) type Seconds = Gauge<f64, AtomicU64>;
/// Histograms by one label.
pub(crate) type Histograms = Family<Label, Histogram, fn() -> Histogram>;

/// `key="value"`.
pub(crate) fn label(key: &'static str, value: impl Into<String>) -> Label {
    [(key, value.into())]
}

/// Buckets of a latency in seconds: 100 µs to ~27 s, doubling.
fn commit_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// Buckets of a group size: 1 to 4096 operations, doubling.
fn group_sizes() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 13))
}

/// Buckets of a delivery delay in seconds: 1 ms to ~3 days, by fours.
fn delivery_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 14))
}

/// Declares [`Metrics`]: each line is `field: Type = constructor, "name",
/// "help";`. The registry prefixes every name with `imxp_`, and counters
/// get `_total` appended.
macro_rules! metrics {
    ($($field:ident: $ty:ty = $make:expr, $name:literal, $help:literal;)*) => {
        /// Every metric of a running relay, registered under `imxp_`.
        pub(crate) struct Metrics {
            registry: Registry,
            $(#[doc = $help] pub(crate) $field: $ty,)*
        }

        impl Metrics {
            /// The metrics, registered.
            fn registered() -> Self {
                let mut registry = Registry::with_prefix("imxp");
                $(
                    let $field: $ty = $make;
                    registry.register($name, $help, $field.clone());
                )*
                Self { registry, $($field,)* }
            }
        }
    };
}

metrics! {
    events: Counters = Counters::default(), "datagram_events", "Spool transitions by event (queued = accepted, duplicate, refused, blocked, delivered, deferred, failed, held, expired, reported, removed); recipient events count once per recipient";
    queue_recipients: Gauges = Gauges::default(), "queue_recipients", "Recipients in the spool by state, at the last scrape";
    queue_datagrams: Gauge = Gauge::default(), "queue_datagrams", "Datagrams in the spool, at the last scrape";
    oldest_queued_age: Seconds = Seconds::default(), "oldest_queued_age_seconds", "Age of the oldest datagram with a recipient not yet final, at the last scrape (0 when none)";
    in_flight: Gauges = Gauges::default(), "deliveries_in_flight", "Delivery attempts running, by destination domain";
    sessions: Gauges = Gauges::default(), "sessions", "Inbound BEEP sessions open, by kind (edge, mesh)";
    sessions_opened: Counters = Counters::default(), "sessions_opened", "Inbound BEEP sessions admitted, by kind (edge, mesh)";
    attachments: Gauges = Gauges::default(), "attachments", "Endpoints attached (edge) and domains bound by peer relays (mesh)";
    commit_operations: Histogram = group_sizes(), "spool_commit_operations", "Operations carried by one durable spool commit (group commit size)";
    commit_seconds: Histogram = commit_seconds(), "spool_commit_seconds", "Time one durable spool commit took";
    delivery_seconds: Histograms = Histograms::new_with_constructor(delivery_seconds), "delivery_delay_seconds", "Time from arrival at this relay to delivery, by kind (local, remote)";
    tls_failures: Counters = Counters::default(), "tls_handshake_failures", "TLS handshakes that failed, by direction (inbound, outbound)";
    auth_failures: Counter = Counter::default(), "authentication_failures", "Failed SASL authentications on edge sessions";
    limit_refusals: Counters = Counters::default(), "limit_refusals", "Requests refused or dropped by a configured limit, by limit (max_sessions, max_sessions_per_address, max_attachments_per_session, reports_per_originator)";
    reloads: Counters = Counters::default(), "config_reloads", "Configuration reloads (SIGHUP), by result (applied, refused)";
    presence_operations: Counters = Counters::default(), "presence_operations", "Requests to the presence service, by operation (subscribe, watch, publish, terminate, notify, reply, unreadable), and its own work (attach, detach, expire)";
    presence_sent: Counters = Counters::default(), "presence_sent", "Datagrams the presence service queued, by element (publish, notify, terminate, reply)";
    presence_subscriptions: Gauge = Gauge::default(), "presence_subscriptions", "Presence subscriptions in progress";
    presence_watches: Gauge = Gauge::default(), "presence_watches", "Presence watches in progress";
}

/// Creates the series of `family` for each of `values` (at zero), so
/// that a dashboard or `rate()` never meets a series that appears only
/// with its first event.
fn preset<M, C: MetricConstructor<M>>(
    family: &Family<Label, M, C>,
    key: &'static str,
    values: &[&str],
) {
    for value in values {
        drop(family.get_or_create(&label(key, *value)));
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero, the series known in
    /// advance included.
    pub(crate) fn new() -> Self {
        let metrics = Self::registered();
        let events: Vec<&str> = imxp_spool::Event::ALL.iter().map(|e| e.as_str()).collect();
        preset(&metrics.events, "event", &events);
        preset(&metrics.sessions, "kind", &["edge", "mesh"]);
        preset(&metrics.sessions_opened, "kind", &["edge", "mesh"]);
        preset(&metrics.attachments, "kind", &["edge", "mesh"]);
        preset(&metrics.tls_failures, "direction", &["inbound", "outbound"]);
        preset(
            &metrics.limit_refusals,
            "limit",
            &[
                "max_sessions",
                "max_sessions_per_address",
                "max_attachments_per_session",
                "reports_per_originator",
            ],
        );
        preset(&metrics.reloads, "result", &["applied", "refused"]);
        preset(&metrics.delivery_seconds, "kind", &["local", "remote"]);
        metrics
    }

    /// The registry in the text exposition format (OpenMetrics 1.0, which
    /// Prometheus reads).
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    /// Sets the queue gauges from a scan of the spool.
    pub(crate) fn set_queue(&self, shape: &QueueShape) {
        for (state, count) in &shape.recipients {
            self.queue_recipients
                .get_or_create(&label("state", *state))
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        self.queue_datagrams
            .set(i64::try_from(shape.datagrams).unwrap_or(i64::MAX));
        self.oldest_queued_age
            .set(shape.oldest_age.map_or(0.0, |age| age.as_secs_f64()));
    }

    /// Records one group commit of the spool.
    pub(crate) fn commit(&self, sample: imxp_spool::CommitSample) {
        self.commit_operations.observe(sample.operations as f64);
        self.commit_seconds.observe(sample.duration.as_secs_f64());
    }

    /// Counts one refusal by `limit` (a configuration key's name).
    pub(crate) fn refused(&self, limit: &'static str) {
        self.limit_refusals
            .get_or_create(&label("limit", limit))
            .inc();
    }
}

/// The spool's shape at one moment, for [`Metrics::set_queue`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct QueueShape {
    /// Datagrams in the spool.
    pub(crate) datagrams: u64,
    /// Recipients by state name (every state present, zeros included).
    pub(crate) recipients: BTreeMap<&'static str, u64>,
    /// Age of the oldest datagram with a recipient not yet final.
    pub(crate) oldest_age: Option<Duration>,
}

impl QueueShape {
    /// Scans the envelopes of `spool` (never the content).
    pub(crate) fn scan(spool: &imxp_spool::Spool) -> Result<Self, imxp_spool::SpoolError> {
        let now = spool.now_ms();
        let mut shape = Self {
            recipients: imxp_spool::StateName::ALL
                .iter()
                .map(|state| (state.as_str(), 0))
                .collect(),
            ..Self::default()
        };
        let mut oldest: Option<u64> = None;
        spool.for_each(|envelope| {
            shape.datagrams += 1;
            let mut pending = false;
            for recipient in &envelope.recipients {
                *shape
                    .recipients
                    .entry(recipient.state.kind().as_str())
                    .or_default() += 1;
                pending |= !recipient.state.is_final();
            }
            if pending {
                oldest = Some(oldest.map_or(envelope.queued_ms, |o| o.min(envelope.queued_ms)));
            }
            std::ops::ControlFlow::Continue(())
        })?;
        shape.oldest_age = oldest.map(|queued| Duration::from_millis(now.saturating_sub(queued)));
        Ok(shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_counters_their_suffix() {
        let metrics = Metrics::new();
        metrics
            .events
            .get_or_create(&label("event", "queued"))
            .inc();
        metrics.refused("max_sessions");
        metrics.commit(imxp_spool::CommitSample {
            operations: 3,
            duration: Duration::from_millis(2),
        });
        metrics.set_queue(&QueueShape {
            datagrams: 2,
            recipients: [("queued", 1), ("deferred", 2)].into_iter().collect(),
            oldest_age: Some(Duration::from_secs(90)),
        });
        let text = metrics.encode();
        for expected in [
            "imxp_datagram_events_total{event=\"queued\"} 1\n",
            "imxp_limit_refusals_total{limit=\"max_sessions\"} 1\n",
            "imxp_spool_commit_operations_count 1\n",
            "imxp_spool_commit_operations_sum 3.0\n",
            "imxp_queue_recipients{state=\"deferred\"} 2\n",
            "imxp_queue_datagrams 2\n",
            "imxp_oldest_queued_age_seconds 90.0\n",
            "# HELP imxp_sessions Inbound BEEP sessions open",
            "# EOF\n",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in\n{text}");
        }
    }
}
