//! Admin protocol.
