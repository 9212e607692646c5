//! XMPP stanzas as the gateway reads and writes them (RFC 6120 §8,
//! XEP-0114): the parsed form of a received stanza, and the text of the
//! stanzas, stream header and handshake it sends.

use imxp_wire::xml::{self, Element, XmlLimits, is_xml_char};
use thiserror::Error;

/// The RFC 3923 `<e2e/>` namespace as registered (§12.1).
pub(crate) const E2E_NS: &str = "urn:ietf:params:xml:ns:xmpp-e2e";
/// The spelling RFC 3923 §9 and its error examples use; accepted on input.
pub(crate) const E2E_NS_VARIANT: &str = "urn:ietf:params:xml:xmpp-e2e";
/// Our own extension namespace: the hop budget a stanza carries across
/// the gateway (`<hops/>`), and the CPIM header namespace for the XMPP
/// `thread` and `type` (docs/decisions.md, "XMPP gateway").
pub(crate) const IMXP_NS: &str = "urn:x-imxp:xmpp:0";
/// RFC 6120 §8.3.3 stanza error conditions.
pub(crate) const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// A stanza that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum StanzaError {
    /// Not well-formed, or over the XML limits.
    #[error("stanza XML: {0}")]
    Xml(String),
    /// A top-level element that is no stanza.
    #[error("<{0}/> is not a stanza")]
    NotAStanza(String),
    /// The `<hops/>` extension does not hold a count 0..255.
    #[error("<hops/> holds {0:?}, not a count 0..255")]
    Hops(String),
}

/// The three stanza kinds (RFC 6120 §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `<message/>`
    Message,
    /// `<presence/>`
    Presence,
    /// `<iq/>`
    Iq,
}

impl Kind {
    /// The element name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Presence => "presence",
            Self::Iq => "iq",
        }
    }
}

/// An error a stanza carries (RFC 6120 §8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorInfo {
    /// `auth`, `cancel`, `continue`, `modify` or `wait`.
    pub(crate) error_type: String,
    /// The defined condition's element name.
    pub(crate) condition: String,
    /// The human-readable `<text/>`, if any.
    pub(crate) text: Option<String>,
}

/// A received stanza.
#[derive(Debug, Clone)]
pub(crate) struct Stanza {
    /// Which kind.
    pub(crate) kind: Kind,
    /// `from`, `to`, `id`, `type` attributes.
    pub(crate) from: Option<String>,
    /// See [`Stanza::from`].
    pub(crate) to: Option<String>,
    /// See [`Stanza::from`].
    pub(crate) id: Option<String>,
    /// See [`Stanza::from`].
    pub(crate) stanza_type: Option<String>,
    /// The element itself.
    pub(crate) element: Element,
}

/// What a `<message/>` carries that the gateway maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MessageFields {
    /// `<body/>`, the one without `xml:lang` or the first.
    pub(crate) body: Option<String>,
    /// `<subject/>` and its `xml:lang`.
    pub(crate) subject: Option<(String, Option<String>)>,
    /// `<thread/>`.
    pub(crate) thread: Option<String>,
    /// The text of `<e2e/>` (RFC 3923 §3.1).
    pub e2e: Option<String>,
    /// Our `<hops/>`: relays the datagram may still pass.
    pub(crate) hops: Option<u8>,
    /// `<error/>` of a `type='error'` message.
    pub(crate) error: Option<ErrorInfo>,
}

/// Parses one top-level element of a component stream; stanzas over
/// `max_size` octets never reach here ([`super::frame`]).
pub(crate) fn parse(bytes: &[u8], max_size: usize) -> Result<Stanza, StanzaError> {
    let document = xml::parse(bytes, &XmlLimits::new(max_size, 32))
        .map_err(|e| StanzaError::Xml(e.to_string()))?;
    let root = document.root;
    let kind = match local_name(&root.name) {
        "message" => Kind::Message,
        "presence" => Kind::Presence,
        "iq" => Kind::Iq,
        other => return Err(StanzaError::NotAStanza(other.to_owned())),
    };
    let attribute = |name: &str| root.attribute(name).map(str::to_owned);
    Ok(Stanza {
        kind,
        from: attribute("from"),
        to: attribute("to"),
        id: attribute("id"),
        stanza_type: attribute("type"),
        element: root,
    })
}

fn local_name(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, local)| local)
}

/// The namespace an element declares for itself (stanza children in a
/// component stream carry their own `xmlns` when not `jabber:*`).
fn namespace(element: &Element) -> Option<&str> {
    element.attribute("xmlns")
}

impl Stanza {
    /// The fields of a message the gateway maps.
    pub(crate) fn message_fields(&self) -> Result<MessageFields, StanzaError> {
        let mut fields = MessageFields::default();
        for child in self.element.elements() {
            match (local_name(&child.name), namespace(child)) {
                ("body", None)
                    if fields.body.is_none() || child.attribute("xml:lang").is_none() =>
                {
                    fields.body = Some(child.text());
                }
                ("subject", None)
                    if fields.subject.is_none() || child.attribute("xml:lang").is_none() =>
                {
                    fields.subject =
                        Some((child.text(), child.attribute("xml:lang").map(str::to_owned)));
                }
                ("thread", None) => fields.thread = Some(child.text()),
                ("e2e", Some(E2E_NS | E2E_NS_VARIANT)) => fields.e2e = Some(child.text()),
                ("hops", Some(IMXP_NS)) => {
                    let text = child.text();
                    fields.hops = Some(
                        text.trim()
                            .parse()
                            .map_err(|_| StanzaError::Hops(text.clone()))?,
                    );
                }
                ("error", None) => fields.error = Some(error_info(child)),
                _ => {}
            }
        }
        Ok(fields)
    }
}

fn error_info(element: &Element) -> ErrorInfo {
    let mut condition = String::from("undefined-condition");
    let mut text = None;
    for child in element.elements() {
        if namespace(child) == Some(STANZAS_NS) {
            if local_name(&child.name) == "text" {
                text = Some(child.text());
            } else {
                condition = local_name(&child.name).to_owned();
            }
        }
    }
    ErrorInfo {
        error_type: element.attribute("type").unwrap_or("cancel").to_owned(),
        condition,
        text,
    }
}

/// Escapes text for XML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// A message the gateway sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OutMessage {
    /// `from` (a JID at the component).
    pub(crate) from: String,
    /// `to`.
    pub(crate) to: String,
    /// `id`.
    pub(crate) id: String,
    /// `type` (`chat` when the source says nothing, RFC 3922 §4.2.10).
    pub(crate) message_type: String,
    /// The fields.
    pub(crate) fields: MessageFields,
}

impl OutMessage {
    /// The stanza's text. The `<e2e/>` object goes in one CDATA section
    /// (RFC 3923 §3.1); the caller checked that it can ([`cdata_safe`]).
    pub(crate) fn to_xml(&self) -> String {
        let mut out = format!(
            "<message from='{}' to='{}' id='{}' type='{}'>",
            escape(&self.from),
            escape(&self.to),
            escape(&self.id),
            escape(&self.message_type),
        );
        let fields = &self.fields;
        if let Some((subject, lang)) = &fields.subject {
            match lang {
                Some(lang) => out.push_str(&format!(
                    "<subject xml:lang='{}'>{}</subject>",
                    escape(lang),
                    escape(subject)
                )),
                None => out.push_str(&format!("<subject>{}</subject>", escape(subject))),
            }
        }
        if let Some(body) = &fields.body {
            out.push_str(&format!("<body>{}</body>", escape(body)));
        }
        if let Some(thread) = &fields.thread {
            out.push_str(&format!("<thread>{}</thread>", escape(thread)));
        }
        if let Some(e2e) = &fields.e2e {
            out.push_str(&format!("<e2e xmlns='{E2E_NS}'><![CDATA[{e2e}]]></e2e>"));
        }
        if let Some(hops) = fields.hops {
            out.push_str(&format!("<hops xmlns='{IMXP_NS}'>{hops}</hops>"));
        }
        out.push_str("</message>");
        out
    }
}

/// Whether `text` can travel in one CDATA section and come back the same
/// after an XML parser's line-end normalisation (XML 1.0 §2.11) is undone
/// by [`restore_crlf`]: no `]]>`, no characters XML forbids, and every
/// line ending CRLF.
pub(crate) fn cdata_safe(text: &str) -> bool {
    let bytes = text.as_bytes();
    !text.contains("]]>")
        && text.chars().all(is_xml_char)
        && bytes.iter().enumerate().all(|(i, &b)| match b {
            b'\r' => bytes.get(i + 1) == Some(&b'\n'),
            b'\n' => i > 0 && bytes[i - 1] == b'\r',
            _ => true,
        })
}

/// Undoes XML line-end normalisation: every line feed becomes CRLF.
pub(crate) fn restore_crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// An error answer to a stanza (RFC 6120 §8.3): `from`/`to` swapped,
/// same `id`, the condition in the stanzas namespace.
pub(crate) fn error_reply(
    kind: Kind,
    original_from: &str,
    original_to: &str,
    id: Option<&str>,
    error_type: &str,
    condition: &str,
    text: &str,
) -> String {
    let id = id.map_or(String::new(), |id| format!(" id='{}'", escape(id)));
    format!(
        "<{kind} from='{from}' to='{to}'{id} type='error'><error type='{error_type}'>\
         <{condition} xmlns='{STANZAS_NS}'/><text xmlns='{STANZAS_NS}'>{text}</text>\
         </error></{kind}>",
        kind = kind.name(),
        from = escape(original_to),
        to = escape(original_from),
        text = escape(text),
    )
}

/// A presence stanza (RFC 6121 §4): `presence_type` `None` is available.
pub(crate) fn presence(
    from: &str,
    to: &str,
    id: &str,
    presence_type: Option<&str>,
    status: Option<&str>,
) -> String {
    let presence_type = presence_type.map_or(String::new(), |t| format!(" type='{}'", escape(t)));
    let status = status.map_or(String::new(), |s| format!("<status>{}</status>", escape(s)));
    if status.is_empty() {
        format!(
            "<presence from='{}' to='{}' id='{}'{presence_type}/>",
            escape(from),
            escape(to),
            escape(id)
        )
    } else {
        format!(
            "<presence from='{}' to='{}' id='{}'{presence_type}>{status}</presence>",
            escape(from),
            escape(to),
            escape(id)
        )
    }
}

/// An XEP-0199 ping to the server, the round trip that confirms what was
/// sent before it (docs/decisions.md, "XMPP gateway").
pub(crate) fn ping(from: &str, to: &str, id: &str) -> String {
    format!(
        "<iq from='{}' to='{}' id='{}' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
        escape(from),
        escape(to),
        escape(id)
    )
}

/// The component's stream header (XEP-0114 §3): `to` is the component's
/// own name.
pub(crate) fn stream_header(component: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{}'>",
        escape(component)
    )
}

/// The `id` attribute of the server's stream header.
pub(crate) fn stream_id(header: &str) -> Option<String> {
    // The header is an unclosed start tag: close it to parse it.
    let closed = format!(
        "{}</stream:stream>",
        header.trim_start_matches(|c| c != '<')
    );
    let document = xml::parse(closed.as_bytes(), &XmlLimits::new(8192, 2)).ok()?;
    document.root.attribute("id").map(str::to_owned)
}

/// The handshake (XEP-0114 §3): lowercase hex of SHA-1(stream id ‖
/// secret), the secret hashed as it is (v1.6).
pub(crate) fn handshake(stream_id: &str, secret: &str) -> String {
    let mut input = Vec::with_capacity(stream_id.len() + secret.len());
    input.extend_from_slice(stream_id.as_bytes());
    input.extend_from_slice(secret.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("<handshake>{hex}</handshake>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_matches_xep_0114() {
        // XEP-0114 §3's example stream id and hash (secret "test").
        assert_eq!(
            handshake("3BF96D32", "test"),
            "<handshake>aaee83c26aeeafcbabeabfcbcd50df997e0a2a1e</handshake>"
        );
        assert_eq!(
            stream_id(
                "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='gw' id='3BF96D32'>"
            ),
            Some("3BF96D32".into())
        );
    }

    #[test]
    fn a_message_round_trips_through_text() {
        let out = OutMessage {
            from: "alice\\40a.test@imxp.montague.lit".into(),
            to: "romeo@montague.lit".into(),
            id: "m1".into(),
            message_type: "normal".into(),
            fields: MessageFields {
                body: Some("a < b & 'c'\r\nline".into()),
                subject: Some(("hi".into(), Some("cz".into()))),
                thread: Some("t-1".into()),
                e2e: Some("Content-Type: x\r\n\r\nbody\r\n".into()),
                hops: Some(7),
                error: None,
            },
        };
        let text = out.to_xml();
        let stanza = parse(text.as_bytes(), 1 << 16).unwrap();
        assert_eq!(stanza.kind, Kind::Message);
        assert_eq!(stanza.to.as_deref(), Some("romeo@montague.lit"));
        let fields = stanza.message_fields().unwrap();
        assert_eq!(fields.body.as_deref(), Some("a < b & 'c'\r\nline"));
        assert_eq!(fields.subject, Some(("hi".into(), Some("cz".into()))));
        assert_eq!(fields.thread.as_deref(), Some("t-1"));
        assert_eq!(fields.hops, Some(7));
        let e2e = fields.e2e.unwrap();
        assert_eq!(restore_crlf(&e2e), "Content-Type: x\r\n\r\nbody\r\n");
    }

    #[test]
    fn errors_are_read_with_their_condition() {
        let text = format!(
            "<message from='x@y' to='a@b' id='m1' type='error'><error type='cancel'>\
             <service-unavailable xmlns='{STANZAS_NS}'/></error></message>"
        );
        let stanza = parse(text.as_bytes(), 4096).unwrap();
        let error = stanza.message_fields().unwrap().error.unwrap();
        assert_eq!(error.error_type, "cancel");
        assert_eq!(error.condition, "service-unavailable");
        let reply = error_reply(
            Kind::Message,
            "r@m/x",
            "a@gw",
            Some("7"),
            "modify",
            "policy-violation",
            "too big",
        );
        let parsed = parse(reply.as_bytes(), 4096).unwrap();
        assert_eq!(parsed.to.as_deref(), Some("r@m/x"));
        assert_eq!(
            parsed.message_fields().unwrap().error.unwrap().condition,
            "policy-violation"
        );
    }

    #[test]
    fn cdata_safety() {
        assert!(cdata_safe("a\r\nb"));
        assert!(!cdata_safe("a\nb"));
        assert!(!cdata_safe("a\rb"));
        assert!(!cdata_safe("x]]>y"));
        assert!(!cdata_safe("nul\0"));
    }
}
