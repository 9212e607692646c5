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
//! [presence]                 # the presence service apex=presence@<domain>, RFC 3343
//! max_subscriptions_per_subscriber = 1000   # beyond: 550
//! max_watchers_per_presentity = 100         # beyond: 550
//! max_publishes_per_minute = 60             # per publisher; beyond: 450
//! max_subscribes_per_domain_per_minute = 6000  # subscribe+watch per originating domain; beyond: 450
//! max_entry_size = 16384                    # octets of a presence entry; beyond: 550
//! max_duration = "7d"                       # longer subscriptions are shortened
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

// Layout: `file` holds the file as written (serde), `settings` the typed
// settings it becomes, `validate` one check per section, `values` checks
// of values shared by sections (domains, host:port, durations).
mod file;
mod settings;
#[cfg(test)]
mod tests;
mod validate;
mod values;

use std::path::{Path, PathBuf};

use thiserror::Error;

use file::File;
pub use settings::{
    AccessSettings, Config, HoldSettings, LimitSettings, MeshPolicy, OptionSettings,
    PresenceSettings, QueueSettings, ReportSettings, SpoolEngine, TlsSettings,
};
pub use values::parse_duration;

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
}
