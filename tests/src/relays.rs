//! In-process relays for multi-relay scenarios: each gets a domain, a
//! certificate from a shared test CA (rcgen), a state directory with a
//! real spool, users, and loopback listeners; `imxpd`'s own `run` serves
//! them.

use imxp_relay::config::Config;
use imxp_relay::server::{self, Listeners, RelayError};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A certificate authority for one test: every relay's certificate, and
/// the trust anchor of relays and clients.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A fresh CA.
    pub fn new() -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "imxp test CA");
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA certificate to `dir/ca.pem`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.pem).expect("write CA");
        path
    }

    /// Issues a certificate naming `names` (server and client use) and
    /// writes it with its key to `dir`; returns (cert, key) paths.
    pub fn issue(&self, names: &[&str], dir: &Path) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        let cert_path = dir.join(format!("{}-cert.pem", names[0]));
        let key_path = dir.join(format!("{}-key.pem", names[0]));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }

    /// Issues a client certificate whose subjectAltName is the email
    /// address `address` (what SASL EXTERNAL authenticates as) and writes
    /// it with its key to `dir`; returns (cert, key) paths.
    pub fn issue_client(&self, address: &str, dir: &Path) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(
            address.to_owned().try_into().expect("IA5 address"),
        )];
        params
            .distinguished_name
            .push(DnType::CommonName, address.to_owned());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        let cert_path = dir.join(format!("client-{address}-cert.pem"));
        let key_path = dir.join(format!("client-{address}-key.pem"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }

    /// A client TLS configuration trusting this CA.
    pub fn client_config(&self, dir: &Path) -> Arc<rustls::ClientConfig> {
        imxp_client::tls::client_config_from_ca_file(&self.write(dir)).expect("client config")
    }
}

/// How to set up one relay.
#[derive(Debug, Clone)]
pub struct RelaySpec {
    /// The domain it serves.
    pub domain: String,
    /// Names on its certificate (default: the domain).
    pub certificate_names: Vec<String>,
    /// Static routes `(domain, host:port)`.
    pub routes: Vec<(String, String)>,
    /// DNS servers for SRV routing.
    pub nameservers: Vec<SocketAddr>,
    /// Users `(name, password)`.
    pub users: Vec<(String, String)>,
    /// Extra TOML appended to the configuration (e.g. a `[queue]` table).
    pub extra: String,
    /// TLS on edge and mesh (default). Without it the relay has no
    /// certificate and runs `[tls] required = false` with `[mesh]
    /// insecure_unauthenticated_bind = true` (so `extra` must not hold a
    /// `[mesh]` table): plaintext sessions only (loopback tests that must
    /// see the bytes on the wire).
    pub tls: bool,
    /// More domains the relay serves besides `domain` (e.g. a gateway's).
    pub extra_domains: Vec<String>,
}

impl RelaySpec {
    /// A relay for `domain` with users `user@domain` for each name given,
    /// password `secret-NAME`.
    pub fn new(domain: &str, users: &[&str]) -> Self {
        Self {
            domain: domain.to_owned(),
            certificate_names: vec![domain.to_owned()],
            routes: Vec::new(),
            nameservers: Vec::new(),
            users: users
                .iter()
                .map(|u| (format!("{u}@{domain}"), format!("secret-{u}")))
                .collect(),
            extra: "[queue]\nmin_backoff = \"1s\"\nmax_backoff = \"2s\"\n".to_owned(),
            tls: true,
            extra_domains: Vec::new(),
        }
    }
}

/// A running relay.
pub struct TestRelay {
    /// Its domain.
    pub domain: String,
    /// Its edge listener.
    pub edge: SocketAddr,
    /// Its mesh listener.
    pub mesh: SocketAddr,
    /// Its state directory.
    pub dir: PathBuf,
    /// Whether its sessions use TLS ([`RelaySpec::tls`]).
    pub tls: bool,
    /// The configuration file.
    pub config_path: PathBuf,
    /// The spec it was started from (routes included), to start it again.
    pub spec: RelaySpec,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RelayError>>>,
    reload: Arc<server::Reload>,
}

/// Logs to stderr when `IMXP_TEST_LOG` is set (a tracing filter, e.g.
/// `info` or `imxp_relay=debug`).
pub fn init_logging() {
    if let Ok(filter) = std::env::var("IMXP_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Binds loopback listeners on free ports.
pub async fn loopback_listener() -> TcpListener {
    // The relay's own backlog (imxpd binds its listeners the same way).
    server::listen("127.0.0.1:0".parse().expect("address")).expect("bind")
}

/// Writes the configuration of `spec` into `dir` (certificate, users).
pub fn write_config(spec: &RelaySpec, ca: &TestCa, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("state dir");
    let names: Vec<&str> = spec.certificate_names.iter().map(String::as_str).collect();
    let tls = if spec.tls {
        let (cert, key) = ca.issue(&names, dir);
        let ca_path = ca.write(dir);
        format!(
            "[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\nca = \"{ca}\"\n",
            cert = cert.display(),
            key = key.display(),
            ca = ca_path.display(),
        )
    } else {
        "[tls]\nrequired = false\n[mesh]\ninsecure_unauthenticated_bind = true\n".to_owned()
    };
    let routes: String = spec
        .routes
        .iter()
        .map(|(domain, target)| format!("\"{domain}\" = \"{target}\"\n"))
        .collect();
    let nameservers: Vec<String> = spec
        .nameservers
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect();
    let text = format!(
        "[relay]\ndomains = [\"{domain}\"{more}]\nstate_dir = \"{dir}\"\n\
         [listen]\nedge = [\"127.0.0.1:0\"]\nmesh = [\"127.0.0.1:0\"]\n\
         {tls}\
         [dns]\nnameservers = [{ns}]\ntimeout = \"2s\"\n\
         [routes]\n{routes}\n{extra}",
        domain = spec.domain,
        more = spec
            .extra_domains
            .iter()
            .map(|d| format!(", \"{d}\""))
            .collect::<String>(),
        dir = dir.display(),
        ns = nameservers.join(", "),
        extra = spec.extra,
    );
    let path = dir.join("imxpd.toml");
    std::fs::write(&path, text).expect("write config");
    let config = Config::load(&path).expect("valid test config");
    for (name, password) in &spec.users {
        if !imxp_relay::auth::list_users(&config.users)
            .unwrap_or_default()
            .contains(name)
        {
            imxp_relay::auth::add_user(&config.users, name, password).expect("add user");
        }
    }
    path
}

/// Starts relays `a` and `b` in `base/a` and `base/b`, each with a static
/// route to the other's domain at the other's mesh listener.
pub async fn start_pair(
    base: &Path,
    ca: &TestCa,
    a: RelaySpec,
    b: RelaySpec,
) -> (TestRelay, TestRelay) {
    let b_mesh = loopback_listener().await;
    let b_route = b_mesh.local_addr().expect("mesh address");
    start_pair_via(base, ca, a, b, b_mesh, b_route).await
}

/// [`start_pair`] with B's mesh listener `b_mesh` given, and A's route to
/// B pointing at `b_route` (e.g. a proxy in front of `b_mesh`).
pub async fn start_pair_via(
    base: &Path,
    ca: &TestCa,
    mut a: RelaySpec,
    mut b: RelaySpec,
    b_mesh: TcpListener,
    b_route: SocketAddr,
) -> (TestRelay, TestRelay) {
    let a_mesh = loopback_listener().await;
    a.routes.push((b.domain.clone(), b_route.to_string()));
    b.routes.push((
        a.domain.clone(),
        a_mesh.local_addr().expect("mesh address").to_string(),
    ));
    let relay_a = TestRelay::start(&a, ca, &base.join("a"), None, Some(a_mesh)).await;
    let relay_b = TestRelay::start(&b, ca, &base.join("b"), None, Some(b_mesh)).await;
    (relay_a, relay_b)
}

/// The `imxp` binary next to the running test's `deps/` directory, built
/// if it is not there yet (a workspace test run builds it anyway).
pub fn imxp_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_owned();
    let binary = profile_dir.join("imxp");
    if !binary.exists() {
        let target_dir = profile_dir.parent().expect("target directory");
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "imxp-client",
                "--bin",
                "imxp",
                "--target-dir",
            ])
            .arg(target_dir)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building imxp failed");
    }
    binary
}

impl TestRelay {
    /// Starts a relay from `spec` in `dir` on the given listeners (fresh
    /// loopback ones when `None`).
    pub async fn start(
        spec: &RelaySpec,
        ca: &TestCa,
        dir: &Path,
        edge: Option<TcpListener>,
        mesh: Option<TcpListener>,
    ) -> Self {
        init_logging();
        let config_path = write_config(spec, ca, dir);
        let config = Config::load(&config_path).expect("config");
        let edge = match edge {
            Some(listener) => listener,
            None => loopback_listener().await,
        };
        let mesh = match mesh {
            Some(listener) => listener,
            None => loopback_listener().await,
        };
        let edge_address = edge.local_addr().expect("edge address");
        let mesh_address = mesh.local_addr().expect("mesh address");
        let (stop, stopped) = oneshot::channel::<()>();
        let reload = Arc::new(server::Reload::new());
        let task = tokio::spawn(server::run_with_reload(
            config,
            Listeners {
                edge: vec![edge],
                mesh: vec![mesh],
            },
            async move {
                let _ = stopped.await;
            },
            reload.clone(),
        ));
        Self {
            domain: spec.domain.clone(),
            edge: edge_address,
            mesh: mesh_address,
            dir: dir.to_owned(),
            tls: spec.tls,
            config_path,
            spec: spec.clone(),
            stop: Some(stop),
            task: Some(task),
            reload,
        }
    }

    /// Asks the relay to reload its TLS material and users file (what
    /// SIGHUP does to `imxpd`) and returns once it has: the outcome says
    /// which parts were replaced and which kept their old value.
    pub async fn reload(&self) -> server::ReloadOutcome {
        let ticket = self.reload.request();
        self.reload.finished(ticket).await
    }

    /// Stops the relay gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("relay task").expect("relay ran");
        }
    }

    /// Connects an endpoint client as `user` and attaches as `endpoint`.
    pub async fn attach(
        &self,
        ca: &TestCa,
        user: &str,
        password: &str,
        endpoint: &str,
    ) -> Result<Attached, imxp_client::ClientError> {
        let client = imxp_client::Client::connect(imxp_client::ConnectOptions {
            relay: self.edge.to_string(),
            tls: self
                .tls
                .then(|| (ca.client_config(&self.dir), self.domain.clone())),
            user: user.to_owned(),
            password: password.to_owned(),
            mechanism: imxp_client::Mechanism::ScramSha256,
        })
        .await?;
        let attachment = client
            .attach(imxp_apex::Endpoint::parse(endpoint).expect("endpoint"))
            .await?;
        Ok(Attached {
            attachment,
            _client: client,
        })
    }
}

/// An attachment with the session it lives on (dropping the client ends
/// the session).
#[derive(Debug)]
pub struct Attached {
    attachment: imxp_client::Attachment,
    _client: imxp_client::Client,
}

impl std::ops::Deref for Attached {
    type Target = imxp_client::Attachment;

    fn deref(&self) -> &Self::Target {
        &self.attachment
    }
}

impl std::ops::DerefMut for Attached {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.attachment
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestRelay {
    /// The envelopes in the relay's spool, asked over its admin socket
    /// (what `imxp-spool list` shows).
    pub fn queued(&self) -> Vec<imxp_spool::Envelope> {
        let socket = self.dir.join(imxp_spool::admin::SOCKET_NAME);
        let mut client =
            imxp_spool::admin::Client::connect(&socket, std::time::Duration::from_secs(10))
                .expect("admin socket");
        match client
            .call(&imxp_spool::admin::Request::List {
                filter: imxp_spool::admin::Filter::default(),
            })
            .expect("admin call")
        {
            imxp_spool::admin::Response::Ok(imxp_spool::admin::Reply::List { envelopes }) => {
                envelopes
            }
            other => panic!("unexpected admin response {other:?}"),
        }
    }
}

impl TestRelay {
    /// [`TestRelay::attach`] with attach options (e.g. `attachOverride`).
    pub async fn attach_with(
        &self,
        ca: &TestCa,
        user: &str,
        password: &str,
        endpoint: &str,
        options: imxp_client::AttachOptions,
    ) -> Result<Attached, imxp_client::ClientError> {
        let client = imxp_client::Client::connect(imxp_client::ConnectOptions {
            relay: self.edge.to_string(),
            tls: Some((ca.client_config(&self.dir), self.domain.clone())),
            user: user.to_owned(),
            password: password.to_owned(),
            mechanism: imxp_client::Mechanism::ScramSha256,
        })
        .await?;
        let attachment = client
            .attach_with(
                imxp_apex::Endpoint::parse(endpoint).expect("endpoint"),
                options,
            )
            .await?;
        Ok(Attached {
            attachment,
            _client: client,
        })
    }
}
