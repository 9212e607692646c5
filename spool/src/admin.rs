//! The online admin protocol: what `imxp-spool` sends to the running relay
//! over its Unix socket, and the server side the relay wires to it.
//!
//! # Wire format
//!
//! One JSON object per line (UTF-8, `\n`-terminated), at most
//! [`MAX_REQUEST`] bytes: the client writes a [`Request`], the server
//! answers one [`Response`] line; a connection may carry several requests
//! in turn. The socket is created `0600` in the state directory
//! ([`bind`]); only its owner (and root) can connect.
//!
//! # Relay side
//!
//! ```no_run
//! # async fn run(spool: imxp_spool::Spool) -> std::io::Result<()> {
//! let listener = imxp_spool::admin::bind(std::path::Path::new("/var/lib/imxp/admin.sock"))?;
//! let handler = imxp_spool::admin::Handler::new(spool);
//! imxp_spool::admin::serve(listener, handler, std::future::pending::<()>()).await;
//! # Ok(()) }
//! ```
//!
//! `imxp-spool` in offline mode runs the very same [`Handler`] against a
//! spool it opened itself, so both modes behave alike.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use crate::check::CheckReport;
use crate::error::SpoolError;
use crate::record::{DatagramId, Envelope, QuarantineEntry, StateName, domain_of, serde_bytes_b64};
use crate::spool::Spool;
use crate::stats::Stats;

/// The largest request line accepted (bytes).
pub const MAX_REQUEST: usize = 16 * 1024 * 1024;
/// The socket's file name in the state directory.
pub const SOCKET_NAME: &str = "admin.sock";
/// How long the server waits for a request line before dropping an idle
/// connection.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

// ===== Requests and responses =====

/// Which datagrams a bulk operation acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "select", content = "ids")]
pub enum Selection {
    /// Every datagram (the CLI requires the literal `ALL`).
    All,
    /// These ids.
    Ids(Vec<DatagramId>),
    /// Every datagram the filter matches when the request is handled
    /// (`imxp-spool requeue --domain b.example`, `delete --originator …`).
    Matching(Filter),
}

/// Filters of `list`; all given ones must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Some recipient is in this state (`held` also matches operator holds).
    #[serde(default)]
    pub state: Option<StateName>,
    /// Some recipient is in this domain (case-insensitive).
    #[serde(default)]
    pub domain: Option<String>,
    /// The originator is this endpoint (case-insensitive).
    #[serde(default)]
    pub originator: Option<String>,
    /// Some recipient is this endpoint (case-insensitive).
    #[serde(default)]
    pub recipient: Option<String>,
    /// Queued at least this long ago (ms).
    #[serde(default)]
    pub older_than_ms: Option<u64>,
    /// Queued at most this long ago (ms).
    #[serde(default)]
    pub newer_than_ms: Option<u64>,
}

impl Filter {
    /// Whether `env` matches at `now_ms`.
    pub fn matches(&self, env: &Envelope, now_ms: u64) -> bool {
        let age = now_ms.saturating_sub(env.queued_ms);
        self.state.is_none_or(|s| {
            env.recipients.iter().any(|r| r.state.kind() == s)
                || (s == StateName::Held && env.admin_hold)
        }) && self.domain.as_deref().is_none_or(|d| {
            let d = d.to_ascii_lowercase();
            env.recipients.iter().any(|r| domain_of(&r.endpoint) == d)
        }) && self
            .originator
            .as_deref()
            .is_none_or(|o| env.originator.eq_ignore_ascii_case(o))
            && self.recipient.as_deref().is_none_or(|x| {
                env.recipients
                    .iter()
                    .any(|r| r.endpoint.eq_ignore_ascii_case(x))
            })
            && self.older_than_ms.is_none_or(|o| age >= o)
            && self.newer_than_ms.is_none_or(|n| age <= n)
    }
}

/// The per-datagram operations of [`Request::Apply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Operator hold.
    Hold,
    /// Release an operator hold.
    Release,
    /// Make waiting recipients due now.
    Requeue,
    /// Delete.
    Delete,
}

/// A request to the admin endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "op")]
#[non_exhaustive]
pub enum Request {
    /// Envelopes matching a filter.
    List {
        /// The filter.
        #[serde(default)]
        filter: Filter,
    },
    /// One datagram, optionally with its content.
    Show {
        /// The id.
        id: DatagramId,
        /// Include the content bytes.
        #[serde(default)]
        content: bool,
    },
    /// Hold, release, requeue or delete datagrams.
    Apply {
        /// What to do.
        action: Action,
        /// To which.
        selection: Selection,
        /// Only say what would change.
        #[serde(default)]
        dry_run: bool,
    },
    /// Make every deferred recipient due now.
    Flush {
        /// Only count.
        #[serde(default)]
        dry_run: bool,
    },
    /// Counts by state, domain and age.
    Stats,
    /// Integrity scan, optionally repairing.
    Check {
        /// Apply the fixes.
        #[serde(default)]
        repair: bool,
    },
    /// The quarantined records.
    Quarantine,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "reply")]
#[non_exhaustive]
pub enum Reply {
    /// For [`Request::List`].
    List {
        /// Matching envelopes, in id order.
        envelopes: Vec<Envelope>,
    },
    /// For [`Request::Show`].
    Show {
        /// The envelope.
        envelope: Box<Envelope>,
        /// The content, if asked for.
        #[serde(default, with = "opt_b64")]
        content: Option<Vec<u8>>,
    },
    /// For [`Request::Apply`] and [`Request::Flush`].
    Applied {
        /// Changed (or, in a dry run, would change).
        changed: Vec<DatagramId>,
        /// Existing but not changed (already in that state).
        unchanged: Vec<DatagramId>,
        /// Not found.
        missing: Vec<DatagramId>,
        /// Whether this was a dry run.
        dry_run: bool,
    },
    /// For [`Request::Stats`].
    Stats(Box<Stats>),
    /// For [`Request::Check`].
    Check {
        /// The scan's findings (before repair).
        report: CheckReport,
        /// Fixes applied.
        repaired: u64,
    },
    /// For [`Request::Quarantine`].
    Quarantine {
        /// `(key hex, entry)`.
        entries: Vec<(String, QuarantineEntry)>,
    },
}

/// The answer to a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum Response {
    /// Done.
    Ok(Reply),
    /// Failed.
    Error {
        /// Why.
        message: String,
    },
}

mod opt_b64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => super::serde_bytes_b64::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        use base64::Engine as _;
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

// ===== Handler =====

/// Progress of a long operation: `(done, total)`.
pub type Progress = dyn Fn(u64, u64) + Send + Sync;

/// Executes admin requests against a spool (server side, and offline mode).
#[derive(Clone)]
pub struct Handler {
    spool: Spool,
}

impl Handler {
    /// A handler for `spool`.
    pub fn new(spool: Spool) -> Self {
        Self { spool }
    }

    /// The spool.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Executes one request. Never panics on bad input; errors become
    /// [`Response::Error`].
    pub async fn handle(&self, request: Request) -> Response {
        self.handle_with_progress(request, Arc::new(|_, _| {}))
            .await
    }

    /// Like [`Handler::handle`], reporting progress of bulk operations.
    pub async fn handle_with_progress(
        &self,
        request: Request,
        progress: Arc<Progress>,
    ) -> Response {
        match self.execute(request, progress).await {
            Ok(r) => Response::Ok(r),
            Err(e) => Response::Error {
                message: e.to_string(),
            },
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Spool) -> Result<T, SpoolError> + Send + 'static,
    ) -> Result<T, SpoolError> {
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || f(&spool))
            .await
            .map_err(|e| SpoolError::Invalid(format!("admin task failed: {e}")))?
    }

    async fn execute(
        &self,
        request: Request,
        progress: Arc<Progress>,
    ) -> Result<Reply, SpoolError> {
        match request {
            Request::List { filter } => {
                let envelopes = self
                    .blocking(move |spool| {
                        let now = spool.now_ms();
                        let mut out = Vec::new();
                        spool.for_each(|env| {
                            if filter.matches(&env, now) {
                                out.push(env);
                            }
                            ControlFlow::Continue(())
                        })?;
                        Ok(out)
                    })
                    .await?;
                Ok(Reply::List { envelopes })
            }
            Request::Show { id, content } => {
                let (envelope, content) = self
                    .blocking(move |spool| {
                        let env = spool.get(id)?.ok_or(SpoolError::NotFound(id))?;
                        let c = if content { spool.content(id)? } else { None };
                        Ok((env, c))
                    })
                    .await?;
                Ok(Reply::Show {
                    envelope: Box::new(envelope),
                    content,
                })
            }
            Request::Apply {
                action,
                selection,
                dry_run,
            } => self.apply(action, selection, dry_run, progress).await,
            Request::Flush { dry_run } => {
                let now = self.spool.now_ms();
                let ids = self
                    .blocking(move |spool| {
                        let mut ids: Vec<DatagramId> = spool
                            .due_ids(u64::MAX, usize::MAX)?
                            .into_iter()
                            .map(|(_, id)| id)
                            .collect();
                        ids.sort_unstable();
                        ids.dedup();
                        Ok(ids)
                    })
                    .await?;
                let mut changed = Vec::new();
                let mut unchanged = Vec::new();
                if dry_run {
                    for id in ids {
                        let Some(env) = self.spool.get(id)? else {
                            continue;
                        };
                        let due_later = env.recipients.iter().any(|r| {
                            matches!(r.state, crate::record::RecipientState::Deferred { next_due_ms, .. } if next_due_ms > now)
                        });
                        if due_later {
                            changed.push(id)
                        } else {
                            unchanged.push(id)
                        }
                    }
                } else {
                    let pending: Vec<_> = ids
                        .iter()
                        .map(|id| (*id, self.spool.flush_one(*id)))
                        .collect();
                    for (id, p) in pending {
                        if p.await? {
                            changed.push(id)
                        } else {
                            unchanged.push(id)
                        }
                    }
                }
                Ok(Reply::Applied {
                    changed,
                    unchanged,
                    missing: Vec::new(),
                    dry_run,
                })
            }
            Request::Stats => Ok(Reply::Stats(Box::new(self.blocking(Spool::stats).await?))),
            Request::Check { repair } => {
                let report = self.blocking(Spool::check).await?;
                let mut repaired = 0;
                if repair {
                    for p in &report.problems {
                        if let Some(fix) = &p.fix
                            && self.spool.repair(fix.clone()).await?
                        {
                            repaired += 1;
                        }
                    }
                }
                Ok(Reply::Check { report, repaired })
            }
            Request::Quarantine => Ok(Reply::Quarantine {
                entries: self.blocking(Spool::quarantined).await?,
            }),
        }
    }

    /// The ids of the datagrams `filter` matches now (the default filter
    /// matches every datagram).
    async fn matching(&self, filter: Filter) -> Result<Vec<DatagramId>, SpoolError> {
        self.blocking(move |spool| {
            let now = spool.now_ms();
            let mut ids = Vec::new();
            spool.for_each(|env| {
                if filter.matches(&env, now) {
                    ids.push(env.id);
                }
                ControlFlow::Continue(())
            })?;
            Ok(ids)
        })
        .await
    }

    async fn apply(
        &self,
        action: Action,
        selection: Selection,
        dry_run: bool,
        progress: Arc<Progress>,
    ) -> Result<Reply, SpoolError> {
        let ids = match selection {
            Selection::Ids(ids) => ids,
            Selection::All => self.matching(Filter::default()).await?,
            Selection::Matching(filter) => self.matching(filter).await?,
        };
        let total = ids.len() as u64;
        let (mut changed, mut unchanged, mut missing) = (Vec::new(), Vec::new(), Vec::new());
        if dry_run {
            let now = self.spool.now_ms();
            for id in ids {
                match self.spool.get(id)? {
                    None => missing.push(id),
                    Some(env) => {
                        let would = match action {
                            Action::Hold => !env.admin_hold,
                            Action::Release => env.admin_hold,
                            Action::Delete => true,
                            Action::Requeue => env.recipients.iter().any(|r| match r.state {
                                crate::record::RecipientState::Queued { due_ms } => due_ms > now,
                                crate::record::RecipientState::Deferred { .. }
                                | crate::record::RecipientState::Held { .. } => true,
                                _ => false,
                            }),
                        };
                        if would {
                            changed.push(id)
                        } else {
                            unchanged.push(id)
                        }
                    }
                }
            }
            return Ok(Reply::Applied {
                changed,
                unchanged,
                missing,
                dry_run,
            });
        }
        // Submit in windows so one commit carries many, and report progress.
        let mut done = 0u64;
        for chunk in ids.chunks(1024) {
            let mut pending = Vec::with_capacity(chunk.len());
            for id in chunk {
                let exists = self.spool.get(*id)?.is_some();
                let p = match action {
                    Action::Hold => self.spool.hold(*id),
                    Action::Release => self.spool.release(*id),
                    Action::Requeue => self.spool.requeue(*id),
                    Action::Delete => self.spool.delete(*id),
                };
                pending.push((*id, exists, p));
            }
            for (id, exists, p) in pending {
                match (p.await?, exists) {
                    (true, _) => changed.push(id),
                    (false, true) => unchanged.push(id),
                    (false, false) => missing.push(id),
                }
                done += 1;
            }
            progress(done, total);
        }
        Ok(Reply::Applied {
            changed,
            unchanged,
            missing,
            dry_run,
        })
    }
}

// ===== Server =====

/// Creates the admin socket at `path`, mode `0600` from the first moment:
/// it is bound inside a fresh `0700` directory next to `path`, restricted,
/// then renamed into place. A stale socket at `path` (nobody answering) is
/// replaced; a live one is an error (another relay runs).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is answered by another process", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    let private: PathBuf = parent.join(format!(".admin-sock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::create_dir(&private)?;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))?;
    let tmp = private.join("s");
    let result = (|| {
        let listener = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

/// Serves admin connections on `listener` with `handler` until `shutdown`
/// completes. Each connection runs in its own task.
pub async fn serve(listener: UnixListener, handler: Handler, shutdown: impl Future<Output = ()>) {
    let handler = Arc::new(handler);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(stream, &handler).await {
                            tracing::debug!(error = %e, "admin connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn connection(stream: tokio::net::UnixStream, handler: &Handler) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = tokio::io::BufReader::new(read);
    loop {
        let mut line = Vec::new();
        let n = tokio::time::timeout(
            IDLE_TIMEOUT,
            (&mut read)
                .take(MAX_REQUEST as u64 + 1)
                .read_until(b'\n', &mut line),
        )
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
        if n == 0 {
            return Ok(());
        }
        let response = if line.len() > MAX_REQUEST {
            Response::Error {
                message: format!("request larger than {MAX_REQUEST} bytes"),
            }
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(req) => handler.handle(req).await,
                Err(e) => Response::Error {
                    message: format!("bad request: {e}"),
                },
            }
        };
        let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
        out.push(b'\n');
        write.write_all(&out).await?;
        if line.len() > MAX_REQUEST {
            return Ok(());
        }
    }
}

// ===== Client =====

/// A client error: the socket is absent, refuses, times out, or answers
/// something unreadable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting failed.
    #[error("cannot connect to {path}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("{path} did not answer within {timeout:?}")]
    Timeout {
        /// The socket.
        path: PathBuf,
        /// The timeout.
        timeout: Duration,
    },
    /// I/O failed mid-exchange.
    #[error("admin socket I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The answer is not a valid response.
    #[error("bad response from the relay: {0}")]
    Protocol(String),
}

/// A blocking admin client (the CLI needs no runtime). Every step is
/// bounded by the timeout: it never hangs on a stuck relay.
pub struct Client {
    stream: BufReader<std::os::unix::net::UnixStream>,
    path: PathBuf,
    timeout: Duration,
}

impl Client {
    /// Connects to the socket at `path`, giving up after `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, ClientError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.to_path_buf();
        // UnixStream::connect has no timeout and blocks when a stuck
        // server's backlog is full: connect on a helper thread.
        std::thread::spawn(move || {
            let _ = tx.send(std::os::unix::net::UnixStream::connect(&p));
        });
        let stream = match rx.recv_timeout(timeout) {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    path: path.to_path_buf(),
                    source,
                });
            }
            Err(_) => {
                return Err(ClientError::Timeout {
                    path: path.to_path_buf(),
                    timeout,
                });
            }
        };
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Self {
            stream: BufReader::new(stream),
            path: path.to_path_buf(),
            timeout,
        })
    }

    /// Sends a request and reads its response.
    pub fn call(&mut self, request: &Request) -> Result<Response, ClientError> {
        let mut line =
            serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        let timed_out = |e: std::io::Error, this: &Self| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                ClientError::Timeout {
                    path: this.path.clone(),
                    timeout: this.timeout,
                }
            } else {
                ClientError::Io(e)
            }
        };
        self.stream
            .get_mut()
            .write_all(&line)
            .map_err(|e| timed_out(e, self))?;
        let mut answer = Vec::new();
        self.stream
            .read_until(b'\n', &mut answer)
            .map_err(|e| timed_out(e, self))?;
        if answer.is_empty() {
            return Err(ClientError::Protocol(
                "connection closed without an answer".into(),
            ));
        }
        serde_json::from_slice(&answer).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}
