//! The errors of this crate: each names what was wrong.

use std::path::PathBuf;

/// Everything that can go wrong while building, protecting or reading a
/// message, or while handling keys.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    /// A Message/CPIM body or header is malformed (RFC 3862).
    #[error("Message/CPIM: {0}")]
    Cpim(String),
    /// A MIME entity is malformed (RFC 2045/2046/1847).
    #[error("MIME: {0}")]
    Mime(String),
    /// An `im:` URI or address is malformed (RFC 3860).
    #[error("im: URI {uri:?}: {reason}")]
    ImUri {
        /// The text that was read.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An OpenPGP operation failed.
    #[error("OpenPGP: {0}")]
    Pgp(String),
    /// An S/MIME (CMS) operation failed.
    #[error("S/MIME: {0}")]
    Smime(String),
    /// No usable key or certificate for an identity.
    #[error("no {kind} for {identity} in the keyring")]
    NoKey {
        /// What was looked for ("OpenPGP certificate", "S/MIME private key", …).
        kind: &'static str,
        /// The identity (an `im:` URI or a fingerprint).
        identity: String,
    },
    /// The keyring directory or one of its files is unusable.
    #[error("keyring {path}: {reason}")]
    Keyring {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl E2eError {
    /// An [`E2eError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
