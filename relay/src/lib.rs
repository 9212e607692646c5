//! imxpd, the APEX relay (RFC 3340). The data path, one module per step
//! (docs/architecture.md draws it and lists the rules the code keeps):
//!
//! ```text
//! endpoint → listen/edge ─┐
//!                         ├→ intake → spool → qmgr → deliver ─┬→ outbound → next relay
//! relay → listen/mesh ────┘                                   └→ attached endpoint
//! ```
//!
//! # Layout, from the top
//!
//! * [`server`] — `run`: wires the parts below and runs them until
//!   shutdown.
//! * `notify` — readiness, draining and watchdog for systemd.
//! * `metrics` — the Prometheus registry and its HTTP endpoint;
//!   `trail` — one log line and one count per spool transition.
//! * `listen` — accept loops, admission (session limits, 421 beyond them),
//!   and the session skeleton that the two roles specialise: `edge`
//!   (endpoints: SASL, `attach`, `terminate`, `data`) and `mesh` (relays:
//!   `bind`, `data`).
//! * `qmgr` — the dispatcher: claims due datagrams and held ones released
//!   on attach, hands them to delivery, records outcomes, confirms
//!   reports. The only code that changes a queued datagram's state.
//! * `deliver` — local and remote delivery, returning typed outcomes (no
//!   spool handle); `outbound` — pooled mesh sessions to other relays;
//!   `gateway` — XMPP component links (XEP-0114) for `[[gateway]]`
//!   domains, both directions.
//! * `report` — the report service (RFC 3340 §5.1, §6.2; RFC 3342);
//!   `access` — the access service (RFC 3341) and the `core:data` check.
//! * `context` — the state every part shares (no spool handle).
//! * `intake` — the one path into the spool: the only type that can add a
//!   datagram (durable before `ok`).
//! * `attachments` — which endpoints are attached where (`attachOverride`);
//!   `hold` — release requests for held datagrams (`hold4Endpoint`).
//! * `xmpp` — the XMPP side of the gateway without I/O: JID escaping
//!   (XEP-0106), stream framing, stanzas, content mapping (RFC 3922 §4,
//!   RFC 3923).
//! * `datagram` — APEX payloads as the relay reads and writes them;
//!   `identity` — when two datagrams are the same (dedup); `options` —
//!   option processing at intake; `refusal` — the error replies.
//! * [`tls`] — certificates, rustls configurations, peer-name checks.
//! * [`auth`] — the users file and SASL mechanisms for edge sessions.
//! * [`route`] — where a domain's datagrams go: local, a static route, or
//!   DNS SRV `_apex-mesh._tcp` (RFC 2782) with the implicit fallback.
//! * [`activation`] — running without root: inherited sockets (socket
//!   activation), the root refusal, privileged-port hints.
//! * [`config`] — `imxpd.toml`, validated into typed settings.

mod access;
pub mod activation;
mod attachments;
pub mod auth;
pub mod config;
mod context;
mod datagram;
mod deliver;
mod gateway;
mod hold;
mod identity;
mod intake;
mod listen;
mod metrics;
mod notify;
mod options;
mod outbound;
mod presence;
mod qmgr;
mod refusal;
mod report;
pub mod route;
pub mod server;
pub mod tls;
mod trail;
mod xmpp;
