//! The `bind` operation (RFC 3340 §4.4.2): a relay binds as serving an
//! administrative domain. Sent by either side of a relay-relay channel, as a
//! MSG or as init content of `<start>` (§4.2).
//!
//! ```dtd
//! <!ELEMENT bind        (option*)>
//! <!ATTLIST bind
//!           relay       %DOMAIN;          #REQUIRED
//!           transID     %UNIQID;          #REQUIRED>
//! ```

use crate::address::Domain;
use crate::error::ApexError;
use crate::mime;
use crate::option::ApexOption;
use crate::trans_id;
use crate::xml::{self, Document, DtdChecks as _, Element};

/// `<bind relay='…' transID='…'>option*</bind>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bind {
    /// The domain the peer relay binds as (FQDN or domain-literal).
    pub relay: Domain,
    /// The transaction identifier, 1..2147483647, scoped to the channel.
    pub trans_id: u32,
    /// Options.
    pub options: Vec<ApexOption>,
}

impl Bind {
    /// A bind without options.
    pub fn new(relay: Domain, trans_id: u32) -> Self {
        Self {
            relay,
            trans_id,
            options: Vec::new(),
        }
    }

    /// The element, e.g. `<bind relay='example.com' transID='1' />`; also the
    /// init form for `<start>`.
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<bind");
        xml::push_attribute(&mut out, "relay", self.relay.as_str());
        xml::push_attribute(&mut out, "transID", &self.trans_id.to_string());
        crate::write_options_and_close(&mut out, "bind", &self.options);
        out
    }

    /// The MSG payload (`application/beep+xml`).
    pub fn to_payload(&self) -> Vec<u8> {
        mime::xml_payload(&self.to_xml())
    }

    pub(crate) fn from_element(doc: &Document<'_>, element: &Element) -> Result<Self, ApexError> {
        const E: &str = "bind";
        element.check_attributes(E, &["relay", "transID"])?;
        let value = element.required(E, "relay")?;
        let relay = Domain::parse(value).map_err(|source| ApexError::Address {
            element: E,
            attribute: "relay",
            value: value.to_owned(),
            source,
        })?;
        let trans_id = trans_id::parse_uniqid(E, element.required(E, "transID")?)?;
        let options = crate::read_options(doc, element, E)?;
        Ok(Self {
            relay,
            trans_id,
            options,
        })
    }
}
