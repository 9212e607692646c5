//! OpenPGP with sequoia-openpgp (OpenSSL backend): key generation, detached
//! signatures for PGP/MIME `multipart/signed` (RFC 3156 §5), encryption
//! for `multipart/encrypted` (§4), signed-and-encrypted messages in one
//! OpenPGP message (§6.2), and the matching verification and decryption
//! with a verdict per signature.
//!
//! Keys are v4 (RFC 4880 profile) so that GnuPG 2.2 reads them.

use std::collections::HashSet;
use std::io::Write as _;

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::SessionKey;
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, DetachedVerifierBuilder, MessageLayer, MessageStructure,
    VerificationError, VerificationHelper,
};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Armorer, Encryptor, LiteralWriter, Message, Signer as PgpSigner};
use openpgp::serialize::{Serialize as _, SerializeInto as _};
use openpgp::types::SymmetricAlgorithm;
use openpgp::{Cert, Fingerprint, KeyHandle};

use crate::error::E2eError;
use crate::uri::ImUri;
use crate::verdict::{DecryptionReport, Scheme, SignatureReport, SignatureVerdict, Signer};

/// The `protocol` of PGP/MIME `multipart/signed` (RFC 3156 §5).
pub const PROTOCOL_SIGNATURE: &str = "application/pgp-signature";

/// The `protocol` of `multipart/encrypted` (RFC 3156 §4).
pub const PROTOCOL_ENCRYPTED: &str = "application/pgp-encrypted";

fn pgp_error(context: &str) -> impl FnOnce(anyhow::Error) -> E2eError + '_ {
    move |error| E2eError::Pgp(format!("{context}: {error:#}"))
}

/// The OpenPGP keys a reader or writer can use.
#[derive(Debug, Clone, Default)]
pub struct PgpKeys {
    /// Public certificates (own and imported).
    pub certs: Vec<Cert>,
    /// Certificates with secret key material (own keys).
    pub secrets: Vec<Cert>,
    /// Fingerprints of the certificates the user trusts.
    pub trusted: HashSet<Fingerprint>,
}

impl PgpKeys {
    /// The certificate bound to `identity` (or, for a subaddress, to its
    /// user), for encrypting to it.
    pub fn cert_for(&self, identity: &ImUri) -> Result<&Cert, E2eError> {
        let all = || self.certs.iter().chain(&self.secrets);
        all()
            .find(|cert| identities(cert).contains(identity))
            .or_else(|| all().find(|cert| identities(cert).iter().any(|i| i.covers(identity))))
            .ok_or_else(|| E2eError::NoKey {
                kind: "OpenPGP certificate",
                identity: identity.to_string(),
            })
    }

    /// The secret key bound to `identity` (or, for a subaddress, to its
    /// user), for signing as it.
    pub fn secret_for(&self, identity: &ImUri) -> Result<&Cert, E2eError> {
        self.secrets
            .iter()
            .find(|cert| identities(cert).contains(identity))
            .or_else(|| {
                self.secrets
                    .iter()
                    .find(|cert| identities(cert).iter().any(|i| i.covers(identity)))
            })
            .ok_or_else(|| E2eError::NoKey {
                kind: "OpenPGP secret key",
                identity: identity.to_string(),
            })
    }

    fn find(&self, handle: &KeyHandle) -> Option<&Cert> {
        self.secrets.iter().chain(&self.certs).find(|cert| {
            cert.keys()
                .any(|key| key.key().key_handle().aliases(handle))
        })
    }
}

/// Makes a new OpenPGP key for `identity`: a certification primary key with
/// a signing and an encryption subkey (Curve25519), user ID `<im:…>`. The
/// key is v4 and announces only SEIPDv1 (RFC 4880 §5.13), so that senders
/// such as GnuPG 2.2, which know no SEIPDv2, can encrypt to it and read
/// what is encrypted with it.
pub fn generate(identity: &ImUri) -> Result<Cert, E2eError> {
    let (cert, _revocation) = CertBuilder::general_purpose(Some(format!("<{identity}>")))
        .set_profile(openpgp::Profile::RFC4880)
        .map_err(pgp_error("key profile"))?
        .set_features(openpgp::types::Features::empty().set_seipdv1())
        .map_err(pgp_error("key features"))?
        .generate()
        .map_err(pgp_error("generating a key"))?;
    Ok(cert)
}

/// The `im:` identities a certificate's user IDs name (`<im:…>` or a bare
/// `im:…`), in order.
pub fn identities(cert: &Cert) -> Vec<ImUri> {
    cert.userids()
        .filter_map(|userid| {
            let text = String::from_utf8_lossy(userid.userid().value()).into_owned();
            let uri = match (text.rfind('<'), text.ends_with('>')) {
                (Some(open), true) => text[open + 1..text.len() - 1].to_owned(),
                _ => text,
            };
            ImUri::parse(&uri).ok()
        })
        .collect()
}

/// The first user ID, as text.
pub fn primary_user_id(cert: &Cert) -> Option<String> {
    let policy = StandardPolicy::new();
    cert.with_policy(&policy, None)
        .ok()
        .and_then(|valid| {
            valid
                .primary_userid()
                .ok()
                .map(|u| u.userid().value().to_vec())
        })
        .or_else(|| cert.userids().next().map(|u| u.userid().value().to_vec()))
        .map(|value| String::from_utf8_lossy(&value).into_owned())
}

/// The certificate as ASCII armor (public parts only).
pub fn armored_cert(cert: &Cert) -> Result<Vec<u8>, E2eError> {
    cert.armored()
        .to_vec()
        .map_err(pgp_error("writing the certificate"))
}

/// The certificate with its secret key material, as ASCII armor.
pub fn armored_secret(cert: &Cert) -> Result<Vec<u8>, E2eError> {
    cert.as_tsk()
        .armored()
        .to_vec()
        .map_err(pgp_error("writing the secret key"))
}

/// Reads every certificate (public or secret) in `bytes` (armored or
/// binary, one or many).
pub fn read_certs(bytes: &[u8]) -> Result<Vec<Cert>, E2eError> {
    CertParser::from_bytes(bytes)
        .map_err(pgp_error("reading OpenPGP data"))?
        .map(|cert| cert.map_err(pgp_error("reading an OpenPGP certificate")))
        .collect()
}

fn signing_keypair(signer: &Cert) -> Result<openpgp::crypto::KeyPair, E2eError> {
    let policy = StandardPolicy::new();
    signer
        .keys()
        .with_policy(&policy, None)
        .supported()
        .alive()
        .revoked(false)
        .for_signing()
        .unencrypted_secret()
        .next()
        .ok_or_else(|| {
            E2eError::Pgp(format!(
                "{} has no usable (unprotected) signing key",
                signer.fingerprint()
            ))
        })?
        .key()
        .clone()
        .into_keypair()
        .map_err(pgp_error("signing key"))
}

/// A detached, armored signature over `data` (RFC 3156 §5: the data must
/// already be in canonical form). Returns the armor and the `micalg`
/// parameter naming its hash (`pgp-sha512`, …).
pub fn sign_detached(signer: &Cert, data: &[u8]) -> Result<(String, String), E2eError> {
    let keypair = signing_keypair(signer)?;
    let mut out = Vec::new();
    {
        let message = Message::new(&mut out);
        let message = Armorer::new(message)
            .kind(openpgp::armor::Kind::Signature)
            .build()
            .map_err(pgp_error("armor"))?;
        let mut message = PgpSigner::new(message, keypair)
            .map_err(pgp_error("signer"))?
            .detached()
            .build()
            .map_err(pgp_error("signer"))?;
        message
            .write_all(data)
            .map_err(|e| E2eError::Pgp(format!("signing: {e}")))?;
        message.finalize().map_err(pgp_error("signing"))?;
    }
    let signature =
        openpgp::Packet::from_bytes(&out).map_err(pgp_error("reading back the signature"))?;
    let micalg = match signature {
        openpgp::Packet::Signature(sig) => micalg(sig.hash_algo()),
        _ => "pgp-sha512".to_owned(),
    };
    let armor = String::from_utf8(out).map_err(|_| E2eError::Pgp("armor is not UTF-8".into()))?;
    Ok((armor, micalg))
}

/// RFC 3156 §5 / RFC 4880 §9.4 names: `pgp-` and the lower-case hash name.
fn micalg(hash: openpgp::types::HashAlgorithm) -> String {
    use openpgp::types::HashAlgorithm as H;
    match hash {
        H::SHA1 => "pgp-sha1",
        H::SHA224 => "pgp-sha224",
        H::SHA256 => "pgp-sha256",
        H::SHA384 => "pgp-sha384",
        H::SHA512 => "pgp-sha512",
        H::RipeMD => "pgp-ripemd160",
        _ => "pgp-sha512",
    }
    .to_owned()
}

/// Encrypts `data` to `recipients` (their transport-encryption keys); if
/// `signer` is given the data is signed inside the encryption (RFC 3156
/// §6.2). Returns the armored OpenPGP message.
pub fn encrypt(
    data: &[u8],
    recipients: &[&Cert],
    signer: Option<&Cert>,
) -> Result<String, E2eError> {
    let policy = StandardPolicy::new();
    let mut keys = Vec::new();
    for cert in recipients {
        let before = keys.len();
        keys.extend(
            cert.keys()
                .with_policy(&policy, None)
                .supported()
                .alive()
                .revoked(false)
                .for_transport_encryption(),
        );
        if keys.len() == before {
            return Err(E2eError::Pgp(format!(
                "{} has no usable encryption key",
                cert.fingerprint()
            )));
        }
    }
    if keys.is_empty() {
        return Err(E2eError::Pgp("no recipients".into()));
    }
    let keypair = signer.map(signing_keypair).transpose()?;
    let mut out = Vec::new();
    {
        let message = Message::new(&mut out);
        let message = Armorer::new(message).build().map_err(pgp_error("armor"))?;
        let message = Encryptor::for_recipients(message, keys)
            .build()
            .map_err(pgp_error("encryptor"))?;
        let message = match keypair {
            Some(keypair) => PgpSigner::new(message, keypair)
                .map_err(pgp_error("signer"))?
                .build()
                .map_err(pgp_error("signer"))?,
            None => message,
        };
        let mut message = LiteralWriter::new(message)
            .build()
            .map_err(pgp_error("literal data"))?;
        message
            .write_all(data)
            .map_err(|e| E2eError::Pgp(format!("encrypting: {e}")))?;
        message.finalize().map_err(pgp_error("encrypting"))?;
    }
    String::from_utf8(out).map_err(|_| E2eError::Pgp("armor is not UTF-8".into()))
}

/// Verifies a detached signature over `data`.
pub fn verify_detached(data: &[u8], signature: &[u8], keys: &PgpKeys) -> SignatureReport {
    let policy = StandardPolicy::new();
    let helper = Helper::new(keys);
    let outcome = contain_panic(|| {
        DetachedVerifierBuilder::from_bytes(signature)
            .and_then(|builder| builder.with_policy(&policy, None, helper))
            .and_then(|mut verifier| {
                verifier.verify_bytes(data)?;
                Ok(verifier.into_helper())
            })
    });
    match outcome {
        Ok(helper) => helper
            .reports
            .into_iter()
            .reduce(|worse, next| {
                if rank(next.verdict) > rank(worse.verdict) {
                    next
                } else {
                    worse
                }
            })
            .unwrap_or_else(|| bad("the signature part holds no signature")),
        Err(error) => bad(&format!("unreadable signature: {error:#}")),
    }
}

/// Decrypts an OpenPGP message with the secret keys in `keys`. Returns the
/// decryption report, the plaintext if decryption succeeded, and the
/// reports of the signatures inside (RFC 3156 §6.2).
pub fn decrypt(
    ciphertext: &[u8],
    keys: &PgpKeys,
) -> (DecryptionReport, Option<Vec<u8>>, Vec<SignatureReport>) {
    let policy = StandardPolicy::new();
    let helper = Helper::new(keys);
    let mut plaintext = Vec::new();
    let outcome = contain_panic(|| {
        DecryptorBuilder::from_bytes(ciphertext)
            .and_then(|builder| builder.with_policy(&policy, None, helper))
            .and_then(|mut decryptor| {
                std::io::copy(&mut decryptor, &mut plaintext)?;
                Ok(decryptor.into_helper())
            })
    });
    match outcome {
        Ok(helper) => (
            DecryptionReport {
                scheme: Scheme::OpenPgp,
                result: Ok(helper
                    .cipher
                    .map_or_else(|| "decrypted".to_owned(), |c| format!("{c}"))),
            },
            Some(plaintext),
            helper.reports,
        ),
        Err(error) => (
            DecryptionReport {
                scheme: Scheme::OpenPgp,
                result: Err(format!("{error:#}")),
            },
            None,
            Vec::new(),
        ),
    }
}

/// Runs a sequoia parse of untrusted input, turning a panic inside the
/// library into an error. sequoia-openpgp 2.4 unwraps an I/O error while
/// setting up the MDC reader of some truncated or tampered SEIPDv1 packets
/// (`parse.rs`, `PacketParser::decrypt_`); found by
/// `any_flipped_byte_is_never_shown_as_valid`. A message that makes the
/// library panic is malformed, and is reported as such — never as valid.
fn contain_panic<T>(parse: impl FnOnce() -> openpgp::Result<T>) -> openpgp::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse)).unwrap_or_else(|_| {
        Err(
            openpgp::Error::MalformedMessage("the OpenPGP parser failed on this input".into())
                .into(),
        )
    })
}

fn rank(verdict: SignatureVerdict) -> u8 {
    match verdict {
        SignatureVerdict::Good => 0,
        SignatureVerdict::Untrusted => 1,
        SignatureVerdict::UnknownKey => 2,
        SignatureVerdict::Bad => 3,
    }
}

fn bad(detail: &str) -> SignatureReport {
    SignatureReport {
        scheme: Scheme::OpenPgp,
        verdict: SignatureVerdict::Bad,
        signer: None,
        detail: detail.to_owned(),
    }
}

/// The signer as a report shows it.
pub fn signer_of(cert: &Cert) -> Signer {
    Signer {
        fingerprint: cert.fingerprint().to_hex(),
        user_id: primary_user_id(cert),
        identities: identities(cert),
    }
}

struct Helper<'a> {
    keys: &'a PgpKeys,
    reports: Vec<SignatureReport>,
    cipher: Option<SymmetricAlgorithm>,
}

impl<'a> Helper<'a> {
    fn new(keys: &'a PgpKeys) -> Self {
        Self {
            keys,
            reports: Vec::new(),
            cipher: None,
        }
    }
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(ids
            .iter()
            .filter_map(|id| self.keys.find(id))
            .map(|cert| cert.clone().strip_secret_key_material())
            .collect())
    }

    fn check(&mut self, structure: MessageStructure<'_>) -> openpgp::Result<()> {
        for layer in structure {
            if let MessageLayer::SignatureGroup { results } = layer {
                for result in results {
                    self.reports.push(match result {
                        Ok(good) => {
                            let cert = good.ka.cert();
                            let trusted = self.keys.trusted.contains(&cert.fingerprint());
                            SignatureReport {
                                scheme: Scheme::OpenPgp,
                                verdict: if trusted {
                                    SignatureVerdict::Good
                                } else {
                                    SignatureVerdict::Untrusted
                                },
                                signer: Some(signer_of(cert)),
                                detail: if trusted {
                                    format!("good signature by key {}", good.ka.key().fingerprint())
                                } else {
                                    format!(
                                        "valid signature, but {} is not trusted (imxp keys trust {})",
                                        cert.fingerprint(),
                                        cert.fingerprint().to_hex()
                                    )
                                },
                            }
                        }
                        Err(VerificationError::MissingKey { sig }) => SignatureReport {
                            scheme: Scheme::OpenPgp,
                            verdict: SignatureVerdict::UnknownKey,
                            signer: None,
                            detail: format!(
                                "signed by unknown key {}",
                                sig.get_issuers()
                                    .first()
                                    .map_or_else(|| "(no issuer)".to_owned(), ToString::to_string)
                            ),
                        },
                        Err(
                            VerificationError::BadSignature { ka, error, .. }
                            | VerificationError::BadKey { ka, error, .. },
                        ) => SignatureReport {
                            scheme: Scheme::OpenPgp,
                            verdict: SignatureVerdict::Bad,
                            signer: Some(signer_of(ka.cert())),
                            detail: format!("bad signature: {error:#}"),
                        },
                        Err(other) => bad(&other.to_string()),
                    });
                }
            }
        }
        Ok(())
    }
}

impl DecryptionHelper for Helper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        let policy = StandardPolicy::new();
        for pkesk in pkesks {
            for cert in &self.keys.secrets {
                for key in cert
                    .keys()
                    .with_policy(&policy, None)
                    .for_transport_encryption()
                    .for_storage_encryption()
                    .unencrypted_secret()
                {
                    let addressed = pkesk
                        .recipient()
                        .is_none_or(|r| r.aliases(key.key().key_handle()));
                    if !addressed {
                        continue;
                    }
                    let Ok(mut pair) = key.key().clone().into_keypair() else {
                        continue;
                    };
                    if let Some((algo, session_key)) = pkesk.decrypt(&mut pair, sym_algo)
                        && decrypt(algo, &session_key)
                    {
                        self.cipher = algo.or(sym_algo);
                        return Ok(Some(cert.clone()));
                    }
                }
            }
        }
        Err(anyhow::anyhow!(
            "no secret key in the keyring can decrypt this message (recipients: {})",
            pkesks
                .iter()
                .map(|p| p
                    .recipient()
                    .map_or_else(|| "hidden".to_owned(), |r| r.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// Writes `cert` (binary, public parts) for tests and tools.
pub fn cert_bytes(cert: &Cert) -> Result<Vec<u8>, E2eError> {
    let mut out = Vec::new();
    cert.serialize(&mut out)
        .map_err(pgp_error("writing the certificate"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_for(names: &[&str]) -> (Vec<Cert>, PgpKeys) {
        let certs: Vec<Cert> = names
            .iter()
            .map(|n| generate(&ImUri::from_address(n).unwrap()).unwrap())
            .collect();
        let keys = PgpKeys {
            certs: certs
                .iter()
                .map(|c| c.clone().strip_secret_key_material())
                .collect(),
            secrets: certs.clone(),
            trusted: certs.iter().map(Cert::fingerprint).collect(),
        };
        (certs, keys)
    }

    #[test]
    fn detached_signature_verdicts() {
        let (certs, keys) = keys_for(&["alice@a.test"]);
        let data = b"Content-Type: text/plain\r\n\r\nhello\r\n";
        let (armor, micalg) = sign_detached(&certs[0], data).unwrap();
        assert!(armor.starts_with("-----BEGIN PGP SIGNATURE-----"));
        assert!(micalg.starts_with("pgp-sha"));
        let good = verify_detached(data, armor.as_bytes(), &keys);
        assert_eq!(good.verdict, SignatureVerdict::Good, "{}", good.detail);
        let signer = good.signer.unwrap();
        assert_eq!(signer.fingerprint, certs[0].fingerprint().to_hex());
        assert_eq!(signer.user_id.as_deref(), Some("<im:alice@a.test>"));

        let tampered = verify_detached(
            b"Content-Type: text/plain\r\n\r\nhellO\r\n",
            armor.as_bytes(),
            &keys,
        );
        assert_eq!(tampered.verdict, SignatureVerdict::Bad);

        let untrusted = PgpKeys {
            trusted: HashSet::new(),
            ..keys
        };
        assert_eq!(
            verify_detached(data, armor.as_bytes(), &untrusted).verdict,
            SignatureVerdict::Untrusted
        );
        let unknown = verify_detached(data, armor.as_bytes(), &PgpKeys::default());
        assert_eq!(unknown.verdict, SignatureVerdict::UnknownKey);
        assert!(unknown.detail.contains("unknown key"));
    }

    #[test]
    fn sign_then_encrypt_round_trip() {
        let (certs, keys) = keys_for(&["alice@a.test", "bob@b.test"]);
        let alice = ImUri::from_address("alice@a.test").unwrap();
        let bob = ImUri::from_address("bob@b.test").unwrap();
        let ciphertext = encrypt(
            b"secret text",
            &[keys.cert_for(&bob).unwrap()],
            Some(keys.secret_for(&alice).unwrap()),
        )
        .unwrap();
        let bob_only = PgpKeys {
            secrets: vec![certs[1].clone()],
            ..keys.clone()
        };
        let (report, plaintext, signatures) = decrypt(ciphertext.as_bytes(), &bob_only);
        assert!(report.result.is_ok(), "{report:?}");
        assert_eq!(plaintext.as_deref(), Some(&b"secret text"[..]));
        assert_eq!(signatures.len(), 1);
        assert_eq!(signatures[0].verdict, SignatureVerdict::Good);
        assert_eq!(
            signatures[0].signer.as_ref().unwrap().identities,
            vec![alice]
        );

        let alice_only = PgpKeys {
            secrets: vec![certs[0].clone()],
            ..keys
        };
        let (report, plaintext, _) = decrypt(ciphertext.as_bytes(), &alice_only);
        assert!(report.result.unwrap_err().contains("no secret key"));
        assert!(plaintext.is_none());
    }

    #[test]
    fn armored_keys_read_back() {
        let (certs, _) = keys_for(&["carol@c.test"]);
        let public = read_certs(&armored_cert(&certs[0]).unwrap()).unwrap();
        assert!(!public[0].is_tsk());
        let secret = read_certs(&armored_secret(&certs[0]).unwrap()).unwrap();
        assert!(secret[0].is_tsk());
        assert_eq!(
            identities(&secret[0]),
            vec![ImUri::from_address("carol@c.test").unwrap()]
        );
        assert!(read_certs(b"not a key").is_err());
    }
}
