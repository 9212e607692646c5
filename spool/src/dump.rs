//! Dump format.
