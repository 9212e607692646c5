//! `imxp-bench relay` runs end to end on a tiny load: two real `imxpd`
//! processes, 200 datagrams, every figure of the JSON report present. It
//! shows the tool works; it asserts nothing about speed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `imxpd` in this build's target directory, built if missing.
fn imxpd() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_imxp-bench"));
    let profile_dir = bench.parent().expect("target/<profile>").to_owned();
    let binary = profile_dir.join("imxpd");
    if !binary.exists() {
        let target_dir = profile_dir.parent().expect("target directory");
        let mut build = Command::new(env!("CARGO"));
        build.args([
            "build",
            "-q",
            "-p",
            "imxp-relay",
            "--bin",
            "imxpd",
            "--target-dir",
        ]);
        build.arg(target_dir);
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

fn field<'a>(value: &'a serde_json::Value, path: &[&str]) -> &'a serde_json::Value {
    path.iter().fold(value, |v, key| &v[*key])
}

#[test]
fn two_relays_two_hundred_datagrams() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_imxp-bench"))
        .args([
            "relay",
            "--count",
            "200",
            "--senders",
            "4",
            "--pipeline",
            "2",
        ])
        .args([
            "--sinks",
            "2",
            "--size",
            "300",
            "--json",
            "--stall-secs",
            "60",
        ])
        .arg("--imxpd")
        .arg(imxpd())
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("imxp-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "imxp-bench failed: {}\n{stdout}\nlogs: {}",
        String::from_utf8_lossy(&output.stderr),
        logs(dir.path())
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["accepted"], 200);
    assert_eq!(report["delivered"], 200);
    assert_eq!(report["duplicates"], 0);
    assert_eq!(report["refused"], 0);
    let p50 = field(&report, &["latency_us", "p50"])
        .as_u64()
        .expect("p50");
    let max = field(&report, &["latency_us", "max"])
        .as_u64()
        .expect("max");
    assert!(p50 > 0 && p50 <= max, "{report}");
    let relays = report["relays"].as_array().expect("relays");
    let domains: Vec<&str> = relays
        .iter()
        .map(|r| r["domain"].as_str().unwrap())
        .collect();
    assert_eq!(domains, ["a.test", "b.test"]);
    for relay in relays {
        // Each relay committed the datagrams it accepted.
        assert!(relay["commits"].as_u64().expect("commits") > 0, "{relay}");
        assert!(relay["operations"].as_u64().unwrap() >= 200, "{relay}");
        assert!(relay["rss_kib"].as_u64().expect("rss") > 0, "{relay}");
        assert!(relay["cpu_us_per_datagram"].as_f64().is_some(), "{relay}");
    }
    // The relays were stopped, and the files an operator writes are there.
    for domain in ["a.test", "b.test"] {
        let config = std::fs::read_to_string(dir.path().join(domain).join("imxpd.toml"))
            .expect("imxpd.toml");
        assert!(config.contains("[routes]"), "{config}");
        assert!(dir.path().join(domain).join("users.toml").exists());
    }
}

fn logs(dir: &Path) -> String {
    ["a.test", "b.test"]
        .iter()
        .map(|d| std::fs::read_to_string(dir.join(d).join("imxpd.log")).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}
