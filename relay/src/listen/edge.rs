//! Edge sessions (endpoint → relay, RFC 3340 §2.1): TLS tuning, SASL,
//! then APEX channels carrying `attach`, `terminate` and `data`.
//!
//! * No channel before authentication (530).
//! * `attach` (RFC 3340 §4.4.1): as the authenticated user or one of its
//!   subaddresses, never as a service (`apex=…`), in a domain this relay
//!   serves; `attachOverride` (RFC 3342 §1) ends another application's
//!   attachment with a 556 `terminate`.
//! * `data` (§4.4.4.1 step 1): only from an endpoint attached on the
//!   channel; then intake.

use super::session::{Handled, Role, Session};
use crate::attachments::{AttachRefused, Displaced, Owner};
use crate::context::Context;
use crate::datagram::{self, Request};
use crate::identity::Sender;
use crate::refusal::Refusal;
use crate::tls;
use imxp_beep::io::{ChannelHandle, DriverConfig};
use imxp_beep::{ErrorReply, ReplyCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The edge role.
pub(crate) struct Edge;

/// An edge channel: where its attachments are owned, and the user the
/// session authenticated as before it opened the channel.
pub(crate) struct EdgeChannel {
    owner: Owner,
    user: String,
}

impl Role for Edge {
    type Channel = EdgeChannel;
    const NAME: &'static str = "edge";

    fn driver(&self, ctx: &Context, peer: SocketAddr) -> DriverConfig {
        let mut config = ctx.inbound_session();
        config.sasl = Some(Arc::new(ctx.sasl.clone()));
        let mut driver = ctx.inbound_driver(config, ctx.tls.current().edge.as_ref());
        // EXTERNAL: the address a verified client certificate carries.
        driver.peer_identity = Some(Arc::new(|chain| {
            chain.first().and_then(tls::certificate_identity)
        }));
        // Failed SASL exchanges are answered late, per peer address.
        let penalties = ctx.penalties.clone();
        let metrics = ctx.metrics.clone();
        driver.auth_failure_delay = Some(Arc::new(move || {
            metrics.auth_failures.inc();
            let delay = penalties.fail(peer.ip(), std::time::Instant::now());
            tracing::info!(%peer, ?delay, "authentication failed");
            delay
        }));
        driver
    }

    fn open(
        &self,
        ctx: &Context,
        session: &Session,
        channel: u32,
        init: Option<Result<Request, Refusal>>,
    ) -> Result<(EdgeChannel, Option<String>), ErrorReply> {
        let Some(user) = session.connection.state().authenticated else {
            return Err(ErrorReply::new(
                ReplyCode::AUTH_REQUIRED,
                "authentication required",
            ));
        };
        let owner = Owner {
            session: session.id,
            channel,
        };
        let reply = init.map(|init| {
            let attached = match init {
                Ok(Request::Attach {
                    endpoint,
                    trans_id,
                    take_over,
                }) => attach(ctx, &user, owner, &endpoint, trans_id, take_over),
                Ok(_) => Err(Refusal::not_implemented(
                    "only attach may be piggybacked on an edge channel",
                )),
                Err(refusal) => Err(refusal),
            };
            datagram::init_reply(attached)
        });
        Ok((EdgeChannel { owner, user }, reply))
    }

    fn opened(&self, ctx: &Context, state: &mut EdgeChannel, handle: &ChannelHandle) {
        ctx.attachments.activate(state.owner, handle);
        for endpoint in ctx.attachments.on_channel(state.owner) {
            ctx.release.request(&endpoint);
        }
    }

    fn handle(
        &self,
        ctx: &Context,
        _session: &Session,
        state: &mut EdgeChannel,
        handle: &ChannelHandle,
        request: Request,
    ) -> Handled {
        let owner = state.owner;
        Handled::Answer(match request {
            Request::Attach {
                endpoint,
                trans_id,
                take_over,
            } => attach(ctx, &state.user, owner, &endpoint, trans_id, take_over).map(|()| {
                ctx.attachments.activate(owner, handle);
                ctx.release.request(&datagram::key(&endpoint));
            }),
            Request::Bind { .. } => Err(Refusal::not_authorized("bind is for relays (apex-mesh)")),
            Request::Terminate { trans_id: 0 } => {
                // RFC 3340 §4.4.3: transID 0 ends everything on the session.
                ctx.attachments.end(owner.session, None);
                Ok(())
            }
            Request::Terminate { trans_id } => ctx
                .attachments
                .terminate(owner, trans_id)
                .map(drop)
                .ok_or_else(|| Refusal::not_taken("unknown transaction-identifier")),
            Request::Data(incoming) => {
                // §4.4.4.1 step 1: the originator must be attached here.
                if ctx
                    .attachments
                    .on_channel(owner)
                    .contains(&incoming.originator)
                {
                    return Handled::Intake(Box::new(incoming), Sender::Endpoint);
                }
                Err(Refusal::not_authorized(format!(
                    "not attached as {}",
                    incoming.originator
                )))
            }
        })
    }

    fn closed(&self, ctx: &Context, state: EdgeChannel) {
        ctx.attachments
            .end(state.owner.session, Some(state.owner.channel));
    }
}

/// The attach steps of RFC 3340 §4.4.1, in order: 555, 553, 537, then the
/// options (`attachOverride`, RFC 3342 §1), then 554 (already attached —
/// unless the attach overrides: the application attached before gets a
/// 556 `terminate` — or `limits.max_attachments_per_session` reached).
fn attach(
    ctx: &Context,
    user: &str,
    owner: Owner,
    endpoint: &imxp_apex::Endpoint,
    trans_id: u32,
    take_over: bool,
) -> Result<(), Refusal> {
    if ctx.attachments.trans_id_in_use(owner, trans_id) {
        return Err(Refusal::trans_id_in_use(trans_id));
    }
    if !ctx.config().serves(endpoint.domain().canonical()) {
        return Err(Refusal::invalid(format!(
            "this relay does not serve {}",
            endpoint.domain()
        )));
    }
    if user == crate::auth::ANONYMOUS_IDENTITY {
        // `[auth] anonymous = "read-only"`: no attach, hence no data.
        return Err(Refusal::not_authorized("an anonymous session is read-only"));
    }
    if !datagram::may_act_as(user, endpoint) {
        return Err(Refusal::not_authorized("access denied"));
    }
    let key = datagram::key(endpoint);
    let limit = ctx.config().limits.max_attachments_per_session;
    match ctx
        .attachments
        .attach(&key, owner, trans_id, None, limit, take_over)
    {
        Ok(None) => Ok(()),
        Ok(Some(displaced)) => {
            tokio::spawn(terminate_displaced(key, displaced));
            Ok(())
        }
        Err(AttachRefused::Taken) => Err(Refusal::failed(format!("{key} is already attached"))),
        // A site policy, like the RFC's own 554 for "already attached":
        // 554 "transaction failed (e.g. policy violation)", RFC 3340 §10.
        Err(AttachRefused::SessionFull) => {
            ctx.metrics.refused("max_attachments_per_session");
            Err(Refusal::failed(format!(
                "this session has {limit} attachments, the most allowed"
            )))
        }
    }
}

/// Tells the application whose attachment an `attachOverride` took that
/// it is over: `<terminate transID='…' code='556'>overriden</terminate>`
/// (the RFC 3342 §1 example, text included). Its answer changes nothing.
async fn terminate_displaced(endpoint: String, displaced: Displaced) {
    let Some(channel) = displaced.channel else {
        return;
    };
    let terminate = imxp_apex::Terminate::with_reason(
        displaced.trans_id,
        ReplyCode::ATTACHMENT_OVERRIDDEN,
        "overriden",
    );
    let sent = tokio::time::timeout(
        Duration::from_secs(30),
        channel.request(bytes::Bytes::from(terminate.to_payload())),
    )
    .await;
    match sent {
        Ok(Ok(_)) => tracing::debug!(%endpoint, "556 terminate answered"),
        Ok(Err(error)) => tracing::debug!(%endpoint, %error, "556 terminate not delivered"),
        Err(_) => tracing::debug!(%endpoint, "556 terminate not answered"),
    }
}
