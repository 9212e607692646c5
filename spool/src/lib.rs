//! The durable spool. Work in progress.
