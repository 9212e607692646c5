//! The `imxp` command against the fake relay, over TLS with `--ca`.

mod support;

use imxp_apex::{Content, Endpoint, Response};
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::{FakeRelay, Seen};

/// Guards against a hang (not a timing assertion).
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("the test hung")
}

struct Files {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    password: PathBuf,
}

fn files(relay: &FakeRelay, password: &str) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &relay.ca_pem).unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    Files {
        _dir: dir,
        ca,
        password: password_file,
    }
}

fn imxp(relay: &FakeRelay, ca: &Path, password_file: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_imxp"));
    command
        .args(["--relay", &relay.address, "--ca"])
        .arg(ca)
        .args([
            "--server-name",
            "localhost",
            "--user",
            "fred@example.com",
            "--password-file",
            password_file,
            // The fake relay speaks PLAIN only (SCRAM is the default).
            "--mechanism",
            "PLAIN",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the command on the blocking pool, feeding `stdin`.
async fn run(mut command: Command, stdin: Option<Vec<u8>>) -> Output {
    tokio::task::spawn_blocking(move || {
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().unwrap();
        if let Some(input) = stdin {
            // The command may exit without reading (a broken pipe then).
            let _ = child.stdin.take().unwrap().write_all(&input);
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn endpoint(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_text_prints_accepted() {
    bounded(async {
        let mut relay = FakeRelay::start().await;
        let files = files(&relay, "secret");
        let command = imxp(
            &relay,
            &files.ca,
            files.password.to_str().unwrap(),
            &[
                "send",
                "--from",
                "fred@example.com",
                "--to",
                "barney@example.org",
                "--to",
                "betty@example.org",
                "hello, barney ✓",
            ],
        );
        let output = run(command, None).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(text(&output.stdout), "accepted\n");
        let Seen::Attach { trans_id, .. } = relay.next_seen().await else {
            panic!("no attach")
        };
        let Seen::Data(data, Content::Part(part)) = relay.next_seen().await else {
            panic!("no data")
        };
        assert_eq!(data.originator.identity, endpoint("fred@example.com"));
        assert_eq!(
            data.recipient_identities().cloned().collect::<Vec<_>>(),
            [
                endpoint("barney@example.org"),
                endpoint("betty@example.org")
            ]
        );
        assert_eq!(part.content_type(), "text/plain; charset=utf-8");
        assert_eq!(part.body(), "hello, barney ✓".as_bytes());
        assert_eq!(relay.next_seen().await, Seen::Terminate(trans_id));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_a_file_with_the_password_on_standard_input() {
    bounded(async {
        let mut relay = FakeRelay::start().await;
        let files = files(&relay, "unused");
        let body: Vec<u8> = (0..=255).rev().collect();
        let path = files.ca.with_file_name("body.bin");
        std::fs::write(&path, &body).unwrap();
        let command = imxp(
            &relay,
            &files.ca,
            "-",
            &[
                "send",
                "--from",
                "fred@example.com",
                "--to",
                "barney@example.org",
                "--file",
                path.to_str().unwrap(),
                "--content-type",
                "application/x-test",
            ],
        );
        let output = run(command, Some(b"secret\n".to_vec())).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(text(&output.stdout), "accepted\n");
        let _attach = relay.next_seen().await;
        let Seen::Data(_, Content::Part(part)) = relay.next_seen().await else {
            panic!("no data")
        };
        assert_eq!(part.content_type(), "application/x-test");
        assert_eq!(part.body(), &body[..]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_from_standard_input_defaults_to_utf8_text() {
    bounded(async {
        let mut relay = FakeRelay::start().await;
        let files = files(&relay, "secret");
        let command = imxp(
            &relay,
            &files.ca,
            files.password.to_str().unwrap(),
            &[
                "send",
                "--from",
                "fred@example.com",
                "--to",
                "barney@example.org",
                "-",
            ],
        );
        let output = run(command, Some(b"line one\nline two\n".to_vec())).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        let _attach = relay.next_seen().await;
        let Seen::Data(_, Content::Part(part)) = relay.next_seen().await else {
            panic!("no data")
        };
        assert_eq!(part.content_type(), "text/plain; charset=utf-8");
        assert_eq!(part.body(), b"line one\nline two\n");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_with_status_3() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let files = files(&relay, "secret");
        // The relay refuses the datagram: the outcome is printed.
        let command = imxp(
            &relay,
            &files.ca,
            files.password.to_str().unwrap(),
            &[
                "send",
                "--from",
                "fred@example.com",
                "--to",
                "x@refused.example",
                "hi",
            ],
        );
        let output = run(command, None).await;
        assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
        assert_eq!(
            text(&output.stdout),
            "refused 554 policy: no mail to refused.example\n"
        );
        // The relay refuses the attach (not fred's endpoint).
        let command = imxp(
            &relay,
            &files.ca,
            files.password.to_str().unwrap(),
            &[
                "send",
                "--from",
                "wilma@example.com",
                "--to",
                "barney@example.org",
                "hi",
            ],
        );
        let output = run(command, None).await;
        assert_eq!(output.status.code(), Some(3));
        let stderr = text(&output.stderr);
        assert!(stderr.contains("wilma@example.com"), "{stderr}");
        assert!(stderr.contains("537 access denied"), "{stderr}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_with_status_1() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let files = files(&relay, "wrong");
        let command = imxp(
            &relay,
            &files.ca,
            files.password.to_str().unwrap(),
            &["listen", "--as", "fred@example.com"],
        );
        let output = run(command, None).await;
        assert_eq!(output.status.code(), Some(1));
        let stderr = text(&output.stderr);
        assert!(stderr.contains("535"), "{stderr}");
        // Both password and content on standard input is a usage mistake.
        let command = imxp(
            &relay,
            &files.ca,
            "-",
            &[
                "send",
                "--from",
                "fred@example.com",
                "--to",
                "barney@example.org",
                "-",
            ],
        );
        let output = run(command, Some(b"secret\n".to_vec())).await;
        assert_eq!(output.status.code(), Some(1));
        assert!(text(&output.stderr).contains("standard input"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_json_prints_and_acknowledges_each_datagram() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let files = files(&relay, "secret");
        let command = imxp(
            &relay,
            &files.ca,
            files.password.to_str().unwrap(),
            &[
                "listen",
                "--as",
                "fred@example.com",
                "--json",
                "--count",
                "2",
            ],
        );
        let listening = tokio::spawn(run(command, None));
        let answer = relay
            .deliver_text("barney@example.org", "fred@example.com", "hi \"fred\"\n")
            .await;
        assert_eq!(answer, Response::Ok);
        let (data, content) = imxp_client::payload::build_data(
            &endpoint("betty@example.org"),
            &[endpoint("fred@example.com")],
            "image/png",
            &[0x89, 0x50, 0x4e, 0x47, 0xff],
        )
        .unwrap();
        let answer = support::reply_of(
            relay
                .deliver_payload(&endpoint("fred@example.com"), data.to_payload(&content))
                .await,
        );
        assert_eq!(answer, Response::Ok);
        let output = listening.await.unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        let lines: Vec<serde_json::Value> = text(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                serde_json::json!({
                    "originator": "barney@example.org",
                    "recipient": "fred@example.com",
                    "content_type": "text/plain; charset=utf-8",
                    "content": "hi \"fred\"\n",
                    "base64": false,
                }),
                serde_json::json!({
                    "originator": "betty@example.org",
                    "recipient": "fred@example.com",
                    "content_type": "image/png",
                    "content": "iVBOR/8=",
                    "base64": true,
                }),
            ]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_as_two_endpoints_prints_text_blocks() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let files = files(&relay, "secret");
        let command = imxp(
            &relay,
            &files.ca,
            files.password.to_str().unwrap(),
            &[
                "listen",
                "--as",
                "fred@example.com",
                "--as",
                "fred/appl=chat@example.com",
                "--count",
                "2",
            ],
        );
        let listening = tokio::spawn(run(command, None));
        let answer = relay
            .deliver_text(
                "barney@example.org",
                "fred/appl=chat@example.com",
                "to chat",
            )
            .await;
        assert_eq!(answer, Response::Ok);
        let answer = relay
            .deliver_text("barney@example.org", "fred@example.com", "to fred\n")
            .await;
        assert_eq!(answer, Response::Ok);
        let output = listening.await.unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(
            text(&output.stdout),
            "originator: barney@example.org\nrecipient: fred/appl=chat@example.com\n\
             content-type: text/plain; charset=utf-8\ncontent-length: 7\n\nto chat\n\n\
             originator: barney@example.org\nrecipient: fred@example.com\n\
             content-type: text/plain; charset=utf-8\ncontent-length: 8\n\nto fred\n\n"
        );
    })
    .await;
}

#[test]
fn help_describes_the_commands() {
    let output = Command::new(env!("CARGO_BIN_EXE_imxp"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = text(&output.stdout);
    for expected in [
        "listen",
        "send",
        "--relay",
        "--ca",
        "--plaintext",
        "--password-file",
        "Exit status",
    ] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
    // The default login is SCRAM-SHA-256, not PLAIN.
    assert!(!help.contains("SASL PLAIN"), "{help}");
    assert!(help.contains("SCRAM-SHA-256 by default"), "{help}");
    let output = Command::new(env!("CARGO_BIN_EXE_imxp"))
        .args([
            "--relay",
            "x",
            "--user",
            "u",
            "--password-file",
            "p",
            "send",
            "--help",
        ])
        .output()
        .unwrap();
    let help = text(&output.stdout);
    for expected in ["--from", "--to", "--file", "--content-type", "[TEXT]"] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_listen_cleanly() {
    bounded(async {
        let mut relay = FakeRelay::start().await;
        let files = files(&relay, "secret");
        let mut command = imxp(
            &relay,
            &files.ca,
            files.password.to_str().unwrap(),
            &["listen", "--as", "fred@example.com"],
        );
        let child = command.spawn().unwrap();
        let pid = child.id().to_string();
        let waiting = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
        let Seen::Attach { trans_id, .. } = relay.next_seen().await else {
            panic!("no attach")
        };
        // The handlers are installed before connecting, so the signal is
        // caught now that the relay has seen the attach.
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let output = waiting.await.unwrap();
        assert!(
            output.status.success(),
            "{:?} {}",
            output.status,
            text(&output.stderr)
        );
        assert_eq!(relay.next_seen().await, Seen::Terminate(trans_id));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_delivery_options_and_listen_shows_reports() {
    bounded(async {
        let mut relay = FakeRelay::start().await;
        let files = files(&relay, "secret");
        let command = imxp(
            &relay,
            &files.ca,
            files.password.to_str().unwrap(),
            &[
                "send",
                "--from",
                "fred@example.com",
                "--to",
                "barney@example.org",
                "--status-request",
                "--hop",
                "all",
                "--deadline",
                "10000",
                "--report-after",
                "5000",
                "--return-trip",
                "20000",
                "--hops",
                "4",
                "--report-errors",
                "hi",
            ],
        );
        let output = run(command, None).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        let stdout = text(&output.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines[0], "accepted");
        assert!(lines[1].starts_with("statusRequest transID="), "{stdout}");
        assert!(lines[2].starts_with("dataTiming transID="), "{stdout}");
        assert!(lines[3].starts_with("dataHopping transID="), "{stdout}");
        let Seen::Attach { .. } = relay.next_seen().await else {
            panic!("no attach")
        };
        let Seen::Data(data, _) = relay.next_seen().await else {
            panic!("no data")
        };
        let status = data.option("statusRequest").expect("statusRequest");
        assert_eq!(status.target_hop, imxp_apex::TargetHop::All);
        assert!(lines[1].contains(&format!("transID={}", status.trans_id.unwrap())));
        let (_, timing) = data.data_timing().unwrap().expect("dataTiming");
        assert_eq!(
            (timing.no_later_than, timing.report_after, timing.return_trip),
            (10_000, 5_000, 20_000)
        );
        assert!(timing.report_errors);
        let (_, hopping) = data.data_hopping().unwrap().expect("dataHopping");
        assert_eq!(hopping.no_more_than, 4);

        // A bad value names the flag.
        let command = imxp(
            &relay,
            &files.ca,
            files.password.to_str().unwrap(),
            &[
                "send", "--from", "fred@example.com", "--to", "b@example.org", "--hops", "0", "x",
            ],
        );
        let output = run(command, None).await;
        assert!(!output.status.success());
        assert!(text(&output.stderr).contains("--hops"), "{}", text(&output.stderr));

        // listen shows a report decoded.
        let command = imxp(
            &relay,
            &files.ca,
            files.password.to_str().unwrap(),
            &["listen", "--as", "fred@example.com", "--count", "1"],
        );
        let listening = tokio::spawn(run(command, None));
        let report = imxp_apex::StatusResponse::parse(
            b"<statusResponse transID='86'><destination identity='barney@example.org'><reply code='250' /></destination></statusResponse>",
        )
        .unwrap();
        let (data, content) = report.to_report(
            imxp_apex::Domain::parse("example.org").unwrap(),
            endpoint("fred@example.com"),
        );
        let answer = support::reply_of(
            relay
                .deliver_payload(&endpoint("fred@example.com"), data.to_payload(&content))
                .await,
        );
        assert_eq!(answer, Response::Ok);
        let output = listening.await.unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        let stdout = text(&output.stdout);
        assert!(stdout.starts_with("originator: apex=report@example.org\n"), "{stdout}");
        assert!(
            stdout.contains("report: transID=86\nstatus: barney@example.org 250\n"),
            "{stdout}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_hold_adds_hold4endpoint() {
    bounded(async {
        let mut relay = FakeRelay::start().await;
        let files = files(&relay, "secret");
        let command = imxp(
            &relay,
            &files.ca,
            files.password.to_str().unwrap(),
            &[
                "send",
                "--from",
                "fred@example.com",
                "--to",
                "barney@example.org",
                "--hold",
                "wait for me",
            ],
        );
        let output = run(command, None).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        let Seen::Attach { take_over, .. } = relay.next_seen().await else {
            panic!("no attach")
        };
        assert!(!take_over);
        let Seen::Data(data, _) = relay.next_seen().await else {
            panic!("no data")
        };
        // RFC 3342 §3: `<option internal='hold4Endpoint' />`, no attributes.
        assert_eq!(data.options.len(), 1);
        assert!(data.options[0].is_internal("hold4Endpoint"));
        assert!(
            data.options[0]
                .to_xml()
                .contains("internal='hold4Endpoint'")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_override_attaches_with_attach_override_and_reports_556() {
    bounded(async {
        let mut relay = FakeRelay::start().await;
        let files = files(&relay, "secret");
        let command = imxp(
            &relay,
            &files.ca,
            files.password.to_str().unwrap(),
            &["listen", "--as", "fred@example.com", "--override"],
        );
        let listening = tokio::spawn(run(command, None));
        let Seen::Attach { take_over, .. } = relay.next_seen().await else {
            panic!("no attach")
        };
        assert!(take_over, "the attach carries attachOverride");
        // Another application overrides this one: the relay's 556.
        let answer = relay
            .terminate(
                &endpoint("fred@example.com"),
                None,
                imxp_apex::ReplyCode::ATTACHMENT_OVERRIDDEN,
            )
            .await;
        assert_eq!(answer, Response::Ok);
        let output = listening.await.unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
        assert!(
            text(&output.stderr).contains("fred@example.com: 556"),
            "{}",
            text(&output.stderr)
        );
    })
    .await;
}
