//! `im:` URIs (RFC 3860 §3 and Appendix A): the identities of end-to-end
//! protection, mapped one to one from APEX endpoints (`local@domain ⇔
//! im:local@domain`, RFC 3860 §3.2; an APEX subaddress `local/sub@domain`
//! stays in the local part, `/` being an RFC 2822 `atext` character).

use std::fmt;

use crate::error::E2eError;

/// The scheme prefix.
pub const SCHEME: &str = "im:";

/// An `im:` URI naming one mailbox, `im:local@domain`. URI `headers`
/// (`?…`) are not part of an identity and are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImUri {
    local: String,
    domain: String,
}

impl ImUri {
    /// The URI for an APEX endpoint or mailbox written `local@domain`. The
    /// domain is compared case-insensitively, so it is kept lower-case.
    pub fn from_address(address: &str) -> Result<Self, E2eError> {
        let bad = |reason: &str| E2eError::ImUri {
            uri: address.to_owned(),
            reason: reason.to_owned(),
        };
        let (local, domain) = address
            .rsplit_once('@')
            .ok_or_else(|| bad("no '@' between local part and domain"))?;
        if local.is_empty() {
            return Err(bad("empty local part"));
        }
        if domain.is_empty() {
            return Err(bad("empty domain"));
        }
        if let Some(c) = address
            .chars()
            .find(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | '"' | '?'))
        {
            return Err(bad(&format!(
                "character {c:?} is not allowed in an address"
            )));
        }
        if domain.contains('@') || local.contains('@') {
            return Err(bad("more than one '@'"));
        }
        Ok(Self {
            local: local.to_owned(),
            domain: domain.to_ascii_lowercase(),
        })
    }

    /// Parses `im:local@domain`; percent-encoded octets are decoded. The
    /// scheme is case-insensitive (RFC 3986 §3.1).
    pub fn parse(uri: &str) -> Result<Self, E2eError> {
        let bad = |reason: &str| E2eError::ImUri {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = uri
            .get(..SCHEME.len())
            .filter(|scheme| scheme.eq_ignore_ascii_case(SCHEME))
            .map(|_| &uri[SCHEME.len()..])
            .ok_or_else(|| bad("not an im: URI"))?;
        if rest.contains('?') {
            return Err(bad("URI headers ('?…') do not name an identity"));
        }
        let decoded = percent_decode(rest).ok_or_else(|| bad("malformed percent-encoding"))?;
        Self::from_address(&decoded).map_err(|error| match error {
            E2eError::ImUri { reason, .. } => bad(&reason),
            other => other,
        })
    }

    /// The mailbox, `local@domain`: the APEX endpoint's text form.
    pub fn address(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }

    /// The identity without an APEX subaddress (`fred/appl=x@example.com`
    /// → `fred@example.com`, RFC 3340 §2.2): a user's key also speaks for
    /// the user's subaddresses. `None` when there is no subaddress.
    pub fn base(&self) -> Option<Self> {
        let (user, _) = self.local.split_once('/')?;
        (!user.is_empty()).then(|| Self {
            local: user.to_owned(),
            domain: self.domain.clone(),
        })
    }

    /// Whether a key bound to `self` speaks for `identity`: the same
    /// identity, or `identity` is a subaddress of `self`.
    pub fn covers(&self, identity: &Self) -> bool {
        self == identity || identity.base().as_ref() == Some(self)
    }

    /// The local part.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The domain, lower-case.
    pub fn domain(&self) -> &str {
        &self.domain
    }
}

impl fmt::Display for ImUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SCHEME)?;
        for byte in self.local.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:/".contains(&byte) {
                write!(f, "{}", byte as char)?;
            } else {
                write!(f, "%{byte:02X}")?;
            }
        }
        write!(f, "@{}", self.domain)
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_maps_both_ways() {
        let uri = ImUri::from_address("alice@A.Test").unwrap();
        assert_eq!(uri.to_string(), "im:alice@a.test");
        assert_eq!(ImUri::parse("im:alice@a.test").unwrap(), uri);
        assert_eq!(
            ImUri::parse("IM:alice@a.test").unwrap().address(),
            "alice@a.test"
        );
    }

    #[test]
    fn subaddress_and_escapes_round_trip() {
        let uri = ImUri::from_address("fred/phone@example.com").unwrap();
        assert_eq!(uri.to_string(), "im:fred/phone@example.com");
        let odd = ImUri::from_address("j%k@example.com").unwrap();
        assert_eq!(odd.to_string(), "im:j%25k@example.com");
        assert_eq!(ImUri::parse(&odd.to_string()).unwrap(), odd);
    }

    #[test]
    fn subaddresses_are_covered_by_the_user() {
        let user = ImUri::from_address("fred@example.com").unwrap();
        let sub = ImUri::from_address("fred/appl=cli@example.com").unwrap();
        assert_eq!(sub.base(), Some(user.clone()));
        assert!(user.covers(&sub) && user.covers(&user));
        assert!(!sub.covers(&user));
        assert!(!user.covers(&ImUri::from_address("fredx@example.com").unwrap()));
        assert_eq!(user.base(), None);
    }

    #[test]
    fn bad_uris_say_why() {
        for (uri, why) in [
            ("mailto:a@b", "not an im: URI"),
            ("im:nobody", "no '@'"),
            ("im:@b.test", "empty local part"),
            ("im:a@b.test?subject=x", "URI headers"),
            ("im:a%zz@b.test", "percent-encoding"),
        ] {
            let error = ImUri::parse(uri).unwrap_err().to_string();
            assert!(error.contains(why), "{uri}: {error}");
        }
    }
}
