//! The tokio driver over real TCP on loopback: plain and TLS-tuned echo
//! with pipelining and large messages, SASL after TLS, certificate
//! mismatch, and backpressure.

#[path = "../examples/echo/run.rs"]
mod run;

use bytes::Bytes;
use imxp_beep::io::{Connection, DriverConfig, DriverError, ReleaseError, Response, TlsSetup};
use imxp_beep::tuning::sasl::{
    AuthContext, PlainClient, PlainServer, SaslServer, SaslServerFactory,
};
use imxp_beep::{Config, ErrorReply, Profile, ReplyCode, Role};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

const ECHO: &str = "http://example.com/beep/ECHO";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed certificate for `name`: server config and client config
/// trusting it.
fn tls_pair(name: &str) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let generated = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let cert = generated.cert.der().clone();
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(generated.signing_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

async fn echo_listener(tls: Option<Arc<rustls::ServerConfig>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(run::listen(
        listener,
        run::ListenOptions {
            profiles: vec![ECHO.into()],
            tls,
            window: 256 * 1024,
        },
    ));
    address
}

fn client_options(address: String) -> run::ClientOptions {
    run::ClientOptions {
        address,
        profile: ECHO.into(),
        count: 20,
        size: 100 * 1024,
        pipeline: 8,
        channels: 2,
        tls: None,
        window: 256 * 1024,
    }
}

#[tokio::test]
async fn plain_echo_with_pipelining_and_100k_messages() {
    let address = echo_listener(None).await;
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        run::client(client_options(address)),
    )
    .await
    .expect("bounded")
    .unwrap();
    assert_eq!((result.passed, result.failed), (40, 0));
    assert!(result.exchange_error.is_none(), "{result:?}");
    assert!(result.release.is_ok(), "{result:?}");
}

#[tokio::test]
async fn tls_tuned_echo_with_pipelining_and_100k_messages() {
    let (server, client) = tls_pair("localhost");
    let address = echo_listener(Some(server)).await;
    let mut options = client_options(address);
    options.tls = Some((client, "localhost".into()));
    let result = tokio::time::timeout(Duration::from_secs(60), run::client(options))
        .await
        .expect("bounded")
        .unwrap();
    assert_eq!((result.passed, result.failed), (40, 0));
    assert!(result.exchange_error.is_none(), "{result:?}");
    assert!(result.release.is_ok(), "{result:?}");
}

#[tokio::test]
async fn tls_with_a_certificate_for_another_name_fails() {
    let (server, client) = tls_pair("other.example");
    let address = echo_listener(Some(server)).await;
    let mut options = client_options(address);
    options.tls = Some((client, "localhost".into()));
    let error = tokio::time::timeout(Duration::from_secs(30), run::client(options))
        .await
        .expect("bounded")
        .unwrap_err();
    assert!(matches!(error, DriverError::Tls(_)), "{error}");
}

struct PlainOnlyWithTls;

impl SaslServerFactory for PlainOnlyWithTls {
    fn mechanisms(&self, _: &AuthContext) -> Vec<String> {
        vec!["PLAIN".into()]
    }
    fn start(&self, _: &str, context: &AuthContext) -> Result<Box<dyn SaslServer>, ErrorReply> {
        if !context.tls_active {
            return Err(ErrorReply::new(
                ReplyCode::ENCRYPTION_REQUIRED,
                "PLAIN requires TLS",
            ));
        }
        Ok(Box::new(PlainServer::new(Arc::new(
            |_, user: &str, pass: &str| {
                (user == "fred" && pass == "secret").then(|| format!("{user}@example.com"))
            },
        ))))
    }
}

#[tokio::test]
async fn tls_then_sasl_plain_then_application_channel() {
    let (server_tls, client_tls) = tls_pair("relay.example");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut config = Config::new(Role::Listener);
        config.profiles.push(ECHO.into());
        config.profiles_require_tls = true;
        config.sasl = Some(Arc::new(PlainOnlyWithTls));
        let mut driver = DriverConfig::new(config);
        driver.tls = TlsSetup::Server(server_tls);
        let (connection, mut incoming, task) = Connection::spawn(stream, driver);
        let start = incoming.next().await.expect("a start");
        let state = connection.state();
        assert!(state.tls_active);
        assert_eq!(state.authenticated.as_deref(), Some("fred@example.com"));
        let mut channel = start.accept(Profile::new(ECHO)).await.unwrap();
        let message = channel.next_message().await.unwrap();
        channel.reply(message.msgno, message.payload).await.unwrap();
        task.await.unwrap()
    });
    let stream = TcpStream::connect(address).await.unwrap();
    let mut driver = DriverConfig::new(Config::new(Role::Initiator));
    driver.tls = TlsSetup::Client {
        config: client_tls,
        server_name: "relay.example".try_into().unwrap(),
    };
    let (connection, _incoming, task) = Connection::spawn(stream, driver);
    let before = connection.greeting(1).await.unwrap();
    assert_eq!(
        before.profiles,
        vec![
            "http://iana.org/beep/SASL/PLAIN",
            "http://iana.org/beep/TLS"
        ]
    );
    // PLAIN before TLS is refused with 538.
    let refused = connection
        .authenticate(Box::new(PlainClient {
            authzid: String::new(),
            authcid: "fred".into(),
            password: "secret".into(),
        }))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, DriverError::Refused(ref e) if e.code == ReplyCode::ENCRYPTION_REQUIRED),
        "{refused}"
    );
    let after = connection.start_tls().await.unwrap();
    assert_eq!(
        after.profiles,
        vec!["http://iana.org/beep/SASL/PLAIN", ECHO]
    );
    let identity = connection
        .authenticate(Box::new(PlainClient {
            authzid: String::new(),
            authcid: "fred".into(),
            password: "secret".into(),
        }))
        .await
        .unwrap();
    assert_eq!(identity, "fred");
    let channel = connection
        .open_channel(vec![Profile::new(ECHO)], None)
        .await
        .unwrap();
    let response = channel.request(Bytes::from("over TLS")).await.unwrap();
    assert_eq!(response, Response::Reply(Bytes::from("over TLS")));
    connection.release().await.unwrap();
    assert!(task.await.unwrap().is_ok());
    assert!(server.await.unwrap().is_ok());
}

#[tokio::test]
async fn a_reader_that_does_not_read_makes_the_sender_wait() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut config = Config::new(Role::Listener);
        config.profiles.push(ECHO.into());
        let (_connection, mut incoming, _task) =
            Connection::spawn(stream, DriverConfig::new(config));
        let start = incoming.next().await.unwrap();
        let channel = start.accept(Profile::new(ECHO)).await.unwrap();
        // Never read the channel until told to.
        let _ = hold_rx.await;
        drop(channel);
    });
    let stream = TcpStream::connect(address).await.unwrap();
    let mut driver = DriverConfig::new(Config::new(Role::Initiator));
    driver.channel_send_buffer = 256 * 1024;
    let (connection, _incoming, _task) = Connection::spawn(stream, driver);
    let channel = connection
        .open_channel(vec![Profile::new(ECHO)], None)
        .await
        .unwrap();
    // The peer's window (64 KiB) plus our send buffer (256 KiB) plus socket
    // buffers bound what can be handed over; 64 MiB cannot be.
    let mut accepted = 0usize;
    let blocked = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            channel
                .send(Bytes::from(vec![0u8; 64 * 1024]))
                .await
                .unwrap();
            accepted += 64 * 1024;
            if accepted >= 64 * 1024 * 1024 {
                break;
            }
        }
    })
    .await
    .is_err();
    assert!(
        blocked,
        "sender was never made to wait ({accepted} octets accepted)"
    );
    assert!(accepted < 16 * 1024 * 1024, "{accepted} octets accepted");
    let _ = hold_tx.send(());
}

/// How the scripted listener answers the release (`<close number='0'>`).
#[derive(Clone, Copy)]
enum AtRelease {
    /// With `ERR … <error code='501'>` (one independent implementation).
    Decline,
    /// By closing the TCP connection (another one).
    Drop,
}

/// An echo listener on the sans-IO session, driven by hand over TCP, that
/// answers everything like ours except the release.
async fn listener_failing_release(at_release: AtRelease) -> String {
    use bytes::BytesMut;
    use imxp_beep::frame::{self, DataHeader, Frame, Keyword};
    use imxp_beep::{Event, Session};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut config = Config::new(Role::Listener);
        config.profiles.push(ECHO.into());
        let now = std::time::Instant::now();
        let mut session = Session::new(config, now);
        // Octets this listener sent on channel 0 (the seqno of an injected ERR).
        let mut zero_seqno = 0u32;
        let mut input = BytesMut::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            while let Some(event) = session.poll_event() {
                match event {
                    Event::StartRequested(request) => session
                        .accept_start(request.channel, request.profiles[0].clone())
                        .unwrap(),
                    Event::Message {
                        channel,
                        msgno,
                        payload,
                    } => {
                        session.consumed(channel, payload.len());
                        session.send_rpy(channel, msgno, payload).unwrap();
                    }
                    _ => {}
                }
            }
            let mut out = BytesMut::new();
            while session.poll_transmit(&mut out) {}
            let mut copy = out.clone();
            while let Some(frame) = frame::decode(&mut copy, 1 << 24).unwrap() {
                if let Frame::Data(data) = frame
                    && data.header.channel == 0
                {
                    zero_seqno += data.header.size;
                }
            }
            stream.write_all(&out).await.unwrap();
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            input.extend_from_slice(&buffer[..n]);
            while let Some(frame) = frame::decode(&mut input, 1 << 24).unwrap() {
                let release = match &frame {
                    Frame::Data(data)
                        if data.header.channel == 0
                            && String::from_utf8_lossy(&data.payload)
                                .contains("<close number='0'") =>
                    {
                        Some(data.header.msgno)
                    }
                    _ => None,
                };
                let Some(msgno) = release else {
                    let mut bytes = BytesMut::new();
                    frame::encode(&frame, &mut bytes);
                    session.handle_input(now, &bytes).unwrap();
                    continue;
                };
                match at_release {
                    AtRelease::Drop => return,
                    AtRelease::Decline => {
                        let error = ErrorReply::new(
                            ReplyCode::PARAMETER_SYNTAX_ERROR,
                            "Malformed <close>: bad channel number",
                        );
                        let payload = error.to_payload();
                        let mut out = BytesMut::new();
                        frame::encode_data(
                            &DataHeader {
                                keyword: Keyword::Err,
                                channel: 0,
                                msgno,
                                more: false,
                                seqno: zero_seqno,
                                size: payload.len() as u32,
                                ansno: None,
                            },
                            &payload,
                            &mut out,
                        );
                        zero_seqno += payload.len() as u32;
                        stream.write_all(&out).await.unwrap();
                    }
                }
            }
        }
    });
    address
}

#[tokio::test]
async fn a_declined_release_keeps_the_counts_and_is_reported_as_such() {
    let address = listener_failing_release(AtRelease::Decline).await;
    let mut options = client_options(address);
    options.size = 10 * 1024;
    let outcome = tokio::time::timeout(Duration::from_secs(60), run::client(options))
        .await
        .expect("bounded")
        .expect("messages were exchanged");
    assert_eq!((outcome.passed, outcome.failed), (40, 0));
    assert!(outcome.exchange_error.is_none(), "{outcome:?}");
    let error = outcome.release.unwrap_err();
    match &error {
        DriverError::Release(ReleaseError::Declined(reply)) => {
            assert_eq!(reply.code, ReplyCode::PARAMETER_SYNTAX_ERROR);
        }
        other => panic!("not a declined release: {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "session release failed: the peer declined: 501 Malformed <close>: bad channel number"
    );
}

#[tokio::test]
async fn a_peer_dropping_tcp_at_release_is_a_failed_release_not_a_lost_session() {
    let address = listener_failing_release(AtRelease::Drop).await;
    let mut options = client_options(address);
    options.size = 10 * 1024;
    let outcome = tokio::time::timeout(Duration::from_secs(60), run::client(options))
        .await
        .expect("bounded")
        .expect("messages were exchanged");
    assert_eq!((outcome.passed, outcome.failed), (40, 0));
    assert!(outcome.exchange_error.is_none(), "{outcome:?}");
    let error = outcome.release.unwrap_err();
    assert!(
        matches!(error, DriverError::Release(ReleaseError::PeerClosed)),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "session release failed: the peer closed the connection without answering"
    );
}

#[tokio::test]
async fn a_peer_closing_during_the_greeting_is_a_greeting_failure_not_tls() {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        // Take the client's greeting, then close without greeting back.
        let mut buffer = vec![0u8; 4096];
        let _ = stream.read(&mut buffer).await;
    });
    let error = tokio::time::timeout(
        Duration::from_secs(30),
        run::client(client_options(address)),
    )
    .await
    .expect("bounded")
    .unwrap_err();
    assert!(matches!(error, DriverError::Greeting(_)), "{error:?}");
    let text = error.to_string();
    assert!(text.starts_with("greeting exchange failed: "), "{text}");
    assert!(!text.contains("TLS"), "no TLS was asked for: {text}");
}
