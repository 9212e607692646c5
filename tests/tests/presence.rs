//! The presence service (RFC 3343) on real relays: three domains following
//! one presentity through attach, publish, detach and expiry; polite
//! blocking compared octet for octet with an offline presentity; updates to
//! a subscriber behind a broken link coalesced to the newest; watchers;
//! the `imxp presence` command.

use imxp_apex::access::{Actions, Actor, Timestamp};
use imxp_apex::presence::pidf::PidfDocument;
use imxp_apex::presence::{PresenceEntry, PresenceMessage, Subscribe, Tuple};
use imxp_apex::{Endpoint, ReplyCode};
use imxp_client::{access, presence};
use imxp_tests::relays::{Attached, RelaySpec, TestCa, TestRelay, imxp_binary, loopback_listener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a datagram that must not arrive.
const QUIET: Duration = Duration::from_secs(2);

fn ep(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

/// Connects as `user@<relay's domain>` (password `secret-user`) and
/// attaches as `endpoint`.
async fn attach(relay: &TestRelay, ca: &TestCa, user: &str, endpoint: &str) -> Attached {
    relay
        .attach(
            ca,
            &format!("{user}@{}", relay.domain),
            &format!("secret-{user}"),
            endpoint,
        )
        .await
        .unwrap_or_else(|e| panic!("{endpoint} attaches: {e}"))
}

/// `owner` (a user of `relay`) lets `actors` subscribe to its presence.
async fn let_subscribe(relay: &TestRelay, ca: &TestCa, owner: &str, actors: &[&str]) {
    let owner_ep = ep(&format!("{owner}@{}", relay.domain));
    let tool = access::private_endpoint(&owner_ep).unwrap();
    let mut attached = attach(relay, ca, owner, &tool.to_string()).await;
    for actor in actors {
        tokio::time::timeout(
            TIMEOUT,
            access::grant(
                &mut attached,
                &owner_ep,
                &Actor::parse(actor).unwrap(),
                &Actions::parse("presence:subscribe").unwrap(),
            ),
        )
        .await
        .expect("in time")
        .expect("granted");
    }
}

/// Subscribes the attachment's endpoint to `publisher` for `duration`
/// seconds: the transID and the entry shown at once.
async fn subscribe(
    attached: &mut Attached,
    publisher: &str,
    duration: u32,
) -> (presence::Subscription, PresenceEntry) {
    tokio::time::timeout(
        TIMEOUT,
        presence::subscribe(attached, &ep(publisher), duration),
    )
    .await
    .expect("subscribed in time")
    .expect("subscribed")
}

/// The next update of subscription `trans_id` (`None`: terminated).
async fn update(
    attached: &mut Attached,
    subscription: &mut presence::Subscription,
) -> Option<PresenceEntry> {
    tokio::time::timeout(TIMEOUT, presence::next_update(attached, subscription))
        .await
        .expect("an update in time")
        .expect("readable update")
}

fn online(entry: &PresenceEntry) -> bool {
    entry.is_open(presence::now_ms())
}

/// alice publishes `note` from a tool attachment (fetch, then publish).
async fn publish_note(relay: &TestRelay, ca: &TestCa, note: &str) {
    let alice = ep(&format!("alice@{}", relay.domain));
    let tool = presence::tool_endpoint(&alice).unwrap();
    let mut attached = attach(relay, ca, "alice", &tool.to_string()).await;
    let note = imxp_apex::presence::pidf::data_uri_of_note(note);
    tokio::time::timeout(
        TIMEOUT,
        presence::update(&mut attached, &alice, |mut entry| {
            entry.publisher_info.clone_from(&note);
            entry.tuples = vec![Tuple::new(
                "mailto:alice@a.test",
                Timestamp::parse("9999-01-01T00:00:00Z").unwrap(),
            )];
            entry
        }),
    )
    .await
    .expect("published in time")
    .expect("published");
}

struct Three {
    a: TestRelay,
    b: TestRelay,
    c: TestRelay,
}

/// a.test (alice), b.test (bob), c.test (carol), each with static routes
/// to the other two.
async fn three_domains(base: &std::path::Path, ca: &TestCa) -> Three {
    let meshes = [
        loopback_listener().await,
        loopback_listener().await,
        loopback_listener().await,
    ];
    let addresses: Vec<String> = meshes
        .iter()
        .map(|m| m.local_addr().unwrap().to_string())
        .collect();
    let names = [("a.test", "alice"), ("b.test", "bob"), ("c.test", "carol")];
    let mut relays = Vec::new();
    for (i, mesh) in meshes.into_iter().enumerate() {
        let (domain, user) = names[i];
        let mut spec = RelaySpec::new(domain, &[user]);
        for (j, (other, _)) in names.iter().enumerate() {
            if j != i {
                spec.routes
                    .push(((*other).to_owned(), addresses[j].clone()));
            }
        }
        relays.push(TestRelay::start(&spec, ca, &base.join(domain), None, Some(mesh)).await);
    }
    let c = relays.pop().unwrap();
    let b = relays.pop().unwrap();
    let a = relays.pop().unwrap();
    Three { a, b, c }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_in_two_domains_follow_attach_publish_detach_and_expiry() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let Three { a, b, c } = three_domains(base.path(), &ca).await;
    let_subscribe(&a, &ca, "alice", &["bob@b.test", "carol@c.test"]).await;

    let mut bob = attach(&b, &ca, "bob", "bob@b.test").await;
    let mut carol = attach(&c, &ca, "carol", "carol@c.test").await;
    let (mut bob_sub, first) = subscribe(&mut bob, "alice@a.test", 600).await;
    assert!(!online(&first), "alice has never been here: offline");
    assert_eq!(first, PresenceEntry::offline(&ep("alice@a.test")));
    // carol's subscription runs out after 3 s.
    let (mut carol_sub, _) = subscribe(&mut carol, "alice@a.test", 3).await;

    // alice attaches: both see her online, with the relay's tuple.
    let alice = attach(&a, &ca, "alice", "alice/appl=im@a.test").await;
    for (who, sub) in [(&mut bob, &mut bob_sub), (&mut carol, &mut carol_sub)] {
        let entry = update(who, sub).await.expect("an update, not the end");
        assert!(online(&entry));
        assert!(
            entry
                .tuples
                .iter()
                .any(|t| t.is_automatic() && t.destination == "apex:alice/appl=im@a.test")
        );
    }

    // carol's time is up: the service ends her subscription.
    assert_eq!(
        update(&mut carol, &mut carol_sub).await,
        None,
        "terminate at expiry"
    );

    // alice publishes a note: bob sees it beside the relay's tuple.
    publish_note(&a, &ca, "in a meeting").await;
    let entry = update(&mut bob, &mut bob_sub).await.unwrap();
    assert_eq!(
        imxp_apex::presence::pidf::note_of_data_uri(&entry.publisher_info).as_deref(),
        Some("in a meeting")
    );
    assert!(entry.tuples.iter().any(|t| t.is_automatic()));
    assert!(
        entry
            .tuples
            .iter()
            .any(|t| t.destination == "mailto:alice@a.test")
    );
    // Its PIDF form, as a gateway would see it.
    let pidf = PidfDocument::from_entry(&entry, presence::now_ms());
    assert_eq!(pidf.entity, "pres:alice@a.test");
    assert_eq!(pidf.notes[0].text, "in a meeting");

    // alice's attachment ends: her own tuple still says open (mailto),
    // the relay's tuple is gone.
    alice
        .terminate_endpoint(&ep("alice/appl=im@a.test"))
        .await
        .unwrap();
    let entry = update(&mut bob, &mut bob_sub).await.unwrap();
    assert!(!entry.tuples.iter().any(|t| t.is_automatic()));
    assert!(online(&entry), "her published tuple is open");

    // bob ends his subscription; nothing more arrives.
    tokio::time::timeout(
        TIMEOUT,
        presence::terminate(&mut bob, &ep("alice@a.test"), bob_sub.trans_id),
    )
    .await
    .unwrap()
    .unwrap();
    publish_note(&a, &ca, "back").await;
    assert!(
        tokio::time::timeout(QUIET, presence::next_update(&mut bob, &mut bob_sub))
            .await
            .is_err(),
        "no update after terminate"
    );
    drop((bob, carol));
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

/// Sends a raw `subscribe` with a fixed transID and returns the octets of
/// the service's first datagram content.
async fn raw_subscribe(attached: &mut Attached, publisher: &str, trans_id: u32) -> Vec<u8> {
    let message = PresenceMessage::Subscribe(Subscribe {
        publisher: ep(publisher),
        duration: 60,
        trans_id,
    });
    let (data, content) = message.to_data(
        attached.endpoint().clone(),
        ep(&format!("apex=presence@{}", ep(publisher).domain())),
    );
    attached.send_data(&data, &content).await.unwrap();
    let received = tokio::time::timeout(TIMEOUT, attached.next())
        .await
        .expect("an answer in time")
        .expect("an answer");
    received.content.to_vec()
}

/// The `timeStamp` attribute (the service's clock) is the one thing that
/// may differ; it is replaced by a fixed text.
fn without_time_stamp(octets: &[u8]) -> String {
    let text = String::from_utf8(octets.to_vec()).unwrap();
    let start = text.find("timeStamp='").expect("a publish") + "timeStamp='".len();
    let end = start + text[start..].find('\'').unwrap();
    format!("{}T{}", &text[..start], &text[end..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_subscriber_sees_exactly_what_an_offline_presentity_shows() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let Three { a, b, c } = three_domains(base.path(), &ca).await;
    let mut carol = attach(&c, &ca, "carol", "carol@c.test").await;

    // Blocked: alice is online, carol has no presence:subscribe.
    let alice = attach(&a, &ca, "alice", "alice@a.test").await;
    let blocked = raw_subscribe(&mut carol, "alice@a.test", 77).await;
    let end_blocked = raw_terminate(&mut carol, 77).await;

    // Allowed, alice offline.
    alice.terminate_endpoint(&ep("alice@a.test")).await.unwrap();
    let_subscribe(&a, &ca, "alice", &["carol@c.test"]).await;
    // The detach's change is not for carol (she is not subscribed now).
    let allowed = raw_subscribe(&mut carol, "alice@a.test", 77).await;
    let end_allowed = raw_terminate(&mut carol, 77).await;

    assert_eq!(without_time_stamp(&blocked), without_time_stamp(&allowed));
    assert!(
        blocked.len() == allowed.len(),
        "the same length, octet for octet"
    );
    assert_eq!(end_blocked, end_allowed, "terminate answered alike");
    // And it is not a refusal: a publish of the offline entry.
    let PresenceMessage::Publish(publish) = PresenceMessage::parse(&blocked).unwrap() else {
        panic!("a publish, not a reply");
    };
    assert_eq!(
        publish.presence,
        PresenceEntry::offline(&ep("alice@a.test"))
    );
    drop(carol);
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

async fn raw_terminate(attached: &mut Attached, trans_id: u32) -> Vec<u8> {
    let message = PresenceMessage::Terminate { trans_id };
    let (data, content) = message.to_data(attached.endpoint().clone(), ep("apex=presence@a.test"));
    attached.send_data(&data, &content).await.unwrap();
    let received = tokio::time::timeout(TIMEOUT, attached.next())
        .await
        .expect("an answer in time")
        .expect("an answer");
    assert!(matches!(
        PresenceMessage::parse(&received.content).unwrap(),
        PresenceMessage::Reply(r) if r.code == ReplyCode::APEX_OK
    ));
    received.content.to_vec()
}

/// A TCP proxy that can be cut: while closed it refuses connections and
/// has cut every connection it carried.
struct Gate {
    address: std::net::SocketAddr,
    open: Arc<AtomicBool>,
    cut: Arc<parking_lot::Mutex<CancellationToken>>,
}

impl Gate {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gate = Self {
            address: listener.local_addr().unwrap(),
            open: Arc::new(AtomicBool::new(true)),
            cut: Arc::new(parking_lot::Mutex::new(CancellationToken::new())),
        };
        let (open, cut) = (gate.open.clone(), gate.cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !open.load(Ordering::SeqCst) {
                    continue; // dropped: connection closed at once
                }
                let cut = cut.lock().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cut.cancelled() => {}
                    }
                });
            }
        });
        gate
    }

    fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        let mut cut = self.cut.lock();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_behind_a_broken_link_are_coalesced_to_the_newest() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let b_mesh = loopback_listener().await;
    let gate = Gate::start(b_mesh.local_addr().unwrap()).await;
    let (a, b) = imxp_tests::relays::start_pair_via(
        base.path(),
        &ca,
        RelaySpec::new("a.test", &["alice"]),
        RelaySpec::new("b.test", &["bob"]),
        b_mesh,
        gate.address,
    )
    .await;
    let_subscribe(&a, &ca, "alice", &["bob@b.test"]).await;
    let mut bob = attach(&b, &ca, "bob", "bob@b.test").await;
    let (mut sub, _) = subscribe(&mut bob, "alice@a.test", 600).await;

    // The link from a.test to b.test breaks; alice comes and goes three
    // times and publishes a note.
    gate.close();
    for _ in 0..3 {
        let alice = attach(&a, &ca, "alice", "alice/appl=im@a.test").await;
        alice
            .terminate_endpoint(&ep("alice/appl=im@a.test"))
            .await
            .unwrap();
    }
    publish_note(&a, &ca, "the newest").await;
    // Only the newest update waits in a.test's queue for bob.
    let mut for_bob = Vec::new();
    for _ in 0..100 {
        for_bob = a
            .queued()
            .into_iter()
            .filter(|e| e.recipients.iter().any(|r| r.endpoint == "bob@b.test"))
            .collect();
        if for_bob.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(for_bob.len(), 1, "superseded updates are gone: {for_bob:?}");

    // The link is back: bob gets that one update, and nothing else.
    gate.open();
    let entry = update(&mut bob, &mut sub).await.unwrap();
    assert_eq!(
        imxp_apex::presence::pidf::note_of_data_uri(&entry.publisher_info).as_deref(),
        Some("the newest")
    );
    assert!(
        tokio::time::timeout(QUIET, presence::next_update(&mut bob, &mut sub))
            .await
            .is_err(),
        "no stale update after the newest"
    );
    drop(bob);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_watches_subscribers_come_and_go() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (a, b) = imxp_tests::relays::start_pair(
        base.path(),
        &ca,
        RelaySpec::new("a.test", &["alice"]),
        RelaySpec::new("b.test", &["bob"]),
    )
    .await;
    let alice_ep = ep("alice@a.test");
    let mut watcher = attach(&a, &ca, "alice", "alice/watch@a.test").await;
    let watch = tokio::time::timeout(TIMEOUT, presence::watch(&mut watcher, &alice_ep, 600))
        .await
        .unwrap()
        .unwrap();
    // bob, not allowed, subscribes anyway: alice is told (he sees her
    // offline and cannot tell why).
    let mut bob = attach(&b, &ca, "bob", "bob@b.test").await;
    let (sub, _) = subscribe(&mut bob, "alice@a.test", 120).await;
    let sub = sub.trans_id;
    let notice = tokio::time::timeout(TIMEOUT, presence::next_notice(&mut watcher, watch))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(notice.subscriber, ep("bob@b.test"));
    assert_eq!(notice.duration, 120);
    tokio::time::timeout(TIMEOUT, presence::terminate(&mut bob, &alice_ep, sub))
        .await
        .unwrap()
        .unwrap();
    let notice = tokio::time::timeout(TIMEOUT, presence::next_notice(&mut watcher, watch))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(notice.action, imxp_apex::presence::NotifyAction::Terminate);
    // bob may not watch alice: 537.
    let refused = tokio::time::timeout(TIMEOUT, presence::watch(&mut bob, &alice_ep, 60))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(refused, imxp_client::ClientError::Refused { code, .. } if code == ReplyCode::NOT_AUTHORIZED),
        "{refused}"
    );
    drop((bob, watcher));
    b.stop().await;
    a.stop().await;
}

fn imxp(
    relay: &TestRelay,
    ca_dir: &std::path::Path,
    user: &str,
    args: &[&str],
) -> std::process::Output {
    let password = ca_dir.join(format!("{user}.password"));
    std::fs::write(&password, format!("secret-{user}")).unwrap();
    std::process::Command::new(imxp_binary())
        .arg("--relay")
        .arg(relay.edge.to_string())
        .arg("--ca")
        .arg(ca_dir.join("ca.pem"))
        .arg("--server-name")
        .arg(&relay.domain)
        .arg("--user")
        .arg(format!("{user}@{}", relay.domain))
        .arg("--password-file")
        .arg(&password)
        .args(args)
        .output()
        .expect("imxp runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_imxp_presence_command() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (a, b) = imxp_tests::relays::start_pair(
        base.path(),
        &ca,
        RelaySpec::new("a.test", &["alice"]),
        RelaySpec::new("b.test", &["bob"]),
    )
    .await;
    let files = base.path().join("cli");
    std::fs::create_dir_all(&files).unwrap();
    ca.write(&files);
    let run = |relay: &TestRelay, user: &str, args: &[&str]| {
        let output = imxp(relay, &files, user, args);
        assert!(
            output.status.success(),
            "imxp {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let allowed = run(
        &a,
        "alice",
        &[
            "access",
            "allow",
            "bob@b.test",
            "--actions",
            "presence:subscribe presence:watch",
        ],
    );
    assert!(allowed.contains("presence:subscribe"), "{allowed}");
    let published = run(
        &a,
        "alice",
        &[
            "presence",
            "publish",
            "--status",
            "open",
            "--note",
            "lunch",
            "--contact",
            "im:alice@a.test",
        ],
    );
    assert!(
        published.contains("published alice@a.test: open"),
        "{published}"
    );
    let shown = run(&b, "bob", &["presence", "show", "alice@a.test", "--json"]);
    let json: serde_json::Value = serde_json::from_str(shown.trim()).unwrap();
    assert_eq!(json["online"], true, "{shown}");
    assert_eq!(json["note"], "lunch");
    let pidf = run(&b, "bob", &["presence", "show", "alice@a.test", "--pidf"]);
    let document = PidfDocument::parse(pidf.as_bytes()).unwrap();
    assert_eq!(document.tuples[0].basic, Some(true));
    assert_eq!(
        document.tuples[0].contact.as_ref().unwrap().uri,
        "im:alice@a.test"
    );
    // A subscription printing two updates: now, and after alice closes.
    let mut follower = std::process::Command::new(imxp_binary());
    let password = files.join("bob.password");
    follower
        .arg("--relay")
        .arg(b.edge.to_string())
        .arg("--ca")
        .arg(files.join("ca.pem"))
        .arg("--server-name")
        .arg("b.test")
        .arg("--user")
        .arg("bob@b.test")
        .arg("--password-file")
        .arg(&password)
        .args([
            "presence",
            "subscribe",
            "alice@a.test",
            "--json",
            "--count",
            "2",
        ])
        .stdout(std::process::Stdio::piped());
    let child = follower.spawn().unwrap();
    // Let the subscription start before alice changes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    run(&a, "alice", &["presence", "publish", "--status", "closed"]);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["online"], true);
    assert_eq!(lines[1]["online"], false);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_and_allowing_take_effect_at_once() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (a, b) = imxp_tests::relays::start_pair(
        base.path(),
        &ca,
        RelaySpec::new("a.test", &["alice"]),
        RelaySpec::new("b.test", &["bob"]),
    )
    .await;
    let_subscribe(&a, &ca, "alice", &["bob@b.test"]).await;
    let alice = attach(&a, &ca, "alice", "alice@a.test").await;
    let mut bob = attach(&b, &ca, "bob", "bob@b.test").await;
    let (mut sub, first) = subscribe(&mut bob, "alice@a.test", 600).await;
    assert!(online(&first));

    // alice takes bob's entry away: he sees her offline at once, as if
    // she had left (polite blocking), without her changing anything.
    let alice_ep = ep("alice@a.test");
    let tool = access::private_endpoint(&alice_ep).unwrap();
    let mut owner = attach(&a, &ca, "alice", &tool.to_string()).await;
    assert!(
        tokio::time::timeout(
            TIMEOUT,
            access::remove(&mut owner, &alice_ep, &Actor::parse("bob@b.test").unwrap())
        )
        .await
        .unwrap()
        .unwrap()
    );
    let entry = update(&mut bob, &mut sub).await.unwrap();
    assert_eq!(entry, PresenceEntry::offline(&alice_ep));
    // And allowed again: he sees her as she is.
    tokio::time::timeout(
        TIMEOUT,
        access::grant(
            &mut owner,
            &alice_ep,
            &Actor::parse("bob@b.test").unwrap(),
            &Actions::parse("presence:subscribe").unwrap(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(online(&update(&mut bob, &mut sub).await.unwrap()));
    drop((bob, owner, alice));
    b.stop().await;
    a.stop().await;
}
