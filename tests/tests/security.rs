//! Hop-by-hop security (RFC 3340 §4.5, §11; docs/architecture.md, "Security") against real relays on loopback:
//! the SASL mechanisms of edge sessions with their refusal codes, EXTERNAL
//! from a client certificate, read-only ANONYMOUS, the failed-login delay,
//! reloading certificates and users without dropping sessions, and the
//! mesh rules (no data before bind, no unauthenticated bind, trusted
//! intermediaries).

use bytes::Bytes;
use imxp_apex::{Bind, Domain, Endpoint, MimePart, Response};
use imxp_beep::io::{Connection, DriverConfig, DriverError, TlsSetup};
use imxp_beep::tuning::sasl::AnonymousClient;
use imxp_beep::{Config, Profile, Role};
use imxp_client::{Client, ClientError, ConnectOptions, Mechanism, tls as client_tls};
use imxp_tests::relays::{RelaySpec, TestCa, TestRelay};
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

const APEX: &str = "http://iana.org/beep/APEX";

/// Turns a hang into a failure (not a timing assertion).
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), future)
        .await
        .expect("the test hung")
}

/// A client TLS configuration trusting `ca`, its CA file written beside
/// (not into) the relay's directory: rewriting the relay's own `ca.pem`
/// would race with a reload reading it.
fn client_config(relay: &TestRelay, ca: &TestCa) -> std::sync::Arc<rustls::ClientConfig> {
    ca.client_config(relay.dir.parent().expect("relay directories are in a base"))
}

fn options(relay: &TestRelay, ca: &TestCa, user: &str, password: &str) -> ConnectOptions {
    ConnectOptions {
        relay: relay.edge.to_string(),
        tls: Some((client_config(relay, ca), relay.domain.clone())),
        user: user.to_owned(),
        password: password.to_owned(),
        mechanism: Mechanism::ScramSha256,
    }
}

fn auth_code(result: Result<Client, ClientError>) -> u16 {
    match result {
        Err(ClientError::Authentication { code, .. }) => code,
        Err(other) => panic!("expected an authentication refusal, got {other}"),
        Ok(_) => panic!("expected an authentication refusal, got a session"),
    }
}

fn attach_code(result: Result<imxp_client::Attachment, ClientError>) -> u16 {
    match result {
        Err(ClientError::Refused { code, .. }) => code.0,
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got an attachment"),
    }
}

/// A raw BEEP session to `address`, TLS-tuned with `tls` (server name
/// `name`).
async fn raw_session(
    address: std::net::SocketAddr,
    tls: Option<(std::sync::Arc<rustls::ClientConfig>, &str)>,
) -> Connection {
    let stream = TcpStream::connect(address).await.unwrap();
    let mut driver = DriverConfig::new(Config::new(Role::Initiator));
    let tuned = tls.is_some();
    if let Some((config, name)) = tls {
        driver.tls = TlsSetup::Client {
            config,
            server_name: name.to_owned().try_into().unwrap(),
        };
    }
    let (connection, _incoming, _task) = Connection::spawn(stream, driver);
    connection.greeting(1).await.expect("greeting");
    if tuned {
        connection.start_tls().await.expect("TLS with the relay");
    }
    connection
}

/// A mesh session presenting a certificate for `names`.
async fn mesh_session(relay: &TestRelay, ca: &TestCa, names: &[&str], dir: &Path) -> Connection {
    let (cert, key) = ca.issue(names, dir);
    let roots = client_tls::roots_from_ca_file(&ca.write(dir)).unwrap();
    let certificate = client_tls::ClientCertificate::load(&cert, &key).unwrap();
    let config = client_tls::client_config(roots, Some(certificate)).unwrap();
    raw_session(relay.mesh, Some((config, &relay.domain))).await
}

fn bind_init(domain: &str) -> String {
    Bind::new(Domain::parse(domain).unwrap(), 1).to_xml()
}

fn init_code(init: Option<&[u8]>) -> Option<u16> {
    match Response::parse_init(init.expect("init reply")).unwrap() {
        Response::Ok => None,
        Response::Error(error) => Some(error.code.0),
    }
}

fn data_payload(from: &str, to: &str) -> Bytes {
    let domain = Domain::parse("a.test").unwrap();
    let part = MimePart::new("text/plain", b"hello", &domain).unwrap();
    let data = imxp_apex::Data::new(
        Endpoint::parse(from).unwrap(),
        [Endpoint::parse(to).unwrap()],
    );
    Bytes::from(data.to_payload(&imxp_apex::Content::Part(part)))
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

fn endpoint(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_sasl_mechanisms_and_refusals() {
    bounded(async {
        let base = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let relay = TestRelay::start(
            &RelaySpec::new("b.test", &["wilma", "betty"]),
            &ca,
            &base.path().join("b"),
            None,
            None,
        )
        .await;

        // SCRAM-SHA-256 (the default): the relay proved the verifier.
        let scram = Client::connect(options(&relay, &ca, "wilma@b.test", "secret-wilma"))
            .await
            .unwrap();
        assert_eq!(scram.identity(), "wilma@b.test");
        // Attach only as oneself and subaddresses (537 otherwise, 553 for a
        // domain the relay does not serve).
        let own = scram.attach(endpoint("wilma/phone@b.test")).await.unwrap();
        assert_eq!(
            attach_code(scram.attach(endpoint("betty@b.test")).await),
            537
        );
        assert_eq!(
            attach_code(scram.attach(endpoint("apex=access@b.test")).await),
            537
        );
        assert_eq!(
            attach_code(scram.attach(endpoint("wilma@c.test")).await),
            553
        );
        // Data only as an attached originator.
        let refused = own
            .send(vec![endpoint("betty@b.test")], "text/plain", b"hi")
            .await;
        assert!(refused.is_ok(), "{refused:?}");
        // One successful authentication per session (RFC 3080 §4.1).
        let again = scram
            .connection()
            .authenticate(Box::new(imxp_beep::tuning::sasl::PlainClient {
                authzid: String::new(),
                authcid: "betty@b.test".into(),
                password: "secret-betty".into(),
            }))
            .await;
        assert!(again.is_err(), "a second authentication was accepted");

        // Wrong password with SCRAM and with PLAIN: 535, answered late.
        let started = Instant::now();
        assert_eq!(
            auth_code(Client::connect(options(&relay, &ca, "wilma@b.test", "wrong")).await),
            535
        );
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "the failure was not delayed"
        );
        let mut plain = options(&relay, &ca, "wilma@b.test", "wrong");
        plain.mechanism = Mechanism::Plain;
        assert_eq!(auth_code(Client::connect(plain.clone()).await), 535);
        // An unknown user looks like a wrong password.
        assert_eq!(
            auth_code(Client::connect(options(&relay, &ca, "nobody@b.test", "x")).await),
            535
        );
        // PLAIN with the right password, over TLS.
        plain.password = "secret-wilma".into();
        let client = Client::connect(plain.clone()).await.unwrap();
        assert_eq!(client.identity(), "wilma@b.test");
        // PLAIN without TLS: 538.
        plain.tls = None;
        assert_eq!(auth_code(Client::connect(plain).await), 538);
        // EXTERNAL without a client certificate: not offered.
        let mut external = options(&relay, &ca, "", "");
        external.mechanism = Mechanism::External;
        assert!(matches!(
            Client::connect(external).await,
            Err(ClientError::NotOffered(_))
        ));
        // ANONYMOUS is not offered by default: the session answers 550
        // like for any profile it does not know (RFC 3080 §2.3.1.2).
        let raw = raw_session(
            relay.edge,
            Some((client_config(&relay, &ca), relay.domain.as_str())),
        )
        .await;
        match raw.authenticate(Box::new(AnonymousClient::default())).await {
            Err(DriverError::Refused(error)) => assert_eq!(error.code.0, 550, "{error:?}"),
            other => panic!("ANONYMOUS: {other:?}"),
        }
        // Nothing before authentication: 530.
        let error = raw
            .open_channel(vec![Profile::new(APEX)], None)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, DriverError::Refused(e) if e.code.0 == 530),
            "{error}"
        );
        drop(own);
        relay.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_from_a_client_certificate_and_read_only_anonymous() {
    bounded(async {
        let base = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let dir = base.path().join("b");
        std::fs::create_dir_all(&dir).unwrap();
        let mut spec = RelaySpec::new("b.test", &["wilma"]);
        spec.extra.push_str(&format!(
            "[auth]\nclient_ca = \"{}\"\nanonymous = \"read-only\"\n",
            ca.write(&dir).display()
        ));
        let relay = TestRelay::start(&spec, &ca, &dir, None, None).await;

        let (cert, key) = ca.issue_client("wilma@B.test", &dir);
        let roots = client_tls::roots_from_ca_file(&ca.write(&dir)).unwrap();
        let with_cert = client_tls::client_config(
            roots,
            Some(client_tls::ClientCertificate::load(&cert, &key).unwrap()),
        )
        .unwrap();
        let external = ConnectOptions {
            relay: relay.edge.to_string(),
            tls: Some((with_cert, relay.domain.clone())),
            user: String::new(),
            password: String::new(),
            mechanism: Mechanism::External,
        };
        let client = Client::connect(external.clone()).await.unwrap();
        let state = client.connection().state();
        assert_eq!(state.authenticated.as_deref(), Some(""));
        let wilma = client.attach(endpoint("wilma@b.test")).await.unwrap();
        wilma
            .send(
                vec![endpoint("wilma@b.test")],
                "text/plain",
                b"by certificate",
            )
            .await
            .unwrap();
        assert_eq!(
            attach_code(client.attach(endpoint("fred@b.test")).await),
            537
        );
        // An authzid other than the certificate's address: 535.
        let mut other = external.clone();
        other.user = "fred@b.test".into();
        assert_eq!(auth_code(Client::connect(other).await), 535);
        // The certificate's own address as authzid: fine.
        let mut same = external;
        same.user = "wilma@b.test".into();
        let client2 = Client::connect(same).await.unwrap();
        assert_eq!(client2.identity(), "wilma@b.test");

        // Read-only ANONYMOUS: logged in, but attach (so data) is refused.
        let raw = raw_session(
            relay.edge,
            Some((client_config(&relay, &ca), relay.domain.as_str())),
        )
        .await;
        let identity = raw
            .authenticate(Box::new(AnonymousClient {
                trace: "tester".into(),
            }))
            .await
            .unwrap();
        assert_eq!(identity, "anonymous");
        let attach = imxp_apex::Attach::new(endpoint("wilma@b.test"), 1).to_xml();
        let channel = raw
            .open_channel(vec![Profile::with_init(APEX, attach)], None)
            .await
            .unwrap();
        assert_eq!(init_code(channel.init()), Some(537));
        let response = channel
            .request(data_payload("wilma@b.test", "wilma@b.test"))
            .await
            .unwrap();
        assert_eq!(code(&response), Some(537));
        drop(wilma);
        relay.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_certificates_and_users_without_dropping_sessions() {
    bounded(async {
        let base = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let dir = base.path().join("b");
        let relay =
            TestRelay::start(&RelaySpec::new("b.test", &["wilma"]), &ca, &dir, None, None).await;
        let old = Client::connect(options(&relay, &ca, "wilma@b.test", "secret-wilma"))
            .await
            .unwrap();
        let old_cert = old.connection().state().peer_certificates[0].clone();
        let wilma = old.attach(endpoint("wilma@b.test")).await.unwrap();

        // A new certificate (same paths, new key) and a new user.
        ca.issue(&["b.test"], &dir);
        let config = imxp_relay::config::Config::load(&relay.config_path).unwrap();
        imxp_relay::auth::add_user(&config.users, "pebbles@b.test", "secret-pebbles").unwrap();
        relay.reload();

        // A new session sees the new certificate (the reload is
        // asynchronous: poll, bounded).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let client = Client::connect(options(&relay, &ca, "wilma@b.test", "secret-wilma"))
                .await
                .expect("login during the reload");
            if client.connection().state().peer_certificates[0] != old_cert {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the reload never took effect: still the old certificate"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let fresh = Client::connect(options(&relay, &ca, "pebbles@b.test", "secret-pebbles"))
            .await
            .expect("the reloaded users file has pebbles");
        assert_eq!(fresh.identity(), "pebbles@b.test");
        let new_cert = fresh.connection().state().peer_certificates[0].clone();
        // The old session still works.
        wilma
            .send(
                vec![endpoint("pebbles@b.test")],
                "text/plain",
                b"still here",
            )
            .await
            .unwrap();

        // A broken certificate file: the reload fails, the material stays.
        let cert_path = dir.join("b.test-cert.pem");
        std::fs::write(&cert_path, "not a certificate").unwrap();
        relay.reload();
        // Give the reload task a moment, then check nothing changed (a
        // second connection gets the last good certificate).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = Client::connect(options(&relay, &ca, "wilma@b.test", "secret-wilma"))
            .await
            .unwrap();
        assert_eq!(after.connection().state().peer_certificates[0], new_cert);
        drop(wilma);
        relay.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_data_before_bind_and_trusted_intermediaries() {
    bounded(async {
        let base = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let mut spec = RelaySpec::new("b.test", &["wilma"]);
        // c.test is routed nowhere reachable: forwarded datagrams stay queued.
        spec.routes.push(("c.test".into(), "127.0.0.1:9".into()));
        spec.extra
            .push_str("[mesh]\ntrusted_intermediaries = [\"hub.test\"]\n");
        let relay = TestRelay::start(&spec, &ca, &base.path().join("b"), None, None).await;

        // No data before a successful bind.
        let peer = mesh_session(&relay, &ca, &["a.test"], base.path()).await;
        let channel = peer
            .open_channel(vec![Profile::new(APEX)], None)
            .await
            .unwrap();
        let response = channel
            .request(data_payload("fred@a.test", "wilma@b.test"))
            .await
            .unwrap();
        assert_eq!(code(&response), Some(537));
        // A failed bind does not count.
        let bind = Bind::new(Domain::parse("hub.test").unwrap(), 2).to_payload();
        let response = channel.request(Bytes::from(bind)).await.unwrap();
        assert_eq!(code(&response), Some(537));
        let response = channel
            .request(data_payload("fred@a.test", "wilma@b.test"))
            .await
            .unwrap();
        assert_eq!(code(&response), Some(537));

        // A trusted intermediary may carry third-domain originators and
        // recipients (forwarded), but not originators of our domain.
        let hub = mesh_session(&relay, &ca, &["hub.test"], base.path()).await;
        let channel = hub
            .open_channel(vec![Profile::with_init(APEX, bind_init("hub.test"))], None)
            .await
            .unwrap();
        assert_eq!(init_code(channel.init()), None);
        let response = channel
            .request(data_payload("fred@a.test", "someone@c.test"))
            .await
            .unwrap();
        assert_eq!(code(&response), None);
        assert!(
            relay
                .queued()
                .iter()
                .any(|e| e.recipients.iter().any(|r| r.endpoint == "someone@c.test")),
            "the forwarded datagram is not queued"
        );
        let response = channel
            .request(data_payload("wilma@b.test", "someone@c.test"))
            .await
            .unwrap();
        assert_eq!(code(&response), Some(537));

        // Anyone else: no relaying to a third domain.
        let a = mesh_session(&relay, &ca, &["a.test"], base.path()).await;
        let channel = a
            .open_channel(vec![Profile::with_init(APEX, bind_init("a.test"))], None)
            .await
            .unwrap();
        assert_eq!(init_code(channel.init()), None);
        let response = channel
            .request(data_payload("fred@a.test", "someone@c.test"))
            .await
            .unwrap();
        assert_eq!(code(&response), Some(537));
        relay.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_mesh_bind_needs_the_insecure_switch() {
    bounded(async {
        let base = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let dir = base.path().join("b");
        let mut plain_spec = RelaySpec::new("b.test", &["wilma"]);
        plain_spec.extra = String::new();
        let config_path = imxp_tests::relays::write_config(&plain_spec, &ca, &dir);
        let text = std::fs::read_to_string(&config_path).unwrap();
        let text = text.replace("[tls]\n", "[tls]\nrequired = false\n");
        std::fs::write(&config_path, &text).unwrap();
        let config = imxp_relay::config::Config::load(&config_path).unwrap();
        assert!(!config.tls.required);

        // Without the switch: a bind without TLS is refused (537).
        let relay = start_with_config(config).await;
        let plain = raw_session(relay.1, None).await;
        let channel = plain
            .open_channel(vec![Profile::with_init(APEX, bind_init("a.test"))], None)
            .await
            .unwrap();
        assert_eq!(init_code(channel.init()), Some(537));
        let response = channel
            .request(data_payload("fred@a.test", "wilma@b.test"))
            .await
            .unwrap();
        assert_eq!(code(&response), Some(537));
        relay.0.send(()).unwrap();
        relay.2.await.unwrap().unwrap();

        // The switch is refused while TLS is required.
        let required = text.replace("required = false\n", "")
            + "[mesh]\ninsecure_unauthenticated_bind = true\n";
        let error = imxp_relay::config::Config::parse(&required, &config_path).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("mesh.insecure_unauthenticated_bind"),
            "{error}"
        );
        // With it (and TLS optional): the unauthenticated bind is accepted.
        let insecure = text + "[mesh]\ninsecure_unauthenticated_bind = true\n";
        let config = imxp_relay::config::Config::parse(&insecure, &config_path).unwrap();
        let relay = start_with_config(config).await;
        let plain = raw_session(relay.1, None).await;
        let channel = plain
            .open_channel(vec![Profile::with_init(APEX, bind_init("a.test"))], None)
            .await
            .unwrap();
        assert_eq!(init_code(channel.init()), None);
        relay.0.send(()).unwrap();
        relay.2.await.unwrap().unwrap();
    })
    .await;
}

/// Runs a relay from `config` on fresh loopback listeners; returns its
/// stop switch, mesh address and task.
async fn start_with_config(
    config: imxp_relay::config::Config,
) -> (
    tokio::sync::oneshot::Sender<()>,
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<(), imxp_relay::server::RelayError>>,
) {
    let edge = imxp_tests::relays::loopback_listener().await;
    let mesh = imxp_tests::relays::loopback_listener().await;
    let mesh_address = mesh.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(imxp_relay::server::run_with_reload(
        config,
        imxp_relay::server::Listeners {
            edge: vec![edge],
            mesh: vec![mesh],
        },
        async move {
            let _ = stopped.await;
        },
        std::sync::Arc::new(tokio::sync::Notify::new()),
    ));
    (stop, mesh_address, task)
}
