//! Messages per second through the XMPP gateway against a real Prosody:
//! a benchmark, not a test (ignored; it asserts only that everything
//! arrived). Run it in release mode:
//!
//! ```sh
//! cargo test --release -p imxp-tests --test xmpp_gateway_bench -- --ignored --nocapture
//! ```
//!
//! One relay (a.test, with the gateway domain xmpp.a.test) and one
//! Prosody on loopback; imxp → XMPP: 8 attachments of alice send N
//! messages to romeo (each accepted durably by the relay, then confirmed
//! by the ping round trip), timed until romeo's client has them all;
//! XMPP → imxp: romeo's client sends N messages to alice, timed until
//! alice has them all (each queued durably by the gateway).

use imxp_apex::Endpoint;
use imxp_tests::relays::{RelaySpec, TestCa, TestRelay};
use imxp_tests::xmpp::{Prosody, XmppClient};
use serde_json::json;
use std::time::{Duration, Instant};

const N: usize = 2000;
const SENDERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture, in release mode"]
async fn messages_per_second_through_the_gateway() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let prosody = Prosody::start(
        &base.path().join("prosody"),
        "montague.lit",
        "imxp.montague.lit",
        &[("romeo", "romeo-pw")],
    );
    let mut spec = RelaySpec::new("a.test", &["alice"]);
    spec.extra_domains = vec!["xmpp.a.test".into()];
    spec.certificate_names = vec!["a.test".into(), "xmpp.a.test".into()];
    spec.extra.push_str(&format!(
        "[[gateway]]\nkind = \"xmpp-component\"\ndomain = \"xmpp.a.test\"\n\
         server = \"{}\"\ncomponent = \"imxp.montague.lit\"\nsecret_file = \"{}\"\n\
         max_per_domain_per_minute = 1000000\n",
        prosody.component_address(),
        prosody.secret_file.display(),
    ));
    let a = TestRelay::start(&spec, &ca, &base.path().join("a"), None, None).await;
    let port = prosody.c2s_port;
    let romeo = tokio::task::spawn_blocking(move || {
        XmppClient::login("romeo@montague.lit", "romeo-pw", port)
    })
    .await
    .unwrap();

    // imxp → XMPP.
    let romeo_ep = Endpoint::parse("romeo%montague.lit@xmpp.a.test").unwrap();
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        senders.push(
            a.attach(
                &ca,
                "alice@a.test",
                "secret-alice",
                &format!("alice/appl=s{s}@a.test"),
            )
            .await
            .expect("alice attaches"),
        );
    }
    let started = Instant::now();
    let receiving = tokio::task::spawn_blocking(move || {
        let mut romeo = romeo;
        let mut got = 0;
        while got < N {
            match romeo.next_message(Duration::from_secs(60)) {
                Some(_) => got += 1,
                None => break,
            }
        }
        (got, started.elapsed(), romeo)
    });
    let mut tasks = Vec::new();
    for (s, sender) in senders.into_iter().enumerate() {
        let to = romeo_ep.clone();
        tasks.push(tokio::spawn(async move {
            for i in (s..N).step_by(SENDERS) {
                sender
                    .send(
                        vec![to.clone()],
                        "text/plain; charset=utf-8",
                        format!("m{i}").as_bytes(),
                    )
                    .await
                    .expect("accepted");
            }
            sender
        }));
    }
    for task in tasks {
        drop(task.await.unwrap());
    }
    let accepted = started.elapsed();
    let (got, elapsed, mut romeo) = receiving.await.unwrap();
    assert_eq!(got, N, "every message reached romeo");
    println!(
        "imxp -> XMPP: {N} messages accepted in {:.2} s, all at the XMPP client in {:.2} s: {:.0} messages/s",
        accepted.as_secs_f64(),
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64()
    );

    // XMPP → imxp.
    let mut alice = a
        .attach(&ca, "alice@a.test", "secret-alice", "alice@a.test")
        .await
        .expect("alice attaches");
    alice.set_auto_ack(true);
    let started = Instant::now();
    romeo.command(json!({
        "cmd": "flood", "to": "alice\\40a.test@imxp.montague.lit", "count": N,
    }));
    for _ in 0..N {
        tokio::time::timeout(Duration::from_secs(60), alice.next())
            .await
            .expect("every message reached alice")
            .expect("a datagram");
    }
    let elapsed = started.elapsed();
    println!(
        "XMPP -> imxp: {N} messages at the imxp endpoint in {:.2} s: {:.0} messages/s",
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64()
    );
    drop(romeo);
    drop(alice);
    a.stop().await;
}
