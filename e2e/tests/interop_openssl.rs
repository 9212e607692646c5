//! S/MIME interoperability with `openssl cms`, both directions: what imxp
//! signs (detached and opaque) and encrypts (EnvelopedData and
//! AuthEnvelopedData) `openssl cms` verifies against the CA and decrypts,
//! and what `openssl cms` signs and encrypts imxp reads with the right
//! verdict. Every call is bounded in time.
//!
//! `openssl cms -verify` runs in its default text mode: with `-binary`,
//! OpenSSL 3.0 keeps the CR of the CRLF that precedes a multipart
//! delimiter as part of the signed content (RFC 2046 §5.1.1 gives that CRLF
//! to the delimiter), so no correctly framed `multipart/signed` over CRLF
//! text verifies that way. The signed content is canonical CRLF already,
//! so text mode changes nothing in it.

mod common;

use std::fs;
use std::path::PathBuf;

use common::{run, run_ok};
use imxp_e2e::keyring::Keys;
use imxp_e2e::mime;
use imxp_e2e::protect::{self, Protection};
use imxp_e2e::smime::{self, Envelope};
use imxp_e2e::{ImUri, Scheme, SignatureVerdict, Verdict};

fn uri(address: &str) -> ImUri {
    ImUri::from_address(address).unwrap()
}

struct Setup {
    dir: tempfile::TempDir,
    keys: Keys,
}

impl Setup {
    /// A test CA, Alice and Bob with CA-signed certificates; the keyring
    /// trusts the CA and holds both private keys.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_key) = smime::generate_ca("imxp interop CA").unwrap();
        let mut keys = Keys::default();
        keys.smime.anchors.push(ca.clone());
        fs::write(dir.path().join("ca.pem"), ca.to_pem().unwrap()).unwrap();
        for name in ["alice", "bob"] {
            let domain = if name == "alice" { "a.test" } else { "b.test" };
            let (cert, key) =
                smime::generate_cert(&uri(&format!("{name}@{domain}")), Some((&ca, &ca_key)))
                    .unwrap();
            fs::write(
                dir.path().join(format!("{name}.pem")),
                cert.to_pem().unwrap(),
            )
            .unwrap();
            fs::write(
                dir.path().join(format!("{name}.key")),
                key.private_key_to_pem_pkcs8().unwrap(),
            )
            .unwrap();
            keys.smime.certs.push(cert.clone());
            keys.smime.keys.push((cert, key));
        }
        Self { dir, keys }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        fs::write(self.path(name), bytes).unwrap();
        name.to_owned()
    }

    fn openssl(&self, args: &[&str]) -> std::process::Output {
        run_ok("openssl", args, self.dir.path(), &[], b"")
    }

    fn openssl_fails(&self, args: &[&str]) -> std::process::Output {
        let output = run("openssl", args, self.dir.path(), &[], b"");
        assert!(
            !output.status.success(),
            "openssl {args:?} should have failed"
        );
        output
    }

    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.path(name)).unwrap()
    }
}

fn entity(from: &str, text: &str) -> Vec<u8> {
    mime::canonicalize(
        &protect::compose(
            &uri(from),
            &[uri("bob@b.test")],
            Some("S/MIME ✓"),
            &mime::text_entity(text),
        )
        .unwrap()
        .to_entity(),
    )
}

fn protect(setup: &Setup, entity: &[u8], protection: Protection) -> Vec<u8> {
    protect::protect(
        entity,
        &protection,
        &uri("alice@a.test"),
        &[uri("bob@b.test")],
        &setup.keys,
    )
    .unwrap()
    .to_entity()
}

#[test]
fn openssl_verifies_and_decrypts_what_imxp_writes() {
    let setup = Setup::new();
    let entity = entity("alice@a.test", "signed by imxp, checked by openssl");

    for opaque in [false, true] {
        let signed = protect(
            &setup,
            &entity,
            Protection {
                opaque,
                ..Protection::new(Scheme::Smime, true, false)
            },
        );
        let file = setup.write("signed.eml", &signed);
        setup.openssl(&[
            "cms",
            "-verify",
            "-in",
            &file,
            "-CAfile",
            "ca.pem",
            "-out",
            "content.eml",
        ]);
        assert_eq!(
            mime::canonicalize(&setup.read("content.eml")),
            entity,
            "opaque: {opaque}"
        );
        // Another CA does not vouch for Alice.
        let (other_ca, _) = smime::generate_ca("other CA").unwrap();
        setup.write("other-ca.pem", &other_ca.to_pem().unwrap());
        setup.openssl_fails(&["cms", "-verify", "-in", &file, "-CAfile", "other-ca.pem"]);
    }

    for envelope in [Envelope::Enveloped, Envelope::AuthEnveloped] {
        let encrypted = protect(
            &setup,
            &entity,
            Protection {
                envelope,
                ..Protection::new(Scheme::Smime, true, true)
            },
        );
        assert!(!String::from_utf8_lossy(&encrypted).contains("checked by openssl"));
        let file = setup.write("encrypted.eml", &encrypted);
        setup.openssl(&[
            "cms",
            "-decrypt",
            "-binary",
            "-in",
            &file,
            "-recip",
            "bob.pem",
            "-inkey",
            "bob.key",
            "-out",
            "decrypted.eml",
        ]);
        // Inside: the multipart/signed, which openssl verifies in turn.
        setup.openssl(&[
            "cms",
            "-verify",
            "-in",
            "decrypted.eml",
            "-CAfile",
            "ca.pem",
            "-out",
            "content.eml",
        ]);
        assert_eq!(
            mime::canonicalize(&setup.read("content.eml")),
            entity,
            "{envelope:?}"
        );
        // Alice's key does not open what was encrypted to Bob.
        setup.openssl_fails(&[
            "cms",
            "-decrypt",
            "-in",
            &file,
            "-recip",
            "alice.pem",
            "-inkey",
            "alice.key",
        ]);
    }
}

#[test]
fn imxp_reads_what_openssl_writes() {
    let setup = Setup::new();
    let entity = entity("alice@a.test", "written by openssl cms");
    let input = setup.write("entity.eml", &entity);

    // Detached (multipart/signed, application/x-pkcs7-signature) and opaque.
    for (name, extra) in [("detached.eml", None), ("opaque.eml", Some("-nodetach"))] {
        let mut args = vec![
            "cms",
            "-sign",
            "-binary",
            "-in",
            &input,
            "-signer",
            "alice.pem",
            "-inkey",
            "alice.key",
            "-out",
            name,
        ];
        args.extend(extra);
        setup.openssl(&args);
        let opened = protect::open(&setup.read(name), &setup.keys);
        assert_eq!(opened.verdict(), Verdict::Verified, "{name}: {opened:?}");
        let signer = opened.signer().unwrap();
        assert_eq!(signer.identities, vec![uri("alice@a.test")]);
        assert_eq!(signer.user_id.as_deref(), Some("alice@a.test"));
        assert!(opened.warnings.is_empty(), "{:?}", opened.warnings);
        let text = mime::readable(opened.content.as_ref().unwrap())
            .unwrap()
            .text
            .unwrap();
        assert_eq!(text, "written by openssl cms");
        // Without the CA the signature is valid but not trusted.
        let mut untrusting = Keys::default();
        untrusting.smime.keys = setup
            .keys
            .smime
            .keys
            .iter()
            .map(|(c, k)| (c.clone(), k.clone()))
            .collect();
        let opened = protect::open(&setup.read(name), &untrusting);
        assert_eq!(opened.verdict(), Verdict::Unverified);
        assert_eq!(opened.signatures[0].verdict, SignatureVerdict::Untrusted);
    }

    // Without the signer's certificate in the message (-nocerts): an
    // unknown key unless the keyring has the certificate.
    setup.openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-nocerts",
        "-in",
        &input,
        "-signer",
        "alice.pem",
        "-inkey",
        "alice.key",
        "-out",
        "nocerts.eml",
    ]);
    let mut without = Keys::default();
    without.smime.anchors = setup.keys.smime.anchors.clone();
    let opened = protect::open(&setup.read("nocerts.eml"), &without);
    assert_eq!(opened.verdict(), Verdict::Unverified, "{opened:?}");
    assert_eq!(opened.signatures[0].verdict, SignatureVerdict::UnknownKey);
    let opened = protect::open(&setup.read("nocerts.eml"), &setup.keys);
    assert_eq!(opened.verdict(), Verdict::Verified, "{opened:?}");

    // A detached signature whose content was changed on the way.
    let detached = String::from_utf8(setup.read("detached.eml")).unwrap();
    let changed = detached.replace("written by openssl cms", "written by openssl cmS");
    assert_ne!(changed, detached);
    let opened = protect::open(changed.as_bytes(), &setup.keys);
    assert_eq!(opened.verdict(), Verdict::Invalid);
    assert_eq!(opened.signatures[0].verdict, SignatureVerdict::Bad);

    // Signed, then encrypted to Bob (CBC and GCM).
    for cipher in ["-aes256", "-aes-256-gcm"] {
        setup.openssl(&[
            "cms",
            "-encrypt",
            "-binary",
            cipher,
            "-in",
            "detached.eml",
            "-out",
            "encrypted.eml",
            "bob.pem",
        ]);
        let encrypted = setup.read("encrypted.eml");
        let opened = protect::open(&encrypted, &setup.keys);
        assert_eq!(opened.verdict(), Verdict::Verified, "{cipher}: {opened:?}");
        assert_eq!(opened.decryptions.len(), 1);
        assert!(opened.cpim.is_some());
        // Only Alice's key: undecryptable, and shown as such.
        let mut alice_only = Keys::default();
        alice_only.smime.anchors = setup.keys.smime.anchors.clone();
        let (cert, key) = &setup.keys.smime.keys[0];
        alice_only.smime.keys.push((cert.clone(), key.clone()));
        let opened = protect::open(&encrypted, &alice_only);
        assert_eq!(opened.verdict(), Verdict::Invalid);
        assert!(opened.content.is_none());
    }
}
