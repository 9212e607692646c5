//! The client side of SCRAM-SHA-256 (RFC 5802 §3, §7; RFC 7677), the
//! default login mechanism: the password never crosses the wire, and the
//! relay proves it knows the verifier (`v=`, checked in
//! [`SaslClient::complete`]).
//!
//! No channel binding is used (GS2 flag `n`): the relay does not offer
//! SCRAM-SHA-256-PLUS. The user name is sent as given, escaped as a
//! saslname; the password is prepared with SASLprep (RFC 4013).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use imxp_beep::tuning::sasl::SaslClient;
use imxp_beep::tuning::sasl::scram::{self, Key, Keys};
use rand::RngCore as _;

/// The mechanism name.
pub const MECHANISM: &str = scram::MECHANISM;

/// The smallest iteration count the client accepts from a relay (RFC 7677
/// §4: at least 4096).
pub const MIN_ITERATIONS: u32 = scram::MIN_ITERATIONS;
/// The largest iteration count the client accepts, so a hostile relay
/// cannot make it compute for minutes.
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// One client-side SCRAM-SHA-256 exchange.
pub struct ScramClient {
    user: String,
    password: String,
    client_nonce: String,
    state: State,
}

enum State {
    Initial,
    /// client-first sent.
    First,
    /// client-final sent; the expected server signature.
    Final(Key),
    Done,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// An exchange for `user` with `password` and a fresh random nonce.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        Self::with_nonce(user, password, BASE64.encode(nonce))
    }

    /// An exchange with a given client nonce (printable ASCII without
    /// commas): for test vectors.
    pub fn with_nonce(
        user: impl Into<String>,
        password: impl Into<String>,
        client_nonce: impl Into<String>,
    ) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
            client_nonce: client_nonce.into(),
            state: State::Initial,
        }
    }

    fn client_first_bare(&self) -> String {
        let name = self.user.replace('=', "=3D").replace(',', "=2C");
        format!("n={name},r={}", self.client_nonce)
    }

    fn respond(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(server_first)
            .map_err(|_| "the server-first-message is not UTF-8".to_owned())?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attribute in text.split(',') {
            match attribute.split_at_checked(2) {
                Some(("r=", value)) if nonce.is_none() => nonce = Some(value),
                Some(("s=", value)) if salt.is_none() => salt = Some(value),
                Some(("i=", value)) if iterations.is_none() => iterations = Some(value),
                Some(("m=", _)) => return Err("the relay requires an unknown extension".into()),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(format!("malformed server-first-message {text:?}"));
        };
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err("the relay's nonce does not extend ours".into());
        }
        let salt = BASE64
            .decode(salt)
            .map_err(|_| "the relay's salt is not base64".to_owned())?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| format!("iteration count {iterations:?} is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "iteration count {iterations} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            ));
        }
        let keys = Keys::derive(&self.password, &salt, iterations)
            .map_err(|e| format!("the password is {e}"))?;
        // c=biws is base64("n,,"): no channel binding, no authzid.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare());
        let proof = keys.client_proof(auth_message.as_bytes());
        self.state = State::Final(keys.server_signature(auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }
}

impl SaslClient for ScramClient {
    fn mechanism(&self) -> &str {
        MECHANISM
    }

    fn identity(&self) -> String {
        self.user.clone()
    }

    fn initial_response(&mut self) -> Option<Vec<u8>> {
        self.state = State::First;
        Some(format!("n,,{}", self.client_first_bare()).into_bytes())
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, String> {
        match std::mem::replace(&mut self.state, State::Done) {
            // The relay asked for the client-first-message (no initial
            // response was taken).
            State::Initial if challenge.is_empty() => {
                Ok(self.initial_response().unwrap_or_default())
            }
            State::First => self.respond(challenge),
            _ => Err("unexpected SCRAM challenge".into()),
        }
    }

    fn complete(&mut self, additional: &[u8]) -> Result<(), String> {
        let State::Final(expected) = std::mem::replace(&mut self.state, State::Done) else {
            return Err("the relay reported success before the SCRAM exchange ended".into());
        };
        let signature = std::str::from_utf8(additional)
            .ok()
            .and_then(|text| text.strip_prefix("v="))
            .and_then(|value| BASE64.decode(value).ok())
            .ok_or("the relay's success carries no server signature (v=)")?;
        if scram::keys_equal(&signature, &expected) {
            Ok(())
        } else {
            Err("the relay's server signature is wrong: it does not know the verifier".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3, copied as test data.
    #[test]
    fn rfc7677_example() {
        let mut client = ScramClient::with_nonce("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(
            client.initial_response().unwrap(),
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                             s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            String::from_utf8(client.step(server_first).unwrap()).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .complete(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    #[test]
    fn a_wrong_server_signature_or_bad_challenge_fails() {
        let server_first = b"r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let mut client = ScramClient::with_nonce("user", "pencil", "abc");
        client.initial_response();
        client.step(server_first).unwrap();
        assert!(
            client
                .complete(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .is_err()
        );
        for bad in [
            &b"r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"[..],
            b"r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1",
            b"r=abcdef,s=!!,i=4096",
            b"r=abcdef,i=4096",
            b"m=x,r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        ] {
            let mut client = ScramClient::with_nonce("user", "pencil", "abc");
            client.initial_response();
            assert!(
                client.step(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Success claimed without the exchange.
        let mut client = ScramClient::with_nonce("user", "pencil", "abc");
        assert!(client.complete(b"").is_err());
        // Names are escaped; the password is not shown.
        let mut client = ScramClient::with_nonce("a=b,c@x", "pencil", "n");
        assert_eq!(client.initial_response().unwrap(), b"n,,n=a=3Db=2Cc@x,r=n");
        assert!(!format!("{client:?}").contains("pencil"));
    }
}
