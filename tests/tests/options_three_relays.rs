//! APEX options across three relays: A (a.test, fred) → C (c.test, a
//! trusted intermediary) → B (b.test, wilma), static routes, real TLS and
//! spools. A `targetHop='all'` status trace with one report per relay,
//! dataTiming and dataHopping counters reduced hop by hop (RFC 3342), and a
//! forwarding loop (loop.test, routed C → B → C) stopped by the hop budget,
//! the originator's own or the one A adds at ingress.

use imxp_apex::{ApexOption, Content, Data, DataHopping, DataTiming, Endpoint, StatusResponse};
use imxp_client::payload::text_data;
use imxp_tests::relays::{Attached, RelaySpec, TestCa, TestRelay, loopback_listener};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

fn ep(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

struct Mesh {
    a: TestRelay,
    b: TestRelay,
    c: TestRelay,
}

/// A routes b.test and loop.test to C; C routes b.test and loop.test to
/// B, a.test to A; B routes a.test to A and loop.test back to C. C lets
/// a.test and b.test hand it data for third domains, B lets c.test.
async fn three_relays(base: &std::path::Path, ca: &TestCa, extra_a: &str) -> Mesh {
    let a_mesh = loopback_listener().await;
    let b_mesh = loopback_listener().await;
    let c_mesh = loopback_listener().await;
    let at = |l: &tokio::net::TcpListener| l.local_addr().unwrap().to_string();
    let mut a = RelaySpec::new("a.test", &["fred"]);
    a.routes.push(("b.test".into(), at(&c_mesh)));
    a.routes.push(("loop.test".into(), at(&c_mesh)));
    a.extra.push_str(extra_a);
    // The outbound check is that the next relay's certificate names the
    // destination domain: C's names the domains it relays for, B's
    // loop.test too.
    let mut c = RelaySpec::new("c.test", &[]);
    c.certificate_names = vec!["c.test".into(), "b.test".into(), "loop.test".into()];
    c.routes.push(("b.test".into(), at(&b_mesh)));
    c.routes.push(("loop.test".into(), at(&b_mesh)));
    c.routes.push(("a.test".into(), at(&a_mesh)));
    c.extra
        .push_str("[mesh]\ntrusted_intermediaries = [\"a.test\", \"b.test\"]\n");
    let mut b = RelaySpec::new("b.test", &["wilma"]);
    b.certificate_names = vec!["b.test".into(), "loop.test".into()];
    b.routes.push(("a.test".into(), at(&a_mesh)));
    b.routes.push(("loop.test".into(), at(&c_mesh)));
    b.extra
        .push_str("[mesh]\ntrusted_intermediaries = [\"c.test\"]\n");
    Mesh {
        a: TestRelay::start(&a, ca, &base.join("a"), None, Some(a_mesh)).await,
        c: TestRelay::start(&c, ca, &base.join("c"), None, Some(c_mesh)).await,
        b: TestRelay::start(&b, ca, &base.join("b"), None, Some(b_mesh)).await,
    }
}

impl Mesh {
    async fn drained(&self) {
        tokio::time::timeout(TIMEOUT, async {
            for relay in [&self.a, &self.c, &self.b, &self.a] {
                while !relay.queued().is_empty() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
        .await
        .expect("spools drained in time");
    }

    async fn stop(self) {
        self.a.stop().await;
        self.b.stop().await;
        self.c.stop().await;
    }
}

async fn attach(relay: &TestRelay, ca: &TestCa, user: &str) -> Attached {
    let name = format!("{user}@{}", relay.domain);
    let mut attached = relay
        .attach(ca, &name, &format!("secret-{user}"), &name)
        .await
        .expect("attaches");
    attached.set_auto_ack(true);
    attached
}

fn data(to: &str, options: Vec<ApexOption>) -> (Data, Content) {
    let (mut data, content) = text_data(&ep("fred@a.test"), &[ep(to)], "three hops");
    data.options = options;
    (data, content)
}

async fn next_report(fred: &mut Attached) -> (Endpoint, StatusResponse) {
    let received = tokio::time::timeout(TIMEOUT, fred.next())
        .await
        .expect("a report in time")
        .expect("a datagram");
    let status = StatusResponse::from_data_content(
        received.data.data_content.as_ref().expect("inline content"),
    )
    .expect("a statusResponse");
    (received.originator.clone(), status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_and_counters_through_an_intermediary() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let mesh = three_relays(base.path(), &ca, "").await;
    let mut fred = attach(&mesh.a, &ca, "fred").await;
    let mut wilma = attach(&mesh.b, &ca, "wilma").await;

    let timing = DataTiming {
        no_later_than: 20_000,
        ..DataTiming::default()
    };
    let hopping = DataHopping {
        no_more_than: 3,
        report_errors: true,
    };
    let (d, c) = data(
        "wilma@b.test",
        vec![
            ApexOption::status_request(86).target_hop(imxp_apex::TargetHop::All),
            timing.to_option(87),
            hopping.to_option(88),
        ],
    );
    fred.send_data(&d, &c).await.expect("A accepts");
    let received = tokio::time::timeout(TIMEOUT, wilma.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received.originator, ep("fred@a.test"));
    assert_eq!(&received.content[..], b"three hops");
    // Two relays sent it on: 3 → 2 → 1.
    assert_eq!(
        received
            .data
            .data_hopping()
            .unwrap()
            .unwrap()
            .1
            .no_more_than,
        1
    );
    let (_, seen) = received.data.data_timing().unwrap().unwrap();
    assert!(
        seen.no_later_than > 0 && seen.no_later_than < 20_000,
        "{seen:?}"
    );

    // One 250 per relay: A and C handed it on, B delivered it.
    let mut reporters = Vec::new();
    for _ in 0..3 {
        let (from, status) = next_report(&mut fred).await;
        assert_eq!(status.trans_id, 86);
        assert_eq!(status.destinations[0].identity, ep("wilma@b.test"));
        assert_eq!(status.destinations[0].reply.code.0, 250);
        reporters.push(from.to_string());
    }
    reporters.sort();
    assert_eq!(
        reporters,
        [
            "apex=report@a.test",
            "apex=report@b.test",
            "apex=report@c.test"
        ]
    );
    mesh.drained().await;
    let more = tokio::time::timeout(Duration::from_millis(500), fred.next()).await;
    assert!(more.is_err(), "three reports, no more: {more:?}");
    drop((fred, wilma));
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarding_loop_runs_out_of_hops() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    // A adds a budget of 3 to data from its endpoints that carry none.
    let mesh = three_relays(base.path(), &ca, "[options]\ndefault_hops = 3\n").await;
    let mut fred = attach(&mesh.a, &ca, "fred").await;

    // The originator's own budget: A sends 2 on, C 1, B may not send it
    // back to C (RFC 3342 §4): B reports 550 for the dataHopping transID.
    let hopping = DataHopping {
        no_more_than: 3,
        report_errors: true,
    };
    let (d, c) = data("x@loop.test", vec![hopping.to_option(90)]);
    fred.send_data(&d, &c).await.expect("A accepts");
    let (from, status) = next_report(&mut fred).await;
    assert_eq!(from, ep("apex=report@b.test"));
    assert_eq!(status.trans_id, 90);
    assert_eq!(status.destinations[0].identity, ep("x@loop.test"));
    assert_eq!(status.destinations[0].reply.code.0, 550);
    assert!(
        status.destinations[0].reply.text.contains("dataHopping"),
        "{:?}",
        status.destinations[0].reply.text
    );
    mesh.drained().await;

    // No budget of its own: the one A adds at ingress stops the loop the
    // same way; a status request (final, which no relay reaches) is
    // answered by the relay that gave up.
    let (d, c) = data("y@loop.test", vec![ApexOption::status_request(91)]);
    fred.send_data(&d, &c).await.expect("A accepts");
    let (from, status) = next_report(&mut fred).await;
    assert_eq!(from, ep("apex=report@b.test"));
    assert_eq!(status.trans_id, 91);
    assert_eq!(status.destinations[0].reply.code.0, 550);
    mesh.drained().await;
    let more = tokio::time::timeout(Duration::from_millis(500), fred.next()).await;
    assert!(more.is_err(), "one report each: {more:?}");
    drop(fred);
    mesh.stop().await;
}
