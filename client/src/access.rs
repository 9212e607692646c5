//! Requests to the access service `apex=access@<domain>` (RFC 3341): a
//! `query`, `get`, `set` or imxp's `list` goes out as a `data` from an
//! endpoint this application is attached as, and the service's answer
//! comes back as a datagram with the same transID.
//!
//! Use a dedicated attachment (e.g. a fresh subaddress of the owner,
//! [`private_endpoint`]): [`call`] reads and acknowledges the datagrams
//! arriving on it until the answer shows up, dropping anything else.
//! TransIDs are random, so that two requests never look alike to the
//! relay's duplicate detection.
//!
//! ```no_run
//! # async fn run(client: imxp_client::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use imxp_apex::{Endpoint, access::Actor};
//! use imxp_client::access;
//!
//! let owner = Endpoint::parse("fred@example.com")?;
//! let mut attachment = client.attach(access::private_endpoint(&owner)?).await?;
//! access::block(&mut attachment, &owner, &Actor::parse("barney@example.com")?).await?;
//! for entry in access::list(&mut attachment, &owner).await? {
//!     println!("{} {:?}", entry.actor, entry.actions.map(|a| a.to_string()));
//! }
//! # Ok(())
//! # }
//! ```

use crate::{Attachment, ClientError};
use imxp_apex::access::{
    AccessEntry, AccessMessage, Action, Actions, Actor, CORE_DATA, Get, Query, Set,
    service_endpoint,
};
use imxp_apex::{Endpoint, MAX_TRANS_ID, ReplyCode};
use rand::Rng as _;

/// How often [`allow`] and [`block`] retry when the entry changed between
/// their `get` and `set` (555).
const RETRIES: usize = 3;

/// A fresh subaddress of `owner` to attach as for access requests, so that
/// answers do not mix with the owner's own datagrams.
pub fn private_endpoint(owner: &Endpoint) -> Result<Endpoint, ClientError> {
    let tag: u32 = rand::rng().random();
    owner
        .base()
        .with_subaddress(&format!(
            "{}access.{tag:08x}",
            imxp_apex::presence::TOOL_SUBADDRESS_PREFIX
        ))
        .map_err(|e| ClientError::Protocol(format!("cannot make a private subaddress: {e}")))
}

/// A random transaction identifier (1..=2^31−1).
pub fn new_trans_id() -> u32 {
    rand::rng().random_range(1..=MAX_TRANS_ID)
}

/// Sends `message` to the access service of the attachment's endpoint's
/// domain and waits for the datagram answering it (same transID, from
/// that service). Every datagram read on the way is acknowledged.
pub async fn call(
    attachment: &mut Attachment,
    message: &AccessMessage,
) -> Result<AccessMessage, ClientError> {
    let from = attachment.endpoint().clone();
    let service = service_endpoint(from.domain());
    let trans_id = message.trans_id();
    let (data, content) = message.to_data(from, service.clone());
    attachment.send_data(&data, &content).await?;
    while let Some(mut received) = attachment.next().await {
        if !received.is_answered()
            && let Err(error) = received.ack().await
        {
            tracing::debug!(%error, "acknowledging a datagram failed");
        }
        if received.originator != service {
            tracing::debug!(originator = %received.originator, "not from the access service; dropped");
            continue;
        }
        let answer = match AccessMessage::parse(&received.content) {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(%error, "unreadable access service datagram; dropped");
                continue;
            }
        };
        let same = answer.trans_id() == trans_id
            || matches!(&answer, AccessMessage::Reply(r) if r.trans_id.is_none());
        if same && answers(message, &answer) {
            return Ok(answer);
        }
        tracing::debug!(
            answer = answer.name(),
            "an answer to another request; dropped"
        );
    }
    Err(ClientError::Protocol(
        "the attachment ended before the access service answered".into(),
    ))
}

/// True if `answer` is a possible answer to `request` (RFC 3341 §6
/// synopsis): a `set` notification to the owner carries the transID of the
/// `set` that caused it and must not be taken for its answer.
fn answers(request: &AccessMessage, answer: &AccessMessage) -> bool {
    matches!(
        (request, answer),
        (_, AccessMessage::Reply(_))
            | (
                AccessMessage::Query(_),
                AccessMessage::Allow { .. } | AccessMessage::Deny { .. }
            )
            | (AccessMessage::Get(_), AccessMessage::Set(_))
            | (AccessMessage::List { .. }, AccessMessage::Entries { .. })
    )
}

fn refused(answer: AccessMessage) -> ClientError {
    match answer {
        AccessMessage::Reply(reply) => ClientError::Refused {
            code: reply.code,
            text: reply.text,
        },
        other => ClientError::Protocol(format!(
            "unexpected <{}> from the access service",
            other.name()
        )),
    }
}

/// `query` (RFC 3341 §4.2): does `owner` grant `actor` all of `actions`?
pub async fn query(
    attachment: &mut Attachment,
    owner: &Endpoint,
    actor: &Endpoint,
    actions: &Actions,
) -> Result<bool, ClientError> {
    let message = AccessMessage::Query(Query {
        owner: owner.clone(),
        actor: actor.clone(),
        actions: actions.clone(),
        trans_id: new_trans_id(),
    });
    match call(attachment, &message).await? {
        AccessMessage::Allow { .. } => Ok(true),
        AccessMessage::Deny { .. } => Ok(false),
        other => Err(refused(other)),
    }
}

/// `get` (RFC 3341 §4.3): the entry of `owner` whose actor is `actor`
/// literally, or `None` (551).
pub async fn get(
    attachment: &mut Attachment,
    owner: &Endpoint,
    actor: &Actor,
) -> Result<Option<AccessEntry>, ClientError> {
    let message = AccessMessage::Get(Get {
        owner: owner.clone(),
        actor: actor.clone(),
        trans_id: new_trans_id(),
    });
    match call(attachment, &message).await? {
        AccessMessage::Set(set) => Ok(Some(set.entry)),
        AccessMessage::Reply(reply) if reply.code == ReplyCode::NO_SUCH_ACCESS_ENTRY => Ok(None),
        other => Err(refused(other)),
    }
}

/// `set` (RFC 3341 §4.4): create (no `last_update`), replace or delete (no
/// `actions`) an entry. 555 means the entry changed since `last_update`.
pub async fn set(attachment: &mut Attachment, entry: AccessEntry) -> Result<(), ClientError> {
    let message = AccessMessage::Set(Set {
        trans_id: new_trans_id(),
        entry,
    });
    match call(attachment, &message).await? {
        AccessMessage::Reply(reply) if reply.code == ReplyCode::APEX_OK => Ok(()),
        other => Err(refused(other)),
    }
}

/// The explicit entries of `owner` (imxp's `list` extension).
pub async fn list(
    attachment: &mut Attachment,
    owner: &Endpoint,
) -> Result<Vec<AccessEntry>, ClientError> {
    let message = AccessMessage::List {
        owner: owner.clone(),
        trans_id: new_trans_id(),
    };
    match call(attachment, &message).await? {
        AccessMessage::Entries { entries, .. } => Ok(entries),
        other => Err(refused(other)),
    }
}

/// Lets `actor` send data to `owner`: adds `core:data` to the entry for
/// `actor` (creating it). Returns the actions now stored.
pub async fn allow(
    attachment: &mut Attachment,
    owner: &Endpoint,
    actor: &Actor,
) -> Result<Actions, ClientError> {
    grant(attachment, owner, actor, &Actions::core_data()).await
}

/// Grants `actor` every action of `actions` on `owner` (e.g.
/// `presence:subscribe presence:watch`, RFC 3343 §5): adds the tokens not
/// granted yet to the entry for `actor` (creating it; an `x:none` token
/// there goes). Returns the actions now stored.
pub async fn grant(
    attachment: &mut Attachment,
    owner: &Endpoint,
    actor: &Actor,
    actions: &Actions,
) -> Result<Actions, ClientError> {
    edit(attachment, owner, actor, |old| {
        // `with` drops an `x:none` token as it adds.
        actions.iter().fold(
            old.cloned().unwrap_or_else(Actions::none),
            |stored, action| {
                if stored.grants(action) {
                    stored
                } else {
                    stored.with(action)
                }
            },
        )
    })
    .await
}

/// Stops `actor` from sending data to `owner` (polite blocking: the actor
/// is not told): removes every token granting `core:data` from the entry
/// for `actor`, or creates it as `all:none`. Returns the actions now
/// stored.
pub async fn block(
    attachment: &mut Attachment,
    owner: &Endpoint,
    actor: &Actor,
) -> Result<Actions, ClientError> {
    let data = Action::parse(CORE_DATA).expect("constant");
    edit(attachment, owner, actor, |old| {
        let kept: Vec<String> = old
            .map(|actions| {
                actions
                    .iter()
                    .filter(|a| !a.grants(&data) && a.operation() != "none")
                    .map(ToString::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if kept.is_empty() {
            Actions::none()
        } else {
            Actions::parse(&kept.join(" ")).expect("tokens that parsed before")
        }
    })
    .await
}

/// get, change, set; again on 555.
async fn edit(
    attachment: &mut Attachment,
    owner: &Endpoint,
    actor: &Actor,
    change: impl Fn(Option<&Actions>) -> Actions,
) -> Result<Actions, ClientError> {
    let mut tries = 0;
    loop {
        let current = get(attachment, owner, actor).await?;
        let actions = change(current.as_ref().and_then(|e| e.actions.as_ref()));
        let entry = AccessEntry {
            owner: owner.clone(),
            actor: actor.clone(),
            actions: Some(actions.clone()),
            last_update: current.and_then(|e| e.last_update),
        };
        match set(attachment, entry).await {
            Err(ClientError::Refused { code, .. })
                if code == ReplyCode::TRANSACTION_IN_PROGRESS && tries < RETRIES =>
            {
                tries += 1;
            }
            Err(error) => return Err(error),
            Ok(()) => return Ok(actions),
        }
    }
}

/// Deletes the entry of `owner` for `actor` (which may widen access again:
/// RFC 3341 §2.3). `Ok(false)` if there was none.
pub async fn remove(
    attachment: &mut Attachment,
    owner: &Endpoint,
    actor: &Actor,
) -> Result<bool, ClientError> {
    let Some(current) = get(attachment, owner, actor).await? else {
        return Ok(false);
    };
    set(
        attachment,
        AccessEntry {
            actions: None,
            ..current
        },
    )
    .await?;
    Ok(true)
}
