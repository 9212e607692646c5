//! Three-digit reply codes, one space for BEEP and APEX.
//!
//! BEEP defines its codes in RFC 3080 §8; APEX reuses them and adds its own
//! in RFC 3340 §10. The APEX services and options use a few more that the
//! APEX table leaves out (RFC 3341 §4.3, RFC 3342 §1 and §2.2.1,
//! RFC 3343 §4.4). Every one of them has a named constant here.
//!
//! The two "it worked" codes differ: a BEEP `<ok>`-style success is 200,
//! an APEX transaction success is 250. They are therefore named by protocol
//! ([`ReplyCode::BEEP_OK`], [`ReplyCode::APEX_OK`]) rather than both being
//! "success".

use std::fmt;

/// A three-digit reply code, as carried in the `code` attribute of BEEP's
/// `<error>` and `<close>` (RFC 3080 §2.3.1) and of APEX's `<error>`,
/// `<reply>` and `<terminate>` (RFC 3340 §4.4, §6.1.2).
///
/// The first digit gives the class: 2 success, 3 transient success, 4
/// transient failure, 5 permanent failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(pub u16);

impl ReplyCode {
    /// 200: success (RFC 3080 §8), the BEEP success code.
    pub const BEEP_OK: Self = Self(200);
    /// 250: transaction successful (RFC 3340 §10), the APEX success code and
    /// the default of `<terminate code>`.
    pub const APEX_OK: Self = Self(250);
    /// 350: transient success, e.g. delivery still being tried (RFC 3342
    /// §2.2.1; absent from the RFC 3340 §10 table).
    pub const TRANSIENT: Self = Self(350);
    /// 421: service not available (RFC 3080 §8, RFC 3340 §10).
    pub const SERVICE_NOT_AVAILABLE: Self = Self(421);
    /// 450: requested action not taken, for now, e.g. a lock is held
    /// (RFC 3080 §8, RFC 3340 §10).
    pub const ACTION_NOT_TAKEN_TEMPORARY: Self = Self(450);
    /// 451: requested action aborted, e.g. by a local processing error
    /// (RFC 3080 §8, RFC 3340 §10).
    pub const ACTION_ABORTED: Self = Self(451);
    /// 454: temporary authentication failure (RFC 3080 §8, RFC 3340 §10).
    pub const TEMPORARY_AUTH_FAILURE: Self = Self(454);
    /// 500: general syntax error, e.g. XML that is not well-formed
    /// (RFC 3080 §8, RFC 3340 §10).
    pub const SYNTAX_ERROR: Self = Self(500);
    /// 501: syntax error in parameters, e.g. XML that is not valid against
    /// the DTD (RFC 3080 §8, RFC 3340 §10).
    pub const PARAMETER_SYNTAX_ERROR: Self = Self(501);
    /// 503: publisher mismatch (RFC 3343 §4.4; absent from the RFC 3340 §10
    /// table).
    pub const PUBLISHER_MISMATCH: Self = Self(503);
    /// 504: parameter not implemented (RFC 3080 §8, RFC 3340 §10).
    pub const PARAMETER_NOT_IMPLEMENTED: Self = Self(504);
    /// 530: authentication required (RFC 3080 §8, RFC 3340 §10).
    pub const AUTH_REQUIRED: Self = Self(530);
    /// 534: authentication mechanism insufficient, e.g. too weak or its
    /// sequence exhausted (RFC 3080 §8, RFC 3340 §10).
    pub const AUTH_MECHANISM_INSUFFICIENT: Self = Self(534);
    /// 535: authentication failure (RFC 3080 §8, RFC 3340 §10).
    pub const AUTH_FAILURE: Self = Self(535);
    /// 537: action not authorized for user (RFC 3080 §8, RFC 3340 §10).
    pub const NOT_AUTHORIZED: Self = Self(537);
    /// 538: authentication mechanism requires encryption (RFC 3080 §8,
    /// RFC 3340 §10).
    pub const ENCRYPTION_REQUIRED: Self = Self(538);
    /// 550: requested action not taken, e.g. no offered profile is
    /// acceptable, or an unknown endpoint or transaction (RFC 3080 §8,
    /// RFC 3340 §10).
    pub const ACTION_NOT_TAKEN: Self = Self(550);
    /// 551: no such access entry (RFC 3341 §4.3; absent from the RFC 3340
    /// §10 table).
    pub const NO_SUCH_ACCESS_ENTRY: Self = Self(551);
    /// 553: parameter invalid (RFC 3080 §8, RFC 3340 §10).
    pub const PARAMETER_INVALID: Self = Self(553);
    /// 554: transaction failed, e.g. a policy violation (RFC 3080 §8,
    /// RFC 3340 §10).
    pub const TRANSACTION_FAILED: Self = Self(554);
    /// 555: transaction already in progress (RFC 3340 §10).
    pub const TRANSACTION_IN_PROGRESS: Self = Self(555);
    /// 556: attachment overridden by a newer one (RFC 3342 §1; absent from
    /// the RFC 3340 §10 table).
    pub const ATTACHMENT_OVERRIDDEN: Self = Self(556);

    /// Parses a code as written in a `code` attribute: exactly three ASCII
    /// digits, the first one `1` to `5` (the classes the RFCs use).
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

    /// A short meaning for the codes named here, worded after the RFC that
    /// defines each; `None` for any other code.
    pub fn description(self) -> Option<&'static str> {
        Some(match self.0 {
            200 => "success",
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
        assert_eq!(ReplyCode::parse("200"), Some(ReplyCode::BEEP_OK));
        assert_eq!(ReplyCode::parse("250"), Some(ReplyCode::APEX_OK));
        assert_eq!(ReplyCode::parse("550"), Some(ReplyCode::ACTION_NOT_TAKEN));
        assert_eq!(
            ReplyCode::parse("556"),
            Some(ReplyCode::ATTACHMENT_OVERRIDDEN)
        );
        for bad in [
            "",
            "25",
            "55",
            "2500",
            "5500",
            "050",
            "055",
            "650",
            "25a",
            " 250",
            "+25",
            "+55",
            "２５０",
        ] {
            assert_eq!(ReplyCode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn classes() {
        assert!(ReplyCode::BEEP_OK.is_positive());
        assert!(ReplyCode::APEX_OK.is_positive());
        assert!(ReplyCode::TRANSIENT.is_transient());
        assert!(ReplyCode::ACTION_ABORTED.is_transient());
        assert!(ReplyCode::ACTION_NOT_TAKEN.is_permanent());
        assert!(!ReplyCode::ACTION_NOT_TAKEN.is_positive());
        assert!(!ReplyCode::TRANSACTION_FAILED.is_positive());
    }

    #[test]
    fn text_forms() {
        assert_eq!(ReplyCode::NOT_AUTHORIZED.to_string(), "537");
        assert_eq!(u16::from(ReplyCode::PUBLISHER_MISMATCH), 503);
        assert_eq!(ReplyCode::BEEP_OK.description(), Some("success"));
        assert_eq!(
            ReplyCode::NOT_AUTHORIZED.description(),
            Some("action not authorized for user")
        );
        assert_eq!(ReplyCode(299).description(), None);
    }
}
