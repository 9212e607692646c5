//! Why a domain could not be routed, and whether trying again later can help.

/// A routing failure.
///
/// [`RouteError::is_permanent`] tells the scheduler whether to defer the
/// datagram and retry ([`RouteError::Temporary`]) or to fail it now and
/// report (everything else).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The domain is not a syntactically valid domain name or domain-literal.
    #[error("invalid domain {domain:?}: {reason}")]
    InvalidDomain {
        /// The domain as given.
        domain: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `[routes]` entry cannot be used (reported by [`Router::new`]).
    ///
    /// [`Router::new`]: super::Router::new
    #[error("invalid static route for {domain:?}: {reason}")]
    InvalidStaticRoute {
        /// The routed domain of the entry.
        domain: String,
        /// What is wrong with the entry.
        reason: String,
    },
    /// The system resolver configuration could not be read (reported by
    /// [`Router::new`]).
    ///
    /// [`Router::new`]: super::Router::new
    #[error("DNS resolver configuration: {0}")]
    ResolverConfig(String),
    /// The DNS says the domain does not exist (NXDOMAIN).
    #[error("{domain}: no such domain")]
    NoSuchDomain {
        /// The domain that does not exist.
        domain: String,
    },
    /// The domain has no `_apex-mesh._tcp` SRV records and the implicit
    /// A/AAAA fallback is disabled.
    #[error("{domain}: no _apex-mesh._tcp SRV records (and the implicit fallback is disabled)")]
    NoService {
        /// The domain without SRV records.
        domain: String,
    },
    /// The domain's only SRV record has the target `"."`: the service is
    /// decidedly not available there (RFC 2782).
    #[error("{domain}: the SRV target \".\" says the service is not available")]
    ServiceNotAvailable {
        /// The domain refusing the service.
        domain: String,
    },
    /// None of the hosts the domain routes to has an A or AAAA record.
    #[error("{domain}: no address for {hosts}")]
    NoAddresses {
        /// The domain being routed.
        domain: String,
        /// The host names that were looked up, comma-separated.
        hosts: String,
    },
    /// The DNS could not answer now (timeout, SERVFAIL, REFUSED, network
    /// error): retry later.
    #[error("{name}: temporary DNS failure: {detail}")]
    Temporary {
        /// The name whose lookup failed.
        name: String,
        /// The resolver's description of the failure.
        detail: String,
    },
}

impl RouteError {
    /// Whether retrying later cannot help: the datagram should fail now.
    ///
    /// Only [`RouteError::Temporary`] is worth retrying.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Self::Temporary { .. })
    }
}
