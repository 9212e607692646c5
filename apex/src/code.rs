//! APEX reply codes (RFC 3340 §10), plus the codes the companion RFCs use
//! without listing them there (spec-digest §9 erratum 14).

use std::fmt;

/// A three-digit APEX reply code, as carried by `<error code='…'>`,
/// `<reply code='…'>` and `<terminate code='…'>` (RFC 3340 §10).
///
/// APEX shares the code space with BEEP (RFC 3080 §8); this is apex's own
/// type so that the crate stays independent of `imxp-beep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(pub u16);

impl ReplyCode {
    /// 250: transaction successful (RFC 3340 §10; the `terminate` default).
    pub const SUCCESS: Self = Self(250);
    /// 350: transient success, e.g. still trying (RFC 3342 §2.2.1; not in
    /// RFC 3340 §10).
    pub const TRANSIENT: Self = Self(350);
    /// 421: service not available.
    pub const SERVICE_NOT_AVAILABLE: Self = Self(421);
    /// 450: requested action not taken (e.g. lock already in use).
    pub const ACTION_NOT_TAKEN_TEMPORARY: Self = Self(450);
    /// 451: requested action aborted (e.g. local error in processing).
    pub const ACTION_ABORTED: Self = Self(451);
    /// 454: temporary authentication failure.
    pub const TEMPORARY_AUTH_FAILURE: Self = Self(454);
    /// 500: general syntax error (e.g. poorly-formed XML).
    pub const SYNTAX_ERROR: Self = Self(500);
    /// 501: syntax error in parameters (e.g. non-valid XML).
    pub const PARAMETER_SYNTAX_ERROR: Self = Self(501);
    /// 503: publisher mismatch (RFC 3343 §4.4; not in RFC 3340 §10).
    pub const PUBLISHER_MISMATCH: Self = Self(503);
    /// 504: parameter not implemented.
    pub const PARAMETER_NOT_IMPLEMENTED: Self = Self(504);
    /// 530: authentication required.
    pub const AUTH_REQUIRED: Self = Self(530);
    /// 534: authentication mechanism insufficient.
    pub const AUTH_MECHANISM_INSUFFICIENT: Self = Self(534);
    /// 535: authentication failure.
    pub const AUTH_FAILURE: Self = Self(535);
    /// 537: action not authorized for user.
    pub const NOT_AUTHORIZED: Self = Self(537);
    /// 538: authentication mechanism requires encryption.
    pub const ENCRYPTION_REQUIRED: Self = Self(538);
    /// 550: requested action not taken (e.g. unknown endpoint, unknown
    /// transaction-identifier).
    pub const ACTION_NOT_TAKEN: Self = Self(550);
    /// 551: no such access entry (RFC 3341 §4.3; not in RFC 3340 §10).
    pub const NO_SUCH_ACCESS_ENTRY: Self = Self(551);
    /// 553: parameter invalid.
    pub const PARAMETER_INVALID: Self = Self(553);
    /// 554: transaction failed (e.g. policy violation).
    pub const TRANSACTION_FAILED: Self = Self(554);
    /// 555: transaction already in progress.
    pub const TRANSACTION_IN_PROGRESS: Self = Self(555);
    /// 556: attachment overridden (RFC 3342 §1; not in RFC 3340 §10).
    pub const ATTACHMENT_OVERRIDDEN: Self = Self(556);

    /// Parses a code as written in a `code` attribute: exactly three ASCII
    /// digits, the first one `1` to `5`.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() == 3
            && (b'1'..=b'5').contains(&bytes[0])
            && bytes[1].is_ascii_digit()
            && bytes[2].is_ascii_digit()
        {
            text.parse().ok().map(Self)
        } else {
            None
        }
    }

    /// True for 2xx codes (success).
    pub fn is_positive(self) -> bool {
        (200..300).contains(&self.0)
    }

    /// True for 3xx and 4xx codes (transient: the action may succeed later).
    pub fn is_transient(self) -> bool {
        (300..500).contains(&self.0)
    }

    /// True for 5xx codes (permanent failure).
    pub fn is_permanent(self) -> bool {
        (500..600).contains(&self.0)
    }

    /// The meaning given in RFC 3340 §10 (or the RFC that uses the code),
    /// for codes this crate knows.
    pub fn description(self) -> Option<&'static str> {
        Some(match self.0 {
            250 => "transaction successful",
            350 => "transient success",
            421 => "service not available",
            450 => "requested action not taken",
            451 => "requested action aborted",
            454 => "temporary authentication failure",
            500 => "general syntax error",
            501 => "syntax error in parameters",
            503 => "publisher mismatch",
            504 => "parameter not implemented",
            530 => "authentication required",
            534 => "authentication mechanism insufficient",
            535 => "authentication failure",
            537 => "action not authorized for user",
            538 => "authentication mechanism requires encryption",
            550 => "requested action not taken",
            551 => "no such access entry",
            553 => "parameter invalid",
            554 => "transaction failed",
            555 => "transaction already in progress",
            556 => "attachment overridden",
            _ => return None,
        })
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

impl From<ReplyCode> for u16 {
    fn from(code: ReplyCode) -> Self {
        code.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_three_digits_only() {
        assert_eq!(ReplyCode::parse("250"), Some(ReplyCode::SUCCESS));
        assert_eq!(
            ReplyCode::parse("556"),
            Some(ReplyCode::ATTACHMENT_OVERRIDDEN)
        );
        for bad in [
            "",
            "25",
            "2500",
            "050",
            "650",
            "25a",
            " 250",
            "+25",
            "２５０",
        ] {
            assert_eq!(ReplyCode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn classes() {
        assert!(ReplyCode::SUCCESS.is_positive());
        assert!(ReplyCode::TRANSIENT.is_transient());
        assert!(ReplyCode::ACTION_ABORTED.is_transient());
        assert!(ReplyCode::ACTION_NOT_TAKEN.is_permanent());
        assert!(!ReplyCode::ACTION_NOT_TAKEN.is_positive());
        assert_eq!(ReplyCode::NOT_AUTHORIZED.to_string(), "537");
        assert_eq!(
            ReplyCode::NOT_AUTHORIZED.description(),
            Some("action not authorized for user")
        );
        assert_eq!(ReplyCode(299).description(), None);
    }
}
