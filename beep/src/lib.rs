//! BEEP, the Blocks Extensible Exchange Protocol (RFC 3080), mapped onto
//! TCP (RFC 3081): a sans-IO session core and a tokio driver.
//!
//! # Layout
//!
//! * [`frame`] — MSG/RPY/ERR/ANS/NUL and SEQ frames: a bounded, resumable
//!   decoder and a byte-exact encoder (RFC 3080 §2.2.1, RFC 3081 §3.1.3).
//! * [`session`] — the state machine: channels, msgno/seqno/ansno rules,
//!   flow-control windows, channel management, tuning. Bytes and time in;
//!   bytes, events and timers out. No sockets, no clock.
//! * [`mgmt`] — channel-0 elements (`greeting`, `start`, `close`, `ok`,
//!   `error`, RFC 3080 §2.3).
//! * [`tuning`] — the TLS profile (RFC 3080 §3) and the SASL family (§4)
//!   with ANONYMOUS and PLAIN mechanisms behind a trait.
//! * [`mime`], [`xml`] — the MIME-entity and `application/beep+xml`
//!   subsets BEEP needs (RFC 3080 §2.2.2, §6.4).
//! * [`io`] (feature `tokio`, default) — a driver running a session over any
//!   `AsyncRead + AsyncWrite`, with TLS through tokio-rustls.
//!
//! # Example (sans-IO)
//!
//! ```
//! use imxp_beep::session::{Config, Event, Role, Session};
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let mut session = Session::new(Config::new(Role::Initiator), now);
//! let mut out = bytes::BytesMut::new();
//! session.poll_transmit(&mut out); // our greeting, sent at once
//! assert!(out.starts_with(b"RPY 0 0 . 0 52\r\n"));
//! session
//!     .handle_input(now, b"RPY 0 0 . 0 52\r\nContent-Type: application/beep+xml\r\n\r\n<greeting />\r\nEND\r\n")
//!     .unwrap();
//! assert!(matches!(session.poll_event(), Some(Event::Greeting(_))));
//! ```

pub mod error;
pub mod frame;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod mgmt;
pub mod mime;
pub mod reply_code;
pub mod session;
pub mod tuning;
pub mod window;
pub mod xml;

#[cfg(feature = "tokio")]
pub mod io;

pub use error::{SessionError, UserError};
pub use mgmt::{ErrorReply, Profile};
pub use reply_code::ReplyCode;
pub use session::{Config, Event, Role, Session};
