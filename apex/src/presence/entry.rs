//! The presence entry (RFC 3343 §3, DTD §6):
//!
//! ```dtd
//! <!ELEMENT presence    (tuple+)>
//! <!ATTLIST presence
//!           publisher   %ENDPOINT;        #REQUIRED
//!           lastUpdate  %TIMESTAMP;       #REQUIRED
//!           publisherInfo %URI;           "">
//! <!ELEMENT tuple       (capability*)>
//! <!ATTLIST tuple
//!           destination %URI;             #REQUIRED
//!           availableUntil %TIMESTAMP;    #REQUIRED
//!           tupleInfo   %URI;             "">
//! <!ELEMENT capability (#PCDATA)>
//! <!ATTLIST capability
//!           baseline    %URI              #REQUIRED>
//! ```
//!
//! RFC 3343 has no "open"/"closed": a tuple says where the publisher can be
//! reached and until when. imxp reads a tuple as *open* while its
//! `availableUntil` lies in the future, and *closed* from then on; this is
//! what [`crate::presence::pidf`] maps to PIDF's `<basic>`.

use crate::access::Timestamp;
use crate::address::Endpoint;
use crate::error::ApexError;
use crate::xml::{self, DtdChecks as _, Element};

/// `tupleInfo` of the tuples a relay keeps for attached endpoints (see
/// [`Tuple::is_automatic`]).
pub const AUTOMATIC_TUPLE_INFO: &str = "urn:x-imxp:attachment";

/// `<presence publisher lastUpdate [publisherInfo]>tuple+</presence>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PresenceEntry {
    /// Whose entry it is.
    pub publisher: Endpoint,
    /// When it last changed (set by the service on every change).
    pub last_update: Timestamp,
    /// A URI with more about the publisher (`""` when absent).
    pub publisher_info: String,
    /// Where the publisher can be reached (at least one).
    pub tuples: Vec<Tuple>,
}

/// `<tuple destination availableUntil [tupleInfo]>capability*</tuple>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// A URI to reach the publisher at, e.g. `apex:fred/appl=im@example.com`
    /// or `mailto:fred@example.com`.
    pub destination: String,
    /// Until when the destination is available.
    pub available_until: Timestamp,
    /// A URI with more about this destination (`""` when absent).
    pub tuple_info: String,
    /// What the destination can do.
    pub capabilities: Vec<Capability>,
}

/// `<capability baseline='URI'>text</capability>`, e.g. a feature set in
/// the syntax of `urn:ietf:rfc:rfc2533`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Capability {
    /// The URI naming the capability's syntax.
    pub baseline: String,
    /// The capability, as text.
    pub text: String,
}

impl Tuple {
    /// A tuple for `destination`, available until `until`, with no
    /// information URI and no capabilities.
    pub fn new(destination: impl Into<String>, until: Timestamp) -> Self {
        Self {
            destination: destination.into(),
            available_until: until,
            tuple_info: String::new(),
            capabilities: Vec::new(),
        }
    }

    /// Whether the destination is available at `now_ms` (milliseconds
    /// since the Unix epoch).
    pub fn is_open(&self, now_ms: i64) -> bool {
        self.available_until.unix_millis() > now_ms
    }

    /// Whether a relay keeps this tuple for an attached endpoint (its
    /// `tupleInfo` is [`AUTOMATIC_TUPLE_INFO`]) rather than the publisher.
    pub fn is_automatic(&self) -> bool {
        self.tuple_info == AUTOMATIC_TUPLE_INFO
    }

    fn write(&self, out: &mut String) {
        out.push_str("<tuple");
        xml::push_attribute(out, "destination", &self.destination);
        xml::push_attribute(out, "availableUntil", self.available_until.as_str());
        if !self.tuple_info.is_empty() {
            xml::push_attribute(out, "tupleInfo", &self.tuple_info);
        }
        if self.capabilities.is_empty() {
            out.push_str(" />");
            return;
        }
        out.push('>');
        for capability in &self.capabilities {
            out.push_str("<capability");
            xml::push_attribute(out, "baseline", &capability.baseline);
            out.push('>');
            xml::push_text_escaped(out, &capability.text);
            out.push_str("</capability>");
        }
        out.push_str("</tuple>");
    }

    fn from_element(element: &Element) -> Result<Self, ApexError> {
        const E: &str = "tuple";
        expect_name(element, E)?;
        element.check_attributes(E, &["destination", "availableUntil", "tupleInfo"])?;
        element.check_no_text(E)?;
        let capabilities = element
            .elements()
            .map(|child| {
                const C: &str = "capability";
                expect_name(child, C)?;
                child.check_attributes(C, &["baseline"])?;
                child.check_no_elements(C)?;
                Ok(Capability {
                    baseline: uri(C, "baseline", child.required(C, "baseline")?)?,
                    text: child.text(),
                })
            })
            .collect::<Result<_, ApexError>>()?;
        Ok(Self {
            destination: uri(E, "destination", element.required(E, "destination")?)?,
            available_until: timestamp(
                E,
                "availableUntil",
                element.required(E, "availableUntil")?,
            )?,
            tuple_info: uri(E, "tupleInfo", element.attribute("tupleInfo").unwrap_or(""))?,
            capabilities,
        })
    }
}

impl PresenceEntry {
    /// Whether any tuple is open at `now_ms`.
    pub fn is_open(&self, now_ms: i64) -> bool {
        self.tuples.iter().any(|t| t.is_open(now_ms))
    }

    /// The entry every presentity shows when it is offline, and a
    /// subscriber it does not let in sees whatever its state (polite
    /// blocking, RFC 2779 §5.1.15): one closed tuple at
    /// `apex:<publisher>`, with the Unix epoch as `lastUpdate` and
    /// `availableUntil`, so that nothing in it varies with the real entry.
    pub fn offline(publisher: &Endpoint) -> Self {
        let epoch = Timestamp::from_unix_millis(0);
        Self {
            publisher: publisher.clone(),
            last_update: epoch.clone(),
            publisher_info: String::new(),
            tuples: vec![Tuple::new(format!("apex:{publisher}"), epoch)],
        }
    }

    /// Parses a bare `presence` element.
    pub fn parse(xml: &[u8]) -> Result<Self, ApexError> {
        let doc = xml::parse(xml, &crate::limits::Limits::default())?;
        Self::from_element(&doc.root)
    }

    /// The element.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str("<presence");
        xml::push_attribute(out, "publisher", &self.publisher.to_string());
        xml::push_attribute(out, "lastUpdate", self.last_update.as_str());
        if !self.publisher_info.is_empty() {
            xml::push_attribute(out, "publisherInfo", &self.publisher_info);
        }
        out.push('>');
        for tuple in &self.tuples {
            tuple.write(out);
        }
        out.push_str("</presence>");
    }

    pub(crate) fn from_element(element: &Element) -> Result<Self, ApexError> {
        const E: &str = "presence";
        expect_name(element, E)?;
        element.check_attributes(E, &["publisher", "lastUpdate", "publisherInfo"])?;
        element.check_no_text(E)?;
        let tuples: Vec<Tuple> = element
            .elements()
            .map(Tuple::from_element)
            .collect::<Result<_, _>>()?;
        if tuples.is_empty() {
            return Err(ApexError::MissingElement {
                element: E,
                missing: "tuple",
            });
        }
        Ok(Self {
            publisher: crate::parse_endpoint(E, "publisher", element.required(E, "publisher")?)?,
            last_update: timestamp(E, "lastUpdate", element.required(E, "lastUpdate")?)?,
            publisher_info: uri(
                E,
                "publisherInfo",
                element.attribute("publisherInfo").unwrap_or(""),
            )?,
            tuples,
        })
    }
}

fn expect_name(element: &Element, name: &'static str) -> Result<(), ApexError> {
    if element.name == name {
        Ok(())
    } else {
        Err(ApexError::UnexpectedElement {
            expected: name,
            found: element.name.clone(),
        })
    }
}

/// An RFC 3339 timestamp attribute.
pub(crate) fn timestamp(
    element: &'static str,
    attribute: &'static str,
    value: &str,
) -> Result<Timestamp, ApexError> {
    Timestamp::parse(value).map_err(|_| ApexError::InvalidAttribute {
        element,
        attribute,
        value: value.to_owned(),
        reason: "not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS plus Z or ±HH:MM)",
    })
}

/// A `%URI;` attribute: no white space or control characters (RFC 3986
/// has neither); the empty value is the DTD's default.
fn uri(element: &'static str, attribute: &'static str, value: &str) -> Result<String, ApexError> {
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApexError::InvalidAttribute {
            element,
            attribute,
            value: value.to_owned(),
            reason: "a URI has no white space or control characters",
        });
    }
    Ok(value.to_owned())
}
