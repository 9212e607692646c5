//! Presence survives a SIGKILL of the presentity's relay (RFC 3343 §4:
//! entries and operations in progress are kept in persistent storage).
//! alice@a.test is followed by bob@b.test; a.test (a real `imxpd`) is
//! killed while alice is attached and started again on the same spool:
//! bob's subscription goes on (he is told alice went offline, then that
//! she is back), and a subscription that runs out while a.test is down is
//! ended with `terminate` once it is up again.

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
    let (a_mesh, b_mesh) = (free_port(), free_port());
    let a = write_relay(
        &base.path().join("a"),
        "a.test",
        a_mesh,
        &[("b.test", b_mesh)],
        &["alice"],
    );
    let b = write_relay(
        &base.path().join("b"),
        "b.test",
        b_mesh,
        &[("a.test", a_mesh)],
        &["bob"],
    );
    let _b_process = spawn(&b);
    let mut a_process = spawn(&a);
    wait_listening(b.edge).await;
    wait_listening(a.edge).await;

    // alice lets bob (and his subaddresses' owner) see her.
    let alice = ep("alice@a.test");
    {
        let client = connect(a.edge, "alice@a.test").await;
        let mut tool = client
            .attach(access::private_endpoint(&alice).unwrap())
            .await
            .unwrap();
        for actor in ["bob@b.test", "bob/short@b.test"] {
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

    // SIGKILL: nothing of a.test's memory survives, only its spool.
    a_process.kill();
    drop(alice_client);
    // Down for longer than the short subscription's 6 s.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let _a_process = spawn(&a);
    wait_listening(a.edge).await;

    // The restarted relay knows no attachment: alice is offline, and bob's
    // subscription carries on to tell him.
    let entry = update(&mut bob, &mut long).await.unwrap();
    assert!(!online(&entry), "{entry:?}");
    // The short one ran out while a.test was down: it is ended now.
    assert_eq!(update(&mut short_attachment, &mut short).await, None);

    // alice comes back: bob hears of it.
    let alice_client = connect(a.edge, "alice@a.test").await;
    let _alice_im = alice_client
        .attach(ep("alice/appl=im@a.test"))
        .await
        .unwrap();
    assert!(online(&update(&mut bob, &mut long).await.unwrap()));
}
