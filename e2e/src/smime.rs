//! S/MIME 4.0 (RFC 8551) with OpenSSL's CMS (RFC 5652): signed data, both
//! detached (`multipart/signed` with `application/pkcs7-signature`, §3.5.3)
//! and opaque (`application/pkcs7-mime; smime-type=signed-data`, §3.5.2),
//! enveloped data (§3.3) and authenticated enveloped data (RFC 5083, §3.3
//! with AES-GCM), signature verification with certificate-chain validation
//! against a trust store, and certificates that name an `im:` identity in
//! their subjectAltName (RFC 3860 §6).

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

use crate::error::E2eError;
use crate::uri::ImUri;
use crate::verdict::{DecryptionReport, Scheme, SignatureReport, SignatureVerdict, Signer};

/// The `protocol` of S/MIME `multipart/signed` (RFC 8551 §3.5.3).
pub const PROTOCOL_SIGNATURE: &str = "application/pkcs7-signature";

/// The media type of CMS objects in MIME (RFC 8551 §3.2).
pub const PKCS7_MIME: &str = "application/pkcs7-mime";

/// The `micalg` for SHA-256 (RFC 8551 §3.5.3.2), the digest OpenSSL uses
/// with our RSA keys.
pub const MICALG: &str = "sha-256";

fn smime_error(context: &str) -> impl FnOnce(openssl::error::ErrorStack) -> E2eError + '_ {
    move |error| E2eError::Smime(format!("{context}: {error}"))
}

/// The content encryption of an enveloped message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Envelope {
    /// EnvelopedData with AES-256-CBC, for older agents: CBC has no
    /// integrity of its own, so only a signature inside protects the
    /// content from changes.
    Enveloped,
    /// AuthEnvelopedData with AES-256-GCM (RFC 5083), the S/MIME 4.0
    /// default (RFC 8551 §2.7: sending agents MUST support AES-GCM).
    #[default]
    AuthEnveloped,
}

impl Envelope {
    /// The `smime-type` parameter (RFC 8551 §3.2.2).
    pub fn smime_type(self) -> &'static str {
        match self {
            Self::Enveloped => "enveloped-data",
            Self::AuthEnveloped => "authEnveloped-data",
        }
    }
}

/// The S/MIME certificates and keys a reader or writer can use.
#[derive(Default)]
pub struct SmimeKeys {
    /// Known certificates (own and imported), for encrypting and as extra
    /// certificates when verifying.
    pub certs: Vec<X509>,
    /// Own certificates with their private keys.
    pub keys: Vec<(X509, PKey<Private>)>,
    /// Trust anchors: CA (or self-signed) certificates that signer chains
    /// must lead to.
    pub anchors: Vec<X509>,
}

impl std::fmt::Debug for SmimeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmimeKeys")
            .field("certs", &self.certs.len())
            .field("keys", &self.keys.len())
            .field("anchors", &self.anchors.len())
            .finish()
    }
}

impl SmimeKeys {
    /// The certificate naming `identity` (or, for a subaddress, its user),
    /// for encrypting to it.
    pub fn cert_for(&self, identity: &ImUri) -> Result<&X509, E2eError> {
        let all = || {
            self.certs
                .iter()
                .chain(self.keys.iter().map(|(cert, _)| cert))
        };
        all()
            .find(|cert| identities(cert).contains(identity))
            .or_else(|| all().find(|cert| identities(cert).iter().any(|i| i.covers(identity))))
            .ok_or_else(|| E2eError::NoKey {
                kind: "S/MIME certificate",
                identity: identity.to_string(),
            })
    }

    /// The certificate and private key naming `identity` (or, for a
    /// subaddress, its user), for signing.
    pub fn key_for(&self, identity: &ImUri) -> Result<(&X509, &PKey<Private>), E2eError> {
        self.keys
            .iter()
            .find(|(cert, _)| identities(cert).contains(identity))
            .or_else(|| {
                self.keys
                    .iter()
                    .find(|(cert, _)| identities(cert).iter().any(|i| i.covers(identity)))
            })
            .map(|(cert, key)| (cert, key))
            .ok_or_else(|| E2eError::NoKey {
                kind: "S/MIME private key",
                identity: identity.to_string(),
            })
    }

    fn store(&self) -> Result<X509Store, E2eError> {
        let mut builder = X509StoreBuilder::new().map_err(smime_error("trust store"))?;
        for anchor in &self.anchors {
            // A duplicate anchor is not an error worth failing for.
            let _ = builder.add_cert(anchor.clone());
        }
        Ok(builder.build())
    }

    fn extra_certs(&self) -> Result<Stack<X509>, E2eError> {
        let mut stack = Stack::new().map_err(smime_error("certificate stack"))?;
        for cert in self
            .certs
            .iter()
            .chain(self.keys.iter().map(|(cert, _)| cert))
        {
            stack
                .push(cert.clone())
                .map_err(smime_error("certificate stack"))?;
        }
        Ok(stack)
    }
}

/// The `im:` identities in a certificate's subjectAltName URIs.
pub fn identities(cert: &X509) -> Vec<ImUri> {
    cert.subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|name| name.uri())
                .filter_map(|uri| ImUri::parse(uri).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The SHA-256 fingerprint of a certificate, upper-case hex.
pub fn fingerprint(cert: &X509) -> String {
    cert.digest(MessageDigest::sha256())
        .map(|digest| digest.iter().map(|b| format!("{b:02X}")).collect())
        .unwrap_or_default()
}

/// The subject's common name.
pub fn common_name(cert: &X509) -> Option<String> {
    cert.subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .and_then(|entry| entry.data().to_string().ok())
}

/// The signer as a report shows it.
pub fn signer_of(cert: &X509) -> Signer {
    Signer {
        fingerprint: fingerprint(cert),
        user_id: common_name(cert),
        identities: identities(cert),
    }
}

/// An RSA-2048 key.
pub fn generate_key() -> Result<PKey<Private>, E2eError> {
    let rsa = Rsa::generate(2048).map_err(smime_error("generating an RSA key"))?;
    PKey::from_rsa(rsa).map_err(smime_error("generating an RSA key"))
}

fn serial() -> Result<openssl::asn1::Asn1Integer, E2eError> {
    let mut bn = BigNum::new().map_err(smime_error("serial number"))?;
    bn.rand(127, MsbOption::MAYBE_ZERO, false)
        .map_err(smime_error("serial number"))?;
    bn.to_asn1_integer().map_err(smime_error("serial number"))
}

/// A certificate authority for S/MIME certificates (self-signed, ten
/// years), e.g. a test CA.
pub fn generate_ca(name: &str) -> Result<(X509, PKey<Private>), E2eError> {
    let key = generate_key()?;
    let context = "building the CA certificate";
    let mut subject = X509NameBuilder::new().map_err(smime_error(context))?;
    subject
        .append_entry_by_text("CN", name)
        .map_err(smime_error(context))?;
    let subject = subject.build();
    let mut builder = X509Builder::new().map_err(smime_error(context))?;
    builder.set_version(2).map_err(smime_error(context))?;
    let serial = serial()?;
    builder
        .set_serial_number(&serial)
        .map_err(smime_error(context))?;
    builder
        .set_subject_name(&subject)
        .map_err(smime_error(context))?;
    builder
        .set_issuer_name(&subject)
        .map_err(smime_error(context))?;
    builder.set_pubkey(&key).map_err(smime_error(context))?;
    set_validity(&mut builder, 3650)?;
    let extensions = [
        BasicConstraints::new().critical().ca().build(),
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build(),
        SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None)),
    ];
    for extension in extensions {
        builder
            .append_extension(extension.map_err(smime_error(context))?)
            .map_err(smime_error(context))?;
    }
    builder
        .sign(&key, MessageDigest::sha256())
        .map_err(smime_error(context))?;
    Ok((builder.build(), key))
}

fn set_validity(builder: &mut X509Builder, days: u32) -> Result<(), E2eError> {
    let context = "certificate validity";
    let not_before = Asn1Time::days_from_now(0).map_err(smime_error(context))?;
    let not_after = Asn1Time::days_from_now(days).map_err(smime_error(context))?;
    builder
        .set_not_before(&not_before)
        .map_err(smime_error(context))?;
    builder
        .set_not_after(&not_after)
        .map_err(smime_error(context))
}

/// An S/MIME certificate for `identity` (subjectAltName
/// `URI:im:local@domain`, RFC 3860 §6; emailProtection), two years,
/// signed by `issuer` or, without one, self-signed.
pub fn generate_cert(
    identity: &ImUri,
    issuer: Option<(&X509, &PKey<Private>)>,
) -> Result<(X509, PKey<Private>), E2eError> {
    let key = generate_key()?;
    let context = "building the certificate";
    let mut subject = X509NameBuilder::new().map_err(smime_error(context))?;
    subject
        .append_entry_by_text("CN", &identity.address())
        .map_err(smime_error(context))?;
    let subject = subject.build();
    let mut builder = X509Builder::new().map_err(smime_error(context))?;
    builder.set_version(2).map_err(smime_error(context))?;
    let serial = serial()?;
    builder
        .set_serial_number(&serial)
        .map_err(smime_error(context))?;
    builder
        .set_subject_name(&subject)
        .map_err(smime_error(context))?;
    match issuer {
        Some((ca, _)) => builder.set_issuer_name(ca.subject_name()),
        None => builder.set_issuer_name(&subject),
    }
    .map_err(smime_error(context))?;
    builder.set_pubkey(&key).map_err(smime_error(context))?;
    set_validity(&mut builder, 730)?;
    let extensions = [
        BasicConstraints::new().critical().build(),
        KeyUsage::new()
            .critical()
            .digital_signature()
            .non_repudiation()
            .key_encipherment()
            .build(),
        ExtendedKeyUsage::new().email_protection().build(),
        SubjectAlternativeName::new()
            .uri(&identity.to_string())
            .build(&builder.x509v3_context(issuer.map(|(ca, _)| &**ca), None)),
        SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None)),
    ];
    for extension in extensions {
        builder
            .append_extension(extension.map_err(smime_error(context))?)
            .map_err(smime_error(context))?;
    }
    if let Some((ca, _)) = issuer {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .issuer(false)
            .build(&builder.x509v3_context(Some(ca), None))
            .map_err(smime_error(context))?;
        builder
            .append_extension(aki)
            .map_err(smime_error(context))?;
    }
    let signing_key = issuer.map_or(&key, |(_, ca_key)| ca_key);
    builder
        .sign(signing_key, MessageDigest::sha256())
        .map_err(smime_error(context))?;
    Ok((builder.build(), key))
}

/// A CMS SignedData over `data` (DER). `detached` leaves the content out
/// (for `multipart/signed`); otherwise the content is inside (opaque
/// signing). The data is signed as it is (it is already canonical).
pub fn sign(
    data: &[u8],
    cert: &X509,
    key: &PKey<Private>,
    detached: bool,
) -> Result<Vec<u8>, E2eError> {
    let mut flags = CMSOptions::BINARY;
    if detached {
        flags |= CMSOptions::DETACHED;
    }
    CmsContentInfo::sign(Some(cert), Some(key), None, Some(data), flags)
        .and_then(|cms| cms.to_der())
        .map_err(smime_error("signing"))
}

/// A CMS EnvelopedData or AuthEnvelopedData for `recipients` (DER).
pub fn encrypt(data: &[u8], recipients: &[&X509], envelope: Envelope) -> Result<Vec<u8>, E2eError> {
    if recipients.is_empty() {
        return Err(E2eError::Smime("no recipients".into()));
    }
    let mut stack = Stack::new().map_err(smime_error("recipients"))?;
    for cert in recipients {
        stack
            .push((*cert).clone())
            .map_err(smime_error("recipients"))?;
    }
    let cipher = match envelope {
        Envelope::Enveloped => Cipher::aes_256_cbc(),
        Envelope::AuthEnveloped => Cipher::aes_256_gcm(),
    };
    CmsContentInfo::encrypt(&stack, data, cipher, CMSOptions::BINARY)
        .and_then(|cms| cms.to_der())
        .map_err(smime_error(match envelope {
            Envelope::Enveloped => "encrypting (EnvelopedData)",
            Envelope::AuthEnveloped => "encrypting (AuthEnvelopedData, AES-256-GCM)",
        }))
}

/// Decrypts an EnvelopedData or AuthEnvelopedData (DER) with the first
/// own key that opens it.
pub fn decrypt(der: &[u8], keys: &SmimeKeys) -> (DecryptionReport, Option<Vec<u8>>) {
    let report = |result| DecryptionReport {
        scheme: Scheme::Smime,
        result,
    };
    let cms = match CmsContentInfo::from_der(der) {
        Ok(cms) => cms,
        Err(error) => return (report(Err(format!("unreadable CMS object: {error}"))), None),
    };
    if keys.keys.is_empty() {
        return (
            report(Err("no S/MIME private key in the keyring".into())),
            None,
        );
    }
    let mut last_error = String::new();
    for (cert, key) in &keys.keys {
        match cms.decrypt(key, cert) {
            Ok(plaintext) => {
                return (
                    report(Ok(format!("decrypted with {}", fingerprint(cert)))),
                    Some(plaintext),
                );
            }
            Err(error) => last_error = error.to_string(),
        }
    }
    (
        report(Err(format!(
            "none of the {} private keys in the keyring opens this message: {last_error}",
            keys.keys.len()
        ))),
        None,
    )
}

/// Verifies a SignedData (DER). `detached` is the signed content of a
/// `multipart/signed`; without it the content is inside, and is returned.
/// The signature is checked first on its own, then the signer's chain
/// against the trust anchors.
pub fn verify(
    der: &[u8],
    detached: Option<&[u8]>,
    keys: &SmimeKeys,
) -> (SignatureReport, Option<Vec<u8>>) {
    let report = |verdict, signer, detail: String| SignatureReport {
        scheme: Scheme::Smime,
        verdict,
        signer,
        detail,
    };
    let parse = || CmsContentInfo::from_der(der);
    let (extra, store) = match (keys.extra_certs(), keys.store()) {
        (Ok(extra), Ok(store)) => (extra, store),
        (Err(error), _) | (_, Err(error)) => {
            return (report(SignatureVerdict::Bad, None, error.to_string()), None);
        }
    };
    let signer = signer_cert(der, &extra).map(|cert| signer_of(&cert));
    // 1. The signature alone.
    let mut content = Vec::new();
    let checked = parse().and_then(|mut cms| {
        cms.verify(
            Some(&extra),
            None,
            detached,
            Some(&mut content),
            CMSOptions::BINARY | CMSOptions::NOVERIFY,
        )
    });
    if let Err(error) = checked {
        let text = error.to_string();
        let unknown = text.contains("signer certificate not found");
        return (
            report(
                if unknown {
                    SignatureVerdict::UnknownKey
                } else {
                    SignatureVerdict::Bad
                },
                signer,
                if unknown {
                    format!(
                        "the signer's certificate is neither in the message nor in the keyring: {text}"
                    )
                } else {
                    format!("bad signature: {text}")
                },
            ),
            None,
        );
    }
    let content = detached.is_none().then_some(content);
    // 2. The chain.
    let chained = parse().and_then(|mut cms| {
        cms.verify(
            Some(&extra),
            Some(&store),
            detached,
            None,
            CMSOptions::BINARY,
        )
    });
    match chained {
        Ok(()) => {
            let detail = format!(
                "good signature; certificate chain valid ({} trust anchors)",
                keys.anchors.len()
            );
            (report(SignatureVerdict::Good, signer, detail), content)
        }
        Err(error) => (
            report(
                SignatureVerdict::Untrusted,
                signer,
                format!("valid signature, but the certificate is not trusted: {error}"),
            ),
            content,
        ),
    }
}

/// The signer's certificate of a SignedData, read through the PKCS #7
/// parser (the same structure for issuer-and-serial signer identifiers).
fn signer_cert(der: &[u8], extra: &Stack<X509>) -> Option<X509> {
    let pkcs7 = Pkcs7::from_der(der).ok()?;
    let signers = pkcs7.signers(extra, Pkcs7Flags::empty()).ok()?;
    signers.iter().next().map(|cert| cert.to_owned())
}

/// Reads every PEM certificate in `pem`.
pub fn read_certs(pem: &[u8]) -> Result<Vec<X509>, E2eError> {
    X509::stack_from_pem(pem).map_err(smime_error("reading PEM certificates"))
}

/// Reads a PEM private key.
pub fn read_key(pem: &[u8]) -> Result<PKey<Private>, E2eError> {
    PKey::private_key_from_pem(pem).map_err(smime_error("reading a PEM private key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(address: &str) -> ImUri {
        ImUri::from_address(address).unwrap()
    }

    #[test]
    fn ca_signed_certificates_verify_and_name_the_identity() {
        let (ca, ca_key) = generate_ca("imxp test CA").unwrap();
        let (alice, alice_key) = generate_cert(&uri("alice@a.test"), Some((&ca, &ca_key))).unwrap();
        assert_eq!(identities(&alice), vec![uri("alice@a.test")]);
        let keys = SmimeKeys {
            certs: vec![],
            keys: vec![(alice.clone(), alice_key.clone())],
            anchors: vec![ca],
        };
        let data = b"Content-Type: text/plain\r\n\r\nhi\r\n";
        let detached = sign(data, &alice, &alice_key, true).unwrap();
        let (report, content) = verify(&detached, Some(data), &keys);
        assert_eq!(report.verdict, SignatureVerdict::Good, "{}", report.detail);
        assert!(content.is_none());
        let signer = report.signer.unwrap();
        assert_eq!(signer.identities, vec![uri("alice@a.test")]);
        assert_eq!(signer.fingerprint, fingerprint(&alice));

        let (report, _) = verify(
            &detached,
            Some(b"Content-Type: text/plain\r\n\r\nho\r\n"),
            &keys,
        );
        assert_eq!(report.verdict, SignatureVerdict::Bad);

        let opaque = sign(data, &alice, &alice_key, false).unwrap();
        let (report, content) = verify(&opaque, None, &keys);
        assert_eq!(report.verdict, SignatureVerdict::Good, "{}", report.detail);
        assert_eq!(content.as_deref(), Some(&data[..]));

        let untrusting = SmimeKeys::default();
        let (report, _) = verify(&detached, Some(data), &untrusting);
        assert_eq!(
            report.verdict,
            SignatureVerdict::Untrusted,
            "{}",
            report.detail
        );
    }

    #[test]
    fn self_signed_certificate_as_its_own_anchor() {
        let (bob, bob_key) = generate_cert(&uri("bob@b.test"), None).unwrap();
        let keys = SmimeKeys {
            certs: vec![],
            keys: vec![(bob.clone(), bob_key.clone())],
            anchors: vec![bob.clone()],
        };
        let signed = sign(b"x", &bob, &bob_key, true).unwrap();
        let (report, _) = verify(&signed, Some(b"x"), &keys);
        assert_eq!(report.verdict, SignatureVerdict::Good, "{}", report.detail);
    }

    #[test]
    fn enveloped_and_auth_enveloped_round_trip() {
        let (bob, bob_key) = generate_cert(&uri("bob@b.test"), None).unwrap();
        let (eve, eve_key) = generate_cert(&uri("eve@e.test"), None).unwrap();
        for envelope in [Envelope::Enveloped, Envelope::AuthEnveloped] {
            let der = encrypt(b"secret", &[&bob], envelope).unwrap();
            let bob_keys = SmimeKeys {
                keys: vec![(bob.clone(), bob_key.clone())],
                ..SmimeKeys::default()
            };
            let (report, plaintext) = decrypt(&der, &bob_keys);
            assert!(report.result.is_ok(), "{envelope:?}: {report:?}");
            assert_eq!(plaintext.as_deref(), Some(&b"secret"[..]));
            let eve_keys = SmimeKeys {
                keys: vec![(eve.clone(), eve_key.clone())],
                ..SmimeKeys::default()
            };
            let (report, plaintext) = decrypt(&der, &eve_keys);
            assert!(report.result.is_err());
            assert!(plaintext.is_none());
        }
    }
}
