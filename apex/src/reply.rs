//! Replies to APEX operations (RFC 3340 §4.2, §9.1 role table): RPY carries
//! `<ok />`, ERR carries the BEEP `<error>` element (RFC 3080 §2.3.1.5, DTD
//! §7.1), which the APEX DTD includes.
//!
//! ```dtd
//! <!ELEMENT ok          EMPTY>
//! <!ELEMENT error       (#PCDATA)>
//! <!ATTLIST error
//!           code        %XYZ;              #REQUIRED
//!           xml:lang    %LANG;             #IMPLIED>
//! ```

use crate::code::ReplyCode;
use crate::error::ApexError;
use crate::limits::Limits;
use crate::mime;
use crate::xml::{self, DtdChecks as _, Element};

/// The `<error>` element: a reply code, an optional language and a text
/// (RFC 3080 §2.3.1.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorReply {
    /// `code`.
    pub code: ReplyCode,
    /// `xml:lang`, if present.
    pub lang: Option<String>,
    /// The diagnostic text (may be empty).
    pub text: String,
}

impl ErrorReply {
    /// An error with `code` and `text`, no language.
    pub fn new(code: ReplyCode, text: impl Into<String>) -> Self {
        Self {
            code,
            lang: None,
            text: text.into(),
        }
    }

    /// The element, e.g. `<error code='537'>access denied</error>`.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        write_coded(
            &mut out,
            "error",
            self.code,
            None,
            self.lang.as_deref(),
            &self.text,
        );
        out
    }

    /// The whole ERR payload (`application/beep+xml`).
    pub fn to_payload(&self) -> Vec<u8> {
        mime::xml_payload(&self.to_xml())
    }

    pub(crate) fn from_element(element: &Element) -> Result<Self, ApexError> {
        const E: &str = "error";
        element.check_attributes(E, &["code", "xml:lang"])?;
        element.check_no_elements(E)?;
        Ok(Self {
            code: parse_code(E, element.required(E, "code")?)?,
            lang: element.attribute("xml:lang").map(str::to_owned),
            text: element.text(),
        })
    }
}

/// A reply to an APEX operation: `<ok />` (in RPY) or `<error>` (in ERR).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Response {
    /// `<ok />`.
    Ok,
    /// `<error code='…'>…</error>`.
    Error(ErrorReply),
}

/// The RPY payload carrying `<ok />`.
pub const OK_PAYLOAD: &[u8] = b"Content-Type: application/beep+xml\r\n\r\n<ok />\r\n";

impl Response {
    /// Parses an RPY or ERR payload (a MIME entity of type
    /// `application/beep+xml`) with the default [`Limits`].
    pub fn parse(payload: &[u8]) -> Result<Self, ApexError> {
        Self::parse_with(payload, &Limits::default())
    }

    /// Parses an RPY or ERR payload with the given limits.
    pub fn parse_with(payload: &[u8], limits: &Limits) -> Result<Self, ApexError> {
        let xml = mime::xml_only(payload, limits)?;
        Self::parse_xml(&payload[xml], limits)
    }

    /// Parses the init-reply form: the bare `<ok />` or `<error …>` element
    /// carried as CDATA in the `<profile>` of a reply to `<start>`
    /// (docs/decisions.md, APEX core). A payload with MIME headers is accepted
    /// too.
    pub fn parse_init(init: &[u8]) -> Result<Self, ApexError> {
        if mime::looks_like_bare_xml(init) {
            Self::parse_xml(init, &Limits::default())
        } else {
            Self::parse(init)
        }
    }

    fn parse_xml(xml: &[u8], limits: &Limits) -> Result<Self, ApexError> {
        let doc = xml::parse(xml, limits)?;
        let root = &doc.root;
        match root.name.as_str() {
            "ok" => {
                root.check_attributes("ok", &[])?;
                root.check_empty("ok")?;
                Ok(Self::Ok)
            }
            "error" => Ok(Self::Error(ErrorReply::from_element(root)?)),
            other => Err(ApexError::UnexpectedElement {
                expected: "ok or error",
                found: other.to_owned(),
            }),
        }
    }

    /// The element (`<ok />` or `<error …>`), also the init-reply form.
    pub fn to_xml(&self) -> String {
        match self {
            Self::Ok => "<ok />".to_owned(),
            Self::Error(error) => error.to_xml(),
        }
    }

    /// The RPY (for [`Response::Ok`]) or ERR payload.
    pub fn to_payload(&self) -> Vec<u8> {
        mime::xml_payload(&self.to_xml())
    }

    /// True for [`Response::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }
}

impl From<ErrorReply> for Response {
    fn from(error: ErrorReply) -> Self {
        Self::Error(error)
    }
}

/// Parses a `code` attribute (`%XYZ;`).
pub(crate) fn parse_code(element: &'static str, value: &str) -> Result<ReplyCode, ApexError> {
    ReplyCode::parse(value).ok_or_else(|| ApexError::InvalidAttribute {
        element,
        attribute: "code",
        value: value.to_owned(),
        reason: "not a three-digit reply code",
    })
}

/// Writes `<name code='…' [transID='…'] [xml:lang='…']>text</name>`.
pub(crate) fn write_coded(
    out: &mut String,
    name: &str,
    code: ReplyCode,
    trans_id: Option<u32>,
    lang: Option<&str>,
    text: &str,
) {
    out.push('<');
    out.push_str(name);
    xml::push_attribute(out, "code", &code.to_string());
    if let Some(trans_id) = trans_id {
        xml::push_attribute(out, "transID", &trans_id.to_string());
    }
    if let Some(lang) = lang {
        xml::push_attribute(out, "xml:lang", lang);
    }
    if text.is_empty() {
        out.push_str(" />");
    } else {
        out.push('>');
        xml::push_text_escaped(out, text);
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3340_replies() {
        assert_eq!(Response::parse_init(b"<ok />").unwrap(), Response::Ok);
        assert_eq!(
            Response::parse_init(b"<error code='537'>access denied</error>").unwrap(),
            Response::Error(ErrorReply::new(ReplyCode::NOT_AUTHORIZED, "access denied"))
        );
        assert_eq!(
            Response::parse_init(b"<error code='550'>unknown transaction-identifier</error>")
                .unwrap(),
            Response::Error(ErrorReply::new(
                ReplyCode::ACTION_NOT_TAKEN,
                "unknown transaction-identifier"
            ))
        );
    }

    #[test]
    fn payload_round_trip() {
        assert_eq!(Response::Ok.to_payload(), OK_PAYLOAD);
        assert_eq!(Response::parse(OK_PAYLOAD).unwrap(), Response::Ok);
        let error = ErrorReply {
            code: ReplyCode::PARAMETER_INVALID,
            lang: Some("en-US".into()),
            text: "bad <endpoint> & 'stuff'\nline two".into(),
        };
        let payload = error.to_payload();
        assert!(payload.starts_with(b"Content-Type: application/beep+xml\r\n\r\n<error code='553' xml:lang='en-US'>bad &lt;endpoint&gt; &amp; &apos;stuff&apos;\nline two</error>"));
        assert_eq!(
            Response::parse(&payload).unwrap(),
            Response::Error(error.clone())
        );
        assert_eq!(
            Response::parse_init(&payload).unwrap(),
            Response::Error(error)
        );
        let empty = ErrorReply::new(ReplyCode::ACTION_NOT_TAKEN, "");
        assert_eq!(empty.to_xml(), "<error code='550' />");
        assert_eq!(
            Response::parse(&empty.to_payload()).unwrap(),
            Response::Error(empty)
        );
    }

    #[test]
    fn refuses_bad_replies() {
        let code = |t: &[u8]| Response::parse_init(t).unwrap_err().reply_code().0;
        assert_eq!(code(b"<error>no code</error>"), 501);
        assert_eq!(code(b"<error code='5x0'/>"), 501);
        assert_eq!(code(b"<error code='550'><b/></error>"), 501);
        assert_eq!(code(b"<ok code='200'/>"), 501);
        assert_eq!(code(b"<ok>text</ok>"), 501);
        assert_eq!(code(b"<ok><x/></ok>"), 501);
        assert_eq!(code(b"<data content='#x'/>"), 501);
        assert_eq!(code(b"<ok"), 500);
        assert!(Response::parse_init(b"<ok> </ok>").unwrap().is_ok());
        // A reply payload must be application/beep+xml.
        assert_eq!(
            Response::parse(b"Content-Type: text/plain\r\n\r\n<ok />")
                .unwrap_err()
                .reply_code()
                .0,
            500
        );
        assert_eq!(
            Response::parse(b"\r\n<ok />").unwrap_err().reply_code().0,
            500
        );
    }
}
