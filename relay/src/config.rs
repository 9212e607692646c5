//! `imxpd.toml`: read, validated once into typed settings. Every error names
//! the offending key (`imxpd check-config` prints them).
//!
//! ```toml
//! [relay]
//! domains = ["example.com"]
//! state_dir = "/var/lib/imxp"
//! allow_root = false         # imxpd refuses to run as root unless true
//!
//! [listen]
//! edge = ["[::]:913"]        # endpoint-relay (apex-edge), default port 913
//! mesh = ["[::]:912"]        # relay-relay (apex-mesh), default port 912
//!
//! [tls]
//! cert = "/etc/imxp/cert.pem"
//! key = "/etc/imxp/key.pem"
//! ca = "/etc/imxp/ca.pem"    # trust anchors for peers; default: system roots
//! required = true            # false: plaintext allowed (development only)
//!
//! [auth]
//! users = "/var/lib/imxp/users.toml"
//! client_ca = "/etc/imxp/clients-ca.pem" # endpoint certificates (EXTERNAL)
//! anonymous = "refuse"       # or "read-only": offer SASL ANONYMOUS
//!
//! [mesh]
//! trusted_intermediaries = ["hub.example"]  # may relay to third domains
//! # insecure_unauthenticated_bind = true    # TEST MESHES ONLY, see below
//!
//! [routes]
//! "partner.example" = "relay.partner.example:912"
//!
//! [dns]
//! nameservers = ["192.0.2.53:53"]   # default: the system resolver
//!
//! [spool]
//! engine = "redb"            # or "sled"
//!
//! [queue]
//! max_lifetime = "1d"
//!
//! [hold]                     # hold4Endpoint (RFC 3342 §3)
//! max_per_endpoint = 1000    # datagrams held for one endpoint
//! max_bytes_per_endpoint = 67108864
//! default_ttl = "1d"         # when no dataTiming deadline bounds it
//!
//! [limits]                   # every key optional; defaults shown
//! max_message_size = 16777216          # octets per BEEP message (MSG over it: 554)
//! window = 262144                      # receive window per channel = largest frame accepted
//! max_channels = 32                    # per session, channel 0 and tuning channels included
//! max_outstanding_per_channel = 64     # unanswered MSGs before the window stops
//! max_sessions = 10000                 # all listeners together (beyond: 421)
//! max_sessions_per_address = 100       # per peer IPv4 address or IPv6 /64 (beyond: 421)
//! max_attachments_per_session = 16     # edge attach beyond it: 554
//! greeting_timeout = "30s"             # the peer's BEEP greeting
//! handshake_timeout = "30s"            # the TLS handshake after <proceed/>
//! idle_timeout = "10m"                 # "0": never
//!
//! [options]                  # RFC 3340 §4.4.4.1: options added at ingress
//! default_hops = 16          # a dataHopping budget for data from endpoints
//!                            # that carry none (loop protection); 0: off
//! ingress = ["<option internal='hold4Endpoint' />"]  # added unless present
//!
//! [reports]                  # the report service apex=report@<domain>
//! max_per_originator_per_minute = 60   # beyond: dropped, counted, logged
//!
//! [access]                   # the access service, RFC 3341
//! default_data = ["*@*"]     # who may send data to a local endpoint unless
//!                            # its owner says otherwise; [] = RFC defaults
//! admins = ["postmaster@example.com"]  # may read and set anyone's entries
//! ```
//!
//! What happens when a limit is exceeded is in the README's "Limits"
//! table: a BEEP or APEX error reply, or the end of that one session;
//! never another session's, never data already accepted.
//!
//! `[access] default_data` lists actors (`*@*`, `*@example.com`,
//! `*@*.example.com`, `fred@example.com`, …) that get `core:data` on every
//! local endpoint by default; an owner's own entry for the same or a more
//! exact actor overrides it (RFC 3341 §3.1). It defaults to `["*@*"]`:
//! everyone may write to everyone unless the owner blocks them. With
//! `default_data = []` the RFC's own defaults apply, under which no
//! ordinary endpoint may send data to another until the owner allows it.
//!
//! `[hold]`: a datagram with `hold4Endpoint` whose local recipient is not
//! attached waits in the spool for that exact endpoint (subaddress
//! included). A hold that would take the endpoint past `max_per_endpoint`
//! datagrams or `max_bytes_per_endpoint` content bytes fails that
//! recipient instead (a report if the originator asked for one); a held
//! recipient without a `dataTiming` deadline fails after `default_ttl`
//! (never later than `queue.max_lifetime`).
//!
//! # Security settings
//!
//! * `[tls] required` (default `true`) applies to edge **and** mesh
//!   sessions: nothing but TLS tuning is possible before TLS (RFC 3080
//!   §3), only TLS 1.3 and 1.2 with rustls' default suites are offered,
//!   PLAIN is refused with 538 without TLS, and outbound mesh sessions
//!   fail when the next relay does not offer TLS. Certificates, keys,
//!   trust anchors and the users file are re-read on SIGHUP; sessions
//!   already open keep the material they started with, and a reload that
//!   fails is logged and changes nothing.
//! * `[tls] ca`: trust anchors for mesh peers (their client certificates
//!   and, outbound, the next relay's server certificate): the system roots
//!   by default, a private CA file for a private mesh. The next relay's
//!   certificate must name the destination domain; a peer may `bind` only
//!   domains its certificate names (537 otherwise).
//! * `[auth] client_ca`: trust anchors for endpoints' client certificates.
//!   With it, edge sessions ask for a client certificate (optional) and a
//!   verified one whose subjectAltName carries an email address offers
//!   SASL EXTERNAL as that address. Without it, EXTERNAL is never offered.
//! * `[auth] anonymous`: `"refuse"` (default: ANONYMOUS is not offered) or
//!   `"read-only"`: ANONYMOUS is offered, and such a session may open APEX
//!   channels but every `attach` (so every `data`) and `bind` on it is
//!   refused with 537 — it can learn what the relay offers, nothing more.
//! * Failed SASL exchanges are answered late: 250 ms after a peer
//!   address's first failure, doubling with each further one up to 10 s,
//!   the count halving every minute (see [`crate::auth::penalty`]).
//! * `[mesh] trusted_intermediaries`: domains whose relays (bound as that
//!   domain) may hand us datagrams for third domains, which we forward.
//!   Any other peer may only send to domains we serve (537 otherwise).
//! * `[mesh] insecure_unauthenticated_bind` (default `false`): **insecure,
//!   for test meshes only.** Accepts `bind` on mesh sessions without TLS,
//!   where nothing authenticates the peer: anyone reaching the mesh port
//!   can then claim any domain. Refused unless `[tls] required = false`.
//!   Without it, a mesh session without TLS can bind nothing (537).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// The IANA port of apex-edge (endpoint-relay).
pub const EDGE_PORT: u16 = 913;
/// The IANA port of apex-mesh (relay-relay).
pub const MESH_PORT: u16 = 912;

/// A configuration problem, naming the key.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the key and position.
        message: String,
    },
    /// A value that does not make sense.
    #[error("{key}: {message}")]
    Invalid {
        /// The key, e.g. `listen.edge[1]`.
        key: String,
        /// Why.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

// ===== the file as written =====

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    relay: RelaySection,
    #[serde(default)]
    listen: ListenSection,
    #[serde(default)]
    tls: TlsSection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    mesh: MeshSection,
    #[serde(default)]
    routes: toml::Table,
    #[serde(default)]
    dns: DnsSection,
    #[serde(default)]
    spool: SpoolSection,
    #[serde(default)]
    queue: QueueSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    access: AccessSection,
    #[serde(default)]
    hold: HoldSection,
    #[serde(default)]
    options: OptionsSection,
    #[serde(default)]
    reports: ReportsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldSection {
    max_per_endpoint: Option<u64>,
    max_bytes_per_endpoint: Option<u64>,
    default_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionsSection {
    default_hops: Option<u32>,
    ingress: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportsSection {
    max_per_originator_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelaySection {
    domains: Vec<String>,
    state_dir: Option<PathBuf>,
    allow_root: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenSection {
    edge: Option<Vec<String>>,
    mesh: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    required: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    users: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    anonymous: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeshSection {
    trusted_intermediaries: Option<Vec<String>>,
    insecure_unauthenticated_bind: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsSection {
    nameservers: Option<Vec<String>>,
    implicit_fallback: Option<bool>,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpoolSection {
    engine: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueSection {
    max_lifetime: Option<String>,
    min_backoff: Option<String>,
    max_backoff: Option<String>,
    max_in_flight: Option<usize>,
    max_per_destination: Option<usize>,
    connect_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_message_size: Option<usize>,
    max_sessions: Option<usize>,
    window: Option<u32>,
    max_channels: Option<usize>,
    max_outstanding_per_channel: Option<usize>,
    max_sessions_per_address: Option<usize>,
    max_attachments_per_session: Option<usize>,
    greeting_timeout: Option<String>,
    handshake_timeout: Option<String>,
    idle_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessSection {
    default_data: Option<Vec<String>>,
    admins: Option<Vec<String>>,
}

// ===== typed settings =====

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

/// Which spool engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolEngine {
    /// redb (default).
    Redb,
    /// sled 0.34.
    Sled,
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
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Validates configuration text; `path` names it in errors and anchors
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::validate(file, base)
    }

    fn validate(file: File, base: &Path) -> Result<Self, ConfigError> {
        let resolve = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        if file.relay.domains.is_empty() {
            return Err(invalid("relay.domains", "at least one domain is required"));
        }
        let mut domains = Vec::new();
        for (i, domain) in file.relay.domains.iter().enumerate() {
            check_domain(domain).map_err(|m| invalid(format!("relay.domains[{i}]"), m))?;
            domains.push(domain.to_ascii_lowercase());
        }
        let state_dir = resolve(
            file.relay
                .state_dir
                .ok_or_else(|| invalid("relay.state_dir", "required"))?,
        );
        let edge = listen_addresses(file.listen.edge, EDGE_PORT, "listen.edge")?;
        let mesh = listen_addresses(file.listen.mesh, MESH_PORT, "listen.mesh")?;
        let tls = TlsSettings {
            cert: file.tls.cert.map(resolve),
            key: file.tls.key.map(resolve),
            ca: file.tls.ca.map(resolve),
            required: file.tls.required.unwrap_or(true),
        };
        match (&tls.cert, &tls.key) {
            (Some(_), None) => return Err(invalid("tls.key", "required when tls.cert is set")),
            (None, Some(_)) => return Err(invalid("tls.cert", "required when tls.key is set")),
            (None, None) if tls.required => {
                return Err(invalid(
                    "tls.cert",
                    "required while tls.required is true (the default)",
                ));
            }
            _ => {}
        }
        let users = file
            .auth
            .users
            .map_or_else(|| state_dir.join("users.toml"), resolve);
        let client_ca = file.auth.client_ca.map(resolve);
        let anonymous_read_only = match file.auth.anonymous.as_deref().unwrap_or("refuse") {
            "refuse" => false,
            "read-only" => true,
            other => {
                return Err(invalid(
                    "auth.anonymous",
                    format!("{other:?} is not \"refuse\" or \"read-only\""),
                ));
            }
        };
        let mut trusted_intermediaries = Vec::new();
        for (i, domain) in file
            .mesh
            .trusted_intermediaries
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            check_domain(domain)
                .map_err(|m| invalid(format!("mesh.trusted_intermediaries[{i}]"), m))?;
            trusted_intermediaries.push(domain.to_ascii_lowercase());
        }
        let insecure_unauthenticated_bind =
            file.mesh.insecure_unauthenticated_bind.unwrap_or(false);
        if insecure_unauthenticated_bind && tls.required {
            return Err(invalid(
                "mesh.insecure_unauthenticated_bind",
                "only allowed with tls.required = false (insecure test meshes)",
            ));
        }
        let mesh_policy = MeshPolicy {
            trusted_intermediaries,
            insecure_unauthenticated_bind,
        };
        let mut routes = Vec::new();
        for (domain, target) in &file.routes {
            let key = format!("routes.\"{domain}\"");
            check_domain(domain).map_err(|m| invalid(&key, m))?;
            let target = target
                .as_str()
                .ok_or_else(|| invalid(&key, "must be a \"host:port\" string"))?;
            check_host_port(target).map_err(|m| invalid(&key, m))?;
            routes.push((domain.to_ascii_lowercase(), target.to_owned()));
        }
        let mut nameservers = Vec::new();
        for (i, server) in file.dns.nameservers.unwrap_or_default().iter().enumerate() {
            let key = format!("dns.nameservers[{i}]");
            let address = server
                .parse::<SocketAddr>()
                .or_else(|_| {
                    server
                        .parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| invalid(key, format!("{server:?} is not an IP address[:port]")))?;
            nameservers.push(address);
        }
        let spool_engine = match file.spool.engine.as_deref().unwrap_or("redb") {
            "redb" => SpoolEngine::Redb,
            "sled" => SpoolEngine::Sled,
            other => {
                return Err(invalid(
                    "spool.engine",
                    format!("{other:?} is not an engine (redb or sled)"),
                ));
            }
        };
        let duration = |value: Option<String>, key: &str, default: Duration| {
            value.map_or(Ok(default), |v| {
                parse_duration(&v).map_err(|m| invalid(key, m))
            })
        };
        let queue = QueueSettings {
            max_lifetime: duration(
                file.queue.max_lifetime,
                "queue.max_lifetime",
                Duration::from_secs(24 * 3600),
            )?,
            min_backoff: duration(
                file.queue.min_backoff,
                "queue.min_backoff",
                Duration::from_secs(30),
            )?,
            max_backoff: duration(
                file.queue.max_backoff,
                "queue.max_backoff",
                Duration::from_secs(3600),
            )?,
            max_in_flight: file.queue.max_in_flight.unwrap_or(256),
            max_per_destination: file.queue.max_per_destination.unwrap_or(64),
            connect_timeout: duration(
                file.queue.connect_timeout,
                "queue.connect_timeout",
                Duration::from_secs(30),
            )?,
        };
        if queue.min_backoff > queue.max_backoff {
            return Err(invalid(
                "queue.min_backoff",
                "must not be longer than queue.max_backoff",
            ));
        }
        if queue.max_in_flight == 0 {
            return Err(invalid("queue.max_in_flight", "must be at least 1"));
        }
        if queue.max_per_destination == 0 {
            return Err(invalid("queue.max_per_destination", "must be at least 1"));
        }
        let max_message_size = file.limits.max_message_size.unwrap_or(16 * 1024 * 1024);
        if max_message_size < 4096 {
            return Err(invalid("limits.max_message_size", "must be at least 4096"));
        }
        let hold = HoldSettings {
            max_per_endpoint: file.hold.max_per_endpoint.unwrap_or(1000),
            max_bytes_per_endpoint: file.hold.max_bytes_per_endpoint.unwrap_or(64 * 1024 * 1024),
            default_ttl: duration(
                file.hold.default_ttl,
                "hold.default_ttl",
                Duration::from_secs(24 * 3600),
            )?,
        };
        if hold.max_per_endpoint == 0 {
            return Err(invalid("hold.max_per_endpoint", "must be at least 1"));
        }
        if hold.max_bytes_per_endpoint == 0 {
            return Err(invalid("hold.max_bytes_per_endpoint", "must be at least 1"));
        }
        if hold.default_ttl.is_zero() {
            return Err(invalid("hold.default_ttl", "must be longer than 0"));
        }
        let max_sessions = file.limits.max_sessions.unwrap_or(10_000);
        if max_sessions == 0 {
            return Err(invalid("limits.max_sessions", "must be at least 1"));
        }
        let limits = limits(&file.limits)?;
        let default_hops = file.options.default_hops.unwrap_or(0);
        let default_hops = u8::try_from(default_hops)
            .map_err(|_| invalid("options.default_hops", "must be 0..255 (RFC 3342 HOPS)"))?;
        let mut ingress = Vec::new();
        for (i, text) in file.options.ingress.unwrap_or_default().iter().enumerate() {
            let option = imxp_apex::ApexOption::parse(text.as_bytes())
                .map_err(|e| invalid(format!("options.ingress[{i}]"), e.to_string()))?;
            ingress.push(option);
        }
        let reports = ReportSettings {
            max_per_originator_per_minute: file.reports.max_per_originator_per_minute.unwrap_or(60),
        };
        let access = access_settings(file.access)?;
        Ok(Self {
            access,
            hold,
            options: OptionSettings {
                default_hops,
                ingress,
            },
            reports,
            domains,
            state_dir,
            allow_root: file.relay.allow_root.unwrap_or(false),
            edge,
            mesh,
            tls,
            users,
            client_ca,
            anonymous_read_only,
            mesh_policy,
            routes,
            nameservers,
            implicit_fallback: file.dns.implicit_fallback.unwrap_or(true),
            dns_timeout: duration(file.dns.timeout, "dns.timeout", Duration::from_secs(5))?,
            spool_engine,
            queue,
            max_message_size,
            max_sessions,
            limits,
        })
    }

    /// True if this relay serves `domain` (case-insensitive).
    pub fn serves(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// `[limits]` beyond the message size and session count.
fn limits(section: &LimitsSection) -> Result<LimitSettings, ConfigError> {
    let defaults = LimitSettings::default();
    let at_least = |value: Option<usize>, key: &str, min: usize, default: usize| {
        let value = value.unwrap_or(default);
        if value < min {
            return Err(invalid(key, format!("must be at least {min}")));
        }
        Ok(value)
    };
    let duration = |value: &Option<String>, key: &str, default: Duration| {
        value.as_deref().map_or(Ok(default), |v| {
            parse_duration(v).map_err(|m| invalid(key, m))
        })
    };
    let positive = |value: Duration, key: &str| {
        if value.is_zero() {
            Err(invalid(key, "must be longer than 0"))
        } else {
            Ok(value)
        }
    };
    let window = section.window.unwrap_or(defaults.window);
    if !(4096..=0x7fff_ffff).contains(&window) {
        // RFC 3081 §3.1: 4096 is the initial window; windows are 31-bit.
        return Err(invalid(
            "limits.window",
            "must be between 4096 and 2147483647 octets",
        ));
    }
    let idle = duration(
        &section.idle_timeout,
        "limits.idle_timeout",
        Duration::from_secs(600),
    )?;
    Ok(LimitSettings {
        window,
        // Channel 0 plus at least one application channel.
        max_channels: at_least(
            section.max_channels,
            "limits.max_channels",
            2,
            defaults.max_channels,
        )?,
        max_outstanding_per_channel: at_least(
            section.max_outstanding_per_channel,
            "limits.max_outstanding_per_channel",
            1,
            defaults.max_outstanding_per_channel,
        )?,
        max_sessions_per_address: at_least(
            section.max_sessions_per_address,
            "limits.max_sessions_per_address",
            1,
            defaults.max_sessions_per_address,
        )?,
        max_attachments_per_session: at_least(
            section.max_attachments_per_session,
            "limits.max_attachments_per_session",
            1,
            defaults.max_attachments_per_session,
        )?,
        greeting_timeout: positive(
            duration(
                &section.greeting_timeout,
                "limits.greeting_timeout",
                defaults.greeting_timeout,
            )?,
            "limits.greeting_timeout",
        )?,
        handshake_timeout: positive(
            duration(
                &section.handshake_timeout,
                "limits.handshake_timeout",
                defaults.handshake_timeout,
            )?,
            "limits.handshake_timeout",
        )?,
        idle_timeout: (!idle.is_zero()).then_some(idle),
    })
}

fn access_settings(section: AccessSection) -> Result<AccessSettings, ConfigError> {
    let default_data = section
        .default_data
        .unwrap_or_else(|| vec!["*@*".to_owned()])
        .iter()
        .enumerate()
        .map(|(i, actor)| {
            imxp_apex::access::Actor::parse(actor)
                .map_err(|e| invalid(format!("access.default_data[{i}]"), e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let admins = section
        .admins
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, admin)| {
            imxp_apex::Endpoint::parse(admin)
                .map_err(|e| invalid(format!("access.admins[{i}]"), format!("{admin:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(AccessSettings {
        default_data,
        admins,
    })
}

fn listen_addresses(
    values: Option<Vec<String>>,
    default_port: u16,
    key: &str,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let Some(values) = values else {
        return Ok(vec![SocketAddr::from(([0, 0, 0, 0], default_port))]);
    };
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            value
                .parse::<SocketAddr>()
                .or_else(|_| {
                    value
                        .parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, default_port))
                })
                .map_err(|_| {
                    invalid(
                        format!("{key}[{i}]"),
                        format!("{value:?} is not an address:port"),
                    )
                })
        })
        .collect()
}

/// A domain as RFC 3340 §2.2 allows it: an FQDN or a `[literal]`.
fn check_domain(domain: &str) -> Result<(), String> {
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let ip = literal.strip_prefix("IPv6:").unwrap_or(literal);
        return ip
            .parse::<std::net::IpAddr>()
            .map(drop)
            .map_err(|_| format!("{domain:?} is not a valid domain-literal"));
    }
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!("{domain:?} is not a valid domain name"))
    }
}

fn check_host_port(target: &str) -> Result<(), String> {
    if target.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| format!("{target:?} is not host:port"))?;
    port.parse::<u16>()
        .map_err(|_| format!("{target:?} has an invalid port"))?;
    check_domain(host)
}

/// Parses `30s`, `5m`, `2h`, `1d` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 5m, 2h or 1d"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => return Ok(Duration::from_millis(number)),
        "m" => number * 60,
        "h" => number * 3600,
        "d" => number * 86_400,
        _ => return Err(format!("{text:?} has an unknown unit (ms, s, m, h, d)")),
    };
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/imxp/imxpd.toml"))
    }

    const MINIMAL: &str = r#"
        [relay]
        domains = ["Example.COM"]
        state_dir = "/var/lib/imxp"
        [tls]
        cert = "cert.pem"
        key = "key.pem"
    "#;

    #[test]
    fn minimal_config_gets_defaults() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.domains, vec!["example.com"]);
        assert_eq!(config.edge, vec!["0.0.0.0:913".parse().unwrap()]);
        assert_eq!(config.mesh, vec!["0.0.0.0:912".parse().unwrap()]);
        assert!(config.tls.required);
        assert_eq!(config.tls.cert, Some(PathBuf::from("/etc/imxp/cert.pem")));
        assert_eq!(config.users, PathBuf::from("/var/lib/imxp/users.toml"));
        assert_eq!(config.spool_engine, SpoolEngine::Redb);
        assert_eq!(config.queue.max_lifetime, Duration::from_secs(86_400));
        assert_eq!(config.hold.max_per_endpoint, 1000);
        assert_eq!(config.hold.default_ttl, Duration::from_secs(86_400));
        assert!(config.serves("EXAMPLE.com"));
        assert_eq!(config.options.default_hops, 0);
        assert!(config.options.ingress.is_empty());
        assert_eq!(config.reports.max_per_originator_per_minute, 60);
    }

    #[test]
    fn options_and_reports() {
        let config = parse(&format!(
            "{MINIMAL}[options]\ndefault_hops = 8\ningress = [\"<option internal='hold4Endpoint' />\"]\n[reports]\nmax_per_originator_per_minute = 5\n"
        ))
        .unwrap();
        assert_eq!(config.options.default_hops, 8);
        assert!(config.options.ingress[0].is_internal("hold4Endpoint"));
        assert_eq!(config.reports.max_per_originator_per_minute, 5);
    }

    #[test]
    fn full_config() {
        let config = parse(
            r#"
            [relay]
            domains = ["a.test", "[10.0.0.1]"]
            state_dir = "state"
            [listen]
            edge = ["127.0.0.1:9913", "::1"]
            mesh = []
            [tls]
            required = false
            [routes]
            "b.test" = "127.0.0.1:9912"
            "c.test" = "relay.c.test:912"
            [dns]
            nameservers = ["127.0.0.1:5353", "10.0.0.53"]
            implicit_fallback = false
            [spool]
            engine = "sled"
            [queue]
            max_lifetime = "2h"
            min_backoff = "1s"
            max_backoff = "10m"
            [hold]
            max_per_endpoint = 5
            max_bytes_per_endpoint = 4096
            default_ttl = "10m"
        "#,
        )
        .unwrap();
        assert_eq!(config.state_dir, PathBuf::from("/etc/imxp/state"));
        assert_eq!(config.edge[1], "[::1]:913".parse().unwrap());
        assert!(config.mesh.is_empty());
        assert_eq!(config.routes.len(), 2);
        assert_eq!(config.nameservers[1], "10.0.0.53:53".parse().unwrap());
        assert_eq!(config.spool_engine, SpoolEngine::Sled);
        assert_eq!(config.queue.max_backoff, Duration::from_secs(600));
        assert!(!config.implicit_fallback);
        assert_eq!(config.hold.max_per_endpoint, 5);
        assert_eq!(config.hold.max_bytes_per_endpoint, 4096);
        assert_eq!(config.hold.default_ttl, Duration::from_secs(600));
    }

    fn error_key(text: &str) -> String {
        match parse(text).unwrap_err() {
            ConfigError::Invalid { key, .. } => key,
            ConfigError::Syntax { message, .. } => message,
            other => other.to_string(),
        }
    }

    #[test]
    fn errors_name_the_key() {
        let base = "[relay]\ndomains = [\"a.test\"]\nstate_dir = \"s\"\n[tls]\nrequired = false\n";
        assert_eq!(
            error_key("[relay]\ndomains = []\nstate_dir = \"s\""),
            "relay.domains"
        );
        assert_eq!(
            error_key("[relay]\ndomains = [\"a..b\"]\nstate_dir = \"s\""),
            "relay.domains[0]"
        );
        assert_eq!(
            error_key("[relay]\ndomains = [\"a.test\"]"),
            "relay.state_dir"
        );
        assert_eq!(
            error_key("[relay]\ndomains = [\"a.test\"]\nstate_dir = \"s\""),
            "tls.cert"
        );
        assert_eq!(
            error_key(&format!("{base}[listen]\nedge = [\"nowhere\"]")),
            "listen.edge[0]"
        );
        assert_eq!(
            error_key(&format!("{base}[routes]\n\"b.test\" = \"b.test\"")),
            "routes.\"b.test\""
        );
        assert_eq!(
            error_key(&format!("{base}[spool]\nengine = \"sqlite\"")),
            "spool.engine"
        );
        assert_eq!(
            error_key(&format!("{base}[queue]\nmax_lifetime = \"forever\"")),
            "queue.max_lifetime"
        );
        assert_eq!(
            error_key(&format!("{base}[dns]\nnameservers = [\"dns.google\"]")),
            "dns.nameservers[0]"
        );
        assert_eq!(
            error_key(&format!("{base}[hold]\nmax_per_endpoint = 0")),
            "hold.max_per_endpoint"
        );
        assert_eq!(
            error_key(&format!("{base}[hold]\ndefault_ttl = \"soon\"")),
            "hold.default_ttl"
        );
        assert_eq!(
            error_key(&format!("{base}[options]\ndefault_hops = 256")),
            "options.default_hops"
        );
        assert_eq!(
            error_key(&format!(
                "{base}[options]\ningress = [\"<option internal='a' />\", \"<option />\"]"
            )),
            "options.ingress[1]"
        );
        let typo = error_key(&format!("{base}[queue]\nmax_lifetme = \"1d\""));
        assert!(typo.contains("max_lifetme"), "{typo}");
    }

    #[test]
    fn limits_have_defaults_and_name_their_keys() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.max_sessions, 10_000);
        assert_eq!(config.limits.max_channels, 32);
        assert_eq!(config.limits.window, 256 * 1024);
        assert_eq!(config.limits.idle_timeout, Some(Duration::from_secs(600)));
        let config = parse(&format!(
            "{MINIMAL}[limits]\nmax_channels = 8\nwindow = 8192\nidle_timeout = \"0\"\n\
             greeting_timeout = \"2s\"\nhandshake_timeout = \"500ms\"\n\
             max_sessions_per_address = 3\nmax_attachments_per_session = 2\n\
             max_outstanding_per_channel = 5\n"
        ))
        .unwrap();
        assert_eq!(config.limits.max_channels, 8);
        assert_eq!(config.limits.window, 8192);
        assert_eq!(config.limits.idle_timeout, None);
        assert_eq!(config.limits.greeting_timeout, Duration::from_secs(2));
        assert_eq!(config.limits.handshake_timeout, Duration::from_millis(500));
        assert_eq!(config.limits.max_sessions_per_address, 3);
        assert_eq!(config.limits.max_attachments_per_session, 2);
        assert_eq!(config.limits.max_outstanding_per_channel, 5);
        for (line, key) in [
            ("window = 100", "limits.window"),
            ("max_channels = 1", "limits.max_channels"),
            ("max_sessions = 0", "limits.max_sessions"),
            (
                "max_sessions_per_address = 0",
                "limits.max_sessions_per_address",
            ),
            (
                "max_attachments_per_session = 0",
                "limits.max_attachments_per_session",
            ),
            (
                "max_outstanding_per_channel = 0",
                "limits.max_outstanding_per_channel",
            ),
            ("greeting_timeout = \"0\"", "limits.greeting_timeout"),
            ("handshake_timeout = \"soon\"", "limits.handshake_timeout"),
            ("idle_timeout = \"1w\"", "limits.idle_timeout"),
        ] {
            assert_eq!(
                error_key(&format!("{MINIMAL}[limits]\n{line}\n")),
                key,
                "{line}"
            );
        }
    }

    #[test]
    fn access_settings() {
        let base = "[relay]\ndomains = [\"a.test\"]\nstate_dir = \"s\"\n[tls]\nrequired = false\n";
        let config = parse(base).unwrap();
        let keys: Vec<String> = config.access.default_data.iter().map(|a| a.key()).collect();
        assert_eq!(keys, ["*@*"], "everyone may write unless blocked");
        assert!(config.access.admins.is_empty());
        let config = parse(&format!(
            "{base}[access]\ndefault_data = []\nadmins = [\"postmaster@a.test\"]\n"
        ))
        .unwrap();
        assert!(config.access.default_data.is_empty());
        assert_eq!(config.access.admins[0].to_string(), "postmaster@a.test");
        let config = parse(&format!(
            "{base}[access]\ndefault_data = [\"*@*.A.test\", \"fred/*@b.test\"]\n"
        ))
        .unwrap();
        let keys: Vec<String> = config.access.default_data.iter().map(|a| a.key()).collect();
        assert_eq!(keys, ["*@*.a.test", "fred/*@b.test"]);
        assert_eq!(
            error_key(&format!(
                "{base}[access]\ndefault_data = [\"*@*\", \"fr*d@a.test\"]\n"
            )),
            "access.default_data[1]"
        );
        assert_eq!(
            error_key(&format!("{base}[access]\nadmins = [\"postmaster\"]\n")),
            "access.admins[0]"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("").is_err());
    }
}
