//! The `terminate` operation (RFC 3340 §4.4.3): ends one attachment or
//! binding, or all of them with `transID='0'`. Sent by either side.
//!
//! ```dtd
//! <!ELEMENT terminate   (#PCDATA)>
//! <!ATTLIST terminate
//!           code        %XYZ;             "250"
//!           xml:lang    %LANG;            #IMPLIED
//!           transID     %UNIZID;          "0">
//! ```

use crate::code::ReplyCode;
use crate::error::ApexError;
use crate::mime;
use crate::reply::parse_code;
use crate::trans_id;
use crate::xml::{self, DtdChecks as _, Element};

/// `<terminate transID='…' code='…' xml:lang='…'>text</terminate>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Terminate {
    /// The attach or bind transaction to end, or 0 for all of them on the
    /// session (the DTD default).
    pub trans_id: u32,
    /// Why, default [`ReplyCode::APEX_OK`] (250); RFC 3342 uses 556 for an
    /// overridden attachment.
    pub code: ReplyCode,
    /// `xml:lang`, if present.
    pub lang: Option<String>,
    /// Diagnostic text (may be empty).
    pub text: String,
}

impl Terminate {
    /// Terminates `trans_id` with code 250 and no text.
    pub fn new(trans_id: u32) -> Self {
        Self {
            trans_id,
            code: ReplyCode::APEX_OK,
            lang: None,
            text: String::new(),
        }
    }

    /// Terminates `trans_id` with `code` and `text`.
    pub fn with_reason(trans_id: u32, code: ReplyCode, text: impl Into<String>) -> Self {
        Self {
            trans_id,
            code,
            lang: None,
            text: text.into(),
        }
    }

    /// True for `transID='0'`: all attachments and bindings on the session.
    pub fn is_all(&self) -> bool {
        self.trans_id == 0
    }

    /// The element, e.g. `<terminate transID='1' code='556'>overriden</terminate>`.
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<terminate");
        xml::push_attribute(&mut out, "transID", &self.trans_id.to_string());
        if self.code != ReplyCode::APEX_OK {
            xml::push_attribute(&mut out, "code", &self.code.to_string());
        }
        if let Some(lang) = &self.lang {
            xml::push_attribute(&mut out, "xml:lang", lang);
        }
        if self.text.is_empty() {
            out.push_str(" />");
        } else {
            out.push('>');
            xml::push_text_escaped(&mut out, &self.text);
            out.push_str("</terminate>");
        }
        out
    }

    /// The MSG payload (`application/beep+xml`).
    pub fn to_payload(&self) -> Vec<u8> {
        mime::xml_payload(&self.to_xml())
    }

    pub(crate) fn from_element(element: &Element) -> Result<Self, ApexError> {
        const E: &str = "terminate";
        element.check_attributes(E, &["transID", "code", "xml:lang"])?;
        element.check_no_elements(E)?;
        let trans_id = match element.attribute("transID") {
            Some(value) => trans_id::parse_unizid(E, value)?,
            None => 0,
        };
        let code = match element.attribute("code") {
            Some(value) => parse_code(E, value)?,
            None => ReplyCode::APEX_OK,
        };
        Ok(Self {
            trans_id,
            code,
            lang: element.attribute("xml:lang").map(str::to_owned),
            text: element.text(),
        })
    }
}
