//! Running without root: listening sockets inherited from a service manager
//! (socket activation), the refusal to run as root, and bind errors that say
//! what to do.
//!
//! apex-edge (913) and apex-mesh (912) are privileged ports. `imxpd` never
//! needs root to use them; either
//!
//! * the service manager binds them and passes them in (systemd socket
//!   activation, `sd_listen_fds(3)`: `LISTEN_FDS`, `LISTEN_PID`,
//!   `LISTEN_FDNAMES`, descriptors from 3 on), or
//! * the binary holds `CAP_NET_BIND_SERVICE` (`setcap
//!   cap_net_bind_service=+ep /usr/local/bin/imxpd`, or
//!   `AmbientCapabilities=CAP_NET_BIND_SERVICE` in a unit with `User=imxp`).
//!
//! Inherited sockets are assigned to edge or mesh by name
//! (`FileDescriptorName=edge` / `mesh` in the `.socket` unit), and unnamed
//! ones by port (913 edge, 912 mesh) or by matching `[listen]`; a socket
//! that fits none is an error naming it, never a guess.

use crate::config::{Config, EDGE_PORT, MESH_PORT};
use std::net::SocketAddr;
use thiserror::Error;

/// Which listener an inherited socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// apex-edge: endpoints attach here.
    Edge,
    /// apex-mesh: other relays bind here.
    Mesh,
}

/// Sockets passed in by the service manager.
#[derive(Debug, Default)]
pub struct Inherited {
    /// apex-edge listeners.
    pub edge: Vec<std::net::TcpListener>,
    /// apex-mesh listeners.
    pub mesh: Vec<std::net::TcpListener>,
}

/// Why inherited sockets or the process's identity cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ActivationError {
    /// An inherited descriptor is not a listening TCP socket.
    #[error("inherited descriptor #{index} (fd {fd}): not a listening TCP socket: {reason}")]
    NotTcp {
        /// Position among the inherited descriptors (0-based).
        index: usize,
        /// The descriptor number.
        fd: usize,
        /// What was wrong.
        reason: String,
    },
    /// An inherited socket could not be assigned to edge or mesh.
    #[error(
        "inherited socket #{index} ({name}, {address}) is neither edge nor mesh: name it \
         with FileDescriptorName=edge or =mesh, or listen on port {EDGE_PORT} or {MESH_PORT} \
         or on an address in [listen]"
    )]
    Unassigned {
        /// Position among the inherited descriptors (0-based).
        index: usize,
        /// Its `LISTEN_FDNAMES` entry, or `unnamed`.
        name: String,
        /// Its local address.
        address: SocketAddr,
    },
    /// Running as root without `[relay] allow_root`.
    #[error(
        "imxpd refuses to run as root: run it as an unprivileged user (e.g. `imxp`) and give \
         it the privileged ports by socket activation or CAP_NET_BIND_SERVICE (see the README, \
         \"Running without root\"); set [relay] allow_root = true only where root is already \
         unprivileged, e.g. in a user-namespaced container"
    )]
    Root,
}

/// Decides which listener an inherited socket serves: its name first
/// (`edge`, `mesh`, or the service names `apex-edge`, `apex-mesh`), then its
/// port, then the `[listen]` addresses. `None` when nothing fits.
pub fn classify(name: Option<&str>, local: SocketAddr, config: &Config) -> Option<Role> {
    match name.map(str::to_ascii_lowercase).as_deref() {
        Some("edge" | "apex-edge") => return Some(Role::Edge),
        Some("mesh" | "apex-mesh") => return Some(Role::Mesh),
        _ => {}
    }
    let matches = |addresses: &[SocketAddr]| {
        addresses
            .iter()
            .any(|a| a.port() == local.port() && (a.ip() == local.ip() || a.ip().is_unspecified()))
    };
    match local.port() {
        EDGE_PORT => Some(Role::Edge),
        MESH_PORT => Some(Role::Mesh),
        _ if matches(&config.edge) => Some(Role::Edge),
        _ if matches(&config.mesh) => Some(Role::Mesh),
        _ => None,
    }
}

/// Takes the listening sockets passed by the service manager, if any
/// (`LISTEN_FDS`; `LISTEN_PID`, when set, must be this process). Clears the
/// count and pid variables so children do not inherit them. Call before
/// starting threads: it changes the environment.
pub fn take_inherited(config: &Config) -> Result<Option<Inherited>, ActivationError> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|names| names.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    let mut inherited = Inherited::default();
    for index in 0..fds.len() {
        let not_tcp = |reason: String| ActivationError::NotTcp {
            index,
            fd: index + 3,
            reason,
        };
        let listener = fds
            .take_tcp_listener(index)
            .map_err(|e| not_tcp(e.to_string()))?
            .ok_or_else(|| not_tcp("already taken".to_owned()))?;
        let local = listener.local_addr().map_err(|e| not_tcp(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| not_tcp(e.to_string()))?;
        let name = names
            .get(index)
            .map(String::as_str)
            .filter(|name| !name.is_empty() && *name != "unknown");
        match classify(name, local, config) {
            Some(Role::Edge) => inherited.edge.push(listener),
            Some(Role::Mesh) => inherited.mesh.push(listener),
            None => {
                return Err(ActivationError::Unassigned {
                    index,
                    name: name.unwrap_or("unnamed").to_owned(),
                    address: local,
                });
            }
        }
    }
    // listenfd removed LISTEN_FDS and LISTEN_PID; LISTEN_FDNAMES means
    // nothing without them.
    Ok(Some(inherited))
}

/// Refuses to run as root unless `[relay] allow_root` says root is fine here.
pub fn check_not_root(config: &Config) -> Result<(), ActivationError> {
    if running_as_root() && !config.allow_root {
        return Err(ActivationError::Root);
    }
    Ok(())
}

/// Whether the effective user is root.
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A bind error with the remedy for the one operators meet: a privileged
/// port without the capability.
pub fn bind_hint(error: &std::io::Error, address: SocketAddr) -> Option<String> {
    (error.kind() == std::io::ErrorKind::PermissionDenied && address.port() < 1024).then(|| {
        format!(
            "port {} is privileged: grant imxpd CAP_NET_BIND_SERVICE (setcap \
             cap_net_bind_service=+ep on the binary, or AmbientCapabilities= in its unit) or \
             pass the socket in by socket activation",
            address.port()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(listen: &str) -> Config {
        let text = format!(
            "[relay]\ndomains = [\"a.test\"]\nstate_dir = \"s\"\n[tls]\nrequired = false\n{listen}"
        );
        Config::parse(&text, Path::new("imxpd.toml")).unwrap()
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn names_win_over_ports() {
        let config = config("");
        assert_eq!(
            classify(Some("edge"), addr("[::]:912"), &config),
            Some(Role::Edge)
        );
        assert_eq!(
            classify(Some("APEX-MESH"), addr("0.0.0.0:913"), &config),
            Some(Role::Mesh)
        );
    }

    #[test]
    fn unnamed_sockets_go_by_port_then_by_listen() {
        let config = config("[listen]\nedge = [\"127.0.0.1:9913\"]\nmesh = [\"[::]:9912\"]\n");
        assert_eq!(classify(None, addr("[::]:913"), &config), Some(Role::Edge));
        assert_eq!(
            classify(Some("other"), addr("10.0.0.1:912"), &config),
            Some(Role::Mesh)
        );
        assert_eq!(
            classify(None, addr("127.0.0.1:9913"), &config),
            Some(Role::Edge)
        );
        // [::]:9912 in [listen] covers any address on that port.
        assert_eq!(
            classify(None, addr("127.0.0.2:9912"), &config),
            Some(Role::Mesh)
        );
        // Same port as the edge listener but another address: no guess.
        assert_eq!(classify(None, addr("127.0.0.2:9913"), &config), None);
        assert_eq!(classify(None, addr("127.0.0.1:25"), &config), None);
    }

    #[test]
    fn root_is_refused_unless_allowed() {
        let refused = config("");
        let allowed = Config::parse(
            "[relay]\ndomains = [\"a.test\"]\nstate_dir = \"s\"\nallow_root = true\n\
             [tls]\nrequired = false\n",
            Path::new("imxpd.toml"),
        )
        .unwrap();
        assert!(check_not_root(&allowed).is_ok());
        assert_eq!(check_not_root(&refused).is_err(), running_as_root());
    }

    #[test]
    fn privileged_ports_get_a_remedy() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let hint = bind_hint(&denied, addr("[::]:913")).unwrap();
        assert!(hint.contains("CAP_NET_BIND_SERVICE"), "{hint}");
        assert!(bind_hint(&denied, addr("[::]:9913")).is_none());
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        assert!(bind_hint(&in_use, addr("[::]:913")).is_none());
    }
}
