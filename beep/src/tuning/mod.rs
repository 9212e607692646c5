//! Tuning profiles (RFC 3080 §3, §4): TLS and the SASL family. The session
//! runs their exchanges itself; the I/O driver performs the TLS handshake
//! when the session says so.

pub mod sasl;
pub mod tls;
