//! `imxpd.toml` as written: one serde struct per section, every key
//! optional unless the relay cannot run without it, unknown keys refused
//! (so a typo is an error naming it). `validate` turns these into the
//! typed settings of `settings`.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) relay: RelaySection,
    #[serde(default)]
    pub(super) listen: ListenSection,
    #[serde(default)]
    pub(super) tls: TlsSection,
    #[serde(default)]
    pub(super) auth: AuthSection,
    #[serde(default)]
    pub(super) mesh: MeshSection,
    #[serde(default)]
    pub(super) routes: toml::Table,
    #[serde(default)]
    pub(super) dns: DnsSection,
    #[serde(default)]
    pub(super) spool: SpoolSection,
    #[serde(default)]
    pub(super) queue: QueueSection,
    #[serde(default)]
    pub(super) limits: LimitsSection,
    #[serde(default)]
    pub(super) access: AccessSection,
    #[serde(default)]
    pub(super) hold: HoldSection,
    #[serde(default)]
    pub(super) options: OptionsSection,
    #[serde(default)]
    pub(super) reports: ReportsSection,
    #[serde(default)]
    pub(super) presence: PresenceSection,
    #[serde(default)]
    pub(super) metrics: MetricsSection,
    #[serde(default)]
    pub(super) log: LogSection,
    #[serde(default)]
    pub(super) gateway: Vec<GatewaySection>,
}

/// One `[[gateway]]`: a domain delivered through another IM system.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GatewaySection {
    pub(super) kind: Option<String>,
    pub(super) domain: Option<String>,
    pub(super) server: Option<String>,
    pub(super) component: Option<String>,
    pub(super) secret_file: Option<PathBuf>,
    pub(super) max_stanza_size: Option<usize>,
    pub(super) max_per_domain_per_minute: Option<u32>,
    pub(super) max_backoff: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PresenceSection {
    pub(super) max_subscriptions_per_subscriber: Option<usize>,
    pub(super) max_watchers_per_presentity: Option<usize>,
    pub(super) max_publishes_per_minute: Option<u32>,
    pub(super) max_subscribes_per_domain_per_minute: Option<u32>,
    pub(super) max_entry_size: Option<usize>,
    pub(super) max_duration: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetricsSection {
    pub(super) listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogSection {
    pub(super) format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HoldSection {
    pub(super) max_per_endpoint: Option<u64>,
    pub(super) max_bytes_per_endpoint: Option<u64>,
    pub(super) default_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OptionsSection {
    pub(super) default_hops: Option<u32>,
    pub(super) ingress: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportsSection {
    pub(super) max_per_originator_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RelaySection {
    pub(super) domains: Vec<String>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) allow_root: Option<bool>,
    pub(super) drain_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListenSection {
    pub(super) edge: Option<Vec<String>>,
    pub(super) mesh: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsSection {
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
    pub(super) ca: Option<PathBuf>,
    pub(super) required: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthSection {
    pub(super) users: Option<PathBuf>,
    pub(super) client_ca: Option<PathBuf>,
    pub(super) anonymous: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MeshSection {
    pub(super) trusted_intermediaries: Option<Vec<String>>,
    pub(super) insecure_unauthenticated_bind: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DnsSection {
    pub(super) nameservers: Option<Vec<String>>,
    pub(super) implicit_fallback: Option<bool>,
    pub(super) timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SpoolSection {
    pub(super) engine: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueueSection {
    pub(super) max_lifetime: Option<String>,
    pub(super) min_backoff: Option<String>,
    pub(super) max_backoff: Option<String>,
    pub(super) max_in_flight: Option<usize>,
    pub(super) max_per_destination: Option<usize>,
    pub(super) connect_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsSection {
    pub(super) max_message_size: Option<usize>,
    pub(super) max_sessions: Option<usize>,
    pub(super) window: Option<u32>,
    pub(super) max_channels: Option<usize>,
    pub(super) max_outstanding_per_channel: Option<usize>,
    pub(super) max_sessions_per_address: Option<usize>,
    pub(super) max_attachments_per_session: Option<usize>,
    pub(super) greeting_timeout: Option<String>,
    pub(super) handshake_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AccessSection {
    pub(super) default_data: Option<Vec<String>>,
    pub(super) admins: Option<Vec<String>>,
}
