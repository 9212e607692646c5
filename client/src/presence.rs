//! Requests to the presence service `apex=presence@<domain>` (RFC 3343):
//! fetch an entry (a `subscribe` of duration 0), publish one's own entry,
//! subscribe to and watch others', end a subscription or watch. Requests
//! go out as a `data` from the attachment's endpoint, which is also the
//! subscriber the service sends updates to; the service's answers and
//! updates come back as datagrams with the request's transID.
//!
//! ```no_run
//! # async fn run(client: imxp_client::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use imxp_apex::Endpoint;
//! use imxp_client::presence;
//!
//! let wilma = Endpoint::parse("wilma@example.com")?;
//! let fred = Endpoint::parse("fred@example.com")?;
//! let mut attachment = client.attach(wilma).await?;
//! let (mut subscription, entry) = presence::subscribe(&mut attachment, &fred, 3600).await?;
//! println!("fred is {}", if entry.is_open(0) { "online" } else { "offline" });
//! while let Some(update) = presence::next_update(&mut attachment, &mut subscription).await? {
//!     println!("update: {update:?}");
//! }
//! # Ok(())
//! # }
//! ```

use crate::{Attachment, ClientError, Received};
use imxp_apex::access::Timestamp;
use imxp_apex::presence::{
    PresenceEntry, PresenceMessage, Publish, Subscribe, TOOL_SUBADDRESS_PREFIX, service_endpoint,
};
use imxp_apex::{Endpoint, MAX_TRANS_ID, ReplyCode};
use rand::Rng as _;

/// How often [`update`] retries when the entry changed between its fetch
/// and its publish (555).
const RETRIES: usize = 3;

/// A fresh tool subaddress of `user` (`fred/tool.presence.1a2b3c4d@…`),
/// for which the relay keeps no presence tuple.
pub fn tool_endpoint(user: &Endpoint) -> Result<Endpoint, ClientError> {
    let tag: u32 = rand::rng().random();
    user.base()
        .with_subaddress(&format!("{TOOL_SUBADDRESS_PREFIX}presence.{tag:08x}"))
        .map_err(|e| ClientError::Protocol(format!("cannot make a tool subaddress: {e}")))
}

/// A random transaction identifier (1..=2^31−1).
pub fn new_trans_id() -> u32 {
    rand::rng().random_range(1..=MAX_TRANS_ID)
}

/// What the presence service sent, if `received` comes from one.
pub fn message_of(received: &Received) -> Option<PresenceMessage> {
    if received.originator.service_name() != Some(imxp_apex::address::PRESENCE_SERVICE) {
        return None;
    }
    PresenceMessage::parse(&received.content).ok()
}

/// Sends `message` to the presence service of `subject`'s domain.
async fn send(
    attachment: &Attachment,
    subject: &Endpoint,
    message: &PresenceMessage,
) -> Result<(), ClientError> {
    let from = attachment.endpoint().clone();
    let (data, content) = message.to_data(from, service_endpoint(subject.domain()));
    attachment.send_data(&data, &content).await
}

/// The next message of the presence service with `trans_id` (others are
/// acknowledged and dropped); `None` when the attachment ends.
async fn next_with(
    attachment: &mut Attachment,
    trans_id: u32,
) -> Result<Option<PresenceMessage>, ClientError> {
    while let Some(mut received) = attachment.next().await {
        if !received.is_answered()
            && let Err(error) = received.ack().await
        {
            tracing::debug!(%error, "acknowledging a datagram failed");
        }
        match message_of(&received) {
            Some(message) if message.trans_id() == Some(trans_id) => return Ok(Some(message)),
            _ => {
                tracing::debug!(originator = %received.originator, "not for this request; dropped")
            }
        }
    }
    Ok(None)
}

fn refused(message: PresenceMessage) -> ClientError {
    match message {
        PresenceMessage::Reply(reply) => ClientError::Refused {
            code: reply.code,
            text: reply.text,
        },
        other => ClientError::Protocol(format!(
            "unexpected <{}> from the presence service",
            other.name()
        )),
    }
}

fn ended() -> ClientError {
    ClientError::Protocol("the attachment ended before the presence service answered".into())
}

/// A subscription in progress, as its subscriber follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Whose presence.
    pub publisher: Endpoint,
    /// Its transID (what `imxp presence unsubscribe` needs).
    pub trans_id: u32,
    /// The service's `timeStamp` of the newest update seen: an update
    /// that arrives later but was sent earlier (a retry overtaken by a
    /// newer one) is skipped.
    newest: Timestamp,
}

/// `subscribe` (RFC 3343 §4.2) to `publisher` for `duration` seconds (0:
/// a one-time fetch). Returns the subscription and the entry as the
/// service shows it now.
pub async fn subscribe(
    attachment: &mut Attachment,
    publisher: &Endpoint,
    duration: u32,
) -> Result<(Subscription, PresenceEntry), ClientError> {
    let trans_id = new_trans_id();
    let request = PresenceMessage::Subscribe(Subscribe {
        publisher: publisher.clone(),
        duration,
        trans_id,
    });
    send(attachment, publisher, &request).await?;
    match next_with(attachment, trans_id).await?.ok_or_else(ended)? {
        PresenceMessage::Publish(publish) => Ok((
            Subscription {
                publisher: publisher.clone(),
                trans_id,
                newest: publish.time_stamp,
            },
            publish.presence,
        )),
        other => Err(refused(other)),
    }
}

/// The entry of `publisher` as the service shows it to this attachment's
/// endpoint (a `subscribe` of duration 0).
pub async fn fetch(
    attachment: &mut Attachment,
    publisher: &Endpoint,
) -> Result<PresenceEntry, ClientError> {
    Ok(subscribe(attachment, publisher, 0).await?.1)
}

/// The next update of `subscription`: `Some(entry)`, or `None` once the
/// service ended it (`terminate`: its duration ran out) or the attachment
/// ended. Updates older than one already returned are skipped.
pub async fn next_update(
    attachment: &mut Attachment,
    subscription: &mut Subscription,
) -> Result<Option<PresenceEntry>, ClientError> {
    loop {
        match next_with(attachment, subscription.trans_id).await? {
            Some(PresenceMessage::Publish(publish)) => {
                if publish.time_stamp < subscription.newest {
                    tracing::debug!(time_stamp = %publish.time_stamp, "an overtaken update; skipped");
                    continue;
                }
                subscription.newest = publish.time_stamp;
                return Ok(Some(publish.presence));
            }
            Some(PresenceMessage::Terminate { .. }) | None => return Ok(None),
            Some(other) => return Err(refused(other)),
        }
    }
}

/// `watch` (RFC 3343 §4.3) the subscribers of `publisher` for `duration`
/// seconds; returns the transID once the service accepted it. Then read
/// the `notify`s with [`next_notice`].
pub async fn watch(
    attachment: &mut Attachment,
    publisher: &Endpoint,
    duration: u32,
) -> Result<u32, ClientError> {
    let trans_id = new_trans_id();
    let request = PresenceMessage::Watch(Subscribe {
        publisher: publisher.clone(),
        duration,
        trans_id,
    });
    send(attachment, publisher, &request).await?;
    match next_with(attachment, trans_id).await?.ok_or_else(ended)? {
        PresenceMessage::Reply(reply) if reply.code == ReplyCode::APEX_OK => Ok(trans_id),
        other => Err(refused(other)),
    }
}

/// The next `notify` of watch `trans_id`, or `None` once it ended.
pub async fn next_notice(
    attachment: &mut Attachment,
    trans_id: u32,
) -> Result<Option<imxp_apex::presence::Notify>, ClientError> {
    match next_with(attachment, trans_id).await? {
        Some(PresenceMessage::Notify(notify)) => Ok(Some(notify)),
        Some(PresenceMessage::Terminate { .. }) | None => Ok(None),
        Some(other) => Err(refused(other)),
    }
}

/// `terminate` (RFC 3343 §4.5) subscription or watch `trans_id` made by
/// this attachment's endpoint at `publisher`'s service. Updates already on
/// their way may still arrive.
pub async fn terminate(
    attachment: &mut Attachment,
    publisher: &Endpoint,
    trans_id: u32,
) -> Result<(), ClientError> {
    send(
        attachment,
        publisher,
        &PresenceMessage::Terminate { trans_id },
    )
    .await?;
    loop {
        match next_with(attachment, trans_id).await?.ok_or_else(ended)? {
            PresenceMessage::Reply(reply) if reply.code == ReplyCode::APEX_OK => return Ok(()),
            // An update that was already on its way.
            PresenceMessage::Publish(_) | PresenceMessage::Notify(_) => {}
            other => return Err(refused(other)),
        }
    }
}

/// `publish` (RFC 3343 §4.4) `entry`, whose `lastUpdate` must be the
/// stored entry's (555 otherwise: fetch again).
pub async fn publish(attachment: &mut Attachment, entry: PresenceEntry) -> Result<(), ClientError> {
    let trans_id = new_trans_id();
    let publisher = entry.publisher.clone();
    let request = PresenceMessage::Publish(Box::new(Publish {
        publisher: publisher.clone(),
        trans_id,
        time_stamp: Timestamp::from_unix_millis(now_ms()),
        presence: entry,
    }));
    send(attachment, &publisher, &request).await?;
    match next_with(attachment, trans_id).await?.ok_or_else(ended)? {
        PresenceMessage::Reply(reply) if reply.code == ReplyCode::APEX_OK => Ok(()),
        other => Err(refused(other)),
    }
}

/// Fetches `publisher`'s entry, changes it with `change`, publishes it;
/// again when it changed in between (555). Returns what was published.
pub async fn update(
    attachment: &mut Attachment,
    publisher: &Endpoint,
    change: impl Fn(PresenceEntry) -> PresenceEntry,
) -> Result<PresenceEntry, ClientError> {
    let mut tries = 0;
    loop {
        let current = fetch(attachment, publisher).await?;
        let next = change(current);
        match publish(attachment, next.clone()).await {
            Err(ClientError::Refused { code, .. })
                if code == ReplyCode::TRANSACTION_IN_PROGRESS && tries < RETRIES =>
            {
                tries += 1;
            }
            Err(error) => return Err(error),
            Ok(()) => return Ok(next),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
