//! The reader: quick-xml events folded into a [`Document`], with every
//! defence of the [module](super) applied on the way.

use std::ops::Range;

use quick_xml::Reader;
use quick_xml::escape::EscapeError;
use quick_xml::events::{BytesStart, Event};

use super::chars::{is_xml_char, is_xml_whitespace};
use super::error::XmlError;
use super::limits::XmlLimits;
use super::tree::{Document, Element, Node};

/// Parses one `application/beep+xml` document under `limits`.
pub fn parse<'a>(document: &'a [u8], limits: &XmlLimits) -> Result<Document<'a>, XmlError> {
    if document.len() > limits.max_document {
        return Err(XmlError::TooLarge {
            size: document.len(),
            limit: limits.max_document,
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
        let syntax = |message: String| XmlError::Syntax {
            position: before as u64,
            message,
        };
        match event {
            Event::Start(start) => {
                open(&stack, &root, limits)?;
                stack.push(element_from(&start, after..after, before)?);
            }
            Event::Empty(start) => {
                open(&stack, &root, limits)?;
                let element = element_from(&start, after..after, before)?;
                close(&mut stack, &mut root, element);
            }
            Event::End(_) => {
                let mut element = stack.pop().ok_or(XmlError::Root)?;
                element.inner.end = before;
                close(&mut stack, &mut root, element);
            }
            Event::Text(text) => {
                let value = text.xml_content().map_err(|e| syntax(e.to_string()))?;
                push_text(&mut stack, &value, before)?;
            }
            Event::CData(cdata) => {
                let value = cdata.decode().map_err(|e| syntax(e.to_string()))?;
                check_chars(&value, before)?;
                let parent = stack.last_mut().ok_or(XmlError::Root)?;
                parent.children.push(Node::CData(value.into_owned()));
            }
            Event::GeneralRef(reference) => {
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
                push_text(&mut stack, resolved.encode_utf8(&mut [0; 4]), before)?;
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(decl) => {
                if let Some(encoding) = decl.encoding() {
                    let encoding = encoding.map_err(|e| syntax(e.to_string()))?;
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

fn position(reader: &Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

/// Checks that a new element may start here: inside the root, or as the
/// root, and within the depth limit.
fn open(stack: &[Element], root: &Option<Element>, limits: &XmlLimits) -> Result<(), XmlError> {
    if root.is_some() {
        return Err(XmlError::Root);
    }
    if stack.len() >= limits.max_depth {
        return Err(XmlError::TooDeep {
            limit: limits.max_depth,
        });
    }
    Ok(())
}

/// The five entities XML predefines (§4.6).
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

/// Refuses characters outside XML 1.0 `Char`: no writer could write them
/// back, so they are not carried.
fn check_chars(value: &str, position: usize) -> Result<(), XmlError> {
    match value.chars().find(|c| !is_xml_char(*c)) {
        Some(c) => Err(XmlError::Syntax {
            position: position as u64,
            message: format!("character U+{:04X} is not allowed in XML", u32::from(c)),
        }),
        None => Ok(()),
    }
}

fn push_text(stack: &mut [Element], value: &str, position: usize) -> Result<(), XmlError> {
    check_chars(value, position)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: XmlLimits = XmlLimits::new(64 * 1024, 16);

    fn parse_root(doc: &[u8]) -> Result<Element, XmlError> {
        parse(doc, &LIMITS).map(|d| d.root)
    }

    #[test]
    fn parses_elements_attributes_and_cdata() {
        let root = parse_root(
            b"<start number='1' serverName='a&amp;b'>\r\n   <profile uri='http://iana.org/beep/TLS'>\r\n       <![CDATA[<ready />]]>\r\n   </profile>\r\n</start>\r\n",
        )
        .unwrap();
        assert_eq!(root.name, "start");
        assert_eq!(root.attribute("serverName"), Some("a&b"));
        let profile = root.elements().next().unwrap();
        assert_eq!(profile.attribute("uri"), Some("http://iana.org/beep/TLS"));
        assert_eq!(profile.text().trim(), "<ready />");
        assert_eq!(profile.cdata().as_deref(), Some("<ready />"));
        assert!(profile.has_content());
        assert_eq!(root.elements().count(), 1);
    }

    #[test]
    fn resolves_predefined_and_numeric_references() {
        let root = parse_root(b"<error code='501'>a &lt;b&gt; &#65;&#x42;</error>").unwrap();
        assert_eq!(root.text(), "a <b> AB");
        assert_eq!(root.children.len(), 1, "adjacent text is joined");
        assert_eq!(root.cdata(), None);
    }

    #[test]
    fn keeps_inner_spans_verbatim() {
        let src = "<a x='1'>\n <b y='&amp;'>t&lt;<c/></b><d/>\n</a>";
        let doc = parse(src.as_bytes(), &LIMITS).unwrap();
        assert_eq!(doc.inner(&doc.root), "\n <b y='&amp;'>t&lt;<c/></b><d/>\n");
        let b = doc.root.elements().next().unwrap();
        assert_eq!(b.attribute("y"), Some("&"));
        assert_eq!(doc.inner(b), "t&lt;<c/>");
        assert_eq!(b.text(), "t<");
        let d = doc.root.elements().nth(1).unwrap();
        assert_eq!(doc.inner(d), "");
        assert!(!d.has_content());
    }

    #[test]
    fn normalizes_attribute_whitespace_but_not_references() {
        let root = parse_root(b"<a x='1\n\t2' y='1&#10;2'/>").unwrap();
        assert_eq!(root.attribute("x"), Some("1  2"));
        assert_eq!(root.attribute("y"), Some("1\n2"));
    }

    #[test]
    fn refuses_doctype_entities_and_bad_encodings() {
        assert_eq!(
            parse_root(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"),
            Err(XmlError::Doctype)
        );
        assert_eq!(parse_root(b"<x>&a;</x>"), Err(XmlError::Entity("a".into())));
        assert_eq!(
            parse_root(b"<x y='&a;'/>"),
            Err(XmlError::Entity("a".into()))
        );
        assert_eq!(parse_root(b"<x>\xff</x>"), Err(XmlError::NotUtf8));
        assert_eq!(
            parse_root(b"<?xml version='1.0' encoding='ISO-8859-1'?><x/>"),
            Err(XmlError::Encoding("ISO-8859-1".into()))
        );
        assert!(parse_root(b"<?xml version='1.0' encoding='UTF-8'?><x/>").is_ok());
        assert!(parse_root(b"\xef\xbb\xbf<x/>").is_ok());
    }

    #[test]
    fn refuses_deep_large_and_rootless_documents() {
        let n = LIMITS.max_depth + 1;
        let deep = "<a>".repeat(n) + &"</a>".repeat(n);
        assert_eq!(
            parse_root(deep.as_bytes()),
            Err(XmlError::TooDeep {
                limit: LIMITS.max_depth
            })
        );
        let deep_empty = "<a>".repeat(n - 1) + "<a/>" + &"</a>".repeat(n - 1);
        assert!(matches!(
            parse_root(deep_empty.as_bytes()),
            Err(XmlError::TooDeep { .. })
        ));
        let ok = "<a>".repeat(n - 1) + &"</a>".repeat(n - 1);
        assert!(parse_root(ok.as_bytes()).is_ok());
        let large = vec![b' '; LIMITS.max_document + 1];
        assert_eq!(
            parse_root(&large),
            Err(XmlError::TooLarge {
                size: LIMITS.max_document + 1,
                limit: LIMITS.max_document
            })
        );
        assert_eq!(parse_root(b"  "), Err(XmlError::Root));
        assert_eq!(parse_root(b"<a/><b/>"), Err(XmlError::Root));
        assert_eq!(parse_root(b"text<a/>"), Err(XmlError::Root));
        assert_eq!(parse_root(b"<a/>&amp;"), Err(XmlError::Root));
        assert_eq!(parse_root(b"<![CDATA[x]]><a/>"), Err(XmlError::Root));
        for bad in [&b"<a><b></a>"[..], b"<a>", b"<a x='1' x='2'/>"] {
            assert!(
                matches!(parse_root(bad), Err(XmlError::Syntax { .. })),
                "{bad:?}"
            );
        }
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
                matches!(parse_root(bad), Err(XmlError::Syntax { .. })),
                "{bad:?}"
            );
        }
        assert!(parse_root(b"<e a='&#9;&#10;&#13;'>&#x10000;\t</e>").is_ok());
    }
}
