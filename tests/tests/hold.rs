//! RFC 3342 §3 `hold4Endpoint` and §1 `attachOverride` across two relays
//! (a.test, b.test): the RFC examples (RFC 3342 §3), held
//! datagrams delivered on attach in order of arrival and exactly once, also
//! after a restart, expiry while held, the per-endpoint hold limits, and
//! data in flight following an override.

use imxp_apex::{ApexOption, Content, Data, Endpoint, TargetHop};
use imxp_client::{AttachOptions, ClientError, Event};
use imxp_spool::RecipientState;
use imxp_tests::relays::{Attached, RelaySpec, TestCa, TestRelay, start_pair};
use std::path::Path;
use std::time::Duration;

fn ep(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

/// A data from `from` to `to` with `hold4Endpoint` (and more options).
fn held_data(from: &str, to: &str, body: &[u8], more: Vec<ApexOption>) -> (Data, Content) {
    let (mut data, content) =
        imxp_client::payload::build_data(&ep(from), &[ep(to)], "text/plain", body).unwrap();
    data.options
        .push(ApexOption::internal(imxp_apex::party::HOLD_FOR_ENDPOINT));
    data.options.extend(more);
    (data, content)
}

/// a.test (user fred) and b.test (user barney), routed to each other;
/// `b_extra` is appended to b.test's configuration.
async fn two_relays(base: &Path, ca: &TestCa, b_extra: &str) -> (TestRelay, TestRelay, RelaySpec) {
    let mut b_spec = RelaySpec::new("b.test", &["barney"]);
    b_spec.extra.push_str(b_extra);
    let (a, b) = start_pair(base, ca, RelaySpec::new("a.test", &["fred"]), b_spec).await;
    let b_spec = b.spec.clone();
    (a, b, b_spec)
}

/// Guards against a hang (not a timing assertion).
async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("the test hung")
}

/// Polls `check` every 50 ms for up to 30 s (a bound, not a timing claim).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..600 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 30 s: {what}");
}

/// Waits until `relay` answers on its admin socket (it opened its spool).
async fn ready(relay: &TestRelay) {
    let socket = relay.dir.join(imxp_spool::admin::SOCKET_NAME);
    eventually("the relay is up", || {
        imxp_spool::admin::Client::connect(&socket, Duration::from_secs(1)).is_ok()
    })
    .await;
}

/// How many recipients `relay` holds for `endpoint`.
fn held(relay: &TestRelay, endpoint: &str) -> usize {
    relay
        .queued()
        .iter()
        .flat_map(|e| &e.recipients)
        .filter(|r| r.endpoint == endpoint && matches!(r.state, RecipientState::Held { .. }))
        .count()
}

async fn barney(b: &TestRelay, ca: &TestCa, take_over: bool) -> Result<Attached, ClientError> {
    b.attach_with(
        ca,
        "barney@b.test",
        "secret-barney",
        "barney@b.test",
        AttachOptions {
            take_over,
            ..AttachOptions::default()
        },
    )
    .await
}

async fn fred(a: &TestRelay, ca: &TestCa) -> Attached {
    a.attach(ca, "fred@a.test", "secret-fred", "fred@a.test")
        .await
        .unwrap()
}

/// Sends held datagrams `bodies` one at a time, each once b.test has
/// dealt with the previous one, so b.test's order of arrival is theirs.
async fn send_in_order(fred: &Attached, a: &TestRelay, b: &TestRelay, bodies: &[&str]) {
    for body in bodies {
        let (data, content) = held_data("fred@a.test", "barney@b.test", body.as_bytes(), vec![]);
        fred.send_data(&data, &content).await.expect("accepted");
        eventually("a.test forwarded it", || a.queued().is_empty()).await;
        eventually("b.test dealt with it", || {
            b.queued()
                .iter()
                .flat_map(|e| &e.recipients)
                .all(|r| matches!(r.state, RecipientState::Held { .. }))
        })
        .await;
    }
}

/// The next datagram within 30 s, acknowledged.
async fn receive(attached: &mut Attached) -> imxp_client::Received {
    let mut received = tokio::time::timeout(Duration::from_secs(30), attached.next())
        .await
        .expect("a datagram within 30 s")
        .expect("the attachment is alive");
    received.ack().await.unwrap();
    received
}

/// Nothing more arrives for a while (bounded).
async fn nothing_more(attached: &mut Attached) {
    assert!(
        tokio::time::timeout(Duration::from_secs(2), attached.next())
            .await
            .is_err(),
        "no further delivery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc3342_hold4endpoint_example() {
    bounded(async {
        let base = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let (a, b, _) = two_relays(base.path(), &ca, "").await;
        let fred = fred(&a, &ca).await;
        // RFC 3342 §3: hold4Endpoint with dataTiming noLaterThan 60000.
        let timing = ApexOption::internal("dataTiming")
            .target_hop(TargetHop::All)
            .must_understand(true)
            .trans_id(86)
            .with_content("<dataTiming noLaterThan='60000' />")
            .unwrap();
        let (data, content) = held_data(
            "fred@a.test",
            "barney@b.test",
            b"held for barney",
            vec![timing],
        );
        fred.send_data(&data, &content).await.expect("S: <ok />");
        eventually("held at b.test", || held(&b, "barney@b.test") == 1).await;
        // barney attaches (with attachOverride, as in the example): the data.
        let mut barney = barney(&b, &ca, true).await.unwrap();
        let received = receive(&mut barney).await;
        assert_eq!(received.originator, ep("fred@a.test"));
        assert_eq!(received.recipient, ep("barney@b.test"));
        assert_eq!(&received.content[..], b"held for barney");
        assert!(
            received
                .data
                .options
                .iter()
                .any(|o| o.is_internal("hold4Endpoint")),
            "the delivered data carries its options"
        );
        // Time held counts: noLaterThan is reduced (60000 → less).
        let (_, timing) = received.data.data_timing().unwrap().expect("dataTiming");
        assert!(timing.no_later_than < 60_000, "{timing:?}");
        eventually("b.test removed it on barney's ok", || b.queued().is_empty()).await;
        nothing_more(&mut barney).await;
        a.stop().await;
        b.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_datagrams_survive_a_restart_and_arrive_in_order_once() {
    bounded(async {
        let base = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let (a, b, b_spec) = two_relays(base.path(), &ca, "").await;
        let fred = fred(&a, &ca).await;
        let bodies = ["m0", "m1", "m2", "m3", "m4"];
        send_in_order(&fred, &a, &b, &bodies).await;
        assert_eq!(held(&b, "barney@b.test"), 5);
        // Another endpoint of the same user (a subaddress) gets none of them.
        let mut other = b
            .attach(
                &ca,
                "barney@b.test",
                "secret-barney",
                "barney/appl=im@b.test",
            )
            .await
            .unwrap();
        b.stop().await;
        assert!(other.next().await.is_none(), "nothing for the subaddress");

        let b = TestRelay::start(&b_spec, &ca, &base.path().join("b"), None, None).await;
        ready(&b).await;
        assert_eq!(held(&b, "barney@b.test"), 5, "held across the restart");
        let mut barney = barney(&b, &ca, false).await.unwrap();
        for body in bodies {
            let received = receive(&mut barney).await;
            assert_eq!(&received.content[..], body.as_bytes(), "order of arrival");
        }
        nothing_more(&mut barney).await;
        eventually("b.test's spool is empty", || b.queued().is_empty()).await;
        a.stop().await;
        b.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_datagram_fails_at_the_hold_ttl() {
    bounded(async {
        let base = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let (a, b, _) = two_relays(base.path(), &ca, "[hold]\ndefault_ttl = \"2s\"\n").await;
        let mut fred = fred(&a, &ca).await;
        let (data, content) = held_data(
            "fred@a.test",
            "barney@b.test",
            b"too late",
            vec![ApexOption::status_request(77)],
        );
        fred.send_data(&data, &content).await.expect("accepted");
        eventually("held at b.test", || held(&b, "barney@b.test") == 1).await;
        let envelope = &b.queued()[0];
        let RecipientState::Held { until_ms, .. } = envelope.recipients[0].state else {
            panic!("held: {envelope:?}");
        };
        assert!(
            until_ms.is_some(),
            "no dataTiming: the default TTL bounds it"
        );
        // It fails: a failure report (statusRequest) and out of the spool.
        let report = receive(&mut fred).await;
        assert_eq!(report.originator, ep("apex=report@b.test"));
        let status = imxp_apex::StatusResponse::from_data_content(
            report.data.data_content.as_ref().expect("inline report"),
        )
        .unwrap();
        assert_eq!(status.trans_id, 77);
        assert_eq!(status.destinations[0].identity, ep("barney@b.test"));
        assert_eq!(status.destinations[0].reply.code.0, 550);
        eventually("it left b.test's spool", || b.queued().is_empty()).await;
        let mut barney = barney(&b, &ca, false).await.unwrap();
        nothing_more(&mut barney).await;
        a.stop().await;
        b.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_endpoint_hold_limits() {
    bounded(async {
        let base = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let (a, b, _) = two_relays(
            base.path(),
            &ca,
            "[hold]\nmax_per_endpoint = 3\nmax_bytes_per_endpoint = 4096\n",
        )
        .await;
        let fred = fred(&a, &ca).await;
        let big = "x".repeat(8192);
        // s1, s2 held; big passes the byte limit; s3 held; s4 passes the count.
        send_in_order(&fred, &a, &b, &["s1", "s2", &big, "s3", "s4"]).await;
        assert_eq!(held(&b, "barney@b.test"), 3);
        assert_eq!(b.queued().len(), 3, "the refused holds failed and left");
        let mut barney = barney(&b, &ca, false).await.unwrap();
        for body in ["s1", "s2", "s3"] {
            assert_eq!(&receive(&mut barney).await.content[..], body.as_bytes());
        }
        nothing_more(&mut barney).await;
        a.stop().await;
        b.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc3342_attach_override_example() {
    bounded(async {
        let base = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let (a, b, _) = two_relays(base.path(), &ca, "").await;
        // appl. #1 attaches.
        let mut first = barney(&b, &ca, false).await.unwrap();
        // Without the option a second application is refused (554).
        let refused = barney(&b, &ca, false).await.unwrap_err();
        assert_eq!(refused.refused_code().map(|c| c.0), Some(554));
        // appl. #2 attaches with attachOverride: ok, and #1 is terminated 556.
        let mut second = barney(&b, &ca, true).await.unwrap();
        let Some(Event::Terminated(ended)) =
            tokio::time::timeout(Duration::from_secs(30), first.next_event())
                .await
                .unwrap()
        else {
            panic!("appl. #1 gets a terminate");
        };
        assert_eq!(ended.endpoint, ep("barney@b.test"));
        assert_eq!(ended.code.0, 556);
        assert_eq!(ended.text, "overriden");
        // Data now goes to appl. #2.
        let fred = fred(&a, &ca).await;
        fred.send(vec![ep("barney@b.test")], "text/plain", b"to the new one")
            .await
            .unwrap();
        assert_eq!(&receive(&mut second).await.content[..], b"to the new one");
        assert!(
            first.endpoints().is_empty(),
            "appl. #1 is no longer attached"
        );
        a.stop().await;
        b.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_in_flight_follows_the_override() {
    bounded(async {
        let base = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let (a, b, _) = two_relays(base.path(), &ca, "").await;
        let mut first = barney(&b, &ca, false).await.unwrap();
        let fred = fred(&a, &ca).await;
        fred.send(vec![ep("barney@b.test")], "text/plain", b"in flight")
            .await
            .unwrap();
        // appl. #1 gets it but does not answer yet.
        let Some(Event::Data(unanswered)) =
            tokio::time::timeout(Duration::from_secs(30), first.next_event())
                .await
                .unwrap()
        else {
            panic!("appl. #1 gets the data");
        };
        assert_eq!(&unanswered.content[..], b"in flight");
        // appl. #2 takes over: the relay sends the data to it.
        let mut second = barney(&b, &ca, true).await.unwrap();
        assert_eq!(&receive(&mut second).await.content[..], b"in flight");
        eventually("delivered once appl. #2 answered", || b.queued().is_empty()).await;
        drop(unanswered);
        nothing_more(&mut second).await;
        a.stop().await;
        b.stop().await;
    })
    .await;
}
