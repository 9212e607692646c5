//! The one XML wrapper of the crate: a bounded reader for
//! `application/beep+xml` (RFC 3080 §6.4) into a small element tree that
//! remembers where each element's content lies in the source, so that
//! `option` content and `data-content` can be kept verbatim; and the escaping
//! helpers the writers use.
//!
//! Refused before or while parsing: documents over the size limit, element
//! nesting over the depth limit, any DOCTYPE, any entity reference other
//! than the five predefined ones (numeric character references are fine),
//! non-UTF-8 input and encodings other than UTF-8 in the XML declaration.

use std::ops::Range;

use quick_xml::Reader;
use quick_xml::escape::EscapeError;
use quick_xml::events::{BytesStart, Event};

use crate::error::{ApexError, XmlError};
use crate::limits::Limits;

/// A parsed document: the source text and its root element.
#[derive(Debug, Clone)]
pub(crate) struct Document<'a> {
    /// The document text (after a leading byte-order mark, if any).
    pub(crate) source: &'a str,
    /// The root element.
    pub(crate) root: Element,
}

/// An element with its attributes, children and source span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    /// The name as written (with any prefix).
    pub(crate) name: String,
    /// Attributes in document order, values normalized and unescaped.
    pub(crate) attributes: Vec<(String, String)>,
    /// Children in document order.
    pub(crate) children: Vec<Node>,
    /// Byte range of the content between the start and end tags (empty for
    /// an empty-element tag).
    pub(crate) inner: Range<usize>,
}

/// A child node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// A child element.
    Element(Element),
    /// Character data (text and CDATA), references resolved.
    Text(String),
}

impl Document<'_> {
    /// The verbatim source text of `element`'s content.
    pub(crate) fn inner<'s>(&'s self, element: &Element) -> &'s str {
        &self.source[element.inner.clone()]
    }
}

impl Element {
    /// The value of attribute `name`, if present.
    pub(crate) fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of the `#REQUIRED` attribute `name` of `element`.
    pub(crate) fn required(
        &self,
        element: &'static str,
        name: &'static str,
    ) -> Result<&str, ApexError> {
        self.attribute(name).ok_or(ApexError::MissingAttribute {
            element,
            attribute: name,
        })
    }

    /// Refuses attributes not in `allowed` (the DTD's ATTLIST).
    pub(crate) fn check_attributes(
        &self,
        element: &'static str,
        allowed: &[&str],
    ) -> Result<(), ApexError> {
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

    /// Child elements in order.
    pub(crate) fn elements(&self) -> impl Iterator<Item = &Self> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(element) => Some(element),
            Node::Text(_) => None,
        })
    }

    /// All character data directly inside this element, concatenated.
    pub(crate) fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|node| match node {
                Node::Text(text) => Some(text.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    /// Refuses non-whitespace character data (element-only content models).
    pub(crate) fn check_no_text(&self, element: &'static str) -> Result<(), ApexError> {
        let texty = self.children.iter().any(|node| match node {
            Node::Text(text) => !is_xml_whitespace(text),
            Node::Element(_) => false,
        });
        if texty {
            Err(ApexError::UnexpectedText { element })
        } else {
            Ok(())
        }
    }

    /// Refuses child elements (`#PCDATA` content models).
    pub(crate) fn check_no_elements(&self, element: &'static str) -> Result<(), ApexError> {
        match self.elements().next() {
            Some(child) => Err(ApexError::UnexpectedElement {
                expected: element_text_only(element),
                found: child.name.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses any content but whitespace (`EMPTY` content models; whitespace
    /// is tolerated).
    pub(crate) fn check_empty(&self, element: &'static str) -> Result<(), ApexError> {
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

/// XML whitespace: SP, TAB, CR, LF.
pub(crate) fn is_xml_whitespace(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Parses one `application/beep+xml` document into its root element.
pub(crate) fn parse<'a>(document: &'a [u8], limits: &Limits) -> Result<Document<'a>, XmlError> {
    if document.len() > limits.max_xml {
        return Err(XmlError::TooLarge {
            size: document.len(),
            limit: limits.max_xml,
        });
    }
    let text = std::str::from_utf8(document).map_err(|_| XmlError::NotUtf8)?;
    let source = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(source);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let before = position(&reader);
        let event = reader.read_event().map_err(|e| XmlError::Syntax {
            position: reader.error_position(),
            message: e.to_string(),
        })?;
        let after = position(&reader);
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(XmlError::Root);
                }
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep {
                        limit: limits.max_depth,
                    });
                }
                stack.push(element_from(&start, after..after, before)?);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(XmlError::Root);
                }
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep {
                        limit: limits.max_depth,
                    });
                }
                let element = element_from(&start, after..after, before)?;
                close(&mut stack, &mut root, element);
            }
            Event::End(_) => {
                let mut element = stack.pop().ok_or(XmlError::Root)?;
                element.inner.end = before;
                close(&mut stack, &mut root, element);
            }
            Event::Text(text) => {
                let value = text.xml_content().map_err(|e| XmlError::Syntax {
                    position: before as u64,
                    message: e.to_string(),
                })?;
                push_text(&mut stack, &value)?;
            }
            Event::CData(cdata) => {
                let value = cdata.decode().map_err(|e| XmlError::Syntax {
                    position: before as u64,
                    message: e.to_string(),
                })?;
                if stack.is_empty() {
                    return Err(XmlError::Root);
                }
                push_text(&mut stack, &value)?;
            }
            Event::GeneralRef(reference) => {
                let syntax = |message: String| XmlError::Syntax {
                    position: before as u64,
                    message,
                };
                let resolved = match reference
                    .resolve_char_ref()
                    .map_err(|e| syntax(e.to_string()))?
                {
                    Some(c) => c,
                    None => {
                        let name = reference.decode().map_err(|e| syntax(e.to_string()))?;
                        predefined(&name).ok_or_else(|| XmlError::Entity(name.into_owned()))?
                    }
                };
                if stack.is_empty() {
                    return Err(XmlError::Root);
                }
                push_text(&mut stack, resolved.encode_utf8(&mut [0; 4]))?;
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(decl) => {
                if let Some(encoding) = decl.encoding() {
                    let encoding = encoding.map_err(|e| XmlError::Syntax {
                        position: before as u64,
                        message: e.to_string(),
                    })?;
                    let encoding = String::from_utf8_lossy(&encoding).into_owned();
                    if !encoding.eq_ignore_ascii_case("utf-8")
                        && !encoding.eq_ignore_ascii_case("us-ascii")
                    {
                        return Err(XmlError::Encoding(encoding));
                    }
                }
            }
            Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax {
            position: source.len() as u64,
            message: "unclosed element".into(),
        });
    }
    let root = root.ok_or(XmlError::Root)?;
    Ok(Document { source, root })
}

/// Parses `content` as the content of an element (any mix of elements and
/// character data), to check that verbatim content is well-formed.
pub(crate) fn check_content(content: &str, limits: &Limits) -> Result<(), XmlError> {
    let wrapped = format!("<x>{content}</x>");
    parse(wrapped.as_bytes(), limits).map(|_| ())
}

fn position(reader: &Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

fn predefined(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "apos" => '\'',
        "quot" => '"',
        _ => return None,
    })
}

fn element_from(
    start: &BytesStart<'_>,
    inner: Range<usize>,
    position: usize,
) -> Result<Element, XmlError> {
    let syntax = |message: String| XmlError::Syntax {
        position: position as u64,
        message,
    };
    let name = std::str::from_utf8(start.name().as_ref())
        .map_err(|e| syntax(e.to_string()))?
        .to_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| syntax(e.to_string()))?;
        let key = std::str::from_utf8(attribute.key.as_ref())
            .map_err(|e| syntax(e.to_string()))?
            .to_owned();
        let raw = std::str::from_utf8(&attribute.value).map_err(|e| syntax(e.to_string()))?;
        // Attribute-value normalization (XML 1.0 §3.3.3) for CDATA: literal
        // line ends and tabs become spaces; character references keep them.
        let normalized = raw.replace("\r\n", " ").replace(['\t', '\n', '\r'], " ");
        let value = quick_xml::escape::unescape(&normalized).map_err(|e| match e {
            EscapeError::UnrecognizedEntity(_, name) => XmlError::Entity(name),
            other => syntax(other.to_string()),
        })?;
        if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
            return Err(syntax(format!(
                "character U+{:04X} is not allowed in XML (attribute {key})",
                u32::from(c)
            )));
        }
        attributes.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attributes,
        children: Vec::new(),
        inner,
    })
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

/// XML 1.0 `Char` (§2.2): what a document may contain, literally or by
/// character reference. Anything else (NUL, most C0 controls, U+FFFE,
/// U+FFFF) is refused rather than carried, since no writer could write it
/// back.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn push_text(stack: &mut [Element], value: &str) -> Result<(), XmlError> {
    if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
        return Err(XmlError::Syntax {
            position: 0,
            message: format!("character U+{:04X} is not allowed in XML", u32::from(c)),
        });
    }
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(text)) = parent.children.last_mut() {
                text.push_str(value);
            } else {
                parent.children.push(Node::Text(value.to_owned()));
            }
            Ok(())
        }
        None if is_xml_whitespace(value) => Ok(()),
        None => Err(XmlError::Root),
    }
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
    fn keeps_inner_spans_verbatim() {
        let src = "<a x='1'>\n <b y='&amp;'>t&lt;<c/></b><d/>\n</a>";
        let doc = parse(src.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(doc.inner(&doc.root), "\n <b y='&amp;'>t&lt;<c/></b><d/>\n");
        let b = doc.root.elements().next().unwrap();
        assert_eq!(b.attribute("y"), Some("&"));
        assert_eq!(doc.inner(b), "t&lt;<c/>");
        assert_eq!(b.text(), "t<");
        let d = doc.root.elements().nth(1).unwrap();
        assert_eq!(doc.inner(d), "");
    }

    #[test]
    fn normalizes_attribute_whitespace_but_not_references() {
        let root = parse_default(b"<a x='1\n\t2' y='1&#10;2'/>").unwrap();
        assert_eq!(root.attribute("x"), Some("1  2"));
        assert_eq!(root.attribute("y"), Some("1\n2"));
    }

    #[test]
    fn refuses_doctype_entities_and_bad_encodings() {
        assert_eq!(
            parse_default(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"),
            Err(XmlError::Doctype)
        );
        assert_eq!(
            parse_default(b"<x>&a;</x>"),
            Err(XmlError::Entity("a".into()))
        );
        assert_eq!(
            parse_default(b"<x y='&a;'/>"),
            Err(XmlError::Entity("a".into()))
        );
        assert_eq!(parse_default(b"<x>\xff</x>"), Err(XmlError::NotUtf8));
        assert_eq!(
            parse_default(b"<?xml version='1.0' encoding='ISO-8859-1'?><x/>"),
            Err(XmlError::Encoding("ISO-8859-1".into()))
        );
        assert!(parse_default(b"<?xml version='1.0' encoding='UTF-8'?><x/>").is_ok());
        assert!(parse_default(b"\xef\xbb\xbf<x/>").is_ok());
    }

    #[test]
    fn refuses_deep_large_and_rootless_documents() {
        let limits = Limits::default();
        let n = limits.max_depth + 1;
        let deep = "<a>".repeat(n) + &"</a>".repeat(n);
        assert_eq!(
            parse_default(deep.as_bytes()),
            Err(XmlError::TooDeep {
                limit: limits.max_depth
            })
        );
        let deep_empty = "<a>".repeat(n - 1) + "<a/>" + &"</a>".repeat(n - 1);
        assert!(matches!(
            parse_default(deep_empty.as_bytes()),
            Err(XmlError::TooDeep { .. })
        ));
        let ok = "<a>".repeat(n - 1) + &"</a>".repeat(n - 1);
        assert!(parse_default(ok.as_bytes()).is_ok());
        let large = vec![b' '; limits.max_xml + 1];
        assert!(matches!(
            parse_default(&large),
            Err(XmlError::TooLarge { .. })
        ));
        assert_eq!(parse_default(b"  "), Err(XmlError::Root));
        assert_eq!(parse_default(b"<a/><b/>"), Err(XmlError::Root));
        assert_eq!(parse_default(b"text<a/>"), Err(XmlError::Root));
        assert_eq!(parse_default(b"<a/>&amp;"), Err(XmlError::Root));
        assert!(matches!(
            parse_default(b"<a><b></a>"),
            Err(XmlError::Syntax { .. })
        ));
        assert!(matches!(
            parse_default(b"<a>"),
            Err(XmlError::Syntax { .. })
        ));
        assert!(matches!(
            parse_default(b"<a x='1' x='2'/>"),
            Err(XmlError::Syntax { .. })
        ));
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
    fn refuses_characters_xml_cannot_carry() {
        for bad in [
            &b"<e>a\0b</e>"[..],
            b"<e>&#0;</e>",
            b"<e>&#1;</e>",
            b"<e a='&#xFFFE;'/>",
            b"<e a='\x01'/>",
            b"<e><![CDATA[\x02]]></e>",
        ] {
            assert!(
                matches!(parse_default(bad), Err(XmlError::Syntax { .. })),
                "{bad:?}"
            );
        }
        assert!(parse_default(b"<e a='&#9;&#10;&#13;'>&#x10000;\t</e>").is_ok());
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
