//! Harness for the multi-component scenarios in `tests/tests/`.
//!
//! # Layout
//!
//! - [`relays`]: in-process relays on loopback with a test CA, real TLS
//!   and real spools on disk.
//! - [`dns`]: an authoritative DNS server on loopback.
//! - [`spool_crash`]: what the spool crash test and its child process
//!   (`src/bin/imxp-spool-crash-child.rs`) share: the deterministic content
//!   of a datagram id and the line protocol the child prints.
//! - [`xmpp`]: a real Prosody on loopback with a throwaway configuration,
//!   and a real XMPP client (slixmpp, `tests/xmpp/client.py`).

pub mod dns;
pub mod relays;
pub mod spool_crash;
pub mod xmpp;
