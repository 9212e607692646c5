//! Mesh sessions accepted from other relays (RFC 3340 §2.1 relay-relay):
//! TLS with certificates both ways, `bind` authorized by the peer's
//! certificate (§4.5.2: it must name the bound domain, else 537), then
//! `data` whose originator is in a bound domain and whose recipients are
//! all in domains this relay serves (no open relay; docs/decisions.md,
//! APEX core).
//!
//! * No `data` before a successful `bind` on the channel (537).
//! * Without TLS a `bind` is refused (537) unless `[mesh]
//!   insecure_unauthenticated_bind` is set, which configuration only
//!   allows with `[tls] required = false` (insecure test meshes).
//! * A peer bound as a `[mesh] trusted_intermediaries` domain may carry
//!   originators of other domains (not of domains this relay serves, whose
//!   users come through the edge) and recipients of third domains, which
//!   are then forwarded.

use super::session::{Handled, Role, Session};
use crate::context::Context;
use crate::datagram::{self, Request};
use crate::identity::Sender;
use crate::refusal::Refusal;
use crate::tls;
use imxp_beep::ErrorReply;
use imxp_beep::io::{ChannelHandle, DriverConfig};
use std::collections::HashMap;
use std::net::SocketAddr;

/// The mesh role.
pub(crate) struct Mesh;

/// A mesh channel: the domains bound on it, by the bind's transID.
#[derive(Default)]
pub(crate) struct MeshChannel {
    bound: HashMap<u32, String>,
}

impl Role for Mesh {
    type Channel = MeshChannel;
    const NAME: &'static str = "mesh";

    fn driver(&self, ctx: &Context, _peer: SocketAddr) -> DriverConfig {
        ctx.inbound_driver(ctx.inbound_session(), ctx.tls.current().mesh.as_ref())
    }

    fn open(
        &self,
        ctx: &Context,
        session: &Session,
        _channel: u32,
        init: Option<Result<Request, Refusal>>,
    ) -> Result<(MeshChannel, Option<String>), ErrorReply> {
        let mut state = MeshChannel::default();
        let reply = init.map(|init| {
            let before = state.bound.len();
            let bound = match init {
                Ok(Request::Bind { domain, trans_id }) => {
                    bind(ctx, session, &mut state, &domain, trans_id)
                }
                Ok(_) => Err(Refusal::not_authorized(
                    "only bind may be piggybacked on a mesh channel",
                )),
                Err(refusal) => Err(refusal),
            };
            count_bindings(ctx, before, state.bound.len());
            datagram::init_reply(bound)
        });
        Ok((state, reply))
    }

    fn closed(&self, ctx: &Context, state: MeshChannel) {
        count_bindings(ctx, state.bound.len(), 0);
    }

    fn handle(
        &self,
        ctx: &Context,
        session: &Session,
        state: &mut MeshChannel,
        _handle: &ChannelHandle,
        request: Request,
    ) -> Handled {
        let before = state.bound.len();
        let handled = handle(ctx, session, state, request);
        count_bindings(ctx, before, state.bound.len());
        handled
    }
}

/// Keeps `imxp_attachments{kind="mesh"}` at the number of domains bound
/// on open channels: a channel went from `before` to `after` bindings.
fn count_bindings(ctx: &Context, before: usize, after: usize) {
    if before != after {
        let gauge = ctx
            .metrics
            .attachments
            .get_or_create_owned(&crate::metrics::label("kind", "mesh"));
        gauge.inc_by(after as i64 - before as i64);
    }
}

/// One request on a mesh channel.
fn handle(ctx: &Context, session: &Session, state: &mut MeshChannel, request: Request) -> Handled {
    Handled::Answer(match request {
        Request::Bind { domain, trans_id } => bind(ctx, session, state, &domain, trans_id),
        Request::Attach { .. } => Err(Refusal::not_authorized(
            "attach is for endpoints (apex-edge)",
        )),
        Request::Terminate { trans_id: 0 } => {
            state.bound.clear();
            Ok(())
        }
        Request::Terminate { trans_id } => state
            .bound
            .remove(&trans_id)
            .map(drop)
            .ok_or_else(|| Refusal::not_taken("unknown transaction-identifier")),
        Request::Data(incoming) => {
            match authorize_data(
                ctx,
                &state.bound,
                &incoming.originator,
                &incoming.recipients,
            ) {
                Ok(domain) => {
                    return Handled::Intake(Box::new(incoming), Sender::Relay { domain });
                }
                Err(refusal) => Err(refusal),
            }
        }
    })
}

/// The bind steps of RFC 3340 §4.4.2 (555, 537); remembers the bound
/// domain on the channel.
fn bind(
    ctx: &Context,
    session: &Session,
    state: &mut MeshChannel,
    domain: &imxp_apex::Domain,
    trans_id: u32,
) -> Result<(), Refusal> {
    if state.bound.contains_key(&trans_id) {
        return Err(Refusal::trans_id_in_use(trans_id));
    }
    let connection = session.connection.state();
    let name = domain.canonical().to_owned();
    if connection.tls_active {
        let names_it = connection
            .peer_certificates
            .first()
            .is_some_and(|cert| tls::certificate_names_domain(cert, &name));
        if !names_it {
            return Err(Refusal::not_authorized(format!(
                "the peer's certificate does not name {name}"
            )));
        }
    } else if !ctx.config().mesh_policy.insecure_unauthenticated_bind {
        return Err(Refusal::not_authorized(format!(
            "bind {name} requires TLS with a certificate"
        )));
    } else {
        tracing::warn!(domain = %name, "unauthenticated bind accepted (insecure test mesh)");
    }
    tracing::info!(domain = %name, peer = %session.peer, "peer bound");
    state.bound.insert(trans_id, name);
    Ok(())
}

/// The originator and recipient checks of a mesh `data`, against the
/// domains bound on the channel. Returns the bound domain that authorizes
/// the originator: its own domain, else (a trusted intermediary carrying
/// another domain's data) the first such intermediary in name order.
fn authorize_data(
    ctx: &Context,
    bound: &HashMap<u32, String>,
    originator: &str,
    recipients: &[String],
) -> Result<String, Refusal> {
    if bound.is_empty() {
        return Err(Refusal::not_authorized("no data before a successful bind"));
    }
    let policy = &ctx.config().mesh_policy;
    let intermediary = bound.values().any(|d| policy.is_trusted_intermediary(d));
    let origin = imxp_spool::record::domain_of(originator);
    let bound_for_origin = bound.values().find(|d| d.eq_ignore_ascii_case(&origin));
    if bound_for_origin.is_none() && (!intermediary || ctx.config().serves(&origin)) {
        return Err(Refusal::not_authorized(format!("not bound for {origin}")));
    }
    if !intermediary
        && let Some(foreign) = recipients
            .iter()
            .find(|r| !ctx.config().serves(&imxp_spool::record::domain_of(r)))
    {
        return Err(Refusal::not_authorized(format!(
            "this relay does not relay to {foreign}"
        )));
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
