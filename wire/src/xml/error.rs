//! Why a document was refused.

use thiserror::Error;

use crate::ReplyCode;

/// Why an `application/beep+xml` document was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum XmlError {
    /// The document is longer than [`XmlLimits::max_document`](super::XmlLimits::max_document).
    #[error("XML document of {size} octets exceeds the limit of {limit}")]
    TooLarge {
        /// Size of the document.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Elements nest deeper than [`XmlLimits::max_depth`](super::XmlLimits::max_depth).
    #[error("elements nested deeper than the limit of {limit}")]
    TooDeep {
        /// The limit in force.
        limit: usize,
    },
    /// A DOCTYPE declaration (excluded from `application/beep+xml` by
    /// RFC 3080 §6.4).
    #[error("DOCTYPE is not allowed in application/beep+xml")]
    Doctype,
    /// An entity reference other than the five predefined ones.
    #[error("entity reference &{0}; is not allowed in application/beep+xml")]
    Entity(String),
    /// The document is not UTF-8.
    #[error("XML document is not UTF-8")]
    NotUtf8,
    /// The XML declaration names an encoding other than UTF-8.
    #[error("XML declaration names encoding {0:?}; only UTF-8 is accepted")]
    Encoding(String),
    /// Not well-formed XML, or a character XML cannot carry.
    #[error("poorly-formed XML at octet {position}: {message}")]
    Syntax {
        /// Octet offset of the error in the document.
        position: u64,
        /// What went wrong.
        message: String,
    },
    /// No root element, or something other than white space, comments or
    /// processing instructions outside it.
    #[error("XML document must contain exactly one root element")]
    Root,
}

impl XmlError {
    /// The reply code to refuse the document with when the refusal is a
    /// transaction's outcome (RFC 3340 §10): 554, transaction failed, for a
    /// size or depth limit (a policy, not a syntax matter); 500, general
    /// syntax error, for everything else.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            Self::TooLarge { .. } | Self::TooDeep { .. } => ReplyCode::TRANSACTION_FAILED,
            _ => ReplyCode::SYNTAX_ERROR,
        }
    }
}
