//! The relay server in the mini-redis manner: `run` takes bound listeners
//! and a shutdown future; it opens the spool, starts the scheduler, the
//! admin socket and one accept loop per listener (with a session limit),
//! and on shutdown stops accepting, lets sessions and deliveries finish,
//! and closes the spool.

use crate::access::Access;
use crate::attachments::Attachments;
use crate::auth::{EdgeSasl, FailurePolicy, Penalties};
use crate::config::{Config, SpoolEngine};
use crate::deliver::Deliverer;
use crate::hold::{self, Release};
use crate::limits::SessionLimits;
use crate::outbound::Outbound;
use crate::qmgr::Scheduler;
use crate::report::Reporter;
use crate::route::{DnsSettings, Router};
use crate::{edge, mesh, tls};
use imxp_spool::{EngineKind, HoldPolicy, RetryPolicy, Spool, SpoolConfig};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the relay could not start or stopped.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The state directory, a listener or the admin socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The spool could not be opened.
    #[error("spool: {0}")]
    Spool(#[from] imxp_spool::SpoolError),
    /// TLS material could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// The users file could not be loaded.
    #[error("auth: {0}")]
    Auth(#[from] crate::auth::AuthError),
    /// The router could not be set up.
    #[error("routing: {0}")]
    Route(#[from] crate::route::RouteError),
    /// The access entries could not be read.
    #[error("access entries: {0}")]
    Access(String),
}

/// Bound listening sockets.
#[derive(Debug, Default)]
pub struct Listeners {
    /// apex-edge listeners (endpoints attach here).
    pub edge: Vec<TcpListener>,
    /// apex-mesh listeners (other relays bind here).
    pub mesh: Vec<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of `config`.
    pub async fn bind(config: &Config) -> Result<Self, RelayError> {
        let mut listeners = Self::default();
        for address in &config.edge {
            listeners.edge.push(bind(*address).await?);
        }
        for address in &config.mesh {
            listeners.mesh.push(bind(*address).await?);
        }
        Ok(listeners)
    }

    /// Takes over sockets a service manager bound (socket activation).
    pub fn from_inherited(inherited: crate::activation::Inherited) -> Result<Self, RelayError> {
        let adopt = |listener: std::net::TcpListener| {
            let address = listener.local_addr().ok();
            TcpListener::from_std(listener).map_err(|source| RelayError::Io {
                what: format!("adopting the inherited socket {address:?}"),
                source,
            })
        };
        Ok(Self {
            edge: inherited
                .edge
                .into_iter()
                .map(adopt)
                .collect::<Result<_, _>>()?,
            mesh: inherited
                .mesh
                .into_iter()
                .map(adopt)
                .collect::<Result<_, _>>()?,
        })
    }
}

async fn bind(address: std::net::SocketAddr) -> Result<TcpListener, RelayError> {
    listen(address).map_err(|source| {
        let what = match crate::activation::bind_hint(&source, address) {
            Some(hint) => format!("listening on {address} ({hint})"),
            None => format!("listening on {address}"),
        };
        RelayError::Io { what, source }
    })
}

/// Connections the kernel queues for `accept`: a burst of this many is
/// answered (greeted or refused with 421) rather than left hanging in a
/// full queue (the kernel caps it at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 1024;

/// A listening socket on `address` with [`LISTEN_BACKLOG`] (and
/// `SO_REUSEADDR`, so that a restarted relay can bind at once).
pub fn listen(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// TLS configurations derived from `[tls]` and `[auth] client_ca`.
pub(crate) struct TlsMaterial {
    /// For edge sessions: client certificates asked (optional) and
    /// verified against `[auth] client_ca` when it is set, else not asked.
    pub(crate) edge: Option<Arc<rustls::ServerConfig>>,
    /// For mesh sessions: client certificates verified against `[tls] ca`.
    pub(crate) mesh: Option<Arc<rustls::ServerConfig>>,
    /// For outbound mesh sessions: `[tls] ca` roots, our certificate.
    pub(crate) client: Arc<rustls::ClientConfig>,
}

impl TlsMaterial {
    fn load(config: &Config) -> Result<Self, RelayError> {
        let error = |e: tls::TlsError| RelayError::Tls(e.to_string());
        let roots = tls::load_roots(config.tls.ca.as_deref()).map_err(error)?;
        let edge_client_auth = match &config.client_ca {
            Some(path) => tls::ClientAuth::Optional(tls::load_roots(Some(path)).map_err(error)?),
            None => tls::ClientAuth::None,
        };
        let ours = match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => Some((
                tls::load_chain(cert).map_err(error)?,
                tls::load_key(key).map_err(error)?,
            )),
            _ => None,
        };
        let (edge, mesh) = match &ours {
            Some((chain, key)) => (
                Some(
                    tls::server_config(chain.clone(), key.clone_key(), edge_client_auth)
                        .map_err(error)?,
                ),
                Some(
                    tls::server_config(
                        chain.clone(),
                        key.clone_key(),
                        tls::ClientAuth::Optional(roots.clone()),
                    )
                    .map_err(error)?,
                ),
            ),
            None => (None, None),
        };
        let client = tls::client_config(roots, ours).map_err(error)?;
        Ok(Self { edge, mesh, client })
    }
}

/// The TLS material in force; [`TlsStore::reload`] swaps it atomically.
/// A session takes the current material once, when it starts, and keeps
/// it: a reload affects only later sessions.
pub(crate) struct TlsStore(RwLock<Arc<TlsMaterial>>);

impl TlsStore {
    fn new(material: TlsMaterial) -> Self {
        Self(RwLock::new(Arc::new(material)))
    }

    /// The material in force.
    pub(crate) fn current(&self) -> Arc<TlsMaterial> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads every file; on error nothing changes.
    fn reload(&self, config: &Config) -> Result<(), RelayError> {
        let fresh = Arc::new(TlsMaterial::load(config)?);
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

/// State shared by every task of a running relay.
pub(crate) struct Relay {
    pub(crate) config: Config,
    pub(crate) spool: Spool,
    pub(crate) attachments: Attachments,
    /// Releases held datagrams when their endpoint attaches.
    pub(crate) release: Release,
    pub(crate) tls: Arc<TlsStore>,
    pub(crate) sasl: EdgeSasl,
    /// Failed-authentication scores per peer address.
    pub(crate) penalties: Arc<Penalties>,
    pub(crate) access: Access,
    next_session: AtomicU64,
}

impl Relay {
    /// Re-reads the TLS material and the users file (SIGHUP). Each part
    /// that fails to load is logged and keeps its old value.
    fn reload(&self) {
        match self.tls.reload(&self.config) {
            Ok(()) => tracing::info!("TLS certificates, keys and trust anchors reloaded"),
            Err(error) => tracing::error!(%error, "TLS reload failed; keeping the old material"),
        }
        match self.sasl.reload() {
            Ok(users) => tracing::info!(users, "users file reloaded"),
            Err(error) => tracing::error!(%error, "users reload failed; keeping the old users"),
        }
    }

    /// A new session number (attachments are owned by sessions).
    pub(crate) fn session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// The BEEP settings of an inbound session (edge or mesh): the APEX
    /// profile, after TLS when it is required, and `[limits]`.
    pub(crate) fn inbound_session(&self) -> imxp_beep::Config {
        let limits = &self.config.limits;
        let mut config = imxp_beep::Config::new(imxp_beep::Role::Listener);
        config.profiles = vec![crate::datagram::APEX_PROFILE.to_owned()];
        config.profiles_require_tls = self.config.tls.required;
        config.max_message_size = self.config.max_message_size;
        config.receive_window = limits.window;
        config.max_channels = limits.max_channels;
        config.max_outstanding = limits.max_outstanding_per_channel;
        config.greeting_timeout = Some(limits.greeting_timeout);
        config.idle_timeout = limits.idle_timeout;
        config
    }

    /// The driver settings around `session`, with `tls` as server side.
    pub(crate) fn inbound_driver(
        &self,
        session: imxp_beep::Config,
        tls: Option<&Arc<rustls::ServerConfig>>,
    ) -> imxp_beep::io::DriverConfig {
        let mut driver = imxp_beep::io::DriverConfig::new(session);
        if let Some(tls) = tls {
            driver.tls = imxp_beep::io::TlsSetup::Server(tls.clone());
        }
        driver.handshake_timeout = Some(self.config.limits.handshake_timeout);
        driver
    }
}

/// Runs the relay until `shutdown` completes, reloading certificates, keys
/// and the users file on SIGHUP (see [`run_with_reload`]).
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    let reload = Arc::new(Notify::new());
    let forward = sighup_forwarder(reload.clone())?;
    let result = run_with_reload(config, listeners, shutdown, reload).await;
    forward.abort();
    result
}

/// Forwards SIGHUP to `reload`.
fn sighup_forwarder(reload: Arc<Notify>) -> Result<tokio::task::JoinHandle<()>, RelayError> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|source| RelayError::Io {
            what: "installing the SIGHUP handler".into(),
            source,
        })?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            reload.notify_one();
        }
    }))
}

/// Runs the relay until `shutdown` completes; each notification of
/// `reload` re-reads the TLS material (certificates, keys, trust anchors)
/// and the users file. Sessions already open are not touched; a part that
/// fails to load is logged and keeps its old value.
pub async fn run_with_reload(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    reload: Arc<Notify>,
) -> Result<(), RelayError> {
    std::fs::create_dir_all(&config.state_dir).map_err(|source| RelayError::Io {
        what: format!("creating {}", config.state_dir.display()),
        source,
    })?;
    // Opening may block on the spool's committer (resuming claims left in
    // flight by a crash): keep it off the runtime's threads.
    let spool_dir = config.state_dir.join("spool");
    let spool_config = SpoolConfig {
        engine: match config.spool_engine {
            SpoolEngine::Redb => EngineKind::Redb,
            SpoolEngine::Sled => EngineKind::Sled,
        },
        retry: RetryPolicy {
            min_backoff_ms: config.queue.min_backoff.as_millis() as u64,
            max_backoff_ms: config.queue.max_backoff.as_millis() as u64,
            jitter: 0.2,
            max_lifetime_ms: config.queue.max_lifetime.as_millis() as u64,
        },
        hold: HoldPolicy {
            max_per_endpoint: Some(config.hold.max_per_endpoint),
            max_bytes_per_endpoint: Some(config.hold.max_bytes_per_endpoint),
            default_ttl_ms: Some(config.hold.default_ttl.as_millis() as u64),
        },
        ..SpoolConfig::default()
    };
    let spool = tokio::task::spawn_blocking(move || Spool::open(spool_dir, spool_config))
        .await
        .map_err(|e| RelayError::Io {
            what: "opening the spool".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
    let report = spool.open_report();
    tracing::info!(
        spool = %spool.dir().display(),
        created = report.created,
        resumed = report.resumed,
        "spool open"
    );
    let access = Access::open(&config.state_dir, &config.access)
        .map_err(|e| RelayError::Access(e.to_string()))?;
    let tls = Arc::new(TlsStore::new(TlsMaterial::load(&config)?));
    let sasl = EdgeSasl::open(&config.users)?
        .allow_plain_without_tls(!config.tls.required)
        .allow_anonymous(config.anonymous_read_only);
    let router = Router::new(
        config.domains.clone(),
        config.routes.clone(),
        DnsSettings {
            nameservers: config.nameservers.clone(),
            implicit_fallback: config.implicit_fallback,
            timeout: config.dns_timeout,
            ..DnsSettings::default()
        },
    )?;
    let outbound = Outbound::new(
        tls.clone(),
        config.tls.required,
        config.domains.clone(),
        config.queue.connect_timeout,
        config.max_message_size,
    );
    let relay = Arc::new(Relay {
        spool: spool.clone(),
        attachments: Attachments::default(),
        release: Release::default(),
        tls,
        sasl,
        penalties: Arc::new(Penalties::new(FailurePolicy::default())),
        access,
        next_session: AtomicU64::new(1),
        config,
    });
    let reporter = Arc::new(Reporter::new(relay.clone()));
    let deliverer = Arc::new(Deliverer::new(
        relay.clone(),
        router,
        outbound,
        reporter.clone(),
    ));
    let scheduler = Scheduler::new(
        spool.clone(),
        deliverer.clone(),
        reporter,
        relay.config.queue.max_in_flight,
        relay.config.queue.max_per_destination,
    );

    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let sessions = Arc::new(SessionLimits::new(&relay.config));
    tasks.spawn(scheduler.run(stop.clone()));
    tasks.spawn(hold::run(relay.clone(), deliverer, stop.clone()));
    tasks.spawn(prune_dedup(spool.clone(), stop.clone()));
    let admin_path = relay.config.state_dir.join(imxp_spool::admin::SOCKET_NAME);
    let admin = imxp_spool::admin::bind(&admin_path).map_err(|source| RelayError::Io {
        what: format!("admin socket {}", admin_path.display()),
        source,
    })?;
    tasks.spawn(imxp_spool::admin::serve(
        admin,
        imxp_spool::admin::Handler::new(spool.clone()),
        stop.clone().cancelled_owned(),
    ));
    for (listener, kind) in listeners
        .edge
        .into_iter()
        .map(|l| (l, Kind::Edge))
        .chain(listeners.mesh.into_iter().map(|l| (l, Kind::Mesh)))
    {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(%address, kind = kind.name(), "listening");
        }
        tasks.spawn(accept_loop(
            listener,
            kind,
            relay.clone(),
            sessions.clone(),
            stop.clone(),
            tasks.clone(),
        ));
    }
    {
        let relay = relay.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = reload.notified() => relay.reload(),
                    () = stop.cancelled() => return,
                }
            }
        });
    }
    shutdown.await;
    tracing::info!("shutting down");
    stop.cancel();
    tasks.close();
    if tokio::time::timeout(Duration::from_secs(30), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some sessions did not end within 30 s");
    }
    Ok(())
}

/// Forgets dedup entries older than the spool's window, every ten minutes.
async fn prune_dedup(spool: Spool, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = every.tick() => match spool.prune_dedup().await {
                Ok(0) => {}
                Ok(pruned) => tracing::debug!(pruned, "dedup entries pruned"),
                Err(error) => tracing::warn!(%error, "pruning the dedup index failed"),
            },
            () = stop.cancelled() => return,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Edge,
    Mesh,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Edge => "edge",
            Self::Mesh => "mesh",
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    relay: Arc<Relay>,
    sessions: Arc<SessionLimits>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let permit = match sessions.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                sessions.refuse(stream, peer, refusal, &tasks);
                continue;
            }
        };
        let relay = relay.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let session = relay.session_id();
            tracing::debug!(%peer, session, kind = kind.name(), "session opened");
            match kind {
                Kind::Edge => edge::serve(stream, peer, relay.clone(), session, stop).await,
                Kind::Mesh => mesh::serve(stream, relay.clone(), session, stop).await,
            }
            relay.attachments.end(session, None);
            tracing::debug!(%peer, session, "session closed");
            drop(permit);
        });
    }
}
