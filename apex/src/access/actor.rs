//! Actors of access entries (RFC 3341 §3): an endpoint whose local part
//! and domain may be limited wildcards, and how well one matches an
//! address (§3.1).
//!
//! | local part | matches |
//! | --- | --- |
//! | `fred` | exactly `fred` |
//! | `fred/*` | `fred/x` for any non-empty subaddress `x`, not `fred` |
//! | `apex=*` | every APEX service, `apex=x…` |
//! | `*` | every address other than an APEX service |
//!
//! | domain | matches |
//! | --- | --- |
//! | `example.com` | exactly (case-insensitively) `example.com` |
//! | `*.example.com` | `example.com` and any subdomain of it |
//! | `*` | every domain |
//!
//! In the written form (`get`, `access`) `\*` is a literal `*` and `\\` a
//! literal `\`; an unescaped `*` anywhere else, or a `\` before anything
//! else, is refused. `query` carries a plain endpoint instead.
//!
//! Ranking (§3.1): the domain match is the primary key, the local match the
//! secondary; an exact match beats any wildcard, and among wildcards the
//! one whose `*` stands for fewer characters wins. **Erratum 15:** §3.1
//! says each `*` stands for a non-empty sequence, §3 that `*.example.com`
//! matches `example.com`; both are honoured: the domain wildcard covers
//! the bare domain (standing for "nothing", which ranks it just below an
//! exact match), every other `*` needs at least one character.

use std::fmt;

use crate::address::{Domain, Endpoint, SERVICE_PREFIX};

use super::AccessError;

/// The local-part pattern of an actor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LocalPattern {
    /// A literal local part (`address[/subaddress]`), `*` and `\` as plain
    /// characters.
    Exact(String),
    /// `address/*`: any subaddress of `address` (which may be a service,
    /// e.g. `apex=pubsub/*`).
    Subaddress(String),
    /// `apex=*`: every APEX service.
    Services,
    /// `*`: every address other than an APEX service.
    Any,
}

/// The domain pattern of an actor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    /// One domain.
    Exact(Domain),
    /// `*.domain`: the domain and all its subdomains.
    Subdomains(Domain),
    /// `*`: every domain.
    Any,
}

/// An actor: the `actor` attribute of `get` and `access`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Actor {
    local: LocalPattern,
    domain: DomainPattern,
}

/// How well an actor matched an address: smaller is better
/// ([`Ord`] compares domain exactness first, then local exactness).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MatchRank {
    /// 0 for an exact domain, else 1 + the characters the wildcard stood for.
    pub domain: usize,
    /// 0 for an exact local part, else 1 + the characters the wildcard
    /// stood for.
    pub local: usize,
}

impl Actor {
    /// Parses the written form (escapes `\*` and `\\`, wildcards as in the
    /// module docs).
    pub fn parse(text: &str) -> Result<Self, AccessError> {
        let invalid = |reason| AccessError::Actor {
            value: text.to_owned(),
            reason,
        };
        // The local part cannot contain `@` (RFC 3340 §2.2 token), so the
        // first `@` separates it from the domain.
        let (local, domain) = text
            .split_once('@')
            .ok_or_else(|| invalid("no \"@\" between local part and domain"))?;
        let domain = match domain {
            "*" => DomainPattern::Any,
            _ => match domain.strip_prefix("*.") {
                Some(rest) => DomainPattern::Subdomains(
                    Domain::parse(rest).map_err(|_| invalid("invalid domain after \"*.\""))?,
                ),
                None => DomainPattern::Exact(
                    Domain::parse(domain).map_err(|_| invalid("invalid domain"))?,
                ),
            },
        };
        if let DomainPattern::Subdomains(d) = &domain
            && d.is_literal()
        {
            return Err(invalid("a domain-literal has no subdomains"));
        }
        let local = parse_local(local).map_err(invalid)?;
        Ok(Self { local, domain })
    }

    /// The actor matching exactly `endpoint` (its written form escapes any
    /// `*` and `\`).
    pub fn exact(endpoint: &Endpoint) -> Self {
        Self {
            local: LocalPattern::Exact(endpoint.local()),
            domain: DomainPattern::Exact(endpoint.domain().clone()),
        }
    }

    /// `apex=*@domain`, or `apex=*@*` without a domain.
    pub fn services(domain: Option<&Domain>) -> Self {
        Self {
            local: LocalPattern::Services,
            domain: domain.map_or(DomainPattern::Any, |d| DomainPattern::Exact(d.clone())),
        }
    }

    /// `*@*`.
    pub fn anyone() -> Self {
        Self {
            local: LocalPattern::Any,
            domain: DomainPattern::Any,
        }
    }

    /// The local-part pattern.
    pub fn local(&self) -> &LocalPattern {
        &self.local
    }

    /// The domain pattern.
    pub fn domain(&self) -> &DomainPattern {
        &self.domain
    }

    /// True if there is no wildcard (the actor names one endpoint).
    pub fn is_exact(&self) -> bool {
        matches!(self.local, LocalPattern::Exact(_))
            && matches!(self.domain, DomainPattern::Exact(_))
    }

    /// The canonical written form: escapes as needed, domain in lower case.
    /// Two actors are "identical" for `get` and `set` (RFC 3341 §3.2) when
    /// their keys are equal.
    pub fn key(&self) -> String {
        self.write(true)
    }

    /// How well this actor matches `address`, or `None` if it does not
    /// (RFC 3341 §3.1).
    pub fn matches(&self, address: &Endpoint) -> Option<MatchRank> {
        let domain = match &self.domain {
            DomainPattern::Exact(d) => (d == address.domain()).then_some(0)?,
            DomainPattern::Subdomains(d) => {
                if address.domain().is_literal() {
                    return None;
                }
                let wanted = d.canonical();
                let have = address.domain().canonical();
                if have == wanted {
                    1
                } else {
                    let prefix = have.strip_suffix(wanted)?.strip_suffix('.')?;
                    (!prefix.is_empty()).then_some(1 + prefix.len() + 1)?
                }
            }
            DomainPattern::Any => 1 + address.domain().as_str().len(),
        };
        let local_text = address.local();
        let local = match &self.local {
            LocalPattern::Exact(l) => (*l == local_text).then_some(0)?,
            LocalPattern::Subaddress(base) => {
                let sub = address.subaddress()?;
                (address.address() == base && !sub.is_empty()).then_some(1 + sub.len())?
            }
            // `apex=*` and `*` split all addresses by `is_service`, so every
            // address matches one of the defaults `apex=*@*` and `*@*`, even
            // `apex=@…` (a service prefix with an empty name, which the
            // endpoint syntax allows: found by the access_match fuzzer).
            LocalPattern::Services => {
                let rest = local_text.strip_prefix(SERVICE_PREFIX)?;
                address.is_service().then_some(1 + rest.len())?
            }
            LocalPattern::Any => (!address.is_service()).then_some(1 + local_text.len())?,
        };
        Some(MatchRank { domain, local })
    }

    fn write(&self, canonical: bool) -> String {
        let mut out = String::new();
        match &self.local {
            LocalPattern::Exact(l) => escape_into(&mut out, l),
            LocalPattern::Subaddress(base) => {
                escape_into(&mut out, base);
                out.push_str("/*");
            }
            LocalPattern::Services => {
                out.push_str(SERVICE_PREFIX);
                out.push('*');
            }
            LocalPattern::Any => out.push('*'),
        }
        out.push('@');
        let name = |d: &Domain| {
            if canonical {
                d.canonical().to_owned()
            } else {
                d.as_str().to_owned()
            }
        };
        match &self.domain {
            DomainPattern::Exact(d) => out.push_str(&name(d)),
            DomainPattern::Subdomains(d) => {
                out.push_str("*.");
                out.push_str(&name(d));
            }
            DomainPattern::Any => out.push('*'),
        }
        out
    }
}

fn escape_into(out: &mut String, literal: &str) {
    for c in literal.chars() {
        if c == '*' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Parses an escaped local part into a pattern.
fn parse_local(text: &str) -> Result<LocalPattern, &'static str> {
    // Unescape, noting where unescaped `*` occur.
    let mut literal = String::new();
    let mut stars = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('*' | '\\')) => literal.push(e),
                _ => return Err("\"\\\" must be followed by \"*\" or \"\\\""),
            },
            '*' => {
                stars.push(literal.len());
                literal.push('*');
            }
            c => literal.push(c),
        }
    }
    let check = |local: &str| {
        // Reuse the endpoint syntax for the literal parts.
        Endpoint::parse(&format!("{local}@example.com"))
            .map(drop)
            .map_err(|_| "the local part is not a valid address[/subaddress]")
    };
    match stars.as_slice() {
        [] => {
            check(&literal)?;
            Ok(LocalPattern::Exact(literal))
        }
        [0] if literal == "*" => Ok(LocalPattern::Any),
        [at] if *at == literal.len() - 1 => {
            let head = &literal[..*at];
            if head == SERVICE_PREFIX {
                Ok(LocalPattern::Services)
            } else if let Some(base) = head.strip_suffix('/') {
                if base.contains('/') {
                    return Err("a subaddress wildcard is address/*");
                }
                check(base)?;
                Ok(LocalPattern::Subaddress(base.to_owned()))
            } else {
                Err(
                    "a local wildcard is \"*\", \"apex=*\" or \"address/*\" (escape a literal \"*\" as \"\\*\")",
                )
            }
        }
        _ => Err(
            "a local wildcard is \"*\", \"apex=*\" or \"address/*\" (escape a literal \"*\" as \"\\*\")",
        ),
    }
}

impl fmt::Display for Actor {
    /// The written form as given (escapes applied, domain as written).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.write(false))
    }
}

impl std::str::FromStr for Actor {
    type Err = AccessError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(text: &str) -> Actor {
        Actor::parse(text).unwrap()
    }

    fn ep(text: &str) -> Endpoint {
        Endpoint::parse(text).unwrap()
    }

    #[test]
    fn forms() {
        assert_eq!(actor("*@*").local(), &LocalPattern::Any);
        assert_eq!(actor("apex=*@*").local(), &LocalPattern::Services);
        assert_eq!(
            actor("fred/*@example.com").local(),
            &LocalPattern::Subaddress("fred".into())
        );
        assert_eq!(
            actor("apex=pubsub/*@example.com").local(),
            &LocalPattern::Subaddress("apex=pubsub".into())
        );
        assert!(matches!(
            actor("*@*.Example.COM").domain(),
            DomainPattern::Subdomains(_)
        ));
        assert_eq!(actor("*@*.Example.COM").key(), "*@*.example.com");
        assert_eq!(actor("*@*.Example.COM").to_string(), "*@*.Example.COM");
        assert!(actor("fred@example.com").is_exact());
    }

    #[test]
    fn escapes_rfc3341_section_3() {
        // "a\b*c@example.com" is written "a\\b\*c@example.com".
        let a = actor(r"a\\b\*c@example.com");
        assert_eq!(a.local(), &LocalPattern::Exact(r"a\b*c".into()));
        assert_eq!(a.to_string(), r"a\\b\*c@example.com");
        assert!(a.matches(&ep(r"a\b*c@example.com")).is_some());
        assert!(a.matches(&ep(r"a\bXc@example.com")).is_none());
        assert_eq!(Actor::exact(&ep(r"a\b*c@example.com")), a);
    }

    #[test]
    fn refusals() {
        for bad in [
            "fred",
            "fr*d@example.com",
            "*fred@example.com",
            "fred/a/*@example.com",
            "**@example.com",
            r"fred\@example.com",
            r"fred\x@example.com",
            "fred@ex*.com",
            "fred@*.",
            "fred@*.[10.0.0.1]",
            "@example.com",
            "fred@",
            "fred/@example.com",
        ] {
            assert!(Actor::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matching_rules() {
        let fred = ep("fred@example.com");
        let fred_wb = ep("fred/appl=wb@example.com");
        let svc = ep("apex=presence@example.com");
        assert!(actor("*@*").matches(&fred).is_some());
        assert!(actor("*@*").matches(&svc).is_none(), "* excludes services");
        assert!(actor("apex=*@*").matches(&svc).is_some());
        assert!(actor("apex=*@*").matches(&fred).is_none());
        // Every address matches exactly one of apex=*@* and *@*.
        let empty_service = ep("apex=@example.com");
        assert!(actor("apex=*@*").matches(&empty_service).is_some());
        assert!(actor("*@*").matches(&empty_service).is_none());
        assert!(actor("fred/*@example.com").matches(&fred_wb).is_some());
        assert!(
            actor("fred/*@example.com").matches(&fred).is_none(),
            "§3.1 note"
        );
        assert!(actor("fred@example.com").matches(&fred_wb).is_none());
        assert!(actor("fred@EXAMPLE.com").matches(&fred).is_some());
        // Erratum 15: the domain wildcard covers the bare domain.
        assert!(actor("*@*.example.com").matches(&fred).is_some());
        assert!(
            actor("*@*.example.com")
                .matches(&ep("a@b.example.com"))
                .is_some()
        );
        assert!(
            actor("*@*.example.com")
                .matches(&ep("a@bexample.com"))
                .is_none()
        );
        assert!(
            actor("*@*.example.com")
                .matches(&ep("a@[10.0.0.1]"))
                .is_none()
        );
    }

    #[test]
    fn ranking_rfc3341_section_3_1() {
        let addr = ep("x@bar.foo.example.com");
        let near = actor("*@*.foo.example.com").matches(&addr).unwrap();
        let far = actor("*@*.example.com").matches(&addr).unwrap();
        let any = actor("*@*").matches(&addr).unwrap();
        let exact = actor("*@bar.foo.example.com").matches(&addr).unwrap();
        assert!(exact < near && near < far && far < any);
        // Domain first: an exact domain with a local wildcard beats a
        // wildcard domain with an exact local part.
        let local_exact = actor("x@*.foo.example.com").matches(&addr).unwrap();
        assert!(exact < local_exact);
        // Then local: fred/* beats * for fred/appl=wb.
        let sub = ep("fred/appl=wb@example.com");
        assert!(
            actor("fred/*@example.com").matches(&sub).unwrap()
                < actor("*@example.com").matches(&sub).unwrap()
        );
    }
}
