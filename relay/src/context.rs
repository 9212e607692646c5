//! The state every part of a running relay shares: its configuration, the
//! clock, the [`Intake`] handle (the only way to add a datagram to the
//! spool), which endpoints are attached where, the hold releases waiting
//! to run, TLS material, SASL, the access entries, the presence state.
//!
//! This module sits at the bottom of the relay's module graph: it imports
//! none of the modules that use it (listeners, intake users, delivery, the
//! dispatcher, the server that wires them), and it holds no spool handle.
//! Code that has a [`Context`] can queue new datagrams through
//! [`Context::intake`] and nothing else of the spool.

use crate::access::Access;
use crate::attachments::{AttachmentEvent, Attachments};
use crate::auth::{EdgeSasl, Penalties};
use crate::config::{Config, Live};
use crate::hold::Release;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::tls::TlsStore;
use imxp_spool::Clock;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// State shared by every task of a running relay.
pub(crate) struct Context {
    /// The configuration in force (replaced on reload).
    config: Arc<Live>,
    /// The clock the spool uses too (queue times, `dataTiming`).
    pub(crate) clock: Clock,
    /// The one path into the spool.
    pub(crate) intake: Intake,
    /// Which endpoints are attached where.
    pub(crate) attachments: Attachments,
    /// Releases of held datagrams, requested when an endpoint attaches.
    pub(crate) release: Release,
    /// TLS material in force (swapped on reload).
    pub(crate) tls: Arc<TlsStore>,
    /// SASL for edge sessions (users file).
    pub(crate) sasl: EdgeSasl,
    /// Failed-authentication scores per peer address.
    pub(crate) penalties: Arc<Penalties>,
    /// The access entries (RFC 3341).
    pub(crate) access: Access,
    /// The presence service's state (RFC 3343).
    pub(crate) presence: Presence,
    /// The metrics registry.
    pub(crate) metrics: Arc<Metrics>,
    next_session: AtomicU64,
    /// Set when the relay drains (SIGTERM): new datagrams get 421.
    draining: AtomicBool,
}

/// How one reload (SIGHUP, or a test asking for one) went, part by part. A part that
/// failed to load keeps its old value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// The configuration file: applied, with the keys whose new value
    /// needs a restart (their running value stays), or why it was refused
    /// (the error names the key; nothing else was reloaded then).
    pub config: Result<Vec<String>, String>,
    /// The TLS material: replaced, or why it was kept.
    pub tls: Result<(), String>,
    /// The users file: how many users it has now, or why it was kept.
    pub users: Result<usize, String>,
}

impl ReloadOutcome {
    /// Whether every part was replaced.
    pub fn succeeded(&self) -> bool {
        self.config.is_ok() && self.tls.is_ok() && self.users.is_ok()
    }

    /// A reload refused because the configuration is not valid: `why`.
    pub(crate) fn refused(why: String) -> Self {
        Self {
            config: Err(why.clone()),
            tls: Err(why.clone()),
            users: Err(why),
        }
    }
}

/// The parts a [`Context`] is made of (see its fields).
pub(crate) struct Parts {
    pub(crate) config: Arc<Live>,
    pub(crate) clock: Clock,
    pub(crate) intake: Intake,
    pub(crate) tls: Arc<TlsStore>,
    pub(crate) sasl: EdgeSasl,
    pub(crate) penalties: Arc<Penalties>,
    pub(crate) access: Access,
    pub(crate) presence: Presence,
    /// Where attach and detach events go (the presence service's task).
    pub(crate) attachment_events: tokio::sync::mpsc::UnboundedSender<AttachmentEvent>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Context {
    /// A context with nothing attached and no release requested.
    pub(crate) fn new(parts: Parts) -> Self {
        Self {
            config: parts.config,
            clock: parts.clock,
            intake: parts.intake,
            attachments: Attachments::with_events(parts.attachment_events),
            release: Release::default(),
            tls: parts.tls,
            sasl: parts.sasl,
            penalties: parts.penalties,
            access: parts.access,
            presence: parts.presence,
            metrics: parts.metrics,
            next_session: AtomicU64::new(1),
            draining: AtomicBool::new(false),
        }
    }

    /// The configuration in force now (a reload replaces it as a whole).
    pub(crate) fn config(&self) -> Arc<Config> {
        self.config.get()
    }

    /// Milliseconds since the UNIX epoch, by the spool's clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Puts `config` in force (a reload that validated it): the access
    /// defaults, the TLS material and the users file follow it. Each of
    /// the last two that fails to load is logged and keeps its old value.
    /// `restart` names the keys whose change waits for a restart.
    pub(crate) fn apply(&self, config: Arc<Config>, restart: Vec<String>) -> ReloadOutcome {
        self.access.set_policy(&config.access);
        self.config.set(config.clone());
        let tls = match self.tls.reload(&config) {
            Ok(()) => {
                tracing::info!("TLS certificates, keys and trust anchors reloaded");
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "TLS reload failed; keeping the old material");
                Err(error.to_string())
            }
        };
        let users = match self.sasl.reload() {
            Ok(users) => {
                tracing::info!(users, "users file reloaded");
                Ok(users)
            }
            Err(error) => {
                tracing::error!(%error, "users reload failed; keeping the old users");
                Err(error.to_string())
            }
        };
        tracing::info!(needs_restart = ?restart, "configuration reloaded");
        self.count_reload(ReloadOutcome {
            config: Ok(restart),
            tls,
            users,
        })
    }

    /// Counts `outcome` in `imxp_config_reloads_total` and returns it.
    pub(crate) fn count_reload(&self, outcome: ReloadOutcome) -> ReloadOutcome {
        let result = if outcome.config.is_ok() {
            "applied"
        } else {
            "refused"
        };
        self.metrics
            .reloads
            .get_or_create(&crate::metrics::label("result", result))
            .inc();
        outcome
    }

    /// From now on, `data` on open sessions is refused with 421: the relay
    /// drains.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the relay drains.
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// A new session number (attachments are owned by sessions).
    pub(crate) fn session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// The BEEP settings of an inbound session (edge or mesh): the APEX
    /// profile, after TLS when it is required, and `[limits]`.
    pub(crate) fn inbound_session(&self) -> imxp_beep::Config {
        let limits = &self.config().limits;
        let mut config = imxp_beep::Config::new(imxp_beep::Role::Listener);
        config.profiles = vec![crate::datagram::APEX_PROFILE.to_owned()];
        config.profiles_require_tls = self.config().tls.required;
        config.max_message_size = self.config().max_message_size;
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
        driver.handshake_timeout = Some(self.config().limits.handshake_timeout);
        driver
    }
}
