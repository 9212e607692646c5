//! Routing: where a destination domain's datagrams go.
//!
//! [`Router::route`] decides, in this order (docs/architecture.md, "Routing"):
//!
//! 1. a domain this relay serves → [`Route::Local`];
//! 2. a static route from the configuration (`[routes]`) → that `host:port`;
//! 3. a domain-literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) → that address on
//!    the apex-mesh port (RFC 3340 §3.1), without DNS;
//! 4. DNS SRV `_apex-mesh._tcp.<domain>`, ordered by RFC 2782 priority and
//!    weight ([`order_srv`]), each target resolved to its A/AAAA addresses;
//! 5. when the domain has no SRV records and the implicit fallback is on,
//!    the domain's own A/AAAA addresses on the mesh port (RFC 3861 §4).
//!
//! Failures are typed ([`RouteError`]); [`RouteError::is_permanent`] separates
//! what is worth retrying (DNS timeout, SERVFAIL) from what is not (no such
//! domain, no service).
//!
//! The resolver is hickory-resolver over UDP and TCP only: no DNS over TLS
//! or HTTPS, so it brings no second rustls crypto provider.

mod error;
mod name;
mod srv;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::rdata::CNAME;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use rand::Rng as _;
use tokio::task::JoinSet;

pub use error::RouteError;
pub use srv::{SrvRecord, order_srv};

use name::{Domain, StaticHost, parse_host_port};

/// The IANA port of apex-mesh (RFC 3340 §8.2), used for domain-literals and
/// the implicit SRV fallback unless configured otherwise.
pub const APEX_MESH_PORT: u16 = 912;

/// The SRV service and protocol labels prefixed to a domain for relay-to-relay
/// routing (RFC 3340 §3.1).
pub const MESH_SRV_PREFIX: &str = "_apex-mesh._tcp";

/// How many CNAMEs an SRV lookup follows before giving up.
const MAX_CNAME_HOPS: usize = 8;

/// One host to try for a remote domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name (without trailing dot) or, for a domain-literal or a static
    /// route given as an address, the IP address as text. The mesh TLS
    /// check is made against the destination domain, not this name.
    pub host: String,
    /// TCP port to connect to.
    pub port: u16,
    /// The host's addresses, in the order to try them (AAAA before A);
    /// never empty.
    pub addresses: Vec<IpAddr>,
}

/// Where a domain's datagrams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This relay serves the domain: deliver locally.
    Local,
    /// Relay to another relay: try the targets in order until one accepts
    /// (RFC 3861 §6). Every resolvable SRV target is listed, so there are at
    /// least two whenever the domain publishes two; never empty.
    Remote(Vec<Target>),
}

/// How the router uses the DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Name servers to ask (UDP, then TCP for truncated answers). Empty: the
    /// system resolver configuration (`/etc/resolv.conf`, and the hosts
    /// file). With explicit servers the hosts file is not consulted.
    pub nameservers: Vec<SocketAddr>,
    /// Whether a domain without SRV records is reached on its own A/AAAA
    /// addresses at `mesh_port` (RFC 3861 §4). Default `true`.
    pub implicit_fallback: bool,
    /// Port for the implicit fallback and domain-literals. Default 912.
    pub mesh_port: u16,
    /// Time to wait for one DNS answer. Default 5 s.
    pub timeout: Duration,
    /// How many times a failed (timed-out, SERVFAIL) query is sent again.
    /// Default 2.
    pub retries: usize,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            implicit_fallback: true,
            mesh_port: APEX_MESH_PORT,
            timeout: Duration::from_secs(5),
            retries: 2,
        }
    }
}

/// Decides where each destination domain's datagrams go; see the
/// [module documentation](self).
///
/// Cheap to share (`&self` methods; wrap in an `Arc`). The resolver caches
/// answers for their TTL.
#[derive(Debug)]
pub struct Router {
    /// Keys ([`Domain::key`]) of the domains this relay serves.
    local: HashSet<String>,
    /// Static routes by domain key.
    statics: HashMap<String, StaticHost>,
    implicit_fallback: bool,
    mesh_port: u16,
    resolver: TokioResolver,
}

/// What a lookup of a host's addresses found.
enum Addresses {
    Found(Vec<IpAddr>),
    /// NXDOMAIN for both A and AAAA.
    NoSuchName,
    /// The name exists but has neither A nor AAAA records.
    NoData,
}

/// What an SRV lookup found.
enum SrvAnswer {
    Found {
        records: Vec<SrvRecord>,
        /// Addresses from the additional section, by lower-case host name
        /// without trailing dot.
        glue: HashMap<String, Vec<IpAddr>>,
    },
    /// No SRV records (NXDOMAIN or NODATA).
    None,
}

impl Router {
    /// A router for a relay serving `local_domains`, with `static_routes`
    /// (`(domain, "host:port")`, from `[routes]`) and the given DNS settings.
    ///
    /// Domains compare case-insensitively and without a trailing dot.
    ///
    /// # Errors
    ///
    /// [`RouteError::InvalidDomain`] for a malformed local or routed domain,
    /// [`RouteError::InvalidStaticRoute`] for a malformed or duplicate static
    /// route, [`RouteError::ResolverConfig`] when `dns.nameservers` is empty
    /// and the system configuration cannot be read.
    pub fn new(
        local_domains: Vec<String>,
        static_routes: Vec<(String, String)>,
        dns: DnsSettings,
    ) -> Result<Self, RouteError> {
        let local = local_domains
            .iter()
            .map(|d| Domain::parse(d).map(|d| d.key()))
            .collect::<Result<HashSet<_>, _>>()?;
        let mut statics = HashMap::new();
        for (domain, host_port) in static_routes {
            let key = Domain::parse(&domain)?.key();
            let host =
                parse_host_port(&host_port).map_err(|reason| RouteError::InvalidStaticRoute {
                    domain: domain.clone(),
                    reason,
                })?;
            if statics.insert(key, host).is_some() {
                return Err(RouteError::InvalidStaticRoute {
                    domain,
                    reason: "more than one route for the domain".to_owned(),
                });
            }
        }
        Ok(Self {
            local,
            statics,
            implicit_fallback: dns.implicit_fallback,
            mesh_port: dns.mesh_port,
            resolver: build_resolver(&dns)?,
        })
    }

    /// Where datagrams for `domain` go (an FQDN or a domain-literal).
    ///
    /// # Errors
    ///
    /// A [`RouteError`]; retry later only if it is not
    /// [permanent](RouteError::is_permanent).
    pub async fn route(&self, domain: &str) -> Result<Route, RouteError> {
        let parsed = Domain::parse(domain)?;
        let key = parsed.key();
        if self.local.contains(&key) {
            return Ok(Route::Local);
        }
        if let Some(host) = self.statics.get(&key) {
            return self.static_route(host).await;
        }
        match parsed {
            Domain::Literal(ip) => Ok(Route::Remote(vec![Target {
                host: ip.to_string(),
                port: self.mesh_port,
                addresses: vec![ip],
            }])),
            Domain::Name(name) => self.dns_route(domain, &name).await,
        }
    }

    /// A static route's single target.
    ///
    /// A static route whose host does not resolve is a local configuration
    /// problem, not the destination's: it is reported as temporary so that
    /// datagrams wait for the operator to fix it rather than fail.
    async fn static_route(&self, host: &StaticHost) -> Result<Route, RouteError> {
        let (host, port) = match host {
            StaticHost::Ip(addr) => {
                return Ok(Route::Remote(vec![Target {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                    addresses: vec![addr.ip()],
                }]));
            }
            StaticHost::Name(host, port) => (host, *port),
        };
        // Not made fully qualified: a short name in a static route may rely
        // on the resolver's search list.
        let name = dns_name(host, host)?;
        match lookup_addresses(&self.resolver, name).await? {
            Addresses::Found(addresses) => Ok(Route::Remote(vec![Target {
                host: host.clone(),
                port,
                addresses,
            }])),
            Addresses::NoSuchName | Addresses::NoData => Err(RouteError::Temporary {
                name: host.clone(),
                detail: "the static route's host has no A or AAAA records".to_owned(),
            }),
        }
    }

    /// SRV routing with the implicit fallback; `name` is the normalised
    /// form of `domain`.
    async fn dns_route(&self, domain: &str, name: &str) -> Result<Route, RouteError> {
        let mut domain_name = dns_name(domain, name)?;
        domain_name.set_fqdn(true);
        let srv_name = Name::from_ascii(MESH_SRV_PREFIX)
            .and_then(|prefix| prefix.append_domain(&domain_name))
            .map_err(|e| RouteError::InvalidDomain {
                domain: domain.to_owned(),
                reason: e.to_string(),
            })?;

        match self.lookup_srv(srv_name).await? {
            SrvAnswer::Found { records, glue } => {
                let ordered = order_srv(&records, |max| rand::rng().random_range(0..=max));
                if ordered.is_empty() {
                    return Err(RouteError::ServiceNotAvailable {
                        domain: name.to_owned(),
                    });
                }
                self.resolve_targets(name, ordered, &glue).await
            }
            SrvAnswer::None if self.implicit_fallback => {
                match lookup_addresses(&self.resolver, domain_name).await? {
                    Addresses::Found(addresses) => Ok(Route::Remote(vec![Target {
                        host: name.to_owned(),
                        port: self.mesh_port,
                        addresses,
                    }])),
                    Addresses::NoSuchName => Err(RouteError::NoSuchDomain {
                        domain: name.to_owned(),
                    }),
                    Addresses::NoData => Err(RouteError::NoAddresses {
                        domain: name.to_owned(),
                        hosts: name.to_owned(),
                    }),
                }
            }
            SrvAnswer::None => Err(RouteError::NoService {
                domain: name.to_owned(),
            }),
        }
    }

    /// Looks up the SRV records at `srv_name`, with any addresses the
    /// server added in the additional section.
    ///
    /// A CNAME at `srv_name` is followed (RFC 3861 §4). hickory-resolver
    /// mis-follows a CNAME in an SRV answer (it continues with the SRV
    /// *target* as the alias), which surfaces as "no records"; so on "no
    /// records" the name is asked for a CNAME explicitly and, if it has one,
    /// the lookup restarts at the alias target.
    async fn lookup_srv(&self, mut srv_name: Name) -> Result<SrvAnswer, RouteError> {
        let mut hops = 0;
        let lookup = loop {
            match self.resolver.srv_lookup(srv_name.clone()).await {
                Ok(lookup) => break lookup,
                Err(e) if e.is_no_records_found() => {}
                Err(e) => return Err(temporary(&srv_name, &e)),
            }
            match self.cname_of(&srv_name).await? {
                Some(target) if hops < MAX_CNAME_HOPS => {
                    hops += 1;
                    srv_name = target;
                }
                _ => return Ok(SrvAnswer::None),
            }
        };
        let records: Vec<SrvRecord> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some(SrvRecord {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target: srv.target.to_ascii(),
                }),
                _ => None,
            })
            .collect();
        if records.is_empty() {
            return Ok(SrvAnswer::None);
        }
        let mut glue: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for record in lookup.additionals().iter().chain(lookup.answers()) {
            let ip = match &record.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
                _ => continue,
            };
            let addresses = glue.entry(host_key(&record.name.to_ascii())).or_default();
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
        // Same order as looked-up addresses: AAAA before A.
        for addresses in glue.values_mut() {
            addresses.sort_by_key(IpAddr::is_ipv4);
        }
        Ok(SrvAnswer::Found { records, glue })
    }

    /// The target of a CNAME record at `name`, if there is one.
    async fn cname_of(&self, name: &Name) -> Result<Option<Name>, RouteError> {
        match self.resolver.lookup(name.clone(), RecordType::CNAME).await {
            Ok(lookup) => Ok(lookup.answers().iter().find_map(|r| match &r.data {
                RData::CNAME(CNAME(target)) if r.name == *name => Some(target.clone()),
                _ => None,
            })),
            Err(e) if e.is_no_records_found() => Ok(None),
            Err(e) => Err(temporary(name, &e)),
        }
    }

    /// Resolves the ordered SRV targets (concurrently, unless the additional
    /// section already gave their addresses) and keeps those with addresses,
    /// in order.
    async fn resolve_targets(
        &self,
        domain: &str,
        ordered: Vec<SrvRecord>,
        glue: &HashMap<String, Vec<IpAddr>>,
    ) -> Result<Route, RouteError> {
        let mut slots: Vec<Option<Vec<IpAddr>>> = vec![None; ordered.len()];
        let mut lookups = JoinSet::new();
        for (index, record) in ordered.iter().enumerate() {
            let host = host_key(&record.target);
            if let Some(addresses) = glue.get(&host) {
                slots[index] = Some(addresses.clone());
                continue;
            }
            let mut name = dns_name(&record.target, &record.target)?;
            name.set_fqdn(true);
            let resolver = self.resolver.clone();
            lookups.spawn(async move { (index, lookup_addresses(&resolver, name).await) });
        }

        let mut first_temporary = None;
        while let Some(joined) = lookups.join_next().await {
            let (index, result) = joined.map_err(|e| RouteError::Temporary {
                name: domain.to_owned(),
                detail: format!("address lookup task failed: {e}"),
            })?;
            match result {
                Ok(Addresses::Found(addresses)) => slots[index] = Some(addresses),
                Ok(Addresses::NoSuchName | Addresses::NoData) => {}
                Err(e) => {
                    first_temporary.get_or_insert((index, e));
                }
            }
        }

        let targets: Vec<Target> = ordered
            .iter()
            .zip(slots)
            .filter_map(|(record, addresses)| {
                addresses.filter(|a| !a.is_empty()).map(|addresses| Target {
                    host: host_key(&record.target),
                    port: record.port,
                    addresses,
                })
            })
            .collect();
        if !targets.is_empty() {
            return Ok(Route::Remote(targets));
        }
        if let Some((_, e)) = first_temporary {
            return Err(e);
        }
        let mut hosts: Vec<String> = ordered.iter().map(|r| host_key(&r.target)).collect();
        hosts.dedup();
        Err(RouteError::NoAddresses {
            domain: domain.to_owned(),
            hosts: hosts.join(", "),
        })
    }
}

/// The resolver for `dns`.
fn build_resolver(dns: &DnsSettings) -> Result<TokioResolver, RouteError> {
    let mut builder = if dns.nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| RouteError::ResolverConfig(e.to_string()))?
    } else {
        let servers = dns
            .nameservers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        );
        builder.options_mut().use_hosts_file = ResolveHosts::Never;
        builder
    };
    let options = builder.options_mut();
    options.timeout = dns.timeout;
    options.attempts = dns.retries;
    builder
        .build()
        .map_err(|e| RouteError::ResolverConfig(e.to_string()))
}

/// Looks up a host's AAAA and A records concurrently.
///
/// Addresses are found if either lookup finds some; otherwise a temporary
/// failure of either lookup is the answer, so a SERVFAIL is not mistaken for
/// "no address".
async fn lookup_addresses(resolver: &TokioResolver, name: Name) -> Result<Addresses, RouteError> {
    let (v6, v4) = tokio::join!(
        resolver.ipv6_lookup(name.clone()),
        resolver.ipv4_lookup(name.clone())
    );
    let mut addresses = Vec::new();
    let mut failure = None;
    let mut nxdomain = 0;
    for result in [v6, v4] {
        match result {
            Ok(lookup) => addresses.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })),
            Err(e) if e.is_nx_domain() => nxdomain += 1,
            Err(e) if e.is_no_records_found() => {}
            Err(e) => {
                failure.get_or_insert_with(|| temporary(&name, &e));
            }
        }
    }
    if !addresses.is_empty() {
        return Ok(Addresses::Found(addresses));
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(if nxdomain == 2 {
        Addresses::NoSuchName
    } else {
        Addresses::NoData
    })
}

/// A DNS name for `name` (IDNs become punycode); `domain` is what to blame
/// in the error.
fn dns_name(domain: &str, name: &str) -> Result<Name, RouteError> {
    Name::from_utf8(name).map_err(|e| RouteError::InvalidDomain {
        domain: domain.to_owned(),
        reason: e.to_string(),
    })
}

/// The comparison form of a host name: lower case, no trailing dot.
fn host_key(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// A failed lookup of `name` (timeout, SERVFAIL, REFUSED, network error) as
/// [`RouteError::Temporary`].
fn temporary(name: &Name, e: &NetError) -> RouteError {
    let detail = match e {
        NetError::Dns(DnsError::ResponseCode(code)) => format!("{code} ({})", u16::from(*code)),
        NetError::Timeout => "timed out".to_owned(),
        other => other.to_string(),
    };
    RouteError::Temporary {
        name: host_key(&name.to_ascii()),
        detail,
    }
}
