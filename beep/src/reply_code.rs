//! Three-digit reply codes (RFC 3080 §8): the workspace-wide
//! [`ReplyCode`], shared with APEX, re-exported so that
//! `imxp_beep::reply_code::ReplyCode` keeps naming it.

pub use imxp_wire::ReplyCode;
