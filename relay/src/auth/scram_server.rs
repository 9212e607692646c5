//! The server side of SCRAM-SHA-256 (RFC 5802 §3, §5, §7; RFC 7677) over
//! the verifiers of the users file.
//!
//! ```text
//! C: n,,n=fred@example.com,r=<c-nonce>                 (client-first)
//! S: r=<c-nonce><s-nonce>,s=<salt>,i=<iterations>       (server-first)
//! C: c=biws,r=<c-nonce><s-nonce>,p=<ClientProof>        (client-final)
//! S: v=<ServerSignature>                                (with success)
//! ```
//!
//! Decisions:
//! * Channel binding is not offered (no `-PLUS` mechanism): a client
//!   asking for it (`p=`) is refused; `n` and `y` are accepted (`y` only
//!   means the client could bind but believes we cannot, which is true,
//!   RFC 5802 §6).
//! * The authzid (`a=`) must be empty or name the same user.
//! * An unknown user gets a made-up salt (an HMAC of the name under a
//!   per-process secret) and the default iteration count, so that the
//!   server-first-message does not reveal which users exist; the proof
//!   then fails like a wrong password.
//! * Failures are BEEP `<error>` replies (535, or 501 for a malformed
//!   message) rather than a server-final `e=` attribute: the SASL profile
//!   has its own error element (RFC 3080 §4.1).
//! * `m=` (a mandatory extension, RFC 5802 §5.1) is refused, unknown
//!   optional attributes after the nonce are ignored.

use super::scram::{DEFAULT_ITERATIONS, SALT_LEN, ScramVerifier};
use super::users::canonical_user_name;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit as _, Mac as _};
use imxp_beep::tuning::sasl::{SaslServer, ServerStep};
use imxp_beep::{ErrorReply, ReplyCode};
use rand::RngCore as _;
use sha2::Sha256;
use std::sync::{Arc, OnceLock};

/// Finds the verifier of a canonical user name.
pub(crate) type VerifierLookup = dyn Fn(&str) -> Option<ScramVerifier> + Send + Sync;

/// Octets of the server's nonce part (before base64).
const SERVER_NONCE_LEN: usize = 24;

/// One server-side SCRAM-SHA-256 exchange.
pub(crate) struct ScramServer {
    lookup: Arc<VerifierLookup>,
    state: State,
}

enum State {
    /// Waiting for the client-first-message.
    First,
    /// Server-first sent; waiting for the client-final-message.
    Final(Box<Pending>),
    /// Ended (success or failure): further steps fail.
    Done,
}

struct Pending {
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    user: String,
    /// `None` for an unknown user (the exchange runs on a made-up salt).
    verifier: Option<ScramVerifier>,
}

impl ScramServer {
    pub(crate) fn new(lookup: Arc<VerifierLookup>) -> Self {
        Self {
            lookup,
            state: State::First,
        }
    }

    fn first(&mut self, message: &[u8]) -> ServerStep {
        let parsed = match ClientFirst::parse(message) {
            Ok(parsed) => parsed,
            Err(failure) => return failure.into_step(),
        };
        let user = match canonical_user_name(&parsed.username) {
            Ok(user) => user,
            // Not a possible user name: fail later, like an unknown user.
            Err(_) => parsed.username.clone(),
        };
        if let Some(authzid) = &parsed.authzid
            && canonical_user_name(authzid).ok().as_deref() != Some(user.as_str())
        {
            return Failure::Auth("the authorization identity must be the user itself").into_step();
        }
        let verifier = (self.lookup)(&user);
        let (salt, iterations) = match &verifier {
            Some(v) => (v.salt().to_vec(), v.iterations()),
            None => (fake_salt(&user), DEFAULT_ITERATIONS),
        };
        let mut server_nonce = [0u8; SERVER_NONCE_LEN];
        rand::rng().fill_bytes(&mut server_nonce);
        let nonce = format!("{}{}", parsed.nonce, BASE64.encode(server_nonce));
        let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(&salt));
        self.state = State::Final(Box::new(Pending {
            gs2_header: parsed.gs2_header,
            client_first_bare: parsed.bare,
            server_first: server_first.clone(),
            nonce,
            user,
            verifier,
        }));
        ServerStep::Challenge(server_first.into_bytes())
    }
}

impl SaslServer for ScramServer {
    fn step(&mut self, response: Option<&[u8]>) -> ServerStep {
        match std::mem::replace(&mut self.state, State::Done) {
            // No initial response: ask for the client-first-message.
            State::First => match response {
                None => {
                    self.state = State::First;
                    ServerStep::Challenge(Vec::new())
                }
                Some(message) => self.first(message),
            },
            State::Final(pending) => match response {
                Some(message) => pending.finish(message),
                None => Failure::Syntax("client-final-message expected").into_step(),
            },
            State::Done => Failure::Auth("the exchange has ended").into_step(),
        }
    }
}

impl Pending {
    fn finish(self, message: &[u8]) -> ServerStep {
        let Ok(text) = std::str::from_utf8(message) else {
            return Failure::Syntax("client-final-message is not UTF-8").into_step();
        };
        // c=…,r=…[,extensions],p=…: the proof is the last attribute.
        let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
            return Failure::Syntax("client-final-message has no proof (p=)").into_step();
        };
        let mut attributes = without_proof.split(',');
        let channel_binding = attributes.next().and_then(|a| a.strip_prefix("c="));
        let nonce = attributes.next().and_then(|a| a.strip_prefix("r="));
        let (Some(channel_binding), Some(nonce)) = (channel_binding, nonce) else {
            return Failure::Syntax("client-final-message must begin c=…,r=…").into_step();
        };
        if BASE64.decode(channel_binding).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Failure::Auth("channel binding data (c=) does not match the GS2 header")
                .into_step();
        }
        if nonce != self.nonce {
            return Failure::Auth("the nonce (r=) does not match").into_step();
        }
        let Ok(proof) = BASE64.decode(proof) else {
            return Failure::Syntax("the proof (p=) is not base64").into_step();
        };
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        match &self.verifier {
            Some(verifier) if verifier.verify_client_proof(auth_message.as_bytes(), &proof) => {
                let signature = verifier.server_signature(auth_message.as_bytes());
                ServerStep::Success {
                    identity: self.user,
                    data: format!("v={}", BASE64.encode(signature)).into_bytes(),
                }
            }
            _ => ServerStep::Failure(ErrorReply::new(ReplyCode::AUTH_FAILURE, "")),
        }
    }
}

/// The parts of a client-first-message.
#[derive(Debug, PartialEq, Eq)]
struct ClientFirst {
    gs2_header: String,
    authzid: Option<String>,
    bare: String,
    username: String,
    nonce: String,
}

enum Failure {
    Syntax(&'static str),
    Auth(&'static str),
}

impl Failure {
    fn into_step(self) -> ServerStep {
        ServerStep::Failure(match self {
            Self::Syntax(text) => ErrorReply::new(ReplyCode::PARAMETER_SYNTAX_ERROR, text),
            Self::Auth(text) => ErrorReply::new(ReplyCode::AUTH_FAILURE, text),
        })
    }
}

impl ClientFirst {
    /// gs2-header client-first-message-bare (RFC 5802 §7).
    fn parse(message: &[u8]) -> Result<Self, Failure> {
        let text = std::str::from_utf8(message)
            .map_err(|_| Failure::Syntax("client-first-message is not UTF-8"))?;
        let (flag, rest) = text
            .split_once(',')
            .ok_or(Failure::Syntax("client-first-message has no GS2 header"))?;
        match flag {
            "n" | "y" => {}
            _ if flag.starts_with("p=") => {
                return Err(Failure::Auth(
                    "channel binding is not supported (SCRAM-SHA-256-PLUS is not offered)",
                ));
            }
            _ => {
                return Err(Failure::Syntax(
                    "GS2 channel binding flag must be n, y or p=",
                ));
            }
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(Failure::Syntax("client-first-message has no GS2 header"))?;
        let authzid = match authzid {
            "" => None,
            a => Some(decode_saslname(a.strip_prefix("a=").ok_or(
                Failure::Syntax("GS2 authorization identity must be a=…"),
            )?)?),
        };
        let gs2_header = text[..text.len() - bare.len()].to_owned();
        let mut attributes = bare.split(',');
        let username = match attributes.next() {
            Some(m) if m.starts_with("m=") => {
                return Err(Failure::Auth("mandatory extensions (m=) are not supported"));
            }
            Some(n) => n
                .strip_prefix("n=")
                .ok_or(Failure::Syntax("client-first-message-bare must begin n="))?,
            None => return Err(Failure::Syntax("no user name (n=)")),
        };
        let username = decode_saslname(username)?;
        if username.is_empty() {
            return Err(Failure::Syntax("empty user name (n=)"));
        }
        let nonce = attributes
            .next()
            .and_then(|r| r.strip_prefix("r="))
            .ok_or(Failure::Syntax("no nonce (r=) after the user name"))?;
        if nonce.is_empty()
            || !nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
        {
            return Err(Failure::Syntax(
                "the nonce must be printable ASCII without commas",
            ));
        }
        Ok(Self {
            gs2_header,
            authzid,
            bare: bare.to_owned(),
            username,
            nonce: nonce.to_owned(),
        })
    }
}

/// saslname (RFC 5802 §7): `=2C` is `,`, `=3D` is `=`, any other `=` is
/// an error.
fn decode_saslname(text: &str) -> Result<String, Failure> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(Failure::Syntax("invalid = escape in a SCRAM name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A stable made-up salt for a user that does not exist.
fn fake_salt(user: &str) -> Vec<u8> {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    let secret = SECRET.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        secret
    });
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(user.as_bytes());
    mac.finalize().into_bytes()[..SALT_LEN].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3's user and password, with the salt and nonces of its
    /// example (copied here as test data).
    const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_verifier() -> ScramVerifier {
        ScramVerifier::derive("pencil", &BASE64.decode(SALT).unwrap(), 4096).unwrap()
    }

    fn server_for(name: &'static str, verifier: ScramVerifier) -> ScramServer {
        ScramServer::new(Arc::new(move |user: &str| {
            (user == name).then(|| verifier.clone())
        }))
    }

    fn code(step: &ServerStep) -> u16 {
        match step {
            ServerStep::Failure(error) => error.code.0,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    /// RFC 7677 §3, with the server nonce forced to the example's.
    #[test]
    fn rfc7677_example_exchange() {
        // The user of the example is "user", not an address: the lookup
        // sees the name as given when it is not a canonical user name.
        let mut server = server_for("user", rfc_verifier());
        let ServerStep::Challenge(first) = server.step(Some(CLIENT_FIRST.as_bytes())) else {
            panic!("no server-first-message");
        };
        let first = String::from_utf8(first).unwrap();
        assert!(first.starts_with("r=rOprNGfwEbeRWgbNEkqO"), "{first}");
        assert!(
            first.ends_with(",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
            "{first}"
        );
        // Replay the example's server nonce.
        let State::Final(pending) = &mut server.state else {
            panic!("not waiting for client-final");
        };
        pending.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into();
        pending.server_first = SERVER_FIRST.into();
        assert_eq!(
            server.step(Some(CLIENT_FINAL.as_bytes())),
            ServerStep::Success {
                identity: "user".into(),
                data: SERVER_FINAL.as_bytes().to_vec(),
            }
        );
        // The exchange is over.
        assert_eq!(code(&server.step(Some(b"x"))), 535);
    }

    #[test]
    fn wrong_proof_nonce_or_binding_fails() {
        let fresh = || {
            let mut server = server_for("user", rfc_verifier());
            server.step(Some(CLIENT_FIRST.as_bytes()));
            let State::Final(pending) = &mut server.state else {
                panic!()
            };
            pending.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into();
            pending.server_first = SERVER_FIRST.into();
            server
        };
        let bad_proof = CLIENT_FINAL.replace("p=dHzb", "p=dHzc");
        assert_eq!(code(&fresh().step(Some(bad_proof.as_bytes()))), 535);
        let bad_nonce = CLIENT_FINAL.replace("$k0,", "$k1,");
        assert_eq!(code(&fresh().step(Some(bad_nonce.as_bytes()))), 535);
        // c= must be base64("n,,"); "eSws" is base64("y,,").
        let bad_binding = CLIENT_FINAL.replace("c=biws", "c=eSws");
        assert_eq!(code(&fresh().step(Some(bad_binding.as_bytes()))), 535);
        let no_proof = CLIENT_FINAL.split(",p=").next().unwrap().to_owned();
        assert_eq!(code(&fresh().step(Some(no_proof.as_bytes()))), 501);
        assert_eq!(code(&fresh().step(None)), 501);
    }

    #[test]
    fn client_first_parsing() {
        let parsed = ClientFirst::parse(b"y,a=fred=2Cx@a.test,n=fred=3D@a.test,r=abc,x=ext")
            .ok()
            .unwrap();
        assert_eq!(parsed.gs2_header, "y,a=fred=2Cx@a.test,");
        assert_eq!(parsed.authzid.as_deref(), Some("fred,x@a.test"));
        assert_eq!(parsed.username, "fred=@a.test");
        assert_eq!(parsed.nonce, "abc");
        assert_eq!(parsed.bare, "n=fred=3D@a.test,r=abc,x=ext");
        // Refusals and their codes.
        for (message, expected) in [
            (&b"p=tls-unique,,n=user,r=abc"[..], 535),
            (b"n,,m=ext,n=user,r=abc", 535),
            (b"q,,n=user,r=abc", 501),
            (b"n,,n=us=er,r=abc", 501),
            (b"n,,n=user", 501),
            (b"n,,n=,r=abc", 501),
            (b"n,,n=user,r=a\x01b", 501),
            (b"n,x=1,n=user,r=abc", 501),
            (b"n", 501),
            (b"\xff,,n=user,r=abc", 501),
        ] {
            let mut server = server_for("user", rfc_verifier());
            assert_eq!(
                code(&server.step(Some(message))),
                expected,
                "{}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn authzid_must_be_the_user_and_names_are_canonical() {
        let verifier = rfc_verifier();
        let mut server = server_for("fred@example.com", verifier.clone());
        assert_eq!(
            code(&server.step(Some(b"n,a=barney@example.com,n=fred@example.com,r=abc"))),
            535
        );
        let mut server = server_for("fred@example.com", verifier);
        let ServerStep::Challenge(first) =
            server.step(Some(b"n,a=fred@EXAMPLE.com,n=fred@Example.COM,r=abc"))
        else {
            panic!("refused a canonical-equal authzid");
        };
        assert!(first.ends_with(b",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
    }

    #[test]
    fn unknown_users_get_a_stable_fake_salt() {
        let challenge = |name: &str| {
            let mut server = server_for("fred@example.com", rfc_verifier());
            let message = format!("n,,n={name},r=abc");
            match server.step(Some(message.as_bytes())) {
                ServerStep::Challenge(c) => String::from_utf8(c).unwrap(),
                other => panic!("{other:?}"),
            }
        };
        let salt = |c: String| c.split(",s=").nth(1).unwrap().to_owned();
        let a = salt(challenge("nobody@example.com"));
        assert_eq!(a, salt(challenge("nobody@example.com")));
        assert_ne!(a, salt(challenge("other@example.com")));
        assert!(a.ends_with(",i=4096"));
        assert_eq!(
            BASE64.decode(a.trim_end_matches(",i=4096")).unwrap().len(),
            SALT_LEN
        );
        // No initial response: an empty challenge first.
        let mut server = server_for("fred@example.com", rfc_verifier());
        assert_eq!(server.step(None), ServerStep::Challenge(Vec::new()));
        assert!(matches!(
            server.step(Some(b"n,,n=fred@example.com,r=abc")),
            ServerStep::Challenge(_)
        ));
    }
}
