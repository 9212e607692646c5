//! A→B delivery routed by DNS SRV `_apex-mesh._tcp.b.test` (RFC 3340 §3.1,
//! RFC 2782) answered by a real DNS server on loopback; the first SRV
//! target is down, so the relay must try the second.

use imxp_apex::Endpoint;
use imxp_tests::dns::{DnsServer, Zone};
use imxp_tests::relays::{RelaySpec, TestCa, TestRelay, loopback_listener};
use std::net::Ipv4Addr;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_follows_srv_records_and_tries_the_next_target() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let b_mesh = loopback_listener().await;
    let b_port = b_mesh.local_addr().unwrap().port();
    let dead_port = loopback_listener().await.local_addr().unwrap().port();
    let zone = Zone::new()
        .srv("_apex-mesh._tcp.b.test", 10, 0, dead_port, "down.b.test")
        .srv("_apex-mesh._tcp.b.test", 20, 0, b_port, "relay.b.test")
        .a("down.b.test", Ipv4Addr::LOCALHOST)
        .a("relay.b.test", Ipv4Addr::LOCALHOST);
    let dns = DnsServer::start(zone).await.unwrap();
    let mut a_spec = RelaySpec::new("a.test", &["fred"]);
    a_spec.nameservers.push(dns.addr());
    let a = TestRelay::start(&a_spec, &ca, &base.path().join("a"), None, None).await;
    let b = TestRelay::start(
        &RelaySpec::new("b.test", &["wilma"]),
        &ca,
        &base.path().join("b"),
        None,
        Some(b_mesh),
    )
    .await;
    let mut wilma = b
        .attach(&ca, "wilma@b.test", "secret-wilma", "wilma@b.test")
        .await
        .unwrap();
    wilma.set_auto_ack(true);
    let fred = a
        .attach(&ca, "fred@a.test", "secret-fred", "fred@a.test")
        .await
        .unwrap();
    fred.send(
        vec![Endpoint::parse("wilma@b.test").unwrap()],
        "text/plain",
        b"found you by SRV",
    )
    .await
    .unwrap();
    let received = tokio::time::timeout(Duration::from_secs(60), wilma.next())
        .await
        .expect("delivered in time")
        .expect("datagram");
    assert_eq!(&received.content[..], b"found you by SRV");
    assert!(dns.was_asked("_apex-mesh._tcp.b.test", hickory_proto::rr::RecordType::SRV));
    a.stop().await;
    b.stop().await;
}
