//! Relay A (a real `imxpd` process) is killed with SIGKILL while 10,000
//! datagrams to b.test are in flight, then restarted on the same spool:
//! every datagram A acknowledged to a sender reaches the recipient at B
//! exactly once, and nothing reaches it twice (docs/architecture.md: accepted
//! means durable; the receiving relay recognises A's resends by their hop
//! identity, docs/decisions.md, Duplicates).

mod support;

use imxp_apex::Endpoint;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{connect, free_port, queued, spawn, wait_listening, write_relay};

const DATAGRAMS: usize = 10_000;
const SENDERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_flight_loses_nothing_and_duplicates_nothing() {
    let base = tempfile::tempdir().unwrap();
    // Ports first, so each relay's route can name the other's mesh port.
    let (a_mesh, b_mesh) = (free_port(), free_port());
    let a = write_relay(
        &base.path().join("a"),
        "a.test",
        a_mesh,
        &[("b.test", b_mesh)],
        &["fred"],
    );
    let b = write_relay(
        &base.path().join("b"),
        "b.test",
        b_mesh,
        &[("a.test", a_mesh)],
        &["wilma"],
    );

    let mut b_process = spawn(&b);
    let mut a_process = spawn(&a);
    wait_listening(b.edge).await;
    wait_listening(a.edge).await;

    // wilma at B counts what she receives.
    let wilma_client = connect(b.edge, "wilma@b.test").await;
    let mut wilma = wilma_client
        .attach(Endpoint::parse("wilma@b.test").unwrap())
        .await
        .unwrap();
    wilma.set_auto_ack(true);
    let received: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counter = received.clone();
    let receiver = tokio::spawn(async move {
        while let Some(datagram) = wilma.next().await {
            let text = String::from_utf8(datagram.content.to_vec()).unwrap();
            *counter.lock().unwrap().entry(text).or_default() += 1;
        }
    });

    // Senders at A record each datagram A acknowledged.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let acknowledged = acknowledged.clone();
        let port = a.edge;
        senders.push(tokio::spawn(async move {
            let client = connect(port, "fred@a.test").await;
            let endpoint = Endpoint::parse(&format!("fred/appl=s{s}@a.test")).unwrap();
            let Ok(attachment) = client.attach(endpoint).await else {
                return client;
            };
            for i in (s..DATAGRAMS).step_by(SENDERS) {
                let text = format!("datagram {i}");
                match attachment
                    .send(
                        vec![Endpoint::parse("wilma@b.test").unwrap()],
                        "text/plain",
                        text.as_bytes(),
                    )
                    .await
                {
                    Ok(()) => acknowledged.lock().unwrap().push(text),
                    Err(_) => break, // A is gone
                }
            }
            client
        }));
    }
    // Kill A abruptly once a good share is acknowledged and in flight.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.lock().unwrap().len() < DATAGRAMS / 3 {
        assert!(Instant::now() < deadline, "A did not accept datagrams");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a_process.kill(); // SIGKILL
    for sender in senders {
        drop(sender.await.unwrap());
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= DATAGRAMS / 3);

    // Restart A on the same spool: it resumes and delivers the rest.
    let mut a_process = spawn(&a);
    wait_listening(a.edge).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let missing = {
            let received = received.lock().unwrap();
            acknowledged
                .iter()
                .filter(|t| !received.contains_key(*t))
                .count()
        };
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged datagrams never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Resends are over once both spools are empty (A's last copies were
    // answered by B, B's delivered to wilma).
    let deadline = Instant::now() + Duration::from_secs(180);
    while queued(&a.dir) + queued(&b.dir) > 0 {
        assert!(Instant::now() < deadline, "the spools never emptied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A marker sent after that arrives after everything before it: once
    // wilma's receiver has counted it, it has counted every earlier copy.
    let marker_client = connect(a.edge, "fred@a.test").await;
    marker_client
        .attach(Endpoint::parse("fred/appl=marker@a.test").unwrap())
        .await
        .unwrap()
        .send(
            vec![Endpoint::parse("wilma@b.test").unwrap()],
            "text/plain",
            b"marker",
        )
        .await
        .expect("A accepts the marker");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !received.lock().unwrap().contains_key("marker") {
        assert!(Instant::now() < deadline, "the marker never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut received = received.lock().unwrap().clone();
    assert_eq!(received.remove("marker"), Some(1));
    let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    eprintln!(
        "acknowledged {} of {DATAGRAMS}, received {} (unacknowledged ones may or may not arrive)",
        acknowledged.len(),
        received.len()
    );
    a_process.kill();
    b_process.kill();
    receiver.abort();
    drop(wilma_client);
}
