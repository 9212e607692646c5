//! PIDF, the common presence format (RFC 3863, `application/pidf+xml`),
//! and the conversion between it and the APEX presence entry (RFC 3343
//! §3), so that presence can cross to other presence systems (RFC 3859
//! CPP gateways) and be shown in the common format.
//!
//! # Mapping
//!
//! | APEX (`presence`, `tuple`) | PIDF |
//! |---|---|
//! | `publisher` `fred@example.com` | `entity` `pres:fred@example.com` (RFC 3859 §3) |
//! | `tuple` | `tuple`, `id` derived from the destination (stable across documents) |
//! | `availableUntil` later than now / not | `<basic>open</basic>` / `closed`, and `<x:until>` |
//! | `destination` `apex:fred/appl=im@example.com` | `contact` `im:fred/appl=im@example.com` (RFC 3860 §3); other URIs as they are |
//! | `tupleInfo`, `publisherInfo` `data:,text` | `note` of the tuple, of the presence |
//! | other `tupleInfo`/`publisherInfo`, `capability` | `<x:info>`, `<x:capability baseline>` |
//! | `lastUpdate` | `timestamp` of every tuple |
//!
//! where `x` is imxp's extension namespace [`IMXP_PIDF_NS`]: a PIDF reader
//! that does not know it ignores those elements (RFC 3863 §4.2.3), and
//! an imxp reader gets the entry back as it was — except that an `im:`
//! destination comes back as `apex:` (the two name the same inbox).
//!
//! The service changes `lastUpdate` strictly forwards on every change, so
//! two different documents of one presentity never carry the same
//! timestamp (RFC 3863 §4.1.7).

use std::collections::HashMap;
use std::fmt::Write as _;

use thiserror::Error;

use crate::access::Timestamp;
use crate::address::Endpoint;
use crate::limits::Limits;
use crate::xml::{self, Element};

use super::entry::{Capability, PresenceEntry, Tuple};

/// The PIDF namespace (RFC 3863 §4.2.2).
pub const PIDF_NS: &str = "urn:ietf:params:xml:ns:pidf";
/// imxp's PIDF extension namespace, for what PIDF has no element for.
pub const IMXP_PIDF_NS: &str = "urn:x-imxp:pidf";
/// The media type (RFC 3863 §5.1).
pub const PIDF_MEDIA_TYPE: &str = "application/pidf+xml";
/// `availableUntil` of a tuple read as open from a PIDF document that does
/// not say until when: the largest RFC 3339 time.
pub const FOREVER: &str = "9999-12-31T23:59:59.999Z";

/// Why a PIDF document was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PidfError {
    /// Not well-formed XML (or past the size and depth limits).
    #[error("not well-formed XML: {0}")]
    Xml(String),
    /// RFC 3863 §4.1: "the document MUST have an XML declaration".
    #[error("a PIDF document starts with an XML declaration (<?xml version=\"1.0\"?>)")]
    NoDeclaration,
    /// The root is not `presence` in the PIDF namespace.
    #[error("the root element is {0}, not presence in {PIDF_NS}")]
    Root(String),
    /// A required attribute or element is missing or malformed.
    #[error("{0}")]
    Invalid(String),
}

/// A PIDF `note` (§4.1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The text.
    pub text: String,
    /// `xml:lang`, if given.
    pub lang: Option<String>,
}

/// A PIDF `contact` (§4.1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The URI.
    pub uri: String,
    /// `priority`, as written (0 to 1, at most three decimals).
    pub priority: Option<String>,
}

/// A PIDF `tuple` (§4.1.2), with imxp's extension elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidfTuple {
    /// `id`.
    pub id: String,
    /// `<basic>`: `Some(true)` open, `Some(false)` closed, `None` absent.
    pub basic: Option<bool>,
    /// `<contact>`.
    pub contact: Option<Contact>,
    /// `<note>`s.
    pub notes: Vec<Note>,
    /// `<timestamp>`.
    pub timestamp: Option<Timestamp>,
    /// `<x:until>`: the APEX `availableUntil`.
    pub until: Option<Timestamp>,
    /// `<x:info>`: an APEX `tupleInfo` that is not a note.
    pub info: Option<String>,
    /// `<x:capability baseline>`: APEX capabilities.
    pub capabilities: Vec<Capability>,
}

/// A PIDF document (§4.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidfDocument {
    /// `entity`, a `pres:` URI.
    pub entity: String,
    /// The tuples.
    pub tuples: Vec<PidfTuple>,
    /// `<note>`s about the presentity.
    pub notes: Vec<Note>,
    /// `<x:info>`: an APEX `publisherInfo` that is not a note.
    pub info: Option<String>,
}

impl PidfDocument {
    /// The document for `entry` as it stands at `now_ms` (milliseconds
    /// since the Unix epoch; decides open or closed).
    pub fn from_entry(entry: &PresenceEntry, now_ms: i64) -> Self {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let tuples = entry
            .tuples
            .iter()
            .map(|tuple| {
                let mut id = tuple_id(&tuple.destination);
                let count = seen.entry(id.clone()).or_insert(0);
                *count += 1;
                if *count > 1 {
                    let _ = write!(id, "-{count}");
                }
                let (notes, info) = split_info(&tuple.tuple_info);
                PidfTuple {
                    id,
                    basic: Some(tuple.is_open(now_ms)),
                    contact: Some(Contact {
                        uri: contact_of(&tuple.destination),
                        priority: None,
                    }),
                    notes,
                    timestamp: Some(entry.last_update.clone()),
                    until: Some(tuple.available_until.clone()),
                    info,
                    capabilities: tuple.capabilities.clone(),
                }
            })
            .collect();
        let (notes, info) = split_info(&entry.publisher_info);
        Self {
            entity: pres_uri(&entry.publisher),
            tuples,
            notes,
            info,
        }
    }

    /// The APEX entry this document describes. `now_ms` stands in for a
    /// missing timestamp (as `lastUpdate`) and for when a `closed` tuple
    /// without `<x:until>` stopped being available.
    pub fn to_entry(&self, now_ms: i64) -> Result<PresenceEntry, PidfError> {
        let publisher = endpoint_of_uri(&self.entity).ok_or_else(|| {
            PidfError::Invalid(format!(
                "entity {:?} is not a pres: URI of an endpoint",
                self.entity
            ))
        })?;
        let last_update = self
            .tuples
            .iter()
            .filter_map(|t| t.timestamp.clone())
            .max()
            .unwrap_or_else(|| Timestamp::from_unix_millis(now_ms));
        let mut tuples: Vec<Tuple> = self
            .tuples
            .iter()
            .map(|t| {
                let destination = t
                    .contact
                    .as_ref()
                    .map_or_else(|| format!("apex:{publisher}"), |c| destination_of(&c.uri));
                let available_until = match (&t.until, t.basic) {
                    (Some(until), _) => until.clone(),
                    (None, Some(false)) => t
                        .timestamp
                        .clone()
                        .unwrap_or_else(|| Timestamp::from_unix_millis(now_ms)),
                    (None, _) => Timestamp::parse(FOREVER).expect("constant"),
                };
                Tuple {
                    destination,
                    available_until,
                    tuple_info: join_info(&t.notes, t.info.as_deref()),
                    capabilities: t.capabilities.clone(),
                }
            })
            .collect();
        if tuples.is_empty() {
            // An APEX entry has at least one tuple: "nowhere, not available".
            tuples.push(Tuple::new(format!("apex:{publisher}"), last_update.clone()));
        }
        Ok(PresenceEntry {
            publisher,
            last_update,
            publisher_info: join_info(&self.notes, self.info.as_deref()),
            tuples,
        })
    }

    /// The document, with its XML declaration (§4.1).
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str("<presence");
        xml::push_attribute(&mut out, "xmlns", PIDF_NS);
        xml::push_attribute(&mut out, "xmlns:x", IMXP_PIDF_NS);
        xml::push_attribute(&mut out, "entity", &self.entity);
        out.push_str(">\n");
        for tuple in &self.tuples {
            out.push_str("  <tuple");
            xml::push_attribute(&mut out, "id", &tuple.id);
            out.push_str(">\n    <status>");
            if let Some(open) = tuple.basic {
                out.push_str(if open {
                    "<basic>open</basic>"
                } else {
                    "<basic>closed</basic>"
                });
            }
            out.push_str("</status>\n");
            if let Some(until) = &tuple.until {
                push_text_element(&mut out, "    ", "x:until", &[], until.as_str());
            }
            if let Some(info) = &tuple.info {
                push_text_element(&mut out, "    ", "x:info", &[], info);
            }
            for capability in &tuple.capabilities {
                push_text_element(
                    &mut out,
                    "    ",
                    "x:capability",
                    &[("baseline", &capability.baseline)],
                    &capability.text,
                );
            }
            if let Some(contact) = &tuple.contact {
                let priority: Vec<(&str, &str)> = contact
                    .priority
                    .as_deref()
                    .map(|p| ("priority", p))
                    .into_iter()
                    .collect();
                push_text_element(&mut out, "    ", "contact", &priority, &contact.uri);
            }
            push_notes(&mut out, "    ", &tuple.notes);
            if let Some(timestamp) = &tuple.timestamp {
                push_text_element(&mut out, "    ", "timestamp", &[], &pidf_time(timestamp));
            }
            out.push_str("  </tuple>\n");
        }
        push_notes(&mut out, "  ", &self.notes);
        if let Some(info) = &self.info {
            push_text_element(&mut out, "  ", "x:info", &[], info);
        }
        out.push_str("</presence>\n");
        out
    }

    /// Parses a PIDF document. Elements of other namespaces are ignored
    /// (§4.2.3), except imxp's own extension elements.
    pub fn parse(document: &[u8]) -> Result<Self, PidfError> {
        let text = document.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(document);
        if !text.starts_with(b"<?xml") {
            return Err(PidfError::NoDeclaration);
        }
        let doc =
            xml::parse(text, &Limits::default()).map_err(|e| PidfError::Xml(e.to_string()))?;
        let scope = Scope::root().enter(&doc.root);
        if scope.name(&doc.root) != (PIDF_NS, "presence") {
            return Err(PidfError::Root(doc.root.name));
        }
        let entity = doc
            .root
            .attribute("entity")
            .ok_or_else(|| PidfError::Invalid("presence lacks entity".into()))?
            .trim()
            .to_owned();
        let mut document = Self {
            entity,
            tuples: Vec::new(),
            notes: Vec::new(),
            info: None,
        };
        for child in doc.root.elements() {
            let inner = scope.enter(child);
            match inner.name(child) {
                (PIDF_NS, "tuple") => document.tuples.push(parse_tuple(child, &inner)?),
                (PIDF_NS, "note") => document.notes.push(note(child)),
                (IMXP_PIDF_NS, "info") => document.info = Some(child.text().trim().to_owned()),
                _ => {} // unknown: ignored with all its content (§4.2.3)
            }
        }
        Ok(document)
    }
}

fn parse_tuple(element: &Element, scope: &Scope) -> Result<PidfTuple, PidfError> {
    let id = element
        .attribute("id")
        .ok_or_else(|| PidfError::Invalid("tuple lacks id".into()))?
        .to_owned();
    let mut tuple = PidfTuple {
        id,
        basic: None,
        contact: None,
        notes: Vec::new(),
        timestamp: None,
        until: None,
        info: None,
        capabilities: Vec::new(),
    };
    let mut status_seen = false;
    for child in element.elements() {
        let inner = scope.enter(child);
        match inner.name(child) {
            (PIDF_NS, "status") => {
                status_seen = true;
                for value in child.elements() {
                    let value_scope = inner.enter(value);
                    // Unknown status values are ignored, with or without
                    // mustUnderstand (§4.2.3): <basic> is all imxp reads.
                    if value_scope.name(value) == (PIDF_NS, "basic") {
                        tuple.basic = Some(match value.text().trim() {
                            "open" => true,
                            "closed" => false,
                            other => {
                                return Err(PidfError::Invalid(format!(
                                    "basic is open or closed, not {other:?}"
                                )));
                            }
                        });
                    }
                }
            }
            (PIDF_NS, "contact") => {
                tuple.contact = Some(Contact {
                    uri: child.text().trim().to_owned(),
                    priority: child
                        .attribute("priority")
                        .filter(|p| valid_priority(p))
                        .map(str::to_owned),
                });
            }
            (PIDF_NS, "note") => tuple.notes.push(note(child)),
            (PIDF_NS, "timestamp") => {
                let text = child.text();
                tuple.timestamp = Some(Timestamp::parse(text.trim()).map_err(|_| {
                    PidfError::Invalid(format!("timestamp {text:?} is not an RFC 3339 date-time"))
                })?);
            }
            (IMXP_PIDF_NS, "until") => {
                let text = child.text();
                tuple.until = Some(Timestamp::parse(text.trim()).map_err(|_| {
                    PidfError::Invalid(format!("x:until {text:?} is not an RFC 3339 date-time"))
                })?);
            }
            (IMXP_PIDF_NS, "info") => tuple.info = Some(child.text().trim().to_owned()),
            (IMXP_PIDF_NS, "capability") => tuple.capabilities.push(Capability {
                baseline: child.attribute("baseline").unwrap_or("").to_owned(),
                text: child.text(),
            }),
            _ => {}
        }
    }
    if !status_seen {
        return Err(PidfError::Invalid(format!(
            "tuple {:?} lacks status",
            tuple.id
        )));
    }
    Ok(tuple)
}

fn note(element: &Element) -> Note {
    Note {
        text: element.text(),
        lang: element.attribute("xml:lang").map(str::to_owned),
    }
}

/// §4.1.5: a decimal from 0 to 1 with at most three decimals; others are
/// ignored as if absent.
fn valid_priority(value: &str) -> bool {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = fraction.len() <= 3 && fraction.bytes().all(|b| b.is_ascii_digit());
    match whole {
        "0" => digits,
        "1" => digits && fraction.bytes().all(|b| b == b'0'),
        _ => false,
    }
}

/// Namespace prefixes in force at an element (XML Namespaces §6).
#[derive(Clone, Default)]
struct Scope {
    default: Option<String>,
    prefixes: HashMap<String, String>,
}

impl Scope {
    fn root() -> Self {
        Self::default()
    }

    /// The scope inside `element`, with its declarations.
    fn enter(&self, element: &Element) -> Self {
        let mut scope = self.clone();
        for (name, value) in &element.attributes {
            if name == "xmlns" {
                scope.default = Some(value.clone());
            } else if let Some(prefix) = name.strip_prefix("xmlns:") {
                scope.prefixes.insert(prefix.to_owned(), value.clone());
            }
        }
        scope
    }

    /// `(namespace, local name)` of `element` (whose declarations this
    /// scope includes).
    fn name<'e>(&self, element: &'e Element) -> (&str, &'e str) {
        match element.name.split_once(':') {
            Some((prefix, local)) => (self.prefixes.get(prefix).map_or("", String::as_str), local),
            None => (self.default.as_deref().unwrap_or(""), element.name.as_str()),
        }
    }
}

/// `pres:` URI of an endpoint (RFC 3859 §3; the endpoint's
/// `local@domain` is an RFC 2822 addr-spec, subaddress included).
pub fn pres_uri(endpoint: &Endpoint) -> String {
    format!("pres:{endpoint}")
}

/// `im:` URI of an endpoint (RFC 3860 §3).
pub fn im_uri(endpoint: &Endpoint) -> String {
    format!("im:{endpoint}")
}

/// The endpoint a `pres:`, `im:` or `apex:` URI names, if it names one.
pub fn endpoint_of_uri(uri: &str) -> Option<Endpoint> {
    let rest = ["pres:", "im:", "apex:"]
        .iter()
        .find_map(|scheme| strip_prefix_ignore_case(uri.trim(), scheme))?;
    Endpoint::parse(rest).ok()
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// A tuple's `destination` as a PIDF contact: `apex:` endpoints as `im:`.
fn contact_of(destination: &str) -> String {
    match strip_prefix_ignore_case(destination, "apex:").and_then(|e| Endpoint::parse(e).ok()) {
        Some(endpoint) => im_uri(&endpoint),
        None => destination.to_owned(),
    }
}

/// A PIDF contact as a tuple's `destination`: `im:` endpoints as `apex:`.
fn destination_of(contact: &str) -> String {
    match strip_prefix_ignore_case(contact, "im:").and_then(|e| Endpoint::parse(e).ok()) {
        Some(endpoint) => format!("apex:{endpoint}"),
        None => contact.to_owned(),
    }
}

/// A stable tuple id (an XML `ID`: a letter, then letters and digits)
/// for a destination: FNV-1a of its text.
fn tuple_id(destination: &str) -> String {
    let hash = destination.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("t{hash:016x}")
}

/// An info URI as notes (a `data:,text` URI) or an `x:info` (anything
/// else, or nothing for `""`).
fn split_info(info: &str) -> (Vec<Note>, Option<String>) {
    if info.is_empty() {
        return (Vec::new(), None);
    }
    match note_of_data_uri(info) {
        Some(text) => (vec![Note { text, lang: None }], None),
        None => (Vec::new(), Some(info.to_owned())),
    }
}

/// The info URI for `notes` (the first, as a `data:` URI) or `info`.
fn join_info(notes: &[Note], info: Option<&str>) -> String {
    match (info, notes.first()) {
        (Some(info), _) => info.to_owned(),
        (None, Some(note)) => data_uri_of_note(&note.text),
        (None, None) => String::new(),
    }
}

/// `data:,` URI (RFC 2397) carrying `text`, percent-encoded UTF-8.
pub fn data_uri_of_note(text: &str) -> String {
    let mut uri = String::from("data:,");
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            let _ = write!(uri, "%{byte:02X}");
        }
    }
    uri
}

/// The text of a `data:` URI with no media type, or of type `text/plain`
/// (any charset: UTF-8 assumed), if `uri` is one.
pub fn note_of_data_uri(uri: &str) -> Option<String> {
    let rest = strip_prefix_ignore_case(uri, "data:")?;
    let (media, data) = rest.split_once(',')?;
    let media_type = media.split(';').next().unwrap_or("");
    if !(media_type.is_empty() || media_type.eq_ignore_ascii_case("text/plain"))
        || media.to_ascii_lowercase().ends_with(";base64")
    {
        return None;
    }
    let mut bytes = Vec::with_capacity(data.len());
    let mut input = data.bytes();
    while let Some(byte) = input.next() {
        if byte == b'%' {
            let hex = [input.next()?, input.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            bytes.push(byte);
        }
    }
    String::from_utf8(bytes).ok()
}

/// A PIDF `timestamp`: RFC 3339 with upper-case `T` and `Z` (§4.1.7).
fn pidf_time(timestamp: &Timestamp) -> String {
    timestamp.as_str().to_ascii_uppercase()
}

fn push_notes(out: &mut String, indent: &str, notes: &[Note]) {
    for note in notes {
        let lang: Vec<(&str, &str)> = note
            .lang
            .as_deref()
            .map(|l| ("xml:lang", l))
            .into_iter()
            .collect();
        push_text_element(out, indent, "note", &lang, &note.text);
    }
}

fn push_text_element(
    out: &mut String,
    indent: &str,
    name: &str,
    attributes: &[(&str, &str)],
    text: &str,
) {
    out.push_str(indent);
    out.push('<');
    out.push_str(name);
    for (attribute, value) in attributes {
        xml::push_attribute(out, attribute, value);
    }
    out.push('>');
    xml::push_text_escaped(out, text);
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> PresenceEntry {
        PresenceEntry::parse(
            b"<presence publisher='fred@example.com' lastUpdate='2000-05-14T21:02:00.000Z' \
              publisherInfo='http://www.example.com/fred/'>\
              <tuple destination='apex:fred/appl=im@example.com' \
                     availableUntil='2000-05-14T22:02:00.000Z' tupleInfo='data:,at%20work' />\
              <tuple destination='mailto:fred@flintstone.com' \
                     availableUntil='2000-05-14T20:00:00.000Z'>\
                <capability baseline='urn:ietf:rfc:rfc2533'>(type=text/plain)</capability>\
              </tuple></presence>",
        )
        .unwrap()
    }

    #[test]
    fn an_entry_survives_the_round_trip_through_pidf() {
        let entry = entry();
        let now = Timestamp::parse("2000-05-14T21:30:00Z")
            .unwrap()
            .unix_millis();
        let document = PidfDocument::from_entry(&entry, now);
        assert_eq!(document.entity, "pres:fred@example.com");
        assert_eq!(document.tuples[0].basic, Some(true));
        assert_eq!(document.tuples[1].basic, Some(false));
        assert_eq!(
            document.tuples[0].contact.as_ref().unwrap().uri,
            "im:fred/appl=im@example.com"
        );
        assert_eq!(document.tuples[0].notes[0].text, "at work");
        let xml = document.to_xml();
        assert!(
            xml.contains("<timestamp>2000-05-14T21:02:00.000Z</timestamp>"),
            "{xml}"
        );
        let parsed = PidfDocument::parse(xml.as_bytes()).unwrap();
        assert_eq!(parsed, document);
        assert_eq!(parsed.to_entry(now).unwrap(), entry);
    }

    #[test]
    fn tuple_ids_are_stable_and_unique() {
        let mut entry = entry();
        entry.tuples.push(entry.tuples[0].clone());
        let document = PidfDocument::from_entry(&entry, 0);
        let ids: Vec<&str> = document.tuples.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids[0], tuple_id("apex:fred/appl=im@example.com"));
        assert_eq!(ids[2], format!("{}-2", ids[0]));
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn notes_travel_as_data_uris() {
        let text = "Don't Disturb — 100% busy";
        let uri = data_uri_of_note(text);
        assert!(uri.starts_with("data:,Don%27t%20Disturb%20"), "{uri}");
        assert_eq!(note_of_data_uri(&uri).as_deref(), Some(text));
        assert_eq!(
            note_of_data_uri("data:text/plain;charset=utf-8,hi").as_deref(),
            Some("hi")
        );
        assert_eq!(note_of_data_uri("data:;base64,aGk="), None);
        assert_eq!(note_of_data_uri("http://example.com/"), None);
    }

    #[test]
    fn documents_without_declaration_or_in_another_namespace_are_refused() {
        assert_eq!(
            PidfDocument::parse(
                b"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@b.c'/>"
            ),
            Err(PidfError::NoDeclaration)
        );
        assert!(matches!(
            PidfDocument::parse(b"<?xml version='1.0'?><presence entity='pres:a@b.c'/>"),
            Err(PidfError::Root(_))
        ));
        assert!(matches!(
            PidfDocument::parse(
                b"<?xml version='1.0'?><presence xmlns='urn:ietf:params:xml:ns:pidf' \
                  entity='pres:a@b.c'><tuple id='a'><status><basic>maybe</basic></status></tuple></presence>"
            ),
            Err(PidfError::Invalid(_))
        ));
    }

    #[test]
    fn priorities_outside_the_range_are_ignored() {
        for good in ["0", "0.021", "0.5", "1.00", "1", "0.725"] {
            assert!(valid_priority(good), "{good}");
        }
        for bad in ["1.5", "2", "0.1234", "-0.1", "", ".5"] {
            assert!(!valid_priority(bad), "{bad}");
        }
    }

    #[test]
    fn uris_map_to_endpoints() {
        let fred = Endpoint::parse("fred/appl=im@example.com").unwrap();
        assert_eq!(pres_uri(&fred), "pres:fred/appl=im@example.com");
        assert_eq!(endpoint_of_uri(&im_uri(&fred)), Some(fred.clone()));
        assert_eq!(endpoint_of_uri("PRES:fred/appl=im@example.com"), Some(fred));
        assert_eq!(endpoint_of_uri("tel:+09012345678"), None);
        assert_eq!(contact_of("apex:fred@example.com"), "im:fred@example.com");
        assert_eq!(
            destination_of("im:fred@example.com"),
            "apex:fred@example.com"
        );
        assert_eq!(contact_of("tel:+09012345678"), "tel:+09012345678");
    }
}
