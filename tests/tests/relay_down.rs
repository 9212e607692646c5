//! Store and forward: with the next relay down, datagrams wait in the
//! spool and are delivered once it comes up — exactly once; past the
//! maximum lifetime they fail and leave the spool.

use imxp_apex::Endpoint;
use imxp_tests::relays::{RelaySpec, TestCa, TestRelay, loopback_listener};
use std::collections::HashSet;
use std::time::Duration;
use tokio::net::TcpListener;

fn ep(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_while_down_delivered_once_when_up() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    // Reserve B's mesh port, then free it: B is down.
    let b_port = loopback_listener().await.local_addr().unwrap();
    let mut a_spec = RelaySpec::new("a.test", &["fred"]);
    a_spec.routes.push(("b.test".into(), b_port.to_string()));
    let a = TestRelay::start(&a_spec, &ca, &base.path().join("a"), None, None).await;
    let fred = a
        .attach(&ca, "fred@a.test", "secret-fred", "fred@a.test")
        .await
        .unwrap();
    for i in 0..20 {
        fred.send(
            vec![ep("wilma@b.test")],
            "text/plain",
            format!("m{i}").as_bytes(),
        )
        .await
        .expect("A accepts while B is down");
    }
    // Everything waits at A (deferred after failed attempts).
    let queued = a.queued();
    assert_eq!(queued.len(), 20);
    // B comes up, but stays unreachable from A until wilma has attached
    // (a datagram for an endpoint that is not attached is dropped, RFC 3340
    // §4.4.4.1): A's route points at a port that is opened only then, and
    // forwards to B's mesh listener.
    let mut b_spec = RelaySpec::new("b.test", &["wilma"]);
    b_spec.routes.push(("a.test".into(), a.mesh.to_string()));
    let b = TestRelay::start(&b_spec, &ca, &base.path().join("b"), None, None).await;
    let mut wilma = b
        .attach(&ca, "wilma@b.test", "secret-wilma", "wilma@b.test")
        .await
        .unwrap();
    wilma.set_auto_ack(true);
    let gateway = TcpListener::bind(b_port).await.unwrap();
    let b_mesh = b.mesh;
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = gateway.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(b_mesh).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let mut seen = HashSet::new();
    while seen.len() < 20 {
        let received = tokio::time::timeout(Duration::from_secs(60), wilma.next())
            .await
            .expect("delivered after B came up")
            .expect("datagram");
        assert!(
            seen.insert(received.content.clone()),
            "delivered twice: {:?}",
            received.content
        );
    }
    // A removes them on B's ok, B once wilma has them: with both spools
    // empty no copy is left to arrive, except one already in wilma's
    // queue. A marker sent now comes after any such copy.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(a.queued().is_empty() && b.queued().is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the spools never emptied: A {:?}, B {:?}",
            a.queued(),
            b.queued()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fred.send(vec![ep("wilma@b.test")], "text/plain", b"marker")
        .await
        .expect("A accepts the marker");
    let next = tokio::time::timeout(Duration::from_secs(60), wilma.next())
        .await
        .expect("the marker arrives")
        .expect("datagram");
    assert_eq!(&next.content[..], b"marker", "no duplicate delivery");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_datagrams_fail_at_the_deadline() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let nowhere = loopback_listener().await.local_addr().unwrap();
    let mut spec = RelaySpec::new("a.test", &["fred"]);
    spec.routes.push(("b.test".into(), nowhere.to_string()));
    spec.extra =
        "[queue]\nmin_backoff = \"1s\"\nmax_backoff = \"1s\"\nmax_lifetime = \"3s\"\n".into();
    let a = TestRelay::start(&spec, &ca, &base.path().join("a"), None, None).await;
    let fred = a
        .attach(&ca, "fred@a.test", "secret-fred", "fred@a.test")
        .await
        .unwrap();
    fred.send(vec![ep("wilma@b.test")], "text/plain", b"lost")
        .await
        .expect("accepted");
    assert_eq!(a.queued().len(), 1);
    // Bounded wait for the expiry (3 s lifetime, retries every second).
    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if a.queued().is_empty() {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "the datagram failed and left the spool after its deadline"
    );
    a.stop().await;
}
