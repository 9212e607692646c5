//! The `attach` operation (RFC 3340 §4.4.1): an application attaches as an
//! endpoint. Sent by the BEEP initiator only, as a MSG or as the init content
//! of the `<start>` that opens the APEX channel (§4.2).
//!
//! ```dtd
//! <!ELEMENT attach      (option*)>
//! <!ATTLIST attach
//!           endpoint    %ENDPOINT;        #REQUIRED
//!           transID     %UNIQID;          #REQUIRED>
//! ```

use crate::address::Endpoint;
use crate::error::ApexError;
use crate::mime;
use crate::option::ApexOption;
use crate::trans_id;
use crate::xml::{self, Document, DtdChecks as _, Element};

/// `<attach endpoint='…' transID='…'>option*</attach>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attach {
    /// The endpoint the application attaches as.
    pub endpoint: Endpoint,
    /// The transaction identifier, 1..2147483647, scoped to the channel.
    pub trans_id: u32,
    /// Options (e.g. RFC 3342 `attachOverride`); `targetHop` and `transID`
    /// are ignored in attach (§4.4.1 step 4).
    pub options: Vec<ApexOption>,
}

impl Attach {
    /// An attach without options.
    pub fn new(endpoint: Endpoint, trans_id: u32) -> Self {
        Self {
            endpoint,
            trans_id,
            options: Vec::new(),
        }
    }

    /// The element, e.g. `<attach endpoint='fred@example.com' transID='1' />`;
    /// also the init form for `<start>`.
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<attach");
        xml::push_attribute(&mut out, "endpoint", &self.endpoint.to_string());
        xml::push_attribute(&mut out, "transID", &self.trans_id.to_string());
        crate::write_options_and_close(&mut out, "attach", &self.options);
        out
    }

    /// The MSG payload (`application/beep+xml`).
    pub fn to_payload(&self) -> Vec<u8> {
        mime::xml_payload(&self.to_xml())
    }

    pub(crate) fn from_element(doc: &Document<'_>, element: &Element) -> Result<Self, ApexError> {
        const E: &str = "attach";
        element.check_attributes(E, &["endpoint", "transID"])?;
        let endpoint = crate::parse_endpoint(E, "endpoint", element.required(E, "endpoint")?)?;
        let trans_id = trans_id::parse_uniqid(E, element.required(E, "transID")?)?;
        let options = crate::read_options(doc, element, E)?;
        Ok(Self {
            endpoint,
            trans_id,
            options,
        })
    }
}
