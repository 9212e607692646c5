//! End-to-end protection of message content at the endpoints: Message/CPIM
//! (RFC 3862) around a MIME entity, protected with OpenPGP (PGP/MIME,
//! RFC 3156) or S/MIME 4.0 (RFC 8551), identities as `im:` URIs (RFC 3860).
//!
//! Relays carry opaque bytes (RFC 3340 §3.4, RFC 3860 §3.3): this crate is
//! used by the client only, and the relay must never depend on it.
//!
//! # Layout
//!
//! * [`uri`] — [`ImUri`], `im:local@domain`, mapped from APEX endpoints.
//! * [`cpim`] — [`CpimMessage`] / [`CpimBuilder`]: Message/CPIM headers,
//!   escapes, namespaces, octet-exact.
//! * [`mime`] — entities and multiparts: exact part octets for signatures,
//!   mail-builder to write, mail-parser to read.
//! * [`pgp`] — sequoia-openpgp: keys, detached signatures, encryption,
//!   verification, decryption.
//! * [`smime`] — OpenSSL CMS: signed (detached and opaque), enveloped and
//!   authEnveloped data, chain validation against trust anchors.
//! * [`mod@protect`] — the message level: [`protect::protect()`] builds the
//!   protected entity, [`protect::open()`] reads one back into an
//!   [`Opened`] with a [`Verdict`].
//! * [`keyring`] — [`Keyring`], the key directory under the user's
//!   configuration directory.
//! * [`verdict`] — the reports and verdicts.
//!
//! # Example
//!
//! ```
//! use imxp_e2e::keyring::Keys;
//! use imxp_e2e::{ImUri, Protection, Scheme, Verdict, mime, open, pgp, protect};
//!
//! # fn main() -> Result<(), imxp_e2e::E2eError> {
//! let alice = ImUri::from_address("alice@a.test")?;
//! let bob = ImUri::from_address("bob@b.test")?;
//! // One keyring for both, for brevity: their keys, trusted.
//! let mut keys = Keys::default();
//! for who in [&alice, &bob] {
//!     let key = pgp::generate(who)?;
//!     keys.pgp.trusted.insert(key.fingerprint());
//!     keys.pgp.secrets.push(key);
//! }
//! let message = protect::compose(&alice, &[bob.clone()], Some("hi"), &mime::text_entity("hello, bob"))?;
//! let protected = protect(
//!     &message.to_entity(),
//!     &Protection::new(Scheme::OpenPgp, true, true),
//!     &alice,
//!     &[bob],
//!     &keys,
//! )?;
//! // `protected.content_type` and `protected.body` travel as the content
//! // part of an APEX `data`; the reader opens the part as it arrived.
//! let opened = open(&mime::join_entity(&protected.content_type, &protected.body), &keys);
//! assert_eq!(opened.verdict(), Verdict::Verified);
//! let text = mime::readable(opened.content.as_deref().unwrap_or_default())?.text;
//! assert_eq!(text.as_deref(), Some("hello, bob"));
//! # Ok(())
//! # }
//! ```

pub mod cpim;
pub mod error;
pub mod keyring;
pub mod mime;
pub mod pgp;
pub mod protect;
pub mod smime;
pub mod uri;
pub mod verdict;

pub use cpim::{CpimAddress, CpimBuilder, CpimMessage};
pub use error::E2eError;
pub use keyring::Keyring;
pub use protect::{Protection, open, protect};
pub use uri::ImUri;
pub use verdict::{Opened, Scheme, SignatureVerdict, Verdict};
