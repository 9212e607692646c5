//! The access service's elements (RFC 3341 §4, DTD §6), carried as the
//! content of a `data` to or from `apex=access@domain`:
//!
//! ```dtd
//! <!ELEMENT query EMPTY>  <!ATTLIST query owner actor actions transID>
//! <!ELEMENT get   EMPTY>  <!ATTLIST get   owner actor transID>
//! <!ELEMENT set   (access)> <!ATTLIST set transID>
//! <!ELEMENT allow EMPTY>  <!ATTLIST allow transID>
//! <!ELEMENT deny  EMPTY>  <!ATTLIST deny  transID>
//! ```
//!
//! plus the core `reply` (RFC 3340 §6.1.2) for 250 and the error codes.
//!
//! **Extension (not in RFC 3341):** RFC 3341 cannot enumerate an owner's
//! entries (`get` needs the exact actor). imxp adds
//! `<list owner='…' transID='…' />`, allowed to whoever may `get`
//! (`access:get`), answered by `<entries transID='…'>access*</entries>`
//! with the owner's explicit entries. A service without the extension
//! answers `list` with a 504 `reply`.

use crate::address::{Domain, Endpoint};
use crate::data::{Content, Data, DataContent};
use crate::error::ApexError;
use crate::limits::Limits;
use crate::status::Reply;
use crate::trans_id;
use crate::xml::{self, DtdChecks as _, Element};

use super::{AccessEntry, Actions, Actor};

/// The `Name` of the inline content the service writes, as in RFC 3341 §2.
pub const ACCESS_CONTENT_NAME: &str = "Content";

/// `<query owner actor actions transID />` (§4.2). The actor is a plain
/// endpoint: no wildcards, no escapes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// The subject.
    pub owner: Endpoint,
    /// The address asked about.
    pub actor: Endpoint,
    /// The actions asked about.
    pub actions: Actions,
    /// The transaction identifier.
    pub trans_id: u32,
}

/// `<get owner actor transID />` (§4.3). The actor is compared literally.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Get {
    /// The subject.
    pub owner: Endpoint,
    /// The entry's actor, as stored.
    pub actor: Actor,
    /// The transaction identifier.
    pub trans_id: u32,
}

/// `<set transID><access …/></set>` (§4.4): a request to the service, an
/// answer to `get`, or the service's notification to an owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Set {
    /// The transaction identifier.
    pub trans_id: u32,
    /// The entry.
    pub entry: AccessEntry,
}

/// Anything the access service sends or receives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccessMessage {
    /// `query`.
    Query(Query),
    /// `get`.
    Get(Get),
    /// `set`.
    Set(Set),
    /// `<allow transID />`: all queried actions are granted.
    Allow {
        /// The query's transID.
        trans_id: u32,
    },
    /// `<deny transID />`: some queried action is not granted.
    Deny {
        /// The query's transID.
        trans_id: u32,
    },
    /// `<reply code transID>` (RFC 3340 §6.1.2).
    Reply(Reply),
    /// `<list owner transID />` (imxp extension, see the module docs).
    List {
        /// Whose entries.
        owner: Endpoint,
        /// The transaction identifier.
        trans_id: u32,
    },
    /// `<entries transID>access*</entries>` (imxp extension): the answer
    /// to `list`.
    Entries {
        /// The list's transID.
        trans_id: u32,
        /// The owner's explicit entries.
        entries: Vec<AccessEntry>,
    },
}

impl AccessMessage {
    /// Parses one element (white space around it allowed), e.g. the
    /// content of an inline `data-content`.
    pub fn parse(xml: &[u8]) -> Result<Self, ApexError> {
        let doc = xml::parse(xml, &Limits::default())?;
        Self::from_element(&doc.root)
    }

    /// Parses the content of a `data`: an inline `data-content`, or a MIME
    /// part of type `application/beep+xml` (RFC 3341 §4.1). An external URI
    /// is refused (504): the service does not dereference.
    pub fn from_content(content: &Content) -> Result<Self, ApexError> {
        Self::parse(content.service_xml()?)
    }

    /// The transaction identifier, if any (a `reply` may lack one).
    pub fn trans_id(&self) -> Option<u32> {
        match self {
            Self::Query(q) => Some(q.trans_id),
            Self::Get(g) => Some(g.trans_id),
            Self::Set(s) => Some(s.trans_id),
            Self::Allow { trans_id }
            | Self::Deny { trans_id }
            | Self::List { trans_id, .. }
            | Self::Entries { trans_id, .. } => Some(*trans_id),
            Self::Reply(reply) => reply.trans_id,
        }
    }

    /// The element name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Query(_) => "query",
            Self::Get(_) => "get",
            Self::Set(_) => "set",
            Self::Allow { .. } => "allow",
            Self::Deny { .. } => "deny",
            Self::Reply(_) => "reply",
            Self::List { .. } => "list",
            Self::Entries { .. } => "entries",
        }
    }

    /// The element.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        match self {
            Self::Query(q) => {
                out.push_str("<query");
                xml::push_attribute(&mut out, "owner", &q.owner.to_string());
                xml::push_attribute(&mut out, "actor", &q.actor.to_string());
                xml::push_attribute(&mut out, "actions", &q.actions.to_string());
                xml::push_attribute(&mut out, "transID", &q.trans_id.to_string());
                out.push_str(" />");
            }
            Self::Get(g) => {
                out.push_str("<get");
                xml::push_attribute(&mut out, "owner", &g.owner.to_string());
                xml::push_attribute(&mut out, "actor", &g.actor.to_string());
                xml::push_attribute(&mut out, "transID", &g.trans_id.to_string());
                out.push_str(" />");
            }
            Self::Set(s) => {
                out.push_str("<set");
                xml::push_attribute(&mut out, "transID", &s.trans_id.to_string());
                out.push('>');
                s.entry.write(&mut out);
                out.push_str("</set>");
            }
            Self::Allow { trans_id } | Self::Deny { trans_id } => {
                out.push('<');
                out.push_str(self.name());
                xml::push_attribute(&mut out, "transID", &trans_id.to_string());
                out.push_str(" />");
            }
            Self::Reply(reply) => reply.write(&mut out),
            Self::List { owner, trans_id } => {
                out.push_str("<list");
                xml::push_attribute(&mut out, "owner", &owner.to_string());
                xml::push_attribute(&mut out, "transID", &trans_id.to_string());
                out.push_str(" />");
            }
            Self::Entries { trans_id, entries } => {
                out.push_str("<entries");
                xml::push_attribute(&mut out, "transID", &trans_id.to_string());
                if entries.is_empty() {
                    out.push_str(" />");
                } else {
                    out.push('>');
                    for entry in entries {
                        entry.write(&mut out);
                    }
                    out.push_str("</entries>");
                }
            }
        }
        out
    }

    /// A `data` from `originator` to `recipient` carrying this element
    /// inline as `#Content` (the form of RFC 3341 §2), and its content for
    /// [`Data::to_payload`].
    pub fn to_data(&self, originator: Endpoint, recipient: Endpoint) -> (Data, Content) {
        let content = Content::Inline(DataContent {
            name: ACCESS_CONTENT_NAME.to_owned(),
            xml: self.to_xml(),
        });
        let mut data = Data::new(originator, [recipient]);
        data.set_content(&content);
        (data, content)
    }

    fn from_element(element: &Element) -> Result<Self, ApexError> {
        let name = element.name.as_str();
        Ok(match name {
            "query" => {
                const E: &str = "query";
                element.check_attributes(E, &["owner", "actor", "actions", "transID"])?;
                element.check_empty(E)?;
                Self::Query(Query {
                    owner: crate::parse_endpoint(E, "owner", element.required(E, "owner")?)?,
                    actor: crate::parse_endpoint(E, "actor", element.required(E, "actor")?)?,
                    actions: Actions::parse(element.required(E, "actions")?)
                        .map_err(|e| e.at(E))?,
                    trans_id: trans_id::parse_uniqid(E, element.required(E, "transID")?)?,
                })
            }
            "get" => {
                const E: &str = "get";
                element.check_attributes(E, &["owner", "actor", "transID"])?;
                element.check_empty(E)?;
                Self::Get(Get {
                    owner: crate::parse_endpoint(E, "owner", element.required(E, "owner")?)?,
                    actor: Actor::parse(element.required(E, "actor")?).map_err(|e| e.at(E))?,
                    trans_id: trans_id::parse_uniqid(E, element.required(E, "transID")?)?,
                })
            }
            "set" => {
                const E: &str = "set";
                element.check_attributes(E, &["transID"])?;
                element.check_no_text(E)?;
                let trans_id = trans_id::parse_uniqid(E, element.required(E, "transID")?)?;
                let mut children = element.elements();
                let entry = match (children.next(), children.next()) {
                    (Some(access), None) => AccessEntry::from_element(access)?,
                    (None, _) => {
                        return Err(ApexError::MissingElement {
                            element: E,
                            missing: "access",
                        });
                    }
                    (Some(_), Some(extra)) => {
                        return Err(ApexError::UnexpectedElement {
                            expected: "one access element",
                            found: extra.name.clone(),
                        });
                    }
                };
                Self::Set(Set { trans_id, entry })
            }
            "allow" | "deny" => {
                let e: &'static str = if name == "allow" { "allow" } else { "deny" };
                element.check_attributes(e, &["transID"])?;
                element.check_empty(e)?;
                let trans_id = trans_id::parse_uniqid(e, element.required(e, "transID")?)?;
                if e == "allow" {
                    Self::Allow { trans_id }
                } else {
                    Self::Deny { trans_id }
                }
            }
            "reply" => Self::Reply(Reply::from_element(element)?),
            "list" => {
                const E: &str = "list";
                element.check_attributes(E, &["owner", "transID"])?;
                element.check_empty(E)?;
                Self::List {
                    owner: crate::parse_endpoint(E, "owner", element.required(E, "owner")?)?,
                    trans_id: trans_id::parse_uniqid(E, element.required(E, "transID")?)?,
                }
            }
            "entries" => {
                const E: &str = "entries";
                element.check_attributes(E, &["transID"])?;
                element.check_no_text(E)?;
                Self::Entries {
                    trans_id: trans_id::parse_uniqid(E, element.required(E, "transID")?)?,
                    entries: element
                        .elements()
                        .map(AccessEntry::from_element)
                        .collect::<Result<_, _>>()?,
                }
            }
            other => return Err(ApexError::UnknownElement(other.to_owned())),
        })
    }
}

/// The transID of a request whose XML does not parse as a whole, if its
/// root element carries a valid one, so that the error reply can echo it
/// (RFC 3341 §4.2–4.4: replies carry the request's transID).
pub fn salvage_trans_id(xml: &[u8]) -> Option<u32> {
    let doc = xml::parse(xml, &Limits::default()).ok()?;
    trans_id::parse_uniqid("access", doc.root.attribute("transID")?).ok()
}

/// The access service endpoint of `domain`, `apex=access@<domain>`.
pub fn service_endpoint(domain: &Domain) -> Endpoint {
    Endpoint::service(crate::address::ACCESS_SERVICE, domain.clone())
        .expect("apex=access@<valid domain> is a valid endpoint")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_extension_round_trips() {
        let list = AccessMessage::parse(b"<list owner='fred@example.com' transID='5' />").unwrap();
        assert_eq!(list.trans_id(), Some(5));
        assert_eq!(
            AccessMessage::parse(list.to_xml().as_bytes()).unwrap(),
            list
        );
        let xml = "<entries transID='5'><access owner='fred@example.com' actor='*@*' \
                   actions='all:none' lastUpdate='2000-05-14T21:02:00Z' /></entries>";
        let entries = AccessMessage::parse(xml.as_bytes()).unwrap();
        let AccessMessage::Entries { entries: list, .. } = &entries else {
            panic!("entries expected")
        };
        assert_eq!(list.len(), 1);
        assert_eq!(
            AccessMessage::parse(entries.to_xml().as_bytes()).unwrap(),
            entries
        );
        let empty = AccessMessage::Entries {
            trans_id: 1,
            entries: Vec::new(),
        };
        assert_eq!(empty.to_xml(), "<entries transID='1' />");
        assert_eq!(
            AccessMessage::parse(empty.to_xml().as_bytes()).unwrap(),
            empty
        );
        assert!(AccessMessage::parse(b"<entries transID='1'><get/></entries>").is_err());
        assert!(AccessMessage::parse(b"<list owner='fred' transID='1' />").is_err());
    }
}
