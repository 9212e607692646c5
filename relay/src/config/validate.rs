//! Validation, one function per section of `imxpd.toml`: each turns its
//! section as written ([`super::file`]) into typed settings
//! ([`super::settings`]) or an error naming the offending key. Sections
//! are checked in the order of [`Config::validate`], so the first error
//! reported for a file with several is always the same.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{
    AccessSection, AuthSection, File, GatewaySection, HoldSection, LimitsSection, LogSection,
    MeshSection, MetricsSection, OptionsSection, PresenceSection, QueueSection, ReportsSection,
    SpoolSection, TlsSection,
};
use super::values::{check_domain, check_host_port, parse_duration};
use super::{
    AccessSettings, Config, ConfigError, EDGE_PORT, GatewaySettings, HoldSettings, LimitSettings,
    LogFormat, MESH_PORT, MeshPolicy, OptionSettings, PresenceSettings, QueueSettings,
    ReportSettings, SpoolEngine, TlsSettings, invalid,
};

/// Resolves a path of the file relative to the file's directory.
type Resolve<'a> = &'a dyn Fn(PathBuf) -> PathBuf;

impl Config {
    /// Checks every section (in a fixed order: the first error is
    /// returned) and assembles the configuration.
    pub(super) fn validate(file: File, base: &Path) -> Result<Self, ConfigError> {
        let resolve = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let domains = domains(&file.relay.domains)?;
        let state_dir = resolve(
            file.relay
                .state_dir
                .ok_or_else(|| invalid("relay.state_dir", "required"))?,
        );
        let edge = listen_addresses(file.listen.edge, EDGE_PORT, "listen.edge")?;
        let mesh = listen_addresses(file.listen.mesh, MESH_PORT, "listen.mesh")?;
        let tls = tls(file.tls, &resolve)?;
        let Auth {
            users,
            client_ca,
            anonymous_read_only,
        } = auth(file.auth, &state_dir, &resolve)?;
        let mesh_policy = mesh_policy(file.mesh, &tls)?;
        let routes = routes(&file.routes)?;
        let nameservers = nameservers(file.dns.nameservers)?;
        let spool_engine = spool_engine(&file.spool)?;
        let queue = queue(file.queue)?;
        let max_message_size = max_message_size(&file.limits)?;
        let hold = hold(file.hold)?;
        let max_sessions = max_sessions(&file.limits)?;
        let limits = limits(&file.limits)?;
        let options = options(file.options)?;
        let reports = reports(&file.reports);
        let access = access_settings(file.access)?;
        let presence = presence(file.presence)?;
        let metrics_listen = metrics_listen(&file.metrics)?;
        let log_format = log_format(&file.log)?;
        let drain_timeout = duration(
            file.relay.drain_timeout,
            "relay.drain_timeout",
            Duration::from_secs(30),
        )?;
        let gateways = gateways(file.gateway, &domains, &resolve)?;
        Ok(Self {
            gateways,
            source: None,
            metrics_listen,
            log_format,
            drain_timeout,
            access,
            presence,
            hold,
            options,
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
            dns_timeout: dns_timeout(file.dns.timeout)?,
            spool_engine,
            queue,
            max_message_size,
            max_sessions,
            limits,
        })
    }
}

/// A duration key: `default` when absent.
fn duration(value: Option<String>, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    value.map_or(Ok(default), |v| {
        parse_duration(&v).map_err(|m| invalid(key, m))
    })
}

/// `[relay] domains`: at least one, each a valid domain; lowercased.
fn domains(values: &[String]) -> Result<Vec<String>, ConfigError> {
    if values.is_empty() {
        return Err(invalid("relay.domains", "at least one domain is required"));
    }
    let mut domains = Vec::new();
    for (i, domain) in values.iter().enumerate() {
        check_domain(domain).map_err(|m| invalid(format!("relay.domains[{i}]"), m))?;
        domains.push(domain.to_ascii_lowercase());
    }
    Ok(domains)
}

/// `[tls]`: a certificate and its key together, and required unless
/// `required = false`.
fn tls(section: TlsSection, resolve: Resolve<'_>) -> Result<TlsSettings, ConfigError> {
    let tls = TlsSettings {
        cert: section.cert.map(resolve),
        key: section.key.map(resolve),
        ca: section.ca.map(resolve),
        required: section.required.unwrap_or(true),
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
    Ok(tls)
}

/// `[auth]` validated: fields of [`Config`] of the same names.
struct Auth {
    users: PathBuf,
    client_ca: Option<PathBuf>,
    anonymous_read_only: bool,
}

/// `[auth]`: the users file (default `STATE/users.toml`), the client CA,
/// and whether SASL ANONYMOUS is offered read-only.
fn auth(section: AuthSection, state_dir: &Path, resolve: Resolve<'_>) -> Result<Auth, ConfigError> {
    let users = section
        .users
        .map_or_else(|| state_dir.join("users.toml"), resolve);
    let client_ca = section.client_ca.map(resolve);
    let anonymous_read_only = match section.anonymous.as_deref().unwrap_or("refuse") {
        "refuse" => false,
        "read-only" => true,
        other => {
            return Err(invalid(
                "auth.anonymous",
                format!("{other:?} is not \"refuse\" or \"read-only\""),
            ));
        }
    };
    Ok(Auth {
        users,
        client_ca,
        anonymous_read_only,
    })
}

/// `[mesh]`: trusted intermediaries (valid domains, lowercased), and the
/// insecure unauthenticated bind, refused while TLS is required.
fn mesh_policy(section: MeshSection, tls: &TlsSettings) -> Result<MeshPolicy, ConfigError> {
    let mut trusted_intermediaries = Vec::new();
    for (i, domain) in section
        .trusted_intermediaries
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        check_domain(domain)
            .map_err(|m| invalid(format!("mesh.trusted_intermediaries[{i}]"), m))?;
        trusted_intermediaries.push(domain.to_ascii_lowercase());
    }
    let insecure_unauthenticated_bind = section.insecure_unauthenticated_bind.unwrap_or(false);
    if insecure_unauthenticated_bind && tls.required {
        return Err(invalid(
            "mesh.insecure_unauthenticated_bind",
            "only allowed with tls.required = false (insecure test meshes)",
        ));
    }
    Ok(MeshPolicy {
        trusted_intermediaries,
        insecure_unauthenticated_bind,
    })
}

/// `[routes]`: domain = `"host:port"`.
fn routes(table: &toml::Table) -> Result<Vec<(String, String)>, ConfigError> {
    let mut routes = Vec::new();
    for (domain, target) in table {
        let key = format!("routes.\"{domain}\"");
        check_domain(domain).map_err(|m| invalid(&key, m))?;
        let target = target
            .as_str()
            .ok_or_else(|| invalid(&key, "must be a \"host:port\" string"))?;
        check_host_port(target).map_err(|m| invalid(&key, m))?;
        routes.push((domain.to_ascii_lowercase(), target.to_owned()));
    }
    Ok(routes)
}

/// `[dns] nameservers`: IP addresses, port 53 unless given.
fn nameservers(values: Option<Vec<String>>) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut nameservers = Vec::new();
    for (i, server) in values.unwrap_or_default().iter().enumerate() {
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
    Ok(nameservers)
}

/// `[dns] timeout` (checked last, after every other section).
fn dns_timeout(value: Option<String>) -> Result<Duration, ConfigError> {
    duration(value, "dns.timeout", Duration::from_secs(5))
}

/// `[spool] engine`: redb (default) or sled.
fn spool_engine(section: &SpoolSection) -> Result<SpoolEngine, ConfigError> {
    match section.engine.as_deref().unwrap_or("redb") {
        "redb" => Ok(SpoolEngine::Redb),
        "sled" => Ok(SpoolEngine::Sled),
        other => Err(invalid(
            "spool.engine",
            format!("{other:?} is not an engine (redb or sled)"),
        )),
    }
}

/// `[queue]`: lifetime, backoff bounds (min ≤ max), concurrency (≥ 1).
fn queue(section: QueueSection) -> Result<QueueSettings, ConfigError> {
    let queue = QueueSettings {
        max_lifetime: duration(
            section.max_lifetime,
            "queue.max_lifetime",
            Duration::from_secs(24 * 3600),
        )?,
        min_backoff: duration(
            section.min_backoff,
            "queue.min_backoff",
            Duration::from_secs(30),
        )?,
        max_backoff: duration(
            section.max_backoff,
            "queue.max_backoff",
            Duration::from_secs(3600),
        )?,
        max_in_flight: section.max_in_flight.unwrap_or(256),
        max_per_destination: section.max_per_destination.unwrap_or(64),
        connect_timeout: duration(
            section.connect_timeout,
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
    Ok(queue)
}

/// `[limits] max_message_size`: at least 4096 octets.
fn max_message_size(section: &LimitsSection) -> Result<usize, ConfigError> {
    let max_message_size = section.max_message_size.unwrap_or(16 * 1024 * 1024);
    if max_message_size < 4096 {
        return Err(invalid("limits.max_message_size", "must be at least 4096"));
    }
    Ok(max_message_size)
}

/// `[hold]`: the `hold4Endpoint` limits (RFC 3342 §3, §7), none of them 0.
fn hold(section: HoldSection) -> Result<HoldSettings, ConfigError> {
    let hold = HoldSettings {
        max_per_endpoint: section.max_per_endpoint.unwrap_or(1000),
        max_bytes_per_endpoint: section.max_bytes_per_endpoint.unwrap_or(64 * 1024 * 1024),
        default_ttl: duration(
            section.default_ttl,
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
    Ok(hold)
}

/// `[presence]`: the presence service's limits, none of them 0.
fn presence(section: PresenceSection) -> Result<PresenceSettings, ConfigError> {
    let settings = PresenceSettings {
        max_subscriptions_per_subscriber: section.max_subscriptions_per_subscriber.unwrap_or(1000),
        max_watchers_per_presentity: section.max_watchers_per_presentity.unwrap_or(100),
        max_publishes_per_minute: section.max_publishes_per_minute.unwrap_or(60),
        max_subscribes_per_domain_per_minute: section
            .max_subscribes_per_domain_per_minute
            .unwrap_or(6000),
        max_entry_size: section.max_entry_size.unwrap_or(16 * 1024),
        max_duration: duration(
            section.max_duration,
            "presence.max_duration",
            Duration::from_secs(7 * 24 * 3600),
        )?,
    };
    for (key, value) in [
        (
            "presence.max_subscriptions_per_subscriber",
            settings.max_subscriptions_per_subscriber as u64,
        ),
        (
            "presence.max_watchers_per_presentity",
            settings.max_watchers_per_presentity as u64,
        ),
        (
            "presence.max_publishes_per_minute",
            u64::from(settings.max_publishes_per_minute),
        ),
        (
            "presence.max_subscribes_per_domain_per_minute",
            u64::from(settings.max_subscribes_per_domain_per_minute),
        ),
        ("presence.max_entry_size", settings.max_entry_size as u64),
    ] {
        if value == 0 {
            return Err(invalid(key, "must be at least 1"));
        }
    }
    if settings.max_duration.as_secs() == 0 {
        return Err(invalid("presence.max_duration", "must be at least 1s"));
    }
    Ok(settings)
}

/// `[[gateway]]`: each of kind `xmpp-component`, for a domain of
/// `[relay] domains` (one gateway per domain), with the XMPP server's
/// component address, the component's name and a secret file that exists.
fn gateways(
    sections: Vec<GatewaySection>,
    domains: &[String],
    resolve: Resolve<'_>,
) -> Result<Vec<GatewaySettings>, ConfigError> {
    let mut gateways: Vec<GatewaySettings> = Vec::new();
    for (i, section) in sections.into_iter().enumerate() {
        let key = |name: &str| format!("gateway[{i}].{name}");
        match section.kind.as_deref() {
            Some("xmpp-component") => {}
            Some(other) => {
                return Err(invalid(
                    key("kind"),
                    format!("{other:?} is not a gateway kind (the one kind is \"xmpp-component\")"),
                ));
            }
            None => return Err(invalid(key("kind"), "required (\"xmpp-component\")")),
        }
        let domain = section
            .domain
            .ok_or_else(|| invalid(key("domain"), "required"))?
            .to_ascii_lowercase();
        if !domains.contains(&domain) {
            return Err(invalid(
                key("domain"),
                format!("{domain} is not one of [relay] domains"),
            ));
        }
        if gateways.iter().any(|g| g.domain == domain) {
            return Err(invalid(
                key("domain"),
                format!("{domain} has a gateway already"),
            ));
        }
        let server = section
            .server
            .ok_or_else(|| invalid(key("server"), "required (host:port)"))?;
        check_host_port(&server).map_err(|m| invalid(key("server"), m))?;
        let component = section
            .component
            .ok_or_else(|| invalid(key("component"), "required"))?
            .to_ascii_lowercase();
        check_domain(&component).map_err(|m| invalid(key("component"), m))?;
        let secret_file = resolve(
            section
                .secret_file
                .ok_or_else(|| invalid(key("secret_file"), "required"))?,
        );
        if !secret_file.is_file() {
            return Err(invalid(
                key("secret_file"),
                format!("{} is not a readable file", secret_file.display()),
            ));
        }
        let max_stanza_size = section.max_stanza_size.unwrap_or(64 * 1024);
        if max_stanza_size < 1024 {
            return Err(invalid(key("max_stanza_size"), "must be at least 1024"));
        }
        let max_per_domain_per_minute = section.max_per_domain_per_minute.unwrap_or(6000);
        if max_per_domain_per_minute == 0 {
            return Err(invalid(
                key("max_per_domain_per_minute"),
                "must be at least 1",
            ));
        }
        let max_backoff = duration(
            section.max_backoff,
            &key("max_backoff"),
            Duration::from_secs(30),
        )?;
        if max_backoff < Duration::from_millis(100) {
            return Err(invalid(key("max_backoff"), "must be at least 100ms"));
        }
        gateways.push(GatewaySettings {
            domain,
            server,
            component,
            secret_file,
            max_stanza_size,
            max_per_domain_per_minute,
            max_backoff,
        });
    }
    Ok(gateways)
}

/// `[limits] max_sessions`: at least 1.
fn max_sessions(section: &LimitsSection) -> Result<usize, ConfigError> {
    let max_sessions = section.max_sessions.unwrap_or(10_000);
    if max_sessions == 0 {
        return Err(invalid("limits.max_sessions", "must be at least 1"));
    }
    Ok(max_sessions)
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

/// `[options]`: the `dataHopping` budget (RFC 3342 §4: 0..255) and the
/// ingress options, each a valid APEX option.
fn options(section: OptionsSection) -> Result<OptionSettings, ConfigError> {
    let default_hops = section.default_hops.unwrap_or(0);
    let default_hops = u8::try_from(default_hops)
        .map_err(|_| invalid("options.default_hops", "must be 0..255 (RFC 3342 HOPS)"))?;
    let mut ingress = Vec::new();
    for (i, text) in section.ingress.unwrap_or_default().iter().enumerate() {
        let option = imxp_apex::ApexOption::parse(text.as_bytes())
            .map_err(|e| invalid(format!("options.ingress[{i}]"), e.to_string()))?;
        ingress.push(option);
    }
    Ok(OptionSettings {
        default_hops,
        ingress,
    })
}

/// `[reports]`.
fn reports(section: &ReportsSection) -> ReportSettings {
    ReportSettings {
        max_per_originator_per_minute: section.max_per_originator_per_minute.unwrap_or(60),
    }
}

/// `[metrics] listen`: an `address:port` (absent: no metrics endpoint).
fn metrics_listen(section: &MetricsSection) -> Result<Option<SocketAddr>, ConfigError> {
    section
        .listen
        .as_ref()
        .map(|value| {
            value.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "metrics.listen",
                    format!("{value:?} is not an address:port (e.g. \"127.0.0.1:9464\")"),
                )
            })
        })
        .transpose()
}

/// `[log] format`: `"text"` (default) or `"json"`.
fn log_format(section: &LogSection) -> Result<LogFormat, ConfigError> {
    match section.format.as_deref() {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(invalid(
            "log.format",
            format!("{other:?} is neither \"text\" nor \"json\""),
        )),
    }
}

/// `[listen] edge` or `mesh`: `address:port` or a bare address (the
/// default port); absent, every IPv4 address.
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
