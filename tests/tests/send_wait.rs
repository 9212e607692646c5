//! `imxp send --wait` against real relays (a.test → b.test): the sender
//! stays attached for the status reports its datagram asked for, prints
//! them, and its exit status says what became of the recipients.

use imxp_tests::relays::{Attached, RelaySpec, TestCa, TestRelay, imxp_binary, start_pair};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Guards against a hang (not a timing assertion).
const BOUND: Duration = Duration::from_secs(120);

/// A and B routing each other's domain statically.
async fn two_relays(base: &Path, ca: &TestCa) -> (TestRelay, TestRelay) {
    let b = RelaySpec::new("b.test", &["wilma", "betty"]);
    start_pair(base, ca, RelaySpec::new("a.test", &["fred"]), b).await
}

/// Wilma attached at B, reading (and so acknowledging) all the time; the
/// contents she received.
async fn wilma(b: &TestRelay, ca: &TestCa) -> tokio::sync::mpsc::UnboundedReceiver<Vec<u8>> {
    let mut wilma: Attached = b
        .attach(ca, "wilma@b.test", "secret-wilma", "wilma@b.test")
        .await
        .expect("wilma attaches at B");
    wilma.set_auto_ack(true);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(received) = wilma.next().await {
            if tx.send(received.content.to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// `imxp send` as fred through A's edge, with `timeout` seconds.
struct Fred {
    edge: std::net::SocketAddr,
    ca_file: PathBuf,
    password_file: PathBuf,
}

impl Fred {
    async fn send(&self, timeout: u32, args: &[&str]) -> Output {
        let mut command = Command::new(imxp_binary());
        command
            .arg("--relay")
            .arg(self.edge.to_string())
            .arg("--ca")
            .arg(&self.ca_file)
            .args(["--server-name", "a.test", "--user", "fred@a.test"])
            .args(["--timeout", &timeout.to_string()])
            .arg("--password-file")
            .arg(&self.password_file)
            .args(["send", "--from", "fred@a.test"])
            .args(args);
        tokio::time::timeout(
            BOUND,
            tokio::task::spawn_blocking(move || command.output().expect("imxp runs")),
        )
        .await
        .expect("imxp ended")
        .unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_wait_prints_the_reports_and_exits_with_the_outcome() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (a, b) = two_relays(base.path(), &ca).await;
    let mut wilma = wilma(&b, &ca).await;
    let password_file = base.path().join("fred.password");
    std::fs::write(&password_file, "secret-fred\n").unwrap();
    let fred = Fred {
        edge: a.edge,
        ca_file: ca.write(base.path()),
        password_file,
    };

    // Delivered: the final relay's 250, exit 0.
    let output = fred
        .send(
            30,
            &["--to", "wilma@b.test", "--status-request", "--wait", "hi"],
        )
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "accepted", "{text}");
    assert!(lines[1].starts_with("statusRequest transID="), "{text}");
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[2].starts_with("status: wilma@b.test 250"), "{text}");
    let received = tokio::time::timeout(BOUND, wilma.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received, b"hi");

    // One recipient unknown: its 550 and wilma's 250, as JSON; exit 3.
    let output = fred
        .send(
            30,
            &[
                "--to",
                "nobody@b.test",
                "--to",
                "wilma@b.test",
                "--status-request",
                "--wait",
                "--json",
                "hi again",
            ],
        )
        .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    // JSON lines: the acceptance, then one object per report.
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with('{') && lines[0].contains(r#""accepted":true"#),
        "{text}"
    );
    assert!(lines[0].contains("statusRequest transID="), "{text}");
    let mut codes = Vec::new();
    for report in &lines[1..] {
        assert!(report.starts_with('{') && report.ends_with('}'), "{report}");
        assert!(
            report.contains(r#""reporter":"apex=report@b.test""#),
            "{report}"
        );
        assert!(report.contains(r#""trans_id":"#), "{report}");
        codes.extend(destinations(report));
    }
    codes.sort();
    assert_eq!(
        codes,
        [
            ("nobody@b.test".to_owned(), 550),
            ("wilma@b.test".to_owned(), 250)
        ]
    );

    // The final-hop report of returnTrip tells delivery too.
    let output = fred
        .send(
            30,
            &[
                "--to",
                "wilma@b.test",
                "--return-trip",
                "60000",
                "--wait",
                "trip",
            ],
        )
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("\nstatus: wilma@b.test 250"),
        "{}",
        stdout(&output)
    );

    // Held for betty, who never attaches: no report within --timeout, exit 1.
    let output = fred
        .send(
            3,
            &[
                "--to",
                "betty@b.test",
                "--hold",
                "--status-request",
                "--wait",
                "held",
            ],
        )
        .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no outcome within 3 s for betty@b.test"),
        "{}",
        stderr(&output)
    );
    assert!(!stdout(&output).contains("status:"), "{}", stdout(&output));

    // --wait without an option that brings reports is a usage error.
    let output = fred
        .send(30, &["--to", "wilma@b.test", "--wait", "x"])
        .await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    drop(wilma);
    a.stop().await;
    b.stop().await;
}

/// The (identity, code) of each destination object in a JSON report line:
/// the innermost `{…}` holding an `"identity"` (whatever the key order).
fn destinations(line: &str) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(end) = rest.find('}') {
        let object = &rest[rest[..end].rfind('{').unwrap_or(0)..end];
        rest = &rest[end + 1..];
        let Some(identity) = object.split(r#""identity":""#).nth(1) else {
            continue;
        };
        let identity = identity.split('"').next().unwrap().to_owned();
        let code = object.split(r#""code":"#).nth(1).expect("a code");
        let digits: String = code.chars().take_while(char::is_ascii_digit).collect();
        found.push((identity, digits.parse().unwrap()));
    }
    found
}
