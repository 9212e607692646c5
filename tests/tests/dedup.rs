//! Duplicates (docs/decisions.md, "Duplicates"): a datagram acknowledged
//! with `ok` is delivered, never dropped because an earlier, different
//! datagram had the same text; only a real retransmission is recognised.
//!
//! The sending endpoint here writes its APEX payloads by hand (the form of
//! RFC 3340 §4.4.4's own example, inline `data-content`, as other APEX
//! implementations send it), on a BEEP channel it opens itself, so nothing
//! depends on how `imxp` builds its MIME. The receiving endpoint uses the
//! client library.

use bytes::Bytes;
use imxp_beep::Profile;
use imxp_beep::io::{Channel, Response};
use imxp_client::{Client, ConnectOptions, Mechanism};
use imxp_tests::relays::{
    Attached, RelaySpec, TestCa, TestRelay, loopback_listener, start_pair_via,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const APEX: &str = "http://iana.org/beep/APEX";
/// Upper bound for anything to happen (never a performance assertion).
const T: Duration = Duration::from_secs(60);

fn beep_xml(xml: &str) -> Bytes {
    Bytes::from(format!("Content-Type: application/beep+xml\r\n\r\n{xml}"))
}

/// A `data` with inline content, as RFC 3340 §4.4.4 shows it.
fn inline_data(from: &str, to: &str, text: &str) -> Bytes {
    beep_xml(&format!(
        "<data content='#c'><originator identity='{from}' />\
         <recipient identity='{to}' />\
         <data-content Name='c'>{text}</data-content></data>"
    ))
}

/// A `data` whose content is a MIME part with Content-ID `cid`.
fn part_data(from: &str, to: &str, cid: &str, text: &str) -> Bytes {
    Bytes::from(format!(
        "Content-Type: multipart/related; boundary=\"b\"; type=\"application/beep+xml\"; start=\"<root@x>\"\r\n\r\n\
         --b\r\nContent-Type: application/beep+xml\r\nContent-ID: <root@x>\r\n\r\n\
         <data content='cid:{cid}'><originator identity='{from}' /><recipient identity='{to}' /></data>\r\n\
         --b\r\nContent-Type: text/plain\r\nContent-ID: <{cid}>\r\n\r\n{text}\r\n--b--\r\n"
    ))
}

/// An endpoint that speaks APEX by hand: authenticated with the client
/// library's SASL, then a channel it opens and MSGs it writes itself.
struct RawEndpoint {
    _client: Client,
    channel: Channel,
}

impl RawEndpoint {
    async fn attach(relay: &TestRelay, ca: &TestCa, user: &str, password: &str) -> Self {
        let client = Client::connect(ConnectOptions {
            relay: relay.edge.to_string(),
            tls: relay
                .tls
                .then(|| (ca.client_config(&relay.dir), relay.domain.clone())),
            user: user.to_owned(),
            password: password.to_owned(),
            mechanism: Mechanism::ScramSha256,
        })
        .await
        .expect("authenticated");
        let attach = format!("<attach endpoint='{user}' transID='1' />");
        let channel = client
            .connection()
            .open_channel(vec![Profile::with_init(APEX, attach)], None)
            .await
            .expect("APEX channel");
        let init = String::from_utf8_lossy(channel.init().expect("init reply")).into_owned();
        assert!(init.contains("<ok"), "attach refused: {init}");
        Self {
            _client: client,
            channel,
        }
    }

    /// Sends `payload`; the relay's answer must be `<ok />`.
    async fn send_ok(&self, payload: Bytes) {
        let response = tokio::time::timeout(T, self.channel.handle().request(payload))
            .await
            .expect("answered in time")
            .expect("channel open");
        match response {
            Response::Reply(reply) => assert!(
                String::from_utf8_lossy(&reply).contains("<ok"),
                "not ok: {}",
                String::from_utf8_lossy(&reply)
            ),
            other => panic!("refused: {other:?}"),
        }
    }
}

/// The texts of the next `n` datagrams delivered to `inbox`.
async fn receive(inbox: &mut Attached, n: usize) -> Vec<String> {
    let mut texts = Vec::new();
    for _ in 0..n {
        let received = tokio::time::timeout(T, inbox.next())
            .await
            .expect("delivered in time")
            .expect("attachment open");
        texts.push(received.text().unwrap_or_default().to_owned());
    }
    texts
}

/// Waits until `relay`'s spool is empty (asked over its admin socket).
async fn drained(relay: &TestRelay) {
    tokio::time::timeout(T, async {
        while !relay.queued().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the spool empties in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_text_twice_through_one_relay_is_delivered_twice() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let relay = TestRelay::start(
        &RelaySpec::new("a.test", &["fred", "wilma"]),
        &ca,
        base.path(),
        None,
        None,
    )
    .await;
    let mut wilma = relay
        .attach(&ca, "wilma@a.test", "secret-wilma", "wilma@a.test")
        .await
        .expect("wilma attaches");
    wilma.set_auto_ack(true);
    let fred = RawEndpoint::attach(&relay, &ca, "fred@a.test", "secret-fred").await;

    same_texts_are_all_delivered(&fred, &mut wilma, "wilma@a.test").await;

    // The same Content-ID sent again (the endpoint resends after a lost
    // `ok`): one datagram. The marker after it arrives next, so the
    // resend was not delivered a second time.
    let resent = part_data("fred@a.test", "wilma@a.test", "3@fred", "resent");
    fred.send_ok(resent.clone()).await;
    fred.send_ok(resent).await;
    fred.send_ok(inline_data("fred@a.test", "wilma@a.test", "marker"))
        .await;
    assert_eq!(receive(&mut wilma, 2).await, vec!["resent", "marker"]);
    drained(&relay).await;
    relay.stop().await;
}

/// From `fred` to `to`: inline content, the same text ten times, then
/// `cid:` content with the same text and two distinct Content-IDs; each is
/// acknowledged and each is delivered.
async fn same_texts_are_all_delivered(fred: &RawEndpoint, inbox: &mut Attached, to: &str) {
    for _ in 0..10 {
        fred.send_ok(inline_data("fred@a.test", to, "ok")).await;
    }
    assert_eq!(receive(inbox, 10).await, vec!["ok"; 10]);
    fred.send_ok(part_data("fred@a.test", to, "1@fred", "same"))
        .await;
    fred.send_ok(part_data("fred@a.test", to, "2@fred", "same"))
        .await;
    assert_eq!(receive(inbox, 2).await, vec!["same"; 2]);
}

/// A (fred) and B (wilma), plaintext when `tls` is false, A reaching B at
/// `b_route` (B's mesh listener `b_mesh`, or a proxy in front of it).
async fn two_relays(
    base: &std::path::Path,
    ca: &TestCa,
    tls: bool,
    b_mesh: TcpListener,
    b_route: SocketAddr,
) -> (TestRelay, TestRelay) {
    let mut a = RelaySpec::new("a.test", &["fred"]);
    a.tls = tls;
    let mut b = RelaySpec::new("b.test", &["wilma"]);
    b.tls = tls;
    start_pair_via(base, ca, a, b, b_mesh, b_route).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_text_twice_through_two_relays_is_delivered_twice() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let b_mesh = loopback_listener().await;
    let b_route = b_mesh.local_addr().unwrap();
    let (a, b) = two_relays(base.path(), &ca, true, b_mesh, b_route).await;
    let mut wilma = b
        .attach(&ca, "wilma@b.test", "secret-wilma", "wilma@b.test")
        .await
        .expect("wilma attaches at B");
    wilma.set_auto_ack(true);
    let fred = RawEndpoint::attach(&a, &ca, "fred@a.test", "secret-fred").await;
    same_texts_are_all_delivered(&fred, &mut wilma, "wilma@b.test").await;
    drained(&a).await;
    drained(&b).await;
    a.stop().await;
    b.stop().await;
}

/// A TCP proxy in front of B's mesh port that, once, cuts both
/// connections instead of passing on B's `ok` to the first `data` A sends
/// through it: B has committed the datagram, A never learns it.
struct LosingProxy {
    address: SocketAddr,
    cut: Arc<AtomicBool>,
}

impl LosingProxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let done = cut.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                tokio::spawn(relay_connection(inbound, outbound, done.clone()));
            }
        });
        Self { address, cut }
    }

    fn has_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

/// Copies A→B as is; copies B→A until, after A sent a `<data`, B sends an
/// RPY on an APEX channel (not channel 0): then, the first time, drops
/// both sides without passing it on.
async fn relay_connection(inbound: TcpStream, outbound: TcpStream, cut: Arc<AtomicBool>) {
    let (mut from_a, mut to_a) = inbound.into_split();
    let (mut from_b, mut to_b) = outbound.into_split();
    let data_sent = Arc::new(AtomicBool::new(false));
    let seen = data_sent.clone();
    let upstream = tokio::spawn(async move {
        let mut buffer = vec![0u8; 65536];
        loop {
            let n = match from_a.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if contains(&buffer[..n], b"<data") {
                seen.store(true, Ordering::SeqCst);
            }
            if to_b.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut buffer = vec![0u8; 65536];
    loop {
        let n = match from_b.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buffer[..n];
        if data_sent.load(Ordering::SeqCst)
            && rpy_on_apex_channel(chunk)
            && !cut.swap(true, Ordering::SeqCst)
        {
            upstream.abort();
            return; // both halves dropped: A sees the session die
        }
        if to_a.write_all(chunk).await.is_err() {
            break;
        }
    }
    upstream.abort();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `chunk` holds the header of an RPY frame on a channel other
/// than 0 (RFC 3080 §2.2: `RPY channel msgno more seqno size`).
fn rpy_on_apex_channel(chunk: &[u8]) -> bool {
    let text = String::from_utf8_lossy(chunk);
    text.match_indices("RPY ").any(|(at, _)| {
        let at_line_start = at == 0 || text[..at].ends_with('\n');
        let channel = text[at + 4..].split(' ').next().unwrap_or("");
        at_line_start && !channel.is_empty() && channel != "0"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_whose_ok_is_lost_is_delivered_exactly_once() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    // B's mesh port, and the proxy A routes to; plaintext, so that the
    // proxy can see where B's answer is.
    let b_mesh = loopback_listener().await;
    let proxy = LosingProxy::start(b_mesh.local_addr().unwrap()).await;
    let (a, b) = two_relays(base.path(), &ca, false, b_mesh, proxy.address).await;
    let mut wilma = b
        .attach(&ca, "wilma@b.test", "secret-wilma", "wilma@b.test")
        .await
        .expect("wilma attaches at B");
    wilma.set_auto_ack(true);
    let fred = RawEndpoint::attach(&a, &ca, "fred@a.test", "secret-fred").await;

    fred.send_ok(inline_data("fred@a.test", "wilma@b.test", "once"))
        .await;
    // B committed it and delivers it; A lost B's `ok`, keeps it queued
    // and sends it again on a new session after its backoff.
    assert_eq!(receive(&mut wilma, 1).await, vec!["once"]);
    // B hands the datagram to wilma as soon as it is durable, which may
    // be before its `ok` to A has passed the proxy.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !proxy.has_cut() {
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy cut the link at B's ok"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drained(&a).await;
    // The retry was answered (A's spool is empty) and recognised at B:
    // the next datagram wilma gets is the marker, not "once" again.
    fred.send_ok(inline_data("fred@a.test", "wilma@b.test", "marker"))
        .await;
    assert_eq!(receive(&mut wilma, 1).await, vec!["marker"]);
    drained(&b).await;
    a.stop().await;
    b.stop().await;
}
