//! The service endpoint `apex=presence@<domain>` (RFC 3343 §4): a datagram
//! addressed to it is delivered here instead of to an attachment. Its
//! content (inline `data-content` or an `application/beep+xml` part,
//! §4.1) is a `subscribe`, `watch`, `publish` or `terminate`; what the
//! service sends back and to subscribers and watchers goes out as new
//! datagrams from `apex=presence@<domain>` through intake, so it is
//! durable, routed and retried like any other datagram, across domains
//! too.
//!
//! [`run`] is the service's own task: at start it ends the tuples of
//! attachments that did not survive the restart, sends updates owed from
//! before it, and then follows attachments and the expiry of
//! subscriptions and watches.
//!
//! Every operation holds the registry for its whole course: state
//! stored first (durable), then the datagrams queued, then which datagram
//! carried each subscription's update is stored (for coalescing).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use imxp_apex::presence::{PresenceMessage, salvage_trans_id};
use imxp_apex::{Endpoint, Reply, ReplyCode};
use imxp_spool::{DatagramId, Failure, FailureKind, IdOrigin, Outcome};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::registry::{Effects, Outgoing};
use super::{Grants, Registry};
use crate::access::Access;
use crate::attachments::AttachmentEvent;
use crate::context::Context;
use crate::datagram::{self, Request, ServiceRequest};
use crate::intake::Intake;
use crate::metrics::label;

/// The access entries, as the registry asks them.
struct AccessGrants<'a>(&'a Access);

impl Grants for AccessGrants<'_> {
    /// A tool attachment (`fred/tool.…`) is granted what its user is.
    fn grants(&self, publisher: &Endpoint, actor: &Endpoint, action: &str) -> bool {
        self.0
            .permits(publisher, &imxp_apex::presence::acting_for(actor), action)
    }
}

/// Handles the stored datagram `stored` from `originator` to the presence
/// service `service` (a canonical `apex=presence@<served domain>`).
pub(crate) async fn serve(
    ctx: &Context,
    service: &str,
    originator: &str,
    stored: &Bytes,
) -> Outcome {
    let via = Some("apex=presence".to_owned());
    let ServiceRequest {
        service,
        originator,
        content,
    } = match ServiceRequest::read(service, originator, stored) {
        Ok(request) => request,
        Err(outcome) => return outcome,
    };
    let now = ctx.now_ms();
    let grants = AccessGrants(&ctx.access);
    let mut registry = ctx.presence.lock().await;
    registry.use_settings(&ctx.config().presence);
    let effects = match PresenceMessage::from_content(&content) {
        Ok(message) => {
            count(ctx, message.name());
            handle(&mut registry, &service, &originator, message, &grants, now)
        }
        Err(error) => {
            count(ctx, "unreadable");
            let trans_id = content.service_xml().ok().and_then(salvage_trans_id);
            tracing::info!(%originator, %error, event = "presence-refused");
            reply(
                &service,
                &originator,
                error.reply_code(),
                trans_id,
                &error.to_string(),
            )
        }
    };
    let outcome = match carry_out(ctx, &mut registry, effects).await {
        Ok(()) => Outcome::Delivered { via },
        Err(error) => {
            tracing::error!(%originator, %error, "presence operation not carried out");
            Outcome::Deferred(Failure::new(FailureKind::Io, error))
        }
    };
    drop(registry);
    ctx.presence.changed();
    outcome
}

/// The registry's answer to `message`.
fn handle(
    registry: &mut Registry,
    service: &Endpoint,
    originator: &Endpoint,
    message: PresenceMessage,
    grants: &dyn Grants,
    now: u64,
) -> Effects {
    let name = message.name();
    let effects = match message {
        PresenceMessage::Subscribe(request) | PresenceMessage::Watch(request)
            if !registry.admit_subscribe(originator.domain().canonical(), now) =>
        {
            reply(
                service,
                originator,
                ReplyCode::ACTION_NOT_TAKEN_TEMPORARY,
                Some(request.trans_id),
                &format!(
                    "too many subscribe and watch operations from {} this minute; try again later",
                    originator.domain()
                ),
            )
        }
        PresenceMessage::Subscribe(request) => {
            registry.subscribe(service, originator, &request, grants, now)
        }
        PresenceMessage::Watch(request) => {
            registry.watch(service, originator, &request, grants, now)
        }
        PresenceMessage::Publish(request) => {
            registry.publish(service, originator, &request, grants, now)
        }
        PresenceMessage::Terminate { trans_id } => {
            registry.terminate(service, originator, trans_id)
        }
        other @ (PresenceMessage::Notify(_) | PresenceMessage::Reply(_)) => reply(
            service,
            originator,
            ReplyCode::PARAMETER_NOT_IMPLEMENTED,
            other.trans_id(),
            &format!(
                "<{}> is not a request to the presence service",
                other.name()
            ),
        ),
    };
    tracing::info!(
        %originator,
        operation = name,
        sent = effects.outgoing.len(),
        event = "presence-operation"
    );
    effects
}

fn reply(
    service: &Endpoint,
    originator: &Endpoint,
    code: ReplyCode,
    trans_id: Option<u32>,
    text: &str,
) -> Effects {
    Effects {
        changes: Vec::new(),
        outgoing: vec![Outgoing {
            from: service.clone(),
            to: originator.clone(),
            message: PresenceMessage::Reply(Reply {
                code,
                trans_id,
                lang: None,
                text: text.to_owned(),
            }),
            subscription: None,
        }],
    }
}

/// Counts one operation of the service (metrics).
fn count(ctx: &Context, operation: &str) {
    ctx.metrics
        .presence_operations
        .get_or_create(&label("operation", operation))
        .inc();
}

/// Stores the changes, queues the datagrams, and stores which datagram
/// carried each subscription's update; then updates the gauges.
async fn carry_out(ctx: &Context, registry: &mut Registry, effects: Effects) -> Result<(), String> {
    let result = carry_out_effects(ctx, registry, effects).await;
    let (_, subscriptions, watches) = registry.counts();
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    ctx.metrics.presence_subscriptions.set(gauge(subscriptions));
    ctx.metrics.presence_watches.set(gauge(watches));
    result
}

async fn carry_out_effects(
    ctx: &Context,
    registry: &mut Registry,
    effects: Effects,
) -> Result<(), String> {
    let Effects { changes, outgoing } = effects;
    ctx.presence
        .store()
        .apply(changes)
        .await
        .map_err(|e| e.to_string())?;
    let mut sending = JoinSet::new();
    for out in outgoing {
        ctx.metrics
            .presence_sent
            .get_or_create(&label("element", out.message.name()))
            .inc();
        let previous = out
            .subscription
            .as_ref()
            .and_then(|key| registry.subscription(key))
            .map(|s| s.in_queue.clone())
            .unwrap_or_default();
        let intake = ctx.intake.clone();
        let now = ctx.now_ms();
        sending.spawn(async move {
            let stamp = match &out.message {
                PresenceMessage::Publish(publish) => {
                    Some(publish.presence.last_update.as_str().to_owned())
                }
                _ => None,
            };
            let sent = send(&intake, &out, previous, now).await;
            (out.subscription, stamp, sent)
        });
    }
    let mut sent = Vec::new();
    let mut failed = None;
    while let Some(done) = sending.join_next().await {
        match done {
            Ok((Some(key), Some(stamp), Ok((id, in_flight)))) => {
                sent.extend(registry.sent(&key, &stamp, id, in_flight));
            }
            Ok((_, _, Ok(_))) => {}
            Ok((_, _, Err(error))) => failed = Some(error),
            Err(error) => failed = Some(error.to_string()),
        }
    }
    ctx.presence
        .store()
        .apply(sent)
        .await
        .map_err(|e| e.to_string())?;
    failed.map_or(Ok(()), Err)
}

/// Queues `out` through intake, replacing those of `previous` that still
/// wait in the queue; the new datagram's id and those of `previous` that
/// were in flight.
async fn send(
    intake: &Intake,
    out: &Outgoing,
    previous: Vec<DatagramId>,
    now: u64,
) -> Result<(DatagramId, Vec<DatagramId>), String> {
    let (data, content) = out.message.to_data(out.from.clone(), out.to.clone());
    let payload = Bytes::from(data.to_payload(&content));
    let incoming = match datagram::parse_request(&payload, usize::MAX) {
        Ok(Request::Data(incoming)) => incoming,
        Ok(_) => return Err("not a data".into()),
        Err(refusal) => return Err(refusal.text),
    };
    let id = DatagramId::generate(now);
    if out.subscription.is_none() {
        return intake
            .write(incoming, id, IdOrigin::Generated)
            .await
            .map(|_| (id, Vec::new()))
            .map_err(|e| e.0);
    }
    intake
        .write_replacing(incoming, id, previous)
        .await
        .map(|in_flight| (id, in_flight))
        .map_err(|e| e.0)
}

/// The service's own task (module docs), until `stop`.
pub(crate) async fn run(
    ctx: Arc<Context>,
    mut attachments: UnboundedReceiver<AttachmentEvent>,
    stop: CancellationToken,
) {
    {
        let now = ctx.now_ms();
        let grants = AccessGrants(&ctx.access);
        let mut registry = ctx.presence.lock().await;
        // In this order, each carried out before the next is computed:
        // what ran out while the relay was down gets only its terminate;
        // the tuples of attachments that did not survive go (sending their
        // subscribers an update); then any update still owed from before.
        let steps: [fn(&mut Registry, &AccessGrants<'_>, u64) -> Effects; 3] = [
            |registry, _, now| registry.expire(now),
            |registry, grants, now| registry.detach_all(grants, now),
            |registry, grants, now| registry.resume(grants, now),
        ];
        for step in steps {
            let effects = step(&mut registry, &grants, now);
            if let Err(error) = carry_out(&ctx, &mut registry, effects).await {
                tracing::error!(%error, "presence state could not be brought up to date at start");
            }
        }
    }
    let Some(mut access_changes) = ctx.presence.take_access_changes() else {
        tracing::error!("the presence task runs once per relay");
        return;
    };
    loop {
        let next = ctx.presence.lock().await.next_expiry();
        let wait = next.map_or(Duration::from_secs(3600), |at| {
            Duration::from_millis(at.saturating_sub(ctx.now_ms()))
        });
        tokio::select! {
            event = attachments.recv() => {
                let Some(event) = event else { return };
                attachment(&ctx, event).await;
            }
            () = tokio::time::sleep(wait) => {
                let now = ctx.now_ms();
                count(&ctx, "expire");
                let mut registry = ctx.presence.lock().await;
                let effects = registry.expire(now);
                if let Err(error) = carry_out(&ctx, &mut registry, effects).await {
                    tracing::error!(%error, "presence expiry not carried out");
                }
            }
            owner = access_changes.recv() => {
                let Some(owner) = owner else { return };
                refresh(&ctx, &owner).await;
            }
            () = ctx.presence.wait_changed() => {}
            () = stop.cancelled() => return,
        }
    }
}

/// `owner`'s access entries changed: its subscribers see what they may
/// see now (polite blocking takes effect at once).
async fn refresh(ctx: &Context, owner: &Endpoint) {
    count(ctx, "access");
    let now = ctx.now_ms();
    let grants = AccessGrants(&ctx.access);
    let mut registry = ctx.presence.lock().await;
    let effects = registry.refresh(owner, &grants, now);
    if let Err(error) = carry_out(ctx, &mut registry, effects).await {
        tracing::error!(%owner, %error, "presence after an access change not carried out");
    }
}

/// An attachment began or ended: the user's automatic tuple follows.
async fn attachment(ctx: &Context, event: AttachmentEvent) {
    let (endpoint, attached) = match &event {
        AttachmentEvent::Attached(e) => (e, true),
        AttachmentEvent::Detached(e) => (e, false),
    };
    let Ok(endpoint) = Endpoint::parse(endpoint) else {
        return;
    };
    if imxp_apex::presence::is_tool(&endpoint)
        || endpoint.is_service()
        || !ctx.config().serves(endpoint.domain().canonical())
    {
        return;
    }
    let now = ctx.now_ms();
    count(ctx, if attached { "attach" } else { "detach" });
    let grants = AccessGrants(&ctx.access);
    let mut registry = ctx.presence.lock().await;
    registry.use_settings(&ctx.config().presence);
    let effects = registry.attachment(&endpoint, attached, &grants, now);
    if let Err(error) = carry_out(ctx, &mut registry, effects).await {
        tracing::error!(%endpoint, %error, "presence of an attachment not carried out");
    }
}
