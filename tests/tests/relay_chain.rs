//! Two relays (a.test, b.test) with static routes, real TLS on every hop
//! (certificates from a test CA), real spools: A→B delivery, many senders,
//! a 1 MiB datagram, and the RFC 3340 §4.4.1 / §4.4.4.1 refusals.

use imxp_apex::Endpoint;
use imxp_tests::relays::{RelaySpec, TestCa, TestRelay, start_pair};
use std::collections::HashMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

fn ep(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

/// A and B, each routing the other's domain statically to its mesh port.
async fn two_relays(base: &std::path::Path, ca: &TestCa) -> (TestRelay, TestRelay) {
    let a = RelaySpec::new("a.test", &["fred", "barney"]);
    start_pair(base, ca, a, RelaySpec::new("b.test", &["wilma"])).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_to_b_delivery_many_senders_and_a_large_datagram() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (a, b) = two_relays(base.path(), &ca).await;
    let mut wilma = b
        .attach(&ca, "wilma@b.test", "secret-wilma", "wilma@b.test")
        .await
        .expect("wilma attaches at B");
    wilma.set_auto_ack(true);

    // One datagram, checked field by field.
    let fred = a
        .attach(&ca, "fred@a.test", "secret-fred", "fred@a.test")
        .await
        .expect("fred attaches at A");
    fred.send(
        vec![ep("wilma@b.test")],
        "text/plain; charset=utf-8",
        b"yabba dabba doo",
    )
    .await
    .expect("A accepts");
    let received = tokio::time::timeout(TIMEOUT, wilma.next())
        .await
        .expect("delivered in time")
        .expect("a datagram");
    assert_eq!(received.originator, ep("fred@a.test"));
    assert_eq!(received.recipient, ep("wilma@b.test"));
    assert_eq!(received.content_type, "text/plain; charset=utf-8");
    assert_eq!(&received.content[..], b"yabba dabba doo");

    // Many senders: 8 concurrent sessions at A, 25 datagrams each.
    let mut senders = Vec::new();
    for s in 0..8 {
        let user = if s % 2 == 0 { "fred" } else { "barney" };
        let endpoint = format!("{user}/appl=s{s}@a.test");
        let attachment = a
            .attach(
                &ca,
                &format!("{user}@a.test"),
                &format!("secret-{user}"),
                &endpoint,
            )
            .await
            .expect("sender attaches as a subaddress");
        senders.push(tokio::spawn(async move {
            for i in 0..25 {
                let text = format!("sender {s} message {i}");
                attachment
                    .send(vec![ep("wilma@b.test")], "text/plain", text.as_bytes())
                    .await
                    .expect("accepted");
            }
            attachment
        }));
    }
    let mut attachments = Vec::new();
    for sender in senders {
        attachments.push(sender.await.unwrap());
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    while seen.values().sum::<usize>() < 200 {
        let received = tokio::time::timeout(TIMEOUT, wilma.next())
            .await
            .expect("all delivered in time")
            .expect("a datagram");
        *seen
            .entry(String::from_utf8(received.content.to_vec()).unwrap())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 200, "every datagram once");
    assert!(seen.values().all(|&n| n == 1));

    // A 1 MiB datagram with every byte value arrives octet for octet.
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    fred.send(vec![ep("wilma@b.test")], "application/octet-stream", &big)
        .await
        .expect("A accepts 1 MiB");
    let received = tokio::time::timeout(TIMEOUT, wilma.next())
        .await
        .expect("delivered in time")
        .expect("a datagram");
    assert_eq!(received.content.len(), big.len());
    assert!(received.content[..] == big[..], "content byte-exact");

    drop(attachments);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_refusals_follow_rfc_3340_order() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (a, b) = two_relays(base.path(), &ca).await;
    // Someone else: 537.
    let error = a
        .attach(&ca, "fred@a.test", "secret-fred", "barney@a.test")
        .await
        .expect_err("fred may not attach as barney");
    assert_eq!(error.refused_code().map(|c| c.0), Some(537), "{error}");
    // A foreign domain: 553.
    let error = a
        .attach(&ca, "fred@a.test", "secret-fred", "fred@b.test")
        .await
        .expect_err("a.test does not serve b.test");
    assert_eq!(error.refused_code().map(|c| c.0), Some(553), "{error}");
    // Twice: 554.
    let _first = a
        .attach(&ca, "fred@a.test", "secret-fred", "fred@a.test")
        .await
        .expect("first attach");
    let error = a
        .attach(&ca, "fred@a.test", "secret-fred", "fred@a.test")
        .await
        .expect_err("second attach");
    assert_eq!(error.refused_code().map(|c| c.0), Some(554), "{error}");
    // Wrong password: SASL failure (535), no attachment.
    let error = a
        .attach(&ca, "fred@a.test", "wrong", "fred@a.test")
        .await
        .expect_err("wrong password");
    assert!(
        matches!(
            error,
            imxp_client::ClientError::Authentication { code: 535, .. }
        ),
        "{error:?}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_originator_is_refused_with_537() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (a, b) = two_relays(base.path(), &ca).await;
    let fred = a
        .attach(&ca, "fred@a.test", "secret-fred", "fred@a.test")
        .await
        .unwrap();
    let error = fred
        .send_as(
            &ep("barney@a.test"),
            vec![ep("wilma@b.test")],
            "text/plain",
            b"spoof",
        )
        .await
        .expect_err("not attached as barney");
    assert_eq!(error.refused_code().map(|c| c.0), Some(537), "{error}");
    a.stop().await;
    b.stop().await;
}
