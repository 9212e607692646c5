//! Typed errors of the endpoint library.

use imxp_apex::{ApexError, MimeError, ReplyCode};
use imxp_beep::io::DriverError;
use std::path::PathBuf;
use thiserror::Error;

/// Why a client operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The relay address is not `host`, `host:port` or `[v6]:port`.
    #[error("invalid relay address {0:?}")]
    RelayAddress(String),
    /// The TCP connection could not be made.
    #[error("cannot connect to {relay}")]
    Connect {
        /// The relay as given.
        relay: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS server name is not a DNS name or an IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// The relay's greeting does not offer a profile the client needs
    /// (TLS, SASL PLAIN or APEX).
    #[error("the relay does not offer {0}")]
    NotOffered(&'static str),
    /// TLS negotiation failed (certificate, name or handshake).
    #[error("TLS with the relay failed: {0}")]
    Tls(String),
    /// The relay refused the credentials (SASL, RFC 3080 §4.1).
    #[error("authentication refused: {code}{}", with_text(text))]
    Authentication {
        /// The reply code (e.g. 535 authentication failure, 538 encryption required).
        code: u16,
        /// The relay's diagnostic.
        text: String,
    },
    /// The relay answered an APEX operation with `<error>` (RFC 3340
    /// §4.4): e.g. 537 not authorized, 553 not a domain the relay serves,
    /// 554 already attached, 451 not accepted (try again later).
    #[error("refused by the relay: {code}{}", with_text(text))]
    Refused {
        /// The reply code.
        code: ReplyCode,
        /// The diagnostic text (may be empty).
        text: String,
    },
    /// The relay answered something that is not a valid APEX reply.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A payload could not be built (e.g. an invalid content type).
    #[error(transparent)]
    Mime(#[from] MimeError),
    /// An APEX element could not be read or built.
    #[error(transparent)]
    Apex(#[from] ApexError),
    /// The originator is not an endpoint this attachment holds.
    #[error("not attached as {0}")]
    NotAttached(String),
    /// The datagram was already acknowledged or rejected.
    #[error("the datagram has already been answered")]
    AlreadyAnswered,
    /// The BEEP session failed or ended.
    #[error("session: {0}")]
    Session(DriverError),
}

/// ` text`, or nothing for an empty text.
fn with_text(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" {text}")
    }
}

impl ClientError {
    /// The APEX reply code if the relay refused an operation.
    pub fn refused_code(&self) -> Option<ReplyCode> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<DriverError> for ClientError {
    fn from(error: DriverError) -> Self {
        match error {
            DriverError::Tls(reason) => Self::Tls(reason),
            other => Self::Session(other),
        }
    }
}

/// Why a TLS client configuration could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The CA file could not be read or is not PEM.
    #[error("cannot read CA certificates from {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The CA file holds no certificate.
    #[error("{0} holds no PEM certificate")]
    NoCertificates(PathBuf),
    /// A certificate was not accepted as a trust anchor.
    #[error("certificate {index} of {path} is not a usable trust anchor")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Position of the certificate in the file, from 1.
        index: usize,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
    /// The system trust store yielded no certificate.
    #[error("no usable certificate in the system trust store{0}")]
    NoNativeRoots(String),
    /// The client certificate or its key could not be loaded.
    #[error("client certificate {path}: {reason}")]
    ClientCertificate {
        /// The certificate or key file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration refused")]
    Rustls(#[from] rustls::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let refused = ClientError::Refused {
            code: ReplyCode::NOT_AUTHORIZED,
            text: "access denied".into(),
        };
        assert_eq!(
            refused.to_string(),
            "refused by the relay: 537 access denied"
        );
        let bare = ClientError::Authentication {
            code: 535,
            text: String::new(),
        };
        assert_eq!(bare.to_string(), "authentication refused: 535");
        // The socket error is the source, not repeated in the message.
        let connect = ClientError::Connect {
            relay: "relay.example.com:913".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(
            connect.to_string(),
            "cannot connect to relay.example.com:913"
        );
        assert!(std::error::Error::source(&connect).is_some());
    }
}
