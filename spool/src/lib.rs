//! The durable spool of imxpd.
pub mod engine;
