//! Addresses across the gateway: XEP-0106 escaping of JID localparts and
//! the two mappings between APEX endpoints and JIDs (RFC 3922 §3 maps
//! only localparts; the domains are the gateway's own).
//!
//! * An APEX endpoint `alice@a.test` appears in XMPP as the JID
//!   `alice\40a.test@<component>`: the whole endpoint, escaped, is the
//!   localpart at the component's domain.
//! * An XMPP user `romeo@montague.lit` appears in APEX as the endpoint
//!   `romeo%montague.lit@<gateway domain>`: the `%` hack of mail
//!   gateways, the last `%` separating the XMPP node from its domain.
//!
//! Resources are dropped (RFC 3922 §4.1.1–2).

use thiserror::Error;

/// Why an address cannot cross the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum AddressError {
    /// The APEX local part has no `%` naming an XMPP domain.
    #[error("{0:?} names no XMPP address: the local part needs node%domain")]
    NoPercent(String),
    /// The XMPP node is empty.
    #[error("{0:?} has an empty XMPP node")]
    EmptyNode(String),
    /// The XMPP domain is not a plausible domain name.
    #[error("{0:?} is not an XMPP domain")]
    BadDomain(String),
    /// The JID has no localpart.
    #[error("the JID {0:?} has no localpart")]
    NoLocalpart(String),
    /// The localpart does not unescape to an APEX endpoint.
    #[error("the JID localpart {0:?} does not name an APEX endpoint")]
    NotAnEndpoint(String),
    /// The unescaped node holds a character APEX addresses cannot hold.
    #[error("the XMPP node {0:?} holds '@', '/' or a control character")]
    NodeCharacter(String),
    /// `\20` at the start or end of an escaped localpart (XEP-0106 §3.2).
    #[error("the escaped localpart {0:?} begins or ends with \\20")]
    EdgeSpace(String),
}

/// The characters XEP-0106 §3.1 escapes, with their escape codes.
const ESCAPES: [(char, &str); 10] = [
    (' ', "20"),
    ('"', "22"),
    ('&', "26"),
    ('\'', "27"),
    ('/', "2f"),
    (':', "3a"),
    ('<', "3c"),
    ('>', "3e"),
    ('@', "40"),
    ('\\', "5c"),
];

fn escape_code(hex: &str) -> Option<char> {
    ESCAPES
        .iter()
        .find(|(_, code)| *code == hex)
        .map(|(c, _)| *c)
}

/// Escapes `text` into a JID localpart (XEP-0106 §4.2). A backslash is
/// escaped only where it would otherwise start an escape sequence.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let bytes = text.as_bytes();
    for (index, c) in text.char_indices() {
        let code = ESCAPES.iter().find(|(e, _)| *e == c).map(|(_, code)| *code);
        match code {
            Some("5c") => {
                let next = bytes.get(index + 1..index + 3);
                let starts_escape = next
                    .and_then(|n| std::str::from_utf8(n).ok())
                    .is_some_and(|n| escape_code(n).is_some());
                if starts_escape {
                    out.push_str("\\5c");
                } else {
                    out.push('\\');
                }
            }
            Some(code) => {
                out.push('\\');
                out.push_str(code);
            }
            None => out.push(c),
        }
    }
    out
}

/// Reverses [`escape`] (XEP-0106 §4.3): each `\xx` naming an escaped
/// character (lowercase hex only, §3.1) becomes it; other backslashes
/// stay.
pub(crate) fn unescape(text: &str) -> Result<String, AddressError> {
    if text.starts_with("\\20") || text.ends_with("\\20") {
        return Err(AddressError::EdgeSpace(text.to_owned()));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.get(..2).and_then(escape_code) {
            Some(c) => {
                out.push(c);
                rest = &after[2..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A bare JID split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Jid {
    /// The localpart as written on the wire (escaped).
    pub(crate) node: Option<String>,
    /// The domainpart.
    pub(crate) domain: String,
}

impl Jid {
    /// Splits `text` (`[node@]domain[/resource]`), dropping the resource.
    pub(crate) fn parse(text: &str) -> Result<Self, AddressError> {
        let bare = text.split_once('/').map_or(text, |(bare, _)| bare);
        let (node, domain) = match bare.split_once('@') {
            Some((node, domain)) => (Some(node.to_owned()), domain),
            None => (None, bare),
        };
        if node.as_deref() == Some("") {
            return Err(AddressError::EmptyNode(text.to_owned()));
        }
        check_domain(domain)?;
        Ok(Self {
            node,
            domain: domain.to_ascii_lowercase(),
        })
    }
}

impl std::fmt::Display for Jid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.node {
            Some(node) => write!(f, "{node}@{}", self.domain),
            None => f.write_str(&self.domain),
        }
    }
}

fn check_domain(domain: &str) -> Result<(), AddressError> {
    let plausible = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if plausible {
        Ok(())
    } else {
        Err(AddressError::BadDomain(domain.to_owned()))
    }
}

/// The XMPP user an APEX recipient of the gateway domain names: the local
/// part `node%domain` (the last `%` splits) becomes `escape(node)@domain`.
pub(crate) fn recipient_jid(apex_local: &str) -> Result<Jid, AddressError> {
    let (node, domain) = apex_local
        .rsplit_once('%')
        .ok_or_else(|| AddressError::NoPercent(apex_local.to_owned()))?;
    if node.is_empty() {
        return Err(AddressError::EmptyNode(apex_local.to_owned()));
    }
    check_domain(domain)?;
    Ok(Jid {
        node: Some(escape(node)),
        domain: domain.to_ascii_lowercase(),
    })
}

/// The JID at `component` that stands for the APEX endpoint `endpoint`
/// (its whole text escaped as the localpart).
pub(crate) fn endpoint_jid(endpoint: &str, component: &str) -> Jid {
    Jid {
        node: Some(escape(endpoint)),
        domain: component.to_owned(),
    }
}

/// The APEX endpoint text a JID at the component stands for (the
/// reverse of [`endpoint_jid`]).
pub(crate) fn endpoint_of(jid: &Jid) -> Result<String, AddressError> {
    let node = jid
        .node
        .as_deref()
        .ok_or_else(|| AddressError::NoLocalpart(jid.to_string()))?;
    let endpoint = unescape(node)?;
    imxp_apex::Endpoint::parse(&endpoint)
        .map_err(|_| AddressError::NotAnEndpoint(node.to_owned()))?;
    Ok(endpoint)
}

/// The APEX local part that stands for an XMPP user (`node%domain`, the
/// node unescaped); the user needs a localpart, and its node must not
/// hold what an APEX address cannot (`@`, `/`, controls).
pub(crate) fn apex_local_of(jid: &Jid) -> Result<String, AddressError> {
    let node = jid
        .node
        .as_deref()
        .ok_or_else(|| AddressError::NoLocalpart(jid.to_string()))?;
    let unescaped = unescape(node)?;
    if unescaped
        .chars()
        .any(|c| c == '@' || c == '/' || c.is_control())
        || unescaped.starts_with(' ')
        || unescaped.ends_with(' ')
    {
        return Err(AddressError::NodeCharacter(node.to_owned()));
    }
    Ok(format!("{unescaped}%{}", jid.domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep_0106_table_both_ways() {
        // XEP-0106 §5 examples.
        let cases = [
            ("space cadet", "space\\20cadet"),
            ("call me \"ishmael\"", "call\\20me\\20\\22ishmael\\22"),
            ("at&t guy", "at\\26t\\20guy"),
            ("d'artagnan", "d\\27artagnan"),
            ("/.fanboy", "\\2f.fanboy"),
            ("::foo::", "\\3a\\3afoo\\3a\\3a"),
            ("<foo>", "\\3cfoo\\3e"),
            ("user@host", "user\\40host"),
            ("c:\\net", "c\\3a\\net"),
            ("c:\\\\net", "c\\3a\\\\net"),
            ("c:\\cool stuff", "c\\3a\\cool\\20stuff"),
            ("c:\\5commas", "c\\3a\\5c5commas"),
        ];
        for (plain, escaped) in cases {
            assert_eq!(escape(plain), escaped, "escape {plain:?}");
            assert_eq!(unescape(escaped).unwrap(), plain, "unescape {escaped:?}");
        }
    }

    #[test]
    fn uppercase_hex_is_not_an_escape_and_edge_spaces_are_refused() {
        assert_eq!(unescape("a\\2Fb").unwrap(), "a\\2Fb");
        assert!(matches!(unescape("\\20x"), Err(AddressError::EdgeSpace(_))));
        assert!(matches!(unescape("x\\20"), Err(AddressError::EdgeSpace(_))));
    }

    #[test]
    fn apex_to_xmpp_and_back() {
        let jid = recipient_jid("romeo%montague.lit").unwrap();
        assert_eq!(jid.to_string(), "romeo@montague.lit");
        assert_eq!(apex_local_of(&jid).unwrap(), "romeo%montague.lit");
        // The last % splits: a node may hold one.
        let jid = recipient_jid("50%off%shop.example").unwrap();
        assert_eq!(jid.to_string(), "50%off@shop.example");
        let me = endpoint_jid("alice/appl=im@a.test", "imxp.montague.lit");
        assert_eq!(
            me.to_string(),
            "alice\\2fappl=im\\40a.test@imxp.montague.lit"
        );
        assert_eq!(endpoint_of(&me).unwrap(), "alice/appl=im@a.test");
    }

    #[test]
    fn bad_addresses_are_named() {
        assert!(matches!(
            recipient_jid("romeo"),
            Err(AddressError::NoPercent(_))
        ));
        assert!(matches!(
            recipient_jid("%montague.lit"),
            Err(AddressError::EmptyNode(_))
        ));
        assert!(matches!(
            recipient_jid("r%mont ague"),
            Err(AddressError::BadDomain(_))
        ));
        let server = Jid::parse("montague.lit/x").unwrap();
        assert!(matches!(
            apex_local_of(&server),
            Err(AddressError::NoLocalpart(_))
        ));
        let slash = Jid::parse("a\\2fb@montague.lit").unwrap();
        assert!(matches!(
            apex_local_of(&slash),
            Err(AddressError::NodeCharacter(_))
        ));
        let not_endpoint = Jid::parse("alice@imxp.montague.lit").unwrap();
        assert!(matches!(
            endpoint_of(&not_endpoint),
            Err(AddressError::NotAnEndpoint(_))
        ));
        assert_eq!(
            Jid::parse("Romeo@Montague.LIT/orchard")
                .unwrap()
                .to_string(),
            "Romeo@montague.lit"
        );
    }
}
