//! The access service (RFC 3341) on a real relay: RFC defaults block
//! until the owner allows, owner notifications, polite blocking, entries
//! surviving a restart, the site default `[access] default_data`, the
//! service's refusals, and the `imxp access` command.

use imxp_apex::access::{AccessMessage, Actions, Actor};
use imxp_apex::{ApexOption, Endpoint, StatusResponse};
use imxp_client::access;
use imxp_tests::relays::{Attached, RelaySpec, TestCa, TestRelay, imxp_binary};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a datagram that must not arrive.
const QUIET: Duration = Duration::from_secs(2);

fn ep(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

fn actor(text: &str) -> Actor {
    Actor::parse(text).unwrap()
}

/// a.test with users fred and barney and the given `[access]` table.
fn spec(access: &str) -> RelaySpec {
    let mut spec = RelaySpec::new("a.test", &["fred", "barney"]);
    spec.extra.push_str(access);
    spec
}

async fn attach(relay: &TestRelay, ca: &TestCa, user: &str, endpoint: &str) -> Attached {
    relay
        .attach(
            ca,
            &format!("{user}@a.test"),
            &format!("secret-{user}"),
            endpoint,
        )
        .await
        .unwrap_or_else(|e| panic!("{endpoint} attaches: {e}"))
}

/// Sends `text` from `from` to `to`; the relay accepts it whatever the
/// recipient's entries say (the check is at delivery).
async fn send(from: &Attached, to: &str, text: &str) {
    tokio::time::timeout(
        TIMEOUT,
        from.send(vec![ep(to)], "text/plain; charset=utf-8", text.as_bytes()),
    )
    .await
    .expect("answered in time")
    .expect("accepted");
}

/// The next datagram's text, or `None` if nothing arrives within `wait`.
async fn next_text(attached: &mut Attached, wait: Duration) -> Option<String> {
    let received = tokio::time::timeout(wait, attached.next()).await.ok()??;
    Some(String::from_utf8_lossy(&received.content).into_owned())
}

/// Waits until the relay's spool is empty (blocked datagrams fail and are
/// removed; nothing is retried).
async fn drained(relay: &TestRelay) {
    for _ in 0..200 {
        if relay.queued().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the spool still holds {:?}", relay.queued());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_defaults_allow_block_notifications_and_restart() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let dir = base.path().join("a");
    // default_data = []: RFC 3341 §3's defaults alone.
    let spec = spec("[access]\ndefault_data = []\n");
    let relay = TestRelay::start(&spec, &ca, &dir, None, None).await;
    let fred_owner = ep("fred@a.test");
    let mut fred = attach(&relay, &ca, "fred", "fred@a.test").await;
    fred.set_auto_ack(true);
    let barney = attach(&relay, &ca, "barney", "barney@a.test").await;

    // Under the RFC defaults barney may not send to fred: the datagram is
    // accepted, then dropped silently.
    send(&barney, "fred@a.test", "blocked by default").await;
    // Processed (gone from the spool) before "not delivered" is checked.
    drained(&relay).await;
    assert_eq!(next_text(&mut fred, QUIET).await, None);

    // fred allows barney through the service, from a private subaddress.
    let mut tool = attach(&relay, &ca, "fred", "fred/tool@a.test").await;
    let granted = tokio::time::timeout(
        TIMEOUT,
        access::allow(&mut tool, &fred_owner, &actor("barney@a.test")),
    )
    .await
    .expect("in time")
    .expect("allowed");
    assert_eq!(granted.to_string(), "core:data");
    // The owner is notified with a set carrying the new entry (§4.4).
    let notification = tokio::time::timeout(TIMEOUT, fred.next())
        .await
        .expect("in time")
        .expect("a notification");
    assert_eq!(notification.originator, ep("apex=access@a.test"));
    let AccessMessage::Set(set) = AccessMessage::parse(&notification.content).unwrap() else {
        panic!("set expected")
    };
    assert_eq!(set.entry.actor, actor("barney@a.test"));
    assert_eq!(set.entry.actions, Some(Actions::core_data()));
    assert!(set.entry.last_update.is_some());

    send(&barney, "fred@a.test", "now allowed").await;
    assert_eq!(
        next_text(&mut fred, TIMEOUT).await.as_deref(),
        Some("now allowed")
    );
    let entries = access::list(&mut tool, &fred_owner).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert!(
        access::query(
            &mut tool,
            &fred_owner,
            &ep("barney@a.test"),
            &Actions::core_data()
        )
        .await
        .unwrap()
    );

    // Restart: the entry is still there.
    drop((fred, barney, tool));
    relay.stop().await;
    let relay = TestRelay::start(&spec, &ca, &dir, None, None).await;
    let mut fred = attach(&relay, &ca, "fred", "fred@a.test").await;
    fred.set_auto_ack(true);
    let barney = attach(&relay, &ca, "barney", "barney@a.test").await;
    send(&barney, "fred@a.test", "after the restart").await;
    assert_eq!(
        next_text(&mut fred, TIMEOUT).await.as_deref(),
        Some("after the restart")
    );

    // Block again: dropped silently, and barney learns nothing.
    let mut tool = attach(&relay, &ca, "fred", "fred/tool@a.test").await;
    let blocked = access::block(&mut tool, &fred_owner, &actor("barney@a.test"))
        .await
        .unwrap();
    assert_eq!(blocked, Actions::none());
    let AccessMessage::Set(set) = AccessMessage::parse(
        &tokio::time::timeout(TIMEOUT, fred.next())
            .await
            .unwrap()
            .unwrap()
            .content,
    )
    .unwrap() else {
        panic!("set expected")
    };
    assert_eq!(set.entry.actions, Some(Actions::none()));
    send(&barney, "fred@a.test", "blocked again").await;
    drained(&relay).await;
    assert_eq!(next_text(&mut fred, QUIET).await, None);

    // Polite blocking with a report requested: barney gets a failure
    // report that reads exactly like the one for an endpoint that is not
    // attached (apex=directory@a.test: services skip the core:data check,
    // and no service of that name runs and nothing is attached as it here).
    let mut barney = barney;
    barney.set_auto_ack(true);
    let mut reports = Vec::new();
    for (to, trans_id) in [("fred@a.test", 41), ("apex=directory@a.test", 42)] {
        let (mut data, content) =
            imxp_client::payload::text_data(&ep("barney@a.test"), &[ep(to)], "with a report");
        data.options = vec![ApexOption::status_request(trans_id)];
        barney.send_data(&data, &content).await.expect("accepted");
        let report = tokio::time::timeout(TIMEOUT, barney.next())
            .await
            .expect("a report in time")
            .expect("a report");
        assert_eq!(report.originator, ep("apex=report@a.test"));
        let status =
            StatusResponse::from_data_content(report.data.data_content.as_ref().unwrap()).unwrap();
        assert_eq!(status.trans_id, trans_id);
        reports.push(status.destinations[0].reply.clone());
    }
    assert_eq!(reports[0].code, reports[1].code);
    assert_eq!(reports[0].code.0, 550);
    assert_eq!(
        reports[0].text.replace("fred@", "X@"),
        reports[1].text.replace("apex=directory@", "X@"),
        "the block is not revealed"
    );
    assert_eq!(next_text(&mut fred, QUIET).await, None);
    assert!(
        !access::query(
            &mut tool,
            &fred_owner,
            &ep("barney@a.test"),
            &Actions::core_data()
        )
        .await
        .unwrap()
    );
    drop((fred, barney, tool));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_default_lets_everyone_write_until_blocked_and_the_service_refuses() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    // No [access] table: default_data = ["*@*"].
    let relay = TestRelay::start(&spec(""), &ca, &base.path().join("a"), None, None).await;
    let mut fred = attach(&relay, &ca, "fred", "fred@a.test").await;
    fred.set_auto_ack(true);
    let barney = attach(&relay, &ca, "barney", "barney@a.test").await;
    send(&barney, "fred@a.test", "open by default").await;
    assert_eq!(
        next_text(&mut fred, TIMEOUT).await.as_deref(),
        Some("open by default")
    );

    // barney may not read or change fred's entries (537), nor those of a
    // domain this relay does not serve (553).
    let mut snoop = attach(&relay, &ca, "barney", "barney/tool@a.test").await;
    let fred_owner = ep("fred@a.test");
    let refused = access::list(&mut snoop, &fred_owner).await.unwrap_err();
    assert!(
        matches!(&refused, imxp_client::ClientError::Refused { code, .. } if code.0 == 537),
        "{refused}"
    );
    let refused = access::block(&mut snoop, &fred_owner, &actor("barney@a.test"))
        .await
        .unwrap_err();
    assert!(matches!(&refused, imxp_client::ClientError::Refused { code, .. } if code.0 == 537));
    let refused = access::list(&mut snoop, &ep("fred@elsewhere.test"))
        .await
        .unwrap_err();
    assert!(matches!(&refused, imxp_client::ClientError::Refused { code, .. } if code.0 == 553));

    // Optimistic locking: a stale lastUpdate is 555; get returns 551 for
    // no entry.
    let mut tool = attach(&relay, &ca, "fred", "fred/tool@a.test").await;
    assert_eq!(
        access::get(&mut tool, &fred_owner, &actor("*@*"))
            .await
            .unwrap(),
        None
    );
    access::block(&mut tool, &fred_owner, &actor("*@*"))
        .await
        .unwrap();
    let current = access::get(&mut tool, &fred_owner, &actor("*@*"))
        .await
        .unwrap()
        .expect("stored");
    let mut stale = current.clone();
    stale.last_update =
        Some(imxp_apex::access::Timestamp::parse("2000-05-14T13:02:00-08:00").unwrap());
    stale.actions = Some(Actions::core_data());
    let refused = access::set(&mut tool, stale).await.unwrap_err();
    assert!(matches!(&refused, imxp_client::ClientError::Refused { code, .. } if code.0 == 555));

    // fred's explicit *@* all:none overrides the site default; his own
    // notification (from apex=access) still reaches him.
    send(&barney, "fred@a.test", "closed now").await;
    let mut texts = Vec::new();
    while let Some(text) = next_text(&mut fred, QUIET).await {
        texts.push(text);
    }
    assert!(texts.iter().all(|t| t != "closed now"), "{texts:?}");
    assert!(
        texts.iter().any(|t| t.contains("<set")),
        "notification: {texts:?}"
    );
    // Removing the entry widens access again (RFC 3341 §2.3).
    assert!(
        access::remove(&mut tool, &fred_owner, &actor("*@*"))
            .await
            .unwrap()
    );
    send(&barney, "fred@a.test", "open again").await;
    let mut texts = Vec::new();
    while let Some(text) = next_text(&mut fred, QUIET).await {
        texts.push(text);
    }
    assert!(texts.iter().any(|t| t == "open again"), "{texts:?}");
    drop((fred, barney, snoop, tool));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imxp_access_command() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let dir = base.path().join("a");
    let relay = TestRelay::start(
        &spec("[access]\ndefault_data = []\n"),
        &ca,
        &dir,
        None,
        None,
    )
    .await;
    let ca_file = ca.write(&dir);
    let password_file = base.path().join("fred.password");
    std::fs::write(&password_file, "secret-fred\n").unwrap();
    let run = {
        let relay = &relay;
        let ca_file = ca_file.clone();
        let password_file = password_file.clone();
        move |args: Vec<&'static str>| {
            let relay_edge = relay.edge;
            let ca_file = ca_file.clone();
            let password_file = password_file.clone();
            let domain = relay.domain.clone();
            tokio::task::spawn_blocking(move || {
                let target = CliTarget {
                    edge: relay_edge,
                    domain,
                };
                target.run(&ca_file, &password_file, &args)
            })
        }
    };
    let (ok, out) = run(vec!["list"]).await.unwrap();
    assert!(ok);
    assert_eq!(out.trim(), "no entries for fred@a.test");
    let (ok, out) = run(vec!["query", "barney@a.test"]).await.unwrap();
    assert!(ok);
    assert_eq!(out.trim(), "deny");
    let (_, out) = run(vec!["allow", "barney@a.test"]).await.unwrap();
    assert_eq!(out.trim(), "allowed barney@a.test: core:data");
    let (_, out) = run(vec!["query", "barney@a.test"]).await.unwrap();
    assert_eq!(out.trim(), "allow");
    let (_, out) = run(vec!["block", "*@*.a.test"]).await.unwrap();
    assert_eq!(out.trim(), "blocked *@*.a.test: all:none");
    let (_, out) = run(vec!["list"]).await.unwrap();
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l[0] == "barney@a.test" && l[1] == "core:data")
    );
    assert!(
        lines
            .iter()
            .any(|l| l[0] == "*@*.a.test" && l[1] == "all:none")
    );
    // The exact entry beats the wildcard: barney may still write.
    let (_, out) = run(vec!["query", "barney@a.test"]).await.unwrap();
    assert_eq!(out.trim(), "allow");
    let (_, out) = run(vec!["query", "dino@a.test"]).await.unwrap();
    assert_eq!(out.trim(), "deny");
    let (_, out) = run(vec!["remove", "barney@a.test"]).await.unwrap();
    assert_eq!(out.trim(), "removed barney@a.test");
    let (_, out) = run(vec!["query", "barney@a.test"]).await.unwrap();
    assert_eq!(out.trim(), "deny");
    // Someone else's entries: refused (exit 3).
    let (ok, _) = run(vec!["--owner", "barney@a.test", "list"]).await.unwrap();
    assert!(!ok);
    relay.stop().await;
}

/// Runs `imxp … access ARGS` as fred against a relay's edge (plain data,
/// for `spawn_blocking`): whether it succeeded (exit 0; exit 3 is a
/// refusal, anything else fails the test) and its standard output.
struct CliTarget {
    edge: std::net::SocketAddr,
    domain: String,
}

impl CliTarget {
    fn run(&self, ca_file: &Path, password_file: &Path, args: &[&str]) -> (bool, String) {
        let output = Command::new(imxp_binary())
            .arg("--relay")
            .arg(self.edge.to_string())
            .arg("--ca")
            .arg(ca_file)
            .args([
                "--server-name",
                &self.domain,
                "--user",
                "fred@a.test",
                "--timeout",
                "20",
            ])
            .arg("--password-file")
            .arg(password_file)
            .arg("access")
            .args(args)
            .output()
            .expect("imxp runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success() || output.status.code() == Some(3),
            "imxp {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), stdout)
    }
}
