//! Draining and reloading a relay under load, with real `imxpd`
//! processes: several senders keep sending through relay A to a recipient
//! at relay B, who counts what arrives by its content.
//!
//! * SIGTERM drains A: it stops taking datagrams (421), lets deliveries
//!   in flight finish within `[relay] drain_timeout`, and exits 0; after a
//!   restart every datagram A acknowledged arrives, none twice.
//! * SIGHUP reloads A's whole configuration while the senders go on: a
//!   file that fails validation is refused (the log names the key) and
//!   changes nothing; a valid one is applied; no session is dropped and
//!   every acknowledged datagram arrives once.

mod support;

use imxp_apex::Endpoint;
use imxp_client::Client;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Relay, connect, free_port, queued, wait_listening, write_relay};

const SENDERS: usize = 6;

/// A relay process whose log goes to `imxpd.log` in its state
/// directory; killed when dropped (also when the test fails).
struct Process(Child);

impl Process {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(relay: &Relay) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_imxpd"))
            .arg("--config")
            .arg(&relay.config)
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(relay.dir.join("imxpd.log"))
                    .expect("log file"),
            )
            .spawn()
            .expect("start imxpd"),
    )
}

/// A relay of the shared helpers, draining for at most 10 s.
fn relay(dir: &Path, domain: &str, mesh: u16, routes: &[(&str, u16)], users: &[&str]) -> Relay {
    let relay = write_relay(dir, domain, mesh, routes, users);
    let text = std::fs::read_to_string(&relay.config).unwrap().replace(
        "allow_root = true\n",
        "allow_root = true\ndrain_timeout = \"10s\"\n",
    );
    std::fs::write(&relay.config, text).unwrap();
    relay
}

/// Relays A and B running, wilma attached at B counting what she
/// receives by content, and senders at A sending until told to stop or
/// refused, recording what A acknowledged.
struct Scenario {
    _base: tempfile::TempDir,
    a: Relay,
    b: Relay,
    a_process: Process,
    b_process: Process,
    received: Arc<Mutex<HashMap<String, usize>>>,
    acknowledged: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<Vec<String>>>,
    stop_sending: Arc<std::sync::atomic::AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<Client>>,
    receiver: tokio::task::JoinHandle<()>,
    _wilma: Client,
}

impl Scenario {
    async fn start() -> Self {
        let base = tempfile::tempdir().unwrap();
        let (a_mesh, b_mesh) = (free_port(), free_port());
        let a = relay(
            &base.path().join("a"),
            "a.test",
            a_mesh,
            &[("b.test", b_mesh)],
            &["fred"],
        );
        let b = relay(
            &base.path().join("b"),
            "b.test",
            b_mesh,
            &[("a.test", a_mesh)],
            &["wilma"],
        );
        let b_process = spawn(&b);
        let a_process = spawn(&a);
        wait_listening(b.edge).await;
        wait_listening(a.edge).await;

        let wilma = connect(b.edge, "wilma@b.test").await;
        let mut inbox = wilma
            .attach(Endpoint::parse("wilma@b.test").unwrap())
            .await
            .unwrap();
        inbox.set_auto_ack(true);
        let received: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let counter = received.clone();
        let receiver = tokio::spawn(async move {
            while let Some(datagram) = inbox.next().await {
                let text = String::from_utf8(datagram.content.to_vec()).unwrap();
                *counter.lock().unwrap().entry(text).or_default() += 1;
            }
        });
        let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
        let refused: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop_sending = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut senders = Vec::new();
        for s in 0..SENDERS {
            let (acknowledged, refused) = (acknowledged.clone(), refused.clone());
            let stop = stop_sending.clone();
            let port = a.edge;
            senders.push(tokio::spawn(async move {
                let client = connect(port, "fred@a.test").await;
                let endpoint = Endpoint::parse(&format!("fred/appl=s{s}@a.test")).unwrap();
                let attachment = client.attach(endpoint).await.expect("attach");
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let text = format!("sender {s} datagram {i}");
                    i += 1;
                    match attachment
                        .send(
                            vec![Endpoint::parse("wilma@b.test").unwrap()],
                            "text/plain",
                            text.as_bytes(),
                        )
                        .await
                    {
                        Ok(()) => acknowledged.lock().unwrap().push(text),
                        Err(error) => {
                            refused.lock().unwrap().push(format!("{text}: {error}"));
                            break;
                        }
                    }
                }
                client
            }));
        }
        Self {
            _base: base,
            a,
            b,
            a_process,
            b_process,
            received,
            acknowledged,
            refused,
            stop_sending,
            senders,
            receiver,
            _wilma: wilma,
        }
    }

    /// Waits until A has acknowledged `n` datagrams in all.
    async fn acknowledged_at_least(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.acknowledged.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "A did not accept datagrams");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the senders (if still sending) and returns what A
    /// acknowledged.
    async fn stop_senders(&mut self) -> Vec<String> {
        self.stop_sending
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for sender in self.senders.drain(..) {
            drop(sender.await.unwrap());
        }
        self.acknowledged.lock().unwrap().clone()
    }

    /// Every datagram in `acknowledged` arrives at wilma, and nothing
    /// arrives twice (checked once both spools are empty and a marker sent
    /// after them arrived).
    async fn all_arrive_once(&self, acknowledged: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let missing = {
                let received = self.received.lock().unwrap();
                acknowledged
                    .iter()
                    .filter(|t| !received.contains_key(*t))
                    .count()
            };
            if missing == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{missing} acknowledged datagrams never arrived"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(180);
        while queued(&self.a.dir) + queued(&self.b.dir) > 0 {
            assert!(Instant::now() < deadline, "the spools never emptied");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let marker = connect(self.a.edge, "fred@a.test").await;
        marker
            .attach(Endpoint::parse("fred/appl=marker@a.test").unwrap())
            .await
            .unwrap()
            .send(
                vec![Endpoint::parse("wilma@b.test").unwrap()],
                "text/plain",
                b"marker",
            )
            .await
            .expect("A accepts the marker");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.received.lock().unwrap().contains_key("marker") {
            assert!(Instant::now() < deadline, "the marker never arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let received = self.received.lock().unwrap().clone();
        let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    }

    /// A's log so far.
    fn a_log(&self) -> String {
        std::fs::read_to_string(self.a.dir.join("imxpd.log")).unwrap_or_default()
    }

    fn signal_a(&self, signal: rustix::process::Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.a_process.0), signal)
            .unwrap();
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        self.receiver.abort();
        self.a_process.kill();
        self.b_process.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_under_load_and_loses_nothing() {
    let mut scenario = Scenario::start().await;
    scenario.acknowledged_at_least(600).await;
    scenario.signal_a(rustix::process::Signal::TERM);
    let signalled = Instant::now();
    // A exits 0 within the drain timeout (10 s) and the session release.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = scenario.a_process.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "A did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "A exited with {status}");
    let drained_in = signalled.elapsed();
    // Every sender was refused (421 while draining, or the session
    // released): none hangs.
    let acknowledged = scenario.stop_senders().await;
    let refused = scenario.refused.lock().unwrap().clone();
    assert_eq!(refused.len(), SENDERS, "{refused:?}");
    let log = scenario.a_log();
    assert!(log.contains("draining"), "{log}");
    assert!(log.contains("stopped"), "{log}");

    // What was not delivered stays queued for the next start.
    scenario.a_process = spawn(&scenario.a);
    wait_listening(scenario.a.edge).await;
    scenario.all_arrive_once(&acknowledged).await;
    eprintln!(
        "drained in {drained_in:?}; acknowledged {}, senders refused with 421: {}",
        acknowledged.len(),
        refused.iter().filter(|r| r.contains("421")).count()
    );
}

/// Waits until A's log contains `text`; returns the log.
async fn a_logs(scenario: &Scenario, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = scenario.a_log();
        if log.contains(text) {
            return log;
        }
        assert!(Instant::now() < deadline, "{text:?} never logged:\n{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Attaches twice on one new session at A: whether the second attach is
/// taken (`[limits] max_attachments_per_session` decides).
async fn second_attach_taken(scenario: &Scenario) -> bool {
    let client = connect(scenario.a.edge, "fred@a.test").await;
    let _first = client
        .attach(Endpoint::parse("fred/appl=one@a.test").unwrap())
        .await
        .expect("first attach");
    client
        .attach(Endpoint::parse("fred/appl=two@a.test").unwrap())
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_whole_configuration_under_load() {
    let mut scenario = Scenario::start().await;
    scenario.acknowledged_at_least(300).await;
    let original = std::fs::read_to_string(&scenario.a.config).unwrap();
    assert!(
        second_attach_taken(&scenario).await,
        "the default allows 16"
    );

    // A file that fails validation: refused, the key named, nothing changes.
    std::fs::write(
        &scenario.a.config,
        format!("{original}[limits]\nmax_attachments_per_session = 1\n[log]\nformat = \"xml\"\n"),
    )
    .unwrap();
    scenario.signal_a(rustix::process::Signal::HUP);
    let log = a_logs(&scenario, "configuration reload refused").await;
    assert!(log.contains("log.format"), "{log}");
    assert!(
        second_attach_taken(&scenario).await,
        "the refused file changed the limits"
    );

    // A valid file: a limit takes effect at once; a changed queue setting
    // is logged as needing a restart.
    std::fs::write(
        &scenario.a.config,
        format!(
            "{}[limits]\nmax_attachments_per_session = 1\n",
            original.replace("min_backoff = \"1s\"", "min_backoff = \"2s\"")
        ),
    )
    .unwrap();
    scenario.signal_a(rustix::process::Signal::HUP);
    let log = a_logs(&scenario, "configuration reloaded").await;
    assert!(log.contains("needs restart"), "{log}");
    assert!(log.contains("key=\"queue\""), "{log}");
    assert!(
        !second_attach_taken(&scenario).await,
        "the new limit is in force"
    );

    // The senders went on through both reloads: nothing dropped.
    let before = scenario.acknowledged.lock().unwrap().len();
    scenario.acknowledged_at_least(before + 300).await;
    assert!(scenario.refused.lock().unwrap().is_empty());
    let acknowledged = scenario.stop_senders().await;
    scenario.all_arrive_once(&acknowledged).await;
}
