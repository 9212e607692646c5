//! Spool records: the envelope with per-recipient state, and their
//! versioned encoding.
//!
//! Every stored value is `[version: u8] ‖ CBOR payload` (ciborium). CBOR is
//! self-describing, so new optional fields with `#[serde(default)]` need no
//! version bump; a change that old readers cannot take bumps
//! [`ENVELOPE_VERSION`] and [`decode_envelope`] migrates the old version in
//! memory. A value that cannot be decoded is moved to the quarantine tree by
//! the spool, never deleted.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The current envelope encoding version.
pub const ENVELOPE_VERSION: u8 = 1;
/// The current quarantine-entry encoding version.
pub const QUARANTINE_VERSION: u8 = 1;

// ===== DatagramId =====

/// A datagram id: 16 bytes, shown as 32 lowercase hex digits.
///
/// [`DatagramId::generate`] makes time-ordered ids (48-bit milliseconds since
/// the UNIX epoch, then 80 random bits, like a ULID). An id derived from the
/// sender's identity for a datagram is also its dedup key
/// ([`crate::IdOrigin`]): a relay that receives a datagram carrying an
/// upstream id derives the spool id from it (from the peer and the
/// upstream id), so a resend after a lost answer maps to the same id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct DatagramId([u8; 16]);

impl DatagramId {
    /// Length of the binary form.
    pub const LEN: usize = 16;

    /// A new time-ordered random id.
    pub fn generate(now_ms: u64) -> Self {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&now_ms.to_be_bytes()[2..]);
        rand::fill(&mut b[6..]);
        Self(b)
    }

    /// The id with these bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The binary form (the key in the spool's trees).
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses the binary form from a key slice.
    pub fn from_slice(s: &[u8]) -> Option<Self> {
        Some(Self(s.try_into().ok()?))
    }
}

impl fmt::Display for DatagramId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DatagramId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatagramId({self})")
    }
}

/// A string that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid datagram id {0:?}: expected 32 hex digits")]
pub struct InvalidId(pub String);

impl FromStr for DatagramId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidId(s.to_owned());
        if s.len() != 32 || !s.is_ascii() {
            return Err(bad());
        }
        let mut b = [0u8; 16];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(b))
    }
}

impl From<DatagramId> for String {
    fn from(id: DatagramId) -> Self {
        id.to_string()
    }
}

impl TryFrom<String> for DatagramId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

// ===== Failure =====

/// Why a delivery attempt failed (persisted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
#[non_exhaustive]
pub enum FailureKind {
    /// Name resolution failed.
    Dns,
    /// The connection could not be made or broke.
    Connect,
    /// TLS failed.
    Tls,
    /// The next hop answered with an APEX error reply.
    Reply {
        /// The APEX reply code (RFC 3340 §10.2).
        code: u16,
    },
    /// Local policy refused it (access, limits).
    Policy,
    /// The deadline passed (maximum lifetime or `noLaterThan`).
    Expired,
    /// The hop budget (`dataHopping`) ran out.
    HopLimit,
    /// A local I/O error.
    Io,
    /// An operator acted on it.
    Admin,
    /// Anything else.
    Other,
}

/// A failure: its kind and a human-readable text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The kind.
    #[serde(flatten)]
    pub kind: FailureKind,
    /// Free text, for logs and `imxp-spool show`.
    pub text: String,
}

impl Failure {
    /// A failure of `kind` with `text`.
    pub fn new(kind: FailureKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            text: text.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FailureKind::Reply { code } => write!(f, "reply {code}: {}", self.text),
            kind => {
                let name = serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                write!(f, "{name}: {}", self.text)
            }
        }
    }
}

// ===== Recipient =====

/// The state of one recipient of a datagram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum RecipientState {
    /// Waiting for its first attempt, due at `due_ms`.
    Queued {
        /// When it becomes due (ms since the epoch).
        due_ms: u64,
    },
    /// Claimed by a delivery worker since `since_ms`; reset to queued when
    /// the spool is opened after a crash.
    InFlight {
        /// When it was claimed.
        since_ms: u64,
    },
    /// The last attempt failed temporarily; retry at `next_due_ms`.
    Deferred {
        /// Number of attempts made so far.
        attempt: u32,
        /// When the next attempt is due.
        next_due_ms: u64,
        /// Why the last attempt failed.
        last_error: Failure,
    },
    /// Waiting for the endpoint to attach (`hold4Endpoint`), until the
    /// datagram expires or `until_ms`, whichever comes first.
    Held {
        /// When it started waiting.
        since_ms: u64,
        /// The hold's own time limit (the site's default hold TTL, set when
        /// no `dataTiming` deadline bounds the datagram), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
    },
    /// Delivered (to the next hop or the attached endpoint). Final.
    Delivered {
        /// When.
        at_ms: u64,
        /// The next hop or `local`, if known.
        #[serde(default)]
        via: Option<String>,
    },
    /// Failed permanently or expired. Final.
    Failed {
        /// When.
        at_ms: u64,
        /// Why.
        error: Failure,
    },
}

impl RecipientState {
    /// The state's short name (`queued`, `in-flight`, `deferred`, `held`,
    /// `delivered`, `failed`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued { .. } => StateName::Queued.as_str(),
            Self::InFlight { .. } => StateName::InFlight.as_str(),
            Self::Deferred { .. } => StateName::Deferred.as_str(),
            Self::Held { .. } => StateName::Held.as_str(),
            Self::Delivered { .. } => StateName::Delivered.as_str(),
            Self::Failed { .. } => StateName::Failed.as_str(),
        }
    }

    /// The state's name as a value.
    pub fn kind(&self) -> StateName {
        match self {
            Self::Queued { .. } => StateName::Queued,
            Self::InFlight { .. } => StateName::InFlight,
            Self::Deferred { .. } => StateName::Deferred,
            Self::Held { .. } => StateName::Held,
            Self::Delivered { .. } => StateName::Delivered,
            Self::Failed { .. } => StateName::Failed,
        }
    }

    /// Whether the state is final (delivered or failed).
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Delivered { .. } | Self::Failed { .. })
    }
}

/// The names of the recipient states, for filters and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateName {
    /// [`RecipientState::Queued`].
    Queued,
    /// [`RecipientState::InFlight`].
    InFlight,
    /// [`RecipientState::Deferred`].
    Deferred,
    /// [`RecipientState::Held`].
    Held,
    /// [`RecipientState::Delivered`].
    Delivered,
    /// [`RecipientState::Failed`].
    Failed,
}

impl StateName {
    /// All states.
    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::InFlight,
        Self::Deferred,
        Self::Held,
        Self::Delivered,
        Self::Failed,
    ];

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::InFlight => "in-flight",
            Self::Deferred => "deferred",
            Self::Held => "held",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for StateName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown state {s:?} (queued, in-flight, deferred, held, delivered, failed)"
                )
            })
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a report is owed for a recipient: a failure report for a failed
/// one, or a delivery report when [`QueueOptions::report_delivery`] is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "report")]
pub enum ReportState {
    /// No report (not failed, or the originator did not ask).
    #[default]
    None,
    /// A report is owed and not yet handed to the relay.
    Owed,
    /// Handed to the relay by a claim since `since_ms`, not yet confirmed.
    Claimed {
        /// When it was claimed.
        since_ms: u64,
    },
    /// The relay confirmed the report is queued. Final.
    Sent,
}

/// One recipient of a datagram, with its own state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The recipient endpoint (`local[/sub]@domain`).
    pub endpoint: String,
    /// Its state.
    pub state: RecipientState,
    /// Delivery attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    /// The last failure, if any (kept across requeues).
    #[serde(default)]
    pub last_error: Option<Failure>,
    /// Whether a failure report is owed, handed out or sent.
    #[serde(default)]
    pub report: ReportState,
}

impl Recipient {
    /// The endpoint's domain: what follows the last `@`, lowercased.
    pub fn domain(&self) -> String {
        domain_of(&self.endpoint)
    }
}

/// The domain of an endpoint: what follows its last `@`, lowercased (the
/// whole endpoint when it has no `@`).
pub fn domain_of(endpoint: &str) -> String {
    endpoint
        .rsplit_once('@')
        .map_or(endpoint, |(_, d)| d)
        .to_ascii_lowercase()
}

// ===== Envelope =====

/// The options of a datagram that matter to queueing (RFC 3340 §6.1 and
/// RFC 3342 options, as the relay parsed them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueOptions {
    /// `dataTiming` `noLaterThan`, as an absolute time (ms since the epoch).
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// `hold4Endpoint`: keep it for an endpoint that is not attached.
    #[serde(default)]
    pub hold_for_endpoint: bool,
    /// `dataHopping`: hops left, if limited.
    #[serde(default)]
    pub hops_left: Option<u32>,
    /// `statusRequest` transaction id, if the originator asked for status.
    #[serde(default)]
    pub status_request: Option<String>,
    /// Whether failure reports are wanted without a status request
    /// (`reportErrors`). The relay leaves this and `status_request` unset
    /// for reports, so reports never cause reports.
    #[serde(default)]
    pub report_errors: bool,
    /// When the originating relay first accepted it, if known.
    #[serde(default)]
    pub originated_ms: Option<u64>,
    /// Whether a delivered recipient owes a report too (a `statusRequest`,
    /// or a `dataTiming` `returnTrip` final-hop report): the relay decides
    /// per recipient whether one applies at this hop.
    #[serde(default)]
    pub report_delivery: bool,
    /// `dataTiming` `reportAfter`, as an absolute time (ms since the
    /// epoch): if a recipient is still waiting here then, a transient
    /// report is due ([`crate::Claim::transient_due`]). Cleared when the
    /// claim hands it out.
    #[serde(default)]
    pub report_after_ms: Option<u64>,
}

impl QueueOptions {
    /// Whether a failed recipient owes a report.
    pub fn wants_failure_report(&self) -> bool {
        self.status_request.is_some() || self.report_errors
    }
}

/// A queued datagram's envelope: everything but the content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The id (the dedup key when it was derived, [`crate::IdOrigin`]).
    pub id: DatagramId,
    /// The originator endpoint.
    pub originator: String,
    /// The recipients, each with its own state.
    pub recipients: Vec<Recipient>,
    /// Queueing options.
    pub options: QueueOptions,
    /// When this relay accepted it (ms since the epoch).
    pub queued_ms: u64,
    /// When it expires: min(queued + maximum lifetime, `deadline_ms`).
    pub expires_ms: u64,
    /// The content's size in bytes.
    pub size: u64,
    /// Put on hold by an operator (`imxp-spool hold`): not scheduled until
    /// released.
    #[serde(default)]
    pub admin_hold: bool,
    /// The spool's arrival sequence: strictly increasing in the order the
    /// spool accepted datagrams (microseconds since the epoch, bumped past
    /// the previous one). Orders the held-by-endpoint index. `0` in
    /// records written before it existed ([`Envelope::arrival_order`]
    /// falls back to `queued_ms`).
    #[serde(default)]
    pub arrival: u64,
}

impl Envelope {
    /// The due time of the envelope's entry in the due index: the earliest of
    /// its recipients' due times (queued: due; deferred: next due; held: the
    /// expiry; final with a report owed: when it ended; a transient report
    /// due at `report_after_ms` while a recipient waits), or `None` when
    /// nothing is schedulable (all in flight or final) or an operator holds it.
    pub fn due_ms(&self) -> Option<u64> {
        if self.admin_hold {
            return None;
        }
        let transient = self.options.report_after_ms.filter(|_| self.has_waiting());
        self.recipients
            .iter()
            .filter_map(|r| match (&r.state, &r.report) {
                (RecipientState::Queued { due_ms }, _) => Some(*due_ms),
                (RecipientState::Deferred { next_due_ms, .. }, _) => Some(*next_due_ms),
                (RecipientState::Held { until_ms, .. }, _) => Some(self.held_deadline(*until_ms)),
                (
                    RecipientState::Failed { at_ms, .. } | RecipientState::Delivered { at_ms, .. },
                    ReportState::Owed,
                ) => Some(*at_ms),
                _ => None,
            })
            .chain(transient)
            .min()
    }

    /// When a recipient held with this `until_ms` stops waiting: the
    /// datagram's expiry or the hold's own limit, whichever comes first.
    pub fn held_deadline(&self, until_ms: Option<u64>) -> u64 {
        until_ms.map_or(self.expires_ms, |u| u.min(self.expires_ms))
    }

    /// The position of this datagram in arrival order ([`Envelope::arrival`],
    /// or `queued_ms` in microseconds for records without it).
    pub fn arrival_order(&self) -> u64 {
        if self.arrival != 0 {
            self.arrival
        } else {
            self.queued_ms.saturating_mul(1000)
        }
    }

    /// Whether a recipient is still waiting here (queued, deferred or
    /// held).
    pub fn has_waiting(&self) -> bool {
        self.recipients.iter().any(|r| {
            matches!(
                r.state,
                RecipientState::Queued { .. }
                    | RecipientState::Deferred { .. }
                    | RecipientState::Held { .. }
            )
        })
    }

    /// Whether a claim is outstanding (a recipient in flight or a report
    /// handed out): such envelopes sit in the in-flight index.
    pub fn has_claim(&self) -> bool {
        self.recipients.iter().any(|r| {
            matches!(r.state, RecipientState::InFlight { .. })
                || matches!(r.report, ReportState::Claimed { .. })
        })
    }

    /// The endpoints with a recipient held for them (deduplicated, sorted).
    pub fn held_endpoints(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .recipients
            .iter()
            .filter(|r| matches!(r.state, RecipientState::Held { .. }))
            .map(|r| r.endpoint.as_str())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Whether nothing remains to do: every recipient is final and no report
    /// is owed or outstanding. A complete envelope is removed from the spool.
    pub fn is_complete(&self) -> bool {
        self.recipients.iter().all(|r| {
            r.state.is_final() && matches!(r.report, ReportState::None | ReportState::Sent)
        })
    }
}

// ===== Encoding =====

/// A record that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The value is empty (no version byte).
    #[error("empty record")]
    Empty,
    /// The version byte is not one this build reads.
    #[error("unknown record version {0}")]
    UnknownVersion(u8),
    /// The payload is not valid CBOR for the record type.
    #[error("undecodable record: {0}")]
    Decode(String),
    /// Encoding failed.
    #[error("unencodable record: {0}")]
    Encode(String),
}

fn encode_versioned<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(256);
    out.push(version);
    ciborium::into_writer(value, &mut out).map_err(|e| RecordError::Encode(e.to_string()))?;
    Ok(out)
}

/// Encodes an envelope as `[ENVELOPE_VERSION] ‖ CBOR`.
pub fn encode_envelope(env: &Envelope) -> Result<Vec<u8>, RecordError> {
    encode_versioned(ENVELOPE_VERSION, env)
}

/// Decodes a stored envelope, migrating older versions.
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, RecordError> {
    let (&version, payload) = bytes.split_first().ok_or(RecordError::Empty)?;
    match version {
        1 => ciborium::from_reader(payload).map_err(|e| RecordError::Decode(e.to_string())),
        v => Err(RecordError::UnknownVersion(v)),
    }
}

/// A record moved aside because it could not be read, with why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    /// The tree it came from.
    pub tree: crate::engine::Tree,
    /// Its key there.
    #[serde(with = "serde_bytes_b64")]
    pub key: Vec<u8>,
    /// Its raw value, untouched.
    #[serde(with = "serde_bytes_b64")]
    pub value: Vec<u8>,
    /// Why it was moved.
    pub reason: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// Encodes a quarantine entry.
pub fn encode_quarantine(q: &QuarantineEntry) -> Result<Vec<u8>, RecordError> {
    encode_versioned(QUARANTINE_VERSION, q)
}

/// Decodes a quarantine entry.
pub fn decode_quarantine(bytes: &[u8]) -> Result<QuarantineEntry, RecordError> {
    let (&version, payload) = bytes.split_first().ok_or(RecordError::Empty)?;
    match version {
        1 => ciborium::from_reader(payload).map_err(|e| RecordError::Decode(e.to_string())),
        v => Err(RecordError::UnknownVersion(v)),
    }
}

/// Serde helper: bytes as base64 text (JSON dumps, admin protocol).
pub mod serde_bytes_b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes bytes as base64.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    /// Deserializes base64 into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            id: DatagramId::generate(1_700_000_000_000),
            originator: "alice@a.example".into(),
            recipients: vec![
                Recipient {
                    endpoint: "bob@B.example".into(),
                    state: RecipientState::Deferred {
                        attempt: 2,
                        next_due_ms: 50,
                        last_error: Failure::new(FailureKind::Reply { code: 450 }, "busy"),
                    },
                    attempts: 2,
                    last_error: None,
                    report: ReportState::None,
                },
                Recipient {
                    endpoint: "carol/phone@c.example".into(),
                    state: RecipientState::Held {
                        since_ms: 10,
                        until_ms: Some(70),
                    },
                    attempts: 0,
                    last_error: None,
                    report: ReportState::None,
                },
                Recipient {
                    endpoint: "dave@d.example".into(),
                    state: RecipientState::Failed {
                        at_ms: 40,
                        error: Failure::new(FailureKind::Policy, "no"),
                    },
                    attempts: 1,
                    last_error: None,
                    report: ReportState::Owed,
                },
            ],
            options: QueueOptions {
                deadline_ms: Some(99),
                status_request: Some("42".into()),
                ..Default::default()
            },
            queued_ms: 1,
            expires_ms: 99,
            size: 512,
            admin_hold: false,
            arrival: 1_000,
        }
    }

    #[test]
    fn envelope_round_trips() {
        let env = sample();
        let bytes = encode_envelope(&env).unwrap();
        assert_eq!(bytes[0], ENVELOPE_VERSION);
        assert_eq!(decode_envelope(&bytes).unwrap(), env);
    }

    #[test]
    fn bad_records_are_rejected() {
        assert!(matches!(decode_envelope(&[]), Err(RecordError::Empty)));
        assert!(matches!(
            decode_envelope(&[9, 1, 2]),
            Err(RecordError::UnknownVersion(9))
        ));
        let mut bytes = encode_envelope(&sample()).unwrap();
        bytes.truncate(bytes.len() / 2);
        assert!(matches!(
            decode_envelope(&bytes),
            Err(RecordError::Decode(_))
        ));
    }

    #[test]
    fn ids_parse_and_print() {
        let id = DatagramId::generate(0x0123_4567_89ab);
        let s = id.to_string();
        assert_eq!(s.len(), 32);
        assert!(s.starts_with("0123456789ab"));
        assert_eq!(s.parse::<DatagramId>().unwrap(), id);
        assert!("xyz".parse::<DatagramId>().is_err());
        assert!("g".repeat(32).parse::<DatagramId>().is_err());
        assert!(DatagramId::generate(1) < DatagramId::generate(2));
    }

    #[test]
    fn due_index_and_completion() {
        let mut env = sample();
        // deferred 50, held → expires 99, failed with report owed at 40
        assert_eq!(env.due_ms(), Some(40));
        env.recipients[2].report = ReportState::Sent;
        assert_eq!(env.due_ms(), Some(50));
        env.admin_hold = true;
        assert_eq!(env.due_ms(), None);
        env.admin_hold = false;
        assert_eq!(env.held_endpoints(), vec!["carol/phone@c.example"]);
        assert!(!env.is_complete());
        for r in &mut env.recipients[..2] {
            r.state = RecipientState::Delivered {
                at_ms: 5,
                via: None,
            };
        }
        assert!(env.is_complete());
        assert_eq!(env.due_ms(), None);
        assert_eq!(env.recipients[0].domain(), "b.example");
    }
}
