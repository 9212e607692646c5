//! Channel-management elements on channel 0 (RFC 3080 §2.3, DTD §7.1):
//! `greeting`, `start`, `profile`, `close`, `ok` and `error`.
//!
//! Parsing checks the DTD's constraints (required attributes, channel-number
//! range, reply codes, init content of at most 4096 octets); writing produces
//! the layout of the RFC examples.

use crate::mime::{self, MimeError};
use crate::reply_code::ReplyCode;
use crate::xml::{self, Element, XmlError};
use base64::Engine as _;
use thiserror::Error;

/// Largest piggybacked init content, in octets (RFC 3080 §2.3.1.2).
pub const MAX_INIT: usize = 4096;

/// Why a channel-0 message could not be understood. Received in a MSG, it is
/// answered with an `<error>` carrying [`MgmtError::reply_code`]; in a reply
/// it terminates the session (RFC 3080 §2.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MgmtError {
    /// The payload is not an `application/beep+xml` entity.
    #[error(transparent)]
    Mime(#[from] MimeError),
    /// The XML is poorly formed or outside the allowed subset.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// An element that does not belong here.
    #[error("unexpected element <{0}>")]
    UnexpectedElement(String),
    /// A required attribute is missing or its value is invalid.
    #[error("attribute {0} is missing or invalid")]
    BadAttribute(&'static str),
    /// Init content over [`MAX_INIT`] octets.
    #[error("profile init content exceeds {MAX_INIT} octets")]
    InitTooLarge,
}

impl MgmtError {
    /// The reply code to answer a poorly-formed MSG with (RFC 3080 §8):
    /// 500 for XML that is not well-formed, 501 for valid XML that breaks
    /// the DTD.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            Self::Mime(_) | Self::Xml(_) => ReplyCode::SYNTAX_ERROR,
            _ => ReplyCode::PARAMETER_SYNTAX_ERROR,
        }
    }
}

/// `<greeting>` (RFC 3080 §2.3.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Greeting {
    /// URIs of the profiles the peer supports in the server role.
    pub profiles: Vec<String>,
    /// Optional features (`features` attribute, NMTOKENS).
    pub features: Vec<String>,
    /// Preferred languages, most preferred first (`localize`, default `i-default`).
    pub localize: Vec<String>,
}

/// A `<profile>` element: an offer inside `<start>`, or the reply to a start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The profile URI.
    pub uri: String,
    /// Piggybacked init content (already base64-decoded if so encoded).
    pub init: Option<Vec<u8>>,
}

/// `<start>` (RFC 3080 §2.3.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The channel number to create, 1..2147483647.
    pub number: u32,
    /// The `serverName` attribute.
    pub server_name: Option<String>,
    /// Proposed profiles, in the order of preference of the sender.
    pub profiles: Vec<Profile>,
}

/// `<close>` (RFC 3080 §2.3.1.3); `number = 0` releases the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The channel to close; 0 means the whole session.
    pub number: u32,
    /// The reason code.
    pub code: ReplyCode,
    /// Language of the diagnostic.
    pub lang: Option<String>,
    /// Optional diagnostic text.
    pub diagnostic: String,
}

/// `<error>` (RFC 3080 §2.3.1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The reply code.
    pub code: ReplyCode,
    /// Language of the diagnostic.
    pub lang: Option<String>,
    /// Optional diagnostic text.
    pub diagnostic: String,
}

impl ErrorReply {
    /// An error without language tag.
    pub fn new(code: ReplyCode, diagnostic: impl Into<String>) -> Self {
        Self {
            code,
            lang: None,
            diagnostic: diagnostic.into(),
        }
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.diagnostic.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {}", self.code, self.diagnostic)
        }
    }
}

/// A MSG received on channel 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `<start>`.
    Start(Start),
    /// `<close>`.
    Close(Close),
}

/// A reply received on channel 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `<greeting>`.
    Greeting(Greeting),
    /// `<profile>`: a start was accepted.
    Profile(Profile),
    /// `<ok />`: a close was accepted.
    Ok,
    /// `<error>`.
    Error(ErrorReply),
}

// ===== parsing =====

fn root(payload: &[u8]) -> Result<Element, MgmtError> {
    Ok(xml::parse(mime::beep_xml_body(payload)?)?)
}

/// Parses the payload of a MSG on channel 0.
pub fn parse_request(payload: &[u8]) -> Result<Request, MgmtError> {
    let element = root(payload)?;
    match element.name.as_str() {
        "start" => parse_start(&element).map(Request::Start),
        "close" => parse_close(&element).map(Request::Close),
        other => Err(MgmtError::UnexpectedElement(other.to_owned())),
    }
}

/// Parses the payload of a RPY or ERR on channel 0.
pub fn parse_reply(payload: &[u8]) -> Result<Reply, MgmtError> {
    let element = root(payload)?;
    match element.name.as_str() {
        "greeting" => parse_greeting(&element).map(Reply::Greeting),
        "profile" => parse_profile(&element).map(Reply::Profile),
        "ok" => {
            if element.has_content() || !element.attributes.is_empty() {
                return Err(MgmtError::UnexpectedElement("ok".into()));
            }
            Ok(Reply::Ok)
        }
        "error" => parse_error_element(&element).map(Reply::Error),
        other => Err(MgmtError::UnexpectedElement(other.to_owned())),
    }
}

fn parse_greeting(element: &Element) -> Result<Greeting, MgmtError> {
    let mut profiles = Vec::new();
    for child in element.elements() {
        if child.name != "profile" {
            return Err(MgmtError::UnexpectedElement(child.name.clone()));
        }
        profiles.push(
            child
                .attribute("uri")
                .ok_or(MgmtError::BadAttribute("uri"))?
                .to_owned(),
        );
    }
    let tokens = |name| {
        element
            .attribute(name)
            .map(|v: &str| v.split_ascii_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let mut localize: Vec<String> = tokens("localize");
    if localize.is_empty() {
        localize.push("i-default".into());
    }
    Ok(Greeting {
        profiles,
        features: tokens("features"),
        localize,
    })
}

fn parse_start(element: &Element) -> Result<Start, MgmtError> {
    let number = channel_number(element.attribute("number"))?;
    if number == 0 {
        return Err(MgmtError::BadAttribute("number"));
    }
    let profiles = element
        .elements()
        .map(|child| {
            if child.name == "profile" {
                parse_profile(child)
            } else {
                Err(MgmtError::UnexpectedElement(child.name.clone()))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if profiles.is_empty() {
        return Err(MgmtError::BadAttribute("profile"));
    }
    Ok(Start {
        number,
        server_name: element.attribute("serverName").map(str::to_owned),
        profiles,
    })
}

fn parse_profile(element: &Element) -> Result<Profile, MgmtError> {
    let uri = element
        .attribute("uri")
        .filter(|uri| !uri.is_empty())
        .ok_or(MgmtError::BadAttribute("uri"))?
        .to_owned();
    if let Some(child) = element.elements().next() {
        return Err(MgmtError::UnexpectedElement(child.name.clone()));
    }
    // Whitespace around a CDATA section, or around plain text, is layout.
    let text = element
        .cdata()
        .unwrap_or_else(|| element.text().trim().to_owned());
    let init = match element.attribute("encoding").unwrap_or("none") {
        _ if text.is_empty() => None,
        "none" => Some(text.into_bytes()),
        "base64" => Some(
            base64::engine::general_purpose::STANDARD
                .decode(text.split_ascii_whitespace().collect::<String>())
                .map_err(|_| MgmtError::BadAttribute("encoding"))?,
        ),
        _ => return Err(MgmtError::BadAttribute("encoding")),
    };
    if init.as_ref().is_some_and(|init| init.len() > MAX_INIT) {
        return Err(MgmtError::InitTooLarge);
    }
    Ok(Profile { uri, init })
}

fn parse_close(element: &Element) -> Result<Close, MgmtError> {
    let number = match element.attribute("number") {
        None => 0,
        some => channel_number(some)?,
    };
    let code = element
        .attribute("code")
        .and_then(ReplyCode::parse)
        .ok_or(MgmtError::BadAttribute("code"))?;
    Ok(Close {
        number,
        code,
        lang: element.attribute("xml:lang").map(str::to_owned),
        diagnostic: element.text().trim().to_owned(),
    })
}

/// Parses an `<error>` element (also used inside tuning-profile init replies).
pub fn parse_error_element(element: &Element) -> Result<ErrorReply, MgmtError> {
    if element.name != "error" {
        return Err(MgmtError::UnexpectedElement(element.name.clone()));
    }
    let code = element
        .attribute("code")
        .and_then(ReplyCode::parse)
        .ok_or(MgmtError::BadAttribute("code"))?;
    Ok(ErrorReply {
        code,
        lang: element.attribute("xml:lang").map(str::to_owned),
        diagnostic: element.text().trim().to_owned(),
    })
}

fn channel_number(value: Option<&str>) -> Result<u32, MgmtError> {
    value
        .filter(|v| !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|&n| n <= 2_147_483_647)
        .ok_or(MgmtError::BadAttribute("number"))
}

// ===== writing =====

impl Greeting {
    /// The greeting as an `application/beep+xml` payload.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut attrs = String::new();
        if !self.features.is_empty() {
            attrs.push_str(&format!(
                " features='{}'",
                xml::escape(&self.features.join(" "))
            ));
        }
        let default_localize = self.localize.is_empty()
            || (self.localize.len() == 1 && self.localize[0] == "i-default");
        if !default_localize {
            attrs.push_str(&format!(
                " localize='{}'",
                xml::escape(&self.localize.join(" "))
            ));
        }
        if self.profiles.is_empty() {
            return mime::beep_xml_payload(&format!("<greeting{attrs} />"));
        }
        let mut body = format!("<greeting{attrs}>\r\n");
        for uri in &self.profiles {
            body.push_str(&format!("   <profile uri='{}' />\r\n", xml::escape(uri)));
        }
        body.push_str("</greeting>");
        mime::beep_xml_payload(&body)
    }
}

impl Profile {
    /// A profile without init content.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            init: None,
        }
    }

    /// A profile with init content.
    pub fn with_init(uri: impl Into<String>, init: impl Into<Vec<u8>>) -> Self {
        Self {
            uri: uri.into(),
            init: Some(init.into()),
        }
    }

    /// The element, with init content as CDATA (or base64 if not UTF-8 text).
    fn to_xml(&self, indent: &str) -> String {
        let uri = xml::escape(&self.uri);
        match &self.init {
            None => format!("{indent}<profile uri='{uri}' />"),
            Some(init) => match std::str::from_utf8(init) {
                Ok(text) if !text.contains('\0') => format!(
                    "{indent}<profile uri='{uri}'>\r\n{indent}    {}\r\n{indent}</profile>",
                    xml::cdata(text)
                ),
                _ => format!(
                    "{indent}<profile uri='{uri}' encoding='base64'>{}</profile>",
                    base64::engine::general_purpose::STANDARD.encode(init)
                ),
            },
        }
    }

    /// The profile as the payload of a positive reply to `<start>`.
    pub fn to_payload(&self) -> Vec<u8> {
        mime::beep_xml_payload(&self.to_xml(""))
    }
}

impl Start {
    /// The start request as an `application/beep+xml` payload.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut body = format!("<start number='{}'", self.number);
        if let Some(name) = &self.server_name {
            body.push_str(&format!(" serverName='{}'", xml::escape(name)));
        }
        body.push_str(">\r\n");
        for profile in &self.profiles {
            body.push_str(&profile.to_xml("   "));
            body.push_str("\r\n");
        }
        body.push_str("</start>");
        mime::beep_xml_payload(&body)
    }
}

impl Close {
    /// The close request as an `application/beep+xml` payload.
    ///
    /// `number` is always written, `number='0'` for a release too: the
    /// DTD's default (RFC 3080 §2.3.1.3, §7.1) makes it optional, but some
    /// implementations refuse or mishandle a `<close>` without it, so we
    /// are conservative in what we send (RFC 1122 §1.2.2).
    pub fn to_payload(&self) -> Vec<u8> {
        let number = format!("number='{}' ", self.number);
        let lang = self
            .lang
            .as_ref()
            .map(|lang| format!(" xml:lang='{}'", xml::escape(lang)))
            .unwrap_or_default();
        let body = if self.diagnostic.is_empty() {
            format!("<close {number}code='{}'{lang} />", self.code)
        } else {
            format!(
                "<close {number}code='{}'{lang}>{}</close>",
                self.code,
                xml::escape(&self.diagnostic)
            )
        };
        mime::beep_xml_payload(&body)
    }
}

impl ErrorReply {
    /// The bare `<error>` element.
    pub fn to_xml(&self) -> String {
        let lang = self
            .lang
            .as_ref()
            .map(|lang| format!(" xml:lang='{}'", xml::escape(lang)))
            .unwrap_or_default();
        if self.diagnostic.is_empty() {
            format!("<error code='{}'{lang} />", self.code)
        } else {
            format!(
                "<error code='{}'{lang}>{}</error>",
                self.code,
                xml::escape(&self.diagnostic)
            )
        }
    }

    /// The error as an `application/beep+xml` payload.
    pub fn to_payload(&self) -> Vec<u8> {
        mime::beep_xml_payload(&self.to_xml())
    }
}

/// The `<ok />` payload.
pub fn ok_payload() -> Vec<u8> {
    mime::beep_xml_payload("<ok />")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_round_trip_and_rfc_sizes() {
        let empty = Greeting::default();
        assert_eq!(empty.to_payload().len(), 52);
        let tls = Greeting {
            profiles: vec!["http://iana.org/beep/TLS".into()],
            ..Greeting::default()
        };
        assert_eq!(tls.to_payload().len(), 110);
        let Reply::Greeting(parsed) = parse_reply(&tls.to_payload()).unwrap() else {
            panic!("not a greeting")
        };
        assert_eq!(parsed.profiles, tls.profiles);
        assert_eq!(parsed.localize, vec!["i-default".to_string()]);
    }

    #[test]
    fn start_and_close_match_rfc_sizes() {
        let start = Start {
            number: 1,
            server_name: None,
            profiles: vec![Profile::new("http://iana.org/beep/SASL/OTP")],
        };
        assert_eq!(start.to_payload().len(), 120);
        let close = Close {
            number: 1,
            code: ReplyCode::BEEP_OK,
            lang: None,
            diagnostic: String::new(),
        };
        assert_eq!(close.to_payload().len(), 71);
        // The RFC's release (60 octets) leaves `number` to its default; we
        // write `number='0'` (11 octets more) for peers that need it.
        let release = Close { number: 0, ..close };
        assert_eq!(release.to_payload().len(), 71);
        assert!(
            String::from_utf8(release.to_payload())
                .unwrap()
                .contains("<close number='0' code='200' />")
        );
        assert_eq!(ok_payload().len(), 46);
        assert_eq!(
            ErrorReply::new(ReplyCode::ACTION_NOT_TAKEN, "still working")
                .to_payload()
                .len(),
            79
        );
    }

    #[test]
    fn start_with_init_round_trips() {
        let start = Start {
            number: 7,
            server_name: Some("relay.example".into()),
            profiles: vec![
                Profile::with_init("http://iana.org/beep/TLS", "<ready />"),
                Profile::with_init("urn:x", vec![0u8, 159, 146, 150]),
            ],
        };
        let Request::Start(parsed) = parse_request(&start.to_payload()).unwrap() else {
            panic!("not a start")
        };
        assert_eq!(parsed.number, 7);
        assert_eq!(parsed.server_name.as_deref(), Some("relay.example"));
        assert_eq!(parsed.profiles[0].init.as_deref(), Some(&b"<ready />"[..]));
        assert_eq!(
            parsed.profiles[1].init.as_deref(),
            Some(&[0u8, 159, 146, 150][..])
        );
    }

    #[test]
    fn rejects_bad_requests_with_codes() {
        let bad_number = mime::beep_xml_payload("<start number='x'><profile uri='u'/></start>");
        let err = parse_request(&bad_number).unwrap_err();
        assert_eq!(err.reply_code(), ReplyCode::PARAMETER_SYNTAX_ERROR);
        let no_profile = mime::beep_xml_payload("<start number='1'></start>");
        assert!(parse_request(&no_profile).is_err());
        let not_xml = mime::beep_xml_payload("<start");
        assert_eq!(
            parse_request(&not_xml).unwrap_err().reply_code(),
            ReplyCode::SYNTAX_ERROR
        );
        let huge = format!(
            "<start number='1'><profile uri='u'>{}</profile></start>",
            "a".repeat(MAX_INIT + 1)
        );
        assert_eq!(
            parse_request(&mime::beep_xml_payload(&huge)),
            Err(MgmtError::InitTooLarge)
        );
        let unknown = mime::beep_xml_payload("<frobnicate/>");
        assert_eq!(
            parse_request(&unknown),
            Err(MgmtError::UnexpectedElement("frobnicate".into()))
        );
    }
}
