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
