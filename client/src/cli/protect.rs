//! End-to-end protection in `imxp send` and `imxp listen` (imxp-e2e):
//! `send --sign/--encrypt --pgp|--smime` wraps the content in a
//! Message/CPIM (RFC 3862) and protects it; `listen` opens every protected
//! datagram, decrypting and verifying it, and prints the verdict first.
//! A message that cannot be decrypted or whose signature is bad is shown
//! as INVALID and its content is withheld.

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use clap::Args;
use imxp_apex::Endpoint;
use imxp_client::Received;
use imxp_e2e::keyring::Keys;
use imxp_e2e::protect::{self, Protection};
use imxp_e2e::smime::Envelope;
use imxp_e2e::verdict::{Opened, SignatureReport};
use imxp_e2e::{ImUri, Keyring, Scheme, Verdict, mime};
use std::path::PathBuf;

/// The keyring directory option, shared by send, listen and keys.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct KeyringArg {
    /// The keyring directory (default: $IMXP_KEYRING, else
    /// $XDG_CONFIG_HOME/imxp/keyring, else ~/.config/imxp/keyring).
    #[arg(long, value_name = "DIR")]
    pub(crate) keyring: Option<PathBuf>,
}

impl KeyringArg {
    pub(crate) fn open(&self) -> Result<Keyring> {
        let dir = match &self.keyring {
            Some(dir) => dir.clone(),
            None => Keyring::default_dir()
                .context("no keyring directory: set --keyring, IMXP_KEYRING or HOME")?,
        };
        Keyring::open(&dir).with_context(|| format!("opening the keyring {}", dir.display()))
    }
}

/// `imxp send` options for end-to-end protection.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ProtectArgs {
    /// Sign the message with your key (end to end; needs --pgp or --smime).
    #[arg(long)]
    pub(crate) sign: bool,
    /// Encrypt the message to every recipient's key (needs --pgp or --smime).
    #[arg(long)]
    pub(crate) encrypt: bool,
    /// Protect with OpenPGP (PGP/MIME, RFC 3156).
    #[arg(long, conflicts_with = "smime")]
    pub(crate) pgp: bool,
    /// Protect with S/MIME 4.0 (RFC 8551).
    #[arg(long)]
    pub(crate) smime: bool,
    /// S/MIME: sign opaquely (application/pkcs7-mime signed-data) instead
    /// of multipart/signed.
    #[arg(long, requires = "smime")]
    pub(crate) opaque: bool,
    /// S/MIME: encrypt as EnvelopedData (AES-256-CBC) for older agents
    /// instead of AuthEnvelopedData (AES-256-GCM).
    #[arg(long, requires = "smime")]
    pub(crate) cbc: bool,
    /// The Subject of the Message/CPIM (protected messages only).
    #[arg(long, value_name = "TEXT")]
    pub(crate) subject: Option<String>,
    #[command(flatten)]
    pub(crate) keyring: KeyringArg,
}

impl ProtectArgs {
    /// What to do, or `None` for a plain datagram.
    pub(crate) fn protection(&self) -> Result<Option<Protection>> {
        let scheme = match (self.pgp, self.smime) {
            (true, _) => Some(Scheme::OpenPgp),
            (_, true) => Some(Scheme::Smime),
            _ => None,
        };
        match (scheme, self.sign || self.encrypt) {
            (None, false) => {
                if self.subject.is_some() {
                    bail!(
                        "--subject needs --sign or --encrypt (it lives in the protected Message/CPIM)"
                    );
                }
                Ok(None)
            }
            (None, true) => bail!("--sign and --encrypt need --pgp or --smime"),
            (Some(_), false) => bail!("--pgp and --smime need --sign, --encrypt or both"),
            (Some(scheme), true) => Ok(Some(Protection {
                scheme,
                sign: self.sign,
                encrypt: self.encrypt,
                opaque: self.opaque,
                envelope: if self.cbc {
                    Envelope::Enveloped
                } else {
                    Envelope::AuthEnveloped
                },
            })),
        }
    }
}

fn im_uri(endpoint: &Endpoint) -> Result<ImUri> {
    ImUri::from_address(&endpoint.to_string())
        .with_context(|| format!("endpoint {endpoint} as an im: URI"))
}

/// Applies `--sign/--encrypt` to the content about to be sent: a
/// Message/CPIM from `from` to `to` around the content, protected. Plain
/// content is returned unchanged.
pub(crate) fn protect_body(
    args: &ProtectArgs,
    from: &Endpoint,
    to: &[Endpoint],
    content_type: String,
    body: Vec<u8>,
) -> Result<(String, Vec<u8>)> {
    let Some(protection) = args.protection()? else {
        return Ok((content_type, body));
    };
    let keys = args.keyring.open()?.load().context("loading the keyring")?;
    let sender = im_uri(from)?;
    let recipients = to.iter().map(im_uri).collect::<Result<Vec<_>>>()?;
    let content = mime::content_entity(&content_type, &body);
    let message = protect::compose(&sender, &recipients, args.subject.as_deref(), &content)
        .context("building the Message/CPIM")?;
    let protected = protect::protect(
        &message.to_entity(),
        &protection,
        &sender,
        &recipients,
        &keys,
    )
    .context("protecting the message")?;
    Ok((protected.content_type, protected.body))
}

/// Whether a content type is one `listen` opens.
fn is_protected(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        media.as_str(),
        "multipart/signed"
            | "multipart/encrypted"
            | "application/pkcs7-mime"
            | "application/x-pkcs7-mime"
            | "message/cpim"
    )
}

/// The keys `listen` opens messages with, loaded once.
pub(crate) struct Opener {
    keys: Keys,
}

impl Opener {
    /// Loads the keyring; without --keyring, a default keyring that does
    /// not exist yet is not created (no keys: protected messages are then
    /// shown as undecryptable or signed by unknown keys).
    pub(crate) fn new(keyring: &KeyringArg) -> Result<Self> {
        let exists =
            keyring.keyring.is_some() || Keyring::default_dir().is_some_and(|dir| dir.exists());
        let keys = if exists {
            keyring.open()?.load().context("loading the keyring")?
        } else {
            Keys::default()
        };
        Ok(Self { keys })
    }

    /// The printed form of a protected datagram, or `None` when the
    /// datagram is not protected (printed as before).
    pub(crate) fn render(&self, datagram: &Received, json: bool) -> Option<String> {
        if !is_protected(&datagram.content_type) {
            return None;
        }
        let part = datagram.part.as_ref()?;
        let mut opened = protect::open(part.raw(), &self.keys);
        check_originator(datagram, &mut opened);
        Some(if json {
            json_line(datagram, &opened)
        } else {
            text_block(datagram, &opened)
        })
    }
}

/// The APEX originator (what the relays vouch for) against the CPIM From
/// (what the sender wrote, covered by the signature).
fn check_originator(datagram: &Received, opened: &mut Opened) {
    let Some(cpim) = &opened.cpim else {
        return;
    };
    let Ok(Some(from)) = cpim.from() else {
        return;
    };
    let originator = ImUri::from_address(&datagram.originator.to_string()).ok();
    if ImUri::parse(&from.uri).ok() != originator {
        opened.warnings.push(format!(
            "the APEX originator {} is not the CPIM From <{}>",
            datagram.originator, from.uri
        ));
    }
}

fn banner(opened: &Opened) -> String {
    let verdict = opened.verdict();
    let encrypted = opened
        .decryptions
        .first()
        .map(|d| format!("encrypted ({})", d.scheme));
    let signature = opened.signatures.iter().map(describe).collect::<Vec<_>>();
    let mut parts: Vec<String> = Vec::new();
    match verdict {
        Verdict::Verified => parts.push("VERIFIED".into()),
        Verdict::Unverified => parts.push("UNVERIFIED (signer not trusted or unknown)".into()),
        Verdict::EncryptedUnsigned => {
            parts.push("ENCRYPTED, NOT SIGNED (sender not authenticated)".into());
        }
        Verdict::Unprotected => parts.push("UNPROTECTED".into()),
        Verdict::Invalid => {
            let failed = opened
                .decryptions
                .iter()
                .find_map(|d| d.result.as_ref().err())
                .map(|e| format!("DECRYPTION FAILED: {e}"));
            let bad = opened
                .signatures
                .iter()
                .find(|s| s.verdict == imxp_e2e::SignatureVerdict::Bad)
                .map(|s| format!("BAD SIGNATURE: {}", s.detail));
            let why = failed
                .or(bad)
                .or_else(|| opened.error.clone())
                .unwrap_or_else(|| "unreadable".into());
            parts.push(format!("INVALID — {why} — content withheld"));
        }
    }
    parts.extend(encrypted);
    parts.extend(signature);
    parts.join("; ")
}

fn describe(report: &SignatureReport) -> String {
    let who = report
        .signer
        .as_ref()
        .map(|s| {
            format!(
                " by {} [{}]",
                s.user_id.as_deref().unwrap_or("(no name)"),
                s.fingerprint
            )
        })
        .unwrap_or_default();
    format!(
        "{} signature {}{who}",
        report.scheme,
        report.verdict.as_str()
    )
}

fn content_of(opened: &Opened) -> Option<(String, Vec<u8>, Option<String>)> {
    if opened.verdict() == Verdict::Invalid {
        return None;
    }
    let entity = opened.content.as_ref()?;
    let readable = mime::readable(entity).ok()?;
    let content_type = mime::split_entity(entity)
        .ok()
        .and_then(|e| e.header("content-type"))
        .unwrap_or(readable.media_type);
    Some((content_type, readable.body, readable.text))
}

fn text_block(datagram: &Received, opened: &Opened) -> String {
    let mut block = format!(
        "originator: {}\nrecipient: {}\nsecurity: {}\n",
        datagram.originator,
        datagram.recipient,
        banner(opened)
    );
    if let Some(cpim) = &opened.cpim {
        if let Ok(Some(from)) = cpim.from() {
            block.push_str(&format!("from: {}\n", from.to_value()));
        }
        for to in cpim.to().unwrap_or_default() {
            block.push_str(&format!("to: {}\n", to.to_value()));
        }
        if let Ok(Some(date)) = cpim.date_time() {
            block.push_str(&format!("datetime: {date}\n"));
        }
        for (lang, subject) in cpim.subjects() {
            match lang {
                Some(lang) => block.push_str(&format!("subject ({lang}): {subject}\n")),
                None => block.push_str(&format!("subject: {subject}\n")),
            }
        }
    }
    for warning in &opened.warnings {
        block.push_str(&format!("warning: {warning}\n"));
    }
    match content_of(opened) {
        Some((content_type, body, text)) => {
            block.push_str(&format!(
                "content-type: {content_type}\ncontent-length: {}\n",
                body.len()
            ));
            let content = match text {
                Some(text) => text,
                None => {
                    block.push_str("content-transfer-encoding: base64\n");
                    base64::engine::general_purpose::STANDARD.encode(&body)
                }
            };
            block.push('\n');
            block.push_str(&content);
            if !content.ends_with('\n') {
                block.push('\n');
            }
        }
        None => block.push_str("\n(content withheld)\n"),
    }
    block.push('\n');
    block
}

fn json_line(datagram: &Received, opened: &Opened) -> String {
    let content = content_of(opened);
    let (content_type, content_value, base64) = match &content {
        Some((content_type, body, text)) => (
            serde_json::Value::from(content_type.clone()),
            match text {
                Some(text) => serde_json::Value::from(text.clone()),
                None => base64::engine::general_purpose::STANDARD
                    .encode(body)
                    .into(),
            },
            text.is_none(),
        ),
        None => (serde_json::Value::Null, serde_json::Value::Null, false),
    };
    let cpim = opened.cpim.as_ref().map(|cpim| {
        serde_json::json!({
            "from": cpim.from().ok().flatten().map(|a| a.uri),
            "to": cpim.to().unwrap_or_default().into_iter().map(|a| a.uri).collect::<Vec<_>>(),
            "datetime": cpim.date_time().ok().flatten(),
            "subject": cpim.subjects().into_iter().map(|(_, s)| s).next(),
        })
    });
    let signatures: Vec<_> = opened
        .signatures
        .iter()
        .map(|s| {
            serde_json::json!({
                "scheme": s.scheme.as_str(),
                "verdict": s.verdict.as_str(),
                "fingerprint": s.signer.as_ref().map(|x| x.fingerprint.clone()),
                "user_id": s.signer.as_ref().and_then(|x| x.user_id.clone()),
                "identities": s.signer.as_ref().map(|x| x.identities.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap_or_default(),
                "detail": s.detail,
            })
        })
        .collect();
    let decryptions: Vec<_> = opened
        .decryptions
        .iter()
        .map(|d| {
            serde_json::json!({
                "scheme": d.scheme.as_str(),
                "ok": d.result.is_ok(),
                "detail": match &d.result { Ok(detail) | Err(detail) => detail },
            })
        })
        .collect();
    let signer = opened.signer();
    let mut line = serde_json::json!({
        "originator": datagram.originator.to_string(),
        "recipient": datagram.recipient.to_string(),
        "content_type": content_type,
        "content": content_value,
        "base64": base64,
        "verdict": opened.verdict().as_str(),
        "verified": opened.is_verified(),
        "encrypted": !opened.decryptions.is_empty(),
        "signer_fingerprint": signer.map(|s| s.fingerprint.clone()),
        "signer_user_id": signer.and_then(|s| s.user_id.clone()),
        "security": {
            "decryptions": decryptions,
            "signatures": signatures,
            "cpim": cpim,
            "warnings": opened.warnings,
            "error": opened.error,
            "wire_content_type": datagram.content_type,
        },
    })
    .to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protection_needs_a_scheme_and_an_action() {
        let args = |sign, encrypt, pgp, smime| ProtectArgs {
            sign,
            encrypt,
            pgp,
            smime,
            ..ProtectArgs::default()
        };
        assert!(
            args(false, false, false, false)
                .protection()
                .unwrap()
                .is_none()
        );
        assert!(args(true, false, false, false).protection().is_err());
        assert!(args(false, false, true, false).protection().is_err());
        let both = args(true, true, true, false).protection().unwrap().unwrap();
        assert_eq!(both.scheme, Scheme::OpenPgp);
        assert!(both.sign && both.encrypt);
        let smime = args(false, true, false, true)
            .protection()
            .unwrap()
            .unwrap();
        assert_eq!(smime.envelope, Envelope::AuthEnveloped);
        let subject_only = ProtectArgs {
            subject: Some("x".into()),
            ..ProtectArgs::default()
        };
        assert!(subject_only.protection().is_err());
    }

    #[test]
    fn protected_types() {
        assert!(is_protected(
            "multipart/signed; protocol=\"application/pgp-signature\""
        ));
        assert!(is_protected(
            "Application/PKCS7-MIME; smime-type=enveloped-data"
        ));
        assert!(!is_protected("text/plain; charset=utf-8"));
    }
}
