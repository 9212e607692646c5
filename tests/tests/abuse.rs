//! The abuse suite (issue 6): hostile peers against one relay (a.test),
//! real TCP on loopback, real TLS, a real spool. Every case asserts the
//! exact reply code, or that the hostile session was ended; that a
//! legitimate pair of attached endpoints on the same relay (fred and
//! wilma) keeps working throughout; and that every datagram the relay
//! accepted before the attack is delivered after it.
//!
//! Malformed input is written by hand as BEEP bytes on a raw socket
//! (before TLS: framing is checked the same way on both sides of the
//! tuning); the rest uses the BEEP driver as a misbehaving client.

use bytes::Bytes;
use imxp_apex::{Bind, Domain, Endpoint, MimePart};
use imxp_beep::io::{Connection, DriverConfig, DriverError, Response, TlsSetup};
use imxp_beep::tuning::sasl::PlainClient;
use imxp_beep::{Config, Profile, Role};
use imxp_tests::relays::{Attached, RelaySpec, TestCa, TestRelay};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const APEX: &str = "http://iana.org/beep/APEX";
const TLS: &str = "http://iana.org/beep/TLS";
/// Upper bound for anything to happen (never a performance assertion).
const T: Duration = Duration::from_secs(30);

fn ep(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

// ===== the relay under attack and its legitimate users =====

/// Limits of the relay under test; a test overrides some of them.
fn limits(overrides: &[(&str, &str)]) -> String {
    let mut limits: BTreeMap<&str, &str> = [
        ("max_message_size", "65536"),
        ("window", "65536"),
        ("max_channels", "16"),
        ("max_attachments_per_session", "4"),
        ("greeting_timeout", "\"2s\""),
        ("handshake_timeout", "\"2s\""),
    ]
    .into_iter()
    .collect();
    limits.extend(overrides.iter().copied());
    let mut text = String::from("[limits]\n");
    for (key, value) in limits {
        text.push_str(&format!("{key} = {value}\n"));
    }
    text
}

/// Relay a.test with its CA and state directory.
struct Site {
    base: tempfile::TempDir,
    ca: TestCa,
    relay: TestRelay,
}

impl Site {
    async fn start(overrides: &[(&str, &str)]) -> Self {
        let base = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let mut spec = RelaySpec::new("a.test", &["fred", "wilma", "barney"]);
        spec.extra.push_str(&limits(overrides));
        let relay = TestRelay::start(&spec, &ca, &base.path().join("a"), None, None).await;
        Self { base, ca, relay }
    }

    fn dir(&self) -> &std::path::Path {
        self.base.path()
    }
}

/// Relay a.test with fred and wilma attached, and datagrams fred→wilma
/// accepted before the attack.
struct Harness {
    site: Site,
    fred: Attached,
    wilma: Attached,
    /// Texts accepted by the relay for wilma and not yet seen by her.
    expected: Vec<String>,
    sent: usize,
}

impl Harness {
    async fn start(overrides: &[(&str, &str)]) -> Self {
        let site = Site::start(overrides).await;
        let (ca, relay) = (&site.ca, &site.relay);
        let fred = relay
            .attach(ca, "fred@a.test", "secret-fred", "fred@a.test")
            .await
            .expect("fred attaches");
        let mut wilma = relay
            .attach(ca, "wilma@a.test", "secret-wilma", "wilma@a.test")
            .await
            .expect("wilma attaches");
        wilma.set_auto_ack(true);
        let mut harness = Self {
            site,
            fred,
            wilma,
            expected: Vec::new(),
            sent: 0,
        };
        for _ in 0..3 {
            harness.send().await;
        }
        harness
    }

    /// fred → wilma, accepted (durable) by the relay.
    async fn send(&mut self) {
        self.sent += 1;
        let text = format!("datagram {}", self.sent);
        tokio::time::timeout(
            T,
            self.fred
                .send(vec![ep("wilma@a.test")], "text/plain", text.as_bytes()),
        )
        .await
        .expect("in time")
        .expect("the relay accepts fred's datagram");
        self.expected.push(text);
    }

    /// Records a datagram for wilma accepted on another session.
    fn expect(&mut self, text: &str) {
        self.expected.push(text.to_owned());
    }

    /// The legitimate session still works (one more datagram), and every
    /// datagram accepted so far reaches wilma; then the relay stops.
    async fn check(mut self) {
        self.send().await;
        let mut missing = std::mem::take(&mut self.expected);
        while !missing.is_empty() {
            let received = tokio::time::timeout(T, self.wilma.next())
                .await
                .unwrap_or_else(|_| panic!("not delivered: {missing:?}"))
                .expect("wilma's session is up");
            let text = String::from_utf8_lossy(&received.content).into_owned();
            let position = missing
                .iter()
                .position(|m| *m == text)
                .unwrap_or_else(|| panic!("unexpected or duplicate datagram {text:?}"));
            missing.remove(position);
        }
        let Self { site, .. } = self;
        site.relay.stop().await;
    }
}

impl std::ops::Deref for Harness {
    type Target = Site;

    fn deref(&self) -> &Site {
        &self.site
    }
}

// ===== BEEP by hand =====

/// One frame, byte-exact (RFC 3080 §2.2.1).
fn frame(keyword: &str, channel: u32, msgno: u32, seqno: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{keyword} {channel} {msgno} . {seqno} {}\r\n",
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out.extend_from_slice(b"END\r\n");
    out
}

fn beep_xml(xml: &str) -> Vec<u8> {
    format!("Content-Type: application/beep+xml\r\n\r\n{xml}").into_bytes()
}

/// Reads until `needle` has been seen (or the stream ends); returns all.
async fn read_until(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if seen.windows(needle.len()).any(|w| w == needle) {
            return seen;
        }
        match tokio::time::timeout(T, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return seen,
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
            Err(_) => panic!(
                "nothing more within {T:?}; so far {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
}

/// A raw connection that has exchanged greetings with the relay; returns
/// it with the next seqno of our channel 0.
async fn greeted(address: SocketAddr) -> (TcpStream, u32) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let greeting = read_until(&mut stream, b"END\r\n").await;
    assert!(greeting.starts_with(b"RPY 0 0 . 0 "), "{greeting:?}");
    let ours = beep_xml("<greeting />");
    stream
        .write_all(&frame("RPY", 0, 0, 0, &ours))
        .await
        .unwrap();
    (stream, ours.len() as u32)
}

/// The relay ends the session (RFC 3080 §2.2.1.1: terminated without a
/// response): the connection closes within the bound.
async fn assert_terminated(mut stream: TcpStream) {
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(T, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) => panic!("the relay kept the hostile session open"),
        }
    }
}

// ===== BEEP through the driver =====

/// An edge session with TLS and nothing else.
async fn tls_session(harness: &Site, config: DriverConfig) -> Connection {
    let mut driver = config;
    driver.tls = TlsSetup::Client {
        config: harness.ca.client_config(harness.dir()),
        server_name: "a.test".try_into().unwrap(),
    };
    let stream = TcpStream::connect(harness.relay.edge).await.unwrap();
    let (connection, _incoming, _task) = Connection::spawn(stream, driver);
    tokio::time::timeout(T, connection.start_tls())
        .await
        .expect("in time")
        .expect("TLS with the relay");
    connection
}

/// An edge session with TLS, authenticated as `user`.
async fn user_session(harness: &Site, user: &str, config: DriverConfig) -> Connection {
    let connection = tls_session(harness, config).await;
    let name = user.split('@').next().unwrap();
    connection
        .authenticate(Box::new(PlainClient {
            authzid: String::new(),
            authcid: user.to_owned(),
            password: format!("secret-{name}"),
        }))
        .await
        .expect("authenticated");
    connection
}

fn initiator() -> DriverConfig {
    DriverConfig::new(Config::new(Role::Initiator))
}

/// The code of an `<error>` in a reply payload, `None` for `<ok />`.
fn reply_code(payload: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(payload);
    let start = text.find("code=")? + "code='".len();
    text.get(start..start + 3)?.parse().ok()
}

fn response_code(response: &Response) -> Option<u16> {
    match response {
        Response::Reply(payload) | Response::Error(payload) => reply_code(payload),
        Response::Answers(_) => panic!("answers to a data"),
    }
}

fn refused_code(error: &DriverError) -> u16 {
    match error {
        DriverError::Refused(error) => error.code.0,
        other => panic!("expected an error reply, got {other}"),
    }
}

fn data_payload(from: &str, to: &str, text: &str) -> Bytes {
    let domain = Domain::parse("a.test").unwrap();
    let part = MimePart::new("text/plain", text.as_bytes(), &domain).unwrap();
    let data = imxp_apex::Data::new(ep(from), [ep(to)]);
    Bytes::from(data.to_payload(&imxp_apex::Content::Part(part)))
}

/// A TLS session to the mesh port presenting a certificate for `names`.
async fn mesh_session(harness: &Site, names: &[&str]) -> Connection {
    let dir = harness.dir();
    let (cert, key) = harness.ca.issue(names, dir);
    let roots = imxp_relay::tls::load_roots(Some(&harness.ca.write(dir))).unwrap();
    let chain = imxp_relay::tls::load_chain(&cert).unwrap();
    let key = imxp_relay::tls::load_key(&key).unwrap();
    let tls = imxp_relay::tls::client_config(roots, Some((chain, key))).unwrap();
    let stream = TcpStream::connect(harness.relay.mesh).await.unwrap();
    let mut driver = initiator();
    driver.tls = TlsSetup::Client {
        config: tls,
        server_name: "a.test".try_into().unwrap(),
    };
    let (connection, _incoming, _task) = Connection::spawn(stream, driver);
    connection.start_tls().await.expect("TLS with the relay");
    connection
}

fn bind_init(domain: &str) -> String {
    Bind::new(Domain::parse(domain).unwrap(), 1).to_xml()
}

// ===== authorization =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_originator_from_an_endpoint_gets_537() {
    let harness = Harness::start(&[]).await;
    let error = harness
        .fred
        .send_as(
            &ep("barney@a.test"),
            vec![ep("wilma@a.test")],
            "text/plain",
            b"spoof",
        )
        .await
        .expect_err("fred is not attached as barney");
    assert_eq!(error.refused_code().map(|c| c.0), Some(537), "{error}");
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_originator_and_open_relay_from_a_peer_relay_get_537() {
    let mut harness = Harness::start(&[]).await;
    let peer = mesh_session(&harness, &["b.test"]).await;
    let channel = peer
        .open_channel(vec![Profile::with_init(APEX, bind_init("b.test"))], None)
        .await
        .unwrap();
    assert_eq!(reply_code(channel.init().expect("init reply")), None);
    // Originator outside the bound domain (RFC 3340 §4.4.4.1 step 1).
    let response = channel
        .request(data_payload("fred@c.test", "wilma@a.test", "spoofed"))
        .await
        .unwrap();
    assert_eq!(response_code(&response), Some(537));
    // Open relay: a recipient in a domain a.test does not serve.
    let response = channel
        .request(data_payload("barney@b.test", "someone@c.test", "relay me"))
        .await
        .unwrap();
    assert_eq!(response_code(&response), Some(537));
    // The peer's own originators are still fine.
    let response = channel
        .request(data_payload("barney@b.test", "wilma@a.test", "from b"))
        .await
        .unwrap();
    assert_eq!(response_code(&response), None);
    harness.expect("from b");
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_with_another_domains_certificate_gets_537() {
    let harness = Harness::start(&[]).await;
    let evil = mesh_session(&harness, &["evil.test"]).await;
    let channel = evil
        .open_channel(vec![Profile::with_init(APEX, bind_init("b.test"))], None)
        .await
        .unwrap();
    assert_eq!(reply_code(channel.init().expect("init reply")), Some(537));
    // Unbound, its data is refused too.
    let response = channel
        .request(data_payload("x@b.test", "wilma@a.test", "unbound"))
        .await
        .unwrap();
    assert_eq!(response_code(&response), Some(537));
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_attach_gets_530() {
    let harness = Harness::start(&[]).await;
    let connection = tls_session(&harness, initiator()).await;
    let attach = imxp_apex::Attach::new(ep("fred@a.test"), 1).to_xml();
    let error = connection
        .open_channel(vec![Profile::with_init(APEX, attach)], None)
        .await
        .expect_err("no channel without authentication");
    assert_eq!(refused_code(&error), 530, "{error}");
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_without_tls_gets_538() {
    let harness = Harness::start(&[]).await;
    let stream = TcpStream::connect(harness.relay.edge).await.unwrap();
    let (connection, _incoming, _task) = Connection::spawn(stream, initiator());
    let error = connection
        .authenticate(Box::new(PlainClient {
            authzid: String::new(),
            authcid: "fred@a.test".into(),
            password: "secret-fred".into(),
        }))
        .await
        .expect_err("PLAIN needs TLS");
    assert_eq!(refused_code(&error), 538, "{error}");
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_repeated_gets_535_each_time() {
    let harness = Harness::start(&[]).await;
    for attempt in 0..4 {
        let result = imxp_client::Client::connect(imxp_client::ConnectOptions {
            relay: harness.relay.edge.to_string(),
            tls: Some((harness.ca.client_config(harness.dir()), "a.test".into())),
            user: "fred@a.test".into(),
            password: format!("guess-{attempt}"),
            mechanism: imxp_client::Mechanism::default(),
        })
        .await;
        match result {
            Err(imxp_client::ClientError::Authentication { code, .. }) => {
                assert_eq!(code, 535, "attempt {attempt}")
            }
            Err(other) => panic!("attempt {attempt}: {other}"),
            Ok(_) => panic!("attempt {attempt}: a wrong password was accepted"),
        }
    }
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_beyond_the_session_limit_get_554() {
    let harness = Harness::start(&[]).await;
    // fred@a.test is one of four; three subaddresses more fit.
    for n in 1..4 {
        harness
            .fred
            .attach(ep(&format!("fred/appl=x{n}@a.test")))
            .await
            .expect("within the limit");
    }
    let error = harness
        .fred
        .attach(ep("fred/appl=x4@a.test"))
        .await
        .expect_err("a fifth attachment on the session");
    assert_eq!(error.refused_code().map(|c| c.0), Some(554), "{error}");
    harness.check().await;
}

// ===== malformed input: the session is terminated =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_end_the_session() {
    let harness = Harness::start(&[]).await;
    let (mut stream, _) = greeted(harness.relay.edge).await;
    stream
        .write_all(b"\x16\x03\x01\x02\x00GET / HTTP/1.1\r\n\r\n\xff\xfe")
        .await
        .unwrap();
    assert_terminated(stream).await;
    // Garbage in place of a greeting, too.
    let mut stream = TcpStream::connect(harness.relay.edge).await.unwrap();
    stream.write_all(b"EHLO spammer.example\r\n").await.unwrap();
    assert_terminated(stream).await;
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_header_line_ends_the_session() {
    let harness = Harness::start(&[]).await;
    let (mut stream, seqno) = greeted(harness.relay.edge).await;
    let mut line = format!("MSG 0 1 . {seqno} ").into_bytes();
    line.extend(std::iter::repeat_n(b'9', 100_000));
    // The relay may close while this is being written.
    let _ = stream.write_all(&line).await;
    assert_terminated(stream).await;
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_limit_ends_the_session() {
    let harness = Harness::start(&[]).await;
    let (mut stream, seqno) = greeted(harness.relay.edge).await;
    // limits.window = 65536: no frame may be larger.
    let header = format!("MSG 0 1 . {seqno} 100000\r\n");
    stream.write_all(header.as_bytes()).await.unwrap();
    let _ = stream.write_all(&[b'x'; 4096]).await;
    assert_terminated(stream).await;
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_seqno_ends_the_session() {
    let harness = Harness::start(&[]).await;
    let (mut stream, seqno) = greeted(harness.relay.edge).await;
    let start = beep_xml("<start number='1'><profile uri='http://iana.org/beep/TLS' /></start>");
    stream
        .write_all(&frame("MSG", 0, 1, seqno + 7, &start))
        .await
        .unwrap();
    assert_terminated(stream).await;
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_overrun_ends_the_session() {
    let harness = Harness::start(&[]).await;
    let (mut stream, seqno) = greeted(harness.relay.edge).await;
    // Channel 0 starts with a 4096-octet window (RFC 3081 §3.1), and once
    // the relay has read our greeting it may advertise its whole buffer
    // (limits.window = 65536) with a SEQ — either way, more than the
    // buffer plus the initial window can never fit.
    let payload = vec![b' '; 65536 + 4096 + 1];
    let _ = stream.write_all(&frame("MSG", 0, 1, seqno, &payload)).await;
    assert_terminated(stream).await;
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_gets_554_and_the_session_goes_on() {
    let mut harness = Harness::start(&[]).await;
    let connection = user_session(&harness, "barney@a.test", initiator()).await;
    let attach = imxp_apex::Attach::new(ep("barney@a.test"), 1).to_xml();
    let channel = connection
        .open_channel(vec![Profile::with_init(APEX, attach)], None)
        .await
        .unwrap();
    assert_eq!(reply_code(channel.init().expect("init reply")), None);
    // limits.max_message_size = 65536: a pre-emptive 554 (RFC 3080 §2.6.3).
    let huge = data_payload("barney@a.test", "wilma@a.test", &"x".repeat(70_000));
    match channel.request(huge).await.unwrap() {
        Response::Error(payload) => assert_eq!(reply_code(&payload), Some(554)),
        other => panic!("expected ERR 554, got {other:?}"),
    }
    // The same session and channel keep working.
    let response = channel
        .request(data_payload("barney@a.test", "wilma@a.test", "small"))
        .await
        .unwrap();
    assert_eq!(response_code(&response), None);
    harness.expect("small");
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_datagrams_beyond_the_outstanding_limit_wait_and_none_is_lost() {
    const DATAGRAMS: usize = 300;
    let mut harness = Harness::start(&[("max_outstanding_per_channel", "8")]).await;
    let connection = user_session(&harness, "barney@a.test", initiator()).await;
    let attach = imxp_apex::Attach::new(ep("barney@a.test"), 1).to_xml();
    let channel = connection
        .open_channel(vec![Profile::with_init(APEX, attach)], None)
        .await
        .unwrap();
    assert_eq!(reply_code(channel.init().expect("init reply")), None);
    // All sent before any reply is awaited: beyond 8 unanswered the relay
    // stops opening the window, so the rest wait in our send queue.
    let mut pending = Vec::new();
    for i in 0..DATAGRAMS {
        let text = format!("pipelined {i}");
        pending.push(
            channel
                .send(data_payload("barney@a.test", "wilma@a.test", &text))
                .await
                .unwrap(),
        );
        harness.expect(&text);
    }
    for reply in pending {
        let response = tokio::time::timeout(T, reply.response())
            .await
            .expect("answered in time")
            .unwrap();
        assert_eq!(response_code(&response), None, "every one accepted");
    }
    harness.check().await;
}

// ===== slowloris =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_finishes_its_greeting_is_cut_off() {
    let harness = Harness::start(&[]).await;
    let mut stream = TcpStream::connect(harness.relay.edge).await.unwrap();
    read_until(&mut stream, b"END\r\n").await;
    // One octet of a greeting every 250 ms: limits.greeting_timeout (2 s)
    // is counted from the start, not from the last octet.
    let mut cut_off = false;
    for octet in b"RPY 0 0 . 0 40\r\nContent-Type: application/beep+xml\r\n" {
        if stream.write_all(&[*octet]).await.is_err() {
            cut_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if !cut_off {
        assert_terminated(stream).await;
    }
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_does_the_tls_handshake_is_cut_off() {
    let harness = Harness::start(&[]).await;
    let (mut stream, seqno) = greeted(harness.relay.edge).await;
    let start = beep_xml(&format!(
        "<start number='1'><profile uri='{TLS}'><![CDATA[<ready />]]></profile></start>"
    ));
    stream
        .write_all(&frame("MSG", 0, 1, seqno, &start))
        .await
        .unwrap();
    let reply = read_until(&mut stream, b"proceed").await;
    assert!(
        String::from_utf8_lossy(&reply).contains("proceed"),
        "{reply:?}"
    );
    // No ClientHello: limits.handshake_timeout (2 s) ends it.
    assert_terminated(stream).await;
    harness.check().await;
}

// ===== floods =====

/// Raises the soft limit on open files to `wanted` if the hard limit
/// allows; returns the soft limit in force.
fn raise_fd_limit(wanted: u64) -> u64 {
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    if soft >= wanted {
        return soft;
    }
    let target = wanted.min(hard);
    match rlimit::Resource::NOFILE.set(target, hard) {
        Ok(()) => target,
        Err(_) => soft,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Greeted,
    /// 421, too many sessions in all.
    RefusedTotal,
    /// 421, too many from this address.
    RefusedAddress,
    Closed,
}

/// Connects from `source` and reads the relay's first frame.
async fn first_words(source: IpAddr, relay: SocketAddr) -> (Outcome, Option<TcpStream>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let mut stream = match tokio::time::timeout(T, socket.connect(relay)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => panic!("connect from {source}: {error}"),
        Err(_) => panic!("connect from {source} hung"),
    };
    let words = read_until(&mut stream, b"END\r\n").await;
    let text = String::from_utf8_lossy(&words);
    if text.starts_with("RPY 0 0 ") {
        (Outcome::Greeted, Some(stream))
    } else if text.starts_with("ERR 0 0 ") && text.contains("code='421'") {
        if text.contains("your address") {
            (Outcome::RefusedAddress, None)
        } else {
            (Outcome::RefusedTotal, None)
        }
    } else if words.is_empty() {
        (Outcome::Closed, None)
    } else {
        panic!("unexpected first words {text:?}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_at_once_are_refused_beyond_the_limits() {
    const CONNECTIONS: usize = 1000;
    const PER_ADDRESS: usize = 120;
    const TOTAL: usize = 300;
    // Client and relay ends of every connection live in this process.
    let limit = raise_fd_limit(4096);
    assert!(
        limit >= 2 * CONNECTIONS as u64 + 256,
        "the open-file limit ({limit}) is too low for this test"
    );
    let harness = Harness::start(&[
        ("max_sessions", "300"),
        ("max_sessions_per_address", "120"),
        // No slot may free up during the flood.
        ("greeting_timeout", "\"60s\""),
    ])
    .await;
    // 600 connections from one address (over its 120), 200 from each of
    // two more: together over the 298 places left.
    let sources: [IpAddr; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"].map(|s| s.parse().unwrap());
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..CONNECTIONS {
        let source = sources[(i % 5).saturating_sub(2)];
        let relay = harness.relay.edge;
        flood.spawn(async move {
            let (outcome, stream) = first_words(source, relay).await;
            (source, outcome, stream)
        });
    }
    let mut held = Vec::new();
    let mut counts: BTreeMap<(IpAddr, &str), usize> = BTreeMap::new();
    while let Some(result) = flood.join_next().await {
        let (source, outcome, stream) = result.expect("connection task");
        let name = match outcome {
            Outcome::Greeted => "greeted",
            Outcome::RefusedTotal => "refused: total",
            Outcome::RefusedAddress => "refused: address",
            Outcome::Closed => "closed",
        };
        *counts.entry((source, name)).or_default() += 1;
        held.extend(stream);
    }
    let count = |source: Option<IpAddr>, name: &str| -> usize {
        counts
            .iter()
            .filter(|((s, n), _)| *n == name && source.is_none_or(|x| x == *s))
            .map(|(_, c)| c)
            .sum()
    };
    eprintln!("flood outcomes: {counts:?}");
    // fred and wilma hold two sessions from 127.0.0.1: 298 places left,
    // all taken; everyone else was told why (421), none left hanging.
    assert_eq!(count(None, "greeted"), TOTAL - 2, "{counts:?}");
    for source in sources {
        assert!(count(Some(source), "greeted") <= PER_ADDRESS, "{counts:?}");
    }
    assert!(count(None, "refused: total") >= 1, "{counts:?}");
    assert!(count(None, "refused: address") >= 1, "{counts:?}");
    assert_eq!(
        count(None, "refused: total") + count(None, "refused: address"),
        CONNECTIONS - (TOTAL - 2),
        "every other connection was refused with 421: {counts:?}"
    );
    // The legitimate sessions work during the flood…
    let mut harness = harness;
    harness.send().await;
    // …and the places come back once the flood is gone.
    drop(held);
    let relay = harness.relay.edge;
    let again = tokio::time::timeout(T, async move {
        loop {
            if let (Outcome::Greeted, _) = first_words(sources[0], relay).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(again.is_ok(), "sessions were not released after the flood");
    harness.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_channels_on_one_session_get_550_beyond_the_limit() {
    const STARTS: usize = 10_000;
    let mut harness = Harness::start(&[]).await;
    let mut config = Config::new(Role::Initiator);
    config.max_channels = STARTS + 16;
    let connection = user_session(&harness, "barney@a.test", DriverConfig::new(config)).await;
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..STARTS {
        let connection = connection.clone();
        starts.spawn(async move {
            connection
                .open_channel(vec![Profile::new(APEX)], None)
                .await
        });
    }
    let mut opened = Vec::new();
    let mut refused = 0;
    while let Some(result) = tokio::time::timeout(T, starts.join_next())
        .await
        .expect("every start answered in time")
    {
        match result.expect("start task") {
            Ok(channel) => opened.push(channel),
            Err(error) => {
                assert_eq!(refused_code(&error), 550, "{error}");
                refused += 1;
            }
        }
    }
    // limits.max_channels = 16, channel 0 included.
    assert!(
        !opened.is_empty() && opened.len() <= 15,
        "{} opened",
        opened.len()
    );
    assert_eq!(opened.len() + refused, STARTS);
    // The hostile session itself still works on a channel it got.
    let channel = &opened[0];
    let attach = imxp_apex::Attach::new(ep("barney@a.test"), 1).to_payload();
    let response = channel.request(Bytes::from(attach)).await.unwrap();
    assert_eq!(response_code(&response), None);
    let response = channel
        .request(data_payload("barney@a.test", "wilma@a.test", "after 10k"))
        .await
        .unwrap();
    assert_eq!(response_code(&response), None);
    harness.expect("after 10k");
    harness.check().await;
}

// ===== idle sessions =====

/// An authenticated session that sends a SEQ every 200 ms, with `user`
/// attached on an APEX channel.
async fn kept_alive(site: &Site, user: &str) -> (Connection, imxp_beep::io::Channel) {
    let mut driver = initiator();
    driver.keepalive = Some(Duration::from_millis(200));
    let connection = user_session(site, user, driver).await;
    let attach = imxp_apex::Attach::new(ep(user), 1).to_xml();
    let channel = connection
        .open_channel(vec![Profile::with_init(APEX, attach)], None)
        .await
        .expect("APEX channel");
    assert_eq!(reply_code(channel.init().expect("init reply")), None);
    (connection, channel)
}

/// The next datagram delivered on `channel`, answered `<ok />`.
async fn receive(channel: &mut imxp_beep::io::Channel) -> String {
    let message = tokio::time::timeout(T, channel.next_message())
        .await
        .expect("delivered in time")
        .expect("channel open");
    channel
        .reply(message.msgno, Bytes::from(beep_xml("<ok />")))
        .await
        .unwrap();
    String::from_utf8_lossy(&message.payload).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_released_and_a_keepalive_holds_it_open() {
    // The legitimate sessions here send a SEQ every 200 ms.
    let site = Site::start(&[("idle_timeout", "\"2s\"")]).await;
    let (wilma, mut inbox) = kept_alive(&site, "wilma@a.test").await;
    let (fred, outbox) = kept_alive(&site, "fred@a.test").await;
    let response = outbox
        .request(data_payload("fred@a.test", "wilma@a.test", "before"))
        .await
        .unwrap();
    assert_eq!(response_code(&response), None);
    // Silent: released by the relay with a BEEP close, a clean end. Two
    // in turn, the second opened once the first is released: each release
    // is the idle timer firing, so two idle periods have passed since fred
    // last sent data, with only SEQs from fred and wilma meanwhile.
    for _ in 0..2 {
        let silent = tls_session(&site, initiator()).await;
        let ended = tokio::time::timeout(T, silent.ended())
            .await
            .expect("the relay releases an idle session");
        assert_eq!(ended, None, "a clean release, not a termination");
    }
    // The kept-alive sessions are open and work.
    assert_eq!(fred.state().ended, None, "fred kept alive");
    assert_eq!(wilma.state().ended, None, "wilma kept alive");
    let response = outbox
        .request(data_payload("fred@a.test", "wilma@a.test", "after"))
        .await
        .unwrap();
    assert_eq!(response_code(&response), None);
    let got = [receive(&mut inbox).await, receive(&mut inbox).await];
    for text in ["before", "after"] {
        assert!(got.iter().any(|g| g.contains(text)), "{text}: {got:?}");
    }
    site.relay.stop().await;
}
