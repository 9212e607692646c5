//! The configuration of a running relay, replaced as a whole on reload
//! (SIGHUP): [`Live`] holds the one in force, and [`keep_running`] decides
//! which changed keys can take effect now and which need a restart.
//!
//! Everything read per session, per request or per delivery follows a
//! reload: limits of new sessions, options, reports, the mesh policy,
//! routes and DNS, access defaults, TLS material, users, the drain
//! timeout, the presence limits (read at each presence operation), and
//! the session admission limits and largest message size. What was built once at start keeps its value until a restart:
//! the listening sockets, the state directory and spool, the domains
//! served, the metrics socket, the log format, the spool's retry and hold
//! policies and the dispatcher's concurrency.

use std::sync::Arc;

use parking_lot::RwLock;

use super::Config;

/// The configuration in force; cheap to read (an `Arc` clone).
#[derive(Debug)]
pub struct Live(RwLock<Arc<Config>>);

impl Live {
    /// Starts with `config`.
    pub fn new(config: Arc<Config>) -> Self {
        Self(RwLock::new(config))
    }

    /// The configuration in force now.
    pub fn get(&self) -> Arc<Config> {
        self.0.read().clone()
    }

    /// Puts `config` in force.
    pub fn set(&self, config: Arc<Config>) {
        *self.0.write() = config;
    }
}

/// Carries one key's running value (the first) over into a new
/// configuration (the second); says whether the file changed it.
type Carry = fn(&Config, &mut Config) -> bool;

/// Keys whose new value needs a restart, with how to carry the running
/// value over into the new configuration.
const RESTART_ONLY: &[(&str, Carry)] = &[
    ("listen.edge", |o, n| carry(&o.edge, &mut n.edge)),
    ("listen.mesh", |o, n| carry(&o.mesh, &mut n.mesh)),
    ("relay.domains", |o, n| carry(&o.domains, &mut n.domains)),
    ("relay.state_dir", |o, n| {
        carry(&o.state_dir, &mut n.state_dir)
    }),
    ("relay.allow_root", |o, n| {
        carry(&o.allow_root, &mut n.allow_root)
    }),
    ("spool.engine", |o, n| {
        carry(&o.spool_engine, &mut n.spool_engine)
    }),
    ("metrics.listen", |o, n| {
        carry(&o.metrics_listen, &mut n.metrics_listen)
    }),
    ("log.format", |o, n| carry(&o.log_format, &mut n.log_format)),
    ("auth.users", |o, n| carry(&o.users, &mut n.users)),
    ("auth.anonymous", |o, n| {
        carry(&o.anonymous_read_only, &mut n.anonymous_read_only)
    }),
    ("tls.required", |o, n| {
        carry(&o.tls.required, &mut n.tls.required)
    }),
    ("queue", |o, n| carry(&o.queue, &mut n.queue)),
    ("hold", |o, n| carry(&o.hold, &mut n.hold)),
    ("gateway", |o, n| carry(&o.gateways, &mut n.gateways)),
];

/// Sets `new` to `old` if they differ; says whether they did.
fn carry<T: Clone + std::fmt::Debug>(old: &T, new: &mut T) -> bool {
    // Debug output compares every settings type without requiring
    // PartialEq of each.
    let differ = format!("{old:?}") != format!("{new:?}");
    if differ {
        *new = old.clone();
    }
    differ
}

/// Makes `new` keep the running value of every key that needs a restart,
/// and returns the keys (or sections) whose value changed in the file.
pub fn keep_running(old: &Config, new: &mut Config) -> Vec<&'static str> {
    RESTART_ONLY
        .iter()
        .filter(|(_, carry)| carry(old, new))
        .map(|(key, _)| *key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(extra: &str) -> Config {
        let text = format!(
            "[relay]\ndomains = [\"a.test\"]\nstate_dir = \"s\"\n[tls]\nrequired = false\n{extra}"
        );
        Config::parse(&text, Path::new("imxpd.toml")).unwrap()
    }

    #[test]
    fn restart_keys_keep_their_running_value_and_the_rest_changes() {
        let old = parse("[listen]\nedge = [\"127.0.0.1:1\"]\n");
        let mut new = parse(
            "[listen]\nedge = [\"127.0.0.1:2\"]\n[queue]\nmax_in_flight = 3\n\
             [limits]\nmax_channels = 5\n[routes]\n\"b.test\" = \"127.0.0.1:9\"\n",
        );
        let keys = keep_running(&old, &mut new);
        assert_eq!(keys, ["listen.edge", "queue"]);
        assert_eq!(new.edge, old.edge);
        assert_eq!(new.queue.max_in_flight, old.queue.max_in_flight);
        assert_eq!(new.limits.max_channels, 5);
        assert_eq!(new.routes.len(), 1);
        let mut same = old.clone();
        assert!(keep_running(&old, &mut same).is_empty());
        let live = Live::new(Arc::new(old));
        live.set(Arc::new(new));
        assert_eq!(live.get().limits.max_channels, 5);
    }
}
