//! The element tree [`parse`](super::parse) builds.

use std::ops::Range;

/// A parsed document: its source text and its root element.
#[derive(Debug, Clone)]
pub struct Document<'a> {
    /// The document text, after a leading byte-order mark if there was one;
    /// the spans in [`Element::inner`] index into it.
    pub source: &'a str,
    /// The root element.
    pub root: Element,
}

impl Document<'_> {
    /// The source text of `element`'s content, exactly as written.
    pub fn inner<'s>(&'s self, element: &Element) -> &'s str {
        &self.source[element.inner.clone()]
    }
}

/// An element with its attributes, children and source span.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// The name as written, with any prefix.
    pub name: String,
    /// Attributes in document order; values are normalized (XML 1.0 §3.3.3)
    /// and references in them resolved.
    pub attributes: Vec<(String, String)>,
    /// Children in document order.
    pub children: Vec<Node>,
    /// Byte range in [`Document::source`] of the content between the start
    /// and end tags (empty for an empty-element tag).
    pub inner: Range<usize>,
}

/// A child node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data with references resolved; adjacent runs are joined.
    Text(String),
    /// The content of one CDATA section.
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

    /// All character data (text and CDATA) directly inside this element,
    /// concatenated.
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
    /// concatenated, if there is any (text around them is ignored).
    pub fn cdata(&self) -> Option<String> {
        let mut sections = self.children.iter().filter_map(|node| match node {
            Node::CData(text) => Some(text.as_str()),
            Node::Text(_) | Node::Element(_) => None,
        });
        let first = sections.next()?;
        Some(sections.fold(first.to_owned(), |acc, s| acc + s))
    }

    /// True if the element has child elements or character data that is
    /// not all white space.
    pub fn has_content(&self) -> bool {
        self.children.iter().any(|node| match node {
            Node::Element(_) => true,
            Node::Text(text) | Node::CData(text) => !text.trim().is_empty(),
        })
    }
}
