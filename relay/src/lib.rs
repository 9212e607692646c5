//! imxpd, the APEX relay (RFC 3340): listeners, intake, scheduler, delivery
//! and routing.
//!
//! # Layout
//!
//! * [`config`] — `imxpd.toml`, validated into typed settings.
//! * [`auth`] — the users file and SASL mechanisms for edge sessions.
//! * [`tls`] — certificates, rustls configurations, peer-name checks.
//! * [`route`] — where a domain's datagrams go: local, a static route, or
//!   DNS SRV `_apex-mesh._tcp` (RFC 2782) with the implicit fallback.

pub mod auth;
pub mod config;
pub mod route;
pub mod tls;
