//! `[metrics] listen`: a real `imxpd` process with TLS serves Prometheus
//! text on `GET /metrics`, and its counters move as a datagram goes
//! through it, a login fails and a TLS handshake fails.

use imxp_apex::Endpoint;
use imxp_client::{Client, ConnectOptions, Mechanism};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The relay process, stopped when dropped (also when the test fails).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP exchange: the status line and the body.
fn http(port: u16, request: &str) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    Ok((
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    ))
}

fn scrape(port: u16) -> String {
    let (status, body) = http(port, "GET /metrics HTTP/1.1\r\nHost: relay\r\n\r\n").unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.ends_with("# EOF\n"), "{body}");
    body
}

/// The value of the sample `name` (with its labels, as written), or 0.
fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn connect(
    edge: u16,
    tls: Arc<rustls::ClientConfig>,
    user: &str,
    password: &str,
) -> Result<Client, imxp_client::ClientError> {
    Client::connect(ConnectOptions {
        relay: format!("127.0.0.1:{edge}"),
        tls: Some((tls, "a.test".to_owned())),
        user: user.into(),
        password: password.into(),
        mechanism: Mechanism::ScramSha256,
    })
    .await
}

fn write_config(dir: &Path, edge: u16, mesh: u16, metrics: u16) -> std::path::PathBuf {
    let (cert, key) =
        imxp_relay::tls::generate_dev_certificate(dir, &["a.test".to_owned()]).unwrap();
    let config = dir.join("imxpd.toml");
    std::fs::write(
        &config,
        format!(
            // allow_root: CI runs the suite as root.
            "[relay]\ndomains = [\"a.test\"]\nstate_dir = \"{dir}\"\nallow_root = true\n\
             [listen]\nedge = [\"127.0.0.1:{edge}\"]\nmesh = [\"127.0.0.1:{mesh}\"]\n\
             [tls]\ncert = \"{cert}\"\nkey = \"{key}\"\nca = \"{cert}\"\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n",
            dir = dir.display(),
            cert = cert.display(),
            key = key.display(),
        ),
    )
    .unwrap();
    let parsed = imxp_relay::config::Config::load(&config).unwrap();
    imxp_relay::auth::add_user(&parsed.users, "fred@a.test", "secret").unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_as_a_datagram_goes_through() {
    let dir = tempfile::tempdir().unwrap();
    let (edge, mesh, port) = (free_port(), free_port(), free_port());
    let config = write_config(dir.path(), edge, mesh, port);
    let _relay = Process(
        Command::new(env!("CARGO_BIN_EXE_imxpd"))
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let before = loop {
        match http(port, "GET /metrics HTTP/1.1\r\n\r\n") {
            Ok(_) => break scrape(port),
            Err(error) if std::time::Instant::now() > deadline => {
                panic!("the metrics endpoint did not come up: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert!(
        before.contains("# TYPE imxp_datagram_events counter"),
        "{before}"
    );
    assert_eq!(value(&before, "imxp_queue_datagrams"), 0.0);
    // Not a scrape: 404 and 405.
    assert_eq!(
        http(port, "GET / HTTP/1.1\r\n\r\n").unwrap().0,
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        http(port, "POST /metrics HTTP/1.1\r\n\r\n").unwrap().0,
        "HTTP/1.1 405 Method Not Allowed"
    );

    let ca = dir.path().join("dev-cert.pem");
    let tls = imxp_client::tls::client_config_from_ca_file(&ca).unwrap();
    let listener = connect(edge, tls.clone(), "fred@a.test", "secret")
        .await
        .unwrap();
    let mut inbox = listener
        .attach(Endpoint::parse("fred@a.test").unwrap())
        .await
        .unwrap();
    inbox.set_auto_ack(true);
    let sender = connect(edge, tls.clone(), "fred@a.test", "secret")
        .await
        .unwrap();
    let outbox = sender
        .attach(Endpoint::parse("fred/appl=metrics@a.test").unwrap())
        .await
        .unwrap();
    let during = scrape(port);
    assert_eq!(
        value(&during, "imxp_sessions{kind=\"edge\"}"),
        2.0,
        "{during}"
    );
    assert_eq!(
        value(&during, "imxp_attachments{kind=\"edge\"}"),
        2.0,
        "{during}"
    );

    outbox
        .send(
            vec![Endpoint::parse("fred@a.test").unwrap()],
            "text/plain",
            b"count me",
        )
        .await
        .unwrap();
    let received = tokio::time::timeout(Duration::from_secs(30), inbox.next())
        .await
        .expect("delivered in time")
        .expect("a datagram");
    assert_eq!(&received.content[..], b"count me");

    // A wrong password, and a client that does not trust the relay's
    // certificate (its handshake fails).
    assert!(
        connect(edge, tls.clone(), "fred@a.test", "wrong")
            .await
            .is_err()
    );
    let other = tempfile::tempdir().unwrap();
    let (stranger, _) =
        imxp_relay::tls::generate_dev_certificate(other.path(), &["a.test".to_owned()]).unwrap();
    let distrusting = imxp_client::tls::client_config_from_ca_file(&stranger).unwrap();
    assert!(
        connect(edge, distrusting, "fred@a.test", "secret")
            .await
            .is_err()
    );

    // The counters are bumped after the spool commits and the sessions
    // end: wait for them rather than for a fixed time.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let after = loop {
        let text = scrape(port);
        let done = value(&text, "imxp_datagram_events_total{event=\"removed\"}") >= 1.0
            && value(
                &text,
                "imxp_tls_handshake_failures_total{direction=\"inbound\"}",
            ) >= 1.0;
        if done || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (name, expected) in [
        ("imxp_datagram_events_total{event=\"queued\"}", 1.0),
        ("imxp_datagram_events_total{event=\"delivered\"}", 1.0),
        ("imxp_datagram_events_total{event=\"removed\"}", 1.0),
        ("imxp_authentication_failures_total", 1.0),
        (
            "imxp_tls_handshake_failures_total{direction=\"inbound\"}",
            1.0,
        ),
        ("imxp_delivery_delay_seconds_count{kind=\"local\"}", 1.0),
        ("imxp_queue_datagrams", 0.0),
        ("imxp_queue_recipients{state=\"queued\"}", 0.0),
        ("imxp_oldest_queued_age_seconds", 0.0),
    ] {
        assert_eq!(value(&after, name), expected, "{name} in\n{after}");
    }
    assert!(value(&after, "imxp_sessions_opened_total{kind=\"edge\"}") >= 4.0);
    // Every commit is counted with its size: the enqueue, the claim, the
    // record at least.
    assert!(value(&after, "imxp_spool_commit_operations_count") >= 3.0);
    assert!(value(&after, "imxp_spool_commit_operations_sum") >= 3.0);
    assert!(value(&after, "imxp_spool_commit_seconds_count") >= 3.0);
    assert_eq!(
        value(&after, "imxp_deliveries_in_flight{destination=\"a.test\"}"),
        0.0,
        "{after}"
    );
    drop((inbox, outbox, listener, sender));
}
