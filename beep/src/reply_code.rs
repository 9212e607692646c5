//! Three-digit reply codes (RFC 3080 §8).

use std::fmt;

/// A BEEP reply code (RFC 3080 §8), as carried in `<error code='…'>` and
/// `<close code='…'>`. Profiles (e.g. APEX, RFC 3340 §10) add their own codes
/// in the same space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(pub u16);

impl ReplyCode {
    /// 200: success.
    pub const SUCCESS: Self = Self(200);
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
    /// 504: parameter not implemented.
    pub const PARAMETER_NOT_IMPLEMENTED: Self = Self(504);
    /// 530: authentication required.
    pub const AUTH_REQUIRED: Self = Self(530);
    /// 534: authentication mechanism insufficient (too weak, sequence exhausted).
    pub const AUTH_MECHANISM_INSUFFICIENT: Self = Self(534);
    /// 535: authentication failure.
    pub const AUTH_FAILURE: Self = Self(535);
    /// 537: action not authorized for user.
    pub const NOT_AUTHORIZED: Self = Self(537);
    /// 538: authentication mechanism requires encryption.
    pub const ENCRYPTION_REQUIRED: Self = Self(538);
    /// 550: requested action not taken (e.g. no requested profiles are acceptable).
    pub const ACTION_NOT_TAKEN: Self = Self(550);
    /// 553: parameter invalid.
    pub const PARAMETER_INVALID: Self = Self(553);
    /// 554: transaction failed (e.g. policy violation).
    pub const TRANSACTION_FAILED: Self = Self(554);

    /// Parses a three-digit code as it appears in a `code` attribute.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() == 3 && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0') {
            text.parse().ok().map(Self)
        } else {
            None
        }
    }

    /// True for 2xx codes.
    pub fn is_positive(self) -> bool {
        (200..300).contains(&self.0)
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_three_digit_codes_only() {
        assert_eq!(ReplyCode::parse("550"), Some(ReplyCode::ACTION_NOT_TAKEN));
        assert_eq!(ReplyCode::parse("55"), None);
        assert_eq!(ReplyCode::parse("5500"), None);
        assert_eq!(ReplyCode::parse("+55"), None);
        assert_eq!(ReplyCode::parse("055"), None);
        assert!(ReplyCode::SUCCESS.is_positive());
        assert!(!ReplyCode::TRANSACTION_FAILED.is_positive());
    }
}
