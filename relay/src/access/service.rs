//! The service endpoint `apex=access@<domain>` (RFC 3341 §4): a datagram
//! addressed to it is delivered here instead of to an attachment. Its
//! content (inline `data-content` or an `application/beep+xml` part, §4.1)
//! is a `query`, `get` or `set` (or imxp's `list` extension, see
//! [`imxp_apex::access::message`]); the answer (`allow`, `deny`, `set` or
//! `reply`, with the request's transID) goes back to the originator, and a
//! change is announced to the owner with a `set` (§4) — both as new
//! datagrams from `apex=access@<domain>` through the normal intake path,
//! so they are durable, routed and retried like any other.
//!
//! Datagrams from APEX services (reports, our own notifications bounced
//! back) are logged and dropped: answering them could loop.

use super::{Change, SetRefusal};
use crate::context::Context;
use crate::datagram::{self, Request, ServiceRequest};
use bytes::Bytes;
use imxp_apex::access::{AccessEntry, AccessMessage, Get, Query, Set, salvage_trans_id};
use imxp_apex::status::Reply;
use imxp_apex::{Endpoint, ReplyCode};
use imxp_spool::{Failure, FailureKind, Outcome};

/// Handles the stored datagram `stored` from `originator` to the access
/// service `service` (a canonical `apex=access@<served domain>`).
pub(crate) async fn serve(
    ctx: &Context,
    service: &str,
    originator: &str,
    stored: &Bytes,
) -> Outcome {
    let via = Some("apex=access".to_owned());
    let ServiceRequest {
        service,
        originator,
        content,
    } = match ServiceRequest::read(service, originator, stored) {
        Ok(request) => request,
        Err(outcome) => return outcome,
    };
    let (answer, notification) = match AccessMessage::from_content(&content) {
        Ok(message) => handle(ctx, &originator, message).await,
        Err(error) => {
            let trans_id = content.service_xml().ok().and_then(salvage_trans_id);
            tracing::info!(%originator, %error, event = "access-refused");
            (
                reply(error.reply_code(), trans_id, &error.to_string()),
                None,
            )
        }
    };
    let mut outcome = Outcome::Delivered { via };
    if let Err(error) = send(ctx, &service, &originator, &answer).await {
        // Nothing was changed by a refused or read-only request, so it can
        // be retried; a set that was stored is not retried (a second run
        // would answer 555), and only its answer is lost.
        if notification.is_none() {
            outcome = Outcome::Deferred(Failure::new(FailureKind::Io, error));
        } else {
            tracing::error!(%originator, %error, "the access service's answer could not be queued");
        }
    }
    if let Some((owner, set)) = notification {
        // Who may see the owner's presence may have changed.
        ctx.presence.access_changed(&owner);
        if let Err(error) = send(ctx, &service, &owner, &set).await {
            tracing::error!(%owner, %error, "the owner notification could not be queued");
        }
    }
    outcome
}

/// The answer to the originator and, after a change, the owner and the
/// notification to send them.
async fn handle(
    ctx: &Context,
    originator: &Endpoint,
    message: AccessMessage,
) -> (AccessMessage, Option<(Endpoint, AccessMessage)>) {
    let access = &ctx.access;
    match message {
        AccessMessage::Query(Query {
            owner,
            actor,
            actions,
            trans_id,
        }) => {
            if let Err(refusal) = check_subject(ctx, originator, &owner, "query", trans_id) {
                return (*refusal, None);
            }
            let selection = access.select(&owner, &actor);
            let granted = selection.rule.actions.grants_all(&actions);
            tracing::info!(%originator, %owner, %actor, %actions, granted, event = "access-query");
            let answer = if granted {
                AccessMessage::Allow { trans_id }
            } else {
                AccessMessage::Deny { trans_id }
            };
            (answer, None)
        }
        AccessMessage::Get(Get {
            owner,
            actor,
            trans_id,
        }) => {
            if let Err(refusal) = check_subject(ctx, originator, &owner, "get", trans_id) {
                return (*refusal, None);
            }
            let answer = match access.get(&owner, &actor) {
                Some(stored) => AccessMessage::Set(Set {
                    trans_id,
                    entry: AccessEntry {
                        owner,
                        actor: stored.actor,
                        actions: Some(stored.actions),
                        last_update: Some(stored.last_update),
                    },
                }),
                None => reply(
                    ReplyCode::NO_SUCH_ACCESS_ENTRY,
                    Some(trans_id),
                    "no such access entry",
                ),
            };
            (answer, None)
        }
        AccessMessage::Set(Set { trans_id, entry }) => {
            let owner = entry.owner.clone();
            if let Err(refusal) = check_subject(ctx, originator, &owner, "set", trans_id) {
                return (*refusal, None);
            }
            let now = i64::try_from(ctx.now_ms()).unwrap_or(i64::MAX);
            let result = access
                .set(
                    &owner,
                    &entry.actor,
                    entry.actions.as_ref(),
                    entry.last_update.as_ref(),
                    now,
                )
                .await;
            match result {
                Ok(change) => {
                    let (actions, last_update) = match &change {
                        Change::Stored(stored) => {
                            (Some(stored.actions.clone()), stored.last_update.clone())
                        }
                        Change::Deleted(old) => (None, old.last_update.clone()),
                    };
                    tracing::info!(
                        %originator, %owner, actor = %entry.actor,
                        actions = actions.as_ref().map(ToString::to_string).unwrap_or_else(|| "(deleted)".into()),
                        event = "access-set"
                    );
                    let notification = AccessMessage::Set(Set {
                        trans_id,
                        entry: AccessEntry {
                            owner: owner.clone(),
                            actor: entry.actor,
                            actions,
                            last_update: Some(last_update),
                        },
                    });
                    (
                        reply(ReplyCode::APEX_OK, Some(trans_id), ""),
                        Some((owner, notification)),
                    )
                }
                Err(SetRefusal::Stale) => (
                    reply(
                        ReplyCode::TRANSACTION_IN_PROGRESS,
                        Some(trans_id),
                        "lastUpdate does not match the entry (get it again)",
                    ),
                    None,
                ),
                Err(SetRefusal::NoSuchEntry) => (
                    reply(
                        ReplyCode::NO_SUCH_ACCESS_ENTRY,
                        Some(trans_id),
                        "no such access entry",
                    ),
                    None,
                ),
                Err(SetRefusal::Io) => (
                    reply(
                        ReplyCode::ACTION_ABORTED,
                        Some(trans_id),
                        "the access entries could not be written; try again",
                    ),
                    None,
                ),
            }
        }
        AccessMessage::List { owner, trans_id } => {
            if let Err(refusal) = check_subject(ctx, originator, &owner, "get", trans_id) {
                return (*refusal, None);
            }
            let entries = access
                .entries_of(&owner)
                .into_iter()
                .map(|stored| AccessEntry {
                    owner: owner.clone(),
                    actor: stored.actor,
                    actions: Some(stored.actions),
                    last_update: Some(stored.last_update),
                })
                .collect();
            (AccessMessage::Entries { trans_id, entries }, None)
        }
        other => (
            reply(
                ReplyCode::PARAMETER_NOT_IMPLEMENTED,
                other.trans_id(),
                &format!("<{}> is not a request to the access service", other.name()),
            ),
            None,
        ),
    }
}

/// Steps 1–3 of §4.2–4.4: 553 outside the domain, 550 not a valid
/// address, 537 not permitted.
fn check_subject(
    ctx: &Context,
    originator: &Endpoint,
    owner: &Endpoint,
    operation: &str,
    trans_id: u32,
) -> Result<(), Box<AccessMessage>> {
    if !ctx.config().serves(owner.domain().canonical()) {
        return Err(Box::new(reply(
            ReplyCode::PARAMETER_INVALID,
            Some(trans_id),
            &format!("{} is not served here", owner.domain()),
        )));
    }
    if owner.is_service() {
        return Err(Box::new(reply(
            ReplyCode::ACTION_NOT_TAKEN,
            Some(trans_id),
            "APEX services have no access entries",
        )));
    }
    if !ctx.access.may_manage(originator, owner, operation) {
        return Err(Box::new(reply(
            ReplyCode::NOT_AUTHORIZED,
            Some(trans_id),
            &format!("access:{operation} not permitted"),
        )));
    }
    Ok(())
}

fn reply(code: ReplyCode, trans_id: Option<u32>, text: &str) -> AccessMessage {
    AccessMessage::Reply(Reply {
        code,
        trans_id,
        lang: None,
        text: text.to_owned(),
    })
}

/// Queues `message` from `service` to `recipient` through intake.
async fn send(
    ctx: &Context,
    service: &Endpoint,
    recipient: &Endpoint,
    message: &AccessMessage,
) -> Result<(), String> {
    let (data, content) = message.to_data(service.clone(), recipient.clone());
    let payload = Bytes::from(data.to_payload(&content));
    match datagram::parse_request(&payload, usize::MAX) {
        Ok(Request::Data(incoming)) => ctx
            .intake
            .accept(incoming, &crate::identity::Sender::Endpoint)
            .await
            .map(drop)
            .map_err(|e| e.0),
        Ok(_) => Err("not a data".into()),
        Err(refusal) => Err(refusal.text),
    }
}
