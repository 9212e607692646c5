//! Harness for the multi-component scenarios in `tests/tests/`.
//!
//! # Layout
//!
//! - [`spool_crash`]: what the spool crash test and its child process
//!   (`src/bin/imxp-spool-crash-child.rs`) share: the deterministic content
//!   of a datagram id and the line protocol the child prints.

pub mod dns;
pub mod spool_crash;
