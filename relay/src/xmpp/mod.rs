//! The XMPP side of the gateway, without I/O (RFC 3922, RFC 3923,
//! XEP-0114, XEP-0106): addresses ([`jid`]), the stream's framing
//! ([`frame`]), stanzas ([`stanza`]) and content ([`content`]). The
//! component connection and the bridge to the spool are in
//! `crate::gateway`.

pub(crate) mod content;
pub(crate) mod frame;
pub(crate) mod jid;
pub(crate) mod stanza;

use imxp_apex::ReplyCode;
use stanza::ErrorInfo;

/// What an XMPP stanza error means for an APEX recipient (RFC 6120
/// §8.3.2–3 mapped onto RFC 3340 §10 reply codes): `wait` errors are
/// temporary (450, retried); the rest are permanent, with the code that
/// says best why. Returns the code and whether it is temporary.
pub(crate) fn reply_code_of(error: &ErrorInfo) -> (ReplyCode, bool) {
    if error.error_type == "wait" {
        return (ReplyCode::ACTION_NOT_TAKEN_TEMPORARY, true);
    }
    let code = match error.condition.as_str() {
        "forbidden"
        | "not-authorized"
        | "not-allowed"
        | "policy-violation"
        | "registration-required"
        | "subscription-required"
        | "payment-required" => ReplyCode::NOT_AUTHORIZED,
        "jid-malformed" | "bad-request" | "not-acceptable" => ReplyCode::PARAMETER_INVALID,
        "feature-not-implemented" => ReplyCode::PARAMETER_NOT_IMPLEMENTED,
        // item-not-found, service-unavailable, recipient-unavailable,
        // remote-server-not-found, gone, redirect, and the rest.
        _ => ReplyCode::ACTION_NOT_TAKEN,
    };
    (code, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(error_type: &str, condition: &str) -> ErrorInfo {
        ErrorInfo {
            error_type: error_type.into(),
            condition: condition.into(),
            text: None,
        }
    }

    #[test]
    fn stanza_errors_map_to_reply_codes() {
        assert_eq!(
            reply_code_of(&error("cancel", "service-unavailable")),
            (ReplyCode::ACTION_NOT_TAKEN, false)
        );
        assert_eq!(
            reply_code_of(&error("auth", "forbidden")),
            (ReplyCode::NOT_AUTHORIZED, false)
        );
        assert_eq!(
            reply_code_of(&error("modify", "jid-malformed")),
            (ReplyCode::PARAMETER_INVALID, false)
        );
        assert_eq!(
            reply_code_of(&error("wait", "resource-constraint")),
            (ReplyCode::ACTION_NOT_TAKEN_TEMPORARY, true)
        );
    }
}
