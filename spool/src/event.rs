//! [`Event`]: the names of the transitions a datagram goes through, from
//! intake to removal, as logs record them in their `event` field (and, in
//! time, as metrics count them). One name per transition, spelled once
//! here, so that a log search or a dashboard never misses a spelling.
//!
//! Log them with `event = Event::Queued.as_str()`: the field is then the
//! same `&'static str` a string literal would give.

use std::fmt;

/// A datagram transition, as logged in the `event` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// Accepted at intake and durably queued (after the enqueue committed).
    Queued,
    /// Recognised at intake as a retransmission of a datagram seen within
    /// the dedup window (same id derived from the sender's identity for
    /// it): acknowledged, not queued again.
    Duplicate,
    /// Refused at intake (an option or policy check failed): answered with
    /// an error reply, nothing queued.
    Refused,
    /// A delivery to a local endpoint whose owner does not grant the
    /// originator `core:data` (RFC 3341): the recipient fails exactly as if
    /// the endpoint were not attached; only the log tells the difference.
    Blocked,
    /// A recipient was delivered: accepted by the next relay or by the
    /// attached endpoint.
    Delivered,
    /// A recipient's attempt failed temporarily: retried later, per the
    /// retry policy.
    Deferred,
    /// A recipient failed permanently (a report follows if the originator
    /// asked for one).
    Failed,
    /// A recipient was held for its endpoint, which is not attached
    /// (`hold4Endpoint`, RFC 3342 §3).
    Held,
    /// A recipient expired: its deadline (`dataTiming`, the hold time
    /// limit, or the maximum lifetime) passed before delivery.
    Expired,
    /// A report about a datagram was generated and queued to its
    /// originator (the report service, RFC 3340 §6.2).
    Reported,
    /// A datagram left the spool: every recipient final, no report owed.
    Removed,
    /// A record that cannot be decoded was moved to the quarantine (by the
    /// operation or read that met it); nothing is deleted.
    Quarantined,
}

impl Event {
    /// Every event, in the order of a datagram's life.
    pub const ALL: [Self; 12] = [
        Self::Queued,
        Self::Duplicate,
        Self::Refused,
        Self::Blocked,
        Self::Delivered,
        Self::Deferred,
        Self::Failed,
        Self::Held,
        Self::Expired,
        Self::Reported,
        Self::Removed,
        Self::Quarantined,
    ];

    /// The name logged in the `event` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Duplicate => "duplicate",
            Self::Refused => "refused",
            Self::Blocked => "blocked",
            Self::Delivered => "delivered",
            Self::Deferred => "deferred",
            Self::Failed => "failed",
            Self::Held => "held",
            Self::Expired => "expired",
            Self::Reported => "reported",
            Self::Removed => "removed",
            Self::Quarantined => "quarantined",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Event;

    #[test]
    fn names_are_distinct_lowercase_words() {
        let mut names: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
        assert!(
            names
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase()))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Event::ALL.len());
        assert_eq!(Event::Queued.to_string(), "queued");
    }
}
