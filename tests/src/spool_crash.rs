//! Shared between `tests/tests/spool_crash.rs` and the child process
//! `imxp-spool-crash-child`.
//!
//! The child prints one line per durable event, only after the commit
//! returned:
//!
//! - `READY` once the spool is open;
//! - `E <id>`: enqueued (content is [`content_for`]`(id)`);
//! - `d <id>`: delivery is starting (so the datagram may be gone after a
//!   kill even though `D` was never printed);
//! - `D <id>`: delivered and removed;
//! - `F <id>`: deferred (the recipient must be found deferred);
//! - `FILLED <n>` (fill mode) once `n` datagrams are queued.

use std::path::Path;
use std::time::{Duration, Instant};

use imxp_spool::{DatagramId, Spool, SpoolConfig, SpoolError};

/// Opens a spool, retrying for up to 5 s while it is locked.
///
/// The test runs the two engines' rounds in parallel threads of one process.
/// A fork for one thread's child briefly duplicates every descriptor of the
/// process, including the other thread's spool lock (`flock(2)` locks
/// belong to the open file description), until the child calls exec. So a
/// spool just closed by one thread may look locked for a moment.
pub fn open_retrying(dir: &Path, config: SpoolConfig) -> Result<Spool, SpoolError> {
    let start = Instant::now();
    loop {
        match Spool::open(dir, config.clone()) {
            Err(SpoolError::Locked { .. }) if start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// The content the child stores for `id`: 64 to 4159 bytes derived from the
/// id, so the parent can check every byte without keeping copies.
pub fn content_for(id: &DatagramId) -> Vec<u8> {
    let b = id.as_bytes();
    let mut x = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")) | 1;
    let len = 64 + (u64::from(b[15]) * 16 + u64::from(b[14] & 0x0f)) as usize;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The recipient every crash-test datagram goes to.
pub const RECIPIENT: &str = "sink@crash.example";

/// An event line printed by the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// `READY`.
    Ready,
    /// `E <id>`.
    Enqueued(DatagramId),
    /// `d <id>`.
    Delivering(DatagramId),
    /// `D <id>`.
    Delivered(DatagramId),
    /// `F <id>`.
    Deferred(DatagramId),
    /// `FILLED <n>`.
    Filled(u64),
}

impl Event {
    /// Parses a line; `None` for anything else (e.g. a line cut by SIGKILL).
    pub fn parse(line: &str) -> Option<Self> {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "READY" => Some(Self::Ready),
            "E" => rest.parse().ok().map(Self::Enqueued),
            "d" => rest.parse().ok().map(Self::Delivering),
            "D" => rest.parse().ok().map(Self::Delivered),
            "F" => rest.parse().ok().map(Self::Deferred),
            "FILLED" => rest.parse().ok().map(Self::Filled),
            _ => None,
        }
    }
}
