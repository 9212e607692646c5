//! Listening: the accept loop of each listener, admission (session
//! limits), and the session skeleton that edge and mesh sessions share.
//!
//! * [`admission`] — total and per-address session limits (421 beyond).
//! * [`session`] — one inbound BEEP session: channels, MSGs, answers; a
//!   [`session::Role`] gives it its meaning.
//! * [`edge`] — endpoints: SASL, `attach`, `terminate`, `data`.
//! * [`mesh`] — relays: `bind`, `terminate`, `data`.

pub(crate) mod admission;
pub(crate) mod edge;
pub(crate) mod mesh;
pub(crate) mod session;

use crate::context::Context;
use crate::metrics::label;
use admission::Admission;
use session::Role;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// When listening ends: `accepting` stops the accept loops (the first step
/// of a drain), `sessions` releases the sessions (the last).
#[derive(Clone)]
pub(crate) struct Stops {
    /// No new sessions.
    pub(crate) accepting: CancellationToken,
    /// Release the open sessions.
    pub(crate) sessions: CancellationToken,
}

/// Accepts sessions on `listener` for `role` until `stops.accepting`; each
/// session runs as a task of `tasks` until it ends or `stops.sessions`.
pub(crate) async fn accept_loop<R: Role>(
    listener: TcpListener,
    role: Arc<R>,
    ctx: Arc<Context>,
    admission: Arc<Admission>,
    stops: Stops,
    tasks: TaskTracker,
) {
    let Stops {
        accepting: stop_accepting,
        sessions: stop,
    } = stops;
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, kind = R::NAME, "listening");
    }
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop_accepting.cancelled() => return,
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
        let permit = match admission.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                ctx.metrics.refused(refusal.limit());
                admission.refuse(stream, peer, refusal, &tasks);
                continue;
            }
        };
        let (role, ctx, stop) = (role.clone(), ctx.clone(), stop.clone());
        tasks.spawn(async move {
            let id = ctx.session_id();
            let kind = label("kind", R::NAME);
            ctx.metrics.sessions_opened.get_or_create(&kind).inc();
            let open = ctx.metrics.sessions.get_or_create_owned(&kind);
            open.inc();
            tracing::debug!(%peer, session = id, kind = R::NAME, "session opened");
            session::serve(role, ctx.clone(), stream, peer, id, stop).await;
            ctx.attachments.end(id, None);
            tracing::debug!(%peer, session = id, "session closed");
            open.dec();
            drop(permit);
        });
    }
}
