//! A small, bounded reader for `application/beep+xml` (RFC 3080 §2.3, §6.4):
//! the XML subset BEEP uses on channel 0 and in the tuning profiles.
//!
//! The subset has no XML declaration requirement, no DOCTYPE and no entity
//! references other than the five predefined ones and numeric character
//! references; we reject a DOCTYPE and any other entity outright (this is
//! also the XXE / billion-laughs defence). Documents are bounded in size and
//! element depth before and while parsing.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use thiserror::Error;

/// Largest document accepted, in octets.
pub const MAX_DOCUMENT: usize = 64 * 1024;
/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 16;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum XmlError {
    /// The document is larger than [`MAX_DOCUMENT`].
    #[error("document larger than {MAX_DOCUMENT} octets")]
    TooLarge,
    /// Elements nest deeper than [`MAX_DEPTH`].
    #[error("elements nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A DOCTYPE declaration, forbidden by RFC 3080 §6.4.
    #[error("DOCTYPE is not allowed in application/beep+xml")]
    Doctype,
    /// An entity reference other than the predefined ones.
    #[error("entity reference &{0}; is not allowed in application/beep+xml")]
    Entity(String),
    /// Not well-formed XML, or not UTF-8.
    #[error("poorly-formed XML: {0}")]
    Syntax(String),
    /// No root element, or content after it.
    #[error("document must contain exactly one root element")]
    Root,
}

/// An element with its attributes and children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// The element name as written (with any prefix).
    pub name: String,
    /// Attributes in document order, values unescaped.
    pub attributes: Vec<(String, String)>,
    /// Child nodes in document order.
    pub children: Vec<Node>,
}

/// A child node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data with references resolved.
    Text(String),
    /// A CDATA section.
    CData(String),
}

impl Element {
    /// The value of attribute `name`, if present.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Child elements in order.
    pub fn elements(&self) -> impl Iterator<Item = &Self> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(element) => Some(element),
            Node::Text(_) | Node::CData(_) => None,
        })
    }

    /// All character data directly inside this element, concatenated.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|node| match node {
                Node::Text(text) | Node::CData(text) => Some(text.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    /// The content of the CDATA sections directly inside this element,
    /// concatenated, if there is any (whitespace around them is layout).
    pub fn cdata(&self) -> Option<String> {
        let mut sections = self.children.iter().filter_map(|node| match node {
            Node::CData(text) => Some(text.as_str()),
            _ => None,
        });
        let first = sections.next()?;
        Some(sections.fold(first.to_owned(), |acc, s| acc + s))
    }

    /// True if the element has child elements or non-whitespace text.
    pub fn has_content(&self) -> bool {
        self.children.iter().any(|node| match node {
            Node::Element(_) => true,
            Node::Text(text) | Node::CData(text) => !text.trim().is_empty(),
        })
    }
}

/// Parses one `application/beep+xml` document into its root element.
pub fn parse(document: &[u8]) -> Result<Element, XmlError> {
    if document.len() > MAX_DOCUMENT {
        return Err(XmlError::TooLarge);
    }
    let text = std::str::from_utf8(document).map_err(|e| XmlError::Syntax(e.to_string()))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError::Syntax(e.to_string()))?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(XmlError::Root);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(element_from(&start)?);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(XmlError::Root);
                }
                let element = element_from(&start)?;
                close(&mut stack, &mut root, element);
            }
            Event::End(_) => {
                let element = stack.pop().ok_or(XmlError::Root)?;
                close(&mut stack, &mut root, element);
            }
            Event::Text(text) => {
                let value = text
                    .xml_content()
                    .map_err(|e| XmlError::Syntax(e.to_string()))?;
                push_text(&mut stack, &value)?;
            }
            Event::CData(cdata) => {
                let value = cdata
                    .decode()
                    .map_err(|e| XmlError::Syntax(e.to_string()))?;
                push_node(&mut stack, Node::CData(value.into_owned()))?;
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference
                    .resolve_char_ref()
                    .map_err(|e| XmlError::Syntax(e.to_string()))?
                {
                    Some(c) => c,
                    None => {
                        let name = reference
                            .decode()
                            .map_err(|e| XmlError::Syntax(e.to_string()))?;
                        predefined(&name).ok_or_else(|| XmlError::Entity(name.into_owned()))?
                    }
                };
                push_text(&mut stack, resolved.encode_utf8(&mut [0; 4]))?;
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax("unclosed element".into()));
    }
    root.ok_or(XmlError::Root)
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

fn element_from(start: &BytesStart<'_>) -> Result<Element, XmlError> {
    let name = std::str::from_utf8(start.name().as_ref())
        .map_err(|e| XmlError::Syntax(e.to_string()))?
        .to_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| XmlError::Syntax(e.to_string()))?;
        let key = std::str::from_utf8(attribute.key.as_ref())
            .map_err(|e| XmlError::Syntax(e.to_string()))?
            .to_owned();
        let value = attribute.unescape_value().map_err(|e| match e {
            quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(
                _,
                name,
            )) => XmlError::Entity(name),
            other => XmlError::Syntax(other.to_string()),
        })?;
        attributes.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attributes,
        children: Vec::new(),
    })
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

fn push_node(stack: &mut [Element], node: Node) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(node);
            Ok(())
        }
        None => Err(XmlError::Root),
    }
}

fn push_text(stack: &mut [Element], value: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(text)) = parent.children.last_mut() {
                text.push_str(value);
            } else {
                parent.children.push(Node::Text(value.to_owned()));
            }
            Ok(())
        }
        None if value.trim().is_empty() => Ok(()),
        None => Err(XmlError::Root),
    }
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
    fn parses_elements_attributes_and_cdata() {
        let root = parse(
            b"<start number='1' serverName='a&amp;b'>\r\n   <profile uri='http://iana.org/beep/TLS'>\r\n       <![CDATA[<ready />]]>\r\n   </profile>\r\n</start>\r\n",
        )
        .unwrap();
        assert_eq!(root.name, "start");
        assert_eq!(root.attribute("serverName"), Some("a&b"));
        let profile = root.elements().next().unwrap();
        assert_eq!(profile.attribute("uri"), Some("http://iana.org/beep/TLS"));
        assert_eq!(profile.text().trim(), "<ready />");
    }

    #[test]
    fn resolves_predefined_and_numeric_references() {
        let root = parse(b"<error code='501'>a &lt;b&gt; &#65;&#x42;</error>").unwrap();
        assert_eq!(root.text(), "a <b> AB");
    }

    #[test]
    fn refuses_doctype_and_custom_entities() {
        assert_eq!(
            parse(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"),
            Err(XmlError::Doctype)
        );
        assert_eq!(parse(b"<x>&a;</x>"), Err(XmlError::Entity("a".into())));
        assert_eq!(parse(b"<x y='&a;'/>"), Err(XmlError::Entity("a".into())));
    }

    #[test]
    fn refuses_deep_large_and_rootless_documents() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooDeep));
        let large = vec![b' '; MAX_DOCUMENT + 1];
        assert_eq!(parse(&large), Err(XmlError::TooLarge));
        assert_eq!(parse(b"  "), Err(XmlError::Root));
        assert_eq!(parse(b"<a/><b/>"), Err(XmlError::Root));
        assert_eq!(parse(b"text<a/>"), Err(XmlError::Root));
        assert!(matches!(parse(b"<a><b></a>"), Err(XmlError::Syntax(_))));
    }

    #[test]
    fn cdata_splits_terminator() {
        let wrapped = cdata("x]]>y");
        let root = parse(format!("<p>{wrapped}</p>").as_bytes()).unwrap();
        assert_eq!(root.text(), "x]]>y");
    }
}
