//! OpenPGP interoperability with GnuPG (`gpg`), both directions: what imxp
//! signs and encrypts (PGP/MIME, RFC 3156) gpg verifies and decrypts, and
//! what gpg signs and encrypts imxp reads with the right verdict. gpg runs
//! with an isolated GNUPGHOME in a temporary directory, in batch mode with
//! loopback pinentry, each call bounded in time.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use common::{run, run_ok};
use imxp_e2e::keyring::Keys;
use imxp_e2e::mime::{self, Part};
use imxp_e2e::protect::{self, Protection};
use imxp_e2e::{ImUri, Scheme, SignatureVerdict, Verdict, pgp};

struct Gpg {
    dir: tempfile::TempDir,
    home: PathBuf,
}

impl Gpg {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("gnupg");
        fs::create_dir(&home).unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
        Self { dir, home }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn args<'a>(&self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec![
            "--batch",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ];
        all.extend_from_slice(args);
        all
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> std::process::Output {
        run(
            "gpg",
            &self.args(args),
            self.dir.path(),
            &[("GNUPGHOME", &self.home)],
            stdin,
        )
    }

    fn run_ok(&self, args: &[&str], stdin: &[u8]) -> std::process::Output {
        run_ok(
            "gpg",
            &self.args(args),
            self.dir.path(),
            &[("GNUPGHOME", &self.home)],
            stdin,
        )
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path(name);
        fs::write(&path, bytes).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = run(
            "gpgconf",
            &["--kill", "all"],
            self.dir.path(),
            &[("GNUPGHOME", self.home.as_path())],
            b"",
        );
    }
}

fn uri(address: &str) -> ImUri {
    ImUri::from_address(address).unwrap()
}

fn own_keys(names: &[&str]) -> Keys {
    let mut keys = Keys::default();
    for name in names {
        let cert = pgp::generate(&uri(name)).unwrap();
        keys.pgp.trusted.insert(cert.fingerprint());
        keys.pgp
            .certs
            .push(cert.clone().strip_secret_key_material());
        keys.pgp.secrets.push(cert);
    }
    keys
}

fn cpim_entity(text: &str) -> Vec<u8> {
    protect::compose(
        &uri("alice@a.test"),
        &[uri("bob@b.test")],
        Some("interop ✓"),
        &mime::text_entity(text),
    )
    .unwrap()
    .to_entity()
}

fn status(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn gpg_verifies_and_decrypts_what_imxp_writes() {
    let gpg = Gpg::new();
    let keys = own_keys(&["alice@a.test", "bob@b.test"]);
    let alice = keys.pgp.secret_for(&uri("alice@a.test")).unwrap().clone();
    let bob = keys.pgp.secret_for(&uri("bob@b.test")).unwrap().clone();
    // gpg knows Alice's certificate and Bob's secret key.
    let alice_file = gpg.write("alice.asc", &pgp::armored_cert(&alice).unwrap());
    let bob_file = gpg.write("bob.asc", &pgp::armored_secret(&bob).unwrap());
    gpg.run_ok(&["--import", &alice_file], b"");
    gpg.run_ok(&["--import", &bob_file], b"");
    let alice_fpr = alice.fingerprint().to_hex();
    let entity = cpim_entity("signed by imxp, checked by gpg\nline two");

    // multipart/signed: gpg checks the detached signature over part one.
    let signed = protect::protect(
        &entity,
        &Protection::new(Scheme::OpenPgp, true, false),
        &uri("alice@a.test"),
        &[],
        &keys,
    )
    .unwrap();
    let whole = mime::join_entity(&signed.content_type, &signed.body);
    let split = mime::split_entity(&whole).unwrap();
    let parts = mime::split_multipart(split.body, split.param("boundary").unwrap()).unwrap();
    let data = gpg.write("signed-part", parts[0]);
    let signature = mime::split_entity(parts[1])
        .unwrap()
        .decoded_body()
        .unwrap();
    let sig = gpg.write("signature.asc", &signature);
    let verified = gpg.run_ok(&["--status-fd", "1", "--verify", &sig, &data], b"");
    let out = status(&verified);
    assert!(out.contains("[GNUPG:] GOODSIG"), "{out}");
    assert!(valid_by(&out, &alice_fpr), "{out}");
    // And a changed octet is a bad signature for gpg too.
    let mut changed = parts[0].to_vec();
    let last = changed.len() - 1;
    changed[last] ^= 0x20;
    let changed = gpg.write("changed-part", &changed);
    let refused = gpg.run(&["--status-fd", "1", "--verify", &sig, &changed], b"");
    assert!(!refused.status.success());
    assert!(status(&refused).contains("[GNUPG:] BADSIG"));

    // multipart/encrypted, signed inside (RFC 3156 §6.2).
    for sign in [true, false] {
        let encrypted = protect::protect(
            &entity,
            &Protection::new(Scheme::OpenPgp, sign, true),
            &uri("alice@a.test"),
            &[uri("bob@b.test")],
            &keys,
        )
        .unwrap();
        let whole = mime::join_entity(&encrypted.content_type, &encrypted.body);
        let split = mime::split_entity(&whole).unwrap();
        assert_eq!(split.param("protocol"), Some("application/pgp-encrypted"));
        let parts = mime::split_multipart(split.body, split.param("boundary").unwrap()).unwrap();
        let armor = mime::split_entity(parts[1])
            .unwrap()
            .decoded_body()
            .unwrap();
        let file = gpg.write("message.asc", &armor);
        let decrypted = gpg.run_ok(&["--status-fd", "2", "--decrypt", &file], b"");
        assert_eq!(decrypted.stdout, mime::canonicalize(&entity));
        let log = String::from_utf8_lossy(&decrypted.stderr);
        assert!(log.contains("[GNUPG:] DECRYPTION_OKAY"), "{log}");
        assert_eq!(valid_by(&log, &alice_fpr), sign, "{log}");
    }
}

/// A VALIDSIG status line whose primary key fingerprint (the last field)
/// is `primary`.
fn valid_by(status: &str, primary: &str) -> bool {
    status
        .lines()
        .any(|line| line.starts_with("[GNUPG:] VALIDSIG ") && line.ends_with(primary))
}

fn gpg_key(gpg: &Gpg, user_id: &str) -> String {
    gpg.run_ok(
        &["--quick-gen-key", user_id, "ed25519", "sign", "never"],
        b"",
    );
    let listed = gpg.run_ok(&["--with-colons", "--list-keys", user_id], b"");
    let fpr = status(&listed)
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .unwrap()
        .to_owned();
    gpg.run_ok(&["--quick-add-key", &fpr, "cv25519", "encr", "never"], b"");
    fpr
}

#[test]
fn imxp_reads_what_gpg_writes() {
    let gpg = Gpg::new();
    let dave_fpr = gpg_key(&gpg, "Dave Example <im:dave@d.test>");
    let mut keys = own_keys(&["bob@b.test"]);
    // imxp learns Dave's secret key (for decrypting to Dave) and trusts him.
    let secret = gpg.run_ok(&["--armor", "--export-secret-keys", &dave_fpr], b"");
    let dave = pgp::read_certs(&secret.stdout).unwrap().remove(0);
    assert_eq!(dave.fingerprint().to_hex(), dave_fpr);
    assert_eq!(pgp::identities(&dave), vec![uri("dave@d.test")]);
    keys.pgp.trusted.insert(dave.fingerprint());
    keys.pgp.certs.push(dave.strip_secret_key_material());
    // gpg learns Bob's certificate.
    let bob = keys.pgp.cert_for(&uri("bob@b.test")).unwrap().clone();
    let bob_file = gpg.write("bob.asc", &pgp::armored_cert(&bob).unwrap());
    gpg.run_ok(&["--import", &bob_file], b"");
    let entity = mime::canonicalize(
        &protect::compose(
            &uri("dave@d.test"),
            &[uri("bob@b.test")],
            None,
            &mime::text_entity("written by gpg"),
        )
        .unwrap()
        .to_entity(),
    );
    let data = gpg.write("entity", &entity);

    // A detached signature made by gpg, in a multipart/signed made here.
    let signature = gpg.run_ok(
        &[
            "--armor",
            "--detach-sign",
            "--digest-algo",
            "SHA256",
            "-u",
            &dave_fpr,
            "-o",
            "-",
            &data,
        ],
        b"",
    );
    let armor = String::from_utf8(signature.stdout).unwrap();
    let (content_type, body) = mime::multipart(
        "multipart/signed",
        &[
            ("micalg", "pgp-sha256"),
            ("protocol", "application/pgp-signature"),
        ],
        &[
            Part::Raw(&entity),
            Part::Ascii {
                content_type: "application/pgp-signature",
                headers: vec![],
                text: &armor,
            },
        ],
    );
    let opened = protect::open(&mime::join_entity(&content_type, &body), &keys);
    assert_eq!(opened.verdict(), Verdict::Verified, "{opened:?}");
    let signer = opened.signer().unwrap();
    assert_eq!(signer.fingerprint, dave_fpr);
    assert_eq!(
        signer.user_id.as_deref(),
        Some("Dave Example <im:dave@d.test>")
    );
    assert!(opened.warnings.is_empty(), "{:?}", opened.warnings);

    // The same signature over other octets is bad.
    let mut other = entity;
    let last = other.len() - 1;
    other[last] ^= 0x01;
    let (content_type, body) = mime::multipart(
        "multipart/signed",
        &[
            ("micalg", "pgp-sha256"),
            ("protocol", "application/pgp-signature"),
        ],
        &[
            Part::Raw(&other),
            Part::Ascii {
                content_type: "application/pgp-signature",
                headers: vec![],
                text: &armor,
            },
        ],
    );
    let opened = protect::open(&mime::join_entity(&content_type, &body), &keys);
    assert_eq!(opened.verdict(), Verdict::Invalid);
    assert_eq!(opened.signatures[0].verdict, SignatureVerdict::Bad);

    // Signed and encrypted by gpg to Bob (RFC 3156 §6.2), in a
    // multipart/encrypted made here.
    let bob_fpr = bob.fingerprint().to_hex();
    let encrypted = gpg.run_ok(
        &[
            "--armor",
            "--trust-model",
            "always",
            "--sign",
            "-u",
            &dave_fpr,
            "--encrypt",
            "-r",
            &bob_fpr,
            "-o",
            "-",
            &data,
        ],
        b"",
    );
    let armor = String::from_utf8(encrypted.stdout).unwrap();
    let whole = pgp_mime_encrypted(&armor);
    let opened = protect::open(&whole, &keys);
    assert_eq!(opened.verdict(), Verdict::Verified, "{opened:?}");
    assert_eq!(opened.signer().unwrap().fingerprint, dave_fpr);
    let text = mime::readable(opened.content.as_ref().unwrap())
        .unwrap()
        .text
        .unwrap();
    assert_eq!(text, "written by gpg");

    // Encrypted to Dave only: Bob's keyring cannot open it, and says so.
    let for_dave = gpg.run_ok(
        &[
            "--armor",
            "--trust-model",
            "always",
            "--encrypt",
            "-r",
            &dave_fpr,
            "-o",
            "-",
            &data,
        ],
        b"",
    );
    let opened = protect::open(
        &pgp_mime_encrypted(&String::from_utf8(for_dave.stdout).unwrap()),
        &keys,
    );
    assert_eq!(opened.verdict(), Verdict::Invalid);
    assert!(
        opened.decryptions[0]
            .result
            .as_ref()
            .unwrap_err()
            .contains("no secret key")
    );
}

fn pgp_mime_encrypted(armor: &str) -> Vec<u8> {
    let (content_type, body) = mime::multipart(
        "multipart/encrypted",
        &[("protocol", "application/pgp-encrypted")],
        &[
            Part::Ascii {
                content_type: "application/pgp-encrypted",
                headers: vec![],
                text: "Version: 1\r\n",
            },
            Part::Ascii {
                content_type: "application/octet-stream",
                headers: vec![],
                text: armor,
            },
        ],
    );
    mime::join_entity(&content_type, &body)
}
