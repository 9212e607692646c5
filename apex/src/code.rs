//! APEX reply codes (RFC 3340 §10, and the ones RFC 3341, RFC 3342 and
//! RFC 3343 add): the workspace-wide [`ReplyCode`], shared with BEEP,
//! re-exported so that `imxp_apex::code::ReplyCode` keeps naming it.

pub use imxp_wire::ReplyCode;
