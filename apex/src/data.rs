//! The `data` operation (RFC 3340 §4.4.4): one originator, one or more
//! recipients, options, and a content named by a URI-reference (§4.1): a
//! `cid:` URL naming a MIME part of the same payload, `#Name` naming an
//! inline `data-content`, or an absolute URI (never dereferenced here).
//!
//! ```dtd
//! <!ELEMENT data        (originator,recipient+,option*,data-content?)>
//! <!ATTLIST data
//!           content     %URI;             #REQUIRED>
//! <!ELEMENT originator  (option*)>
//! <!ATTLIST originator
//!           identity    %ENDPOINT;        #REQUIRED>
//! <!ELEMENT recipient   (option*)>
//! <!ATTLIST recipient
//!           identity    %ENDPOINT;        #REQUIRED>
//! <!ELEMENT data-content ANY>
//! <!ATTLIST data-content Name ID          #REQUIRED>   <!-- erratum 6 -->
//! ```

use crate::address::Endpoint;
use crate::error::ApexError;
use crate::limits::Limits;
use crate::mime::{self, MimePart};
use crate::option::{ApexOption, is_absolute_uri};
use crate::xml::{self, Document, DtdChecks as _, Element};

/// The content of a `data`: what its `content` attribute refers to
/// (RFC 3340 §4.1). Relays carry it octet for octet and never look inside.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Content {
    /// A MIME part of a `multipart/related` payload, named by a `cid:` URL,
    /// exactly as received.
    Part(MimePart),
    /// An inline `data-content` element, named by `#Name`.
    Inline(DataContent),
    /// An absolute URI (with or without fragment), not dereferenced.
    External(String),
}

impl Content {
    /// The XML an APEX service reads from this content (RFC 3341 §4.1,
    /// RFC 3343 §4.1): an inline `data-content`, or a MIME part of type
    /// `application/beep+xml`. Other parts and external URIs are refused
    /// (504): services do not dereference.
    pub fn service_xml(&self) -> Result<&[u8], ApexError> {
        match self {
            Self::Inline(inline) => Ok(inline.xml.as_bytes()),
            Self::Part(part) => {
                let content_type = part.content_type();
                let media = content_type.split(';').next().unwrap_or("").trim();
                if media.eq_ignore_ascii_case(mime::BEEP_XML) {
                    Ok(part.body())
                } else {
                    Err(ApexError::ContentReference {
                        reference: part.cid_url(),
                        reason: "APEX services read application/beep+xml content only",
                    })
                }
            }
            Self::External(uri) => Err(ApexError::ContentReference {
                reference: uri.clone(),
                reason: "APEX services do not dereference external content",
            }),
        }
    }
}

/// An inline `<data-content Name='…'>…</data-content>` element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataContent {
    /// The `Name` attribute (an XML ID), referenced as `#Name`.
    pub name: String,
    /// The element's content (elements and text) exactly as written between
    /// its tags.
    pub xml: String,
}

impl DataContent {
    /// A data-content with `name` and verbatim `xml` content, checking that
    /// the name is an XML Name and the content is well-formed.
    pub fn new(name: impl Into<String>, xml: impl Into<String>) -> Result<Self, ApexError> {
        let name = name.into();
        let xml = xml.into();
        if !is_xml_name(&name) {
            return Err(ApexError::InvalidAttribute {
                element: "data-content",
                attribute: "Name",
                value: name,
                reason: "not an XML Name",
            });
        }
        xml::check_content(&xml, &Limits::default())?;
        Ok(Self { name, xml })
    }

    fn write(&self, out: &mut String) {
        out.push_str("<data-content");
        xml::push_attribute(out, "Name", &self.name);
        out.push('>');
        out.push_str(&self.xml);
        out.push_str("</data-content>");
    }
}

/// `<originator identity='…'>option*</originator>`: per-originator options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Originator {
    /// The originating endpoint.
    pub identity: Endpoint,
    /// Per-originator options.
    pub options: Vec<ApexOption>,
}

/// `<recipient identity='…'>option*</recipient>`: per-recipient options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recipient {
    /// The recipient endpoint.
    pub identity: Endpoint,
    /// Per-recipient options.
    pub options: Vec<ApexOption>,
}

impl Originator {
    /// An originator without options.
    pub fn new(identity: Endpoint) -> Self {
        Self {
            identity,
            options: Vec::new(),
        }
    }
}

impl Recipient {
    /// A recipient without options.
    pub fn new(identity: Endpoint) -> Self {
        Self {
            identity,
            options: Vec::new(),
        }
    }
}

/// `<data content='…'>originator, recipient+, option*, data-content?</data>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Data {
    /// The `content` URI-reference as written.
    pub content: String,
    /// The originator.
    pub originator: Originator,
    /// The recipients (at least one on the wire).
    pub recipients: Vec<Recipient>,
    /// Per-data options.
    pub options: Vec<ApexOption>,
    /// The inline content element, if any.
    pub data_content: Option<DataContent>,
}

/// What a `content` attribute refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContentRef {
    /// A `cid:` URL, decoded to the Content-ID.
    Cid(String),
    /// `#Name`.
    Fragment(String),
    /// An absolute URI.
    Absolute(String),
}

impl Data {
    /// A data from `originator` to `recipients`, without options and with
    /// no content yet: [`Data::to_payload`] or [`Data::set_content`] fills
    /// the `content` attribute in.
    pub fn new(originator: Endpoint, recipients: impl IntoIterator<Item = Endpoint>) -> Self {
        Self {
            content: String::new(),
            originator: Originator::new(originator),
            recipients: recipients.into_iter().map(Recipient::new).collect(),
            options: Vec::new(),
            data_content: None,
        }
    }

    /// Points `content` (and, for inline content, `data_content`) at
    /// `content`, keeping the attribute as written when it already refers
    /// to the same thing.
    pub fn set_content(&mut self, content: &Content) {
        let (reference, data_content) = self.reference_for(content);
        self.content = reference;
        if let Some(data_content) = data_content {
            self.data_content = Some(data_content.clone());
        }
    }

    /// Parses a bare `data` element, e.g. one kept apart from its content
    /// by [`Data::to_xml`]. The `content` reference is checked for form, and
    /// `#Name` against the `data-content`, but a `cid:` URL is not resolved:
    /// pair it again with its part ([`MimePart::from_raw`]).
    pub fn from_xml(xml: &[u8], limits: &Limits) -> Result<Self, ApexError> {
        let doc = xml::parse(xml, limits)?;
        if doc.root.name != "data" {
            return Err(ApexError::UnexpectedElement {
                expected: "data",
                found: doc.root.name,
            });
        }
        Self::from_element(&doc, &doc.root)
    }

    /// The recipients' identities.
    pub fn recipient_identities(&self) -> impl Iterator<Item = &Endpoint> {
        self.recipients.iter().map(|r| &r.identity)
    }

    /// The element as written from the fields (with `data_content` inline
    /// if present). For the wire use [`Data::to_payload`].
    pub fn to_xml(&self) -> String {
        self.write(&self.content, self.data_content.as_ref())
    }

    /// The MSG payload carrying this data and `content`:
    /// `application/beep+xml` for inline and external content,
    /// `multipart/related` with the part's raw octets unchanged for a MIME
    /// part. The `content` attribute (and for [`Content::Inline`] the
    /// `data-content` element) is written from `content`; `self.content`
    /// is kept when it already refers to the same thing. A multipart payload
    /// gets a fresh random boundary (one that occurs in neither the XML nor
    /// the part) and a fresh root Content-ID each time.
    pub fn to_payload(&self, content: &Content) -> Vec<u8> {
        let (reference, inline) = self.reference_for(content);
        let xml = self.write(&reference, inline.or(self.data_content.as_ref()));
        match content {
            Content::Part(part) => mime::related_payload(&xml, part),
            Content::Inline(_) | Content::External(_) => mime::xml_payload(&xml),
        }
    }

    /// The `content` attribute value and inline element for `content`.
    fn reference_for<'c>(&self, content: &'c Content) -> (String, Option<&'c DataContent>) {
        match content {
            Content::Part(part) => {
                let same = mime::cid_of_url(&self.content)
                    .and_then(Result::ok)
                    .is_some_and(|id| id == part.content_id());
                let reference = if same {
                    self.content.clone()
                } else {
                    part.cid_url()
                };
                (reference, None)
            }
            Content::Inline(data_content) => {
                (format!("#{}", data_content.name), Some(data_content))
            }
            Content::External(uri) => (uri.clone(), None),
        }
    }

    fn write(&self, content: &str, data_content: Option<&DataContent>) -> String {
        let mut out = String::from("<data");
        xml::push_attribute(&mut out, "content", content);
        out.push('>');
        write_party(
            &mut out,
            "originator",
            &self.originator.identity,
            &self.originator.options,
        );
        for recipient in &self.recipients {
            write_party(
                &mut out,
                "recipient",
                &recipient.identity,
                &recipient.options,
            );
        }
        for option in &self.options {
            option.write(&mut out);
        }
        if let Some(data_content) = data_content {
            data_content.write(&mut out);
        }
        out.push_str("</data>");
        out
    }

    /// Classifies the `content` attribute (RFC 3340 §4.1): a `cid:` URL, a
    /// fragment-only relative reference, or an absolute URI.
    pub(crate) fn content_ref(&self) -> Result<ContentRef, ApexError> {
        let invalid = |reason| ApexError::ContentReference {
            reference: self.content.clone(),
            reason,
        };
        if let Some(fragment) = self.content.strip_prefix('#') {
            return match &self.data_content {
                Some(dc) if dc.name == fragment => Ok(ContentRef::Fragment(fragment.to_owned())),
                _ => Err(invalid("no data-content element has this Name")),
            };
        }
        if let Some(cid) = mime::cid_of_url(&self.content) {
            return cid.map(ContentRef::Cid);
        }
        if is_absolute_uri(&self.content) {
            Ok(ContentRef::Absolute(self.content.clone()))
        } else {
            Err(invalid(
                "neither an absolute URI nor a fragment-only reference",
            ))
        }
    }

    /// Reads a `data` element; the `content` reference is checked for form
    /// (and `#Name` against the `data-content`), not resolved against MIME
    /// parts.
    pub(crate) fn from_element(doc: &Document<'_>, element: &Element) -> Result<Self, ApexError> {
        const E: &str = "data";
        element.check_attributes(E, &["content"])?;
        element.check_no_text(E)?;
        let content = element.required(E, "content")?.to_owned();
        let mut children = element.elements().peekable();

        let first = children.next().ok_or(ApexError::MissingElement {
            element: E,
            missing: "originator",
        })?;
        if first.name != "originator" {
            return Err(ApexError::UnexpectedElement {
                expected: "originator",
                found: first.name.clone(),
            });
        }
        let (identity, options) = read_party(doc, first, "originator")?;
        let originator = Originator { identity, options };

        let mut recipients = Vec::new();
        while let Some(child) = children.next_if(|c| c.name == "recipient") {
            let (identity, options) = read_party(doc, child, "recipient")?;
            recipients.push(Recipient { identity, options });
        }
        if recipients.is_empty() {
            return Err(match children.peek() {
                Some(child) => ApexError::UnexpectedElement {
                    expected: "recipient",
                    found: child.name.clone(),
                },
                None => ApexError::MissingElement {
                    element: E,
                    missing: "recipient",
                },
            });
        }

        let mut options = Vec::new();
        while let Some(child) = children.next_if(|c| c.name == "option") {
            options.push(ApexOption::from_element(doc, child)?);
        }

        let data_content = match children.next_if(|c| c.name == "data-content") {
            Some(child) => Some(read_data_content(doc, child)?),
            None => None,
        };

        if let Some(extra) = children.next() {
            return Err(ApexError::UnexpectedElement {
                expected: if data_content.is_some() {
                    "nothing after data-content"
                } else {
                    "recipient, option or data-content"
                },
                found: extra.name.clone(),
            });
        }
        let data = Self {
            content,
            originator,
            recipients,
            options,
            data_content,
        };
        data.content_ref()?;
        Ok(data)
    }
}

fn write_party(out: &mut String, name: &'static str, identity: &Endpoint, options: &[ApexOption]) {
    out.push('<');
    out.push_str(name);
    xml::push_attribute(out, "identity", &identity.to_string());
    crate::write_options_and_close(out, name, options);
}

fn read_party(
    doc: &Document<'_>,
    element: &Element,
    name: &'static str,
) -> Result<(Endpoint, Vec<ApexOption>), ApexError> {
    element.check_attributes(name, &["identity"])?;
    let identity = crate::parse_endpoint(name, "identity", element.required(name, "identity")?)?;
    let options = crate::read_options(doc, element, name)?;
    Ok((identity, options))
}

fn read_data_content(doc: &Document<'_>, element: &Element) -> Result<DataContent, ApexError> {
    const E: &str = "data-content";
    element.check_attributes(E, &["Name"])?;
    let name = element.required(E, "Name")?;
    if !is_xml_name(name) {
        return Err(ApexError::InvalidAttribute {
            element: E,
            attribute: "Name",
            value: name.to_owned(),
            reason: "not an XML Name",
        });
    }
    Ok(DataContent {
        name: name.to_owned(),
        xml: doc.inner(element).to_owned(),
    })
}

/// An XML 1.0 Name (approximately: ASCII name characters, any non-ASCII
/// letter; no leading digit, `-` or `.`).
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.' | '\u{b7}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(text: &str) -> Result<Data, ApexError> {
        let doc = xml::parse(text.as_bytes(), &Limits::default()).unwrap();
        Data::from_element(&doc, &doc.root)
    }

    const HEAD: &str =
        "<originator identity='fred@example.com' /><recipient identity='barney@example.com' />";

    #[test]
    fn content_references() {
        let d = data(&format!("<data content='cid:1@example.com'>{HEAD}</data>")).unwrap();
        assert_eq!(
            d.content_ref().unwrap(),
            ContentRef::Cid("1@example.com".into())
        );
        let d = data(&format!(
            "<data content='http://example.com/x#y'>{HEAD}</data>"
        ))
        .unwrap();
        assert_eq!(
            d.content_ref().unwrap(),
            ContentRef::Absolute("http://example.com/x#y".into())
        );
        let d = data(&format!(
            "<data content='#C'>{HEAD}<data-content Name='C'><x/></data-content></data>"
        ))
        .unwrap();
        assert_eq!(d.content_ref().unwrap(), ContentRef::Fragment("C".into()));
        let code = |t: String| data(&t).unwrap_err().reply_code().0;
        assert_eq!(code(format!("<data content='#C'>{HEAD}</data>")), 553);
        assert_eq!(
            code(format!(
                "<data content='#D'>{HEAD}<data-content Name='C'/></data>"
            )),
            553
        );
        assert_eq!(
            code(format!("<data content='relative/x'>{HEAD}</data>")),
            553
        );
        assert_eq!(code(format!("<data content=''>{HEAD}</data>")), 553);
        assert_eq!(code(format!("<data content='cid:'>{HEAD}</data>")), 553);
    }

    #[test]
    fn content_model() {
        let code = |t: String| data(&t).unwrap_err().reply_code().0;
        let o = "<originator identity='fred@example.com' />";
        let r = "<recipient identity='barney@example.com' />";
        let opt = "<option internal='x' />";
        let dc = "<data-content Name='C' />";
        assert_eq!(code("<data content='urn:x'/>".into()), 501);
        assert_eq!(code(format!("<data content='urn:x'>{o}</data>")), 501);
        assert_eq!(code(format!("<data content='urn:x'>{r}{o}</data>")), 501);
        assert_eq!(
            code(format!("<data content='urn:x'>{o}{opt}{r}</data>")),
            501
        );
        assert_eq!(
            code(format!("<data content='urn:x'>{o}{r}{opt}{r}</data>")),
            501
        );
        assert_eq!(
            code(format!("<data content='urn:x'>{o}{r}{dc}{opt}</data>")),
            501
        );
        assert_eq!(
            code(format!("<data content='urn:x'>{o}{r}{dc}{dc}</data>")),
            501
        );
        assert_eq!(code(format!("<data content='urn:x'>{o}{o}{r}</data>")), 501);
        assert_eq!(
            code(format!("<data content='urn:x'>{o}{r}<foo/></data>")),
            501
        );
        assert_eq!(
            code(format!("<data content='urn:x'>{o}text{r}</data>")),
            501
        );
        assert_eq!(code(format!("<data>{o}{r}</data>")), 501);
        assert_eq!(
            code(format!("<data content='urn:x' x='1'>{o}{r}</data>")),
            501
        );
        assert_eq!(
            code(format!("<data content='urn:x'>{o}<recipient/></data>")),
            501
        );
        assert_eq!(
            code(format!(
                "<data content='urn:x'>{o}<recipient identity='nobody'/></data>"
            )),
            553
        );
        assert_eq!(
            code(format!(
                "<data content='urn:x'><originator identity='a@b@c'/>{r}</data>"
            )),
            553
        );
        assert_eq!(
            code(format!(
                "<data content='urn:x'>{o}{r}<data-content Name='1x'/></data>"
            )),
            501
        );
        assert_eq!(
            code(format!(
                "<data content='urn:x'>{o}{r}<data-content/></data>"
            )),
            501
        );
        let ok = data(&format!(
            "<data content='urn:x'>\n {o}\n {r}{r}\n {opt}{opt}\n {dc}\n</data>"
        ))
        .unwrap();
        assert_eq!(ok.recipients.len(), 2);
        assert_eq!(ok.options.len(), 2);
        assert_eq!(ok.data_content.unwrap().xml, "");
    }

    #[test]
    fn xml_round_trip() {
        let text = "<data content='#Content'><originator identity='a@example.com'><option internal='o' /></originator><recipient identity='b/x@[10.0.0.1]'><option external='urn:r' targetHop='all'><z a='1'/></option></recipient><option internal='statusRequest' mustUnderstand='true' transID='86' /><data-content Name='Content'>\n <any thing='&amp;'/> text\n</data-content></data>";
        let d = data(text).unwrap();
        assert_eq!(d.to_xml(), text);
        assert_eq!(data(&d.to_xml()).unwrap(), d);
    }

    #[test]
    fn builders() {
        let fred = Endpoint::parse("fred@example.com").unwrap();
        let barney = Endpoint::parse("barney@example.com").unwrap();
        let mut d = Data::new(fred, [barney.clone()]);
        assert_eq!(d.recipient_identities().collect::<Vec<_>>(), [&barney]);
        d.set_content(&Content::External("urn:x".into()));
        assert_eq!(d.content, "urn:x");
        let inline = DataContent::new("C", "<x/>").unwrap();
        d.set_content(&Content::Inline(inline.clone()));
        assert_eq!(d.content, "#C");
        assert_eq!(d.data_content, Some(inline));
        assert!(DataContent::new("1", "").is_err());
        assert!(DataContent::new("C", "<x>").is_err());
        assert!(DataContent::new("ü.x-1", "").is_ok());
    }
}
