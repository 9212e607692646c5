//! The online admin protocol: the server-side handler on a Unix socket in a
//! temp dir, driven by the client code.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use imxp_spool::admin::{
    self, Action, Client, Filter, Handler, Reply, Request, Response, Selection,
};
use imxp_spool::{
    DatagramId, EngineKind, Failure, FailureKind, NewDatagram, Outcome, QueueOptions, Spool,
    SpoolConfig, StateName,
};

fn id(n: u8) -> DatagramId {
    DatagramId::from_bytes([n; 16])
}

fn ok(r: Response) -> Reply {
    match r {
        Response::Ok(r) => r,
        Response::Error { message } => panic!("error response: {message}"),
    }
}

fn applied(r: Reply) -> (Vec<DatagramId>, Vec<DatagramId>, Vec<DatagramId>) {
    match r {
        Reply::Applied {
            changed,
            unchanged,
            missing,
            ..
        } => (changed, unchanged, missing),
        other => panic!("unexpected {other:?}"),
    }
}

fn run(kind: EngineKind) {
    let state = tempfile::tempdir().unwrap();
    let spool = Spool::open(
        state.path().join("spool"),
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
                content: vec![n, 0, 255, b'\n', n],
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

    let sock = state.path().join(admin::SOCKET_NAME);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listener = {
        let _guard = rt.enter();
        admin::bind(&sock).unwrap()
    };
    let server = rt.spawn(admin::serve(listener, Handler::new(spool.clone()), async {
        let _ = stop_rx.await;
    }));
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    // No leftover private directory.
    let names: Vec<_> = std::fs::read_dir(state.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // A live socket is not replaced.
    {
        let _guard = rt.enter();
        let err = admin::bind(&sock).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    }

    let mut c = Client::connect(&sock, Duration::from_secs(10)).unwrap();
    // List with filters, several requests on one connection.
    let Reply::List { envelopes } = ok(c
        .call(&Request::List {
            filter: Filter::default(),
        })
        .unwrap())
    else {
        panic!()
    };
    assert_eq!(
        envelopes.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![id(1), id(2), id(3)]
    );
    let f = Filter {
        domain: Some("B.EXAMPLE".into()),
        ..Default::default()
    };
    let Reply::List { envelopes } = ok(c.call(&Request::List { filter: f }).unwrap()) else {
        panic!()
    };
    assert_eq!(envelopes.len(), 2);
    let f = Filter {
        state: Some(StateName::Deferred),
        ..Default::default()
    };
    let Reply::List { envelopes } = ok(c.call(&Request::List { filter: f }).unwrap()) else {
        panic!()
    };
    assert_eq!(envelopes.len(), 1);
    assert_eq!(envelopes[0].id, id(2));
    let f = Filter {
        older_than_ms: Some(3_600_000),
        ..Default::default()
    };
    let Reply::List { envelopes } = ok(c.call(&Request::List { filter: f }).unwrap()) else {
        panic!()
    };
    assert!(envelopes.is_empty());

    // Show, with content byte-exact through JSON.
    let Reply::Show { envelope, content } = ok(c
        .call(&Request::Show {
            id: id(1),
            content: true,
        })
        .unwrap())
    else {
        panic!()
    };
    assert_eq!(envelope.id, id(1));
    assert_eq!(content, Some(vec![1, 0, 255, b'\n', 1]));
    match c
        .call(&Request::Show {
            id: id(9),
            content: false,
        })
        .unwrap()
    {
        Response::Error { message } => assert!(message.contains("no datagram"), "{message}"),
        r => panic!("{r:?}"),
    }

    // Hold: dry run changes nothing; then for real.
    let hold = |sel: Selection, dry_run: bool| Request::Apply {
        action: Action::Hold,
        selection: sel,
        dry_run,
    };
    let (ch, un, mi) = applied(ok(c
        .call(&hold(Selection::Ids(vec![id(1), id(9)]), true))
        .unwrap()));
    assert_eq!((ch, un, mi), (vec![id(1)], vec![], vec![id(9)]));
    assert!(!spool.get(id(1)).unwrap().unwrap().admin_hold);
    let (ch, _, _) = applied(ok(c
        .call(&hold(Selection::Ids(vec![id(1)]), false))
        .unwrap()));
    assert_eq!(ch, vec![id(1)]);
    assert!(spool.get(id(1)).unwrap().unwrap().admin_hold);
    let (ch, un, _) = applied(ok(c.call(&hold(Selection::All, false)).unwrap()));
    assert_eq!((ch.len(), un), (2, vec![id(1)]));
    let (ch, _, _) = applied(ok(c
        .call(&Request::Apply {
            action: Action::Release,
            selection: Selection::All,
            dry_run: false,
        })
        .unwrap()));
    assert_eq!(ch.len(), 3);

    // Flush makes the deferred one due now.
    assert_eq!(spool.due_now(10).unwrap().len(), 2);
    let (ch, _, _) = applied(ok(c.call(&Request::Flush { dry_run: true }).unwrap()));
    assert_eq!(ch, vec![id(2)]);
    assert_eq!(spool.due_now(10).unwrap().len(), 2);
    let (ch, _, _) = applied(ok(c.call(&Request::Flush { dry_run: false }).unwrap()));
    assert_eq!(ch, vec![id(2)]);
    assert_eq!(spool.due_now(10).unwrap().len(), 3);

    // Stats, check, quarantine.
    let Reply::Stats(s) = ok(c.call(&Request::Stats).unwrap()) else {
        panic!()
    };
    assert_eq!(s.datagrams, 3);
    assert_eq!(s.by_domain["b.example"].by_state[&StateName::Queued], 2);
    let Reply::Check { report, repaired } = ok(c.call(&Request::Check { repair: true }).unwrap())
    else {
        panic!()
    };
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.envelopes, repaired), (3, 0));
    let Reply::Quarantine { entries } = ok(c.call(&Request::Quarantine).unwrap()) else {
        panic!()
    };
    assert!(entries.is_empty());

    // Delete.
    let del = |dry_run| Request::Apply {
        action: Action::Delete,
        selection: Selection::Ids(vec![id(3)]),
        dry_run,
    };
    applied(ok(c.call(&del(true)).unwrap()));
    assert!(spool.get(id(3)).unwrap().is_some());
    let (ch, _, _) = applied(ok(c.call(&del(false)).unwrap()));
    assert_eq!(ch, vec![id(3)]);
    assert!(spool.get(id(3)).unwrap().is_none());

    // Garbage gets an error response, and the connection stays usable.
    let mut raw = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(b"{\"op\":\"nonsense\"}\n").unwrap();
    let mut line = String::new();
    let mut r = BufReader::new(raw.try_clone().unwrap());
    r.read_line(&mut line).unwrap();
    let resp: Response = serde_json::from_str(&line).unwrap();
    assert!(matches!(resp, Response::Error { .. }), "{resp:?}");
    raw.write_all(b"{\"op\":\"stats\"}\n").unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(matches!(
        serde_json::from_str(&line).unwrap(),
        Response::Ok(Reply::Stats(_))
    ));

    // Shutdown ends the server; the client then gets an error, not a hang.
    stop_tx.send(()).unwrap();
    rt.block_on(server).unwrap();
    drop(rt);
    assert!(c.call(&Request::Stats).is_err());
    // A stale socket file is replaced by the next bind.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    admin::bind(&sock).unwrap();
}

#[test]
fn admin_protocol_redb() {
    run(EngineKind::Redb);
}

#[test]
fn admin_protocol_sled() {
    run(EngineKind::Sled);
}

#[test]
fn client_times_out_on_a_silent_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    // Accepts connections but never answers.
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let mut c = Client::connect(&path, Duration::from_millis(300)).unwrap();
    match c.call(&Request::Stats) {
        Err(admin::ClientError::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(matches!(
        Client::connect(&dir.path().join("absent.sock"), Duration::from_secs(1)),
        Err(admin::ClientError::Connect { .. })
    ));
}
