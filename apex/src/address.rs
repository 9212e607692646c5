//! Endpoint and domain names (RFC 3340 §2.2, §2.2.1).
//!
//! ```text
//! entity      = local "@" Domain          ; Domain per RFC 2821: FQDN or literal
//! local       = address [ "/" subaddress ]
//! address     = token
//! subaddress  = token
//! token       = 1*(%x20-2E / %x30-3F / %x41-7E / UTF-8)
//! ```
//!
//! Decisions where the RFC leaves room (docs/decisions.md, APEX core):
//!
//! * **Comparison.** The local part (address and subaddress) is compared
//!   octet for octet, so `fred@` and `Fred@` differ (§2.2.1). The domain is
//!   compared case-insensitively, as DNS does, literals included; IP
//!   literals compare by address (`[IPv6:0::1]` equals `[IPv6:::1]`).
//! * **Spaces.** SP is a token character in the ABNF and is accepted inside
//!   a token (`fred flintstone@example.com`), but a token may not begin or
//!   end with SP: such names are indistinguishable from their trimmed form
//!   in most user interfaces and logs, which invites impersonation.
//! * **Controls.** "All non-control characters": C0, DEL and the C1
//!   controls (U+0080–U+009F) are refused.
//! * **Transmission encodings.** In XML attributes the transmission
//!   encoding is XML itself (`f&#x72;ed` is already `fred` after parsing), and
//!   `%` is an ordinary token character there. The URL form
//!   (`apex:f%72ed@example.com`, §2.2.1) is read by [`Endpoint::parse_uri`],
//!   which reverses the %-encoding before the endpoint is built, and written
//!   by [`Endpoint::to_uri`]. Canonicalize once, at the boundary.
//! * **Domains.** A FQDN is LDH labels of 1–63 octets, at most 253 octets,
//!   no trailing dot, and a single label is accepted (RFC 5321 relaxed RFC
//!   2821 here); a name whose last label is all digits is refused (write an
//!   IPv4 address as the literal `[10.0.0.1]`). Literals are `[IPv4]`,
//!   `[IPv6:addr]` and RFC 5321 general literals `[tag:content]`.
//! * **Length.** An endpoint is at most [`MAX_ENDPOINT`] octets.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use thiserror::Error;

/// Largest endpoint accepted, in octets of its plain (non-URI) form.
pub const MAX_ENDPOINT: usize = 1024;

/// Largest domain name accepted, in octets (RFC 1035 §2.3.4, without the
/// trailing dot).
pub const MAX_DOMAIN: usize = 253;

/// Prefix of the local part of APEX service endpoints (RFC 3340 §2.2, §7.2).
pub const SERVICE_PREFIX: &str = "apex=";

/// Prefix of subaddresses of registered endpoint applications (RFC 3340
/// §2.2, §7.3).
pub const APPLICATION_PREFIX: &str = "appl=";

/// Service name of the report service, `apex=report` (RFC 3340 §6.2).
pub const REPORT_SERVICE: &str = "report";
/// Service name of the access service, `apex=access` (RFC 3341).
pub const ACCESS_SERVICE: &str = "access";
/// Service name of the presence service, `apex=presence` (RFC 3343).
pub const PRESENCE_SERVICE: &str = "presence";
/// Service names that may never be assigned (RFC 3340 §7.2): `apex=all`
/// and `apex=core`.
pub const UNASSIGNABLE_SERVICES: [&str; 2] = ["all", "core"];

/// Why an endpoint or domain does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The text is empty.
    #[error("empty endpoint")]
    Empty,
    /// The endpoint is longer than [`MAX_ENDPOINT`] octets.
    #[error("endpoint of {length} octets is longer than {limit}")]
    TooLong {
        /// Its length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// No `@` separates local part and domain.
    #[error("no \"@\" between local part and domain")]
    MissingAt,
    /// A token (address or subaddress) is empty.
    #[error("empty {0}")]
    EmptyToken(&'static str),
    /// A character the token ABNF excludes (a control, `/` or `@`).
    #[error("character {character:?} is not allowed in the {part}")]
    InvalidCharacter {
        /// The character.
        character: char,
        /// `"address"` or `"subaddress"`.
        part: &'static str,
    },
    /// A token begins or ends with a space.
    #[error("the {0} begins or ends with a space")]
    EdgeSpace(&'static str),
    /// The domain is empty.
    #[error("empty domain")]
    EmptyDomain,
    /// The domain name is longer than [`MAX_DOMAIN`] octets.
    #[error("domain of {0} octets is longer than {MAX_DOMAIN}")]
    DomainTooLong(usize),
    /// A label of a domain name is empty, too long, or not
    /// letters-digits-hyphen.
    #[error("invalid domain label {0:?}")]
    InvalidLabel(String),
    /// The last label is all digits: an IP address written without brackets.
    #[error("domain {0:?} looks like an IP address; write it as a literal, e.g. [10.0.0.1]")]
    NumericDomain(String),
    /// A domain-literal that is not `[IPv4]`, `[IPv6:…]` or `[tag:content]`.
    #[error("invalid domain-literal {0:?}")]
    InvalidLiteral(String),
    /// [`Endpoint::parse_uri`] on something that is not an `apex:` URI.
    #[error("not an apex: URI")]
    Scheme,
    /// A `%` not followed by two hex digits, or %-escapes that do not decode
    /// to UTF-8.
    #[error("invalid %-encoding")]
    PercentEncoding,
}

// ===== impl Domain =====

/// An administrative domain: a FQDN such as `example.com` or a
/// domain-literal such as `[10.0.0.1]` (RFC 3340 §2.2, RFC 2821 §4.1.2).
///
/// Equality, hashing and ordering are case-insensitive for names and by
/// address for IP literals; [`Display`](fmt::Display) gives the text as
/// written.
#[derive(Debug, Clone)]
pub struct Domain {
    text: String,
    key: String,
    kind: DomainKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DomainKind {
    Name,
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    General,
}

impl Domain {
    /// Parses a FQDN or a domain-literal.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if text.is_empty() {
            return Err(AddressError::EmptyDomain);
        }
        if let Some(literal) = text.strip_prefix('[') {
            return Self::parse_literal(text, literal);
        }
        if text.len() > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong(text.len()));
        }
        for label in text.split('.') {
            let bytes = label.as_bytes();
            let ok = !bytes.is_empty()
                && bytes.len() <= 63
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-';
            if !ok {
                return Err(AddressError::InvalidLabel(label.to_owned()));
            }
        }
        let last = text.rsplit('.').next().unwrap_or(text);
        if last.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddressError::NumericDomain(text.to_owned()));
        }
        Ok(Self {
            text: text.to_owned(),
            key: text.to_ascii_lowercase(),
            kind: DomainKind::Name,
        })
    }

    fn parse_literal(text: &str, after_bracket: &str) -> Result<Self, AddressError> {
        let invalid = || AddressError::InvalidLiteral(text.to_owned());
        let inner = after_bracket.strip_suffix(']').ok_or_else(invalid)?;
        if text.len() > MAX_DOMAIN + 2 {
            return Err(AddressError::DomainTooLong(text.len()));
        }
        let (kind, key) = match inner.split_once(':') {
            None => {
                let v4 = Ipv4Addr::from_str(inner).map_err(|_| invalid())?;
                (DomainKind::V4(v4), format!("[{v4}]"))
            }
            Some((tag, address)) if tag.eq_ignore_ascii_case("IPv6") => {
                let v6 = Ipv6Addr::from_str(address).map_err(|_| invalid())?;
                (DomainKind::V6(v6), format!("[ipv6:{v6}]"))
            }
            Some((tag, content)) => {
                // General-address-literal (RFC 5321 §4.1.3): Standardized-tag
                // is an Ldh-str, content is 1*dcontent (%d33-90 / %d94-126).
                let tag_ok = !tag.is_empty()
                    && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !tag.ends_with('-');
                let content_ok = !content.is_empty()
                    && content
                        .bytes()
                        .all(|b| (33..=90).contains(&b) || (94..=126).contains(&b));
                if !tag_ok || !content_ok {
                    return Err(invalid());
                }
                (DomainKind::General, text.to_ascii_lowercase())
            }
        };
        Ok(Self {
            text: text.to_owned(),
            key,
            kind,
        })
    }

    /// The domain as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The canonical form used for comparison: lower-case names,
    /// `[a.b.c.d]`, `[ipv6:<RFC 5952 form>]`, lower-case `[tag:content]`.
    pub fn canonical(&self) -> &str {
        &self.key
    }

    /// True for a domain-literal (`[…]`).
    pub fn is_literal(&self) -> bool {
        self.kind != DomainKind::Name
    }

    /// The IP address of an `[IPv4]` or `[IPv6:…]` literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.kind {
            DomainKind::V4(v4) => Some(IpAddr::V4(v4)),
            DomainKind::V6(v6) => Some(IpAddr::V6(v6)),
            DomainKind::Name | DomainKind::General => None,
        }
    }
}

impl PartialEq for Domain {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Domain {}

impl Hash for Domain {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl PartialOrd for Domain {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Domain {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Domain {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<&str> for Domain {
    type Error = AddressError;

    fn try_from(text: &str) -> Result<Self, Self::Error> {
        Self::parse(text)
    }
}

// ===== impl Endpoint =====

/// An APEX endpoint identity, `address[/subaddress]@domain` (RFC 3340 §2.2).
///
/// Equality, hashing and ordering follow §2.2.1: address and subaddress
/// octet-exact, domain as [`Domain`] compares. [`Display`](fmt::Display)
/// writes the plain form used in XML attributes.
#[derive(Debug, Clone)]
pub struct Endpoint {
    address: String,
    subaddress: Option<String>,
    domain: Domain,
}

impl Endpoint {
    /// Parses the plain form, as found in `endpoint` and `identity`
    /// attributes (after XML unescaping). `%` is an ordinary character here.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        if text.len() > MAX_ENDPOINT {
            return Err(AddressError::TooLong {
                length: text.len(),
                limit: MAX_ENDPOINT,
            });
        }
        let (local, domain) = text.split_once('@').ok_or(AddressError::MissingAt)?;
        let (address, subaddress) = match local.split_once('/') {
            Some((address, subaddress)) => (address, Some(subaddress)),
            None => (local, None),
        };
        check_token(address, "address")?;
        if let Some(subaddress) = subaddress {
            check_token(subaddress, "subaddress")?;
        }
        Ok(Self {
            address: address.to_owned(),
            subaddress: subaddress.map(str::to_owned),
            domain: Domain::parse(domain)?,
        })
    }

    /// Parses the URL form `apex:local@domain`, reversing the %-encoding
    /// first (RFC 3340 §2.2.1: `apex:f%72ed@example.com` is
    /// `fred@example.com`). The scheme is case-insensitive.
    pub fn parse_uri(uri: &str) -> Result<Self, AddressError> {
        let rest = uri
            .get(..5)
            .filter(|scheme| scheme.eq_ignore_ascii_case("apex:"))
            .map(|_| &uri[5..])
            .ok_or(AddressError::Scheme)?;
        Self::parse(&percent_decode(rest)?)
    }

    /// Builds an endpoint from its parts, checking each.
    pub fn new(
        address: &str,
        subaddress: Option<&str>,
        domain: Domain,
    ) -> Result<Self, AddressError> {
        check_token(address, "address")?;
        if let Some(subaddress) = subaddress {
            check_token(subaddress, "subaddress")?;
        }
        let endpoint = Self {
            address: address.to_owned(),
            subaddress: subaddress.map(str::to_owned),
            domain,
        };
        let length = endpoint.to_string().len();
        if length > MAX_ENDPOINT {
            return Err(AddressError::TooLong {
                length,
                limit: MAX_ENDPOINT,
            });
        }
        Ok(endpoint)
    }

    /// The well-known endpoint `apex=<name>@<domain>` of a service (RFC 3340
    /// §2.2, §6), e.g. [`REPORT_SERVICE`].
    pub fn service(name: &str, domain: Domain) -> Result<Self, AddressError> {
        Self::new(&format!("{SERVICE_PREFIX}{name}"), None, domain)
    }

    /// The report service of `domain`, `apex=report@<domain>` (RFC 3340 §6.2).
    pub fn report_service(domain: Domain) -> Self {
        Self {
            address: format!("{SERVICE_PREFIX}{REPORT_SERVICE}"),
            subaddress: None,
            domain,
        }
    }

    /// The address token (the local part without any subaddress).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The subaddress token, if any.
    pub fn subaddress(&self) -> Option<&str> {
        self.subaddress.as_deref()
    }

    /// The whole local part, `address[/subaddress]`.
    pub fn local(&self) -> String {
        match &self.subaddress {
            Some(subaddress) => format!("{}/{subaddress}", self.address),
            None => self.address.clone(),
        }
    }

    /// The domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The endpoint without its subaddress (itself if it has none).
    pub fn base(&self) -> Self {
        Self {
            address: self.address.clone(),
            subaddress: None,
            domain: self.domain.clone(),
        }
    }

    /// The same endpoint with `subaddress` (replacing any it has).
    pub fn with_subaddress(&self, subaddress: &str) -> Result<Self, AddressError> {
        Self::new(&self.address, Some(subaddress), self.domain.clone())
    }

    /// True if this endpoint has a subaddress and its base is `other`
    /// (which must itself have no subaddress): `fred/appl=wb@example.com`
    /// is a subaddress of `fred@example.com` (RFC 3340 §2.2). An endpoint is
    /// not a subaddress of itself.
    pub fn is_subaddress_of(&self, other: &Self) -> bool {
        self.subaddress.is_some()
            && other.subaddress.is_none()
            && self.address == other.address
            && self.domain == other.domain
    }

    /// True if both endpoints have the same base (address and domain),
    /// whatever their subaddresses.
    pub fn same_base(&self, other: &Self) -> bool {
        self.address == other.address && self.domain == other.domain
    }

    /// True for the reserved service names, local part starting `apex=`
    /// (RFC 3340 §2.2).
    pub fn is_service(&self) -> bool {
        self.address.starts_with(SERVICE_PREFIX)
    }

    /// The service name after `apex=` (e.g. `report`), for service endpoints.
    pub fn service_name(&self) -> Option<&str> {
        self.address.strip_prefix(SERVICE_PREFIX)
    }

    /// True for `apex=all` and `apex=core`, which may never be assigned to a
    /// service (RFC 3340 §7.2).
    pub fn is_unassignable_service(&self) -> bool {
        self.service_name()
            .is_some_and(|name| UNASSIGNABLE_SERVICES.contains(&name))
    }

    /// The registered application name of a subaddress starting `appl=`
    /// (RFC 3340 §2.2, §7.3), e.g. `wb` for `fred/appl=wb@example.com`.
    pub fn application(&self) -> Option<&str> {
        self.subaddress.as_deref()?.strip_prefix(APPLICATION_PREFIX)
    }

    /// The URL form, `apex:` plus the endpoint with every octet outside
    /// RFC 3986 unreserved, sub-delims and `:` %-encoded (in particular `%`,
    /// SP, `[`, `]` and all non-ASCII octets). [`Endpoint::parse_uri`] reads it back.
    pub fn to_uri(&self) -> String {
        let mut out = String::from("apex:");
        percent_encode(&mut out, &self.address, b"");
        if let Some(subaddress) = &self.subaddress {
            out.push('/');
            percent_encode(&mut out, subaddress, b"");
        }
        out.push('@');
        percent_encode(&mut out, self.domain.as_str(), b"");
        out
    }
}

fn check_token(token: &str, part: &'static str) -> Result<(), AddressError> {
    if token.is_empty() {
        return Err(AddressError::EmptyToken(part));
    }
    if let Some(character) = token
        .chars()
        .find(|c| c.is_control() || *c == '/' || *c == '@')
    {
        return Err(AddressError::InvalidCharacter { character, part });
    }
    if token.starts_with(' ') || token.ends_with(' ') {
        return Err(AddressError::EdgeSpace(part));
    }
    Ok(())
}

/// Reverses %-encoding; the result must be UTF-8.
pub(crate) fn percent_decode(text: &str) -> Result<String, AddressError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(AddressError::PercentEncoding)?;
            let value = std::str::from_utf8(hex)
                .ok()
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(AddressError::PercentEncoding)?;
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| AddressError::PercentEncoding)
}

/// Appends `text` with every octet outside RFC 3986 unreserved, sub-delims,
/// `:` and `keep` %-encoded.
pub(crate) fn percent_encode(out: &mut String, text: &str, keep: &[u8]) {
    for &b in text.as_bytes() {
        let keep = keep.contains(&b)
            || b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
            );
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        self.address == other.address
            && self.subaddress == other.subaddress
            && self.domain == other.domain
    }
}

impl Eq for Endpoint {}

impl Hash for Endpoint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.address.hash(state);
        self.subaddress.hash(state);
        self.domain.hash(state);
    }
}

impl PartialOrd for Endpoint {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Endpoint {
    /// Orders by domain, then address, then subaddress (none first), so a
    /// sorted list groups endpoints by domain and base.
    fn cmp(&self, other: &Self) -> Ordering {
        self.domain
            .cmp(&other.domain)
            .then_with(|| self.address.cmp(&other.address))
            .then_with(|| self.subaddress.cmp(&other.subaddress))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)?;
        if let Some(subaddress) = &self.subaddress {
            write!(f, "/{subaddress}")?;
        }
        write!(f, "@{}", self.domain)
    }
}

impl FromStr for Endpoint {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<&str> for Endpoint {
    type Error = AddressError;

    fn try_from(text: &str) -> Result<Self, Self::Error> {
        Self::parse(text)
    }
}

#[cfg(feature = "serde")]
mod serde_impls {
    use super::{Domain, Endpoint};
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

    impl Serialize for Endpoint {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(self)
        }
    }

    impl<'de> Deserialize<'de> for Endpoint {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let text = String::deserialize(deserializer)?;
            Self::parse(&text).map_err(D::Error::custom)
        }
    }

    impl Serialize for Domain {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(self.as_str())
        }
    }

    impl<'de> Deserialize<'de> for Domain {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let text = String::deserialize(deserializer)?;
            Self::parse(&text).map_err(D::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn ep(text: &str) -> Endpoint {
        Endpoint::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn parses_parts() {
        let e = ep("fred/appl=wb@example.com");
        assert_eq!(e.address(), "fred");
        assert_eq!(e.subaddress(), Some("appl=wb"));
        assert_eq!(e.local(), "fred/appl=wb");
        assert_eq!(e.domain().as_str(), "example.com");
        assert_eq!(e.application(), Some("wb"));
        assert_eq!(e.to_string(), "fred/appl=wb@example.com");
        assert_eq!(e.base(), ep("fred@example.com"));
        assert!(e.is_subaddress_of(&ep("fred@example.com")));
        assert!(e.is_subaddress_of(&ep("fred@EXAMPLE.com")));
        assert!(!e.is_subaddress_of(&ep("Fred@example.com")));
        assert!(!e.is_subaddress_of(&e));
        assert!(!ep("fred@example.com").is_subaddress_of(&ep("fred@example.com")));
        assert!(!e.is_subaddress_of(&ep("fred/x@example.com")));
        assert!(e.same_base(&ep("fred/x@example.com")));
        assert_eq!(
            ep("fred@example.com").with_subaddress("appl=im").unwrap(),
            ep("fred/appl=im@example.com")
        );
    }

    #[test]
    fn services() {
        let report = ep("apex=report@example.com");
        assert!(report.is_service());
        assert_eq!(report.service_name(), Some(REPORT_SERVICE));
        assert_eq!(
            Endpoint::report_service(Domain::parse("example.com").unwrap()),
            report
        );
        assert_eq!(
            Endpoint::service(ACCESS_SERVICE, Domain::parse("example.com").unwrap()).unwrap(),
            ep("apex=access@example.com")
        );
        assert!(!ep("apexreport@example.com").is_service());
        assert!(!ep("fred/apex=report@example.com").is_service());
        assert!(!ep("Apex=report@example.com").is_service());
        assert!(ep("apex=all@example.com").is_unassignable_service());
        assert!(ep("apex=core@example.com").is_unassignable_service());
        assert!(!report.is_unassignable_service());
        // RFC 3342 §4 example: "appl=pubsub/topic=fred" is a plain address
        // with a subaddress (erratum 19), not an application subaddress.
        let pubsub = ep("appl=pubsub/topic=fred@example.com");
        assert_eq!(pubsub.address(), "appl=pubsub");
        assert_eq!(pubsub.application(), None);
    }

    #[test]
    fn local_part_is_case_sensitive_domain_is_not() {
        assert_ne!(ep("fred@example.com"), ep("Fred@example.com"));
        assert_eq!(ep("fred@example.com"), ep("fred@EXAMPLE.COM"));
        assert_ne!(ep("fred/A@example.com"), ep("fred/a@example.com"));
        let set: HashSet<Endpoint> = ["fred@example.com", "fred@Example.Com", "Fred@example.com"]
            .into_iter()
            .map(ep)
            .collect();
        assert_eq!(set.len(), 2);
        // Display keeps the text as written.
        assert_eq!(ep("fred@Example.COM").to_string(), "fred@Example.COM");
        assert_eq!(ep("fred@Example.COM").domain().canonical(), "example.com");
    }

    #[test]
    fn uri_form_reverses_percent_encoding() {
        let plain = ep("fred@example.com");
        assert_eq!(
            Endpoint::parse_uri("apex:f%72ed@example.com").unwrap(),
            plain
        );
        assert_eq!(Endpoint::parse_uri("APEX:fred@example.com").unwrap(), plain);
        assert_eq!(
            Endpoint::parse_uri("apex:fred@ex%61mple.com").unwrap(),
            plain
        );
        // In the plain form % is a token character, so this is another endpoint.
        let literal = ep("f%72ed@example.com");
        assert_eq!(literal.address(), "f%72ed");
        assert_ne!(literal, plain);
        assert_eq!(literal.to_uri(), "apex:f%2572ed@example.com");
        assert_eq!(Endpoint::parse_uri(&literal.to_uri()).unwrap(), literal);
        let odd = ep("fred flintstone/appl=ü 1@[IPv6:::1]");
        assert_eq!(
            odd.to_uri(),
            "apex:fred%20flintstone/appl=%C3%BC%201@%5BIPv6:::1%5D"
        );
        assert_eq!(Endpoint::parse_uri(&odd.to_uri()).unwrap(), odd);
        for bad in [
            "fred@example.com",
            "apex:",
            "apex:f%7@x.com",
            "apex:f%zz@x.com",
            "apex:%ff@x.com",
        ] {
            assert!(Endpoint::parse_uri(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Endpoint::parse_uri("mailto:a@b.c"),
            Err(AddressError::Scheme)
        );
        // An encoded "/" still separates the subaddress: token has no "/".
        assert_eq!(
            Endpoint::parse_uri("apex:fred%2Fwb@example.com").unwrap(),
            ep("fred/wb@example.com")
        );
    }

    #[test]
    fn spaces_inside_tokens_only() {
        let e = ep("fred flintstone@example.com");
        assert_eq!(e.address(), "fred flintstone");
        let e = ep("fred/my phone@example.com");
        assert_eq!(e.subaddress(), Some("my phone"));
        assert_eq!(
            Endpoint::parse(" fred@example.com"),
            Err(AddressError::EdgeSpace("address"))
        );
        assert_eq!(
            Endpoint::parse("fred @example.com"),
            Err(AddressError::EdgeSpace("address"))
        );
        assert_eq!(
            Endpoint::parse("fred/ x@example.com"),
            Err(AddressError::EdgeSpace("subaddress"))
        );
        assert_eq!(
            Endpoint::parse("fred@ example.com"),
            Err(AddressError::InvalidLabel(" example".into()))
        );
    }

    #[test]
    fn refuses_bad_tokens() {
        use AddressError as E;
        assert_eq!(Endpoint::parse(""), Err(E::Empty));
        assert_eq!(Endpoint::parse("fred"), Err(E::MissingAt));
        assert_eq!(
            Endpoint::parse("@example.com"),
            Err(E::EmptyToken("address"))
        );
        assert_eq!(
            Endpoint::parse("fred/@example.com"),
            Err(E::EmptyToken("subaddress"))
        );
        assert_eq!(
            Endpoint::parse("/x@example.com"),
            Err(E::EmptyToken("address"))
        );
        assert_eq!(
            Endpoint::parse("a/b/c@example.com"),
            Err(E::InvalidCharacter {
                character: '/',
                part: "subaddress"
            })
        );
        assert_eq!(Endpoint::parse("fred@"), Err(E::EmptyDomain));
        assert!(matches!(
            Endpoint::parse("a@b@example.com"),
            Err(E::InvalidLabel(_))
        ));
        for control in ['\0', '\t', '\n', '\r', '\u{7f}', '\u{85}', '\u{9f}'] {
            let text = format!("fr{control}ed@example.com");
            assert_eq!(
                Endpoint::parse(&text),
                Err(E::InvalidCharacter {
                    character: control,
                    part: "address"
                }),
                "{text:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(MAX_ENDPOINT));
        assert!(matches!(Endpoint::parse(&long), Err(E::TooLong { .. })));
        // Every printable ASCII character but "/" and "@" is a token character.
        let all: String = (0x20u8..0x7f)
            .map(char::from)
            .filter(|c| !matches!(c, '/' | '@' | ' '))
            .collect();
        let e = ep(&format!("{all}@example.com"));
        assert_eq!(e.address(), all);
        assert_eq!(
            ep("flintstone.fred.ü日本@example.com").address(),
            "flintstone.fred.ü日本"
        );
    }

    #[test]
    fn domains() {
        let d = |t: &str| Domain::parse(t).unwrap_or_else(|e| panic!("{t:?}: {e}"));
        assert!(!d("example.com").is_literal());
        assert_eq!(d("localhost").canonical(), "localhost");
        assert_eq!(d("a-b.c0.example"), d("A-B.C0.EXAMPLE"));
        let v4 = d("[10.0.0.1]");
        assert!(v4.is_literal());
        assert_eq!(v4.ip(), Some("10.0.0.1".parse().unwrap()));
        let v6 = d("[IPv6:::1]");
        assert!(v6.is_literal());
        assert_eq!(v6.ip(), Some("::1".parse().unwrap()));
        assert_eq!(v6, d("[ipv6:0:0::1]"));
        assert_eq!(v6.to_string(), "[IPv6:::1]");
        assert_eq!(d("[IPv6:2001:DB8::1]"), d("[IPv6:2001:db8:0::1]"));
        assert_eq!(
            d("[IPv6:::ffff:10.0.0.1]").ip(),
            Some("::ffff:10.0.0.1".parse().unwrap())
        );
        let general = d("[x-tag:some-content]");
        assert!(general.is_literal());
        assert_eq!(general.ip(), None);
        assert_eq!(general, d("[X-Tag:some-content]"));
        assert_eq!(general, d("[x-tag:Some-content]"));
        assert_ne!(d("[10.0.0.1]"), d("[10.0.0.2]"));

        use AddressError as E;
        for bad in [
            "[10.0.0.1",
            "[10.0.0]",
            "[10.0.0.256]",
            "[010.0.0.1]",
            "[IPv6:1.2.3.4]",
            "[IPv6:::g]",
            "[]",
            "[:x]",
            "[tag-:x]",
            "[tag:]",
            "[tag:a b]",
            "[tag:a[b]",
            "[10.0.0.1]x",
        ] {
            assert!(
                matches!(Domain::parse(bad), Err(E::InvalidLiteral(_))),
                "{bad:?}"
            );
        }
        for bad in [
            "example..com",
            ".example.com",
            "example.com.",
            "-a.com",
            "a-.com",
            "ex_ample.com",
            "exämple.com",
        ] {
            assert!(
                matches!(Domain::parse(bad), Err(E::InvalidLabel(_))),
                "{bad:?}"
            );
        }
        assert!(Domain::parse(&format!("{}.com", "a".repeat(63))).is_ok());
        assert!(Domain::parse(&format!("{}.com", "a".repeat(64))).is_err());
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(matches!(Domain::parse(&long), Err(E::DomainTooLong(_))));
        assert!(matches!(
            Domain::parse("10.0.0.1"),
            Err(E::NumericDomain(_))
        ));
        assert!(Domain::parse("1example.com").is_ok());
        assert!(Domain::parse("example.1com").is_ok());
        assert_eq!(Domain::parse(""), Err(E::EmptyDomain));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_uses_the_string_forms() {
        let e = ep("fred/appl=im@Example.COM");
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, "\"fred/appl=im@Example.COM\"");
        assert_eq!(serde_json::from_str::<Endpoint>(&json).unwrap(), e);
        assert!(serde_json::from_str::<Endpoint>("\"nobody\"").is_err());
        let d = Domain::parse("[IPv6:::1]").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"[IPv6:::1]\"");
        assert_eq!(
            serde_json::from_str::<Domain>("\"[ipv6:0::1]\"").unwrap(),
            d
        );
    }

    #[test]
    fn ordering_groups_by_domain() {
        let mut list = [
            ep("b@z.example"),
            ep("a/x@y.example"),
            ep("a@y.example"),
            ep("c@Y.example"),
        ];
        list.sort();
        let texts: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            ["a@y.example", "a/x@y.example", "c@Y.example", "b@z.example"]
        );
    }
}
