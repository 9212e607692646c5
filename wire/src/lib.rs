//! What BEEP (RFC 3080) and APEX (RFC 3340) share on the wire, in a leaf
//! crate that both `imxp-beep` and `imxp-apex` build on:
//!
//! * [`reply_code`] — [`ReplyCode`], the three-digit codes of RFC 3080 §8,
//!   RFC 3340 §10 and the APEX services, with one named constant each;
//! * [`xml`] — the bounded reader for `application/beep+xml` with its
//!   defences (size, depth, DOCTYPE, entities, encoding, characters);
//! * [`datetime`] — UTC calendar dates for RFC 3339 timestamps and for
//!   display, on the `time` crate;
//! * `fuzzing` (feature `fuzzing`) — the corpus replay the fuzz-corpus
//!   tests run.

pub mod datetime;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod reply_code;
pub mod xml;

pub use reply_code::ReplyCode;
