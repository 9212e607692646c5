//! The report service's `statusResponse` (RFC 3340 §5.1, §6.2, DTD §9.2)
//! and the `reply` element it carries (§6.1.2).
//!
//! ```dtd
//! <!ELEMENT statusResponse (destination+)>
//! <!ATTLIST statusResponse
//!           transID     %UNIQID;          #REQUIRED>
//! <!ELEMENT destination (reply)>
//! <!ATTLIST destination
//!           identity    %ENDPOINT;        #REQUIRED>
//! <!ELEMENT reply       (#PCDATA)>
//! <!ATTLIST reply
//!           code        %XYZ;             #REQUIRED
//!           transID     %UNIQID;          #REQUIRED   <!-- optional: erratum 7 -->
//!           xml:lang    %LANG;            #IMPLIED>
//! ```

use crate::address::{Domain, Endpoint};
use crate::code::ReplyCode;
use crate::data::{Content, Data, DataContent};
use crate::error::ApexError;
use crate::limits::Limits;
use crate::reply::{parse_code, write_coded};
use crate::trans_id;
use crate::xml::{self, DtdChecks as _, Element};

/// The `Name` used for the inline content of reports, as in RFC 3340 §5.1.
pub const REPORT_CONTENT_NAME: &str = "Content";

/// `<reply code='…' transID='…' xml:lang='…'>text</reply>` (RFC 3340 §6.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reply {
    /// `code`.
    pub code: ReplyCode,
    /// `transID`, optional (docs/decisions.md, APEX core: every RFC example
    /// omits it).
    pub trans_id: Option<u32>,
    /// `xml:lang`, if present.
    pub lang: Option<String>,
    /// Diagnostic text as written (may be empty).
    pub text: String,
}

impl Reply {
    /// A reply with `code`, no transID, no language, no text.
    pub fn new(code: ReplyCode) -> Self {
        Self {
            code,
            trans_id: None,
            lang: None,
            text: String::new(),
        }
    }

    /// A reply with `code` and `text`.
    pub fn with_text(code: ReplyCode, text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::new(code)
        }
    }

    pub(crate) fn write(&self, out: &mut String) {
        write_coded(
            out,
            "reply",
            self.code,
            self.trans_id,
            self.lang.as_deref(),
            &self.text,
        );
    }

    pub(crate) fn from_element(element: &Element) -> Result<Self, ApexError> {
        const E: &str = "reply";
        element.check_attributes(E, &["code", "transID", "xml:lang"])?;
        element.check_no_elements(E)?;
        Ok(Self {
            code: parse_code(E, element.required(E, "code")?)?,
            trans_id: element
                .attribute("transID")
                .map(|value| trans_id::parse_uniqid(E, value))
                .transpose()?,
            lang: element.attribute("xml:lang").map(str::to_owned),
            text: element.text(),
        })
    }
}

/// `<destination identity='…'><reply …/></destination>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// The recipient the status is about.
    pub identity: Endpoint,
    /// Its status.
    pub reply: Reply,
}

/// `<statusResponse transID='…'>destination+</statusResponse>`: what the
/// report service sends the originator of a `data` that asked for it with
/// `statusRequest` (RFC 3340 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatusResponse {
    /// The `transID` of the `statusRequest` option being answered.
    pub trans_id: u32,
    /// One entry per recipient reported on (at least one on the wire).
    pub destinations: Vec<Destination>,
}

impl StatusResponse {
    /// Parses a bare `statusResponse` element (white space around it is
    /// fine), e.g. the content of a report's `data-content`.
    pub fn parse(xml: &[u8]) -> Result<Self, ApexError> {
        let doc = xml::parse(xml, &Limits::default())?;
        Self::from_element(&doc.root)
    }

    /// Parses the `statusResponse` inside an inline `data-content`.
    pub fn from_data_content(data_content: &DataContent) -> Result<Self, ApexError> {
        Self::parse(data_content.xml.as_bytes())
    }

    /// The element.
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<statusResponse");
        xml::push_attribute(&mut out, "transID", &self.trans_id.to_string());
        out.push('>');
        for destination in &self.destinations {
            out.push_str("<destination");
            xml::push_attribute(&mut out, "identity", &destination.identity.to_string());
            out.push('>');
            destination.reply.write(&mut out);
            out.push_str("</destination>");
        }
        out.push_str("</statusResponse>");
        out
    }

    /// The element as an inline `data-content` named `name`.
    pub fn to_data_content(&self, name: &str) -> DataContent {
        DataContent {
            name: name.to_owned(),
            xml: self.to_xml(),
        }
    }

    /// The report as RFC 3340 §5.1 sends it: a `data` from
    /// `apex=report@<report_domain>` to `recipient` (the original
    /// originator) with this response inline as `#Content`, and the content
    /// to pass to [`Data::to_payload`]. It carries no `statusRequest`
    /// (reports never cause reports).
    pub fn to_report(&self, report_domain: Domain, recipient: Endpoint) -> (Data, Content) {
        let content = Content::Inline(self.to_data_content(REPORT_CONTENT_NAME));
        let mut data = Data::new(Endpoint::report_service(report_domain), [recipient]);
        data.set_content(&content);
        (data, content)
    }

    pub(crate) fn from_element(element: &Element) -> Result<Self, ApexError> {
        const E: &str = "statusResponse";
        if element.name != E {
            return Err(ApexError::UnexpectedElement {
                expected: "statusResponse",
                found: element.name.clone(),
            });
        }
        element.check_attributes(E, &["transID"])?;
        element.check_no_text(E)?;
        let trans_id = trans_id::parse_uniqid(E, element.required(E, "transID")?)?;
        let mut destinations = Vec::new();
        for child in element.elements() {
            if child.name != "destination" {
                return Err(ApexError::UnexpectedElement {
                    expected: "destination",
                    found: child.name.clone(),
                });
            }
            destinations.push(read_destination(child)?);
        }
        if destinations.is_empty() {
            return Err(ApexError::MissingElement {
                element: E,
                missing: "destination",
            });
        }
        Ok(Self {
            trans_id,
            destinations,
        })
    }
}

fn read_destination(element: &Element) -> Result<Destination, ApexError> {
    const E: &str = "destination";
    element.check_attributes(E, &["identity"])?;
    element.check_no_text(E)?;
    let identity = crate::parse_endpoint(E, "identity", element.required(E, "identity")?)?;
    let mut children = element.elements();
    let reply = match (children.next(), children.next()) {
        (Some(reply), None) if reply.name == "reply" => Reply::from_element(reply)?,
        (None, _) => {
            return Err(ApexError::MissingElement {
                element: E,
                missing: "reply",
            });
        }
        (Some(first), None) => {
            return Err(ApexError::UnexpectedElement {
                expected: "reply",
                found: first.name.clone(),
            });
        }
        (Some(_), Some(second)) => {
            return Err(ApexError::UnexpectedElement {
                expected: "nothing after reply",
                found: second.name.clone(),
            });
        }
    };
    Ok(Destination { identity, reply })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc_forms() {
        let s = StatusResponse::parse(
            b"\n  <statusResponse transID='86'>\n    <destination identity='barney@example.com'>\n      <reply code='550'>unknown endpoint\n                        identity</reply>\n    </destination>\n  </statusResponse>\n",
        )
        .unwrap();
        assert_eq!(s.trans_id, 86);
        assert_eq!(s.destinations.len(), 1);
        assert_eq!(s.destinations[0].reply.code, ReplyCode::ACTION_NOT_TAKEN);
        assert_eq!(s.destinations[0].reply.trans_id, None);
        assert_eq!(
            s.destinations[0].reply.text,
            "unknown endpoint\n                        identity"
        );
        assert_eq!(StatusResponse::parse(s.to_xml().as_bytes()).unwrap(), s);
    }

    #[test]
    fn refuses_bad_forms() {
        let code = |t: &str| {
            StatusResponse::parse(t.as_bytes())
                .unwrap_err()
                .reply_code()
                .0
        };
        assert_eq!(code("<statusResponse transID='1'/>"), 501);
        assert_eq!(
            code(
                "<statusResponse><destination identity='a@b'><reply code='250'/></destination></statusResponse>"
            ),
            501
        );
        assert_eq!(
            code(
                "<statusResponse transID='0'><destination identity='a@b'><reply code='250'/></destination></statusResponse>"
            ),
            501
        );
        assert_eq!(
            code("<statusResponse transID='1'><destination identity='a@b'/></statusResponse>"),
            501
        );
        assert_eq!(
            code(
                "<statusResponse transID='1'><destination identity='a@b'><reply code='250'/><reply code='250'/></destination></statusResponse>"
            ),
            501
        );
        assert_eq!(
            code(
                "<statusResponse transID='1'><destination identity='a@b'><reply/></destination></statusResponse>"
            ),
            501
        );
        assert_eq!(
            code(
                "<statusResponse transID='1'><destination identity='a@b'><ok/></destination></statusResponse>"
            ),
            501
        );
        assert_eq!(
            code(
                "<statusResponse transID='1'><destination identity='a'><reply code='250'/></destination></statusResponse>"
            ),
            553
        );
        assert_eq!(
            code("<statusResponse transID='1'><other/></statusResponse>"),
            501
        );
        assert_eq!(code("<other/>"), 501);
    }

    #[test]
    fn report_builder() {
        let status = StatusResponse {
            trans_id: 86,
            destinations: vec![Destination {
                identity: Endpoint::parse("barney@rubble.com").unwrap(),
                reply: Reply {
                    trans_id: Some(7),
                    lang: Some("en".into()),
                    ..Reply::with_text(ReplyCode::ACTION_NOT_TAKEN, "unknown <endpoint>")
                },
            }],
        };
        let fred = Endpoint::parse("fred@example.com").unwrap();
        let (data, content) = status.to_report(Domain::parse("rubble.com").unwrap(), fred.clone());
        assert_eq!(
            data.originator.identity.to_string(),
            "apex=report@rubble.com"
        );
        assert_eq!(data.recipient_identities().collect::<Vec<_>>(), [&fred]);
        assert_eq!(data.content, "#Content");
        assert!(data.options.is_empty());
        let Content::Inline(inline) = &content else {
            panic!("inline expected");
        };
        assert_eq!(StatusResponse::from_data_content(inline).unwrap(), status);
    }
}
