//! Admission of inbound sessions: at most `limits.max_sessions` at once on
//! all listeners together and `limits.max_sessions_per_address` from one
//! peer IP address. A connection beyond either limit is refused the BEEP
//! way (RFC 3080 §2.4: the listener answers the greeting with an `error`,
//! here 421 "service not available") and closed; sessions already running
//! are not affected. The other limits are BEEP settings of each session
//! ([`Context::inbound_session`](crate::context::Context::inbound_session)) and the edge's
//! attachment count.

use crate::config::Config;
use bytes::BytesMut;
use imxp_beep::frame::{DataHeader, Keyword};
use imxp_beep::{ErrorReply, ReplyCode};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

/// Refused connections lingering at once (to read what the peer sent
/// before it saw the refusal), at most: a flood costs no more.
const MAX_REFUSING: usize = 256;

/// Time a refused connection may linger.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `limits.max_sessions` sessions are running.
    Total(usize),
    /// `limits.max_sessions_per_address` sessions from this address are running.
    PerAddress(usize),
}

impl Refused {
    /// The configuration key of the limit (a metrics label).
    pub(crate) fn limit(self) -> &'static str {
        match self {
            Self::Total(_) => "max_sessions",
            Self::PerAddress(_) => "max_sessions_per_address",
        }
    }

    fn text(self) -> String {
        match self {
            Self::Total(limit) => format!("too many sessions (limit {limit}), try again later"),
            Self::PerAddress(limit) => {
                format!("too many sessions from your address (limit {limit}), try again later")
            }
        }
    }
}

/// The sessions running, in all and by peer address, and the limits in
/// force (a reload may change them; sessions beyond a lowered limit run
/// on, and new ones wait until they are under it).
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
    max_total: usize,
    max_per_address: usize,
}

/// The session counters shared by every accept loop.
pub(crate) struct Admission {
    counts: Mutex<Counts>,
    refusing: Arc<Semaphore>,
}

/// One admitted session; dropping it frees its places.
pub(crate) struct SessionPermit {
    limits: Arc<Admission>,
    address: IpAddr,
}

impl Admission {
    /// Counters for the limits of `config`.
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            counts: Mutex::new(Counts {
                total: 0,
                per_address: HashMap::new(),
                max_total: config.max_sessions,
                max_per_address: config.limits.max_sessions_per_address,
            }),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
        }
    }

    /// Puts the limits of `config` in force (a reload).
    pub(crate) fn set_limits(&self, config: &Config) {
        let mut counts = self.counts.lock();
        counts.max_total = config.max_sessions;
        counts.max_per_address = config.limits.max_sessions_per_address;
    }

    /// Admits a session from `address`, or says which limit it is over.
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr) -> Result<SessionPermit, Refused> {
        let address = peer_key(address);
        let mut counts = self.counts.lock();
        if counts.total >= counts.max_total {
            return Err(Refused::Total(counts.max_total));
        }
        let max_per_address = counts.max_per_address;
        let count = counts.per_address.entry(address).or_default();
        if *count >= max_per_address {
            return Err(Refused::PerAddress(max_per_address));
        }
        *count += 1;
        counts.total += 1;
        Ok(SessionPermit {
            limits: self.clone(),
            address,
        })
    }

    /// Sessions running from `address`.
    #[cfg(test)]
    fn running_from(&self, address: IpAddr) -> usize {
        self.counts
            .lock()
            .per_address
            .get(&address)
            .copied()
            .unwrap_or(0)
    }
}

/// What counts as one peer address: an IPv4 address (also when it comes
/// IPv4-mapped through a dual-stack listener), or an IPv6 /64 — the
/// smallest network a site is usually given, whose 2^64 addresses one
/// host may use at will.
fn peer_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        let mut counts = self.limits.counts.lock();
        counts.total -= 1;
        if let Some(count) = counts.per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.per_address.remove(&self.address);
            }
        }
    }
}

impl Admission {
    /// Answers the connection's greeting with `421` (RFC 3080 §2.4): the
    /// negative greeting is written at once, without a task (a fresh
    /// socket's send buffer always has room for it). Then, while fewer
    /// than [`MAX_REFUSING`] are doing so, a task half-closes the
    /// connection and reads what the peer still sends until it closes,
    /// so that the refusal is not lost to a reset; beyond that the
    /// connection is simply closed.
    pub(crate) fn refuse(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        refusal: Refused,
        tasks: &TaskTracker,
    ) {
        tracing::debug!(%peer, reason = %refusal.text(), "session refused");
        let error = ErrorReply::new(ReplyCode::SERVICE_NOT_AVAILABLE, refusal.text());
        let mut frame = BytesMut::new();
        imxp_beep::frame::encode_data(
            &DataHeader {
                keyword: Keyword::Err,
                channel: 0,
                msgno: 0,
                more: false,
                seqno: 0,
                size: 0,
                ansno: None,
            },
            &error.to_payload(),
            &mut frame,
        );
        if stream.try_write(&frame).ok() != Some(frame.len()) {
            return;
        }
        let Ok(slot) = self.refusing.clone().try_acquire_owned() else {
            return;
        };
        tasks.spawn(async move {
            let mut stream = stream;
            let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
                let _ = stream.shutdown().await;
                let mut sink = [0u8; 1024];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn limits_config(total: usize, per_address: usize) -> Config {
        let text = format!(
            "[relay]\ndomains = [\"a.test\"]\nstate_dir = \"s\"\n[tls]\nrequired = false\n\
             [limits]\nmax_sessions = {total}\nmax_sessions_per_address = {per_address}\n"
        );
        Config::parse(&text, Path::new("imxpd.toml")).unwrap()
    }

    fn limits(total: usize, per_address: usize) -> Arc<Admission> {
        Arc::new(Admission::new(&limits_config(total, per_address)))
    }

    #[test]
    fn per_address_and_total_limits_and_their_release() {
        let limits = limits(3, 2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Refused::PerAddress(2)));
        let _third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(Refused::Total(3)));
        drop(first);
        assert_eq!(limits.running_from(a), 1);
        let _again = limits.admit(b).unwrap();
        assert_eq!(limits.running_from(b), 2);
        assert!(Refused::PerAddress(2).text().contains("your address"));
    }

    #[test]
    fn a_reload_moves_the_limits() {
        let admission = limits(1, 1);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let _first = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).err(), Some(Refused::Total(1)));
        admission.set_limits(&limits_config(3, 2));
        let _second = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).err(), Some(Refused::PerAddress(2)));
        // Lowered below what runs: nothing more until under it.
        admission.set_limits(&limits_config(1, 1));
        assert_eq!(
            admission.admit("127.0.0.9".parse().unwrap()).err(),
            Some(Refused::Total(1))
        );
    }

    #[test]
    fn an_ipv6_64_counts_as_one_address_and_mapped_ipv4_as_ipv4() {
        let limits = limits(10, 2);
        let _a = limits.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        let _b = limits
            .admit("2001:db8:1:2:ffff::9".parse().unwrap())
            .unwrap();
        assert_eq!(
            limits.admit("2001:db8:1:2::77".parse().unwrap()).err(),
            Some(Refused::PerAddress(2)),
            "same /64"
        );
        let _c = limits.admit("2001:db8:1:3::1".parse().unwrap()).unwrap();
        let _d = limits.admit("::ffff:192.0.2.1".parse().unwrap()).unwrap();
        let _e = limits.admit("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(
            limits.admit("192.0.2.1".parse().unwrap()).err(),
            Some(Refused::PerAddress(2)),
            "mapped and plain IPv4 are the same peer"
        );
    }
}
