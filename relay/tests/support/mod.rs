//! Real `imxpd` processes for the tests that need one (a SIGKILL, a
//! restart): configuration files, start, wait, kill, and the client and
//! admin-socket calls those tests make. Plaintext on loopback (TLS is
//! covered elsewhere), password `secret` for every user.

#![allow(dead_code, unreachable_pub)]

use imxp_client::{Client, ConnectOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released for the relay to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A relay's files and ports.
pub struct Relay {
    /// The configuration file.
    pub config: PathBuf,
    /// The state directory (spool, admin socket).
    pub dir: PathBuf,
    pub edge: u16,
    pub mesh: u16,
}

/// Writes the configuration of a relay for `domain` in `dir`, listening on
/// `mesh` (a port reserved by the caller, so that peers' routes can name
/// it), routing each of `routes` (domain, mesh port), with users
/// `user@domain` (password `secret`).
pub fn write_relay(
    dir: &Path,
    domain: &str,
    mesh: u16,
    routes: &[(&str, u16)],
    users: &[&str],
) -> Relay {
    std::fs::create_dir_all(dir).unwrap();
    let edge = free_port();
    let config = dir.join("imxpd.toml");
    let routes: String = routes
        .iter()
        .map(|(peer, port)| format!("\"{peer}\" = \"127.0.0.1:{port}\"\n"))
        .collect();
    std::fs::write(
        &config,
        format!(
            // allow_root: CI runs the suite as root.
            "[relay]\ndomains = [\"{domain}\"]\nstate_dir = \"{dir}\"\nallow_root = true\n\
             [listen]\nedge = [\"127.0.0.1:{edge}\"]\nmesh = [\"127.0.0.1:{mesh}\"]\n\
             [tls]\nrequired = false\n\
             [mesh]\ninsecure_unauthenticated_bind = true\n\
             [routes]\n{routes}\
             [queue]\nmin_backoff = \"1s\"\nmax_backoff = \"2s\"\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let parsed = imxp_relay::config::Config::load(&config).unwrap();
    for user in users {
        imxp_relay::auth::add_user(&parsed.users, &format!("{user}@{domain}"), "secret").unwrap();
    }
    Relay {
        config,
        dir: dir.to_owned(),
        edge,
        mesh,
    }
}

/// A relay process, killed when dropped (also when the test fails).
pub struct Process(Child);

impl Process {
    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `imxpd --config` for `relay`.
pub fn spawn(relay: &Relay) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_imxpd"))
            .arg("--config")
            .arg(&relay.config)
            .env(
                "IMXP_LOG",
                std::env::var("IMXP_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start imxpd"),
    )
}

/// Waits until something listens on `port`.
pub async fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "relay did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many datagrams the relay with state directory `dir` has in its
/// spool, asked over its admin socket (what `imxp-spool list` shows).
pub fn queued(dir: &Path) -> usize {
    use imxp_spool::admin::{Filter, Reply, Request, Response};
    let socket = dir.join(imxp_spool::admin::SOCKET_NAME);
    // A relay listens on its edge port before its admin socket: a caller
    // that just saw the port open may be early.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut client = loop {
        match imxp_spool::admin::Client::connect(&socket, Duration::from_secs(10)) {
            Ok(client) => break client,
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("admin socket {}: {error}", socket.display()),
        }
    };
    match client
        .call(&Request::List {
            filter: Filter::default(),
        })
        .expect("admin call")
    {
        Response::Ok(Reply::List { envelopes }) => envelopes.len(),
        other => panic!("unexpected admin response {other:?}"),
    }
}

/// Logs in as `user` (password `secret`, PLAIN without TLS).
pub async fn connect(port: u16, user: &str) -> Client {
    Client::connect(ConnectOptions {
        relay: format!("127.0.0.1:{port}"),
        tls: None,
        user: user.to_owned(),
        password: "secret".to_owned(),
        mechanism: imxp_client::Mechanism::Plain,
    })
    .await
    .expect("login")
}
