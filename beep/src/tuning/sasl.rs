//! The SASL profile family (RFC 3080 §4, RFC 4422): profile URIs
//! `http://iana.org/beep/SASL/<MECHANISM>`, the `<blob>` element, and the
//! mechanism traits the session drives. ANONYMOUS (RFC 4505) and PLAIN
//! (RFC 4616) are provided; other mechanisms implement the traits, and
//! [`scram`] holds the SCRAM-SHA-256 key arithmetic that a SCRAM client and
//! server share.
//!
//! None of the mechanisms here negotiates a security layer, so a successful
//! exchange does not reset the session (RFC 3080 §4.1 resets only when a
//! layer is negotiated).

use crate::mgmt::{self, ErrorReply};
use crate::reply_code::ReplyCode;
use crate::xml;
use base64::Engine as _;

pub mod scram;

/// Prefix of every SASL profile URI (RFC 3080 §4.1).
pub const SASL_URI_PREFIX: &str = "http://iana.org/beep/SASL/";

/// The profile URI for a mechanism name.
pub fn profile_uri(mechanism: &str) -> String {
    format!("{SASL_URI_PREFIX}{mechanism}")
}

/// The mechanism name in a SASL profile URI.
pub fn mechanism_of(uri: &str) -> Option<&str> {
    uri.strip_prefix(SASL_URI_PREFIX)
        .filter(|mechanism| !mechanism.is_empty())
}

/// The `status` attribute of `<blob>` (RFC 3080 §4.1.1, DTD §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobStatus {
    /// More exchanges follow (the default).
    Continue,
    /// The exchange succeeded.
    Complete,
    /// The client gives up.
    Abort,
}

/// A `<blob>`: base64 data and a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Decoded data.
    pub data: Vec<u8>,
    /// Status.
    pub status: BlobStatus,
}

impl Blob {
    /// Parses a `<blob>`, or an `<error>` the server sent instead.
    pub fn parse(body: &[u8]) -> Result<Self, ErrorReply> {
        let element = xml::parse(body)
            .map_err(|e| ErrorReply::new(ReplyCode::SYNTAX_ERROR, e.to_string()))?;
        if element.name == "error" {
            return Err(mgmt::parse_error_element(&element)
                .unwrap_or_else(|e| ErrorReply::new(e.reply_code(), e.to_string())));
        }
        if element.name != "blob" || element.elements().next().is_some() {
            return Err(ErrorReply::new(
                ReplyCode::PARAMETER_SYNTAX_ERROR,
                "expected <blob>",
            ));
        }
        let status = match element.attribute("status").unwrap_or("continue") {
            "continue" => BlobStatus::Continue,
            "complete" => BlobStatus::Complete,
            "abort" => BlobStatus::Abort,
            _ => {
                return Err(ErrorReply::new(
                    ReplyCode::PARAMETER_SYNTAX_ERROR,
                    "status attribute must be abort, complete or continue",
                ));
            }
        };
        let text: String = element.text().split_ascii_whitespace().collect();
        let data = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| {
                ErrorReply::new(ReplyCode::PARAMETER_SYNTAX_ERROR, "blob is not base64")
            })?;
        Ok(Self { data, status })
    }

    /// The element as XML.
    pub fn to_xml(&self) -> String {
        let status = match self.status {
            BlobStatus::Continue => "",
            BlobStatus::Complete => " status='complete'",
            BlobStatus::Abort => " status='abort'",
        };
        if self.data.is_empty() {
            format!("<blob{status} />")
        } else {
            format!(
                "<blob{status}>{}</blob>",
                base64::engine::general_purpose::STANDARD.encode(&self.data)
            )
        }
    }
}

/// Facts about the session a mechanism may need to decide.
#[derive(Debug, Clone, Default)]
pub struct AuthContext {
    /// TLS is active on the session (PLAIN is refused without it, RFC 4616 §6).
    pub tls_active: bool,
    /// The identity from a verified TLS client certificate, if any (EXTERNAL).
    pub tls_peer_identity: Option<String>,
}

/// One step of a server-side mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Send this challenge and wait for the next response.
    Challenge(Vec<u8>),
    /// Authentication succeeded as `identity`.
    Success {
        /// The authenticated (and authorized) identity.
        identity: String,
        /// Additional data with success (RFC 4422 §3.6), sent in the
        /// `<blob status='complete'>` (e.g. SCRAM's server-final-message
        /// `v=…`, RFC 5802 §3); empty for none.
        data: Vec<u8>,
    },
    /// Authentication failed (535, 534, 538, …).
    Failure(ErrorReply),
}

/// The server side of one SASL exchange.
pub trait SaslServer: Send {
    /// Processes the client's response (`None` when the client sent none,
    /// e.g. no initial response in `<start>`).
    fn step(&mut self, response: Option<&[u8]>) -> ServerStep;
}

/// Creates server-side exchanges; installed in the session configuration.
pub trait SaslServerFactory: Send + Sync {
    /// Mechanism names offered (e.g. `["PLAIN"]`), advertised in greetings.
    fn mechanisms(&self, context: &AuthContext) -> Vec<String>;
    /// A new exchange for `mechanism`, or a refusal (e.g. 538 for PLAIN
    /// without TLS, 534 for a mechanism too weak).
    fn start(
        &self,
        mechanism: &str,
        context: &AuthContext,
    ) -> Result<Box<dyn SaslServer>, ErrorReply>;
}

/// The client side of one SASL exchange.
pub trait SaslClient: Send {
    /// The mechanism name (e.g. `PLAIN`).
    fn mechanism(&self) -> &str;
    /// The identity this exchange authenticates as, reported on success.
    fn identity(&self) -> String;
    /// The initial response, piggybacked on `<start>` (RFC 3080 §4.1.1).
    fn initial_response(&mut self) -> Option<Vec<u8>>;
    /// Answers a server challenge.
    fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, String>;
    /// Checks the additional data the server sent with success (RFC 4422
    /// §3.6; e.g. SCRAM's server signature, RFC 5802 §3). An error makes
    /// the exchange fail on this side although the server reported success.
    /// The default accepts anything.
    fn complete(&mut self, additional: &[u8]) -> Result<(), String> {
        let _ = additional;
        Ok(())
    }
}

// ===== ANONYMOUS (RFC 4505) =====

/// ANONYMOUS client: sends optional trace information.
#[derive(Debug, Clone, Default)]
pub struct AnonymousClient {
    /// Trace information (e.g. an email address), at most 255 characters.
    pub trace: String,
}

impl SaslClient for AnonymousClient {
    fn mechanism(&self) -> &str {
        "ANONYMOUS"
    }
    fn identity(&self) -> String {
        "anonymous".into()
    }
    fn initial_response(&mut self) -> Option<Vec<u8>> {
        Some(self.trace.clone().into_bytes())
    }
    fn step(&mut self, _challenge: &[u8]) -> Result<Vec<u8>, String> {
        Ok(self.trace.clone().into_bytes())
    }
}

/// ANONYMOUS server: succeeds as identity `anonymous`.
#[derive(Debug, Clone, Default)]
pub struct AnonymousServer;

impl SaslServer for AnonymousServer {
    fn step(&mut self, response: Option<&[u8]>) -> ServerStep {
        match response {
            None => ServerStep::Challenge(Vec::new()),
            Some(trace) if trace.len() <= 255 * 4 && std::str::from_utf8(trace).is_ok() => {
                ServerStep::Success {
                    identity: "anonymous".into(),
                    data: Vec::new(),
                }
            }
            Some(_) => ServerStep::Failure(ErrorReply::new(
                ReplyCode::AUTH_FAILURE,
                "trace information is not valid UTF-8 of at most 255 characters",
            )),
        }
    }
}

// ===== PLAIN (RFC 4616) =====

/// PLAIN client: `authzid NUL authcid NUL password`.
#[derive(Clone, Default)]
pub struct PlainClient {
    /// Authorization identity (empty: same as authcid).
    pub authzid: String,
    /// Authentication identity (user name).
    pub authcid: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for PlainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainClient")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .finish_non_exhaustive()
    }
}

impl PlainClient {
    fn message(&self) -> Vec<u8> {
        format!("{}\0{}\0{}", self.authzid, self.authcid, self.password).into_bytes()
    }
}

impl SaslClient for PlainClient {
    fn mechanism(&self) -> &str {
        "PLAIN"
    }
    fn identity(&self) -> String {
        if self.authzid.is_empty() {
            self.authcid.clone()
        } else {
            self.authzid.clone()
        }
    }
    fn initial_response(&mut self) -> Option<Vec<u8>> {
        Some(self.message())
    }
    fn step(&mut self, _challenge: &[u8]) -> Result<Vec<u8>, String> {
        Ok(self.message())
    }
}

/// Checks a PLAIN password; returns the authorized identity on success.
pub type PlainVerifier = dyn Fn(&str, &str, &str) -> Option<String> + Send + Sync;

/// PLAIN server over a verification callback `(authzid, authcid, password)`.
pub struct PlainServer {
    verify: std::sync::Arc<PlainVerifier>,
}

impl PlainServer {
    /// A server that asks `verify` to check credentials.
    pub fn new(verify: std::sync::Arc<PlainVerifier>) -> Self {
        Self { verify }
    }
}

impl SaslServer for PlainServer {
    fn step(&mut self, response: Option<&[u8]>) -> ServerStep {
        let Some(response) = response else {
            return ServerStep::Challenge(Vec::new());
        };
        let fields: Vec<&[u8]> = response.split(|&b| b == 0).collect();
        let parsed = match fields.as_slice() {
            [authzid, authcid, password] if !authcid.is_empty() && !password.is_empty() => {
                match (
                    std::str::from_utf8(authzid),
                    std::str::from_utf8(authcid),
                    std::str::from_utf8(password),
                ) {
                    (Ok(z), Ok(c), Ok(p)) => Some((z, c, p)),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some((authzid, authcid, password)) = parsed else {
            return ServerStep::Failure(ErrorReply::new(
                ReplyCode::PARAMETER_SYNTAX_ERROR,
                "PLAIN message must be authzid NUL authcid NUL password",
            ));
        };
        match (self.verify)(authzid, authcid, password) {
            Some(identity) => ServerStep::Success {
                identity,
                data: Vec::new(),
            },
            None => ServerStep::Failure(ErrorReply::new(ReplyCode::AUTH_FAILURE, "")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn blob_round_trip_and_rfc_example() {
        let blob = Blob::parse(b"<blob>AGJsb2NrbWFzdGVy</blob>").unwrap();
        assert_eq!(blob.data, b"\0blockmaster");
        assert_eq!(blob.status, BlobStatus::Continue);
        let complete = Blob::parse(b"<blob status='complete' />").unwrap();
        assert_eq!(complete.status, BlobStatus::Complete);
        assert_eq!(
            Blob {
                data: vec![],
                status: BlobStatus::Complete
            }
            .to_xml(),
            "<blob status='complete' />"
        );
        let err = Blob::parse(b"<error code='535' />").unwrap_err();
        assert_eq!(err.code, ReplyCode::AUTH_FAILURE);
        assert!(Blob::parse(b"<blob status='maybe'/>").is_err());
        assert!(Blob::parse(b"<blob>!!!</blob>").is_err());
    }

    #[test]
    fn plain_checks_credentials() {
        let verify: Arc<PlainVerifier> = Arc::new(|_, user: &str, pass: &str| {
            (user == "fred" && pass == "secret").then(|| "fred@example.com".to_string())
        });
        let mut client = PlainClient {
            authzid: String::new(),
            authcid: "fred".into(),
            password: "secret".into(),
        };
        let mut server = PlainServer::new(verify.clone());
        assert_eq!(
            server.step(client.initial_response().as_deref()),
            ServerStep::Success {
                identity: "fred@example.com".into(),
                data: Vec::new(),
            }
        );
        let mut server = PlainServer::new(verify);
        assert!(matches!(
            server.step(Some(b"\0fred\0wrong")),
            ServerStep::Failure(e) if e.code == ReplyCode::AUTH_FAILURE
        ));
        assert!(matches!(server.step(Some(b"junk")), ServerStep::Failure(_)));
        assert!(!format!("{client:?}").contains("secret"));
    }

    #[test]
    fn mechanism_uris() {
        assert_eq!(profile_uri("PLAIN"), "http://iana.org/beep/SASL/PLAIN");
        assert_eq!(mechanism_of("http://iana.org/beep/SASL/OTP"), Some("OTP"));
        assert_eq!(mechanism_of("http://iana.org/beep/SASL/"), None);
        assert_eq!(mechanism_of("http://iana.org/beep/TLS"), None);
    }
}
