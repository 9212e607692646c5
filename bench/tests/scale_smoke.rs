//! The scale scenarios of `imxp-bench` run end to end, scaled down (a few
//! hundred datagrams or endpoints): each against real `imxpd` processes,
//! each reporting its figures as one JSON object. They show the scenarios
//! work; nothing is asserted about speed.

use std::path::PathBuf;
use std::process::Command;

/// `imxpd` next to `imxp-bench` (the smoke test in `smoke.rs` builds it
/// if missing; so does this).
fn imxpd() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_imxp-bench"));
    let profile_dir = bench.parent().expect("target/<profile>").to_owned();
    let binary = profile_dir.join("imxpd");
    if !binary.exists() {
        let target_dir = profile_dir.parent().expect("target directory");
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-q", "-p", "imxp-relay", "--bin", "imxpd"]);
        build.arg("--target-dir").arg(target_dir);
        if profile_dir.file_name() == Some("release".as_ref()) {
            build.arg("--release");
        }
        assert!(
            build.status().expect("cargo runs").success(),
            "building imxpd failed"
        );
    }
    binary
}

/// Runs `imxp-bench SCENARIO ARGS --json` and returns its report.
fn scenario(name: &str, args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_imxp-bench"))
        .arg(name)
        .args(args)
        .args(["--json", "--stall-secs", "60"])
        .arg("--imxpd")
        .arg(imxpd())
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("imxp-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let logs: String = ["a.test", "b.test"]
        .iter()
        .map(|d| std::fs::read_to_string(dir.path().join(d).join("imxpd.log")).unwrap_or_default())
        .collect();
    assert!(
        output.status.success(),
        "imxp-bench {name} failed: {}\n{stdout}\nlogs: {logs}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["scenario"], name);
    report
}

#[test]
fn backlog_is_drained() {
    let r = scenario("backlog", &["--count", "300", "--senders", "4"]);
    assert_eq!(r["queued"], 300);
    assert_eq!(r["delivered"], 300);
    assert!(r["drained_per_s"].as_f64().expect("rate") > 0.0, "{r}");
    assert!(r["a_peak_rss_kib"].as_u64().expect("rss") > 0, "{r}");
}

#[test]
fn restart_accepts_and_delivers_again() {
    let r = scenario("restart", &["--count", "300", "--senders", "4"]);
    assert_eq!(r["queued"], 300);
    let listening = r["listening_ms"].as_f64().expect("listening");
    let accepting = r["accepting_ms"].as_f64().expect("accepting");
    let delivering = r["delivering_ms"].as_f64().expect("delivering");
    assert!(
        0.0 < listening && listening <= accepting && accepting <= delivering,
        "{r}"
    );
    assert!(r["spool_bytes"].as_u64().expect("bytes") > 0, "{r}");
}

#[test]
fn idle_endpoints_are_attached() {
    let r = scenario("idle", &["--endpoints", "200", "--sessions", "5"]);
    assert_eq!(r["endpoints"], 200);
    assert_eq!(r["sessions"], 5);
    assert!(r["rss_attached_kib"].as_u64().expect("rss") > 0, "{r}");
    assert!(r["kib_per_endpoint"].as_f64().is_some(), "{r}");
}
