//! `imxp-spool show` (the built binary, offline): each recipient's last
//! error is printed once, on its attempts line, not again on its state line.

use std::path::Path;
use std::process::Command;

use imxp_spool::{
    DatagramId, Failure, FailureKind, NewDatagram, Outcome, QueueOptions, Spool, SpoolConfig,
};

const BIN: &str = env!("CARGO_BIN_EXE_imxp-spool");

fn show(state: &Path, id: DatagramId) -> String {
    let out = Command::new(BIN)
        .arg("--state-dir")
        .arg(state)
        .args(["show", &id.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_last_error_of_a_recipient_is_printed_once() {
    let state = tempfile::tempdir().unwrap();
    let id = DatagramId::from_bytes([7; 16]);
    {
        let spool = Spool::open(state.path().join("spool"), SpoolConfig::default()).unwrap();
        spool
            .enqueue(NewDatagram {
                id,
                originator: "alice@a.example".into(),
                recipients: vec!["bob@b.example".into(), "carol@c.example".into()],
                options: QueueOptions::default(),
                content: b"Content-Type: text/plain\r\n\r\nhi".to_vec(),
                id_origin: imxp_spool::IdOrigin::Generated,
            })
            .wait()
            .unwrap();
        spool.claim(id).wait().unwrap().unwrap();
        spool
            .record(
                id,
                vec![
                    (
                        0,
                        Outcome::Deferred(Failure::new(FailureKind::Dns, "nxdomain-b-example")),
                    ),
                    (
                        1,
                        Outcome::Failed(Failure::new(
                            FailureKind::Reply { code: 550 },
                            "no-such-user-carol",
                        )),
                    ),
                ],
            )
            .wait()
            .unwrap();
    }
    let text = show(state.path(), id);
    assert_eq!(text.matches("nxdomain-b-example").count(), 1, "{text}");
    assert_eq!(text.matches("no-such-user-carol").count(), 1, "{text}");
    for line in text.lines().filter(|l| l.contains("-example")) {
        assert!(line.contains("attempts"), "error on the state line: {text}");
    }
}
