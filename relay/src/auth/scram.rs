//! Salted SCRAM-SHA-256 verifiers (RFC 5802 §3, RFC 7677): what the users
//! file stores instead of a password. The key arithmetic (SaltedPassword,
//! ClientKey, StoredKey, ServerKey, proofs and signatures) is
//! [`imxp_beep::tuning::sasl::scram`], shared with the client.
//!
//! The verifier (salt, i, StoredKey, ServerKey) is enough both to check a
//! PLAIN password and to run the server side of SCRAM-SHA-256
//! ([`ScramVerifier::verify_client_proof`], [`ScramVerifier::server_signature`]).
//! Its text form is RFC 5803's: `SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>`
//! with standard padded base64.

use super::AuthError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use imxp_beep::tuning::sasl::scram::{self, KEY_LEN, Keys};
use rand::RngCore as _;

/// The mechanism name, also the scheme tag of the text form (RFC 5803).
pub const SCHEME: &str = scram::MECHANISM;
/// Iteration count for new verifiers (the minimum RFC 7677 §4 allows).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// The smallest iteration count accepted (RFC 7677 §4).
pub const MIN_ITERATIONS: u32 = scram::MIN_ITERATIONS;
/// The largest iteration count accepted, so a damaged file cannot make a
/// single login take minutes.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Length of generated salts, in octets.
pub const SALT_LEN: usize = 24;
/// The shortest salt accepted, in octets.
pub const MIN_SALT_LEN: usize = 16;

/// A SCRAM-SHA-256 verifier: everything the server keeps about a password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; KEY_LEN],
    server_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramVerifier {
    /// A verifier for `password` with a fresh random salt and
    /// [`DEFAULT_ITERATIONS`].
    pub fn generate(password: &str) -> Result<Self, AuthError> {
        Self::generate_with_iterations(password, DEFAULT_ITERATIONS)
    }

    /// A verifier for `password` with a fresh random salt and `iterations`
    /// (between [`MIN_ITERATIONS`] and [`MAX_ITERATIONS`]).
    pub fn generate_with_iterations(password: &str, iterations: u32) -> Result<Self, AuthError> {
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(AuthError::InvalidIterations(iterations));
        }
        let mut salt = vec![0u8; SALT_LEN];
        rand::rng().fill_bytes(&mut salt);
        Self::derive(password, &salt, iterations)
    }

    /// The verifier for `password` with the given salt and iteration count
    /// (no range checks: for test vectors and for SCRAM clients).
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Result<Self, AuthError> {
        let keys = Keys::from_salted(&salted_password(password, salt, iterations)?);
        Ok(Self {
            iterations,
            salt: salt.to_vec(),
            stored_key: keys.stored_key,
            server_key: keys.server_key,
        })
    }

    /// The iteration count `i`.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The salt.
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// StoredKey = H(ClientKey).
    pub fn stored_key(&self) -> &[u8; 32] {
        &self.stored_key
    }

    /// ServerKey = HMAC(SaltedPassword, "Server Key").
    pub fn server_key(&self) -> &[u8; 32] {
        &self.server_key
    }

    /// Checks a password (as sent in PLAIN) in constant time with respect to
    /// the stored key.
    pub fn verify_password(&self, password: &str) -> bool {
        let Ok(salted) = salted_password(password, &self.salt, self.iterations) else {
            return false;
        };
        scram::keys_equal(&Keys::from_salted(&salted).stored_key, &self.stored_key)
    }

    /// SCRAM server side (RFC 5802 §3): recovers ClientKey from a
    /// ClientProof over `auth_message` and checks it against StoredKey, in
    /// constant time.
    pub fn verify_client_proof(&self, auth_message: &[u8], client_proof: &[u8]) -> bool {
        scram::verify_client_proof(&self.stored_key, auth_message, client_proof)
    }

    /// ServerSignature = HMAC(ServerKey, AuthMessage), sent as `v=` in the
    /// server-final-message (RFC 5802 §3).
    pub fn server_signature(&self, auth_message: &[u8]) -> [u8; 32] {
        scram::server_signature(&self.server_key, auth_message)
    }

    /// Parses the RFC 5803 text form
    /// `SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>`; the reason on
    /// failure is a short phrase for an error message.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix('$'))
            .ok_or_else(|| format!("verifier must start with {SCHEME}$"))?;
        let (params, keys) = rest
            .split_once('$')
            .ok_or("verifier must be SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>")?;
        let (iterations, salt) = params
            .split_once(':')
            .ok_or("verifier parameters must be <iterations>:<salt>")?;
        let (stored, server) = keys
            .split_once(':')
            .ok_or("verifier keys must be <StoredKey>:<ServerKey>")?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| format!("iteration count {iterations:?} is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "iteration count {iterations} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            ));
        }
        let salt = BASE64
            .decode(salt)
            .map_err(|_| "salt is not base64".to_owned())?;
        if salt.len() < MIN_SALT_LEN {
            return Err(format!(
                "salt has {} octets, at least {MIN_SALT_LEN} are required",
                salt.len()
            ));
        }
        let key = |name: &str, text: &str| -> Result<[u8; KEY_LEN], String> {
            BASE64
                .decode(text)
                .ok()
                .and_then(|k| <[u8; KEY_LEN]>::try_from(k).ok())
                .ok_or_else(|| format!("{name} is not base64 of 32 octets"))
        };
        Ok(Self {
            iterations,
            salt,
            stored_key: key("StoredKey", stored)?,
            server_key: key("ServerKey", server)?,
        })
    }
}

impl std::fmt::Display for ScramVerifier {
    /// The RFC 5803 text form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{SCHEME}${}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(self.stored_key),
            BASE64.encode(self.server_key)
        )
    }
}

/// SaltedPassword = Hi(Normalize(password), salt, i) (RFC 5802 §2.2, with
/// SASLprep, RFC 4013, as Normalize).
pub fn salted_password(
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<[u8; 32], AuthError> {
    scram::salted_password(password, salt, iterations)
        .map_err(|e| AuthError::InvalidPassword(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        BASE64.decode(s).unwrap()
    }

    /// RFC 7677 §3: user "user", password "pencil".
    #[test]
    fn rfc7677_exchange_verifies_against_derived_keys() {
        let salt = b64("W22ZaJ0SNY7soEsUEjb6gQ==");
        let verifier = ScramVerifier::derive("pencil", &salt, 4096).unwrap();
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final_without_proof =
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth_message =
            format!("{client_first_bare},{server_first},{client_final_without_proof}");
        let proof = b64("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        assert!(verifier.verify_client_proof(auth_message.as_bytes(), &proof));
        assert_eq!(
            verifier.server_signature(auth_message.as_bytes()).to_vec(),
            b64("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        );
        // A flipped proof bit, or another password, fails.
        let mut bad = proof.clone();
        bad[0] ^= 1;
        assert!(!verifier.verify_client_proof(auth_message.as_bytes(), &bad));
        assert!(!verifier.verify_client_proof(auth_message.as_bytes(), &proof[..31]));
        let other = ScramVerifier::derive("pencil2", &salt, 4096).unwrap();
        assert!(!other.verify_client_proof(auth_message.as_bytes(), &proof));
        // PLAIN check against the same verifier.
        assert!(verifier.verify_password("pencil"));
        assert!(!verifier.verify_password("Pencil"));
        assert!(!verifier.verify_password(""));
    }

    #[test]
    fn text_form_round_trip_and_rejections() {
        let verifier = ScramVerifier::generate("correct horse").unwrap();
        assert_eq!(verifier.salt().len(), SALT_LEN);
        assert_eq!(verifier.iterations(), DEFAULT_ITERATIONS);
        let text = verifier.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!text.contains("correct"));
        let parsed = ScramVerifier::parse(&text).unwrap();
        assert_eq!(parsed, verifier);
        assert!(parsed.verify_password("correct horse"));
        assert!(!parsed.verify_password("correct horsf"));
        // Two verifiers for one password differ (random salt).
        assert_ne!(ScramVerifier::generate("correct horse").unwrap(), verifier);

        let good_salt = BASE64.encode([7u8; 16]);
        let key = BASE64.encode([1u8; 32]);
        assert!(
            ScramVerifier::parse(&format!("SCRAM-SHA-256$4096:{good_salt}${key}:{key}")).is_ok()
        );
        for bad in [
            format!("SCRAM-SHA-1$4096:{good_salt}${key}:{key}"),
            format!("SCRAM-SHA-256$4095:{good_salt}${key}:{key}"),
            format!("SCRAM-SHA-256$many:{good_salt}${key}:{key}"),
            format!(
                "SCRAM-SHA-256$4096:{}${key}:{key}",
                BASE64.encode([7u8; 15])
            ),
            format!(
                "SCRAM-SHA-256$4096:{good_salt}${key}:{}",
                BASE64.encode([1u8; 31])
            ),
            format!("SCRAM-SHA-256$4096:{good_salt}${key}"),
            format!("SCRAM-SHA-256$4096${key}:{key}"),
            "pencil".to_owned(),
        ] {
            assert!(ScramVerifier::parse(&bad).is_err(), "{bad}");
        }
        assert!(matches!(
            ScramVerifier::generate_with_iterations("x", 1000),
            Err(AuthError::InvalidIterations(1000))
        ));
    }

    #[test]
    fn saslprep_normalizes_and_refuses() {
        let salt = [3u8; 16];
        // U+00AD SOFT HYPHEN is mapped to nothing (RFC 4013 §2.1).
        let verifier = ScramVerifier::derive("pass\u{AD}word", &salt, 4096).unwrap();
        assert!(verifier.verify_password("password"));
        // Control characters are prohibited.
        assert!(ScramVerifier::derive("pass\u{7}word", &salt, 4096).is_err());
        assert!(!verifier.verify_password("pass\u{7}word"));
        // Debug output shows no key material.
        assert!(!format!("{verifier:?}").contains("salt"));
    }
}
