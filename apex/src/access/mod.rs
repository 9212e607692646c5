//! The APEX access service (RFC 3341), the parts without I/O: access
//! entries, their actors and actions, the §3.1 matching, `lastUpdate`
//! timestamps, and the `query`/`get`/`set`/`allow`/`deny` elements. The
//! relay keeps the entries and runs the service at `apex=access@domain`.
//!
//! * [`Actor`] — `fred@example.com`, `fred/*@…`, `apex=*@…`, `*@*.example.com`,
//!   with the `\*` and `\\` escapes (§3).
//! * [`Actions`] — `core:data presence:subscribe`, `all:all`, `all:none`.
//! * [`policy`] — the default entries (§3) and [`select`]: the best match
//!   for an address (§3.1).
//! * [`AccessEntry`], [`AccessMessage`] — the XML (§4, §6).
//! * [`Timestamp`] — `lastUpdate`, compared by instant (§4.4 "differs
//!   semantically").
//!
//! # Matching, RFC 3341 §3.1's example
//!
//! ```
//! use imxp_apex::access::{Actions, Actor, Rule, select};
//! use imxp_apex::Endpoint;
//!
//! let fred = Endpoint::parse("fred@example.com")?;
//! let rule = |actor: &str, actions: &str| Rule {
//!     actor: Actor::parse(actor).unwrap(),
//!     actions: Actions::parse(actions).unwrap(),
//! };
//! let entries = [
//!     rule("wilma@example.com", "all:all"),
//!     rule("mr.slate@example.com", "core:data"),
//!     rule("*@example.com", "core:data presence:subscribe presence:watch"),
//!     rule("*@*", "core:data"),
//! ];
//! let granted = |who: &str| {
//!     select(&fred, &entries, &[], &Endpoint::parse(who).unwrap()).rule.actions.to_string()
//! };
//! assert_eq!(granted("mr.slate@example.com"), "core:data");
//! assert_eq!(granted("dino@example.com"), "core:data presence:subscribe presence:watch");
//! assert_eq!(granted("apex=presence@example.com"), "all:all"); // default apex=*@domain
//! assert_eq!(granted("betty@rubble.com"), "core:data");
//! # Ok::<(), imxp_apex::AddressError>(())
//! ```
//!
//! # Decisions where RFC 3341 is silent or inconsistent
//!
//! * Erratum 15 (`*` non-empty vs `*.example.com` matching `example.com`):
//!   see [`actor`].
//! * A wanted action `x:none` in a `query` asks for nothing and is granted.
//! * `core:any` (the DTD's example) is parsed like any `service:operation`
//!   and grants nothing special.
//! * Ties in §3.1 (equal rank) go to the explicit entry, then to the
//!   smaller actor key, so the result never depends on storage order.

pub mod actions;
pub mod actor;
pub mod entry;
pub mod message;
pub mod policy;
pub mod timestamp;

pub use actions::{Action, Actions, CORE_DATA};
pub use actor::{Actor, DomainPattern, LocalPattern, MatchRank};
pub use entry::AccessEntry;
pub use message::{
    ACCESS_CONTENT_NAME, AccessMessage, Get, Query, Set, salvage_trans_id, service_endpoint,
};
pub use policy::{Rule, Selection, Source, default_rules, permits, select};
pub use timestamp::Timestamp;

use crate::error::ApexError;
use thiserror::Error;

/// A malformed actor, action list or timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The actor is not an endpoint with the wildcards of RFC 3341 §3.
    #[error("actor {value:?}: {reason}")]
    Actor {
        /// As written.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The actions are not `service:operation` tokens.
    #[error("actions {value:?}: {reason}")]
    Actions {
        /// As written.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The timestamp is not an RFC 3339 date-time.
    #[error("timestamp {value:?}: {reason}")]
    Timestamp {
        /// As written.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl AccessError {
    /// This error as an attribute error of `element` (reply code 501).
    pub(crate) fn at(self, element: &'static str) -> ApexError {
        let (attribute, value, reason) = match self {
            Self::Actor { value, reason } => ("actor", value, reason),
            Self::Actions { value, reason } => ("actions", value, reason),
            Self::Timestamp { value, reason } => ("lastUpdate", value, reason),
        };
        ApexError::InvalidAttribute {
            element,
            attribute,
            value,
            reason,
        }
    }
}
