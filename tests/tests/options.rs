//! APEX options across two relays (a.test, b.test; real TLS, real spools):
//! the RFC 3340 §5.1 statusRequest scenarios, the RFC 3342 dataTiming
//! (final-hop report, timing error, transient report) and dataHopping
//! examples, targetHop and mustUnderstand, options added at ingress, the
//! per-originator report limit, and "reports never cause reports".

use imxp_apex::processing::is_report;
use imxp_apex::{
    ApexOption, Content, Data, DataHopping, DataTiming, Endpoint, StatusResponse, TargetHop,
};
use imxp_client::payload::text_data;
use imxp_tests::relays::{Attached, RelaySpec, TestCa, TestRelay, start_pair};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

fn ep(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

/// A and B routing each other's domain statically; `extra_*` appended to
/// their configurations.
async fn two_relays(
    base: &std::path::Path,
    ca: &TestCa,
    extra_a: &str,
    extra_b: &str,
) -> (TestRelay, TestRelay) {
    let mut a = RelaySpec::new("a.test", &["fred"]);
    a.extra.push_str(extra_a);
    let mut b = RelaySpec::new("b.test", &["wilma"]);
    b.extra.push_str(extra_b);
    start_pair(base, ca, a, b).await
}

async fn fred(a: &TestRelay, ca: &TestCa) -> Attached {
    let mut fred = a
        .attach(ca, "fred@a.test", "secret-fred", "fred@a.test")
        .await
        .expect("fred attaches at A");
    fred.set_auto_ack(true);
    fred
}

async fn wilma(b: &TestRelay, ca: &TestCa) -> Attached {
    let mut wilma = b
        .attach(ca, "wilma@b.test", "secret-wilma", "wilma@b.test")
        .await
        .expect("wilma attaches at B");
    wilma.set_auto_ack(true);
    wilma
}

/// fred's data to `to` with `options`.
fn data(to: &str, text: &str, options: Vec<ApexOption>) -> (Data, Content) {
    let (mut data, content) = text_data(&ep("fred@a.test"), &[ep(to)], text);
    data.options = options;
    (data, content)
}

/// The next report fred receives: (its data, its statusResponse).
async fn next_report(fred: &mut Attached) -> (Data, StatusResponse) {
    let received = tokio::time::timeout(TIMEOUT, fred.next())
        .await
        .expect("a report in time")
        .expect("a datagram");
    let inline = received
        .data
        .data_content
        .as_ref()
        .expect("a report's content is inline");
    let status = StatusResponse::from_data_content(inline).expect("a statusResponse");
    (received.data.clone(), status)
}

/// Waits until `relay`'s spool is empty.
async fn drained(relay: &TestRelay) {
    tokio::time::timeout(TIMEOUT, async {
        while !relay.queued().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("spool drained in time");
}

/// An option of `data` by internal name.
fn option<'a>(data: &'a Data, name: &str) -> Option<&'a ApexOption> {
    data.options.iter().find(|o| o.is_internal(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_request_rfc_3340_scenarios() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (a, b) = two_relays(base.path(), &ca, "", "").await;
    let mut fred = fred(&a, &ca).await;
    let mut wilma = wilma(&b, &ca).await;

    // §5.1 third scenario: relay #2 delivers and reports 250; the
    // targetHop='final' option reaches the recipient untouched.
    let (d, c) = data("wilma@b.test", "hi", vec![ApexOption::status_request(86)]);
    fred.send_data(&d, &c).await.expect("A accepts");
    let received = tokio::time::timeout(TIMEOUT, wilma.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&received.content[..], b"hi");
    assert_eq!(
        option(&received.data, "statusRequest"),
        Some(&ApexOption::status_request(86))
    );
    let (report, status) = next_report(&mut fred).await;
    assert_eq!(report.originator.identity, ep("apex=report@b.test"));
    assert_eq!(
        report.recipient_identities().collect::<Vec<_>>(),
        [&ep("fred@a.test")]
    );
    // Only the delivering relay's hop identity (docs/decisions.md,
    // Duplicates): a report asks for no report.
    assert!(
        report.options.iter().all(imxp_apex::hop_id::is_hop_id),
        "a report asks for no report: {:?}",
        report.options
    );
    assert_eq!(status.trans_id, 86);
    assert_eq!(status.destinations.len(), 1);
    assert_eq!(status.destinations[0].identity, ep("wilma@b.test"));
    assert_eq!(status.destinations[0].reply.code.0, 250);

    // §5.1 second scenario: unknown endpoint → 550 from relay #2.
    let (d, c) = data("nobody@b.test", "hi", vec![ApexOption::status_request(87)]);
    fred.send_data(&d, &c).await.expect("A accepts");
    let (report, status) = next_report(&mut fred).await;
    assert_eq!(report.originator.identity, ep("apex=report@b.test"));
    assert_eq!(status.trans_id, 87);
    assert_eq!(status.destinations[0].identity, ep("nobody@b.test"));
    assert_eq!(status.destinations[0].reply.code.0, 550);
    assert!(
        status.destinations[0].reply.text.contains("not attached"),
        "{:?}",
        status.destinations[0].reply.text
    );

    // targetHop='all': a per-hop trace, one report from each relay.
    let (d, c) = data(
        "wilma@b.test",
        "traced",
        vec![ApexOption::status_request(88).target_hop(TargetHop::All)],
    );
    fred.send_data(&d, &c).await.expect("A accepts");
    let _ = tokio::time::timeout(TIMEOUT, wilma.next()).await.unwrap();
    let mut from = Vec::new();
    for _ in 0..2 {
        let (report, status) = next_report(&mut fred).await;
        assert_eq!(status.trans_id, 88);
        assert_eq!(status.destinations[0].reply.code.0, 250);
        from.push((
            report.originator.identity.to_string(),
            status.destinations[0].reply.text.clone(),
        ));
    }
    from.sort();
    assert_eq!(from[0].0, "apex=report@a.test");
    assert!(from[0].1.starts_with("relayed to "), "{:?}", from[0].1);
    assert_eq!(from[1].0, "apex=report@b.test");

    // Per-recipient statusRequest: only that recipient is reported on.
    let (mut d, c) = text_data(
        &ep("fred@a.test"),
        &[ep("wilma@b.test"), ep("nobody@b.test")],
        "two",
    );
    d.recipients[1].options.push(ApexOption::status_request(89));
    fred.send_data(&d, &c).await.expect("A accepts");
    let received = tokio::time::timeout(TIMEOUT, wilma.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&received.content[..], b"two");
    let (_, status) = next_report(&mut fred).await;
    assert_eq!(status.trans_id, 89);
    assert_eq!(status.destinations.len(), 1);
    assert_eq!(status.destinations[0].identity, ep("nobody@b.test"));
    assert_eq!(status.destinations[0].reply.code.0, 550);

    drained(&a).await;
    drained(&b).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_never_cause_reports_and_are_rate_limited() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (a, b) = two_relays(
        base.path(),
        &ca,
        "",
        "[reports]\nmax_per_originator_per_minute = 2\n",
    )
    .await;
    let mut fred = fred(&a, &ca).await;

    // A data carrying a statusResponse (with a statusRequest it must not
    // carry) to an unknown endpoint: it fails, and nobody reports that.
    let status = StatusResponse::parse(
        b"<statusResponse transID='1'><destination identity='x@b.test'><reply code='250' /></destination></statusResponse>",
    )
    .unwrap();
    let content = Content::Inline(status.to_data_content("Content"));
    let mut report_like = Data::new(ep("fred@a.test"), [ep("nobody@b.test")]);
    report_like.set_content(&content);
    report_like.options.push(ApexOption::status_request(90));
    assert!(is_report(&report_like, &content));
    fred.send_data(&report_like, &content)
        .await
        .expect("A accepts");
    drained(&a).await;
    drained(&b).await;
    drained(&a).await;

    // Four failures asking for status: B reports two (its limit per
    // originator per minute) and drops the rest.
    for n in 0..4 {
        let (d, c) = data(
            "nobody@b.test",
            &format!("n{n}"),
            vec![ApexOption::status_request(91 + n)],
        );
        fred.send_data(&d, &c).await.expect("A accepts");
    }
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (_, status) = next_report(&mut fred).await;
        assert_ne!(status.trans_id, 90, "no report about a report");
        seen.push(status.trans_id);
    }
    drained(&b).await;
    drained(&a).await;
    // Everything is processed: a third report would already be here.
    let more = tokio::time::timeout(Duration::from_millis(500), fred.next()).await;
    assert!(more.is_err(), "only two reports: {more:?}");
    assert!(seen.iter().all(|t| (91..95).contains(t)));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_timing_rfc_3342_scenarios() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (a, b) = two_relays(base.path(), &ca, "", "").await;
    let mut fred = fred(&a, &ca).await;
    let mut wilma = wilma(&b, &ca).await;

    // §2.1.1 final-hop report: delivered with the counter reduced, then a
    // 250 report carrying its own dataTiming noLaterThan=returnTrip.
    let timing = DataTiming {
        no_later_than: 10_000,
        return_trip: 20_000,
        ..DataTiming::default()
    };
    let (d, c) = data("wilma@b.test", "timed", vec![timing.to_option(86)]);
    fred.send_data(&d, &c).await.expect("A accepts");
    let received = tokio::time::timeout(TIMEOUT, wilma.next())
        .await
        .unwrap()
        .unwrap();
    let (_, seen) = received.data.data_timing().unwrap().unwrap();
    assert!(
        seen.no_later_than > 0 && seen.no_later_than < 10_000,
        "reduced by the time at A and B: {seen:?}"
    );
    assert_eq!(seen.return_trip, 20_000);
    let (report, status) = next_report(&mut fred).await;
    assert_eq!(report.originator.identity, ep("apex=report@b.test"));
    assert_eq!(status.trans_id, 86);
    assert_eq!(status.destinations[0].reply.code.0, 250);
    let (option, own) = report.data_timing().unwrap().expect("its own dataTiming");
    assert_eq!(option.target_hop, TargetHop::All);
    assert!(option.must_understand);
    assert_ne!(option.trans_id, Some(86), "a new transID");
    assert!(
        own.no_later_than > 0 && own.no_later_than <= 20_000,
        "{own:?}"
    );
    assert_eq!(own.return_trip, 0);
    assert!(!own.report_errors);

    // §2.2.1 transient report: wilma takes longer than reportAfter to
    // answer; B reports 350 and still delivers.
    wilma.set_auto_ack(false);
    let timing = DataTiming {
        report_after: 300,
        ..DataTiming::default()
    };
    let (d, c) = data("wilma@b.test", "slow", vec![timing.to_option(87)]);
    fred.send_data(&d, &c).await.expect("A accepts");
    let mut received = tokio::time::timeout(TIMEOUT, wilma.next())
        .await
        .unwrap()
        .unwrap();
    let (report, status) = next_report(&mut fred).await;
    assert_eq!(report.originator.identity, ep("apex=report@b.test"));
    assert_eq!(status.trans_id, 87);
    assert_eq!(status.destinations[0].reply.code.0, 350);
    received.ack().await.expect("ack");
    wilma.set_auto_ack(true);

    // B is down. §2.2.1 while the data waits at A: reportAfter runs out,
    // A reports 350 once. §2.1.2: A cannot send before noLaterThan runs
    // out: a timing error report, 550 from A, a permanent failure, once.
    drained(&a).await;
    drained(&b).await;
    b.stop().await;
    let timing = DataTiming {
        no_later_than: 2_500,
        report_after: 400,
        report_errors: true,
        ..DataTiming::default()
    };
    let (d, c) = data("wilma@b.test", "late", vec![timing.to_option(88)]);
    fred.send_data(&d, &c).await.expect("A accepts");
    let (report, status) = next_report(&mut fred).await;
    assert_eq!(report.originator.identity, ep("apex=report@a.test"));
    assert_eq!(status.trans_id, 88);
    assert_eq!(status.destinations[0].reply.code.0, 350);
    let (report, status) = next_report(&mut fred).await;
    assert_eq!(report.originator.identity, ep("apex=report@a.test"));
    assert_eq!(status.trans_id, 88);
    assert_eq!(status.destinations[0].identity, ep("wilma@b.test"));
    assert_eq!(status.destinations[0].reply.code.0, 550);
    drained(&a).await;
    let more = tokio::time::timeout(Duration::from_millis(500), fred.next()).await;
    assert!(more.is_err(), "one report: {more:?}");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_hopping_and_option_rules() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (a, b) = two_relays(
        base.path(),
        &ca,
        "[options]\ndefault_hops = 5\ningress = [\"<option internal='x-site' targetHop='all' />\"]\n",
        "",
    )
    .await;
    let mut fred = fred(&a, &ca).await;
    let mut wilma = wilma(&b, &ca).await;

    // RFC 3342 §4: the application sends 2, relay #1 sends 1 on.
    let hopping = DataHopping {
        no_more_than: 2,
        report_errors: true,
    };
    let this_only = ApexOption::internal("x-local").target_hop(TargetHop::This);
    let (d, c) = data(
        "wilma@b.test",
        "hop",
        vec![hopping.to_option(86), this_only],
    );
    fred.send_data(&d, &c).await.expect("A accepts");
    let received = tokio::time::timeout(TIMEOUT, wilma.next())
        .await
        .unwrap()
        .unwrap();
    let (hop_option, seen) = received.data.data_hopping().unwrap().unwrap();
    assert_eq!(seen.no_more_than, 1);
    assert!(seen.report_errors);
    assert_eq!(hop_option.trans_id, Some(86));
    assert!(
        option(&received.data, "x-local").is_none(),
        "targetHop='this' removed"
    );
    // The operator's ingress option is added; the default budget is not,
    // since the data has its own.
    assert!(option(&received.data, "x-site").is_some());
    assert_eq!(
        received
            .data
            .options
            .iter()
            .filter(|o| o.is_internal("dataHopping"))
            .count(),
        1
    );

    // With 1, relay #1 may not send it on: 550 from A.
    let hopping = DataHopping {
        no_more_than: 1,
        report_errors: true,
    };
    let (d, c) = data("wilma@b.test", "no hop", vec![hopping.to_option(87)]);
    fred.send_data(&d, &c).await.expect("A accepts");
    let (report, status) = next_report(&mut fred).await;
    assert_eq!(report.originator.identity, ep("apex=report@a.test"));
    assert_eq!(status.trans_id, 87);
    assert_eq!(status.destinations[0].reply.code.0, 550);

    // Without one, the ingress default budget is added (5, then 4 at B).
    let (d, c) = data("wilma@b.test", "default", Vec::new());
    fred.send_data(&d, &c).await.expect("A accepts");
    let received = tokio::time::timeout(TIMEOUT, wilma.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&received.content[..], b"default");
    let (hop_option, seen) = received.data.data_hopping().unwrap().unwrap();
    assert_eq!(seen.no_more_than, 4);
    assert_eq!(hop_option.target_hop, TargetHop::All);
    assert!(hop_option.must_understand);

    // mustUnderstand per data, applying here and not understood: 504
    // before ok.
    let unknown = ApexOption::internal("x-unknown")
        .target_hop(TargetHop::All)
        .must_understand(true);
    let (d, c) = data("wilma@b.test", "refused", vec![unknown.clone()]);
    let error = fred.send_data(&d, &c).await.expect_err("refused");
    assert_eq!(error.refused_code().map(|c| c.0), Some(504), "{error}");
    // ... targetHop='final' for a foreign recipient: not A's business.
    let final_unknown = unknown.clone().target_hop(TargetHop::Final);
    let (mut d, c) = data(
        "wilma@b.test",
        "per recipient",
        vec![ApexOption::status_request(88)],
    );
    d.recipients[0].options.push(final_unknown.clone());
    fred.send_data(&d, &c).await.expect("A accepts");
    // B applies it, does not understand it: the recipient fails after ok
    // and the status request reports 504.
    let (report, status) = next_report(&mut fred).await;
    assert_eq!(report.originator.identity, ep("apex=report@b.test"));
    assert_eq!(status.trans_id, 88);
    assert_eq!(status.destinations[0].reply.code.0, 504);
    // Not mustUnderstand: passed on and ignored.
    let (d, c) = data(
        "wilma@b.test",
        "optional",
        vec![final_unknown.must_understand(false)],
    );
    fred.send_data(&d, &c).await.expect("A accepts");
    let received = tokio::time::timeout(TIMEOUT, wilma.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&received.content[..], b"optional");
    assert!(option(&received.data, "x-unknown").is_some());

    drained(&a).await;
    drained(&b).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_data_counts_down_and_reports_transient() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (a, b) = two_relays(base.path(), &ca, "", "").await;
    let mut fred = fred(&a, &ca).await;

    // RFC 3342 §3: held for barney (wilma here) with noLaterThan 60000;
    // reportAfter runs out while it is held: B reports 350 then, once.
    let timing = DataTiming {
        no_later_than: 60_000,
        report_after: 300,
        ..DataTiming::default()
    };
    let (d, c) = data(
        "wilma@b.test",
        "held",
        vec![
            ApexOption::internal(imxp_apex::party::HOLD_FOR_ENDPOINT),
            timing.to_option(86),
        ],
    );
    fred.send_data(&d, &c).await.expect("A accepts");
    let (report, status) = next_report(&mut fred).await;
    assert_eq!(report.originator.identity, ep("apex=report@b.test"));
    assert_eq!(status.trans_id, 86);
    assert_eq!(status.destinations[0].identity, ep("wilma@b.test"));
    assert_eq!(status.destinations[0].reply.code.0, 350);
    // How long B has held it so far, by the spool's own clock: the 350
    // report proves the hold timer ran; delivery comes later still.
    let queued_ms = b
        .queued()
        .iter()
        .find(|e| e.recipients.iter().any(|r| r.endpoint == "wilma@b.test"))
        .expect("B holds the datagram for wilma")
        .queued_ms;
    let held_ms = imxp_spool::Clock::system().now_ms() - queued_ms;

    // wilma attaches: the held data arrives with the time it was held
    // taken off noLaterThan, and reportAfter spent.
    let mut wilma = wilma(&b, &ca).await;
    let received = tokio::time::timeout(TIMEOUT, wilma.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&received.content[..], b"held");
    let (_, seen) = received.data.data_timing().unwrap().unwrap();
    assert!(
        u64::from(seen.no_later_than) <= 60_000 - held_ms,
        "held time counts ({held_ms} ms so far): {seen:?}"
    );
    assert_eq!(seen.report_after, 0);
    drained(&a).await;
    drained(&b).await;
    let more = tokio::time::timeout(Duration::from_millis(500), fred.next()).await;
    assert!(more.is_err(), "one transient report: {more:?}");
    a.stop().await;
    b.stop().await;
}
