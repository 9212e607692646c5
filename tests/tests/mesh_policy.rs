//! Mesh sessions as another relay sees them (RFC 3340 §4.4.2, §4.4.4.1,
//! docs/architecture.md, "Security"): bind is authorized by the peer's certificate,
//! a bound peer may originate only for its domains and deliver only to
//! domains the relay serves.

use bytes::Bytes;
use imxp_apex::{Bind, Domain, Endpoint, MimePart, Response};
use imxp_beep::io::{Connection, DriverConfig, TlsSetup};
use imxp_beep::{Config, Profile, Role};
use imxp_tests::relays::{RelaySpec, TestCa, TestRelay};
use tokio::net::TcpStream;

const APEX: &str = "http://iana.org/beep/APEX";

/// A TLS session to `relay`'s mesh port presenting a certificate for
/// `names` (from the test CA).
async fn mesh_session(
    relay: &TestRelay,
    ca: &TestCa,
    names: &[&str],
    dir: &std::path::Path,
) -> Connection {
    let (cert, key) = ca.issue(names, dir);
    let roots = imxp_relay::tls::load_roots(Some(&ca.write(dir))).unwrap();
    let chain = imxp_relay::tls::load_chain(&cert).unwrap();
    let key = imxp_relay::tls::load_key(&key).unwrap();
    let tls = imxp_relay::tls::client_config(roots, Some((chain, key))).unwrap();
    let stream = TcpStream::connect(relay.mesh).await.unwrap();
    let mut driver = DriverConfig::new(Config::new(Role::Initiator));
    driver.tls = TlsSetup::Client {
        config: tls,
        server_name: relay.domain.clone().try_into().unwrap(),
    };
    let (connection, _incoming, _task) = Connection::spawn(stream, driver);
    connection.start_tls().await.expect("TLS with the relay");
    connection
}

fn bind_init(domain: &str) -> String {
    Bind::new(Domain::parse(domain).unwrap(), 1).to_xml()
}

fn init_reply(init: Option<&[u8]>) -> Response {
    Response::parse_init(init.expect("init reply")).unwrap()
}

fn data_payload(from: &str, to: &str) -> Bytes {
    let domain = Domain::parse("a.test").unwrap();
    let part = MimePart::new("text/plain", b"hello", &domain).unwrap();
    let content = imxp_apex::Content::Part(part);
    let data = imxp_apex::Data::new(
        Endpoint::parse(from).unwrap(),
        [Endpoint::parse(to).unwrap()],
    );
    Bytes::from(data.to_payload(&content))
}

fn code(response: &imxp_beep::io::Response) -> Option<u16> {
    match response {
        imxp_beep::io::Response::Reply(payload) | imxp_beep::io::Response::Error(payload) => {
            match Response::parse(payload).unwrap() {
                Response::Ok => None,
                Response::Error(error) => Some(error.code.0),
            }
        }
        imxp_beep::io::Response::Answers(_) => panic!("answers"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_needs_a_certificate_naming_the_domain() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let b = TestRelay::start(
        &RelaySpec::new("b.test", &["wilma"]),
        &ca,
        &base.path().join("b"),
        None,
        None,
    )
    .await;

    // A certificate for evil.test binding as a.test: 537.
    let evil = mesh_session(&b, &ca, &["evil.test"], base.path()).await;
    let channel = evil
        .open_channel(vec![Profile::with_init(APEX, bind_init("a.test"))], None)
        .await
        .unwrap();
    match init_reply(channel.init()) {
        Response::Error(error) => assert_eq!(error.code.0, 537, "{error:?}"),
        Response::Ok => panic!("bind for a domain the certificate does not name was accepted"),
    }

    // A certificate for a.test binding as a.test: ok; then the policy on data.
    let good = mesh_session(&b, &ca, &["a.test"], base.path()).await;
    let channel = good
        .open_channel(vec![Profile::with_init(APEX, bind_init("a.test"))], None)
        .await
        .unwrap();
    assert_eq!(init_reply(channel.init()), Response::Ok);
    // Originator outside the bound domain: 537.
    let response = channel
        .request(data_payload("fred@c.test", "wilma@b.test"))
        .await
        .unwrap();
    assert_eq!(code(&response), Some(537));
    // Recipient in a third domain (open relay attempt): 537.
    let response = channel
        .request(data_payload("fred@a.test", "someone@c.test"))
        .await
        .unwrap();
    assert_eq!(code(&response), Some(537));
    // A proper datagram: accepted.
    let response = channel
        .request(data_payload("fred@a.test", "wilma@b.test"))
        .await
        .unwrap();
    assert_eq!(code(&response), None);
    // attach on a mesh channel is refused.
    let attach = imxp_apex::Attach::new(Endpoint::parse("wilma@b.test").unwrap(), 9).to_payload();
    let response = channel.request(Bytes::from(attach)).await.unwrap();
    assert_eq!(code(&response), Some(537));
    b.stop().await;
}
