//! The access entry (RFC 3341 §3, DTD §6):
//!
//! ```dtd
//! <!ELEMENT access      EMPTY>
//! <!ATTLIST access
//!           owner       %ENDPOINT;        #REQUIRED
//!           actor       %ACTOR;           #REQUIRED
//!           actions     %ACTIONS;         #IMPLIED
//!           lastUpdate  %TIMESTAMP;       #IMPLIED>
//! ```

use crate::address::Endpoint;
use crate::error::ApexError;
use crate::xml::{self, DtdChecks as _, Element};

use super::{AccessError, Actions, Actor, Timestamp};

/// `<access owner actor [actions] [lastUpdate] />`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessEntry {
    /// Whose entry this is.
    pub owner: Endpoint,
    /// Whom it is about (with possible wildcards).
    pub actor: Actor,
    /// What the actor may do; absent in a `set` that deletes the entry and
    /// in the owner notification of a deletion (§4.4).
    pub actions: Option<Actions>,
    /// When the entry last changed; absent in a `set` that creates one.
    pub last_update: Option<Timestamp>,
}

impl AccessEntry {
    /// An entry with `actions` and no timestamp.
    pub fn new(owner: Endpoint, actor: Actor, actions: Option<Actions>) -> Self {
        Self {
            owner,
            actor,
            actions,
            last_update: None,
        }
    }

    /// Parses a bare `access` element.
    pub fn parse(xml: &[u8]) -> Result<Self, ApexError> {
        let doc = xml::parse(xml, &crate::limits::Limits::default())?;
        Self::from_element(&doc.root)
    }

    /// The element.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str("<access");
        xml::push_attribute(out, "owner", &self.owner.to_string());
        xml::push_attribute(out, "actor", &self.actor.to_string());
        if let Some(actions) = &self.actions {
            xml::push_attribute(out, "actions", &actions.to_string());
        }
        if let Some(last_update) = &self.last_update {
            xml::push_attribute(out, "lastUpdate", last_update.as_str());
        }
        out.push_str(" />");
    }

    pub(crate) fn from_element(element: &Element) -> Result<Self, ApexError> {
        const E: &str = "access";
        if element.name != E {
            return Err(ApexError::UnexpectedElement {
                expected: "access",
                found: element.name.clone(),
            });
        }
        element.check_attributes(E, &["owner", "actor", "actions", "lastUpdate"])?;
        element.check_empty(E)?;
        Ok(Self {
            owner: crate::parse_endpoint(E, "owner", element.required(E, "owner")?)?,
            actor: Actor::parse(element.required(E, "actor")?).map_err(|e| e.at(E))?,
            actions: element
                .attribute("actions")
                .map(Actions::parse)
                .transpose()
                .map_err(|e| e.at(E))?,
            last_update: element
                .attribute("lastUpdate")
                .map(Timestamp::parse)
                .transpose()
                .map_err(|e: AccessError| e.at(E))?,
        })
    }
}
