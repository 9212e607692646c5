//! imxpd under systemd: the units in `dist/` pass `systemd-analyze
//! verify` and keep a low exposure score, and a real `imxpd` tells the
//! service manager `READY=1` only once it accepts sessions and
//! `STOPPING=1` when SIGTERM makes it drain (`sd_notify(3)`, read here from
//! the `NOTIFY_SOCKET` datagram socket a service manager would own).

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const UNITS: [&str; 3] = ["imxpd.service", "imxpd-edge.socket", "imxpd-mesh.socket"];

fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist")
}

/// The units, with `ExecStart=` pointing at the binary under test, in `dir`.
fn units_in(dir: &Path) -> Vec<PathBuf> {
    UNITS
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(dist().join(name)).expect("unit in dist/");
            let path = dir.join(name);
            std::fs::write(
                &path,
                text.replace("/usr/bin/imxpd", env!("CARGO_BIN_EXE_imxpd")),
            )
            .unwrap();
            path
        })
        .collect()
}

fn systemd_analyze() -> Command {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "systemd-analyze is missing: scripts/test installs the Debian package systemd"
    );
    Command::new("systemd-analyze")
}

#[test]
fn the_units_verify() {
    let dir = tempfile::tempdir().unwrap();
    let units = units_in(dir.path());
    // Documentation= names the man pages, which need not be installed here.
    let output = systemd_analyze()
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .unwrap();
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_service_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let units = units_in(dir.path());
    let output = systemd_analyze()
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&units[0])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for imxpd.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in: {text}"));
    // The README quotes the score; 2.0 and below is what systemd calls OK
    // with room to spare (a service that only talks to the network).
    assert!(score <= 2.0, "exposure {score} (README says 1.4): {text}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The next notification; fails with the relay's log if the relay exits
/// first or says nothing for a minute.
fn next_notification(socket: &UnixDatagram, child: &mut Child, dir: &Path) -> String {
    let mut buffer = [0u8; 512];
    let log = || std::fs::read_to_string(dir.join("imxpd.log")).unwrap_or_default();
    for _ in 0..300 {
        if let Ok(n) = socket.recv(&mut buffer) {
            return String::from_utf8_lossy(&buffer[..n]).into_owned();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("imxpd exited ({status}) before notifying:\n{}", log());
        }
    }
    panic!("no notification within a minute:\n{}", log());
}

#[test]
fn ready_after_the_listeners_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (edge, mesh) = (free_port(), free_port());
    let config = dir.path().join("imxpd.toml");
    std::fs::write(
        &config,
        format!(
            // allow_root: CI runs the suite as root.
            "[relay]\ndomains = [\"a.test\"]\nstate_dir = \"{dir}\"\nallow_root = true\n\
             [listen]\nedge = [\"127.0.0.1:{edge}\"]\nmesh = [\"127.0.0.1:{mesh}\"]\n\
             [tls]\nrequired = false\n",
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let socket_path = dir.path().join("notify.sock");
    let notifications = UnixDatagram::bind(&socket_path).unwrap();
    let log = std::fs::File::create(dir.path().join("imxpd.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_imxpd"))
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("IMXP_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    notifications
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let first = next_notification(&notifications, &mut child, dir.path());
    assert!(first.contains("READY=1"), "{first}");
    // Ready means accepting: both ports take a connection at once.
    TcpStream::connect(("127.0.0.1", edge)).expect("edge accepts when READY=1");
    TcpStream::connect(("127.0.0.1", mesh)).expect("mesh accepts when READY=1");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let next = next_notification(&notifications, &mut child, dir.path());
    assert!(next.contains("STOPPING=1"), "{next}");
    let status = child.wait().unwrap();
    assert!(status.success(), "drained and exited: {status}");
}

#[test]
fn the_example_configuration_is_valid() {
    let config = imxp_relay::config::Config::load(&dist().join("imxpd.toml"))
        .unwrap_or_else(|e| panic!("dist/imxpd.toml: {e}"));
    assert_eq!(config.domains, ["example.com"]);
}
