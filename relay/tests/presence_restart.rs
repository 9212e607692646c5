//! Presence survives a SIGKILL of the presentity's relay (RFC 3343 §4:
//! entries and operations in progress are kept in persistent storage).
//! alice@a.test is followed by bob@b.test and carol@c.test (three real
//! `imxpd` processes); a.test is killed while alice is attached and
//! started again on the same spool: both subscriptions go on (each is told
//! alice went offline, then that she is back), and a subscription that
//! runs out while a.test is down is ended with `terminate` once it is up
//! again.

mod support;

use imxp_apex::Endpoint;
use imxp_apex::access::{Actions, Actor};
use imxp_apex::presence::PresenceEntry;
use imxp_client::{Attachment, access, presence};
use std::time::Duration;
use support::{connect, free_port, spawn, wait_listening, write_relay};

const TIMEOUT: Duration = Duration::from_secs(30);

fn ep(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

async fn update(
    attachment: &mut Attachment,
    subscription: &mut presence::Subscription,
) -> Option<PresenceEntry> {
    tokio::time::timeout(TIMEOUT, presence::next_update(attachment, subscription))
        .await
        .expect("an update in time")
        .expect("a readable update")
}

fn online(entry: &PresenceEntry) -> bool {
    entry.is_open(presence::now_ms())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_survive_a_sigkill_of_the_presentitys_relay() {
    let base = tempfile::tempdir().unwrap();
    let (a_mesh, b_mesh, c_mesh) = (free_port(), free_port(), free_port());
    let a = write_relay(
        &base.path().join("a"),
        "a.test",
        a_mesh,
        &[("b.test", b_mesh), ("c.test", c_mesh)],
        &["alice"],
    );
    let b = write_relay(
        &base.path().join("b"),
        "b.test",
        b_mesh,
        &[("a.test", a_mesh)],
        &["bob"],
    );
    let c = write_relay(
        &base.path().join("c"),
        "c.test",
        c_mesh,
        &[("a.test", a_mesh)],
        &["carol"],
    );
    let _b_process = spawn(&b);
    let _c_process = spawn(&c);
    let mut a_process = spawn(&a);
    for relay in [&a, &b, &c] {
        wait_listening(relay.edge).await;
    }

    // alice lets bob (and his subaddresses' owner) see her.
    let alice = ep("alice@a.test");
    {
        let client = connect(a.edge, "alice@a.test").await;
        let mut tool = client
            .attach(access::private_endpoint(&alice).unwrap())
            .await
            .unwrap();
        for actor in ["bob@b.test", "bob/short@b.test", "carol@c.test"] {
            access::grant(
                &mut tool,
                &alice,
                &Actor::parse(actor).unwrap(),
                &Actions::parse("presence:subscribe").unwrap(),
            )
            .await
            .unwrap();
        }
        tool.terminate().await.unwrap();
        client.close().await.unwrap();
    }

    let bob_client = connect(b.edge, "bob@b.test").await;
    let mut bob = bob_client.attach(ep("bob@b.test")).await.unwrap();
    let (mut long, first) = presence::subscribe(&mut bob, &alice, 600).await.unwrap();
    assert!(!online(&first));
    let mut short_attachment = bob_client.attach(ep("bob/short@b.test")).await.unwrap();
    let (mut short, _) = presence::subscribe(&mut short_attachment, &alice, 6)
        .await
        .unwrap();
    let carol_client = connect(c.edge, "carol@c.test").await;
    let mut carol = carol_client.attach(ep("carol@c.test")).await.unwrap();
    let (mut at_c, _) = presence::subscribe(&mut carol, &alice, 600).await.unwrap();

    // alice attaches: both subscriptions see her.
    let alice_client = connect(a.edge, "alice@a.test").await;
    let _alice_im = alice_client
        .attach(ep("alice/appl=im@a.test"))
        .await
        .unwrap();
    assert!(online(&update(&mut bob, &mut long).await.unwrap()));
    assert!(online(
        &update(&mut short_attachment, &mut short).await.unwrap()
    ));
    assert!(online(&update(&mut carol, &mut at_c).await.unwrap()));

    // SIGKILL: nothing of a.test's memory survives, only its spool.
    a_process.kill();
    drop(alice_client);
    // Down for longer than the short subscription's 6 s.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let _a_process = spawn(&a);
    wait_listening(a.edge).await;

    // The restarted relay knows no attachment: alice is offline, and the
    // subscriptions carry on to tell bob and carol.
    let entry = update(&mut bob, &mut long).await.unwrap();
    assert!(!online(&entry), "{entry:?}");
    let carol_entry = update(&mut carol, &mut at_c).await.unwrap();
    assert!(!online(&carol_entry), "{carol_entry:?}");
    // The short one ran out while a.test was down: it is ended now.
    assert_eq!(update(&mut short_attachment, &mut short).await, None);

    // alice comes back: both hear of it.
    let alice_client = connect(a.edge, "alice@a.test").await;
    let _alice_im = alice_client
        .attach(ep("alice/appl=im@a.test"))
        .await
        .unwrap();
    assert!(online(&update(&mut bob, &mut long).await.unwrap()));
}
