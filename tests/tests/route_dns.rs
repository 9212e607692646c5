//! The relay's router against a real DNS server on loopback
//! (`imxp_tests::dns`): SRV priority and weight, the implicit A/AAAA
//! fallback, static routes, domain-literals and the temporary/permanent
//! split of failures.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use imxp_relay::route::{DnsSettings, Route, RouteError, Router, Target};
use imxp_tests::dns::{DnsServer, RecordType, Transport, Zone};

const V4_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const V4_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);
const V4_C: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 13);
const V6_A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 11);

/// Settings that use only `server`, without retries. The timeout is never
/// waited for except by the unresponsive-server test: the loopback server
/// answers at once.
fn settings(server: &DnsServer) -> DnsSettings {
    DnsSettings {
        nameservers: vec![server.addr()],
        timeout: Duration::from_secs(2),
        retries: 0,
        ..DnsSettings::default()
    }
}

async fn start(zone: Zone) -> DnsServer {
    DnsServer::start(zone)
        .await
        .expect("start the loopback DNS server")
}

fn dns_router(server: &DnsServer) -> Router {
    Router::new(vec![], vec![], settings(server)).expect("router")
}

fn target(host: &str, port: u16, addresses: &[IpAddr]) -> Target {
    Target {
        host: host.to_owned(),
        port,
        addresses: addresses.to_vec(),
    }
}

fn remote(route: Route) -> Vec<Target> {
    match route {
        Route::Remote(targets) => targets,
        Route::Local => panic!("expected a remote route, got Local"),
    }
}

#[tokio::test]
async fn srv_priorities_give_the_try_order_with_looked_up_addresses() {
    let server = start(
        Zone::new()
            // Listed higher priority value first: the order must come from
            // the priorities, not the answer order.
            .srv(
                "_apex-mesh._tcp.example.test",
                20,
                5,
                1002,
                "backup.example.test",
            )
            .srv(
                "_apex-mesh._tcp.example.test",
                10,
                5,
                1001,
                "primary.example.test",
            )
            .a("primary.example.test", V4_A)
            .aaaa("primary.example.test", V6_A)
            .a("backup.example.test", V4_B),
    )
    .await;
    let targets = remote(dns_router(&server).route("example.test").await.unwrap());
    assert_eq!(
        targets,
        [
            target("primary.example.test", 1001, &[V6_A.into(), V4_A.into()]),
            target("backup.example.test", 1002, &[V4_B.into()]),
        ]
    );
    assert!(server.was_asked("_apex-mesh._tcp.example.test", RecordType::SRV));
    assert!(server.was_asked("primary.example.test", RecordType::A));
    assert!(server.was_asked("backup.example.test", RecordType::AAAA));
}

#[tokio::test]
async fn srv_additional_section_saves_the_address_lookups() {
    let server = start(
        Zone::new()
            .srv_glue(true)
            .srv("_apex-mesh._tcp.example.test", 10, 0, 912, "a.example.test")
            .srv("_apex-mesh._tcp.example.test", 20, 0, 912, "b.example.test")
            .a("a.example.test", V4_A)
            .a("b.example.test", V4_B),
    )
    .await;
    let targets = remote(dns_router(&server).route("example.test").await.unwrap());
    assert_eq!(
        targets,
        [
            target("a.example.test", 912, &[V4_A.into()]),
            target("b.example.test", 912, &[V4_B.into()]),
        ]
    );
    assert!(!server.was_asked("a.example.test", RecordType::A));
    assert!(!server.was_asked("b.example.test", RecordType::A));
}

#[tokio::test]
async fn equal_priority_targets_are_all_tried_in_weighted_random_order() {
    let server = start(
        Zone::new()
            .srv_glue(true)
            .srv(
                "_apex-mesh._tcp.example.test",
                10,
                1,
                912,
                "light.example.test",
            )
            .srv(
                "_apex-mesh._tcp.example.test",
                10,
                3,
                912,
                "heavy.example.test",
            )
            .srv(
                "_apex-mesh._tcp.example.test",
                30,
                0,
                912,
                "last.example.test",
            )
            .a("light.example.test", V4_A)
            .a("heavy.example.test", V4_B)
            .a("last.example.test", V4_C),
    )
    .await;
    let router = dns_router(&server);
    let (mut heavy_first, mut light_first) = (0u32, 0u32);
    // The answer is cached; each call draws a new order. With draws in
    // 0..=4, "light" leads 2 times in 5: over 400 calls both orders occur
    // and "heavy" leads more often, except with negligible probability.
    for _ in 0..400 {
        let targets = remote(router.route("example.test").await.unwrap());
        let hosts: Vec<&str> = targets.iter().map(|t| t.host.as_str()).collect();
        match hosts.as_slice() {
            [
                "heavy.example.test",
                "light.example.test",
                "last.example.test",
            ] => heavy_first += 1,
            [
                "light.example.test",
                "heavy.example.test",
                "last.example.test",
            ] => light_first += 1,
            other => panic!("unexpected order {other:?}"),
        }
    }
    assert!(light_first > 0, "the lighter target is sometimes first");
    assert!(
        heavy_first > light_first,
        "heavy first {heavy_first}, light first {light_first}"
    );
}

#[tokio::test]
async fn no_srv_falls_back_to_the_domains_addresses_on_the_mesh_port() {
    let server = start(
        Zone::new()
            .a("example.test", V4_A)
            .aaaa("example.test", V6_A),
    )
    .await;
    let targets = remote(dns_router(&server).route("Example.Test.").await.unwrap());
    assert_eq!(
        targets,
        [target("example.test", 912, &[V6_A.into(), V4_A.into()])]
    );
    assert!(server.was_asked("_apex-mesh._tcp.example.test", RecordType::SRV));

    let other_port = Router::new(
        vec![],
        vec![],
        DnsSettings {
            mesh_port: 9120,
            ..settings(&server)
        },
    )
    .unwrap();
    let targets = remote(other_port.route("example.test").await.unwrap());
    assert_eq!(targets[0].port, 9120);
}

#[tokio::test]
async fn no_srv_without_fallback_is_permanent() {
    let server = start(Zone::new().a("example.test", V4_A)).await;
    let router = Router::new(
        vec![],
        vec![],
        DnsSettings {
            implicit_fallback: false,
            ..settings(&server)
        },
    )
    .unwrap();
    let err = router.route("example.test").await.unwrap_err();
    assert!(matches!(err, RouteError::NoService { .. }), "{err:?}");
    assert!(err.is_permanent());
    assert!(!server.was_asked("example.test", RecordType::A));
}

#[tokio::test]
async fn nonexistent_domain_is_permanent() {
    let server = start(Zone::new().a("other.test", V4_A)).await;
    let err = dns_router(&server).route("nowhere.test").await.unwrap_err();
    assert!(matches!(err, RouteError::NoSuchDomain { .. }), "{err:?}");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn domain_without_srv_or_address_is_permanent() {
    // The domain exists (it has a subdomain) but has no records itself.
    let server = start(Zone::new().a("www.example.test", V4_A)).await;
    let err = dns_router(&server).route("example.test").await.unwrap_err();
    assert!(matches!(err, RouteError::NoAddresses { .. }), "{err:?}");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn srv_root_target_means_service_not_available() {
    let server = start(
        Zone::new()
            .srv("_apex-mesh._tcp.example.test", 0, 0, 0, ".")
            .a("example.test", V4_A),
    )
    .await;
    let err = dns_router(&server).route("example.test").await.unwrap_err();
    assert!(
        matches!(err, RouteError::ServiceNotAvailable { .. }),
        "{err:?}"
    );
    assert!(err.is_permanent());
    // An SRV record exists, so the domain's own address must not be used.
    assert!(!server.was_asked("example.test", RecordType::A));
}

#[tokio::test]
async fn srv_targets_without_addresses_are_skipped_or_permanent() {
    let server = start(
        Zone::new()
            .srv("_apex-mesh._tcp.some.test", 10, 0, 912, "gone.some.test")
            .srv("_apex-mesh._tcp.some.test", 20, 0, 912, "ok.some.test")
            .a("ok.some.test", V4_B)
            .srv("_apex-mesh._tcp.none.test", 10, 0, 912, "gone.none.test")
            .srv("_apex-mesh._tcp.none.test", 20, 0, 912, "gone2.none.test"),
    )
    .await;
    let router = dns_router(&server);
    let targets = remote(router.route("some.test").await.unwrap());
    assert_eq!(targets, [target("ok.some.test", 912, &[V4_B.into()])]);

    let err = router.route("none.test").await.unwrap_err();
    assert!(matches!(err, RouteError::NoAddresses { .. }), "{err:?}");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn servfail_is_temporary() {
    let server = start(
        Zone::new()
            .servfail("_apex-mesh._tcp.broken.test")
            .srv("_apex-mesh._tcp.half.test", 10, 0, 912, "sick.half.test")
            .srv("_apex-mesh._tcp.half.test", 20, 0, 912, "fine.half.test")
            .servfail("sick.half.test")
            .a("fine.half.test", V4_A)
            .srv("_apex-mesh._tcp.sick.test", 10, 0, 912, "sick.sick.test")
            .servfail("sick.sick.test"),
    )
    .await;
    let router = dns_router(&server);

    let err = router.route("broken.test").await.unwrap_err();
    assert!(matches!(err, RouteError::Temporary { .. }), "{err:?}");
    assert!(!err.is_permanent());
    // A failed SRV lookup is not "no SRV": no fallback to the A record.
    assert!(!server.was_asked("broken.test", RecordType::A));

    // One target failing leaves the others.
    let targets = remote(router.route("half.test").await.unwrap());
    assert_eq!(targets, [target("fine.half.test", 912, &[V4_A.into()])]);

    // All targets failing temporarily is temporary.
    let err = router.route("sick.test").await.unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
}

#[tokio::test]
async fn unresponsive_server_is_temporary() {
    let server = start(Zone::new().unresponsive("_apex-mesh._tcp.slow.test")).await;
    let router = Router::new(
        vec![],
        vec![],
        DnsSettings {
            timeout: Duration::from_millis(200),
            ..settings(&server)
        },
    )
    .unwrap();
    let err = router.route("slow.test").await.unwrap_err();
    assert!(matches!(err, RouteError::Temporary { .. }), "{err:?}");
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn local_domains_are_local_without_dns() {
    let server =
        start(Zone::new().srv("_apex-mesh._tcp.example.test", 0, 0, 912, "x.example.test")).await;
    let router = Router::new(
        vec!["example.test".to_owned(), "[192.0.2.1]".to_owned()],
        vec![],
        settings(&server),
    )
    .unwrap();
    assert_eq!(router.route("EXAMPLE.test.").await.unwrap(), Route::Local);
    assert_eq!(router.route("[192.0.2.1]").await.unwrap(), Route::Local);
    assert!(server.queries().is_empty(), "{:?}", server.queries());
}

#[tokio::test]
async fn static_route_wins_over_dns() {
    let server = start(
        Zone::new()
            .srv("_apex-mesh._tcp.peer.test", 0, 0, 912, "srv.peer.test")
            .a("srv.peer.test", V4_A)
            .a("relay.static.test", V4_B),
    )
    .await;
    let router = Router::new(
        vec![],
        vec![
            ("Peer.Test".to_owned(), "relay.static.test:9120".to_owned()),
            ("ip.test".to_owned(), "127.0.0.13:9121".to_owned()),
        ],
        settings(&server),
    )
    .unwrap();
    let targets = remote(router.route("peer.test").await.unwrap());
    assert_eq!(targets, [target("relay.static.test", 9120, &[V4_B.into()])]);
    assert!(!server.was_asked("_apex-mesh._tcp.peer.test", RecordType::SRV));

    let targets = remote(router.route("ip.test").await.unwrap());
    assert_eq!(targets, [target("127.0.0.13", 9121, &[V4_C.into()])]);
    assert!(!server.was_asked("_apex-mesh._tcp.ip.test", RecordType::SRV));
}

#[tokio::test]
async fn static_route_to_an_unknown_host_is_temporary() {
    let server = start(Zone::new()).await;
    let router = Router::new(
        vec![],
        vec![("peer.test".to_owned(), "missing.static.test:912".to_owned())],
        settings(&server),
    )
    .unwrap();
    let err = router.route("peer.test").await.unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
}

#[tokio::test]
async fn domain_literals_bypass_dns() {
    let server = start(Zone::new()).await;
    let router = dns_router(&server);
    assert_eq!(
        remote(router.route("[127.0.0.11]").await.unwrap()),
        [target("127.0.0.11", 912, &[V4_A.into()])]
    );
    assert_eq!(
        remote(router.route("[IPv6:fd00::b]").await.unwrap()),
        [target("fd00::b", 912, &[V6_A.into()])]
    );
    assert!(server.queries().is_empty(), "{:?}", server.queries());

    let err = router.route("[not an address]").await.unwrap_err();
    assert!(matches!(err, RouteError::InvalidDomain { .. }), "{err:?}");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn large_answers_are_fetched_over_tcp() {
    let mut zone = Zone::new().srv_glue(true);
    for i in 0..16u8 {
        let host = format!("relay-with-a-long-name-{i}.example.test");
        zone = zone
            .srv("_apex-mesh._tcp.example.test", u16::from(i), 0, 912, &host)
            .a(&host, Ipv4Addr::new(127, 0, 1, i));
    }
    let server = start(zone).await;
    let targets = remote(dns_router(&server).route("example.test").await.unwrap());
    assert_eq!(targets.len(), 16);
    for (i, t) in (0u8..).zip(&targets) {
        assert_eq!(t.host, format!("relay-with-a-long-name-{i}.example.test"));
        assert_eq!(t.addresses, [IpAddr::from(Ipv4Addr::new(127, 0, 1, i))]);
    }
    assert!(
        server
            .queries()
            .iter()
            .any(|q| q.transport == Transport::Tcp && q.record_type == RecordType::SRV),
        "the truncated UDP answer is retried over TCP: {:?}",
        server.queries()
    );
}

#[tokio::test]
async fn srv_owner_cname_is_followed() {
    let server = start(
        Zone::new()
            .cname("_apex-mesh._tcp.alias.test", "_apex-mesh._tcp.real.test")
            .srv("_apex-mesh._tcp.real.test", 0, 0, 1912, "relay.real.test")
            .a("relay.real.test", V4_A),
    )
    .await;
    let targets = remote(dns_router(&server).route("alias.test").await.unwrap());
    assert_eq!(targets, [target("relay.real.test", 1912, &[V4_A.into()])]);
}

#[test]
fn invalid_configuration_is_rejected() {
    let dns = || DnsSettings {
        nameservers: vec!["127.0.0.1:53".parse().unwrap()],
        ..DnsSettings::default()
    };
    let err = Router::new(vec!["bad..domain".to_owned()], vec![], dns()).unwrap_err();
    assert!(matches!(err, RouteError::InvalidDomain { .. }), "{err:?}");
    let err = Router::new(
        vec![],
        vec![("peer.test".to_owned(), "no-port.test".to_owned())],
        dns(),
    )
    .unwrap_err();
    assert!(
        matches!(err, RouteError::InvalidStaticRoute { .. }),
        "{err:?}"
    );
    let err = Router::new(
        vec![],
        vec![
            ("peer.test".to_owned(), "a.test:1".to_owned()),
            ("PEER.test.".to_owned(), "b.test:1".to_owned()),
        ],
        dns(),
    )
    .unwrap_err();
    assert!(
        matches!(err, RouteError::InvalidStaticRoute { .. }),
        "{err:?}"
    );
}
