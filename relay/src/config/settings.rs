//! The typed settings a valid `imxpd.toml` becomes: [`Config`] and the
//! settings of its sections. Every value is checked and defaulted (see
//! `validate`), so the rest of the relay reads them without further checks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The access service's site policy (`[access]`, RFC 3341).
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// Actors that may send data (`core:data`) to every local endpoint
    /// unless its owner set an entry that says otherwise.
    pub default_data: Vec<imxp_apex::access::Actor>,
    /// Endpoints that may query, get and set every local owner's entries.
    pub admins: Vec<imxp_apex::Endpoint>,
}

/// TLS settings.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain of this relay.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// PEM trust anchors for peers and clients (`None`: system roots).
    pub ca: Option<PathBuf>,
    /// Refuse sessions that do not tune to TLS.
    pub required: bool,
}

/// Relay-relay policy (`[mesh]`).
#[derive(Debug, Clone, Default)]
pub struct MeshPolicy {
    /// Domains (lowercase) whose relays may hand us datagrams for third
    /// domains, which we then forward (`[mesh] trusted_intermediaries`).
    /// Everyone else may only send to domains we serve (no open relay).
    pub trusted_intermediaries: Vec<String>,
    /// **Insecure, test meshes only**: accept `bind` on mesh sessions
    /// without TLS, unauthenticated (`[mesh] insecure_unauthenticated_bind`).
    /// Only valid with `[tls] required = false`.
    pub insecure_unauthenticated_bind: bool,
}

impl MeshPolicy {
    /// True if relays bound as `domain` may relay to third domains.
    pub fn is_trusted_intermediary(&self, domain: &str) -> bool {
        self.trusted_intermediaries
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// Queue and delivery settings.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// How long a datagram may stay queued before it fails.
    pub max_lifetime: Duration,
    /// Shortest retry interval.
    pub min_backoff: Duration,
    /// Longest retry interval.
    pub max_backoff: Duration,
    /// Deliveries in flight at once, overall.
    pub max_in_flight: usize,
    /// Deliveries in flight at once per destination domain.
    pub max_per_destination: usize,
    /// Time allowed to connect, tune and bind to a next relay.
    pub connect_timeout: Duration,
}

/// Limits of `hold4Endpoint` (RFC 3342 §3, §7: a denial-of-service vector).
#[derive(Debug, Clone)]
pub struct HoldSettings {
    /// Datagrams held for one endpoint at most.
    pub max_per_endpoint: u64,
    /// Content bytes held for one endpoint at most.
    pub max_bytes_per_endpoint: u64,
    /// How long a recipient stays held when no `dataTiming` deadline bounds
    /// the datagram.
    pub default_ttl: Duration,
}

/// Limits of the presence service (RFC 3343; `[presence]`).
#[derive(Debug, Clone)]
pub struct PresenceSettings {
    /// Subscriptions in progress one subscriber endpoint may hold (beyond
    /// it: 550).
    pub max_subscriptions_per_subscriber: usize,
    /// Watches in progress on one presentity (beyond it: 550).
    pub max_watchers_per_presentity: usize,
    /// `publish` operations one publisher may make per minute (beyond it:
    /// 450, try later).
    pub max_publishes_per_minute: u32,
    /// `subscribe`/`watch` operations accepted per minute from the
    /// endpoints of one domain (beyond it: 450), so that one domain's
    /// flood leaves the service to the others.
    pub max_subscribes_per_domain_per_minute: u32,
    /// Largest presence entry, in octets of its XML (beyond it: 550).
    pub max_entry_size: usize,
    /// Longest subscription or watch; a longer `duration` is shortened.
    pub max_duration: Duration,
}

/// Per-session and per-peer limits (`[limits]`, besides
/// `max_message_size` and `max_sessions`).
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Receive window per channel (RFC 3081 §3.1), which is also the
    /// largest frame accepted: a frame beyond the window ends the session.
    pub window: u32,
    /// Channels per session, channel 0 and tuning channels included
    /// (a `<start>` beyond it: 550).
    pub max_channels: usize,
    /// MSGs received on a channel and not yet answered before its window
    /// stops reopening.
    pub max_outstanding_per_channel: usize,
    /// Concurrent sessions from one peer IP address, an IPv6 /64 counting
    /// as one (beyond it: 421).
    pub max_sessions_per_address: usize,
    /// Endpoints attached over one edge session (beyond it: 554).
    pub max_attachments_per_session: usize,
    /// Time allowed for the peer's greeting.
    pub greeting_timeout: Duration,
    /// Time allowed for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Release a session idle this long (`None`: never).
    pub idle_timeout: Option<Duration>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            window: 256 * 1024,
            max_channels: 32,
            max_outstanding_per_channel: 64,
            max_sessions_per_address: 100,
            max_attachments_per_session: 16,
            greeting_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(600)),
        }
    }
}

/// Options the relay adds to data from endpoints (`[options]`).
#[derive(Debug, Clone, Default)]
pub struct OptionSettings {
    /// `default_hops`: the `dataHopping` budget added to data that carries
    /// none (RFC 3342 §4); 0 adds nothing.
    pub default_hops: u8,
    /// `ingress`: options added to data that carries none of the same name.
    pub ingress: Vec<imxp_apex::ApexOption>,
}

/// The report service (`[reports]`, RFC 3340 §6.2).
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// `max_per_originator_per_minute`: reports generated for one
    /// originator per minute; beyond, they are dropped (counted and
    /// logged). 0 turns reports off.
    pub max_per_originator_per_minute: u32,
}

/// One gateway (`[[gateway]]`): a domain this relay serves whose
/// recipients live in another IM system, reached as an XMPP external
/// component (XEP-0114).
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// The APEX domain of the gateway (also in [`Config::domains`]).
    pub domain: String,
    /// The XMPP server's component listener, `host:port`.
    pub server: String,
    /// The component's JID (its domain at the XMPP server).
    pub component: String,
    /// The file holding the shared secret (never logged).
    pub secret_file: PathBuf,
    /// Largest stanza accepted from XMPP, in octets (beyond it:
    /// `policy-violation`).
    pub max_stanza_size: usize,
    /// Messages accepted per minute from the users of one XMPP domain
    /// (beyond it: `resource-constraint`).
    pub max_per_domain_per_minute: u32,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
}

/// Which spool engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolEngine {
    /// redb (default).
    Redb,
    /// sled 0.34.
    Sled,
}

/// How log lines are written (`[log] format`; `imxpd --log-format`
/// overrides it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines with `key=value` fields (the default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Domains this relay serves (lowercase).
    pub domains: Vec<String>,
    /// State directory: spool, admin socket, generated files.
    pub state_dir: PathBuf,
    /// Run even as root (`[relay] allow_root`, default false): only where
    /// root is already unprivileged, e.g. a user-namespaced container.
    pub allow_root: bool,
    /// Edge listen addresses.
    pub edge: Vec<SocketAddr>,
    /// Mesh listen addresses.
    pub mesh: Vec<SocketAddr>,
    /// TLS.
    pub tls: TlsSettings,
    /// The users file.
    pub users: PathBuf,
    /// Trust anchors for endpoints' TLS client certificates (`[auth]
    /// client_ca`); `None`: edge sessions ask for no client certificate
    /// and SASL EXTERNAL is never offered.
    pub client_ca: Option<PathBuf>,
    /// SASL ANONYMOUS is offered for read-only sessions (`[auth] anonymous
    /// = "read-only"`; default `"refuse"`).
    pub anonymous_read_only: bool,
    /// Mesh policy.
    pub mesh_policy: MeshPolicy,
    /// Static routes: domain (lowercase) → `host:port`.
    pub routes: Vec<(String, String)>,
    /// DNS nameservers (empty: the system resolver).
    pub nameservers: Vec<SocketAddr>,
    /// Fall back to A/AAAA on port 912 when a domain has no SRV records.
    pub implicit_fallback: bool,
    /// DNS query timeout.
    pub dns_timeout: Duration,
    /// Spool engine.
    pub spool_engine: SpoolEngine,
    /// Queue settings.
    pub queue: QueueSettings,
    /// Largest BEEP message accepted.
    pub max_message_size: usize,
    /// Concurrent sessions, all listeners together.
    pub max_sessions: usize,
    /// `hold4Endpoint` limits.
    pub hold: HoldSettings,
    /// The other limits.
    pub limits: LimitSettings,
    /// Options added at ingress.
    pub options: OptionSettings,
    /// The report service.
    pub reports: ReportSettings,
    /// Access service policy.
    pub access: AccessSettings,
    /// Presence service limits.
    pub presence: PresenceSettings,
    /// Where the Prometheus metrics are served (`[metrics] listen`);
    /// `None`: nowhere (the default).
    pub metrics_listen: Option<SocketAddr>,
    /// How log lines are written (`[log] format`).
    pub log_format: LogFormat,
    /// How long a stopping relay lets deliveries in flight finish
    /// (`[relay] drain_timeout`, default 30 s).
    pub drain_timeout: Duration,
    /// The file it was read from (what a reload reads again); `None`
    /// when it was parsed from text.
    pub source: Option<PathBuf>,
    /// Gateways to other IM systems.
    pub gateways: Vec<GatewaySettings>,
}

impl Config {
    /// True if this relay serves `domain` (case-insensitive).
    pub fn serves(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// The gateway serving `domain`, if it is one.
    pub fn gateway(&self, domain: &str) -> Option<&GatewaySettings> {
        self.gateways
            .iter()
            .find(|g| g.domain.eq_ignore_ascii_case(domain))
    }
}
