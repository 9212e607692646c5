//! The presence service's elements (RFC 3343 §4, DTD §6), carried as the
//! content of a `data` to or from `apex=presence@domain`:
//!
//! ```dtd
//! <!ELEMENT subscribe EMPTY>      <!ATTLIST subscribe publisher transID duration>
//! <!ELEMENT watch     EMPTY>      <!ATTLIST watch     publisher transID duration>
//! <!ELEMENT publish   (presence)> <!ATTLIST publish   publisher transID timeStamp>
//! <!ELEMENT notify    EMPTY>      <!ATTLIST notify    subscriber transID
//!                                           duration "0" action "subscribe">
//! ```
//!
//! plus the core `terminate` (RFC 3340 §9.1; inside a `data-content` it
//! ends a subscription or watch, §4.5) and the core `reply` (§6.1.2).

use crate::access::Timestamp;
use crate::address::{Domain, Endpoint};
use crate::data::{Content, Data, DataContent};
use crate::error::ApexError;
use crate::limits::Limits;
use crate::status::Reply;
use crate::trans_id;
use crate::xml::{self, DtdChecks as _, Element};

use super::entry::{PresenceEntry, timestamp};

/// The `Name` of the inline content the service writes, as in RFC 3343 §2.
pub const PRESENCE_CONTENT_NAME: &str = "Content";

/// `<subscribe publisher duration transID />` (§4.2) or
/// `<watch publisher duration transID />` (§4.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subscribe {
    /// The subject.
    pub publisher: Endpoint,
    /// Seconds the subscription (or watch) should last; 0 is a one-time
    /// poll.
    pub duration: u32,
    /// The transaction identifier, repeated in everything the service
    /// sends for this subscription.
    pub trans_id: u32,
}

/// `<publish publisher transID timeStamp><presence …/></publish>` (§4.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Publish {
    /// The subject (must equal `presence.publisher`).
    pub publisher: Endpoint,
    /// The transaction identifier (a subscription's, when the service
    /// sends it).
    pub trans_id: u32,
    /// The sender's notion of the current time.
    pub time_stamp: Timestamp,
    /// The entry.
    pub presence: PresenceEntry,
}

/// What a `notify` reports (§4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyAction {
    /// A subscription succeeded.
    Subscribe,
    /// A subscription ended.
    Terminate,
}

/// `<notify subscriber transID duration action />` (§4.6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notify {
    /// Who subscribed (or stopped).
    pub subscriber: Endpoint,
    /// The watch's transaction identifier.
    pub trans_id: u32,
    /// The subscription's requested duration (0 with `terminate`).
    pub duration: u32,
    /// Subscribed or terminated.
    pub action: NotifyAction,
}

/// Anything the presence service sends or receives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PresenceMessage {
    /// `subscribe`.
    Subscribe(Subscribe),
    /// `watch`.
    Watch(Subscribe),
    /// `publish`.
    Publish(Box<Publish>),
    /// `notify`.
    Notify(Notify),
    /// `<terminate transID />`: ends a subscription or watch.
    Terminate {
        /// The subscription's or watch's transID.
        trans_id: u32,
    },
    /// `<reply code transID>` (RFC 3340 §6.1.2).
    Reply(Reply),
}

impl PresenceMessage {
    /// Parses one element (white space around it allowed), e.g. the
    /// content of an inline `data-content`.
    pub fn parse(xml: &[u8]) -> Result<Self, ApexError> {
        let doc = xml::parse(xml, &Limits::default())?;
        Self::from_element(&doc.root)
    }

    /// Parses the content of a `data`: an inline `data-content`, or a MIME
    /// part of type `application/beep+xml` (RFC 3343 §4.1). An external URI
    /// is refused (504): the service does not dereference.
    pub fn from_content(content: &Content) -> Result<Self, ApexError> {
        Self::parse(content.service_xml()?)
    }

    /// The transaction identifier, if any (a `reply` may lack one).
    pub fn trans_id(&self) -> Option<u32> {
        match self {
            Self::Subscribe(s) | Self::Watch(s) => Some(s.trans_id),
            Self::Publish(p) => Some(p.trans_id),
            Self::Notify(n) => Some(n.trans_id),
            Self::Terminate { trans_id } => Some(*trans_id),
            Self::Reply(reply) => reply.trans_id,
        }
    }

    /// The element name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Subscribe(_) => "subscribe",
            Self::Watch(_) => "watch",
            Self::Publish(_) => "publish",
            Self::Notify(_) => "notify",
            Self::Terminate { .. } => "terminate",
            Self::Reply(_) => "reply",
        }
    }

    /// The element.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        match self {
            Self::Subscribe(s) | Self::Watch(s) => {
                out.push('<');
                out.push_str(self.name());
                xml::push_attribute(&mut out, "publisher", &s.publisher.to_string());
                xml::push_attribute(&mut out, "duration", &s.duration.to_string());
                xml::push_attribute(&mut out, "transID", &s.trans_id.to_string());
                out.push_str(" />");
            }
            Self::Publish(p) => {
                out.push_str("<publish");
                xml::push_attribute(&mut out, "publisher", &p.publisher.to_string());
                xml::push_attribute(&mut out, "transID", &p.trans_id.to_string());
                xml::push_attribute(&mut out, "timeStamp", p.time_stamp.as_str());
                out.push('>');
                p.presence.write(&mut out);
                out.push_str("</publish>");
            }
            Self::Notify(n) => {
                out.push_str("<notify");
                xml::push_attribute(&mut out, "subscriber", &n.subscriber.to_string());
                xml::push_attribute(&mut out, "transID", &n.trans_id.to_string());
                xml::push_attribute(&mut out, "duration", &n.duration.to_string());
                let action = match n.action {
                    NotifyAction::Subscribe => "subscribe",
                    NotifyAction::Terminate => "terminate",
                };
                xml::push_attribute(&mut out, "action", action);
                out.push_str(" />");
            }
            Self::Terminate { trans_id } => {
                out.push_str("<terminate");
                xml::push_attribute(&mut out, "transID", &trans_id.to_string());
                out.push_str(" />");
            }
            Self::Reply(reply) => reply.write(&mut out),
        }
        out
    }

    /// A `data` from `originator` to `recipient` carrying this element
    /// inline as `#Content` (the form of RFC 3343 §2), and its content for
    /// [`Data::to_payload`].
    pub fn to_data(&self, originator: Endpoint, recipient: Endpoint) -> (Data, Content) {
        let content = Content::Inline(DataContent {
            name: PRESENCE_CONTENT_NAME.to_owned(),
            xml: self.to_xml(),
        });
        let mut data = Data::new(originator, [recipient]);
        data.set_content(&content);
        (data, content)
    }

    fn from_element(element: &Element) -> Result<Self, ApexError> {
        Ok(match element.name.as_str() {
            "subscribe" => Self::Subscribe(subscription("subscribe", element)?),
            "watch" => Self::Watch(subscription("watch", element)?),
            "publish" => {
                const E: &str = "publish";
                element.check_attributes(E, &["publisher", "transID", "timeStamp"])?;
                element.check_no_text(E)?;
                let mut children = element.elements();
                let presence = match (children.next(), children.next()) {
                    (Some(presence), None) => PresenceEntry::from_element(presence)?,
                    (None, _) => {
                        return Err(ApexError::MissingElement {
                            element: E,
                            missing: "presence",
                        });
                    }
                    (Some(_), Some(extra)) => {
                        return Err(ApexError::UnexpectedElement {
                            expected: "one presence element",
                            found: extra.name.clone(),
                        });
                    }
                };
                Self::Publish(Box::new(Publish {
                    publisher: crate::parse_endpoint(
                        E,
                        "publisher",
                        element.required(E, "publisher")?,
                    )?,
                    trans_id: trans_id::parse_uniqid(E, element.required(E, "transID")?)?,
                    time_stamp: timestamp(E, "timeStamp", element.required(E, "timeStamp")?)?,
                    presence,
                }))
            }
            "notify" => {
                const E: &str = "notify";
                element.check_attributes(E, &["subscriber", "transID", "duration", "action"])?;
                element.check_empty(E)?;
                let action = match element.attribute("action").unwrap_or("subscribe") {
                    "subscribe" => NotifyAction::Subscribe,
                    "terminate" => NotifyAction::Terminate,
                    other => {
                        return Err(ApexError::InvalidAttribute {
                            element: E,
                            attribute: "action",
                            value: other.to_owned(),
                            reason: "action is subscribe or terminate",
                        });
                    }
                };
                Self::Notify(Notify {
                    subscriber: crate::parse_endpoint(
                        E,
                        "subscriber",
                        element.required(E, "subscriber")?,
                    )?,
                    trans_id: trans_id::parse_uniqid(E, element.required(E, "transID")?)?,
                    duration: seconds(E, element.attribute("duration").unwrap_or("0"))?,
                    action,
                })
            }
            "terminate" => {
                // The core element (RFC 3340 §9.1); inside a data-content
                // only its transID matters (RFC 3343 §4.5).
                const E: &str = "terminate";
                element.check_attributes(E, &["transID", "code", "xml:lang"])?;
                Self::Terminate {
                    trans_id: trans_id::parse_uniqid(E, element.required(E, "transID")?)?,
                }
            }
            "reply" => Self::Reply(Reply::from_element(element)?),
            other => return Err(ApexError::UnknownElement(other.to_owned())),
        })
    }
}

fn subscription(element_name: &'static str, element: &Element) -> Result<Subscribe, ApexError> {
    let e = element_name;
    element.check_attributes(e, &["publisher", "duration", "transID"])?;
    element.check_empty(e)?;
    Ok(Subscribe {
        publisher: crate::parse_endpoint(e, "publisher", element.required(e, "publisher")?)?,
        duration: seconds(e, element.required(e, "duration")?)?,
        trans_id: trans_id::parse_uniqid(e, element.required(e, "transID")?)?,
    })
}

/// A `%SECONDS;` value: decimal digits, at most 2^32 − 1.
fn seconds(element: &'static str, value: &str) -> Result<u32, ApexError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApexError::InvalidAttribute {
            element,
            attribute: "duration",
            value: value.to_owned(),
            reason: "duration is a number of seconds",
        });
    }
    value.parse().map_err(|_| ApexError::InvalidAttribute {
        element,
        attribute: "duration",
        value: value.to_owned(),
        reason: "duration must be at most 4294967295 seconds",
    })
}

/// The transID of a request whose XML does not parse as a whole, if its
/// root element carries a valid one, so that the error reply can echo it.
pub fn salvage_trans_id(xml: &[u8]) -> Option<u32> {
    let doc = xml::parse(xml, &Limits::default()).ok()?;
    trans_id::parse_uniqid("presence", doc.root.attribute("transID")?).ok()
}

/// The presence service endpoint of `domain`, `apex=presence@<domain>`.
pub fn service_endpoint(domain: &Domain) -> Endpoint {
    Endpoint::service(crate::address::PRESENCE_SERVICE, domain.clone())
        .expect("apex=presence@<valid domain> is a valid endpoint")
}
