//! The imxp endpoint library: attach to a relay as an endpoint, send and
//! receive datagrams (APEX, RFC 3340, over BEEP, RFC 3080/3081), in the
//! endpoint-relay mode of RFC 3340 §2.1 (the endpoint is always the BEEP
//! initiator).
//!
//! # Layout
//!
//! * [`access`] — requests to the access service (RFC 3341): query, get,
//!   set, list, and allow/block as get-modify-set.
//! * [`client`] — [`Client`]: TCP to the relay's edge port, TLS tuning
//!   (`http://iana.org/beep/TLS`), SASL ([`Mechanism`]: SCRAM-SHA-256 by
//!   default, PLAIN, or EXTERNAL with a client certificate), then one APEX channel per
//!   [`Client::attach`]; [`Client::close`] releases the session.
//! * [`attachment`] — [`Attachment`]: the channel and the endpoints
//!   attached on it; [`Attachment::send`] (RPY `<ok />` = accepted
//!   durably), [`Attachment::next`] ([`Received`], acknowledged with
//!   [`Received::ack`] or automatically), [`Attachment::attach`] (one more
//!   endpoint by MSG), [`Attachment::terminate`].
//! * [`payload`] — the payloads themselves, as pure functions: `data` with a
//!   MIME content part, reply reading, sorting the relay's MSGs
//!   (RFC 3340 §4.4.4.2).
//! * [`scram`] — the SCRAM-SHA-256 client (RFC 5802, RFC 7677).
//! * [`tls`] — rustls client configurations on the ring provider, from a
//!   CA file or the system trust store, with an optional client
//!   certificate.
//! * [`error`] — [`ClientError`], [`TlsConfigError`].
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use imxp_client::{Client, ConnectOptions, Mechanism, tls};
//! use imxp_apex::Endpoint;
//!
//! let client = Client::connect(ConnectOptions {
//!     relay: "relay.example.com:913".into(),
//!     tls: Some((
//!         tls::client_config_from_ca_file("ca.pem".as_ref())?,
//!         "relay.example.com".into(),
//!     )),
//!     user: "fred@example.com".into(),
//!     password: "secret".into(),
//!     mechanism: Mechanism::ScramSha256,
//! })
//! .await?;
//! let mut fred = client.attach(Endpoint::parse("fred@example.com")?).await?;
//! fred.send(
//!     vec![Endpoint::parse("barney@example.org")?],
//!     "text/plain; charset=utf-8",
//!     b"hello",
//! )
//! .await?;
//! if let Some(mut datagram) = fred.next().await {
//!     println!("{}: {:?}", datagram.originator, datagram.text());
//!     datagram.ack().await?;
//! }
//! fred.terminate().await?;
//! client.close().await?;
//! # Ok(())
//! # }
//! ```

pub mod access;
pub mod attachment;
pub mod client;
pub mod error;
pub mod payload;
pub mod presence;
pub mod scram;
pub mod seen;
pub mod tls;

pub use attachment::{AttachOptions, Attachment, Event, Received, Sender, Termination};
pub use client::{Client, ConnectOptions, DEFAULT_EDGE_PORT, Mechanism, relay_host, split_relay};
pub use error::{ClientError, TlsConfigError};
pub use seen::SeenDeliveries;
