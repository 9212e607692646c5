//! `application/beep+xml` (RFC 3080 §2.3, §6.4) for channel 0 and the
//! tuning profiles: the shared, defended reader of `imxp-wire` under BEEP's
//! bounds, and the two escaping helpers the channel-0 writers use.
//!
//! The reader refuses a DOCTYPE and any entity other than the predefined
//! five (the XXE and entity-expansion defence), bounds size and depth
//! before and while parsing, and accepts only UTF-8; see
//! [`imxp_wire::xml`] for the full list.

use imxp_wire::xml::XmlLimits;
pub use imxp_wire::xml::{Element, Node, XmlError};

/// Largest document accepted, in octets.
pub const MAX_DOCUMENT: usize = 64 * 1024;
/// Deepest element nesting accepted, the root counting as 1.
pub const MAX_DEPTH: usize = 16;

/// The bounds channel-0 and tuning documents are read under.
pub const LIMITS: XmlLimits = XmlLimits::new(MAX_DOCUMENT, MAX_DEPTH);

/// Parses one `application/beep+xml` document into its root element.
pub fn parse(document: &[u8]) -> Result<Element, XmlError> {
    imxp_wire::xml::parse(document, &LIMITS).map(|document| document.root)
}

/// Escapes text for use in element content or a single-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Wraps `text` in a CDATA section, splitting any `]]>` it contains.
pub fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_under_beep_bounds() {
        let root =
            parse(b"<start number='1' serverName='a&amp;b'><profile uri='u'/></start>").unwrap();
        assert_eq!(root.attribute("serverName"), Some("a&b"));
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(
            parse(deep.as_bytes()),
            Err(XmlError::TooDeep { limit: MAX_DEPTH })
        );
        let large = vec![b' '; MAX_DOCUMENT + 1];
        assert!(matches!(parse(&large), Err(XmlError::TooLarge { .. })));
        assert_eq!(
            parse(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"),
            Err(XmlError::Doctype)
        );
    }

    #[test]
    fn escape_round_trips() {
        let tricky = "a&b<c>d'e\"f";
        let root = parse(format!("<p v='{0}'>{0}</p>", escape(tricky)).as_bytes()).unwrap();
        assert_eq!(root.attribute("v"), Some(tricky));
        assert_eq!(root.text(), tricky);
    }

    #[test]
    fn cdata_splits_terminator() {
        let wrapped = cdata("x]]>y");
        let root = parse(format!("<p>{wrapped}</p>").as_bytes()).unwrap();
        assert_eq!(root.text(), "x]]>y");
    }
}
