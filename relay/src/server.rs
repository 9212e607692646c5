//! The relay server in the mini-redis manner: [`run`] takes bound
//! listeners and a shutdown future. This module only wires the parts
//! together and runs them: it opens the spool, builds the shared
//! `Context` (with the intake handle), the reporter, the deliverer and
//! the dispatcher, starts the admin socket and one accept loop per
//! listener, and on shutdown stops accepting, lets sessions and
//! deliveries finish, and closes the spool.

use crate::access::Access;
use crate::auth::{EdgeSasl, FailurePolicy, Penalties};
use crate::config::{Config, SpoolEngine};
use crate::context::{Context, Parts};
use crate::deliver::Deliverer;
use crate::gateway::Gateways;
use crate::intake::Intake;
use crate::listen::{self, admission::Admission, edge::Edge, mesh::Mesh};
use crate::metrics::{self, Metrics, QueueShape};
use crate::notify;
use crate::outbound::Outbound;
use crate::presence::{self, Presence, SpoolStore};
use crate::qmgr::Dispatcher;
use crate::report::Reporter;
use crate::route::{DnsSettings, Router};
use crate::tls::{TlsMaterial, TlsStore};
use imxp_spool::{Clock, CommitObserver, EngineKind, HoldPolicy, RetryPolicy, Spool, SpoolConfig};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
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
    /// The presence state could not be loaded.
    #[error("presence state: {0}")]
    Presence(String),
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

/// Runs the relay until `shutdown` completes, reloading certificates, keys
/// and the users file on SIGHUP (see [`run_with_reload`]).
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    let reload = Arc::new(Reload::new());
    let forward = sighup_forwarder(reload.clone())?;
    let result = run_with_reload(config, listeners, shutdown, reload).await;
    forward.abort();
    result
}

/// Forwards SIGHUP to `reload`.
fn sighup_forwarder(reload: Arc<Reload>) -> Result<tokio::task::JoinHandle<()>, RelayError> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|source| RelayError::Io {
            what: "installing the SIGHUP handler".into(),
            source,
        })?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            reload.request();
        }
    }))
}

pub use crate::context::ReloadOutcome;

/// The reload switch of a running relay (what SIGHUP pulls): a
/// [`Reload::request`] makes the relay re-read its TLS material and users
/// file, and [`Reload::finished`] waits until a reload that began after
/// the request has completed, with its [`ReloadOutcome`].
///
/// Requests made while a reload runs are served together by the next one.
#[derive(Debug)]
pub struct Reload {
    /// Requests made so far (each request's ticket).
    requested: AtomicU64,
    /// Wakes the relay's reload task.
    wake: Notify,
    /// The highest ticket the last completed reload covers, and its
    /// outcome (`None` before the first).
    done: watch::Sender<(u64, Option<ReloadOutcome>)>,
}

impl Default for Reload {
    fn default() -> Self {
        Self::new()
    }
}

impl Reload {
    /// A switch nobody has pulled yet.
    pub fn new() -> Self {
        Self {
            requested: AtomicU64::new(0),
            wake: Notify::new(),
            done: watch::Sender::new((0, None)),
        }
    }

    /// Asks for a reload; returns the request's ticket for
    /// [`Reload::finished`].
    pub fn request(&self) -> u64 {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        ticket
    }

    /// Waits until a reload that began after request `ticket` has
    /// completed, and returns its outcome. Never returns if the relay is
    /// not running.
    pub async fn finished(&self, ticket: u64) -> ReloadOutcome {
        let mut done = self.done.subscribe();
        let reached = done
            .wait_for(|(covered, _)| *covered >= ticket)
            .await
            .expect("the sender lives in self");
        reached
            .1
            .clone()
            .expect("a completed reload has an outcome")
    }

    /// Serves requests until `stop`: each wake-up runs one reload of
    /// `ctx` and `deliverer`, covering every request made before it began.
    async fn serve(
        &self,
        ctx: &Context,
        deliverer: &Deliverer,
        admission: &Admission,
        stop: &CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = self.wake.notified() => {
                    let covered = self.requested.load(Ordering::SeqCst);
                    let outcome = reload(ctx, deliverer, admission);
                    self.done.send_replace((covered, Some(outcome)));
                }
                () = stop.cancelled() => return,
            }
        }
    }
}

/// One reload (SIGHUP): reads the configuration file again; a file that
/// fails validation is refused (logged with the key, nothing changes).
/// Keys whose change needs a restart keep their running value and are
/// logged; the rest takes effect: routes and DNS (a new router),
/// limits (session admission and message size included), options, reports and the mesh policy (read from the
/// configuration in force by each new session, request and delivery),
/// access defaults, TLS material and users.
fn reload(ctx: &Context, deliverer: &Deliverer, admission: &Admission) -> ReloadOutcome {
    let running = ctx.config();
    let read = match &running.source {
        Some(path) => Config::load(path),
        None => Ok((*running).clone()),
    };
    let mut fresh = match read {
        Ok(fresh) => fresh,
        Err(error) => {
            tracing::error!(
                %error,
                "configuration reload refused; the running configuration stays"
            );
            return ctx.count_reload(ReloadOutcome::refused(error.to_string()));
        }
    };
    let restart = crate::config::keep_running(&running, &mut fresh);
    for key in &restart {
        tracing::warn!(
            key,
            "changed in the configuration file; needs restart (the running value stays)"
        );
    }
    match Router::new(
        fresh.domains.clone(),
        fresh.routes.clone(),
        dns_settings(&fresh),
    ) {
        Ok(router) => deliverer.set_router(router),
        Err(error) => {
            tracing::error!(%error, "configuration reload refused; the running configuration stays");
            return ctx.count_reload(ReloadOutcome::refused(format!("routes: {error}")));
        }
    }
    admission.set_limits(&fresh);
    deliverer.set_max_message_size(fresh.max_message_size);
    ctx.apply(
        Arc::new(fresh),
        restart.into_iter().map(str::to_owned).collect(),
    )
}

/// The DNS settings of `config`.
fn dns_settings(config: &Config) -> DnsSettings {
    DnsSettings {
        nameservers: config.nameservers.clone(),
        implicit_fallback: config.implicit_fallback,
        timeout: config.dns_timeout,
        ..DnsSettings::default()
    }
}

/// Runs the relay until `shutdown` completes; each [`Reload::request`] on
/// `reload` re-reads the configuration file (see `reload`): TLS material,
/// users, routes, limits and the rest. Sessions already open are not
/// touched; a file that fails validation changes nothing.
pub async fn run_with_reload(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    reload: Arc<Reload>,
) -> Result<(), RelayError> {
    std::fs::create_dir_all(&config.state_dir).map_err(|source| RelayError::Io {
        what: format!("creating {}", config.state_dir.display()),
        source,
    })?;
    // Opening may block on the spool's committer (resuming claims left in
    // flight by a crash): keep it off the runtime's threads.
    let spool_dir = config.state_dir.join("spool");
    let clock = Clock::system();
    let metrics = Arc::new(Metrics::new());
    // Bound before anything starts, so that a taken port stops the relay
    // at once with the key's address in the error.
    let metrics_listener = match config.metrics_listen {
        Some(address) => Some(bind(address).await?),
        None => None,
    };
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
        clock: clock.clone(),
        observer: Some({
            let metrics = metrics.clone();
            CommitObserver::new(move |sample| metrics.commit(sample))
        }),
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
    let tls = Arc::new(TlsStore::new(
        TlsMaterial::load(&config).map_err(|e| RelayError::Tls(e.to_string()))?,
    ));
    let sasl = EdgeSasl::open(&config.users)?
        .allow_plain_without_tls(!config.tls.required)
        .allow_anonymous(config.anonymous_read_only);
    let router = Router::new(
        config.domains.clone(),
        config.routes.clone(),
        dns_settings(&config),
    )?;
    let outbound = Outbound::new(
        tls.clone(),
        config.tls.required,
        config.domains.clone(),
        config.queue.connect_timeout,
        config.max_message_size,
        metrics.clone(),
    );
    let presence = Presence::open(
        Box::new(SpoolStore::new(spool.clone())),
        config.presence.clone(),
    )
    .map_err(|e| RelayError::Presence(e.to_string()))?;
    let (attachment_events, attachments) = tokio::sync::mpsc::unbounded_channel();
    let config = Arc::new(crate::config::Live::new(Arc::new(config)));
    let ctx = Arc::new(Context::new(Parts {
        intake: Intake::new(spool.clone(), config.clone(), metrics.clone()),
        clock,
        config,
        tls,
        sasl,
        penalties: Arc::new(Penalties::new(FailurePolicy::default())),
        access,
        presence,
        attachment_events,
        metrics: metrics.clone(),
    }));
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let gateways = Gateways::start(&ctx, &tasks, &stop);
    let reporter = Arc::new(Reporter::new(ctx.clone()));
    let deliverer = Arc::new(Deliverer::new(
        ctx.clone(),
        router,
        outbound,
        gateways,
        reporter.clone(),
    ));
    let dispatcher = Dispatcher::new(spool.clone(), ctx.clone(), deliverer.clone(), reporter);

    let dispatching = CancellationToken::new();
    let mut dispatcher = tokio::spawn(dispatcher.run(dispatching.clone()));
    let stops = listen::Stops {
        accepting: CancellationToken::new(),
        sessions: stop.clone(),
    };
    tasks.spawn(prune_dedup(spool.clone(), stop.clone()));
    tasks.spawn(presence::service::run(
        ctx.clone(),
        attachments,
        stop.clone(),
    ));
    let admin_path = ctx.config().state_dir.join(imxp_spool::admin::SOCKET_NAME);
    let admin = imxp_spool::admin::bind(&admin_path).map_err(|source| RelayError::Io {
        what: format!("admin socket {}", admin_path.display()),
        source,
    })?;
    tasks.spawn(imxp_spool::admin::serve(
        admin,
        imxp_spool::admin::Handler::new(spool.clone()),
        stop.clone().cancelled_owned(),
    ));
    if let Some(listener) = metrics_listener {
        tasks.spawn(metrics::http::serve(
            listener,
            metrics,
            scrape_refresh(spool.clone(), ctx.clone()),
            stop.clone(),
        ));
    }
    let admission = Arc::new(Admission::new(&ctx.config()));
    let (edge, mesh) = (Arc::new(Edge), Arc::new(Mesh));
    for listener in listeners.edge {
        let args = (ctx.clone(), admission.clone(), stops.clone(), tasks.clone());
        tasks.spawn(listen::accept_loop(
            listener,
            edge.clone(),
            args.0,
            args.1,
            args.2,
            args.3,
        ));
    }
    for listener in listeners.mesh {
        let args = (ctx.clone(), admission.clone(), stops.clone(), tasks.clone());
        tasks.spawn(listen::accept_loop(
            listener,
            mesh.clone(),
            args.0,
            args.1,
            args.2,
            args.3,
        ));
    }
    {
        let (ctx, deliverer, stop) = (ctx.clone(), deliverer.clone(), stop.clone());
        let admission = admission.clone();
        tasks.spawn(async move {
            reload.serve(&ctx, &deliverer, &admission, &stop).await;
        });
    }
    tasks.spawn(notify::watchdog(stop.clone()));
    notify::ready();
    tracing::info!("ready");
    shutdown.await;
    // The drain: no new sessions and no new datagrams (421); deliveries in
    // flight get `[relay] drain_timeout` to finish while the sessions stay
    // open (an endpoint answering a delivery needs its session); then the
    // sessions are released. Every datagram acknowledged is in the spool
    // already (each was committed before its `ok`); a delivery cut off by
    // the timeout is resumed at the next start.
    let drain_timeout = ctx.config().drain_timeout;
    tracing::info!(timeout = ?drain_timeout, "draining");
    notify::stopping();
    stops.accepting.cancel();
    ctx.start_draining();
    dispatching.cancel();
    match tokio::time::timeout(drain_timeout, &mut dispatcher).await {
        Ok(_) => tracing::info!("deliveries in flight finished"),
        Err(_) => {
            dispatcher.abort();
            tracing::warn!(
                timeout = ?drain_timeout,
                "deliveries still in flight at the drain timeout stay queued for the next start"
            );
        }
    }
    stop.cancel();
    tasks.close();
    if tokio::time::timeout(SESSION_RELEASE_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "some sessions did not end within {} s",
            SESSION_RELEASE_TIMEOUT.as_secs()
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// Time the sessions get to be released at the end of a drain.
const SESSION_RELEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// What runs before each scrape: the queue gauges from a scan of the
/// spool's envelopes, and the count of attached endpoints.
fn scrape_refresh(spool: Spool, ctx: Arc<Context>) -> Arc<dyn Fn(&Metrics) + Send + Sync> {
    Arc::new(move |metrics: &Metrics| {
        match QueueShape::scan(&spool) {
            Ok(shape) => metrics.set_queue(&shape),
            Err(error) => tracing::warn!(%error, "scanning the spool for metrics failed"),
        }
        metrics
            .attachments
            .get_or_create(&metrics::label("kind", "edge"))
            .set(i64::try_from(ctx.attachments.count()).unwrap_or(i64::MAX));
    })
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
