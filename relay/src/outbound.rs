//! Outbound mesh sessions: one pooled BEEP session per destination domain,
//! TLS-tuned (the listener's certificate must name the destination
//! domain), with an APEX channel bound as our domains (RFC 3340 §4.4.2).
//! Many `data` are pipelined on it; a broken session is dropped and the
//! next delivery reconnects.

use crate::datagram;
use crate::route::Target;
use imxp_beep::io::{ChannelHandle, Connection, DriverConfig, TlsSetup};
use imxp_beep::{Config as SessionConfig, Profile, Role};
use imxp_spool::{Failure, FailureKind};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// An established session and its bound APEX channel.
struct Pooled {
    connection: Connection,
    channel: ChannelHandle,
    via: String,
}

/// The pool.
pub(crate) struct Outbound {
    /// Per destination: a slot that serializes connecting.
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Pooled>>>>>,
    tls: Arc<crate::tls::TlsStore>,
    tls_required: bool,
    bind_as: Vec<String>,
    connect_timeout: Duration,
    /// Of new sessions (a reload may change it).
    max_message_size: std::sync::atomic::AtomicUsize,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Outbound {
    pub(crate) fn new(
        tls: Arc<crate::tls::TlsStore>,
        tls_required: bool,
        bind_as: Vec<String>,
        connect_timeout: Duration,
        max_message_size: usize,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            tls,
            tls_required,
            bind_as,
            connect_timeout,
            max_message_size: std::sync::atomic::AtomicUsize::new(max_message_size),
            metrics,
        }
    }

    /// Puts `max_message_size` in force for sessions opened from now on.
    pub(crate) fn set_max_message_size(&self, max_message_size: usize) {
        self.max_message_size
            .store(max_message_size, std::sync::atomic::Ordering::Relaxed);
    }

    /// A bound APEX channel to `domain`'s relay, reusing a live session.
    /// Returns the channel and the host it goes to.
    pub(crate) async fn channel(
        &self,
        domain: &str,
        targets: &[Target],
    ) -> Result<(ChannelHandle, String), Failure> {
        let slot = self
            .slots
            .lock()
            .entry(domain.to_owned())
            .or_default()
            .clone();
        let mut pooled = slot.lock().await;
        if let Some(existing) = pooled.as_ref()
            && existing.connection.state().ended.is_none()
        {
            return Ok((existing.channel.clone(), existing.via.clone()));
        }
        *pooled = None;
        let mut last = Failure::new(FailureKind::Connect, format!("no address for {domain}"));
        for target in targets {
            for address in &target.addresses {
                let via = format!("{}[{}]:{}", target.host, address, target.port);
                match tokio::time::timeout(
                    self.connect_timeout,
                    self.establish(domain, (*address, target.port).into()),
                )
                .await
                {
                    Ok(Ok((connection, channel))) => {
                        tracing::debug!(%domain, %via, "mesh session established");
                        let handle = channel.clone();
                        *pooled = Some(Pooled {
                            connection,
                            channel,
                            via: via.clone(),
                        });
                        return Ok((handle, via));
                    }
                    Ok(Err(failure)) => {
                        tracing::debug!(%domain, %via, %failure, "mesh connect failed");
                        last = failure;
                    }
                    Err(_) => {
                        last = Failure::new(
                            FailureKind::Connect,
                            format!("{via}: timed out after {:?}", self.connect_timeout),
                        );
                    }
                }
            }
        }
        Err(last)
    }

    /// Forgets the session to `domain` (after a transport failure).
    pub(crate) fn drop_session(&self, domain: &str) {
        self.slots.lock().remove(domain);
    }

    async fn establish(
        &self,
        domain: &str,
        address: std::net::SocketAddr,
    ) -> Result<(Connection, ChannelHandle), Failure> {
        let connect =
            |e: std::io::Error| Failure::new(FailureKind::Connect, format!("{address}: {e}"));
        let stream = TcpStream::connect(address).await.map_err(connect)?;
        stream.set_nodelay(true).map_err(connect)?;
        let mut session = SessionConfig::new(Role::Initiator);
        session.max_message_size = self
            .max_message_size
            .load(std::sync::atomic::Ordering::Relaxed);
        session.receive_window = 256 * 1024;
        let mut driver = DriverConfig::new(session);
        // The listener's certificate must name the destination domain
        // (RFC 3340 §3.5), checked by rustls against `[tls] ca`.
        let server_name = crate::tls::server_name(domain)
            .map_err(|e| Failure::new(FailureKind::Tls, e.to_string()))?;
        driver.tls = TlsSetup::Client {
            config: self.tls.current().client.clone(),
            server_name,
        };
        let (connection, _incoming, _task) = Connection::spawn(stream, driver);
        let greeting = connection
            .greeting(1)
            .await
            .map_err(|e| Failure::new(FailureKind::Connect, format!("{address}: {e}")))?;
        let offers_tls = greeting
            .profiles
            .iter()
            .any(|p| p == imxp_beep::tuning::tls::TLS_URI);
        if offers_tls {
            if let Err(error) = connection.start_tls().await {
                self.metrics
                    .tls_failures
                    .get_or_create(&crate::metrics::label("direction", "outbound"))
                    .inc();
                return Err(Failure::new(
                    FailureKind::Tls,
                    format!("{address}: {error}"),
                ));
            }
        } else if self.tls_required {
            let _ = connection.release().await;
            return Err(Failure::new(
                FailureKind::Tls,
                format!("{address} does not offer TLS, which is required"),
            ));
        }
        let first = self.bind_as.first().cloned().unwrap_or_default();
        let channel = connection
            .open_channel(
                vec![Profile::with_init(
                    datagram::APEX_PROFILE,
                    datagram::bind_init(&first, 1),
                )],
                None,
            )
            .await
            .map_err(|e| Failure::new(FailureKind::Connect, format!("{address}: {e}")))?;
        datagram::check_init_reply(channel.init()).map_err(|e| {
            Failure::new(
                FailureKind::Reply { code: e.code.0 },
                format!("bind {first}: {}", e.text),
            )
        })?;
        let handle = channel.handle();
        for (index, domain) in self.bind_as.iter().enumerate().skip(1) {
            let reply = handle
                .request(bytes::Bytes::from(datagram::bind_payload(
                    domain,
                    index as u32 + 1,
                )))
                .await
                .map_err(|e| Failure::new(FailureKind::Connect, format!("{address}: {e}")))?;
            datagram::check_response(&reply).map_err(|e| {
                Failure::new(
                    FailureKind::Reply { code: e.code.0 },
                    format!("bind {domain}: {}", e.text),
                )
            })?;
        }
        // Keep the receiving side of the channel alive: a relay may send us
        // `terminate` on it; we answer anything unexpected with an error.
        tokio::spawn(datagram::drain_outbound_channel(channel));
        Ok((connection, handle))
    }
}
