//! Offline or online: a command either opens the spool itself (no process
//! holds its lock) or sends its requests to the running relay's admin
//! socket. [`connect`] picks the mode from the options and the lock;
//! [`Mode::call`] runs a request in either, with the same replies.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use imxp_spool::admin::{self, Client, Handler, Reply, Request, Response};
use imxp_spool::{EngineKind, Spool, SpoolConfig, SpoolError};

use crate::cli::Cli;

/// Where a command can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Offline or online, whichever the options and the lock allow.
    Either,
    /// Offline only: the command needs the spool to itself.
    OfflineOnly,
}

/// What an offline open does when the spool directory holds no spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IfMissing {
    /// Fail.
    Fail,
    /// Create it, with `--engine`.
    Create,
}

pub(crate) enum Mode {
    Offline(Handler, tokio::runtime::Runtime),
    Online(Client),
}

impl Mode {
    pub(crate) fn call(
        &mut self,
        request: Request,
        progress: Option<Arc<admin::Progress>>,
    ) -> Result<Reply> {
        let response = match self {
            Self::Offline(handler, rt) => rt.block_on(
                handler
                    .handle_with_progress(request, progress.unwrap_or_else(|| Arc::new(|_, _| {}))),
            ),
            Self::Online(client) => client.call(&request)?,
        };
        match response {
            Response::Ok(r) => Ok(r),
            Response::Error { message } => bail!("{message}"),
        }
    }
}

struct Paths {
    spool: PathBuf,
    socket: PathBuf,
    timeout: Duration,
}

fn paths(cli: &Cli) -> Paths {
    Paths {
        spool: cli
            .spool_dir
            .clone()
            .unwrap_or_else(|| cli.state_dir.join("spool")),
        socket: cli
            .socket
            .clone()
            .unwrap_or_else(|| cli.state_dir.join(admin::SOCKET_NAME)),
        timeout: Duration::from_secs_f64(cli.timeout.max(0.1)),
    }
}

fn open_offline(cli: &Cli, p: &Paths, if_missing: IfMissing) -> Result<Spool, SpoolError> {
    let engine = EngineKind::detect(&p.spool).unwrap_or(cli.engine);
    Spool::open(
        &p.spool,
        SpoolConfig {
            engine,
            create: if_missing == IfMissing::Create,
            ..SpoolConfig::default()
        },
    )
}

fn offline(spool: Spool) -> Result<Mode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting runtime")?;
    Ok(Mode::Offline(Handler::new(spool), rt))
}

fn locked_message(p: &Paths, e: &SpoolError, why: &dyn std::fmt::Display) -> String {
    format!(
        "{e}, and its admin socket {} does not answer ({why}). The relay may be starting, \
         stopping or hung; nothing was changed. Retry, or stop the relay and use --offline.",
        p.socket.display()
    )
}

/// Opens the spool offline, or connects to the relay's admin socket, as the
/// options, `reach` and the lock allow.
pub(crate) fn connect(cli: &Cli, reach: Reach, if_missing: IfMissing) -> Result<Mode> {
    let p = paths(cli);
    let need_offline = reach == Reach::OfflineOnly;
    if cli.online {
        if need_offline {
            bail!("this command works offline only (stop the relay first)");
        }
        return Ok(Mode::Online(Client::connect(&p.socket, p.timeout)?));
    }
    match open_offline(cli, &p, if_missing) {
        Ok(spool) => offline(spool),
        Err(e @ SpoolError::Locked { .. }) => {
            if cli.offline || need_offline {
                bail!(
                    "{e}; {} needs the spool to itself: stop the relay first",
                    if need_offline {
                        "this command"
                    } else {
                        "--offline"
                    }
                );
            }
            match Client::connect(&p.socket, p.timeout) {
                Ok(c) => Ok(Mode::Online(c)),
                Err(why) => bail!("{}", locked_message(&p, &e, &why)),
            }
        }
        Err(e) => Err(e).with_context(|| format!("opening spool {}", p.spool.display())),
    }
}
