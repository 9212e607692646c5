//! Telling the service manager how the relay is doing (`sd_notify(3)`):
//! `READY=1` once the spool is open and every listener accepts
//! (`Type=notify` in imxpd.service), `STOPPING=1` when it starts to drain,
//! and `WATCHDOG=1` at half the interval when the unit sets `WatchdogSec=`.
//! Outside systemd (no `NOTIFY_SOCKET`) each of these does nothing.

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// The relay is serving.
pub(crate) fn ready() {
    send(&[NotifyState::Ready], "READY=1");
}

/// The relay has begun to drain.
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

/// Pings the watchdog until `stop`, if the service manager asked for it.
pub(crate) async fn watchdog(stop: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled().filter(|d| !d.is_zero()) else {
        return;
    };
    let mut every = tokio::time::interval(interval / 2);
    loop {
        tokio::select! {
            _ = every.tick() => send(&[NotifyState::Watchdog], "WATCHDOG=1"),
            () = stop.cancelled() => return,
        }
    }
}

fn send(states: &[NotifyState<'_>], what: &str) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "telling the service manager {what} failed");
    }
}
