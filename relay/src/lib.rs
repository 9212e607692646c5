//! imxpd, the APEX relay (RFC 3340): listeners, intake, scheduler, delivery
//! and routing.
//!
//! # Layout
//!
//! * [`config`] — `imxpd.toml`, validated into typed settings.
//! * [`activation`] — running without root: inherited sockets (socket
//!   activation), the root refusal, privileged-port hints.
//! * [`server`] — `run`: listeners, sessions, scheduler, admin socket,
//!   graceful shutdown.
//! * `edge`, `mesh` — the two kinds of inbound sessions (endpoint-relay,
//!   relay-relay) and their APEX operations.
//! * `intake` — the one path into the spool (durable before `ok`).
//! * `qmgr` — the scheduler; `deliver` — local and remote delivery;
//!   `outbound` — pooled mesh sessions to other relays.
//! * `attachments` — which endpoints are attached where (`attachOverride`).
//! * `hold` — held datagrams (`hold4Endpoint`) released when their endpoint
//!   attaches.
//! * `limits` — admission of sessions (total and per peer address, 421
//!   beyond them).
//! * `access` — the access service `apex=access@<domain>` (RFC 3341) and
//!   the `core:data` check of local delivery; entries in `access.json`.
//! * `datagram` — APEX payloads as the relay reads and writes them.
//! * [`auth`] — the users file and SASL mechanisms for edge sessions.
//! * [`tls`] — certificates, rustls configurations, peer-name checks.
//! * [`route`] — where a domain's datagrams go: local, a static route, or
//!   DNS SRV `_apex-mesh._tcp` (RFC 2782) with the implicit fallback.

mod access;
pub mod activation;
mod attachments;
pub mod auth;
pub mod config;
mod context;
mod datagram;
mod deliver;
mod hold;
mod identity;
mod intake;
mod listen;
mod options;
mod outbound;
mod qmgr;
mod refusal;
mod report;
pub mod route;
pub mod server;
pub mod tls;
