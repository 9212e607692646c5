//! What reading a protected message found out: per layer, whether it could
//! be decrypted and whether its signature is good, and one overall verdict
//! that never calls a message valid unless every signature on it is good.

use std::fmt;

use crate::cpim::CpimMessage;
use crate::uri::ImUri;

/// The protection scheme of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// OpenPGP, PGP/MIME (RFC 3156).
    OpenPgp,
    /// S/MIME 4.0 (RFC 8551), CMS.
    Smime,
}

impl Scheme {
    /// `openpgp` or `smime`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenPgp => "openpgp",
            Self::Smime => "smime",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OpenPgp => "OpenPGP",
            Self::Smime => "S/MIME",
        })
    }
}

/// Who made a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// OpenPGP: the signing certificate's fingerprint; S/MIME: the
    /// SHA-256 fingerprint of the signer's certificate. Upper-case hex.
    pub fingerprint: String,
    /// OpenPGP: the primary user ID; S/MIME: the subject's common name.
    pub user_id: Option<String>,
    /// The `im:` identities the key or certificate is bound to (OpenPGP
    /// user IDs `<im:…>`, S/MIME subjectAltName URIs, RFC 3860 §6).
    pub identities: Vec<ImUri>,
}

/// The verdict on one signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureVerdict {
    /// The signature is valid and the key is trusted (OpenPGP: in the
    /// keyring and marked trusted; S/MIME: the certificate chain leads to a
    /// trust anchor).
    Good,
    /// The signature is mathematically valid, but the key is not trusted
    /// (OpenPGP: known but not marked trusted; S/MIME: the chain does not
    /// lead to a trust anchor).
    Untrusted,
    /// The key that made the signature is not available: nothing can be
    /// said about the content.
    UnknownKey,
    /// The signature does not verify: the content was changed, or the
    /// signature is malformed.
    Bad,
}

impl SignatureVerdict {
    /// `good`, `untrusted`, `unknown-key` or `bad`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Untrusted => "untrusted",
            Self::UnknownKey => "unknown-key",
            Self::Bad => "bad",
        }
    }
}

/// One signature layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureReport {
    /// The scheme.
    pub scheme: Scheme,
    /// The verdict.
    pub verdict: SignatureVerdict,
    /// The signer, when the key or certificate is known.
    pub signer: Option<Signer>,
    /// Why, in words (the key ID of an unknown key, the error of a bad
    /// signature, the chain error of an untrusted certificate).
    pub detail: String,
}

/// One encryption layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptionReport {
    /// The scheme.
    pub scheme: Scheme,
    /// `Ok` with a description of the cipher, or why it failed.
    pub result: Result<String, String>,
}

/// The overall verdict, for display: the worst of the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Signed with a good signature by a trusted key (and decrypted, if it
    /// was encrypted).
    Verified,
    /// Encrypted for this recipient and decrypted, but not signed: the
    /// sender is not authenticated.
    EncryptedUnsigned,
    /// A valid signature by a key that is not trusted, or by an unknown key.
    Unverified,
    /// Neither signed nor encrypted.
    Unprotected,
    /// Could not be decrypted, a signature is bad, or the protected
    /// structure is broken: the content must not be trusted.
    Invalid,
}

impl Verdict {
    /// `verified`, `encrypted-unsigned`, `unverified`, `unprotected`,
    /// `invalid`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::EncryptedUnsigned => "encrypted-unsigned",
            Self::Unverified => "unverified",
            Self::Unprotected => "unprotected",
            Self::Invalid => "invalid",
        }
    }
}

/// Everything [`crate::open`] found.
#[derive(Debug, Clone, Default)]
pub struct Opened {
    /// Decryption layers, outermost first.
    pub decryptions: Vec<DecryptionReport>,
    /// Signature layers, outermost first.
    pub signatures: Vec<SignatureReport>,
    /// The Message/CPIM wrapper, if there was one.
    pub cpim: Option<CpimMessage>,
    /// The innermost content entity (headers and body); `None` when it could
    /// not be reached (undecryptable, malformed).
    pub content: Option<Vec<u8>>,
    /// A structural error that stopped the reading (malformed MIME, CPIM
    /// or CMS), if any.
    pub error: Option<String>,
    /// Things the reader must see: a signer that is not the CPIM `From`,
    /// `Require`d features not understood, CPIM headers outside the
    /// signature.
    pub warnings: Vec<String>,
}

impl Opened {
    /// The overall verdict: [`Verdict::Invalid`] if anything failed, and
    /// [`Verdict::Verified`] only if there is at least one signature and
    /// every signature is good.
    pub fn verdict(&self) -> Verdict {
        if self.error.is_some()
            || self.content.is_none()
            || self.decryptions.iter().any(|d| d.result.is_err())
            || self
                .signatures
                .iter()
                .any(|s| s.verdict == SignatureVerdict::Bad)
        {
            return Verdict::Invalid;
        }
        if self.signatures.is_empty() {
            return if self.decryptions.is_empty() {
                Verdict::Unprotected
            } else {
                Verdict::EncryptedUnsigned
            };
        }
        if self
            .signatures
            .iter()
            .all(|s| s.verdict == SignatureVerdict::Good)
        {
            Verdict::Verified
        } else {
            Verdict::Unverified
        }
    }

    /// Whether the content may be shown as authentic.
    pub fn is_verified(&self) -> bool {
        self.verdict() == Verdict::Verified
    }

    /// The first signer, if any.
    pub fn signer(&self) -> Option<&Signer> {
        self.signatures.iter().find_map(|s| s.signer.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(verdict: SignatureVerdict) -> SignatureReport {
        SignatureReport {
            scheme: Scheme::OpenPgp,
            verdict,
            signer: None,
            detail: String::new(),
        }
    }

    #[test]
    fn worst_layer_wins() {
        let mut opened = Opened {
            content: Some(b"x".to_vec()),
            ..Opened::default()
        };
        assert_eq!(opened.verdict(), Verdict::Unprotected);
        opened.decryptions.push(DecryptionReport {
            scheme: Scheme::Smime,
            result: Ok("AES-256-GCM".into()),
        });
        assert_eq!(opened.verdict(), Verdict::EncryptedUnsigned);
        opened.signatures.push(report(SignatureVerdict::Good));
        assert_eq!(opened.verdict(), Verdict::Verified);
        opened.signatures.push(report(SignatureVerdict::Untrusted));
        assert_eq!(opened.verdict(), Verdict::Unverified);
        opened.signatures.push(report(SignatureVerdict::Bad));
        assert_eq!(opened.verdict(), Verdict::Invalid);
        opened.signatures.clear();
        opened.content = None;
        assert_eq!(opened.verdict(), Verdict::Invalid);
    }
}
