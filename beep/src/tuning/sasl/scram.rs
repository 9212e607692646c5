//! SCRAM-SHA-256 key derivation and proofs (RFC 5802 §3, RFC 7677): the
//! arithmetic both ends of the exchange share. Message syntax, nonces and
//! state stay with the client and server that speak it.
//!
//! ```text
//! SaltedPassword  = Hi(SASLprep(password), salt, i)   (PBKDF2-HMAC-SHA-256)
//! ClientKey       = HMAC(SaltedPassword, "Client Key")
//! StoredKey       = SHA-256(ClientKey)
//! ServerKey       = HMAC(SaltedPassword, "Server Key")
//! ClientSignature = HMAC(StoredKey, AuthMessage)
//! ClientProof     = ClientKey XOR ClientSignature
//! ServerSignature = HMAC(ServerKey, AuthMessage)
//! ```
//!
//! A server keeps only (salt, i, StoredKey, ServerKey); from a ClientProof
//! it recovers ClientKey and checks it against StoredKey
//! ([`verify_client_proof`]). Comparisons are constant-time.

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use thiserror::Error;

/// The mechanism name (RFC 7677 §2).
pub const MECHANISM: &str = "SCRAM-SHA-256";
/// The smallest iteration count RFC 7677 §4 allows.
pub const MIN_ITERATIONS: u32 = 4096;
/// Length of every key, signature and proof: the SHA-256 output size.
pub const KEY_LEN: usize = 32;

/// A key, signature or proof.
pub type Key = [u8; KEY_LEN];

/// The password contains something SASLprep (RFC 4013) prohibits.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not allowed by SASLprep: {0}")]
pub struct SaslprepError(String);

/// The keys derived from one password, salt and iteration count.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// ClientKey = HMAC(SaltedPassword, "Client Key").
    pub client_key: Key,
    /// StoredKey = SHA-256(ClientKey).
    pub stored_key: Key,
    /// ServerKey = HMAC(SaltedPassword, "Server Key").
    pub server_key: Key,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

impl Keys {
    /// Derives the keys for `password` (prepared with SASLprep), `salt` and
    /// `iterations`. No range check on `iterations`: that is policy.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Result<Self, SaslprepError> {
        Ok(Self::from_salted(&salted_password(
            password, salt, iterations,
        )?))
    }

    /// The keys from a SaltedPassword.
    pub fn from_salted(salted: &Key) -> Self {
        let client_key = hmac(salted, b"Client Key");
        Self {
            client_key,
            stored_key: sha256(&client_key),
            server_key: hmac(salted, b"Server Key"),
        }
    }

    /// ClientProof over `auth_message`: what the client sends as `p=`.
    pub fn client_proof(&self, auth_message: &[u8]) -> Key {
        xor(
            &self.client_key,
            &client_signature(&self.stored_key, auth_message),
        )
    }

    /// ServerSignature over `auth_message`: what the server sends as `v=`.
    pub fn server_signature(&self, auth_message: &[u8]) -> Key {
        server_signature(&self.server_key, auth_message)
    }
}

/// SaltedPassword = Hi(Normalize(password), salt, i) (RFC 5802 §2.2),
/// with SASLprep (RFC 4013) as Normalize and PBKDF2-HMAC-SHA-256 as Hi.
pub fn salted_password(password: &str, salt: &[u8], iterations: u32) -> Result<Key, SaslprepError> {
    let prepared = stringprep::saslprep(password).map_err(|e| SaslprepError(e.to_string()))?;
    let mut out = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(prepared.as_bytes(), salt, iterations, &mut out);
    Ok(out)
}

/// StoredKey = SHA-256(ClientKey).
pub fn stored_key(client_key: &Key) -> Key {
    sha256(client_key)
}

/// ClientSignature = HMAC(StoredKey, AuthMessage).
pub fn client_signature(stored_key: &Key, auth_message: &[u8]) -> Key {
    hmac(stored_key, auth_message)
}

/// ServerSignature = HMAC(ServerKey, AuthMessage).
pub fn server_signature(server_key: &Key, auth_message: &[u8]) -> Key {
    hmac(server_key, auth_message)
}

/// The server's check (RFC 5802 §3): recovers ClientKey from
/// `client_proof` and compares its hash with `stored_key`, in constant
/// time. A proof of the wrong length fails.
pub fn verify_client_proof(stored_key: &Key, auth_message: &[u8], client_proof: &[u8]) -> bool {
    let Ok(proof) = <&Key>::try_from(client_proof) else {
        return false;
    };
    let client_key = xor(proof, &client_signature(stored_key, auth_message));
    keys_equal(&sha256(&client_key), stored_key)
}

/// Compares two keys or signatures in constant time (for equal lengths).
pub fn keys_equal(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

fn xor(a: &Key, b: &Key) -> Key {
    let mut out = [0u8; KEY_LEN];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Key {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn sha256(data: &[u8]) -> Key {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    fn b64(s: &str) -> Vec<u8> {
        BASE64.decode(s).unwrap()
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn pbkdf2_hmac_sha256_known_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256 with P="passwd", S="salt", c=1;
        // the first 32 octets of its 64-octet output are T_1.
        let out = salted_password("passwd", b"salt", 1).unwrap();
        assert_eq!(
            out.to_vec(),
            hex("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")
        );
    }

    /// RFC 7677 §3: user "user", password "pencil".
    #[test]
    fn rfc7677_example() {
        let keys = Keys::derive("pencil", &b64("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096).unwrap();
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
                            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
                            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth_message = auth_message.as_bytes();
        let proof = keys.client_proof(auth_message);
        assert_eq!(
            proof.to_vec(),
            b64("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        );
        assert_eq!(
            keys.server_signature(auth_message).to_vec(),
            b64("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        );
        assert_eq!(stored_key(&keys.client_key), keys.stored_key);
        assert!(verify_client_proof(&keys.stored_key, auth_message, &proof));

        // A flipped bit, a short proof, or another password fails.
        let mut bad = proof;
        bad[0] ^= 1;
        assert!(!verify_client_proof(&keys.stored_key, auth_message, &bad));
        assert!(!verify_client_proof(
            &keys.stored_key,
            auth_message,
            &proof[..31]
        ));
        let other = Keys::derive("pencil2", &b64("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096).unwrap();
        assert!(!verify_client_proof(
            &other.stored_key,
            auth_message,
            &proof
        ));
    }

    #[test]
    fn saslprep_maps_and_prohibits() {
        let salt = [3u8; 16];
        // U+00AD SOFT HYPHEN maps to nothing (RFC 4013 §2.1).
        assert_eq!(
            salted_password("pass\u{AD}word", &salt, 4096),
            salted_password("password", &salt, 4096)
        );
        // Control characters are prohibited.
        assert!(salted_password("pass\u{7}word", &salt, 4096).is_err());
        assert!(keys_equal(b"ab", b"ab") && !keys_equal(b"ab", b"ac"));
        assert!(!format!("{:?}", Keys::from_salted(&[0; KEY_LEN])).contains('0'));
    }
}
