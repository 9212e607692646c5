//! `imxpd --log-format json`: every log line is one JSON object, and a
//! datagram's transitions can be followed by its id, as a log collector
//! would (the `event` names are `imxp_spool::Event`'s).

use imxp_apex::Endpoint;
use imxp_client::{Client, ConnectOptions, Mechanism};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_follow_a_datagram_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let (edge, mesh) = (free_port(), free_port());
    let config = dir.path().join("imxpd.toml");
    std::fs::write(
        &config,
        format!(
            // allow_root: CI runs the suite as root.
            "[relay]\ndomains = [\"a.test\"]\nstate_dir = \"{dir}\"\nallow_root = true\n\
             [listen]\nedge = [\"127.0.0.1:{edge}\"]\nmesh = [\"127.0.0.1:{mesh}\"]\n\
             [tls]\nrequired = false\n",
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let parsed = imxp_relay::config::Config::load(&config).unwrap();
    imxp_relay::auth::add_user(&parsed.users, "fred@a.test", "secret").unwrap();
    let log_path = dir.path().join("imxpd.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_imxpd"))
        .args(["--log-format", "json", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();

    let connect = || async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match Client::connect(ConnectOptions {
                relay: format!("127.0.0.1:{edge}"),
                tls: None,
                user: "fred@a.test".into(),
                password: "secret".into(),
                mechanism: Mechanism::Plain,
            })
            .await
            {
                Ok(client) => return client,
                Err(error) if tokio::time::Instant::now() > deadline => {
                    panic!("the relay did not come up: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    };
    let listener = connect().await;
    let mut inbox = listener
        .attach(Endpoint::parse("fred@a.test").unwrap())
        .await
        .unwrap();
    inbox.set_auto_ack(true);
    let sender = connect().await;
    let outbox = sender
        .attach(Endpoint::parse("fred/appl=log@a.test").unwrap())
        .await
        .unwrap();
    outbox
        .send(
            vec![Endpoint::parse("fred@a.test").unwrap()],
            "text/plain",
            b"follow me",
        )
        .await
        .unwrap();
    let received = tokio::time::timeout(Duration::from_secs(30), inbox.next())
        .await
        .expect("delivered in time")
        .expect("a datagram");
    assert_eq!(&received.content[..], b"follow me");
    drop((inbox, outbox, listener, sender));
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let events = |name: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["fields"]["event"] == name)
            .map(|l| l["fields"]["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let queued = events("queued");
    assert_eq!(queued.len(), 1, "{text}");
    assert_eq!(events("delivered"), queued, "{text}");
    assert_eq!(events("removed"), queued, "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
}
