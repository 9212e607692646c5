//! End-to-end protection of message content at the endpoints (RFC 3862
//! Message/CPIM, RFC 3156 PGP/MIME, RFC 8551 S/MIME).
//!
//! Not implemented yet: reserved for the end-to-end work. The relay must never
//! depend on this crate (it only carries opaque bytes).
