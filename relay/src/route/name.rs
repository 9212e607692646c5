//! Domain syntax for routing: comparison keys, domain-literals and the
//! `host:port` of static routes.

use std::net::{IpAddr, SocketAddr};

use super::RouteError;

/// A destination domain, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Domain {
    /// A domain-literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`): the address is
    /// taken from the literal (RFC 3340 §3.1).
    Literal(IpAddr),
    /// A domain name: lower case, without a trailing dot.
    Name(String),
}

impl Domain {
    /// Parses `domain` as given in an APEX entity or the configuration.
    pub(crate) fn parse(domain: &str) -> Result<Self, RouteError> {
        let invalid = |reason: &str| RouteError::InvalidDomain {
            domain: domain.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(inner) = domain.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| invalid("a domain-literal must end with ']'"))?;
            return parse_literal(inner).map(Self::Literal).map_err(&invalid);
        }
        let name = domain.strip_suffix('.').unwrap_or(domain);
        if name.is_empty() {
            return Err(invalid("empty domain"));
        }
        if name.split('.').any(str::is_empty) {
            return Err(invalid("empty label"));
        }
        if name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '[' | ']' | '@' | '/'))
        {
            return Err(invalid("character not allowed in a domain name"));
        }
        Ok(Self::Name(name.to_lowercase()))
    }

    /// The key two spellings of the same domain share: names compare
    /// case-insensitively and without a trailing dot, literals by address.
    pub(crate) fn key(&self) -> String {
        match self {
            Self::Literal(IpAddr::V4(ip)) => format!("[{ip}]"),
            Self::Literal(IpAddr::V6(ip)) => format!("[IPv6:{ip}]"),
            Self::Name(name) => name.clone(),
        }
    }
}

/// The address inside a domain-literal's brackets: RFC 5321's IPv4 form, or
/// `IPv6:` (any case) followed by an IPv6 address. A bare IPv6 address is
/// accepted too.
fn parse_literal(inner: &str) -> Result<IpAddr, &'static str> {
    if let Some((tag, rest)) = inner.split_once(':')
        && tag.eq_ignore_ascii_case("IPv6")
    {
        return rest
            .parse::<std::net::Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| "not an IPv6 address after 'IPv6:'");
    }
    inner
        .parse::<IpAddr>()
        .map_err(|_| "a domain-literal must hold an IPv4 address or 'IPv6:' and an IPv6 address")
}

/// Where a static route points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StaticHost {
    /// An IP address: no lookup.
    Ip(SocketAddr),
    /// A host name to resolve, and the port.
    Name(String, u16),
}

/// Parses a static route's `host:port` (`relay.example.net:912`,
/// `192.0.2.1:912`, `[2001:db8::1]:912`).
pub(crate) fn parse_host_port(value: &str) -> Result<StaticHost, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(StaticHost::Ip(addr));
    }
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| format!("{value:?} is not host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} in {value:?} is not a port number"))?;
    if port == 0 {
        return Err(format!("port 0 in {value:?}"));
    }
    if host.starts_with('[') {
        return Err(format!("{host:?} in {value:?} is not an IP address"));
    }
    match Domain::parse(host) {
        Ok(Domain::Name(name)) if !name.contains(':') => Ok(StaticHost::Name(name, port)),
        _ => Err(format!("{host:?} in {value:?} is not a host name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_case_insensitively_without_trailing_dot() {
        let a = Domain::parse("Example.COM.").unwrap();
        let b = Domain::parse("example.com").unwrap();
        assert_eq!(a.key(), b.key());
        assert_eq!(a, Domain::Name("example.com".to_owned()));
    }

    #[test]
    fn literals() {
        assert_eq!(
            Domain::parse("[192.0.2.1]").unwrap(),
            Domain::Literal("192.0.2.1".parse().unwrap())
        );
        let v6 = Domain::parse("[ipv6:2001:DB8::1]").unwrap();
        assert_eq!(v6, Domain::Literal("2001:db8::1".parse().unwrap()));
        assert_eq!(v6.key(), "[IPv6:2001:db8::1]");
        assert_eq!(
            Domain::parse("[IPv6:0:0:0:0:0:0:0:1]").unwrap().key(),
            Domain::parse("[::1]").unwrap().key()
        );
    }

    #[test]
    fn invalid_domains() {
        for bad in [
            "",
            ".",
            "a..b",
            "[192.0.2.1",
            "[300.0.0.1]",
            "[IPv6:192.0.2.1]",
            "[foo:bar]",
            "a b.com",
            "x@y.com",
        ] {
            let err = Domain::parse(bad).unwrap_err();
            assert!(err.is_permanent());
            assert!(
                matches!(err, RouteError::InvalidDomain { .. }),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(
            parse_host_port("Relay.Example.NET:9120").unwrap(),
            StaticHost::Name("relay.example.net".to_owned(), 9120)
        );
        assert_eq!(
            parse_host_port("192.0.2.7:912").unwrap(),
            StaticHost::Ip("192.0.2.7:912".parse().unwrap())
        );
        assert_eq!(
            parse_host_port("[2001:db8::1]:913").unwrap(),
            StaticHost::Ip("[2001:db8::1]:913".parse().unwrap())
        );
        for bad in [
            "relay.example.net",
            "relay:",
            "relay:x",
            "relay:0",
            ":912",
            "::1:912",
            "[x]:1",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad:?}");
        }
    }
}
