//! The message level: compose a Message/CPIM around a MIME entity, protect
//! it (sign, encrypt, or both) with OpenPGP or S/MIME, and open whatever
//! arrives into an [`Opened`] report.
//!
//! Forms written:
//!
//! | protection | OpenPGP (RFC 3156) | S/MIME (RFC 8551) |
//! |---|---|---|
//! | sign | `multipart/signed; protocol="application/pgp-signature"` (§5) | `multipart/signed; protocol="application/pkcs7-signature"` (§3.5.3), or opaque `application/pkcs7-mime; smime-type=signed-data` (§3.5.2) |
//! | encrypt | `multipart/encrypted; protocol="application/pgp-encrypted"` (§4) | `application/pkcs7-mime; smime-type=enveloped-data` (§3.3) or `authEnveloped-data` (RFC 5083) |
//! | both | one OpenPGP message, signed then encrypted (§6.2) | `multipart/signed` inside the envelope (§3.7) |
//!
//! The protected content is always a complete `message/cpim` entity, so
//! the CPIM headers (`From`, `To`, `DateTime`) are covered too (RFC 3862
//! §5.2, RFC 3860 §6). Signed content is put in canonical form first (CRLF;
//! the inner entity is 7-bit, see [`crate::mime::text_entity`]).
//!
//! Reading accepts all of the above, RFC 3156 §6.1 nesting, and the
//! `application/x-pkcs7-*` names of older S/MIME agents.

use crate::cpim::{self, CpimAddress, CpimBuilder, CpimMessage};
use crate::error::E2eError;
use crate::keyring::Keys;
use crate::mime::{self, Part};
use crate::pgp;
use crate::smime::{self, Envelope};
use crate::uri::ImUri;
use crate::verdict::{DecryptionReport, Opened, Scheme, SignatureReport};

/// How deep protection layers may nest before reading gives up.
const MAX_DEPTH: usize = 8;

/// What to do to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protection {
    /// OpenPGP or S/MIME.
    pub scheme: Scheme,
    /// Sign with the sender's key.
    pub sign: bool,
    /// Encrypt to every recipient's key.
    pub encrypt: bool,
    /// S/MIME only: sign opaquely (`signed-data`) rather than detached.
    pub opaque: bool,
    /// S/MIME only: the envelope.
    pub envelope: Envelope,
}

impl Protection {
    /// Signing and encryption with `scheme`, detached S/MIME signatures,
    /// AuthEnvelopedData.
    pub fn new(scheme: Scheme, sign: bool, encrypt: bool) -> Self {
        Self {
            scheme,
            sign,
            encrypt,
            opaque: false,
            envelope: Envelope::default(),
        }
    }
}

/// A protected entity: the Content-Type value and the body octets, as an
/// APEX content part carries them (RFC 3340 §4.1: the body travels
/// `binary`; CMS objects are DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    /// The Content-Type header value (one line).
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Protected {
    /// A stand-alone MIME entity for mail tools (`gpg`, `openssl cms`):
    /// `MIME-Version`, `Content-Type`, and for CMS objects base64 with
    /// `Content-Transfer-Encoding: base64` and `Content-Disposition`.
    pub fn to_entity(&self) -> Vec<u8> {
        let mut out = b"MIME-Version: 1.0\r\n".to_vec();
        out.extend_from_slice(&self.inner_entity());
        out
    }

    /// The entity as it is nested inside another layer.
    fn inner_entity(&self) -> Vec<u8> {
        if self.is_cms() {
            let mut out = format!(
                "Content-Type: {}\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n",
                self.content_type
            )
            .into_bytes();
            out.extend_from_slice(&mime::base64_lines(&self.body));
            out
        } else {
            mime::join_entity(&self.content_type, &self.body)
        }
    }

    fn is_cms(&self) -> bool {
        self.content_type
            .to_ascii_lowercase()
            .starts_with(smime::PKCS7_MIME)
    }
}

/// A `message/cpim` entity from `from` to `to` with a `DateTime` of now,
/// an optional `Subject`, and `content` (a MIME entity) inside.
pub fn compose(
    from: &ImUri,
    to: &[ImUri],
    subject: Option<&str>,
    content: &[u8],
) -> Result<CpimMessage, E2eError> {
    let mut builder = CpimBuilder::new().from(&CpimAddress::new(from.to_string()));
    for recipient in to {
        builder = builder.to(&CpimAddress::new(recipient.to_string()));
    }
    builder = builder.date_time(&cpim::now_rfc3339());
    if let Some(subject) = subject {
        builder = builder.subject(subject, None);
    }
    builder.build(content)
}

/// Protects `entity` (a complete MIME entity, normally
/// [`CpimMessage::to_entity`]) from `sender` for `recipients`.
pub fn protect(
    entity: &[u8],
    protection: &Protection,
    sender: &ImUri,
    recipients: &[ImUri],
    keys: &Keys,
) -> Result<Protected, E2eError> {
    let canonical = mime::canonicalize(entity);
    if !protection.sign && !protection.encrypt {
        let split = mime::split_entity(&canonical)?;
        let content_type = split
            .header("content-type")
            .unwrap_or_else(|| "text/plain".to_owned());
        return Ok(Protected {
            content_type,
            body: split.body.to_vec(),
        });
    }
    match protection.scheme {
        Scheme::OpenPgp => protect_pgp(&canonical, protection, sender, recipients, keys),
        Scheme::Smime => protect_smime(&canonical, protection, sender, recipients, keys),
    }
}

fn protect_pgp(
    canonical: &[u8],
    protection: &Protection,
    sender: &ImUri,
    recipients: &[ImUri],
    keys: &Keys,
) -> Result<Protected, E2eError> {
    let signer = protection
        .sign
        .then(|| keys.pgp.secret_for(sender))
        .transpose()?;
    if protection.encrypt {
        let certs = recipients
            .iter()
            .map(|r| keys.pgp.cert_for(r))
            .collect::<Result<Vec<_>, _>>()?;
        let armor = pgp::encrypt(canonical, &certs, signer)?;
        let (content_type, body) = mime::multipart(
            "multipart/encrypted",
            &[("protocol", pgp::PROTOCOL_ENCRYPTED)],
            &[
                Part::Ascii {
                    content_type: pgp::PROTOCOL_ENCRYPTED,
                    headers: vec![(
                        "Content-Description",
                        "PGP/MIME version identification".to_owned(),
                    )],
                    text: "Version: 1\r\n",
                },
                Part::Ascii {
                    content_type: "application/octet-stream; name=\"encrypted.asc\"",
                    headers: vec![
                        (
                            "Content-Description",
                            "OpenPGP encrypted message".to_owned(),
                        ),
                        (
                            "Content-Disposition",
                            "inline; filename=\"encrypted.asc\"".to_owned(),
                        ),
                    ],
                    text: &armor,
                },
            ],
        );
        return Ok(Protected { content_type, body });
    }
    let signer = signer.unwrap_or_else(|| unreachable!("sign or encrypt is set"));
    let (armor, micalg) = pgp::sign_detached(signer, canonical)?;
    let (content_type, body) = mime::multipart(
        "multipart/signed",
        &[("micalg", &micalg), ("protocol", pgp::PROTOCOL_SIGNATURE)],
        &[
            Part::Raw(canonical),
            Part::Ascii {
                content_type: "application/pgp-signature; name=\"signature.asc\"",
                headers: vec![(
                    "Content-Description",
                    "OpenPGP digital signature".to_owned(),
                )],
                text: &armor,
            },
        ],
    );
    Ok(Protected { content_type, body })
}

fn protect_smime(
    canonical: &[u8],
    protection: &Protection,
    sender: &ImUri,
    recipients: &[ImUri],
    keys: &Keys,
) -> Result<Protected, E2eError> {
    let signed = if protection.sign {
        let (cert, key) = keys.smime.key_for(sender)?;
        Some(if protection.opaque {
            Protected {
                content_type: format!(
                    "{}; smime-type=signed-data; name=\"smime.p7m\"",
                    smime::PKCS7_MIME
                ),
                body: smime::sign(canonical, cert, key, false)?,
            }
        } else {
            let der = smime::sign(canonical, cert, key, true)?;
            let (content_type, body) = mime::multipart(
                "multipart/signed",
                &[
                    ("protocol", smime::PROTOCOL_SIGNATURE),
                    ("micalg", smime::MICALG),
                ],
                &[
                    Part::Raw(canonical),
                    Part::Base64 {
                        content_type: "application/pkcs7-signature; name=\"smime.p7s\"",
                        headers: vec![(
                            "Content-Disposition",
                            "attachment; filename=\"smime.p7s\"".to_owned(),
                        )],
                        body: &der,
                    },
                ],
            );
            Protected { content_type, body }
        })
    } else {
        None
    };
    if !protection.encrypt {
        return Ok(signed.unwrap_or_else(|| unreachable!("sign or encrypt is set")));
    }
    let plaintext = match &signed {
        Some(signed) => signed.inner_entity(),
        None => canonical.to_vec(),
    };
    let certs = recipients
        .iter()
        .map(|r| keys.smime.cert_for(r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Protected {
        content_type: format!(
            "{}; smime-type={}; name=\"smime.p7m\"",
            smime::PKCS7_MIME,
            protection.envelope.smime_type()
        ),
        body: smime::encrypt(&plaintext, &certs, protection.envelope)?,
    })
}

/// Opens a received entity (headers and body; an APEX content part as it
/// arrived): decrypts and verifies every layer, finds the Message/CPIM
/// wrapper and the content, and compares the signer with the CPIM `From`.
/// Never fails: everything that goes wrong is in the report, and its
/// [`Opened::verdict`] is then [`crate::Verdict::Invalid`].
pub fn open(entity: &[u8], keys: &Keys) -> Opened {
    let mut opened = Opened::default();
    let mut cpim_signed = false;
    walk(entity, keys, &mut opened, &mut cpim_signed, 0);
    if let Some(message) = opened.cpim.clone() {
        check_cpim(&message, cpim_signed, &mut opened);
    }
    opened
}

fn walk(entity: &[u8], keys: &Keys, opened: &mut Opened, cpim_signed: &mut bool, depth: usize) {
    if depth > MAX_DEPTH {
        opened.error = Some(format!("protection layers nested deeper than {MAX_DEPTH}"));
        return;
    }
    if let Err(error) = walk_layer(entity, keys, opened, cpim_signed, depth) {
        opened.content = None;
        opened.error = Some(error.to_string());
    }
}

fn walk_layer(
    entity: &[u8],
    keys: &Keys,
    opened: &mut Opened,
    cpim_signed: &mut bool,
    depth: usize,
) -> Result<(), E2eError> {
    let split = mime::split_entity(entity)?;
    let media_type = split.media_type().to_owned();
    let protocol = split.param("protocol").map(str::to_ascii_lowercase);
    match media_type.as_str() {
        "multipart/signed" => {
            let parts = two_parts(&split, "multipart/signed")?;
            let signature = mime::split_entity(parts[1])?;
            let signature_bytes = signature.decoded_body()?;
            let report = match protocol.as_deref() {
                Some(pgp::PROTOCOL_SIGNATURE) => {
                    pgp::verify_detached(parts[0], &signature_bytes, &keys.pgp)
                }
                Some(smime::PROTOCOL_SIGNATURE | "application/x-pkcs7-signature") => {
                    smime::verify(&signature_bytes, Some(parts[0]), &keys.smime).0
                }
                other => {
                    return Err(E2eError::Mime(format!(
                        "multipart/signed with unknown protocol {other:?}"
                    )));
                }
            };
            opened.signatures.push(report);
            walk(parts[0], keys, opened, cpim_signed, depth + 1);
        }
        "multipart/encrypted" => {
            if protocol.as_deref() != Some(pgp::PROTOCOL_ENCRYPTED) {
                return Err(E2eError::Mime(format!(
                    "multipart/encrypted with unknown protocol {protocol:?}"
                )));
            }
            let parts = two_parts(&split, "multipart/encrypted")?;
            let control = mime::split_entity(parts[0])?;
            let control_body = control.decoded_body()?;
            if control.media_type() != pgp::PROTOCOL_ENCRYPTED
                || !String::from_utf8_lossy(&control_body).contains("Version: 1")
            {
                return Err(E2eError::Mime(
                    "the first part of multipart/encrypted is not application/pgp-encrypted \"Version: 1\" (RFC 3156 §4)"
                        .into(),
                ));
            }
            let ciphertext = mime::split_entity(parts[1])?.decoded_body()?;
            let (report, plaintext, signatures) = pgp::decrypt(&ciphertext, &keys.pgp);
            record_decryption(opened, report);
            opened.signatures.extend(signatures);
            match plaintext {
                Some(plaintext) => walk(&plaintext, keys, opened, cpim_signed, depth + 1),
                None => opened.content = None,
            }
        }
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => {
            let der = split.decoded_body()?;
            let smime_type = split.param("smime-type").map(str::to_ascii_lowercase);
            let signed = match smime_type.as_deref() {
                Some("signed-data") => true,
                Some("enveloped-data" | "authenveloped-data") => false,
                Some(other) => {
                    return Err(E2eError::Smime(format!("unsupported smime-type {other:?}")));
                }
                // Older agents omit smime-type: ask the DER.
                None => openssl::pkcs7::Pkcs7::from_der(&der)
                    .ok()
                    .and_then(|p| {
                        p.type_()
                            .map(|t| t.nid() == openssl::nid::Nid::PKCS7_SIGNED)
                    })
                    .unwrap_or(false),
            };
            if signed {
                let (report, content) = smime::verify(&der, None, &keys.smime);
                opened.signatures.push(report);
                match content {
                    Some(content) => walk(&content, keys, opened, cpim_signed, depth + 1),
                    None => opened.content = None,
                }
            } else {
                let (report, plaintext) = smime::decrypt(&der, &keys.smime);
                record_decryption(opened, report);
                match plaintext {
                    Some(plaintext) => walk(&plaintext, keys, opened, cpim_signed, depth + 1),
                    None => opened.content = None,
                }
            }
        }
        cpim::MEDIA_TYPE if opened.cpim.is_none() => {
            let message = CpimMessage::parse(split.body)?;
            *cpim_signed = !opened.signatures.is_empty();
            let content = message.content().to_vec();
            opened.cpim = Some(message);
            walk(&content, keys, opened, cpim_signed, depth + 1);
        }
        _ => {
            if opened.decryptions.iter().all(|d| d.result.is_ok()) {
                opened.content = Some(entity.to_vec());
            }
        }
    }
    Ok(())
}

fn record_decryption(opened: &mut Opened, report: DecryptionReport) {
    opened.decryptions.push(report);
}

fn two_parts<'a>(split: &mime::Entity<'a>, what: &str) -> Result<Vec<&'a [u8]>, E2eError> {
    let boundary = split
        .param("boundary")
        .ok_or_else(|| E2eError::Mime(format!("{what} without a boundary parameter")))?;
    let parts = mime::split_multipart(split.body, boundary)?;
    if parts.len() != 2 {
        return Err(E2eError::Mime(format!(
            "{what} must have exactly two parts (RFC 1847 §2), found {}",
            parts.len()
        )));
    }
    Ok(parts)
}

fn check_cpim(message: &CpimMessage, cpim_signed: bool, opened: &mut Opened) {
    let required = message.unsupported_required();
    if !required.is_empty() {
        opened.warnings.push(format!(
            "the message requires features this reader does not understand: {} (RFC 3862 §4.7)",
            required.join(", ")
        ));
    }
    if let Err(error) = message.date_time() {
        opened.warnings.push(error.to_string());
    }
    let from = match message.from() {
        Ok(from) => from,
        Err(error) => {
            opened.warnings.push(error.to_string());
            None
        }
    };
    if opened.signatures.is_empty() {
        return;
    }
    if !cpim_signed {
        opened
            .warnings
            .push("the Message/CPIM headers (From, To, DateTime) are outside the signature".into());
    }
    let Some(from) = from else {
        opened
            .warnings
            .push("the message has no CPIM From to compare with the signer".into());
        return;
    };
    let from_uri = ImUri::parse(&from.uri).ok();
    for report in &opened.signatures {
        check_signer(report, from_uri.as_ref(), &from.uri, &mut opened.warnings);
    }
}

fn check_signer(
    report: &SignatureReport,
    from: Option<&ImUri>,
    from_text: &str,
    warnings: &mut Vec<String>,
) {
    let Some(signer) = &report.signer else {
        return;
    };
    // A user's key speaks for the user's subaddresses.
    let matches = from.is_some_and(|from| signer.identities.iter().any(|i| i.covers(from)));
    if !matches {
        let names = if signer.identities.is_empty() {
            "no im: identity".to_owned()
        } else {
            signer
                .identities
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        warnings.push(format!(
            "the signer ({names}, {} key {}) is not the CPIM From <{from_text}>",
            report.scheme, signer.fingerprint
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{SignatureVerdict, Verdict};

    fn uri(address: &str) -> ImUri {
        ImUri::from_address(address).unwrap()
    }

    fn all_keys() -> Keys {
        let mut keys = Keys::default();
        for name in ["alice@a.test", "bob@b.test"] {
            let cert = pgp::generate(&uri(name)).unwrap();
            keys.pgp.trusted.insert(cert.fingerprint());
            keys.pgp
                .certs
                .push(cert.clone().strip_secret_key_material());
            keys.pgp.secrets.push(cert);
            let (cert, key) = smime::generate_cert(&uri(name), None).unwrap();
            keys.smime.anchors.push(cert.clone());
            keys.smime.certs.push(cert.clone());
            keys.smime.keys.push((cert, key));
        }
        keys
    }

    fn message(text: &str) -> Vec<u8> {
        compose(
            &uri("alice@a.test"),
            &[uri("bob@b.test")],
            Some("héllo ✓"),
            &mime::text_entity(text),
        )
        .unwrap()
        .to_entity()
    }

    fn every_protection() -> Vec<Protection> {
        let mut out = Vec::new();
        for scheme in [Scheme::OpenPgp, Scheme::Smime] {
            for (sign, encrypt) in [(true, false), (false, true), (true, true)] {
                out.push(Protection::new(scheme, sign, encrypt));
            }
        }
        out.push(Protection {
            opaque: true,
            ..Protection::new(Scheme::Smime, true, false)
        });
        out.push(Protection {
            opaque: true,
            envelope: Envelope::Enveloped,
            ..Protection::new(Scheme::Smime, true, true)
        });
        out.push(Protection {
            envelope: Envelope::Enveloped,
            ..Protection::new(Scheme::Smime, false, true)
        });
        out
    }

    #[test]
    fn every_form_round_trips_with_the_right_verdict() {
        let keys = all_keys();
        let entity = message("the marker text ZQX-7");
        for protection in every_protection() {
            let protected = protect(
                &entity,
                &protection,
                &uri("alice@a.test"),
                &[uri("bob@b.test")],
                &keys,
            )
            .unwrap();
            if protection.encrypt {
                assert!(
                    !String::from_utf8_lossy(&protected.body).contains("ZQX-7"),
                    "{protection:?}"
                );
            }
            let opened = open(
                &mime::join_entity(&protected.content_type, &protected.body),
                &keys,
            );
            let expected = if protection.sign {
                Verdict::Verified
            } else {
                Verdict::EncryptedUnsigned
            };
            assert_eq!(opened.verdict(), expected, "{protection:?}: {opened:?}");
            assert!(
                opened.warnings.is_empty(),
                "{protection:?}: {:?}",
                opened.warnings
            );
            let cpim = opened.cpim.as_ref().unwrap();
            assert_eq!(cpim.from().unwrap().unwrap().uri, "im:alice@a.test");
            let text = mime::readable(opened.content.as_ref().unwrap())
                .unwrap()
                .text
                .unwrap();
            assert_eq!(text, "the marker text ZQX-7");
            // The stand-alone form reads the same.
            assert_eq!(open(&protected.to_entity(), &keys).verdict(), expected);
        }
    }

    #[test]
    fn any_flipped_byte_is_never_shown_as_valid() {
        let keys = all_keys();
        let entity = message("flip me");
        for protection in every_protection() {
            let protected = protect(
                &entity,
                &protection,
                &uri("alice@a.test"),
                &[uri("bob@b.test")],
                &keys,
            )
            .unwrap();
            let whole = mime::join_entity(&protected.content_type, &protected.body);
            let header_len = whole.len() - protected.body.len();
            // Flip bytes spread over the body.
            let step = (protected.body.len() / 23).max(1);
            for at in (0..protected.body.len()).step_by(step) {
                let mut tampered = whole.clone();
                tampered[header_len + at] ^= 0x01;
                let opened = open(&tampered, &keys);
                let verdict = opened.verdict();
                // A flip in MIME framing (a boundary, a header) may leave
                // the protected octets intact; then the content must be the
                // original, never a changed one shown as valid. CBC
                // EnvelopedData alone has no integrity (RFC 8551 §2.7), so
                // unsigned CBC content is only "encrypted, unsigned".
                let cbc_only = protection.envelope == Envelope::Enveloped
                    && protection.scheme == Scheme::Smime
                    && !protection.sign;
                if verdict == Verdict::Verified
                    || (verdict == Verdict::EncryptedUnsigned && !cbc_only)
                {
                    let text = opened
                        .content
                        .as_ref()
                        .and_then(|c| mime::readable(c).ok())
                        .and_then(|r| r.text);
                    assert_eq!(
                        text.as_deref(),
                        Some("flip me"),
                        "{protection:?} flip at {at} shown as {verdict:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn signer_other_than_from_is_a_warning() {
        let keys = all_keys();
        let entity = message("who am i");
        for scheme in [Scheme::OpenPgp, Scheme::Smime] {
            // Bob signs a message whose CPIM From is Alice.
            let protected = protect(
                &entity,
                &Protection::new(scheme, true, false),
                &uri("bob@b.test"),
                &[],
                &keys,
            )
            .unwrap();
            let opened = open(
                &mime::join_entity(&protected.content_type, &protected.body),
                &keys,
            );
            assert_eq!(opened.verdict(), Verdict::Verified);
            assert_eq!(opened.warnings.len(), 1, "{:?}", opened.warnings);
            assert!(opened.warnings[0].contains("is not the CPIM From <im:alice@a.test>"));
        }
    }

    #[test]
    fn nested_signed_inside_encrypted_is_read() {
        // RFC 3156 §6.1 and RFC 8551 §3.7: a multipart/signed entity,
        // encrypted as a whole.
        let keys = all_keys();
        let entity = message("nested");
        for scheme in [Scheme::OpenPgp, Scheme::Smime] {
            let signed = protect(
                &entity,
                &Protection::new(scheme, true, false),
                &uri("alice@a.test"),
                &[],
                &keys,
            )
            .unwrap();
            let encrypted = protect(
                &mime::join_entity(&signed.content_type, &signed.body),
                &Protection::new(scheme, false, true),
                &uri("alice@a.test"),
                &[uri("bob@b.test")],
                &keys,
            )
            .unwrap();
            let opened = open(&encrypted.to_entity(), &keys);
            assert_eq!(opened.verdict(), Verdict::Verified, "{scheme}: {opened:?}");
            assert_eq!((opened.decryptions.len(), opened.signatures.len()), (1, 1));
            assert!(opened.warnings.is_empty(), "{:?}", opened.warnings);
        }
    }

    #[test]
    fn a_users_key_signs_for_its_subaddresses() {
        let keys = all_keys();
        let sub = uri("alice/appl=cli@a.test");
        let entity = compose(
            &sub,
            &[uri("bob/phone@b.test")],
            None,
            &mime::text_entity("x"),
        )
        .unwrap()
        .to_entity();
        for scheme in [Scheme::OpenPgp, Scheme::Smime] {
            let protected = protect(
                &entity,
                &Protection::new(scheme, true, true),
                &sub,
                &[uri("bob/phone@b.test")],
                &keys,
            )
            .unwrap();
            let opened = open(
                &mime::join_entity(&protected.content_type, &protected.body),
                &keys,
            );
            assert_eq!(opened.verdict(), Verdict::Verified, "{scheme}");
            assert!(opened.warnings.is_empty(), "{:?}", opened.warnings);
        }
    }

    #[test]
    fn missing_keys_are_reported() {
        let keys = all_keys();
        let entity = message("for bob");
        let protected = protect(
            &entity,
            &Protection::new(Scheme::OpenPgp, true, true),
            &uri("alice@a.test"),
            &[uri("bob@b.test")],
            &keys,
        )
        .unwrap();
        let whole = mime::join_entity(&protected.content_type, &protected.body);
        let opened = open(&whole, &Keys::default());
        assert_eq!(opened.verdict(), Verdict::Invalid);
        assert!(opened.decryptions[0].result.is_err());

        let signed = protect(
            &entity,
            &Protection::new(Scheme::OpenPgp, true, false),
            &uri("alice@a.test"),
            &[],
            &keys,
        )
        .unwrap();
        let opened = open(
            &mime::join_entity(&signed.content_type, &signed.body),
            &Keys::default(),
        );
        assert_eq!(opened.verdict(), Verdict::Unverified);
        assert_eq!(opened.signatures[0].verdict, SignatureVerdict::UnknownKey);

        let error = protect(
            &entity,
            &Protection::new(Scheme::Smime, false, true),
            &uri("alice@a.test"),
            &[uri("carol@c.test")],
            &keys,
        )
        .unwrap_err();
        assert!(error.to_string().contains("im:carol@c.test"), "{error}");
    }

    #[test]
    fn plain_and_broken_entities() {
        let keys = Keys::default();
        let opened = open(b"Content-Type: text/plain\r\n\r\nhi", &keys);
        assert_eq!(opened.verdict(), Verdict::Unprotected);
        let opened = open(
            b"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=x\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n",
            &keys,
        );
        assert_eq!(opened.verdict(), Verdict::Invalid);
        assert!(opened.error.unwrap().contains("exactly two parts"));
    }
}
