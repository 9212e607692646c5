//! The TLS transport security profile (RFC 3080 §3.1): `<ready />` and
//! `<proceed />`.

use crate::mgmt::{self, ErrorReply, MgmtError};
use crate::reply_code::ReplyCode;
use crate::xml;

/// The profile URI (RFC 3080 §3.1).
pub const TLS_URI: &str = "http://iana.org/beep/TLS";

/// The `<ready />` element the initiator of TLS sends.
pub const READY: &str = "<ready />";
/// The `<proceed />` element the accepting peer replies with.
pub const PROCEED: &str = "<proceed />";

/// Checks a `<ready>` element (init content or MSG body).
///
/// `version` (the earliest acceptable TLS version, DTD default "1") must be
/// "1"; anything else is answered with 501 as in the RFC 3080 §3.1.1 example.
pub fn parse_ready(body: &[u8]) -> Result<(), ErrorReply> {
    let element =
        xml::parse(body).map_err(|e| ErrorReply::new(ReplyCode::SYNTAX_ERROR, e.to_string()))?;
    if element.name != "ready" || element.has_content() {
        return Err(ErrorReply::new(
            ReplyCode::PARAMETER_SYNTAX_ERROR,
            "expected <ready />",
        ));
    }
    match element.attribute("version") {
        None | Some("1") => Ok(()),
        Some(_) => Err(ErrorReply::new(
            ReplyCode::PARAMETER_SYNTAX_ERROR,
            "version attribute poorly formed in <ready> element",
        )),
    }
}

/// What the peer answered to our `<ready />`.
pub fn parse_proceed(body: &[u8]) -> Result<(), ErrorReply> {
    let element =
        xml::parse(body).map_err(|e| ErrorReply::new(ReplyCode::SYNTAX_ERROR, e.to_string()))?;
    match element.name.as_str() {
        "proceed" if !element.has_content() => Ok(()),
        "error" => Err(mgmt::parse_error_element(&element)
            .unwrap_or_else(|e: MgmtError| ErrorReply::new(e.reply_code(), e.to_string()))),
        _ => Err(ErrorReply::new(
            ReplyCode::PARAMETER_SYNTAX_ERROR,
            "expected <proceed />",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_versions() {
        assert!(parse_ready(b"\r\n   <ready />\r\n").is_ok());
        assert!(parse_ready(b"<ready version='1'/>").is_ok());
        let err = parse_ready(b"<ready version=\"oops\" />").unwrap_err();
        assert_eq!(err.code, ReplyCode::PARAMETER_SYNTAX_ERROR);
        assert!(parse_ready(b"<proceed/>").is_err());
    }

    #[test]
    fn proceed_or_error() {
        assert!(parse_proceed(b"<proceed />").is_ok());
        let err = parse_proceed(b"<error code='501'>version attribute\r\npoorly formed in &lt;ready&gt; element</error>").unwrap_err();
        assert_eq!(err.code, ReplyCode::PARAMETER_SYNTAX_ERROR);
        assert!(err.diagnostic.contains("<ready>"));
    }
}
