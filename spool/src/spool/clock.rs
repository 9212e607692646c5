//! The spool's wall-clock source: the system clock in production, a shared
//! counter in tests. Everything time-dependent in the spool (due times,
//! deadlines, the dedup window) reads it through [`SpoolConfig::clock`].
//!
//! [`SpoolConfig::clock`]: super::SpoolConfig::clock

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The spool's source of wall-clock time (ms since the UNIX epoch).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(system_now_ms))
    }

    /// A clock reading a shared counter (tests).
    pub fn manual(now: Arc<AtomicU64>) -> Self {
        Self(Arc::new(move || now.load(Ordering::SeqCst)))
    }

    /// The current time.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Milliseconds since the UNIX epoch, from the system clock.
pub fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
