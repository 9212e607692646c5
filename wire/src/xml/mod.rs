//! The one bounded, defended reader for `application/beep+xml`, the XML
//! subset that BEEP's channel 0 and tuning profiles (RFC 3080 §2.3, §6.4)
//! and APEX (RFC 3340 §4.1) exchange.
//!
//! Defences, applied before or while parsing, whatever the caller:
//!
//! * size: a document longer than [`XmlLimits::max_document`] is refused
//!   before it is looked at;
//! * depth: elements nested deeper than [`XmlLimits::max_depth`] (the root
//!   counting as 1) are refused as soon as the reader reaches them;
//! * DOCTYPE: refused outright, as RFC 3080 §6.4 excludes it (this also
//!   stops external-entity and entity-expansion attacks);
//! * entities: only the five predefined ones and numeric character
//!   references are resolved, any other reference is refused;
//! * encoding: the input must be UTF-8 (an optional byte-order mark is
//!   skipped), and an XML declaration may name no other encoding;
//! * characters: anything outside XML 1.0's `Char` production is refused,
//!   whether literal or written as a reference.
//!
//! The result is a small element tree ([`Document`], [`Element`], [`Node`])
//! that also remembers where each element's content lies in the source, for
//! callers that must keep content verbatim. Writing XML stays with the
//! crates that write it, since BEEP and APEX escape differently.

mod chars;
mod error;
mod limits;
mod reader;
mod tree;

pub use chars::{is_xml_char, is_xml_whitespace};
pub use error::XmlError;
pub use limits::XmlLimits;
pub use reader::parse;
pub use tree::{Document, Element, Node};
