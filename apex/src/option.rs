//! The `option` element (RFC 3340 §5, DTD §9.1), kept generic: its kind,
//! its processing attributes, and its content verbatim, so that options this
//! relay does not understand pass through unchanged.
//!
//! ```dtd
//! <!ELEMENT option      ANY>
//! <!ATTLIST option
//!           internal    NMTOKEN           ""
//!           external    %URI;             ""
//!           targetHop   (this|final|all)  "final"
//!           mustUnderstand (true|false)   "false"
//!           transID     %UNIQID;          #REQUIRED
//!           localize    %LOCS;            "i-default">
//! ```
//!
//! Exactly one of `internal` and `external` is present; `external` is an
//! absolute URI. `transID` is optional here (docs/decisions.md, APEX core: the
//! RFC 3342 examples omit it).

use crate::error::ApexError;
use crate::limits::Limits;
use crate::trans_id;
use crate::xml::{self, Document, DtdChecks as _, Element};

/// Name of the `statusRequest` option (RFC 3340 §5.1).
pub const STATUS_REQUEST: &str = "statusRequest";

/// The default `localize` value.
pub const DEFAULT_LOCALIZE: &str = "i-default";

/// Whether an option is defined by an IANA registration or by a URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OptionKind {
    /// `internal='NAME'`: a registered option such as `statusRequest`.
    Internal(String),
    /// `external='URI'`: an option named by an absolute URI.
    External(String),
}

/// The `targetHop` attribute (RFC 3340 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TargetHop {
    /// Applies to the next relay only, which removes it before transmitting.
    This,
    /// Applies only where the data is delivered to the recipient (default).
    #[default]
    Final,
    /// Applies at every relay and is kept.
    All,
}

impl TargetHop {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::This => "this",
            Self::Final => "final",
            Self::All => "all",
        }
    }

    /// Parses an attribute value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "this" => Some(Self::This),
            "final" => Some(Self::Final),
            "all" => Some(Self::All),
            _ => None,
        }
    }
}

/// An APEX `option` (RFC 3340 §5), in `attach`, `data`, `originator` or
/// `recipient`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApexOption {
    /// `internal` or `external`.
    pub kind: OptionKind,
    /// `targetHop`, default [`TargetHop::Final`].
    pub target_hop: TargetHop,
    /// `mustUnderstand`, default false.
    pub must_understand: bool,
    /// `transID` (1..2147483647), if present.
    pub trans_id: Option<u32>,
    /// `localize`, default [`DEFAULT_LOCALIZE`]: language tags, space
    /// separated (docs/decisions.md, BEEP).
    pub localize: String,
    /// The option's content (child elements and text) exactly as written
    /// between its tags, or empty.
    pub content: String,
}

impl ApexOption {
    /// An `internal` option with default attributes and no content.
    pub fn internal(name: impl Into<String>) -> Self {
        Self::with_kind(OptionKind::Internal(name.into()))
    }

    /// An `external` option with default attributes and no content.
    pub fn external(uri: impl Into<String>) -> Self {
        Self::with_kind(OptionKind::External(uri.into()))
    }

    fn with_kind(kind: OptionKind) -> Self {
        Self {
            kind,
            target_hop: TargetHop::Final,
            must_understand: false,
            trans_id: None,
            localize: DEFAULT_LOCALIZE.to_owned(),
            content: String::new(),
        }
    }

    /// The `statusRequest` option as RFC 3340 §5.1 shows it:
    /// `targetHop='final' mustUnderstand='true' transID='…'`.
    pub fn status_request(trans_id: u32) -> Self {
        Self::internal(STATUS_REQUEST)
            .target_hop(TargetHop::Final)
            .must_understand(true)
            .trans_id(trans_id)
    }

    /// Sets `targetHop`.
    pub fn target_hop(mut self, target_hop: TargetHop) -> Self {
        self.target_hop = target_hop;
        self
    }

    /// Sets `mustUnderstand`.
    pub fn must_understand(mut self, must_understand: bool) -> Self {
        self.must_understand = must_understand;
        self
    }

    /// Sets `transID`.
    pub fn trans_id(mut self, trans_id: u32) -> Self {
        self.trans_id = Some(trans_id);
        self
    }

    /// Sets the content after checking that it is well-formed XML content
    /// within the default [`Limits`].
    pub fn with_content(mut self, content: impl Into<String>) -> Result<Self, ApexError> {
        let content = content.into();
        xml::check_content(&content, &Limits::default())?;
        self.content = content;
        Ok(self)
    }

    /// The internal name or the external URI.
    pub fn name(&self) -> &str {
        match &self.kind {
            OptionKind::Internal(name) | OptionKind::External(name) => name,
        }
    }

    /// True if this is the internal option `name`.
    pub fn is_internal(&self, name: &str) -> bool {
        matches!(&self.kind, OptionKind::Internal(n) if n == name)
    }

    /// Appends the element.
    pub(crate) fn write(&self, out: &mut String) {
        out.push_str("<option");
        match &self.kind {
            OptionKind::Internal(name) => xml::push_attribute(out, "internal", name),
            OptionKind::External(uri) => xml::push_attribute(out, "external", uri),
        }
        if self.target_hop != TargetHop::Final {
            xml::push_attribute(out, "targetHop", self.target_hop.as_str());
        }
        if self.must_understand {
            xml::push_attribute(out, "mustUnderstand", "true");
        }
        if let Some(trans_id) = self.trans_id {
            xml::push_attribute(out, "transID", &trans_id.to_string());
        }
        if self.localize != DEFAULT_LOCALIZE {
            xml::push_attribute(out, "localize", &self.localize);
        }
        if self.content.is_empty() {
            out.push_str(" />");
        } else {
            out.push('>');
            out.push_str(&self.content);
            out.push_str("</option>");
        }
    }

    /// Parses a bare `option` element, e.g. one an operator configured.
    pub fn parse(xml: &[u8]) -> Result<Self, ApexError> {
        let doc = xml::parse(xml, &Limits::default())?;
        if doc.root.name != "option" {
            return Err(ApexError::UnexpectedElement {
                expected: "option",
                found: doc.root.name,
            });
        }
        Self::from_element(&doc, &doc.root)
    }

    /// The element as a string.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// Reads an `option` element.
    pub(crate) fn from_element(doc: &Document<'_>, element: &Element) -> Result<Self, ApexError> {
        const E: &str = "option";
        element.check_attributes(
            E,
            &[
                "internal",
                "external",
                "targetHop",
                "mustUnderstand",
                "transID",
                "localize",
            ],
        )?;
        let internal = element.attribute("internal").filter(|v| !v.is_empty());
        let external = element.attribute("external").filter(|v| !v.is_empty());
        let kind = match (internal, external) {
            (Some(name), None) => {
                if !is_nmtoken(name) {
                    return Err(invalid("internal", name, "not an NMTOKEN"));
                }
                OptionKind::Internal(name.to_owned())
            }
            (None, Some(uri)) => {
                if !is_absolute_uri(uri) {
                    return Err(invalid("external", uri, "not an absolute URI"));
                }
                OptionKind::External(uri.to_owned())
            }
            (Some(_), Some(uri)) => {
                return Err(invalid(
                    "external",
                    uri,
                    "internal and external are mutually exclusive",
                ));
            }
            (None, None) => {
                return Err(ApexError::MissingAttribute {
                    element: E,
                    attribute: "internal or external",
                });
            }
        };
        let target_hop = match element.attribute("targetHop") {
            None => TargetHop::Final,
            Some(value) => TargetHop::parse(value)
                .ok_or_else(|| invalid("targetHop", value, "not this, final or all"))?,
        };
        let must_understand = match element.attribute("mustUnderstand") {
            None => false,
            Some(value) => crate::parse_bool(value)
                .ok_or_else(|| invalid("mustUnderstand", value, "not true or false"))?,
        };
        let trans_id = element
            .attribute("transID")
            .map(|value| trans_id::parse_uniqid(E, value))
            .transpose()?;
        let localize = element
            .attribute("localize")
            .unwrap_or(DEFAULT_LOCALIZE)
            .to_owned();
        Ok(Self {
            kind,
            target_hop,
            must_understand,
            trans_id,
            localize,
            content: doc.inner(element).to_owned(),
        })
    }
}

fn invalid(attribute: &'static str, value: &str, reason: &'static str) -> ApexError {
    ApexError::InvalidAttribute {
        element: "option",
        attribute,
        value: value.to_owned(),
        reason,
    }
}

/// XML NMTOKEN, restricted to the ASCII name characters plus any non-ASCII
/// character (a superset check is enough to keep the value writable).
fn is_nmtoken(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':') || !c.is_ascii()
        })
}

/// An absolute URI (RFC 3986 §4.3), optionally with a fragment: a scheme,
/// `:`, and no whitespace or controls.
pub(crate) fn is_absolute_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ApexOption, ApexError> {
        let doc = xml::parse(text.as_bytes(), &Limits::default()).unwrap();
        ApexOption::from_element(&doc, &doc.root)
    }

    #[test]
    fn reads_rfc_3342_forms() {
        let o = parse("<option internal='hold4Endpoint' />").unwrap();
        assert_eq!(o, ApexOption::internal("hold4Endpoint"));
        let o = parse(
            "<option internal='dataTiming' targetHop='all'\n        mustUnderstand='true' transID='86'>\n    <dataTiming noLaterThan='10000' returnTrip='20000' />\n</option>",
        )
        .unwrap();
        assert!(o.is_internal("dataTiming"));
        assert_eq!(o.target_hop, TargetHop::All);
        assert!(o.must_understand);
        assert_eq!(o.trans_id, Some(86));
        assert_eq!(
            o.content,
            "\n    <dataTiming noLaterThan='10000' returnTrip='20000' />\n"
        );
        assert_eq!(parse(&o.to_xml()).unwrap(), o);
    }

    #[test]
    fn keeps_unknown_content_verbatim() {
        let text = "<option external='http://example.org/opt#x' localize='en fr'><foo:bar xmlns:foo='urn:x' a=\"&amp;\">t &lt; <![CDATA[x]]></foo:bar><!-- c --></option>";
        let o = parse(text).unwrap();
        assert_eq!(
            o.kind,
            OptionKind::External("http://example.org/opt#x".into())
        );
        assert_eq!(o.localize, "en fr");
        assert_eq!(
            o.content,
            "<foo:bar xmlns:foo='urn:x' a=\"&amp;\">t &lt; <![CDATA[x]]></foo:bar><!-- c -->"
        );
        assert_eq!(o.to_xml(), text);
    }

    #[test]
    fn refuses_dtd_violations() {
        let code = |t: &str| parse(t).unwrap_err().reply_code().0;
        assert_eq!(code("<option />"), 501);
        assert_eq!(code("<option internal='' external='' />"), 501);
        assert_eq!(code("<option internal='a' external='urn:b' />"), 501);
        assert_eq!(code("<option external='relative/path' />"), 501);
        assert_eq!(code("<option external='#frag' />"), 501);
        assert_eq!(code("<option internal='a b' />"), 501);
        assert_eq!(code("<option internal='a' targetHop='next' />"), 501);
        assert_eq!(code("<option internal='a' mustUnderstand='yes' />"), 501);
        assert_eq!(code("<option internal='a' transID='0' />"), 501);
        assert_eq!(code("<option internal='a' transID='2147483648' />"), 501);
        assert_eq!(code("<option internal='a' seeNoEvil='true' />"), 501);
        assert!(matches!(
            parse("<option internal='a' external='urn:b' />"),
            Err(ApexError::InvalidAttribute {
                attribute: "external",
                ..
            })
        ));
    }

    #[test]
    fn builders() {
        let o = ApexOption::status_request(86);
        assert_eq!(
            o.to_xml(),
            "<option internal='statusRequest' mustUnderstand='true' transID='86' />"
        );
        assert_eq!(parse(&o.to_xml()).unwrap(), o);
        let o = ApexOption::external("urn:x")
            .target_hop(TargetHop::This)
            .with_content("<x/>")
            .unwrap();
        assert_eq!(
            o.to_xml(),
            "<option external='urn:x' targetHop='this'><x/></option>"
        );
        assert!(ApexOption::internal("a").with_content("<x>").is_err());
        assert!(
            ApexOption::internal("a")
                .with_content("</option><y>")
                .is_err()
        );
    }
}
