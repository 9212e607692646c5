//! Whole BEEP messages on an APEX channel (RFC 3340 §4.1, §4.2): MSG
//! payloads carrying an operation, and their content.
//!
//! A payload is a MIME entity: `Content-Type: application/beep+xml` and the
//! XML, or `multipart/related; type="application/beep+xml"; start=…;
//! boundary=…` whose start part is the XML and whose other part is the
//! content a `data` names by `cid:` URL.

use bytes::Bytes;

use crate::attach::Attach;
use crate::bind::Bind;
use crate::data::{Content, ContentRef, Data};
use crate::error::{ApexError, MimeError};
use crate::limits::Limits;
use crate::mime::{self, MimePart};
use crate::terminate::Terminate;
use crate::xml::{self, Document};

/// An APEX operation (RFC 3340 §4.4), the XML of a MSG.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `attach` (§4.4.1).
    Attach(Attach),
    /// `bind` (§4.4.2).
    Bind(Bind),
    /// `terminate` (§4.4.3).
    Terminate(Terminate),
    /// `data` (§4.4.4).
    Data(Data),
}

/// A parsed MSG payload: the operation and, for `data`, its resolved
/// content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParsedMessage {
    /// The operation.
    pub operation: Operation,
    /// For [`Operation::Data`], what its `content` attribute refers to
    /// (a MIME part octet for octet, the inline `data-content`, or the
    /// external URI); `None` for the other operations.
    pub content: Option<Content>,
}

impl ParsedMessage {
    /// The data and its content, if this is a `data`.
    pub fn into_data(self) -> Option<(Data, Content)> {
        match (self.operation, self.content) {
            (Operation::Data(data), Some(content)) => Some((data, content)),
            _ => None,
        }
    }
}

impl Operation {
    /// Parses a whole MSG payload with the default [`Limits`]. The content
    /// part, if any, is copied out of `payload`; see
    /// [`Operation::parse_bytes`] to share it instead.
    pub fn parse(payload: &[u8]) -> Result<ParsedMessage, ApexError> {
        Self::parse_with(payload, &Limits::default())
    }

    /// Parses a whole MSG payload with the given limits.
    pub fn parse_with(payload: &[u8], limits: &Limits) -> Result<ParsedMessage, ApexError> {
        parse_payload(payload, limits, |range| {
            Bytes::copy_from_slice(&payload[range])
        })
    }

    /// Parses a whole MSG payload held in [`Bytes`]; the content part's
    /// raw octets are a zero-copy slice of `payload`.
    pub fn parse_bytes(payload: &Bytes, limits: &Limits) -> Result<ParsedMessage, ApexError> {
        parse_payload(payload, limits, |range| payload.slice(range))
    }

    /// Parses the init content of a `<start>` for the APEX profile (§4.2):
    /// a bare `attach` or `bind` element (a payload with MIME headers is
    /// accepted too). Anything else is refused with 501.
    pub fn parse_init(init: &[u8]) -> Result<Self, ApexError> {
        let limits = Limits::default();
        let operation = if mime::looks_like_bare_xml(init) {
            Self::from_xml(init, &limits)?
        } else {
            let range = mime::xml_only(init, &limits)?;
            Self::from_xml(&init[range], &limits)?
        };
        match operation {
            Self::Attach(_) | Self::Bind(_) => Ok(operation),
            other => Err(ApexError::UnexpectedElement {
                expected: "attach or bind as init content",
                found: other.name().to_owned(),
            }),
        }
    }

    /// Parses a bare operation element (no MIME headers). A `data`'s
    /// `content` is checked for form but a `cid:` reference is not resolved:
    /// this is for XML kept apart from its content, e.g. in a spool.
    pub fn from_xml(xml: &[u8], limits: &Limits) -> Result<Self, ApexError> {
        let doc = xml::parse(xml, limits)?;
        Self::from_document(&doc)
    }

    fn from_document(doc: &Document<'_>) -> Result<Self, ApexError> {
        let root = &doc.root;
        Ok(match root.name.as_str() {
            "attach" => Self::Attach(Attach::from_element(doc, root)?),
            "bind" => Self::Bind(Bind::from_element(doc, root)?),
            "terminate" => Self::Terminate(Terminate::from_element(root)?),
            "data" => Self::Data(Data::from_element(doc, root)?),
            "ok" | "error" => {
                return Err(ApexError::UnexpectedElement {
                    expected: "attach, bind, terminate or data",
                    found: root.name.clone(),
                });
            }
            other => return Err(ApexError::UnknownElement(other.to_owned())),
        })
    }

    /// The element name: `attach`, `bind`, `terminate` or `data`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Attach(_) => "attach",
            Self::Bind(_) => "bind",
            Self::Terminate(_) => "terminate",
            Self::Data(_) => "data",
        }
    }

    /// The element's transaction identifier (`data` has none).
    pub fn trans_id(&self) -> Option<u32> {
        match self {
            Self::Attach(attach) => Some(attach.trans_id),
            Self::Bind(bind) => Some(bind.trans_id),
            Self::Terminate(terminate) => Some(terminate.trans_id),
            Self::Data(_) => None,
        }
    }

    /// The element (for `data`, as [`Data::to_xml`] writes it).
    pub fn to_xml(&self) -> String {
        match self {
            Self::Attach(attach) => attach.to_xml(),
            Self::Bind(bind) => bind.to_xml(),
            Self::Terminate(terminate) => terminate.to_xml(),
            Self::Data(data) => data.to_xml(),
        }
    }
}

impl From<Attach> for Operation {
    fn from(attach: Attach) -> Self {
        Self::Attach(attach)
    }
}

impl From<Bind> for Operation {
    fn from(bind: Bind) -> Self {
        Self::Bind(bind)
    }
}

impl From<Terminate> for Operation {
    fn from(terminate: Terminate) -> Self {
        Self::Terminate(terminate)
    }
}

impl From<Data> for Operation {
    fn from(data: Data) -> Self {
        Self::Data(data)
    }
}

fn parse_payload(
    payload: &[u8],
    limits: &Limits,
    slice: impl Fn(std::ops::Range<usize>) -> Bytes,
) -> Result<ParsedMessage, ApexError> {
    let split = mime::split_payload(payload, limits)?;
    let doc = xml::parse(&payload[split.xml.clone()], limits)?;
    let operation = Operation::from_document(&doc)?;
    let mut parts = split.parts;
    let content = match &operation {
        Operation::Data(data) => Some(match data.content_ref()? {
            ContentRef::Cid(id) => {
                let index = parts
                    .iter()
                    .position(|part| part.content_id.as_deref() == Some(id.as_str()))
                    .ok_or_else(|| ApexError::ContentReference {
                        reference: data.content.clone(),
                        reason: "no MIME part has this Content-ID",
                    })?;
                let part = parts.remove(index);
                Content::Part(MimePart::from_parts(
                    id,
                    slice(part.raw.clone()),
                    part.body_offset,
                ))
            }
            ContentRef::Fragment(_) => {
                Content::Inline(data.data_content.clone().ok_or_else(|| {
                    ApexError::ContentReference {
                        reference: data.content.clone(),
                        reason: "no data-content element has this Name",
                    }
                })?)
            }
            ContentRef::Absolute(uri) => Content::External(uri),
        }),
        Operation::Attach(_) | Operation::Bind(_) | Operation::Terminate(_) => None,
    };
    if let Some(extra) = parts.first() {
        return Err(match &extra.content_id {
            Some(id) => ApexError::ContentReference {
                reference: id.clone(),
                reason: "MIME part not referenced by a data content attribute",
            },
            None => MimeError::MissingContentId.into(),
        });
    }
    Ok(ParsedMessage { operation, content })
}
