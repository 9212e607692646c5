//! A real XMPP server and a real XMPP client for the gateway tests.
//!
//! [`Prosody`] runs Debian's `prosody` (0.12) in the foreground with a
//! throwaway configuration in a temporary directory: loopback only, a
//! client port and a component port chosen free, one virtual host, one
//! external component with a secret, users registered with `prosodyctl`,
//! no TLS (nothing leaves 127.0.0.1), `run_as_root` so that it also runs
//! where the tests run as root (CI).
//!
//! [`XmppClient`] runs `tests/xmpp/client.py` (slixmpp, Debian's
//! `python3-slixmpp`) logged in as one user: commands go to its stdin and
//! events come from its stdout, one JSON object per line.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A running Prosody.
pub struct Prosody {
    /// Its directory (configuration, data, log).
    pub dir: PathBuf,
    /// The virtual host, e.g. `montague.lit`.
    pub host: String,
    /// The component's JID, e.g. `imxp.montague.lit`.
    pub component: String,
    /// The client (c2s) port.
    pub c2s_port: u16,
    /// The component port.
    pub component_port: u16,
    /// The file holding the component secret.
    pub secret_file: PathBuf,
    child: Option<Child>,
}

impl Prosody {
    /// Writes the configuration into `dir`, registers `users` (name,
    /// password) at `host`, and starts Prosody; returns once both ports
    /// accept connections.
    pub fn start(dir: &Path, host: &str, component: &str, users: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(dir.join("data")).expect("prosody dir");
        let secret = format!("s3cr3t-{:016x}", rand::random::<u64>());
        let secret_file = dir.join("component.secret");
        std::fs::write(&secret_file, format!("{secret}\n")).expect("secret file");
        let mut prosody = Self {
            dir: dir.to_owned(),
            host: host.to_owned(),
            component: component.to_owned(),
            c2s_port: free_port(),
            component_port: free_port(),
            secret_file,
            child: None,
        };
        let config = format!(
            r#"-- Throwaway configuration for one test run.
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
run_as_root = true
daemonize = false
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
s2s_ports = {{ }}
component_ports = {{ {component_port} }}
component_interfaces = {{ "127.0.0.1" }}
http_ports = {{ }}
https_ports = {{ }}
c2s_direct_tls_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "presence"; "offline"; "posix" }}
modules_disabled = {{ "s2s"; "tls" }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
storage = "internal"
VirtualHost "{host}"
Component "{component}"
  component_secret = "{secret}"
"#,
            dir = dir.display(),
            c2s = prosody.c2s_port,
            component_port = prosody.component_port,
        );
        std::fs::write(prosody.config(), config).expect("prosody config");
        for (name, password) in users {
            let output = Command::new("prosodyctl")
                .arg("--config")
                .arg(prosody.config())
                .args(["register", name, host, password])
                .output()
                .expect("prosodyctl runs (Debian package prosody)");
            assert!(
                output.status.success(),
                "prosodyctl register {name}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        prosody.spawn();
        prosody
    }

    fn config(&self) -> PathBuf {
        self.dir.join("prosody.cfg.lua")
    }

    /// The component address, `127.0.0.1:port`.
    pub fn component_address(&self) -> String {
        format!("127.0.0.1:{}", self.component_port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stdout.log"))
            .expect("stdout log");
        let child = Command::new("prosody")
            .arg("--config")
            .arg(self.config())
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("prosody runs (Debian package prosody)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in [self.c2s_port, self.component_port] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "prosody did not listen on {port}; see {}",
                    self.dir.join("prosody.log").display()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Stops Prosody (SIGKILL: its connections break without a goodbye).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Prosody's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prosody.log")).unwrap_or_default()
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A logged-in slixmpp client.
pub struct XmppClient {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
    /// Events read while waiting for another kind.
    backlog: Vec<Value>,
}

/// The client script.
pub fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("xmpp/client.py")
}

impl XmppClient {
    /// Logs in as `jid` with `password` at the server's client port;
    /// returns once the session started.
    pub fn login(jid: &str, password: &str, port: u16) -> Self {
        // Debian's interpreter, where python3-slixmpp is installed.
        let mut child = Command::new("/usr/bin/python3")
            .arg(client_script())
            .args([jid, password, "127.0.0.1", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(value) => {
                        if sender.send(value).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("xmpp client: {line}"),
                }
            }
        });
        let mut client = Self {
            child,
            stdin,
            events,
            backlog: Vec::new(),
        };
        let ready = client.next("ready", Duration::from_secs(30));
        assert!(ready.is_some(), "{jid} did not log in");
        client
    }

    /// Sends one command (a JSON object with `cmd`).
    pub fn command(&mut self, command: Value) {
        writeln!(self.stdin, "{command}").expect("client stdin");
        self.stdin.flush().expect("client stdin");
    }

    /// The next event of kind `event` within `timeout`, keeping the others.
    pub fn next(&mut self, event: &str, timeout: Duration) -> Option<Value> {
        if let Some(at) = self.backlog.iter().position(|e| e["event"] == event) {
            return Some(self.backlog.remove(at));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.events.recv_timeout(left) {
                Ok(value) if value["event"] == event => return Some(value),
                Ok(value) if value["event"] == "failed" => panic!("xmpp client failed: {value}"),
                Ok(value) => self.backlog.push(value),
                Err(_) => return None,
            }
        }
    }

    /// The next chat message (not an error) within `timeout`.
    pub fn next_message(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let message = self.next("message", left)?;
            if message["type"] != "error" {
                return Some(message);
            }
            self.backlog
                .push(serde_json::json!({"event": "error-message", "message": message}));
        }
    }
}

impl Drop for XmppClient {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{{\"cmd\": \"quit\"}}");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
