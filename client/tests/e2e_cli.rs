//! The `imxp` command's end-to-end protection against the fake relay:
//! `imxp keys` (generate, test-ca, export, import, trust, list), `imxp send
//! --sign --encrypt --pgp|--smime`, and `imxp listen` showing the verdict
//! (text and `--json`), with a tampered copy shown as invalid and its
//! content withheld.

mod support;

use imxp_apex::{Content, Endpoint, Response};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::{FakeRelay, Seen};

/// Guards against a hang (not a timing assertion).
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), future)
        .await
        .expect("the test hung")
}

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_imxp"));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// `imxp keys --keyring DIR ARGS…`, which must succeed; its stdout.
fn keys(keyring: &Path, args: &[&str]) -> String {
    let output = bin()
        .arg("keys")
        .arg("--keyring")
        .arg(keyring)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "imxp keys {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

struct Setup {
    dir: tempfile::TempDir,
    ca: PathBuf,
    password: PathBuf,
    /// Fred's keyring (the sender).
    fred: PathBuf,
    /// Barney's keyring (the reader).
    barney: PathBuf,
}

impl Setup {
    fn new(relay: &FakeRelay) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &relay.ca_pem).unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "secret\n").unwrap();
        Self {
            fred: dir.path().join("fred-keys"),
            barney: dir.path().join("barney-keys"),
            dir,
            ca,
            password,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn imxp(&self, relay: &FakeRelay, args: &[&str]) -> Command {
        let mut command = bin();
        command
            .args(["--relay", &relay.address, "--ca"])
            .arg(&self.ca)
            .args(["--server-name", "localhost", "--user", "fred@example.com"])
            .arg("--password-file")
            .arg(&self.password)
            .args(args);
        command
    }

    /// Each side's key, the other side's certificate imported and trusted.
    fn exchange(&self, scheme: &str) {
        for (mine, theirs, me) in [
            (&self.fred, &self.barney, "fred@example.com"),
            (&self.barney, &self.fred, "barney@example.org"),
        ] {
            let exported = self.path(&format!("{me}.{scheme}"));
            let output = bin()
                .args(["keys", "--keyring"])
                .arg(mine)
                .args(["export", &format!("--{scheme}"), me])
                .output()
                .unwrap();
            assert!(output.status.success());
            std::fs::write(&exported, output.stdout).unwrap();
            let imported = keys(theirs, &["import", exported.to_str().unwrap()]);
            assert!(imported.starts_with("imported "), "{imported}");
            keys(theirs, &["trust", me]);
        }
    }
}

async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn ep(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

/// Sends with `flags`, returns the content part the relay received.
async fn send_protected(
    relay: &mut FakeRelay,
    setup: &Setup,
    flags: &[&str],
    text: &str,
) -> imxp_apex::MimePart {
    let keyring = setup.fred.to_str().unwrap().to_owned();
    let mut args = vec![
        "send",
        "--from",
        "fred@example.com",
        "--to",
        "barney@example.org",
        "--keyring",
        &keyring,
        "--subject",
        "end to end",
    ];
    args.extend_from_slice(flags);
    args.push(text);
    let output = run(setup.imxp(relay, &args)).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "accepted\n");
    let Seen::Attach { .. } = relay.next_seen().await else {
        panic!("no attach")
    };
    let Seen::Data(_, Content::Part(part)) = relay.next_seen().await else {
        panic!("no data")
    };
    part
}

/// Delivers `part` (as received from Fred, re-addressed to the listening
/// fred@example.com) and a copy with one byte of its body flipped.
async fn deliver_with_tampered_copy(relay: &FakeRelay, part: &imxp_apex::MimePart) {
    let mut tampered = part.body().to_vec();
    let at = tampered.len() * 3 / 4;
    tampered[at] ^= 0x01;
    for body in [part.body(), &tampered[..]] {
        let (data, content) = imxp_client::payload::build_data(
            &ep("fred@example.com"),
            &[ep("fred@example.com")],
            &part.content_type(),
            body,
        )
        .unwrap();
        let answer = support::reply_of(
            relay
                .deliver_payload(&ep("fred@example.com"), data.to_payload(&content))
                .await,
        );
        assert_eq!(answer, Response::Ok);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgp_sign_and_encrypt_then_listen_json() {
    bounded(async {
        let mut relay = FakeRelay::start().await;
        let setup = Setup::new(&relay);
        let generated = keys(&setup.fred, &["generate", "--pgp", "fred@example.com"]);
        assert!(generated.starts_with("generated OpenPGP "), "{generated}");
        keys(&setup.barney, &["generate", "--pgp", "barney@example.org"]);
        setup.exchange("pgp");
        let listed = keys(&setup.barney, &["list"]);
        assert_eq!(listed.lines().count(), 2, "{listed}");
        assert!(listed.lines().all(|l| l.contains("trusted")), "{listed}");

        let marker = "MARKER-7f3a-only-endpoints-see-this";
        let part = send_protected(
            &mut relay,
            &setup,
            &["--sign", "--encrypt", "--pgp"],
            &format!("hello barney, {marker}"),
        )
        .await;
        assert!(part.content_type().starts_with("multipart/encrypted"));
        assert!(!String::from_utf8_lossy(part.raw()).contains(marker));

        // Barney's keyring reads it (the fake relay logs in as fred, so
        // the listener attaches as fred@example.com).
        let barney = setup.barney.to_str().unwrap().to_owned();
        let listen = setup.imxp(
            &relay,
            &[
                "listen",
                "--as",
                "fred@example.com",
                "--json",
                "--count",
                "2",
                "--keyring",
                &barney,
            ],
        );
        let listening = tokio::spawn(run(listen));
        deliver_with_tampered_copy(&relay, &part).await;
        let output = listening.await.unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        let good = &lines[0];
        assert_eq!(good["verdict"], "verified", "{good}");
        assert_eq!(good["verified"], true);
        assert_eq!(good["encrypted"], true);
        assert_eq!(good["content"], format!("hello barney, {marker}"));
        assert_eq!(good["signer_user_id"], "<im:fred@example.com>");
        assert_eq!(good["security"]["cpim"]["from"], "im:fred@example.com");
        assert_eq!(good["security"]["cpim"]["subject"], "end to end");
        assert_eq!(good["security"]["signatures"][0]["verdict"], "good");
        let bad = &lines[1];
        assert_eq!(bad["verdict"], "invalid", "{bad}");
        assert_eq!(bad["verified"], false);
        assert_eq!(bad["content"], serde_json::Value::Null);
        assert_eq!(bad["security"]["decryptions"][0]["ok"], false);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smime_sign_and_encrypt_then_listen_text() {
    bounded(async {
        let mut relay = FakeRelay::start().await;
        let setup = Setup::new(&relay);
        let (ca, ca_key) = (setup.path("ca-cert.pem"), setup.path("ca-key.pem"));
        let made = keys(
            &setup.fred,
            &[
                "test-ca",
                "--cert",
                ca.to_str().unwrap(),
                "--key",
                ca_key.to_str().unwrap(),
            ],
        );
        assert!(made.starts_with("test CA "), "{made}");
        for (keyring, who) in [
            (&setup.fred, "fred@example.com"),
            (&setup.barney, "barney@example.org"),
        ] {
            keys(
                keyring,
                &[
                    "generate",
                    "--smime",
                    who,
                    "--ca",
                    ca.to_str().unwrap(),
                    "--ca-key",
                    ca_key.to_str().unwrap(),
                ],
            );
        }
        setup.exchange("smime");

        let part = send_protected(
            &mut relay,
            &setup,
            &["--sign", "--encrypt", "--smime"],
            "hi via S/MIME",
        )
        .await;
        assert!(
            part.content_type()
                .contains("smime-type=authEnveloped-data"),
            "{}",
            part.content_type()
        );
        let barney = setup.barney.to_str().unwrap().to_owned();
        let listen = setup.imxp(
            &relay,
            &[
                "listen",
                "--as",
                "fred@example.com",
                "--count",
                "2",
                "--keyring",
                &barney,
            ],
        );
        let listening = tokio::spawn(run(listen));
        deliver_with_tampered_copy(&relay, &part).await;
        let output = listening.await.unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        let blocks: Vec<&str> = text
            .split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .collect();
        assert!(
            blocks[0].contains(
                "security: VERIFIED; encrypted (S/MIME); S/MIME signature good by fred@example.com"
            ),
            "{text}"
        );
        assert!(blocks[0].contains("from: <im:fred@example.com>"), "{text}");
        assert!(text.contains("\nhi via S/MIME\n"), "{text}");
        assert!(
            text.contains("security: INVALID — DECRYPTION FAILED"),
            "{text}"
        );
        assert!(text.contains("(content withheld)"), "{text}");
        assert_eq!(text.matches("hi via S/MIME").count(), 1, "{text}");
    })
    .await;
}

#[test]
fn protection_flags_are_checked_before_connecting() {
    // No relay listens on port 9: the flags are refused first.
    let output = bin()
        .args([
            "--relay",
            "127.0.0.1:9",
            "--plaintext",
            "--user",
            "fred@example.com",
            "--password-file",
            "/dev/null",
            "send",
            "--from",
            "fred@example.com",
            "--to",
            "barney@example.org",
            "--sign",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--sign and --encrypt need --pgp or --smime"),
        "{stderr}"
    );
}
