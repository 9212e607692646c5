//! The APEX presence service (RFC 3343): the presence entry, the
//! service's elements, and the conversion to and from PIDF (RFC 3863).
//!
//! * [`entry`] — `presence`, `tuple`, `capability` (§3).
//! * [`message`] — `subscribe`, `watch`, `publish`, `notify`, and the core
//!   `terminate` and `reply` as the service uses them (§4).
//! * [`pidf`] — a presence entry as an `application/pidf+xml` document
//!   and back, with the `pres:`/`im:` URIs of RFC 3859–3861.
//!
//! # Where RFC 3343 is inconsistent (decisions)
//!
//! * §4.4 step 5 compares "the lastUpdate attribute of the publish
//!   element"; `lastUpdate` exists only on `presence`, which is what is
//!   compared.
//! * §4.5 answers an unknown transID with "an error element having code
//!   550"; the service sends a `reply` with code 550, like every other
//!   answer carried in a `data`.
//! * §4.3's last paragraph says notify carries the transID "found in the
//!   presence element"; it is the watch's.
//! * `terminate` is both the core operation (on a BEEP channel) and this
//!   service's element (inside `data-content`); the context decides.

/// The subaddress prefix of short-lived tool attachments (`imxp access`,
/// `imxp presence publish`, …), e.g. `fred/tool.access.1a2b3c4d@example.com`:
/// the relay keeps no presence tuple for them, so a command that attaches
/// for a moment does not make its user look online.
pub const TOOL_SUBADDRESS_PREFIX: &str = "tool.";

/// Whether `endpoint` is a tool attachment ([`TOOL_SUBADDRESS_PREFIX`]).
pub fn is_tool(endpoint: &crate::Endpoint) -> bool {
    endpoint
        .subaddress()
        .is_some_and(|s| s.starts_with(TOOL_SUBADDRESS_PREFIX))
}

/// Who `endpoint` acts for in access decisions: a tool attachment acts for
/// its user (`fred/tool.presence.1a2b@example.com` → `fred@example.com`),
/// anything else for itself.
pub fn acting_for(endpoint: &crate::Endpoint) -> crate::Endpoint {
    if is_tool(endpoint) {
        endpoint.base()
    } else {
        endpoint.clone()
    }
}

pub mod entry;
pub mod message;
pub mod pidf;

pub use entry::{AUTOMATIC_TUPLE_INFO, Capability, PresenceEntry, Tuple};
pub use message::{
    Notify, NotifyAction, PRESENCE_CONTENT_NAME, PresenceMessage, Publish, Subscribe,
    salvage_trans_id, service_endpoint,
};
