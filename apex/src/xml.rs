//! The crate's XML glue: the bounded `application/beep+xml` reader of
//! `imxp-wire` (size, depth, DOCTYPE, entity, encoding and character
//! defences) under this crate's [`Limits`], the DTD checks APEX applies to
//! an element, and the escaping helpers the writers use.
//!
//! The reader keeps where each element's content lies in the source, so
//! that `option` content and `data-content` can be kept verbatim.

use imxp_wire::xml::XmlLimits;
pub(crate) use imxp_wire::xml::{Document, Element, Node, XmlError, is_xml_whitespace};

use crate::error::ApexError;
use crate::limits::Limits;

/// Checks of an element against its content model and attribute list in
/// the APEX DTDs (RFC 3340 Appendix B and the service and option DTDs).
pub(crate) trait DtdChecks {
    /// The value of the `#REQUIRED` attribute `name` of `element`.
    fn required(&self, element: &'static str, name: &'static str) -> Result<&str, ApexError>;

    /// Refuses attributes not in `allowed` (the DTD's ATTLIST).
    fn check_attributes(&self, element: &'static str, allowed: &[&str]) -> Result<(), ApexError>;

    /// Refuses non-whitespace character data (element-only content models).
    fn check_no_text(&self, element: &'static str) -> Result<(), ApexError>;

    /// Refuses child elements (`#PCDATA` content models).
    fn check_no_elements(&self, element: &'static str) -> Result<(), ApexError>;

    /// Refuses any content but whitespace (`EMPTY` content models; whitespace
    /// is tolerated).
    fn check_empty(&self, element: &'static str) -> Result<(), ApexError>;
}

impl DtdChecks for Element {
    fn required(&self, element: &'static str, name: &'static str) -> Result<&str, ApexError> {
        self.attribute(name).ok_or(ApexError::MissingAttribute {
            element,
            attribute: name,
        })
    }

    fn check_attributes(&self, element: &'static str, allowed: &[&str]) -> Result<(), ApexError> {
        match self
            .attributes
            .iter()
            .find(|(key, _)| !allowed.contains(&key.as_str()))
        {
            Some((key, _)) => Err(ApexError::UnknownAttribute {
                element,
                attribute: key.clone(),
            }),
            None => Ok(()),
        }
    }

    fn check_no_text(&self, element: &'static str) -> Result<(), ApexError> {
        let texty = self.children.iter().any(|node| match node {
            Node::Text(text) | Node::CData(text) => !is_xml_whitespace(text),
            Node::Element(_) => false,
        });
        if texty {
            Err(ApexError::UnexpectedText { element })
        } else {
            Ok(())
        }
    }

    fn check_no_elements(&self, element: &'static str) -> Result<(), ApexError> {
        match self.elements().next() {
            Some(child) => Err(ApexError::UnexpectedElement {
                expected: element_text_only(element),
                found: child.name.clone(),
            }),
            None => Ok(()),
        }
    }

    fn check_empty(&self, element: &'static str) -> Result<(), ApexError> {
        if let Some(child) = self.elements().next() {
            return Err(ApexError::UnexpectedElement {
                expected: "nothing (EMPTY element)",
                found: child.name.clone(),
            });
        }
        self.check_no_text(element)
    }
}

fn element_text_only(element: &'static str) -> &'static str {
    match element {
        "terminate" => "character data only in <terminate>",
        "error" => "character data only in <error>",
        "reply" => "character data only in <reply>",
        _ => "character data only",
    }
}

/// Parses one `application/beep+xml` document under `limits`
/// ([`Limits::max_xml`], [`Limits::max_depth`]).
pub(crate) fn parse<'a>(document: &'a [u8], limits: &Limits) -> Result<Document<'a>, XmlError> {
    imxp_wire::xml::parse(document, &XmlLimits::new(limits.max_xml, limits.max_depth))
}

/// Parses `content` as the content of an element (any mix of elements and
/// character data), to check that verbatim content is well-formed.
pub(crate) fn check_content(content: &str, limits: &Limits) -> Result<(), XmlError> {
    let wrapped = format!("<x>{content}</x>");
    parse(wrapped.as_bytes(), limits).map(|_| ())
}

// ===== writing =====

/// Appends `text` escaped for element content or a single-quoted attribute
/// value. Characters XML 1.0 cannot carry at all (most C0 controls, U+FFFE,
/// U+FFFF) become U+FFFD; TAB, LF and CR are written as character
/// references so that they survive attribute-value and line-end
/// normalization.
pub(crate) fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

/// Appends ` name='value'` with the value escaped.
pub(crate) fn push_attribute(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("='");
    push_escaped(out, value);
    out.push('\'');
}

/// Appends escaped character data, keeping line ends literal (LF) so that
/// multi-line text stays readable; CR is written as a reference.
pub(crate) fn push_text_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\n' => out.push('\n'),
            '\t' => out.push('\t'),
            c => {
                let mut buf = [0; 4];
                push_escaped(out, c.encode_utf8(&mut buf));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_default(doc: &[u8]) -> Result<Element, XmlError> {
        parse(doc, &Limits::default()).map(|d| d.root)
    }

    #[test]
    fn applies_the_crate_limits() {
        let limits = Limits::default();
        let n = limits.max_depth + 1;
        let deep = "<a>".repeat(n) + &"</a>".repeat(n);
        assert_eq!(
            parse_default(deep.as_bytes()),
            Err(XmlError::TooDeep {
                limit: limits.max_depth
            })
        );
        let ok = "<a>".repeat(n - 1) + &"</a>".repeat(n - 1);
        assert!(parse_default(ok.as_bytes()).is_ok());
        let large = vec![b' '; limits.max_xml + 1];
        assert!(matches!(
            parse_default(&large),
            Err(XmlError::TooLarge { .. })
        ));
    }

    #[test]
    fn dtd_checks() {
        let root = parse_default(b"<e a='1'>  <![CDATA[ ]]> </e>").unwrap();
        assert_eq!(root.required("e", "a").unwrap(), "1");
        assert!(root.required("e", "b").is_err());
        assert!(root.check_attributes("e", &["a"]).is_ok());
        assert!(root.check_attributes("e", &["b"]).is_err());
        assert!(root.check_empty("e").is_ok());
        let texty = parse_default(b"<e><![CDATA[x]]></e>").unwrap();
        assert!(texty.check_no_text("e").is_err());
        assert!(texty.check_no_elements("e").is_ok());
        let nested = parse_default(b"<e><f/></e>").unwrap();
        assert!(nested.check_no_elements("e").is_err());
        assert!(nested.check_empty("e").is_err());
        assert!(nested.check_no_text("e").is_ok());
    }

    #[test]
    fn escaping_round_trips() {
        let tricky = "a&b<c>d'e\"f\tg\nh\ri\u{1}j";
        let mut out = String::from("<t");
        push_attribute(&mut out, "v", tricky);
        out.push('>');
        push_text_escaped(&mut out, tricky);
        out.push_str("</t>");
        let root = parse_default(out.as_bytes()).unwrap();
        assert_eq!(root.attribute("v"), Some("a&b<c>d'e\"f\tg\nh\ri\u{fffd}j"));
        assert_eq!(root.text(), "a&b<c>d'e\"f\tg\nh\ri\u{fffd}j");
    }

    #[test]
    fn content_check() {
        let limits = Limits::default();
        assert!(check_content("<dataTiming noLaterThan='1'/> text", &limits).is_ok());
        assert!(check_content("", &limits).is_ok());
        assert!(check_content("<a>", &limits).is_err());
        // Content that closes the wrapper early is caught.
        assert_eq!(check_content("</x><x>", &limits), Err(XmlError::Root));
    }
}
