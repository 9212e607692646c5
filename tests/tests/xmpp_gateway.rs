//! The XMPP gateway against a real Prosody and a real XMPP client
//! (slixmpp): relay A serves `a.test` and the gateway domain
//! `xmpp.a.test`, connected to Prosody as the component
//! `imxp.montague.lit`; relay B serves `b.test`. Messages go both ways
//! between `bob@b.test` and the XMPP user `romeo@montague.lit`, across
//! both relays and the gateway, each exactly once; a Prosody restart
//! loses nothing.

use imxp_apex::access::{Actions, Actor};
use imxp_apex::status::StatusResponse;
use imxp_apex::{ApexOption, Endpoint};
use imxp_client::payload::text_data;
use imxp_client::{access, presence};
use imxp_e2e::keyring::Keys;
use imxp_e2e::protect::{self, Protection};
use imxp_e2e::{ImUri, Scheme, Verdict, mime, smime};
use imxp_tests::relays::{RelaySpec, TestCa, TestRelay, imxp_binary, loopback_listener};
use imxp_tests::xmpp::{Prosody, XmppClient};
use serde_json::json;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

fn ep(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

/// Prosody, and relays A (with the gateway) and B routing to each other.
async fn setup(base: &std::path::Path, ca: &TestCa) -> (Prosody, TestRelay, TestRelay) {
    setup_with(base, ca, "").await
}

/// [`setup`] with more keys for the `[[gateway]]` table.
async fn setup_with(
    base: &std::path::Path,
    ca: &TestCa,
    gateway_extra: &str,
) -> (Prosody, TestRelay, TestRelay) {
    let prosody = Prosody::start(
        &base.join("prosody"),
        "montague.lit",
        "imxp.montague.lit",
        &[("romeo", "romeo-pw"), ("juliet", "juliet-pw")],
    );
    let a_mesh = loopback_listener().await;
    let b_mesh = loopback_listener().await;
    let a_address = a_mesh.local_addr().unwrap().to_string();
    let b_address = b_mesh.local_addr().unwrap().to_string();
    let mut a = RelaySpec::new("a.test", &["alice"]);
    a.extra_domains = vec!["xmpp.a.test".into()];
    a.certificate_names = vec!["a.test".into(), "xmpp.a.test".into()];
    a.routes.push(("b.test".into(), b_address));
    a.extra.push_str(&format!(
        "[[gateway]]\nkind = \"xmpp-component\"\ndomain = \"xmpp.a.test\"\n\
         server = \"{server}\"\ncomponent = \"imxp.montague.lit\"\n\
         secret_file = \"{secret}\"\nmax_backoff = \"500ms\"\n{gateway_extra}",
        server = prosody.component_address(),
        secret = prosody.secret_file.display(),
    ));
    let mut b = RelaySpec::new("b.test", &["bob"]);
    b.routes.push(("a.test".into(), a_address.clone()));
    b.routes.push(("xmpp.a.test".into(), a_address));
    let relay_a = TestRelay::start(&a, ca, &base.join("a"), None, Some(a_mesh)).await;
    let relay_b = TestRelay::start(&b, ca, &base.join("b"), None, Some(b_mesh)).await;
    (prosody, relay_a, relay_b)
}

/// A Message/CPIM with a subject, our thread header and a text part.
fn cpim(text: &str, subject: &str, thread: &str) -> Vec<u8> {
    format!(
        "From: <im:bob@b.test>\r\nTo: <im:romeo@montague.lit>\r\n\
         DateTime: 2026-01-01T00:00:00Z\r\nSubject: {subject}\r\n\
         NS: xmpp <urn:x-imxp:xmpp:0>\r\nxmpp.Thread: {thread}\r\n\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{text}"
    )
    .into_bytes()
}

/// Blocking client calls off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_both_ways_exactly_once_and_survive_a_prosody_restart() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (mut prosody, a, b) = setup(base.path(), &ca).await;
    let mut bob = b
        .attach(&ca, "bob@b.test", "secret-bob", "bob@b.test")
        .await
        .expect("bob attaches at B");
    bob.set_auto_ack(true);
    let port = prosody.c2s_port;
    let mut romeo =
        blocking(move || XmppClient::login("romeo@montague.lit", "romeo-pw", port)).await;

    // imxp → XMPP: subject and thread survive, from is bob escaped.
    let romeo_apex = ep("romeo%montague.lit@xmpp.a.test");
    bob.send(
        vec![romeo_apex.clone()],
        "message/cpim",
        &cpim("Wherefore art thou?", "A question", "thread-1"),
    )
    .await
    .expect("B accepts");
    let (message, mut romeo) = blocking(move || {
        let message = romeo.next_message(TIMEOUT);
        (message, romeo)
    })
    .await;
    let message =
        message.unwrap_or_else(|| panic!("romeo got nothing; prosody log:\n{}", prosody.log()));
    assert_eq!(message["from"], "bob\\40b.test@imxp.montague.lit");
    assert_eq!(message["body"], "Wherefore art thou?");
    assert_eq!(message["subject"], "A question");
    assert_eq!(message["thread"], "thread-1");
    assert_eq!(message["type"], "chat");

    // XMPP → imxp: romeo answers; bob gets one datagram from
    // romeo%montague.lit@xmpp.a.test with the text, subject, thread and type.
    romeo.command(json!({
        "cmd": "message", "to": "bob\\40b.test@imxp.montague.lit", "type": "chat",
        "body": "By a name I know not how to tell thee who I am", "subject": "Re: A question",
        "thread": "thread-1",
    }));
    let received = match tokio::time::timeout(TIMEOUT, bob.next()).await {
        Ok(received) => received.expect("a datagram"),
        Err(_) => {
            let events = romeo.next("sent", Duration::from_secs(1));
            panic!(
                "the reply did not reach bob; romeo's sent event: {events:?}; prosody log:\n{}",
                prosody.log()
            )
        }
    };
    assert_eq!(received.originator, romeo_apex);
    assert_eq!(received.recipient, ep("bob@b.test"));
    assert!(
        received.content_type.starts_with("message/cpim"),
        "{}",
        received.content_type
    );
    let text = String::from_utf8(received.content.to_vec()).unwrap();
    assert!(
        text.starts_with("From: <im:romeo@montague.lit>\r\nTo: <im:bob@b.test>\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nSubject: Re: A question\r\n"), "{text}");
    assert!(text.contains("\r\nxmpp.Thread: thread-1\r\n"), "{text}");
    assert!(text.contains("\r\nxmpp.Type: chat\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\nBy a name I know not how to tell thee who I am"),
        "{text}"
    );
    // Exactly once, both ways.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), bob.next())
            .await
            .is_err(),
        "bob got a duplicate"
    );
    let (extra, romeo) = blocking(move || {
        let extra = romeo.next_message(Duration::from_secs(1));
        (extra, romeo)
    })
    .await;
    assert!(extra.is_none(), "romeo got a duplicate: {extra:?}");

    // Prosody goes away: what bob sends now waits in A's spool, and is
    // delivered once the gateway reconnects. Romeo logs in again later;
    // Prosody keeps the messages for him (mod_offline).
    drop(romeo);
    prosody.kill();
    for i in 0..5 {
        bob.send(
            vec![romeo_apex.clone()],
            "text/plain; charset=utf-8",
            format!("queued {i}").as_bytes(),
        )
        .await
        .expect("B accepts while Prosody is down");
    }
    // They reach A and wait there (deferred), not lost.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while a.queued().len() < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A never queued the five"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let prosody = blocking(move || {
        prosody.restart();
        prosody
    })
    .await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !a.queued().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A kept {:?}",
            a.queued()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let port = prosody.c2s_port;
    let bodies = blocking(move || {
        let mut romeo = XmppClient::login("romeo@montague.lit", "romeo-pw", port);
        let mut bodies = Vec::new();
        while let Some(message) = romeo.next_message(Duration::from_secs(5)) {
            bodies.push(message["body"].as_str().unwrap_or_default().to_owned());
        }
        bodies
    })
    .await;
    let mut sorted = bodies.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..5).map(|i| format!("queued {i}")).collect::<Vec<_>>(),
        "each once: {bodies:?}"
    );
    drop(bob);
    a.stop().await;
    b.stop().await;
}

/// The next report bob receives.
async fn next_report(bob: &mut imxp_tests::relays::Attached) -> StatusResponse {
    let received = tokio::time::timeout(TIMEOUT, bob.next())
        .await
        .expect("a report in time")
        .expect("a datagram");
    let inline = received
        .data
        .data_content
        .as_ref()
        .expect("a report's content is inline");
    StatusResponse::from_data_content(inline).expect("a statusResponse")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smime_crosses_unchanged_and_errors_and_limits_are_mapped() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (prosody, a, b) = setup_with(
        base.path(),
        &ca,
        "max_stanza_size = 4096\nmax_per_domain_per_minute = 5\n",
    )
    .await;
    let mut bob = b
        .attach(&ca, "bob@b.test", "secret-bob", "bob@b.test")
        .await
        .expect("bob attaches at B");
    bob.set_auto_ack(true);
    let port = prosody.c2s_port;
    let mut romeo =
        blocking(move || XmppClient::login("romeo@montague.lit", "romeo-pw", port)).await;
    romeo.command(json!({"cmd": "echo", "on": true}));
    let romeo_apex = ep("romeo%montague.lit@xmpp.a.test");

    // An unknown XMPP user: Prosody answers service-unavailable, which
    // fails the recipient with 550 and the report bob asked for.
    let (mut data, content) = text_data(
        &ep("bob@b.test"),
        &[ep("nobody%montague.lit@xmpp.a.test")],
        "anyone there?",
    );
    data.options.push(ApexOption::status_request(61));
    bob.send_data(&data, &content).await.expect("B accepts");
    let status = next_report(&mut bob).await;
    assert_eq!(status.trans_id, 61);
    assert_eq!(
        status.destinations[0].identity,
        ep("nobody%montague.lit@xmpp.a.test")
    );
    assert_eq!(status.destinations[0].reply.code.0, 550);
    assert!(
        status.destinations[0]
            .reply
            .text
            .contains("service-unavailable"),
        "{:?}",
        status.destinations[0].reply.text
    );

    // An address that leads back into the gateway's own component is a
    // loop: refused at once (550), reported.
    let (mut data, content) = text_data(
        &ep("bob@b.test"),
        &[ep("bob\\40b.test%imxp.montague.lit@xmpp.a.test")],
        "round and round",
    );
    data.options.push(ApexOption::status_request(62));
    bob.send_data(&data, &content).await.expect("B accepts");
    let status = next_report(&mut bob).await;
    assert_eq!(status.trans_id, 62);
    assert_eq!(status.destinations[0].reply.code.0, 550);
    assert!(
        status.destinations[0].reply.text.contains("a loop"),
        "{:?}",
        status.destinations[0].reply.text
    );

    // S/MIME-signed Message/CPIM: into XMPP in <e2e/>, echoed back by the
    // client, and back at bob octet for octet; the signature verifies.
    let (ca_cert, ca_key) = smime::generate_ca("xmpp test CA").unwrap();
    let bob_uri = ImUri::parse("im:bob@b.test").unwrap();
    let romeo_uri = ImUri::parse("im:romeo@montague.lit").unwrap();
    let (bob_cert, bob_key) = smime::generate_cert(&bob_uri, Some((&ca_cert, &ca_key))).unwrap();
    let mut keys = Keys::default();
    keys.smime.keys.push((bob_cert.clone(), bob_key));
    keys.smime.certs.push(bob_cert);
    keys.smime.anchors.push(ca_cert);
    let message = protect::compose(
        &bob_uri,
        std::slice::from_ref(&romeo_uri),
        Some("signed across XMPP"),
        &mime::text_entity("a rose by any other name"),
    )
    .unwrap();
    let protected = protect::protect(
        &message.to_entity(),
        &Protection::new(Scheme::Smime, true, false),
        &bob_uri,
        &[romeo_uri],
        &keys,
    )
    .unwrap();
    bob.send(
        vec![romeo_apex.clone()],
        &protected.content_type,
        &protected.body,
    )
    .await
    .expect("B accepts the signed message");
    let echoed = match tokio::time::timeout(TIMEOUT, bob.next()).await {
        Ok(echoed) => echoed.expect("a datagram"),
        Err(_) => panic!(
            "the echo did not reach bob; prosody log:\n{}",
            prosody.log()
        ),
    };
    assert_eq!(echoed.originator, romeo_apex);
    assert_eq!(echoed.content_type, protected.content_type);
    assert!(
        echoed.content[..] == protected.body[..],
        "the protected content came back changed"
    );
    let part = echoed.part.as_ref().expect("a MIME content part");
    let opened = protect::open(part.raw(), &keys);
    assert_eq!(opened.verdict(), Verdict::Verified, "{opened:?}");
    let (sent, mut romeo) = blocking(move || {
        let sent = romeo.next_message(TIMEOUT);
        (sent, romeo)
    })
    .await;
    let sent = sent.expect("romeo saw the signed message");
    assert!(
        sent["e2e"]
            .as_str()
            .is_some_and(|e2e| e2e.starts_with("Content-Type: multipart/signed")),
        "{sent}"
    );
    assert_eq!(sent["body"], "", "protected content has no <body/>");

    // From XMPP: a stanza over the limit gets policy-violation, a JID that
    // names no endpoint item-not-found, and a flood resource-constraint.
    romeo.command(json!({"cmd": "echo", "on": false}));
    romeo.command(json!({
        "cmd": "message", "to": "bob\\40b.test@imxp.montague.lit",
        "body": "x".repeat(8192),
    }));
    romeo.command(json!({"cmd": "message", "to": "nobody@imxp.montague.lit", "body": "hi"}));
    let errors = blocking(move || {
        let mut errors = Vec::new();
        for _ in 0..10 {
            romeo.command(json!({
                "cmd": "message", "to": "bob\\40b.test@imxp.montague.lit", "body": "flood",
            }));
        }
        let deadline = std::time::Instant::now() + TIMEOUT;
        while std::time::Instant::now() < deadline {
            match romeo.next("message", Duration::from_secs(2)) {
                Some(message) if message["type"] == "error" => {
                    errors.push(message["error"].as_str().unwrap_or_default().to_owned());
                }
                Some(_) => {}
                None if errors.iter().any(|e| e == "resource-constraint") => break,
                None => {}
            }
        }
        errors
    })
    .await;
    assert!(
        errors.contains(&"policy-violation".to_owned()),
        "{errors:?}"
    );
    assert!(errors.contains(&"item-not-found".to_owned()), "{errors:?}");
    assert!(
        errors.contains(&"resource-constraint".to_owned()),
        "{errors:?}"
    );
    // What was admitted reached bob; the oversized message did not.
    while let Ok(Some(received)) = tokio::time::timeout(Duration::from_secs(2), bob.next()).await {
        assert!(
            received.content.len() < 4096,
            "the oversized message crossed"
        );
    }
    drop(bob);
    a.stop().await;
    b.stop().await;
}

/// The next presence event from `jid` (bare, any resource).
fn presence_from(client: &mut XmppClient, jid: &str) -> Option<serde_json::Value> {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        let event = client.next("presence", left)?;
        let from = event["from"].as_str().unwrap_or_default();
        if from == jid || from.starts_with(&format!("{jid}/")) {
            return Some(event);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xmpp_user_subscribes_to_an_imxp_user_and_sees_her_come_online() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (prosody, a, b) = setup(base.path(), &ca).await;
    // alice lets the XMPP user see her presence (RFC 3341 presence:subscribe).
    let alice_ep = ep("alice@a.test");
    let tool = access::private_endpoint(&alice_ep).unwrap();
    let mut owner = a
        .attach(&ca, "alice@a.test", "secret-alice", &tool.to_string())
        .await
        .expect("alice's tool attaches");
    tokio::time::timeout(
        TIMEOUT,
        access::grant(
            &mut owner,
            &alice_ep,
            &Actor::parse("romeo%montague.lit@xmpp.a.test").unwrap(),
            &Actions::parse("presence:subscribe").unwrap(),
        ),
    )
    .await
    .expect("in time")
    .expect("granted");
    drop(owner);

    let port = prosody.c2s_port;
    let alice_jid = "alice\\40a.test@imxp.montague.lit";
    let (offline, roster, mut romeo) = blocking(move || {
        let mut romeo = XmppClient::login("romeo@montague.lit", "romeo-pw", port);
        romeo.command(json!({"cmd": "presence", "to": alice_jid, "type": "subscribe"}));
        // The server may pass the `subscribed` on as a presence or only as
        // a roster push: skip it, and read the roster below.
        let mut offline = presence_from(&mut romeo, alice_jid);
        if offline.as_ref().is_some_and(|p| p["type"] == "subscribed") {
            offline = presence_from(&mut romeo, alice_jid);
        }
        romeo.command(json!({"cmd": "roster"}));
        let roster = romeo.next("roster", TIMEOUT);
        (offline, roster, romeo)
    })
    .await;
    let offline = offline.expect("alice's current presence");
    assert_eq!(offline["type"], "unavailable", "{offline}");
    assert_eq!(offline["from"], format!("{alice_jid}/imxp"));
    let roster = roster.expect("romeo's roster");
    assert_eq!(
        roster["items"][alice_jid], "to",
        "the gateway said subscribed: {roster}"
    );

    // alice attaches: romeo sees her available.
    let alice = a
        .attach(&ca, "alice@a.test", "secret-alice", "alice@a.test")
        .await
        .expect("alice attaches");
    let (online, mut romeo) = blocking(move || {
        let online = presence_from(&mut romeo, alice_jid);
        (online, romeo)
    })
    .await;
    let online = online.expect("alice's presence when she attaches");
    assert_eq!(online["type"], "available", "{online}");
    assert_eq!(online["from"], format!("{alice_jid}/imxp"));

    // She detaches: unavailable again.
    drop(alice);
    let (gone, romeo) = blocking(move || {
        let gone = presence_from(&mut romeo, alice_jid);
        (gone, romeo)
    })
    .await;
    let gone = gone.expect("alice's presence when she leaves");
    assert_eq!(gone["type"], "unavailable", "{gone}");
    drop(romeo);
    a.stop().await;
    b.stop().await;
}

/// `imxp` as bob at B, with `args`.
fn imxp(b: &TestRelay, files: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(imxp_binary());
    command
        .arg("--relay")
        .arg(b.edge.to_string())
        .arg("--ca")
        .arg(files.join("ca.pem"))
        .arg("--server-name")
        .arg("b.test")
        .arg("--user")
        .arg("bob@b.test")
        .arg("--password-file")
        .arg(files.join("bob.password"));
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imxp_listen_verifies_an_smime_message_echoed_through_xmpp() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (prosody, a, b) = setup(base.path(), &ca).await;
    let files = base.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    ca.write(&files);
    std::fs::write(files.join("bob.password"), "secret-bob\n").unwrap();
    let keyring = files.join("keyring");
    let keys = |args: &[&str]| {
        let output = std::process::Command::new(imxp_binary())
            .arg("keys")
            .arg("--keyring")
            .arg(&keyring)
            .args(args)
            .output()
            .expect("imxp keys runs");
        assert!(output.status.success(), "imxp keys {args:?}: {output:?}");
    };
    let (ca_pem, ca_key) = (files.join("smime-ca.pem"), files.join("smime-ca.key"));
    keys(&[
        "test-ca",
        "--cert",
        ca_pem.to_str().unwrap(),
        "--key",
        ca_key.to_str().unwrap(),
    ]);
    keys(&[
        "generate",
        "--smime",
        "bob@b.test",
        "--ca",
        ca_pem.to_str().unwrap(),
        "--ca-key",
        ca_key.to_str().unwrap(),
    ]);
    let port = prosody.c2s_port;
    let mut romeo =
        blocking(move || XmppClient::login("romeo@montague.lit", "romeo-pw", port)).await;

    let mut listen = imxp(&b, &files);
    listen
        .args([
            "listen",
            "--as",
            "bob@b.test",
            "--json",
            "--count",
            "1",
            "--keyring",
        ])
        .arg(&keyring)
        .stdout(std::process::Stdio::piped());
    let listener = listen.spawn().expect("imxp listen runs");
    // Let the listener attach before the echo comes back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = imxp(&b, &files)
        .args([
            "send",
            "--from",
            "bob/appl=cli@b.test",
            "--to",
            "romeo%montague.lit@xmpp.a.test",
            "--sign",
            "--smime",
            "--subject",
            "signed, through XMPP and back",
            "--keyring",
        ])
        .arg(&keyring)
        .arg("a rose by any other name")
        .output()
        .expect("imxp send runs");
    assert!(sent.status.success(), "{sent:?}");
    // romeo's client sends the <e2e/> object back, unchanged, to bob
    // (the sender was bob's command-line subaddress; his listener is bob).
    let (received, mut romeo) = blocking(move || {
        let received = romeo.next_message(TIMEOUT);
        (received, romeo)
    })
    .await;
    let received = received.expect("romeo got the signed message");
    assert_eq!(
        received["from"],
        "bob\\2fappl=cli\\40b.test@imxp.montague.lit"
    );
    romeo.command(json!({
        "cmd": "message", "to": "bob\\40b.test@imxp.montague.lit", "type": "chat",
        "e2e": received["e2e"].as_str().expect("an <e2e/> object"),
    }));
    let output = tokio::time::timeout(
        TIMEOUT,
        tokio::task::spawn_blocking(move || listener.wait_with_output()),
    )
    .await
    .expect("imxp listen got the echo in time")
    .unwrap()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let line: serde_json::Value =
        serde_json::from_slice(output.stdout.split(|&b| b == b'\n').next().unwrap())
            .expect("one JSON line");
    assert_eq!(line["verdict"], "verified", "{line}");
    assert_eq!(line["verified"], true, "{line}");
    drop(romeo);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imxp_user_sees_an_xmpp_users_availability() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (prosody, a, b) = setup(base.path(), &ca).await;
    let port = prosody.c2s_port;
    let romeo = blocking(move || XmppClient::login("romeo@montague.lit", "romeo-pw", port)).await;
    let mut alice = a
        .attach(&ca, "alice@a.test", "secret-alice", "alice@a.test")
        .await
        .expect("alice attaches");
    let romeo_ep = ep("romeo%montague.lit@xmpp.a.test");
    let now = || presence::now_ms();

    // alice subscribes: the gateway asks romeo, and shows him closed
    // until he approves.
    let (mut subscription, entry) =
        tokio::time::timeout(TIMEOUT, presence::subscribe(&mut alice, &romeo_ep, 3600))
            .await
            .expect("in time")
            .expect("the gateway's presence service answers");
    assert_eq!(entry.publisher, romeo_ep);
    assert!(!entry.is_open(now()), "{entry:?}");
    let alice_jid = "alice\\40a.test@imxp.montague.lit";
    let (request, mut romeo) = blocking(move || {
        let mut romeo = romeo;
        let request = presence_from(&mut romeo, alice_jid);
        (request, romeo)
    })
    .await;
    let request = request.expect("romeo is asked");
    assert_eq!(request["type"], "subscribe", "{request}");

    // romeo approves: his server sends his presence, alice sees him open
    // (after any closed update sent before).
    romeo.command(json!({"cmd": "presence", "to": alice_jid, "type": "subscribed"}));
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let entry = loop {
        let entry = tokio::time::timeout_at(
            deadline,
            presence::next_update(&mut alice, &mut subscription),
        )
        .await
        .expect("romeo shows up in time")
        .expect("an update")
        .unwrap_or_else(|| panic!("the subscription ended; prosody log:\n{}", prosody.log()));
        if entry.is_open(now()) {
            break entry;
        }
    };
    assert_eq!(entry.tuples[0].destination, "xmpp:romeo@montague.lit");

    // romeo goes unavailable: alice sees him closed.
    romeo.command(json!({"cmd": "presence", "type": "unavailable"}));
    let entry = tokio::time::timeout(
        TIMEOUT,
        presence::next_update(&mut alice, &mut subscription),
    )
    .await
    .expect("in time")
    .expect("an update")
    .expect("the subscription goes on");
    assert!(!entry.is_open(now()), "romeo is away: {entry:?}");
    drop(romeo);
    drop(alice);
    a.stop().await;
    b.stop().await;
}
