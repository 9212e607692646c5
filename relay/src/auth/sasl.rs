//! SASL for edge sessions (endpoint → relay): [`EdgeSasl`].

use super::AuthError;
use super::users::{Users, canonical_user_name, check_password};
use imxp_beep::ErrorReply;
use imxp_beep::ReplyCode;
use imxp_beep::tuning::sasl::{
    AuthContext, PlainServer, PlainVerifier, SaslServer, SaslServerFactory,
};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The mechanism names [`EdgeSasl`] offers.
pub const MECHANISMS: &[&str] = &["PLAIN"];

/// Server-side SASL for endpoints, over the users file.
///
/// Offers `PLAIN` (RFC 4616). PLAIN is refused with 538 ("authentication
/// mechanism requires encryption") unless TLS is active on the session, or
/// [`EdgeSasl::allow_plain_without_tls`] was set for an explicitly
/// plaintext (development, loopback) configuration. A PLAIN authzid must be
/// empty or name the authcid's user (domain case aside); anything else, like
/// a wrong password or an unknown user, fails with 535. The identity on
/// success is the canonical user name (see [`canonical_user_name`]).
///
/// Clones share one user set; [`EdgeSasl::reload`] (e.g. on SIGHUP)
/// replaces it for every clone and for exchanges started afterwards.
#[derive(Clone)]
pub struct EdgeSasl {
    users: Arc<RwLock<Users>>,
    allow_plaintext: bool,
}

impl std::fmt::Debug for EdgeSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users = self.read();
        f.debug_struct("EdgeSasl")
            .field("users_file", &users.path())
            .field("users", &users.len())
            .field("allow_plaintext", &self.allow_plaintext)
            .finish()
    }
}

impl EdgeSasl {
    /// Serves `users`.
    pub fn new(users: Users) -> Self {
        Self {
            users: Arc::new(RwLock::new(users)),
            allow_plaintext: false,
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
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = fresh;
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Users> {
        self.users.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl SaslServerFactory for EdgeSasl {
    fn mechanisms(&self, _context: &AuthContext) -> Vec<String> {
        // PLAIN is listed without TLS too, so that a client choosing it
        // learns why it is refused (538) rather than that it is unknown.
        MECHANISMS.iter().map(|m| (*m).to_owned()).collect()
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
            _ => Err(ErrorReply::new(
                ReplyCode::PARAMETER_NOT_IMPLEMENTED,
                format!("SASL mechanism {mechanism} is not offered"),
            )),
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
        assert_eq!(sasl.mechanisms(&plain), vec!["PLAIN".to_owned()]);
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
                identity: "fred@example.com".into()
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
