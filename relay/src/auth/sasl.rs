//! SASL for edge sessions (endpoint → relay): [`EdgeSasl`].

use super::AuthError;
use super::scram_server::{ScramServer, VerifierLookup};
use super::users::{Users, canonical_user_name, check_password};
use imxp_beep::ErrorReply;
use imxp_beep::ReplyCode;
use imxp_beep::tuning::sasl::{
    AnonymousServer, AuthContext, PlainServer, PlainVerifier, SaslServer, SaslServerFactory,
    ServerStep,
};
use parking_lot::RwLock;
use std::path::Path;
use std::sync::Arc;

/// Every mechanism name [`EdgeSasl`] may offer, in order of preference.
pub const MECHANISMS: &[&str] = &["SCRAM-SHA-256", "PLAIN", "EXTERNAL", "ANONYMOUS"];

/// The identity an ANONYMOUS session has (not a user name: those contain
/// `@`), see [`EdgeSasl::allow_anonymous`].
pub const ANONYMOUS_IDENTITY: &str = "anonymous";

/// Server-side SASL for endpoints, over the users file.
///
/// * `SCRAM-SHA-256` (RFC 5802, RFC 7677), over the stored verifiers; no
///   channel binding (see the `scram_server` module for the details).
/// * `PLAIN` (RFC 4616) is refused with 538 ("authentication mechanism
///   requires encryption") unless TLS is active on the session, or
///   [`EdgeSasl::allow_plain_without_tls`] was set for an explicitly
///   plaintext (development, loopback) configuration. A PLAIN authzid must
///   be empty or name the authcid's user (domain case aside); anything
///   else, like a wrong password or an unknown user, fails with 535.
/// * `EXTERNAL` (RFC 4422 Appendix A), offered only when the session's TLS
///   client certificate was verified and carries an endpoint address
///   (subjectAltName rfc822Name, see [`crate::tls::certificate_identity`]);
///   the authzid must be empty or that address. Without such a
///   certificate it is refused with 535.
/// * `ANONYMOUS` (RFC 4505) only when [`EdgeSasl::allow_anonymous`] is set
///   (`[auth] anonymous = "read-only"`); the session's identity is then
///   [`ANONYMOUS_IDENTITY`], which can attach as nobody and therefore send
///   nothing. Otherwise it is not offered: the BEEP session answers a
///   `<start>` for it with 550 like for any profile it does not know
///   (and [`SaslServerFactory::start`] refuses it with 504).
///
/// The identity on success is the canonical user name (see
/// [`canonical_user_name`]). One successful authentication per session is
/// enforced by the BEEP session itself.
///
/// Clones share one user set; [`EdgeSasl::reload`] (e.g. on SIGHUP)
/// replaces it for every clone and for exchanges started afterwards.
#[derive(Clone)]
pub struct EdgeSasl {
    users: Arc<RwLock<Users>>,
    allow_plaintext: bool,
    allow_anonymous: bool,
}

impl std::fmt::Debug for EdgeSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users = self.read();
        f.debug_struct("EdgeSasl")
            .field("users_file", &users.path())
            .field("users", &users.len())
            .field("allow_plaintext", &self.allow_plaintext)
            .field("allow_anonymous", &self.allow_anonymous)
            .finish()
    }
}

impl EdgeSasl {
    /// Serves `users`.
    pub fn new(users: Users) -> Self {
        Self {
            users: Arc::new(RwLock::new(users)),
            allow_plaintext: false,
            allow_anonymous: false,
        }
    }

    /// Loads the users file at `path` (see [`Users::load`]: a missing file
    /// is an empty set, and a warning is logged).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuthError> {
        let path = path.as_ref();
        let users = Users::load(path)?;
        if users.is_empty() {
            tracing::warn!(file = %path.display(), "no users: every SASL login will fail");
        }
        Ok(Self::new(users))
    }

    /// Accepts PLAIN on sessions without TLS too (only for a configuration
    /// that explicitly allows plaintext).
    pub fn allow_plain_without_tls(mut self, allow: bool) -> Self {
        self.allow_plaintext = allow;
        self
    }

    /// Offers ANONYMOUS, for a relay configured for read-only anonymous
    /// sessions (`[auth] anonymous = "read-only"`).
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// The shared user set (for reads; writes go through the file and
    /// [`EdgeSasl::reload`]).
    pub fn users(&self) -> Arc<RwLock<Users>> {
        Arc::clone(&self.users)
    }

    /// Re-reads the users file; on error the current set stays in force.
    /// Returns the number of users now loaded.
    pub fn reload(&self) -> Result<usize, AuthError> {
        let path = self.read().path().to_owned();
        let fresh = Users::load(path)?;
        let count = fresh.len();
        *self.users.write() = fresh;
        Ok(count)
    }

    /// Checks PLAIN credentials `(authzid, authcid, password)`; the
    /// canonical user name on success.
    pub fn authenticate(&self, authzid: &str, authcid: &str, password: &str) -> Option<String> {
        let name = canonical_user_name(authcid).ok();
        let verifier = name.as_ref().and_then(|n| self.read().verifier(n).cloned());
        // The lock is released before the (deliberately slow) key derivation.
        let valid = check_password(verifier.as_ref(), password);
        let name = name?;
        let authorized =
            authzid.is_empty() || canonical_user_name(authzid).is_ok_and(|authzid| authzid == name);
        (valid && authorized).then_some(name)
    }

    fn read(&self) -> parking_lot::RwLockReadGuard<'_, Users> {
        self.users.read()
    }
}

impl SaslServerFactory for EdgeSasl {
    fn mechanisms(&self, context: &AuthContext) -> Vec<String> {
        // PLAIN is listed without TLS too, so that a client choosing it
        // learns why it is refused (538) rather than that it is unknown.
        MECHANISMS
            .iter()
            .filter(|m| match **m {
                "EXTERNAL" => context.tls_peer_identity.is_some(),
                "ANONYMOUS" => self.allow_anonymous,
                _ => true,
            })
            .map(|m| (*m).to_owned())
            .collect()
    }

    fn start(
        &self,
        mechanism: &str,
        context: &AuthContext,
    ) -> Result<Box<dyn SaslServer>, ErrorReply> {
        match mechanism {
            "PLAIN" if !context.tls_active && !self.allow_plaintext => Err(ErrorReply::new(
                ReplyCode::ENCRYPTION_REQUIRED,
                "authentication mechanism requires encryption",
            )),
            "PLAIN" => {
                let this = self.clone();
                let verify: Arc<PlainVerifier> =
                    Arc::new(move |authzid: &str, authcid: &str, password: &str| {
                        this.authenticate(authzid, authcid, password)
                    });
                Ok(Box::new(PlainServer::new(verify)))
            }
            "SCRAM-SHA-256" => {
                let users = Arc::clone(&self.users);
                let lookup: Arc<VerifierLookup> =
                    Arc::new(move |name: &str| users.read().verifier(name).cloned());
                Ok(Box::new(ScramServer::new(lookup)))
            }
            "EXTERNAL" => match &context.tls_peer_identity {
                Some(identity) => Ok(Box::new(ExternalServer {
                    identity: identity.clone(),
                })),
                None => Err(ErrorReply::new(
                    ReplyCode::AUTH_FAILURE,
                    "EXTERNAL requires a verified TLS client certificate naming an address",
                )),
            },
            "ANONYMOUS" if self.allow_anonymous => Ok(Box::new(AnonymousServer)),
            _ => Err(ErrorReply::new(
                ReplyCode::PARAMETER_NOT_IMPLEMENTED,
                format!("SASL mechanism {mechanism} is not offered"),
            )),
        }
    }
}

/// EXTERNAL (RFC 4422 Appendix A): the identity the TLS layer verified.
struct ExternalServer {
    identity: String,
}

impl SaslServer for ExternalServer {
    fn step(&mut self, response: Option<&[u8]>) -> ServerStep {
        // No initial response: an empty challenge asks for the authzid.
        let Some(authzid) = response else {
            return ServerStep::Challenge(Vec::new());
        };
        let authorized = authzid.is_empty()
            || std::str::from_utf8(authzid)
                .ok()
                .and_then(|a| canonical_user_name(a).ok())
                .is_some_and(|a| a == self.identity);
        if authorized {
            ServerStep::Success {
                identity: self.identity.clone(),
                data: Vec::new(),
            }
        } else {
            ServerStep::Failure(ErrorReply::new(
                ReplyCode::AUTH_FAILURE,
                "the authorization identity is not the certificate's",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imxp_beep::tuning::sasl::ServerStep;

    fn sasl() -> EdgeSasl {
        let mut users = Users::new("/nonexistent/users");
        users.add("fred@example.com", "secret").unwrap();
        EdgeSasl::new(users)
    }

    fn tls() -> AuthContext {
        AuthContext {
            tls_active: true,
            tls_peer_identity: None,
        }
    }

    fn run(sasl: &EdgeSasl, context: &AuthContext, message: &[u8]) -> ServerStep {
        match sasl.start("PLAIN", context) {
            Ok(mut server) => server.step(Some(message)),
            Err(error) => ServerStep::Failure(error),
        }
    }

    fn code(step: &ServerStep) -> Option<u16> {
        match step {
            ServerStep::Failure(error) => Some(error.code.0),
            _ => None,
        }
    }

    #[test]
    fn plain_requires_tls() {
        let sasl = sasl();
        let plain = AuthContext::default();
        assert_eq!(sasl.mechanisms(&plain), vec!["SCRAM-SHA-256", "PLAIN"]);
        let Err(error) = sasl.start("PLAIN", &plain) else {
            panic!("PLAIN started without TLS");
        };
        assert_eq!(error.code, ReplyCode::ENCRYPTION_REQUIRED);
        assert_eq!(error.code.0, 538);
        // Explicit plaintext configuration.
        let relaxed = sasl.clone().allow_plain_without_tls(true);
        assert_eq!(
            run(&relaxed, &plain, b"\0fred@example.com\0secret"),
            ServerStep::Success {
                identity: "fred@example.com".into(),
                data: Vec::new(),
            }
        );
        assert!(sasl.start("CRAM-MD5", &tls()).is_err());
    }

    #[test]
    fn plain_over_tls() {
        let sasl = sasl();
        let tls = tls();
        let success = ServerStep::Success {
            identity: "fred@example.com".into(),
            data: Vec::new(),
        };
        assert_eq!(run(&sasl, &tls, b"\0fred@example.com\0secret"), success);
        assert_eq!(run(&sasl, &tls, b"\0fred@EXAMPLE.com\0secret"), success);
        assert_eq!(
            run(&sasl, &tls, b"fred@example.com\0fred@example.com\0secret"),
            success
        );
        assert_eq!(
            run(&sasl, &tls, b"fred@Example.com\0fred@example.com\0secret"),
            success
        );
        // authzid of another user, a subaddress, wrong password, unknown user.
        for message in [
            &b"barney@example.com\0fred@example.com\0secret"[..],
            b"fred/wb@example.com\0fred@example.com\0secret",
            b"\0fred@example.com\0wrong",
            b"\0Fred@example.com\0secret",
            b"\0barney@example.com\0secret",
        ] {
            assert_eq!(code(&run(&sasl, &tls, message)), Some(535));
        }
        // Malformed message: 501 from the PLAIN parser.
        assert_eq!(code(&run(&sasl, &tls, b"fred@example.com")), Some(501));
        // No initial response: empty challenge.
        let mut server = sasl.start("PLAIN", &tls).unwrap();
        assert_eq!(server.step(None), ServerStep::Challenge(Vec::new()));
    }

    #[test]
    fn external_anonymous_and_scram_offers() {
        let sasl = sasl();
        let with_cert = AuthContext {
            tls_active: true,
            tls_peer_identity: Some("fred@example.com".into()),
        };
        assert_eq!(
            sasl.mechanisms(&with_cert),
            vec!["SCRAM-SHA-256", "PLAIN", "EXTERNAL"]
        );
        let success = ServerStep::Success {
            identity: "fred@example.com".into(),
            data: Vec::new(),
        };
        for authzid in [&b""[..], b"fred@EXAMPLE.com"] {
            let mut server = sasl.start("EXTERNAL", &with_cert).unwrap();
            assert_eq!(server.step(Some(authzid)), success);
        }
        let mut server = sasl.start("EXTERNAL", &with_cert).unwrap();
        assert_eq!(server.step(None), ServerStep::Challenge(Vec::new()));
        assert_eq!(code(&server.step(Some(b"barney@example.com"))), Some(535));
        // No certificate identity: refused with 535.
        let Err(error) = sasl.start("EXTERNAL", &tls()) else {
            panic!("EXTERNAL without a certificate");
        };
        assert_eq!(error.code.0, 535);
        // ANONYMOUS: not offered (504) unless configured read-only.
        assert_eq!(sasl.start("ANONYMOUS", &tls()).err().unwrap().code.0, 504);
        let open = sasl.clone().allow_anonymous(true);
        assert!(open.mechanisms(&tls()).contains(&"ANONYMOUS".to_owned()));
        let mut server = open.start("ANONYMOUS", &tls()).unwrap();
        assert_eq!(
            server.step(Some(b"trace")),
            ServerStep::Success {
                identity: ANONYMOUS_IDENTITY.into(),
                data: Vec::new(),
            }
        );
        // SCRAM over the users file: a full exchange with a real proof.
        let mut server = sasl
            .start("SCRAM-SHA-256", &AuthContext::default())
            .unwrap();
        let ServerStep::Challenge(first) = server.step(Some(b"n,,n=fred@example.com,r=cnonce"))
        else {
            panic!("no server-first");
        };
        let first = String::from_utf8(first).unwrap();
        let verifier = sasl.read().verifier("fred@example.com").cloned().unwrap();
        assert!(first.contains(&format!(",i={}", verifier.iterations())));
        let nonce = first.split(',').next().unwrap().strip_prefix("r=").unwrap();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("n=fred@example.com,r=cnonce,{first},{without_proof}");
        let proof = client_proof("secret", &verifier, auth_message.as_bytes());
        let message = format!("{without_proof},p={proof}");
        let ServerStep::Success { identity, data } = server.step(Some(message.as_bytes())) else {
            panic!("SCRAM failed");
        };
        assert_eq!(identity, "fred@example.com");
        assert!(data.starts_with(b"v="));
    }

    /// ClientProof for `password` (the client's computation, RFC 5802 §3).
    fn client_proof(password: &str, verifier: &super::super::ScramVerifier, auth: &[u8]) -> String {
        use base64::Engine as _;
        use hmac::{Hmac, KeyInit as _, Mac as _};
        use sha2::{Digest as _, Sha256};
        let salted =
            super::super::scram::salted_password(password, verifier.salt(), verifier.iterations())
                .unwrap();
        let hmac = |key: &[u8], data: &[u8]| {
            let mut mac = <Hmac<Sha256>>::new_from_slice(key).unwrap();
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        };
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let signature = hmac(&stored_key, auth);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        base64::engine::general_purpose::STANDARD.encode(proof)
    }

    #[test]
    fn reload_replaces_users_for_all_clones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let mut users = Users::new(&path);
        users.add("fred@example.com", "secret").unwrap();
        users.save().unwrap();
        let sasl = EdgeSasl::open(&path).unwrap();
        let clone = sasl.clone();
        assert!(
            clone
                .authenticate("", "fred@example.com", "secret")
                .is_some()
        );
        users.set_password("fred@example.com", "changed").unwrap();
        users.add("wilma@example.com", "pebbles").unwrap();
        users.save().unwrap();
        assert_eq!(sasl.reload().unwrap(), 2);
        assert!(
            clone
                .authenticate("", "fred@example.com", "secret")
                .is_none()
        );
        assert!(
            clone
                .authenticate("", "fred@example.com", "changed")
                .is_some()
        );
        assert!(
            clone
                .authenticate("", "wilma@example.com", "pebbles")
                .is_some()
        );
        // A broken file is reported and the loaded users stay.
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(matches!(
            sasl.reload(),
            Err(AuthError::Parse { line: 1, .. })
        ));
        assert!(
            clone
                .authenticate("", "wilma@example.com", "pebbles")
                .is_some()
        );
    }
}
