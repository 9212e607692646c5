//! `imxp-spool` (the built binary) offline against a spool made here, and
//! online against the admin handler when the spool is locked.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use imxp_spool::admin::{self, Handler};
use imxp_spool::{
    DatagramId, EngineKind, Failure, FailureKind, NewDatagram, Outcome, QueueOptions, Spool,
    SpoolConfig,
};

const BIN: &str = env!("CARGO_BIN_EXE_imxp-spool");

fn id(n: u8) -> DatagramId {
    DatagramId::from_bytes([n; 16])
}

fn content(n: u8) -> Vec<u8> {
    // Binary, with NUL, CR LF and invalid UTF-8: must come back byte-exact.
    let mut c = b"Content-Type: application/octet-stream\r\n\r\n".to_vec();
    c.extend((0..=255u8).map(|b| b ^ n));
    c
}

fn make_spool(state: &Path, kind: EngineKind) {
    let spool = Spool::open(
        state.join("spool"),
        SpoolConfig {
            engine: kind,
            ..SpoolConfig::default()
        },
    )
    .unwrap();
    for (n, rcpt) in [
        (1, "bob@b.example"),
        (2, "carol@c.example"),
        (3, "dave@b.example"),
    ] {
        spool
            .enqueue(NewDatagram {
                id: id(n),
                id_origin: imxp_spool::IdOrigin::Derived,
                originator: "alice@a.example".into(),
                recipients: vec![rcpt.into()],
                options: QueueOptions::default(),
                content: content(n),
            })
            .wait()
            .unwrap();
    }
    spool.claim(id(2)).wait().unwrap().unwrap();
    spool
        .record(
            id(2),
            vec![(
                0,
                Outcome::Deferred(Failure::new(FailureKind::Dns, "nxdomain")),
            )],
        )
        .wait()
        .unwrap();
}

fn cli(state: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(state: &Path, args: &[&str]) -> String {
    let out = cli(state, args, None);
    assert!(
        out.status.success(),
        "imxp-spool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn offline(kind: EngineKind) {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    make_spool(s, kind);

    let list = ok(s, &["list"]);
    for n in 1..=3 {
        assert!(list.contains(&id(n).to_string()), "{list}");
    }
    assert!(list.contains("-- 3 datagram(s)"));
    let json = ok(s, &["list", "--json"]);
    let envs: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(envs.len(), 3);
    assert_eq!(envs[0]["id"], id(1).to_string());
    let deferred = ok(s, &["list", "--state", "deferred", "--json"]);
    assert_eq!(deferred.lines().count(), 1);
    assert!(deferred.contains(&id(2).to_string()));
    assert_eq!(
        ok(s, &["list", "--domain", "b.example", "--json"])
            .lines()
            .count(),
        2
    );
    assert_eq!(
        ok(s, &["list", "--recipient", "carol@c.example", "--json"])
            .lines()
            .count(),
        1
    );
    assert_eq!(
        ok(s, &["list", "--originator", "x@y", "--json"])
            .lines()
            .count(),
        0
    );
    assert_eq!(
        ok(s, &["list", "--older-than", "1h", "--json"])
            .lines()
            .count(),
        0
    );
    assert_eq!(
        ok(s, &["list", "--newer-than", "1h", "--json"])
            .lines()
            .count(),
        3
    );

    let show = ok(s, &["show", &id(2).to_string()]);
    assert!(show.contains("carol@c.example"), "{show}");
    assert!(show.contains("deferred"), "{show}");
    assert!(show.contains("nxdomain"), "{show}");
    let raw = cli(s, &["show", &id(2).to_string(), "--content"], None);
    assert!(raw.status.success());
    assert_eq!(raw.stdout, content(2));

    // Hold / release / requeue.
    ok(s, &["hold", &id(1).to_string()]);
    let held = ok(s, &["list", "--state", "held", "--json"]);
    assert!(held.contains(&id(1).to_string()) && held.lines().count() == 1);
    ok(s, &["release", &id(1).to_string()]);
    assert_eq!(
        ok(s, &["list", "--state", "held", "--json"])
            .lines()
            .count(),
        0
    );
    let rq = ok(s, &["requeue", &id(2).to_string()]);
    assert!(rq.contains("requeued 1"), "{rq}");
    assert_eq!(
        ok(s, &["list", "--state", "deferred", "--json"])
            .lines()
            .count(),
        0
    );
    let fl = ok(s, &["flush"]);
    assert!(fl.contains("flushed 0"), "{fl}");

    // Stats and check.
    let stats: serde_json::Value = serde_json::from_str(&ok(s, &["stats", "--json"])).unwrap();
    assert_eq!(stats["datagrams"], 3);
    assert!(ok(s, &["stats"]).contains("b.example"));
    assert!(ok(s, &["check"]).contains("ok"));
    assert!(ok(s, &["quarantine"]).contains("0 record(s)"));

    // Export, then import into a spool of the other engine.
    let dump = s.join("spool.dump");
    ok(s, &["export", "-o", dump.to_str().unwrap()]);
    let other = if kind == EngineKind::Redb {
        "sled"
    } else {
        "redb"
    };
    let state2 = tempfile::tempdir().unwrap();
    let s2 = state2.path();
    ok(s2, &["--engine", other, "import", dump.to_str().unwrap()]);
    assert!(EngineKind::detect(&s2.join("spool")).unwrap().name() == other);
    let list2 = ok(s2, &["list", "--json"]);
    assert_eq!(list2, ok(s, &["list", "--json"]));
    let raw = cli(s2, &["show", &id(3).to_string(), "--content"], None);
    assert_eq!(raw.stdout, content(3));
    // Import again: everything skipped, nothing duplicated.
    let again = cli(s2, &["import", dump.to_str().unwrap()], None);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("(3 already present)"));
    // A truncated dump is refused.
    let text = std::fs::read_to_string(&dump).unwrap();
    let cut: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    let state3 = tempfile::tempdir().unwrap();
    let bad = cli(state3.path(), &["import", "-"], Some(&cut));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("truncated"));

    // Ids on stdin, dry run, ALL.
    let ids = format!("{}\n{}\n", id(1), id(3));
    let dry = cli(s, &["delete", "--dry-run", "-"], Some(&ids));
    assert!(dry.status.success());
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would deleted 2"));
    assert_eq!(ok(s, &["list", "--json"]).lines().count(), 3);
    let lower = cli(s, &["delete", "all"], None);
    assert!(!lower.status.success());
    assert!(String::from_utf8_lossy(&lower.stderr).contains("ALL in capitals"));
    let del = cli(s, &["delete", "-"], Some(&ids));
    assert!(del.status.success());
    assert_eq!(ok(s, &["list", "--json"]).lines().count(), 1);
    ok(s, &["delete", "ALL"]);
    assert_eq!(ok(s, &["list", "--json"]).lines().count(), 0);
    let missing = ok(s, &["delete", &id(7).to_string()]);
    assert!(missing.contains("not found"));
    assert!(!cli(s, &["show", "nothex"], None).status.success());
}

#[test]
fn offline_redb() {
    offline(EngineKind::Redb);
}

#[test]
fn offline_sled() {
    offline(EngineKind::Sled);
}

#[test]
fn locked_spool_uses_the_socket_or_says_why() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    make_spool(s, EngineKind::Redb);
    // This process plays the relay: it owns the spool.
    let spool = Spool::open(s.join("spool"), SpoolConfig::default()).unwrap();

    // No socket: a clear error, quickly, and nothing touched.
    let out = cli(s, &["--timeout", "2", "list"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked by another process"), "{err}");
    assert!(err.contains("does not answer"), "{err}");
    let out = cli(s, &["--offline", "list"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop the relay"));
    let out = cli(s, &["export"], None);
    assert!(!out.status.success());

    // With the admin socket served, the same commands go online.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = {
        let _g = rt.enter();
        admin::bind(&s.join(admin::SOCKET_NAME)).unwrap()
    };
    rt.spawn(admin::serve(
        listener,
        Handler::new(spool.clone()),
        std::future::pending(),
    ));
    let list = ok(s, &["list", "--json"]);
    assert_eq!(list.lines().count(), 3);
    ok(s, &["--online", "hold", &id(1).to_string()]);
    assert!(spool.get(id(1)).unwrap().unwrap().admin_hold);
    let raw = cli(s, &["show", &id(1).to_string(), "--content"], None);
    assert_eq!(raw.stdout, content(1));
    assert!(ok(s, &["check"]).contains("ok"));
    let out = cli(s, &["import", "/dev/null"], None);
    assert!(!out.status.success(), "import is offline only");
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// A spool with a flood from one sender next to ordinary traffic, the
/// ordinary datagrams to b.example deferred (its relay was down).
fn make_outage_spool(state: &Path) {
    let spool = Spool::open(state.join("spool"), SpoolConfig::default()).unwrap();
    for (n, from, to) in [
        (1, "alice@a.example", "bob@b.example"),
        (2, "alice@a.example", "dave@b.example"),
        (3, "alice@a.example", "carol@c.example"),
        (4, "spam@x.example", "bob@b.example"),
        (5, "spam@x.example", "carol@c.example"),
    ] {
        spool
            .enqueue(NewDatagram {
                id: id(n),
                id_origin: imxp_spool::IdOrigin::Derived,
                originator: from.into(),
                recipients: vec![to.into()],
                options: QueueOptions::default(),
                content: content(n),
            })
            .wait()
            .unwrap();
    }
    for n in [1, 2] {
        spool.claim(id(n)).wait().unwrap().unwrap();
        spool
            .record(
                id(n),
                vec![(
                    0,
                    Outcome::Deferred(Failure::new(FailureKind::Connect, "connection refused")),
                )],
            )
            .wait()
            .unwrap();
    }
}

fn json(state: &Path, args: &[&str]) -> serde_json::Value {
    let out = ok(state, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

fn ids(value: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = value
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn recipes_requeue_a_destination_and_purge_a_sender() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    make_outage_spool(s);

    // Find the stuck datagrams: the qshape table, by destination and by
    // originator, and the deferred ones with their last error.
    let table = ok(s, &["stats"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("b.example"))
        .unwrap_or_else(|| panic!("{table}"));
    assert_eq!(row.split_whitespace().nth(1), Some("3"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("TOTAL ") && l.split_whitespace().nth(1) == Some("5")),
        "{table}"
    );
    let senders = ok(s, &["stats", "--by", "originator"]);
    assert!(senders.contains("ORIGINATOR"), "{senders}");
    let x = senders
        .lines()
        .find(|l| l.starts_with("x.example"))
        .unwrap();
    assert_eq!(x.split_whitespace().nth(1), Some("2"), "{senders}");
    let stats = json(s, &["stats", "--json"]);
    assert_eq!(stats["by_origin"]["a.example"]["by_age"][0], 3);
    assert_eq!(stats["by_domain"]["b.example"]["by_age"][0], 3);
    let stuck = ok(s, &["list", "--state", "deferred", "--domain", "b.example"]);
    assert!(
        stuck.contains(&id(1).to_string()) && stuck.contains(&id(2).to_string()),
        "{stuck}"
    );

    // Requeue the destination after the outage: only b.example's.
    let dry = json(
        s,
        &[
            "requeue",
            "--domain",
            "b.example",
            "--state",
            "deferred",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(dry["command"], "requeue");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(ids(&dry["changed"]), [id(1).to_string(), id(2).to_string()]);
    let done = json(
        s,
        &[
            "requeue",
            "--domain",
            "b.example",
            "--state",
            "deferred",
            "--json",
        ],
    );
    assert_eq!(done["dry_run"], false);
    assert_eq!(
        ids(&done["changed"]),
        [id(1).to_string(), id(2).to_string()]
    );
    assert_eq!(
        ok(s, &["list", "--state", "deferred", "--json"])
            .lines()
            .count(),
        0
    );

    // Purge a sender: everything from spam@x.example, nothing else.
    let purge = json(s, &["delete", "--originator", "spam@x.example", "--json"]);
    assert_eq!(
        ids(&purge["changed"]),
        [id(4).to_string(), id(5).to_string()]
    );
    assert!(purge["not_found"].as_array().unwrap().is_empty());
    let left = ok(s, &["list", "--json"]);
    assert_eq!(left.lines().count(), 3, "{left}");
    assert!(!left.contains("spam@x.example"), "{left}");

    // Hold and release by filter, ids in JSON, flush in JSON.
    let held = json(s, &["hold", "--recipient", "carol@c.example", "--json"]);
    assert_eq!(ids(&held["changed"]), [id(3).to_string()]);
    let released = json(s, &["release", id(3).to_string().as_str(), "--json"]);
    assert_eq!(ids(&released["changed"]), [id(3).to_string()]);
    let flushed = json(s, &["flush", "--json"]);
    assert_eq!(flushed["command"], "flush");

    // Export and import report in JSON.
    let dump = s.join("dump");
    let exported = json(s, &["export", "-o", dump.to_str().unwrap(), "--json"]);
    assert_eq!(exported["datagrams"], 3);
    let other = tempfile::tempdir().unwrap();
    let imported = json(other.path(), &["import", dump.to_str().unwrap(), "--json"]);
    assert_eq!(imported["datagrams"], 3);
    assert_eq!(imported["skipped"], 0);
}

#[test]
fn bulk_commands_take_ids_or_a_filter_not_both_and_not_neither() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    make_outage_spool(s);
    for args in [
        &["delete"][..],
        &["requeue", "--dry-run"],
        &["delete", &id(1).to_string(), "--domain", "b.example"],
        &["hold", "ALL", "--originator", "spam@x.example"],
        &["export", "--json"],
    ] {
        let out = cli(s, args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?} is a usage error");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error:"), "{args:?}: {err}");
    }
    assert_eq!(
        ok(s, &["list", "--json"]).lines().count(),
        5,
        "nothing changed"
    );
}
