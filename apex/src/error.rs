//! Typed errors, one enum per failure domain, each mapping to the APEX reply
//! code a relay answers with (RFC 3340 §10).
//!
//! | failure | code |
//! |---|---|
//! | poorly-formed XML, DOCTYPE, entity, bad MIME framing ([`XmlError`], [`MimeError`]) | 500 |
//! | a size or depth limit ([`XmlError::TooLarge`], [`XmlError::TooDeep`], [`MimeError::TooLarge`]) | 554 |
//! | an element APEX does not define at the top level ([`ApexError::UnknownElement`]) | 504 |
//! | a DTD violation: wrong element, missing, unknown or bad attribute, transID out of range | 501 |
//! | an endpoint or domain that does not parse ([`ApexError::Address`]) | 553 |
//! | a `content` reference that does not resolve, or a part nothing references | 553 |

use thiserror::Error;

use crate::address::AddressError;
use crate::code::ReplyCode;
use crate::reply::ErrorReply;

/// Why an `application/beep+xml` document was refused: the error of the
/// shared reader in `imxp-wire`, whose limits here are
/// [`Limits::max_xml`](crate::Limits::max_xml) and
/// [`Limits::max_depth`](crate::Limits::max_depth).
pub use imxp_wire::xml::XmlError;

/// Why a BEEP message payload is not a MIME entity APEX accepts
/// (RFC 3080 §2.2.2, RFC 3340 §4.1, RFC 2046 §5.1, RFC 2387).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MimeError {
    /// The payload is larger than [`Limits::max_payload`](crate::Limits::max_payload).
    #[error("payload of {size} octets exceeds the limit of {limit}")]
    TooLarge {
        /// Size of the payload.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// No empty line ends the header block (within
    /// [`Limits::max_headers`](crate::Limits::max_headers)).
    #[error("entity headers are not terminated by an empty line")]
    Unterminated,
    /// A header line without a colon, with a bad name, or not UTF-8.
    #[error("poorly-formed entity header")]
    BadHeader,
    /// The payload's content type is neither `application/beep+xml` nor
    /// `multipart/related`.
    #[error("content type {0:?} is neither application/beep+xml nor multipart/related")]
    ContentType(String),
    /// A `charset` other than UTF-8 (or US-ASCII) on the XML.
    #[error("charset {0:?} is not supported; APEX XML is UTF-8")]
    Charset(String),
    /// A `Content-Type` value that does not parse.
    #[error("poorly-formed Content-Type {0:?}")]
    BadContentType(String),
    /// `multipart/related` without a usable `boundary` parameter.
    #[error("multipart/related without a valid boundary parameter")]
    Boundary,
    /// The `type` parameter of `multipart/related` is not `application/beep+xml`.
    #[error("multipart/related type {0:?} is not application/beep+xml")]
    RelatedType(String),
    /// The multipart body has no close delimiter, or no part at all.
    #[error("multipart body is truncated: no close delimiter")]
    Truncated,
    /// More body parts than APEX allows (the XML and one content part).
    #[error("multipart/related with {0} parts; APEX allows the XML and one content part")]
    TooManyParts(usize),
    /// The `start` parameter names no part.
    #[error("no part has the start Content-ID <{0}>")]
    StartNotFound(String),
    /// The root part is not `application/beep+xml`.
    #[error("root part has content type {0:?}, not application/beep+xml")]
    RootContentType(String),
    /// The XML is sent with a transformative transfer encoding.
    #[error("Content-Transfer-Encoding {0:?} is not accepted for the XML part")]
    TransferEncoding(String),
    /// A content part has no (or an empty) `Content-ID`.
    #[error("content part without Content-ID")]
    MissingContentId,
    /// Two parts share a `Content-ID`.
    #[error("two parts have Content-ID <{0}>")]
    DuplicateContentId(String),
    /// A value given to a constructor would break the header block (control
    /// characters, missing `/` in a content type, bad Content-ID).
    #[error("invalid header value {0:?}")]
    HeaderValue(String),
}

/// Why an APEX message was refused. [`ApexError::reply_code`] gives the code
/// to answer with, [`ApexError::to_error_reply`] the whole `<error>`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApexError {
    /// The XML did not pass the `application/beep+xml` reader.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// The MIME framing of the payload is wrong.
    #[error(transparent)]
    Mime(#[from] MimeError),
    /// The root element is not one APEX defines in this position (RFC 3340
    /// §9.1 role table): answered with 504.
    #[error("element <{0}> is not implemented")]
    UnknownElement(String),
    /// An element appears where the DTD does not allow it.
    #[error("element <{found}> is not allowed here; expected {expected}")]
    UnexpectedElement {
        /// What the DTD allows at this point.
        expected: &'static str,
        /// The element found.
        found: String,
    },
    /// Character data inside an element whose content model has none, or
    /// content inside an `EMPTY` element.
    #[error("<{element}> may not contain character data")]
    UnexpectedText {
        /// The element.
        element: &'static str,
    },
    /// A `#REQUIRED` attribute is missing.
    #[error("<{element}> lacks the required attribute {attribute}")]
    MissingAttribute {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
    },
    /// An attribute the DTD does not declare for the element.
    #[error("<{element}> has no attribute {attribute}")]
    UnknownAttribute {
        /// The element.
        element: &'static str,
        /// The attribute as written.
        attribute: String,
    },
    /// An attribute value outside its declared type (enumeration, code,
    /// transID range, URI form, `Name` syntax, both or neither of
    /// `internal`/`external`).
    #[error("<{element} {attribute}='{value}'>: {reason}")]
    InvalidAttribute {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A required child element is missing (e.g. a `data` without
    /// `recipient`).
    #[error("<{element}> lacks {missing}")]
    MissingElement {
        /// The element.
        element: &'static str,
        /// What is missing.
        missing: &'static str,
    },
    /// An endpoint or domain attribute that does not parse (RFC 3340 §2.2).
    #[error("<{element} {attribute}='{value}'>: {source}")]
    Address {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
        /// The value as written.
        value: String,
        /// Why it does not parse.
        source: AddressError,
    },
    /// The `content` URI-reference does not resolve, or a MIME part is not
    /// referenced (RFC 3340 §4.1).
    #[error("content reference {reference:?}: {reason}")]
    ContentReference {
        /// The reference (or the unreferenced part's Content-ID).
        reference: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl MimeError {
    /// The reply code for this failure: 554 for limits, else 500.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            Self::TooLarge { .. } => ReplyCode::TRANSACTION_FAILED,
            _ => ReplyCode::SYNTAX_ERROR,
        }
    }
}

impl ApexError {
    /// The APEX reply code to answer with (RFC 3340 §10): see the table in
    /// the [module docs](self).
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            Self::Xml(e) => e.reply_code(),
            Self::Mime(e) => e.reply_code(),
            Self::UnknownElement(_) => ReplyCode::PARAMETER_NOT_IMPLEMENTED,
            Self::UnexpectedElement { .. }
            | Self::UnexpectedText { .. }
            | Self::MissingAttribute { .. }
            | Self::UnknownAttribute { .. }
            | Self::InvalidAttribute { .. }
            | Self::MissingElement { .. } => ReplyCode::PARAMETER_SYNTAX_ERROR,
            Self::Address { .. } | Self::ContentReference { .. } => ReplyCode::PARAMETER_INVALID,
        }
    }

    /// The `<error>` element to send back in an ERR (code and this error's
    /// text, no language).
    pub fn to_error_reply(&self) -> ErrorReply {
        ErrorReply::new(self.reply_code(), self.to_string())
    }
}

impl From<ApexError> for ErrorReply {
    fn from(error: ApexError) -> Self {
        error.to_error_reply()
    }
}
