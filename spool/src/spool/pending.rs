//! [`Pending`]: the handle of a submitted write, resolved by the committer
//! once the batch carrying it is durable. [`Output`] is what the committer
//! sends back; the mapping functions turn it into each write's result type.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::{Claim, Enqueued, Recorded, Superseding};
use crate::error::SpoolError;

pub(super) enum Output {
    Unit,
    Enqueued(Enqueued),
    Superseding(Superseding),
    Claim(Option<Claim>),
    Recorded(Option<Recorded>),
    Changed(bool),
    Count(u64),
}

pub(super) type Reply = oneshot::Sender<Result<Output, SpoolError>>;

/// A submitted write: await it, or [`Pending::wait`] outside async code.
/// Resolves only when the write is durable (or failed).
#[must_use = "a spool write is only known durable when its Pending resolves"]
pub struct Pending<T> {
    rx: Result<oneshot::Receiver<Result<Output, SpoolError>>, Option<SpoolError>>,
    map: fn(Output) -> T,
}

impl<T> Pending<T> {
    pub(super) fn new(
        rx: oneshot::Receiver<Result<Output, SpoolError>>,
        map: fn(Output) -> T,
    ) -> Self {
        Self { rx: Ok(rx), map }
    }

    pub(super) fn failed(e: SpoolError, map: fn(Output) -> T) -> Self {
        Self {
            rx: Err(Some(e)),
            map,
        }
    }

    /// Blocks the thread until the write is durable. Do not call it on an
    /// async runtime thread; `.await` the `Pending` there.
    pub fn wait(self) -> Result<T, SpoolError> {
        match self.rx {
            Ok(rx) => rx
                .blocking_recv()
                .map_err(|_| SpoolError::Closed)?
                .map(self.map),
            Err(e) => Err(e.unwrap_or(SpoolError::Closed)),
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, SpoolError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.rx {
            Ok(rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(r)) => Poll::Ready(r.map(this.map)),
                Poll::Ready(Err(_)) => Poll::Ready(Err(SpoolError::Closed)),
                Poll::Pending => Poll::Pending,
            },
            Err(e) => Poll::Ready(Err(e.take().unwrap_or(SpoolError::Closed))),
        }
    }
}

pub(super) fn unit(_: Output) {}
pub(super) fn superseding(o: Output) -> Superseding {
    match o {
        Output::Superseding(s) => s,
        _ => unreachable!("supersede answers Superseding"),
    }
}

pub(super) fn enqueued(o: Output) -> Enqueued {
    match o {
        Output::Enqueued(e) => e,
        _ => unreachable!("enqueue yields Enqueued"),
    }
}
pub(super) fn claim(o: Output) -> Option<Claim> {
    match o {
        Output::Claim(c) => c,
        _ => unreachable!("claim yields Claim"),
    }
}
pub(super) fn recorded(o: Output) -> Option<Recorded> {
    match o {
        Output::Recorded(r) => r,
        _ => unreachable!("record yields Recorded"),
    }
}
pub(super) fn changed(o: Output) -> bool {
    match o {
        Output::Changed(c) => c,
        _ => unreachable!("yields Changed"),
    }
}
pub(super) fn count(o: Output) -> u64 {
    match o {
        Output::Count(c) => c,
        Output::Changed(c) => u64::from(c),
        _ => unreachable!("yields Count"),
    }
}
