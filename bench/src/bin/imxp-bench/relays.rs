//! Real `imxpd` processes for a run: a certificate authority, one
//! certificate per relay, and the files an operator writes (`imxpd.toml`
//! with `[routes]` between the relays, the users file through `imxpd user
//! add`), then the processes themselves, stopped with SIGTERM (a drain) at
//! the end.

use anyhow::{Context as _, bail, ensure};
use imxp_spool::admin::{self, Reply, Request, Response};
use imxp_tests::relays::TestCa;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a relay may take to open its spool and listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a relay may take to drain after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// One relay to set up.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// The domain it serves.
    pub(crate) domain: String,
    /// Users `(address, password)`.
    pub(crate) users: Vec<(String, String)>,
    /// Extra TOML appended to the configuration.
    pub(crate) extra: String,
}

/// A relay's files and addresses.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// The domain.
    pub(crate) domain: String,
    /// Its state directory (spool, admin socket, users file).
    pub(crate) dir: PathBuf,
    /// `imxpd.toml`.
    pub(crate) config: PathBuf,
    /// apex-edge address.
    pub(crate) edge: SocketAddr,
    /// apex-mesh address.
    pub(crate) mesh: SocketAddr,
}

/// A running `imxpd`.
pub(crate) struct Relay {
    /// Where it keeps its files and listens.
    pub(crate) layout: Layout,
    child: Child,
}

/// A loopback port free right now (the relay binds it a moment later;
/// `SO_REUSEADDR` on both sides makes a clash unlikely, and a clash fails
/// the start loudly).
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    Ok(listener.local_addr()?)
}

/// Writes certificates and configurations for `plans` under `base`, each
/// relay routing every other one's domain to that one's mesh listener,
/// and adds the users with `imxpd user add`.
pub(crate) fn write(imxpd: &Path, base: &Path, plans: &[Plan]) -> anyhow::Result<Vec<Layout>> {
    let ca = TestCa::new();
    let mut layouts = Vec::new();
    for plan in plans {
        let dir = base.join(&plan.domain);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        layouts.push(Layout {
            domain: plan.domain.clone(),
            config: dir.join("imxpd.toml"),
            dir,
            edge: free_port()?,
            mesh: free_port()?,
        });
    }
    for (plan, layout) in plans.iter().zip(&layouts) {
        let (cert, key) = ca.issue(&[plan.domain.as_str()], &layout.dir);
        let ca_path = ca.write(&layout.dir);
        let routes: String = layouts
            .iter()
            .filter(|other| other.domain != layout.domain)
            .map(|other| format!("\"{}\" = \"{}\"\n", other.domain, other.mesh))
            .collect();
        let text = format!(
            "# Written by imxp-bench.\n\
             [relay]\ndomains = [\"{domain}\"]\nstate_dir = \"{dir}\"\n\
             # The bench may run as root (CI does).\nallow_root = true\n\n\
             [listen]\nedge = [\"{edge}\"]\nmesh = [\"{mesh}\"]\n\n\
             [tls]\ncert = \"{cert}\"\nkey = \"{key}\"\nca = \"{ca}\"\n\n\
             [routes]\n{routes}\n{extra}",
            domain = plan.domain,
            dir = layout.dir.display(),
            edge = layout.edge,
            mesh = layout.mesh,
            cert = cert.display(),
            key = key.display(),
            ca = ca_path.display(),
            extra = plan.extra,
        );
        std::fs::write(&layout.config, text)
            .with_context(|| format!("writing {}", layout.config.display()))?;
        for (name, password) in &plan.users {
            add_user(imxpd, &layout.config, name, password)?;
        }
    }
    Ok(layouts)
}

/// `imxpd --config CONFIG user add NAME`, the password on standard input.
fn add_user(imxpd: &Path, config: &Path, name: &str, password: &str) -> anyhow::Result<()> {
    let mut child = Command::new(imxpd)
        .arg("--config")
        .arg(config)
        .args(["user", "add", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", imxpd.display()))?;
    child
        .stdin
        .take()
        .context("stdin of imxpd user add")?
        .write_all(password.as_bytes())?;
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "imxpd user add {name} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

impl Relay {
    /// Starts `imxpd` on `layout` (logs to `DIR/imxpd.log`, level
    /// `warn` unless `IMXP_LOG` says otherwise) and waits until its edge
    /// listener and admin socket answer.
    pub(crate) fn start(imxpd: &Path, layout: &Layout) -> anyhow::Result<Self> {
        let mut relay = Self::spawn(imxpd, layout)?;
        relay.wait_ready(&layout.dir.join("imxpd.log"))?;
        Ok(relay)
    }

    /// Starts `imxpd` on `layout` without waiting for it (see
    /// [`Relay::wait_listening`]).
    pub(crate) fn spawn(imxpd: &Path, layout: &Layout) -> anyhow::Result<Self> {
        let log_path = layout.dir.join("imxpd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let child = Command::new(imxpd)
            .arg("--config")
            .arg(&layout.config)
            .env(
                "IMXP_LOG",
                std::env::var("IMXP_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", imxpd.display()))?;
        Ok(Self {
            layout: layout.clone(),
            child,
        })
    }

    /// Waits until the edge listener takes connections (not the admin
    /// socket: its statistics walk the whole spool, slow with a large
    /// one); an error if the process exits or `timeout` passes first.
    pub(crate) fn wait_listening(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("imxpd for {} exited ({status})", self.layout.domain);
            }
            if std::net::TcpStream::connect(self.layout.edge).is_ok() {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "imxpd for {} did not listen on {} within {timeout:?}",
                self.layout.domain,
                self.layout.edge
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub(crate) fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().context("sending SIGKILL to imxpd")?;
        self.child.wait()?;
        Ok(())
    }

    /// Asks the relay to make every deferred recipient due now (what
    /// `imxp-spool flush` does).
    pub(crate) fn flush(&self) -> anyhow::Result<()> {
        let socket = self.layout.dir.join(admin::SOCKET_NAME);
        let mut client = admin::Client::connect(&socket, Duration::from_secs(600))
            .with_context(|| format!("connecting to {}", socket.display()))?;
        match client.call(&Request::Flush { dry_run: false })? {
            Response::Ok(_) => Ok(()),
            other => bail!("{}: flush refused: {other:?}", socket.display()),
        }
    }

    fn wait_ready(&mut self, log_path: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "imxpd for {} exited at start ({status}); its log {}:\n{}",
                    self.layout.domain,
                    log_path.display(),
                    std::fs::read_to_string(log_path).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect(self.layout.edge).is_ok() && self.stats().is_ok() {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "imxpd for {} did not listen on {} within {START_TIMEOUT:?} (log {})",
                self.layout.domain,
                self.layout.edge,
                log_path.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The spool's statistics over the admin socket (what `imxp-spool
    /// stats` shows), including the commit counters.
    pub(crate) fn stats(&self) -> anyhow::Result<imxp_spool::stats::Stats> {
        stats_at(&self.layout.dir.join(admin::SOCKET_NAME))
    }

    /// Sends SIGTERM and waits for the drain (SIGKILL after
    /// [`STOP_TIMEOUT`]).
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .context("sending SIGTERM to imxpd")?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!(
            "imxpd for {} did not stop within {STOP_TIMEOUT:?}",
            self.layout.domain
        )
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Never leave a relay behind (an error path skipped `stop`).
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The statistics of the relay whose admin socket is `socket`.
pub(crate) fn stats_at(socket: &Path) -> anyhow::Result<imxp_spool::stats::Stats> {
    let mut client = admin::Client::connect(socket, Duration::from_secs(30))
        .with_context(|| format!("connecting to {}", socket.display()))?;
    match client.call(&Request::Stats)? {
        Response::Ok(Reply::Stats(stats)) => Ok(*stats),
        other => bail!(
            "{}: unexpected answer to stats: {other:?}",
            socket.display()
        ),
    }
}
