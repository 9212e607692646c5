//! A refusal: the reply code and text of the APEX `<error>` the relay
//! answers with instead of `<ok />` (RFC 3340 §4.3, codes in §10).
//!
//! Every code the relay sends is named here, with the place of the RFC
//! that gives it its meaning, so that no handler writes a bare number.

use imxp_apex::ReplyCode;
use std::fmt;

/// An operation refused: `<error code='…'>text</error>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The reply code.
    pub(crate) code: ReplyCode,
    /// Why, for the peer and the log.
    pub(crate) text: String,
}

impl Refusal {
    /// A refusal with `code` and `text`.
    pub(crate) fn new(code: ReplyCode, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }

    /// 451: the spool write failed; the peer should try again (RFC 3340
    /// §10 "requested action aborted").
    pub(crate) fn aborted(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::ACTION_ABORTED, text)
    }

    /// 421: the relay is stopping (draining) and takes no new datagram;
    /// the peer should try again later (RFC 3340 §10 "service not
    /// available").
    pub(crate) fn draining() -> Self {
        Self::new(
            ReplyCode::SERVICE_NOT_AVAILABLE,
            "the relay is shutting down; try again later",
        )
    }

    /// 500: the payload is not an APEX operation the relay can read.
    pub(crate) fn syntax(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::SYNTAX_ERROR, text)
    }

    /// 501: an element or option is malformed (e.g. a `statusRequest`
    /// without `transID`).
    pub(crate) fn parameter_syntax(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::PARAMETER_SYNTAX_ERROR, text)
    }

    /// 504: an applicable `mustUnderstand` option is not understood
    /// (docs/decisions.md, Options).
    pub(crate) fn not_implemented(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::PARAMETER_NOT_IMPLEMENTED, text)
    }

    /// 537: the peer may not do this (RFC 3340 §4.4.1 step 3, §4.4.2
    /// step 2, §4.4.4.1 step 1).
    pub(crate) fn not_authorized(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::NOT_AUTHORIZED, text)
    }

    /// 550: nothing to act on (an unknown `transID` in `terminate`,
    /// RFC 3340 §4.4.3).
    pub(crate) fn not_taken(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::ACTION_NOT_TAKEN, text)
    }

    /// 553: a domain this relay does not serve (RFC 3340 §4.4.1 step 2).
    pub(crate) fn invalid(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::PARAMETER_INVALID, text)
    }

    /// 554: the transaction failed, e.g. by policy (RFC 3340 §4.4.1 step
    /// 4: already attached).
    pub(crate) fn failed(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::TRANSACTION_FAILED, text)
    }

    /// 555: the `transID` is in use (RFC 3340 §4.4.1 step 1, §4.4.2
    /// step 1).
    pub(crate) fn trans_id_in_use(trans_id: u32) -> Self {
        Self::new(
            ReplyCode::TRANSACTION_IN_PROGRESS,
            format!("transaction-identifier {trans_id} is in use"),
        )
    }
}

impl From<&imxp_apex::ApexError> for Refusal {
    /// The code the parser assigns to what it could not read.
    fn from(error: &imxp_apex::ApexError) -> Self {
        Self::new(error.reply_code(), error.to_string())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code.0, self.text)
    }
}
