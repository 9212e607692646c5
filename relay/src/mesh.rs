//! Mesh sessions accepted from other relays (RFC 3340 §2.1 relay-relay):
//! TLS with certificates both ways, `bind` authorized by the peer's
//! certificate (§4.5.2: it must name the bound domain, else 537), then
//! `data` whose originator is in a bound domain and whose recipients are
//! all in domains this relay serves (no open relay), spec-digest §8.
//!
//! * No `data` before a successful `bind` on the channel (537).
//! * Without TLS a `bind` is refused (537) unless `[mesh]
//!   insecure_unauthenticated_bind` is set, which configuration only
//!   allows with `[tls] required = false` (insecure test meshes).
//! * A peer bound as a `[mesh] trusted_intermediaries` domain may carry
//!   originators of other domains (not of domains this relay serves, whose
//!   users come through the edge) and recipients of third domains, which
//!   are then forwarded.

use crate::datagram::{self, Request};
use crate::identity::Sender;
use crate::intake;
use crate::server::Relay;
use crate::tls;
use imxp_beep::Profile;
use imxp_beep::io::{Channel, Connection, IncomingStart};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Serves one relay session until it ends or the relay stops.
pub(crate) async fn serve(
    stream: TcpStream,
    relay: Arc<Relay>,
    _session: u64,
    stop: CancellationToken,
) {
    let driver = relay.inbound_driver(relay.inbound_session(), relay.tls.current().mesh.as_ref());
    let (connection, mut incoming, task) = Connection::spawn(stream, driver);
    let channels = TaskTracker::new();
    loop {
        tokio::select! {
            start = incoming.next() => match start {
                Some(start) => {
                    if let Some((channel, bound)) = open(start, &connection, &relay).await {
                        channels.spawn(run_channel(channel, bound, connection.clone(), relay.clone()));
                    }
                }
                None => break,
            },
            () = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(5), connection.release()).await;
                break;
            }
        }
    }
    channels.close();
    channels.wait().await;
    task.abort();
}

/// The bind steps of RFC 3340 §4.4.2 (555, 537); returns the bound domain.
fn bind(
    relay: &Relay,
    connection: &Connection,
    bound: &HashMap<u32, String>,
    domain: &imxp_apex::Domain,
    trans_id: u32,
) -> Result<String, (u16, String)> {
    if bound.contains_key(&trans_id) {
        return Err((555, format!("transaction-identifier {trans_id} is in use")));
    }
    let state = connection.state();
    let name = domain.canonical().to_owned();
    if state.tls_active {
        let names_it = state
            .peer_certificates
            .first()
            .is_some_and(|cert| tls::certificate_names_domain(cert, &name));
        if !names_it {
            return Err((537, format!("the peer's certificate does not name {name}")));
        }
    } else if !relay.config.mesh_policy.insecure_unauthenticated_bind {
        return Err((537, format!("bind {name} requires TLS with a certificate")));
    } else {
        tracing::warn!(domain = %name, "unauthenticated bind accepted (insecure test mesh)");
    }
    Ok(name)
}

/// The originator and recipient checks of a mesh `data` (spec-digest §8
/// items 1, 3 and 5), against the domains bound on the channel. Returns
/// the bound domain that authorizes the originator: its own domain, else
/// (a trusted intermediary carrying another domain's data) the first such
/// intermediary in name order.
fn authorize_data(
    relay: &Relay,
    bound: &HashMap<u32, String>,
    originator: &str,
    recipients: &[String],
) -> Result<String, (u16, String)> {
    if bound.is_empty() {
        return Err((537, "no data before a successful bind".into()));
    }
    let policy = &relay.config.mesh_policy;
    let intermediary = bound.values().any(|d| policy.is_trusted_intermediary(d));
    let origin = imxp_spool::record::domain_of(originator);
    let bound_for_origin = bound.values().find(|d| d.eq_ignore_ascii_case(&origin));
    if bound_for_origin.is_none() && (!intermediary || relay.config.serves(&origin)) {
        return Err((537, format!("not bound for {origin}")));
    }
    if !intermediary
        && let Some(foreign) = recipients
            .iter()
            .find(|r| !relay.config.serves(&imxp_spool::record::domain_of(r)))
    {
        return Err((537, format!("this relay does not relay to {foreign}")));
    }
    Ok(match bound_for_origin {
        Some(domain) => domain.to_ascii_lowercase(),
        None => bound
            .values()
            .filter(|d| policy.is_trusted_intermediary(d))
            .min()
            .map(|d| d.to_ascii_lowercase())
            .unwrap_or_default(),
    })
}

async fn open(
    start: IncomingStart,
    connection: &Connection,
    relay: &Relay,
) -> Option<(Channel, HashMap<u32, String>)> {
    let mut bound = HashMap::new();
    let init = start.request.profiles[0].init.clone();
    let reply = init.map(|init| match datagram::parse_init(&init) {
        Ok(Request::Bind { domain, trans_id }) => {
            match bind(relay, connection, &bound, &domain, trans_id) {
                Ok(name) => {
                    tracing::info!(domain = %name, "peer bound");
                    bound.insert(trans_id, name);
                    datagram::ok_init()
                }
                Err((code, text)) => datagram::error_init(code, &text),
            }
        }
        Ok(_) => datagram::error_init(537, "only bind may be piggybacked on a mesh channel"),
        Err((code, text)) => datagram::error_init(code, &text),
    });
    let profile = match reply {
        Some(reply) => Profile::with_init(datagram::APEX_PROFILE, reply),
        None => Profile::new(datagram::APEX_PROFILE),
    };
    start.accept(profile).await.ok().map(|c| (c, bound))
}

async fn run_channel(
    mut channel: Channel,
    mut bound: HashMap<u32, String>,
    connection: Connection,
    relay: Arc<Relay>,
) {
    let handle = channel.handle();
    let writes = TaskTracker::new();
    while let Some(message) = channel.next_message().await {
        let msgno = message.msgno;
        let reply = match datagram::parse_request(&message.payload, relay.config.max_message_size) {
            Err(error) => Err(error),
            Ok(Request::Bind { domain, trans_id }) => {
                bind(&relay, &connection, &bound, &domain, trans_id).map(|name| {
                    tracing::info!(domain = %name, "peer bound");
                    bound.insert(trans_id, name);
                })
            }
            Ok(Request::Attach { .. }) => Err((537, "attach is for endpoints (apex-edge)".into())),
            Ok(Request::Terminate { trans_id: 0 }) => {
                bound.clear();
                Ok(())
            }
            Ok(Request::Terminate { trans_id }) => bound
                .remove(&trans_id)
                .map(drop)
                .ok_or_else(|| (550, "unknown transaction-identifier".into())),
            Ok(Request::Data(incoming)) => {
                match authorize_data(&relay, &bound, &incoming.originator, &incoming.recipients) {
                    Err(refusal) => Err(refusal),
                    Ok(domain) => {
                        intake::spawn(
                            &writes,
                            &relay,
                            &handle,
                            msgno,
                            incoming,
                            Sender::Relay { domain },
                        );
                        continue;
                    }
                }
            }
        };
        let sent = datagram::answer(&handle, msgno, reply).await;
        if sent.is_err() {
            break;
        }
    }
    writes.close();
    writes.wait().await;
}
