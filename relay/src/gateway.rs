//! Gateways to XMPP (RFC 3922, RFC 3923): each `[[gateway]]` is a domain
//! this relay serves whose recipients are XMPP users, reached through the
//! site's XMPP server as an external component (XEP-0114).
//!
//! * **imxp → XMPP** ([`Link::deliver`]): the dispatcher hands a prepared
//!   `data` for `node%domain@<gateway>`; it becomes a `<message/>` from
//!   `escaped-originator@<component>` (XEP-0106). It counts as delivered
//!   only once the server answered a ping (XEP-0199) sent after it on the
//!   same stream: the server handles a stream's stanzas in order, so the
//!   answer means the message was routed, and an error the server
//!   generated for it arrived first (docs/decisions.md, "XMPP gateway").
//! * **XMPP → imxp**: a `<message/>` to a JID at the component becomes a
//!   datagram from `node%domain@<gateway>` and enters the spool through
//!   intake like any other; failures there are answered with a stanza
//!   error.
//!
//! One task per gateway owns the TCP stream: it connects, authenticates
//! (the secret is read from its file at each connection and never
//! logged), serves until the stream ends, and reconnects with a doubling
//! backoff. While it is down, deliveries are deferred.

use crate::config::GatewaySettings;
use crate::context::Context;
use crate::datagram::{self, Request};
use crate::identity::Sender;
use crate::options::{self, Source};
use crate::xmpp::content::{self, Plain};
use crate::xmpp::frame::{Frame, Splitter};
use crate::xmpp::jid::{self, Jid};
use crate::xmpp::stanza::{self, ErrorInfo, Kind, MessageFields, OutMessage, Stanza};
use bytes::Bytes;
use imxp_apex::mime::MimePart;
use imxp_apex::presence::PresenceMessage;
use imxp_apex::{Content, Data, DataHopping, Domain, Endpoint};
use imxp_spool::{Failure, FailureKind, Outcome};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Time allowed to connect and complete the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the server has to answer the ping after a batch.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// First wait before reconnecting.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Messages written before one confirming ping.
const MAX_BATCH: usize = 256;
/// Inbound messages being queued at once, per gateway; beyond it the
/// gateway stops reading the stream until one is done (backpressure).
const MAX_INBOUND: usize = 256;

/// The gateways of a relay, by APEX domain.
#[derive(Default)]
pub(crate) struct Gateways {
    links: HashMap<String, Arc<Link>>,
}

impl Gateways {
    /// Starts one connection task per configured gateway in `tasks`.
    pub(crate) fn start(ctx: &Arc<Context>, tasks: &TaskTracker, stop: &CancellationToken) -> Self {
        let mut links = HashMap::new();
        for settings in &ctx.config().gateways {
            let (commands, receiver) = mpsc::channel(4 * MAX_BATCH);
            let link = Arc::new(Link {
                settings: settings.clone(),
                commands,
                connected: AtomicBool::new(false),
                next_id: AtomicU64::new(1),
                watched: Mutex::new(HashMap::new()),
                watchers: Mutex::new(HashMap::new()),
            });
            tasks.spawn(run(ctx.clone(), link.clone(), receiver, stop.clone()));
            links.insert(settings.domain.clone(), link);
        }
        Self { links }
    }

    /// The gateway serving `domain`.
    pub(crate) fn get(&self, domain: &str) -> Option<&Arc<Link>> {
        self.links.get(&domain.to_ascii_lowercase())
    }
}

/// One gateway: its settings and the way to its connection task.
pub(crate) struct Link {
    settings: GatewaySettings,
    commands: mpsc::Sender<Outgoing>,
    connected: AtomicBool,
    next_id: AtomicU64,
    /// The imxp presentities XMPP users asked to see: (watcher's APEX
    /// local part, subscription transID) → publisher. Kept in memory: the
    /// presence service's answers name only the transID.
    /// Whether the XMPP user was told `subscribed` yet is the `bool`.
    watched: Mutex<HashMap<(String, u32), (Endpoint, bool)>>,
    /// imxp users watching XMPP users through `apex=presence@<gateway>`:
    /// (subscriber endpoint, XMPP user's bare JID) → (transID, the XMPP
    /// user's endpoint, last known availability). In memory.
    watchers: Mutex<HashMap<(String, String), Watching>>,
}

/// An imxp user's subscription to an XMPP user: its transID, the XMPP
/// user's endpoint, whether the XMPP user was last seen available.
type Watching = (u32, Endpoint, bool);

/// A message for the connection task to send, and where its fate goes.
struct Outgoing {
    id: String,
    xml: String,
    done: oneshot::Sender<Fate>,
}

/// What became of a sent message.
#[derive(Debug)]
enum Fate {
    /// The server answered the ping after it: routed.
    Taken,
    /// The server (or the recipient's) answered with an error stanza.
    Error(ErrorInfo),
    /// The stream ended before the ping was answered: unknown.
    Lost(String),
}

impl Link {
    /// Sends the prepared `data` `payload` for `recipient` (an endpoint of
    /// this gateway's domain) from `originator` as a `<message/>`.
    pub(crate) async fn deliver(
        &self,
        ctx: &Context,
        originator: &str,
        recipient: &str,
        payload: &Bytes,
    ) -> Outcome {
        if recipient.starts_with("apex=presence@") {
            return self.serve_presence(ctx, originator, payload).await;
        }
        let stanza = if originator.starts_with("apex=presence@") {
            match self.presence_for(recipient, payload) {
                Ok(Some(stanza)) => stanza,
                Ok(None) => {
                    return Outcome::Delivered {
                        via: Some(format!("xmpp:{}", self.settings.server)),
                    };
                }
                Err(failure) => return Outcome::Failed(failure),
            }
        } else {
            match self.message_for(originator, recipient, payload) {
                Ok(message) => (message.id.clone(), message.to_xml()),
                Err(failure) => return Outcome::Failed(failure),
            }
        };
        self.send_and_confirm(stanza.0, stanza.1).await
    }

    /// Sends one stanza (or several in `xml`, `id` being the one an error
    /// would name) and waits for the ping round trip after it.
    async fn send_and_confirm(&self, id: String, xml: String) -> Outcome {
        let stanza = (id, xml);
        if !self.connected.load(Ordering::Acquire) {
            return Outcome::Deferred(Failure::new(
                FailureKind::Connect,
                format!("the XMPP server {} is not connected", self.settings.server),
            ));
        }
        let (done, fate) = oneshot::channel();
        let send = Outgoing {
            id: stanza.0,
            xml: stanza.1,
            done,
        };
        if self.commands.send(send).await.is_err() {
            return Outcome::Deferred(Failure::new(
                FailureKind::Connect,
                "the gateway is stopping",
            ));
        }
        let via = format!("xmpp:{}", self.settings.server);
        match tokio::time::timeout(ACK_TIMEOUT * 2, fate).await {
            Ok(Ok(Fate::Taken)) => Outcome::Delivered { via: Some(via) },
            Ok(Ok(Fate::Error(error))) => {
                let (code, temporary) = crate::xmpp::reply_code_of(&error);
                let text = format!(
                    "{via}: XMPP error {} ({}){}",
                    error.condition,
                    error.error_type,
                    error.text.map(|t| format!(": {t}")).unwrap_or_default()
                );
                let failure = Failure::new(FailureKind::Reply { code: code.0 }, text);
                if temporary {
                    Outcome::Deferred(failure)
                } else {
                    Outcome::Failed(failure)
                }
            }
            Ok(Ok(Fate::Lost(why))) => {
                Outcome::Deferred(Failure::new(FailureKind::Connect, format!("{via}: {why}")))
            }
            Ok(Err(_)) | Err(_) => Outcome::Deferred(Failure::new(
                FailureKind::Connect,
                format!("{via}: no confirmation from the XMPP server"),
            )),
        }
    }

    /// A fresh stanza id.
    fn stanza_id(&self) -> String {
        format!("imxp-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The presence service of the gateway domain (RFC 3343 §4.2 on the
    /// imxp side, RFC 3922 §6.2 on the XMPP side): an imxp user's
    /// `subscribe` to `node%domain@<gateway>` becomes an XMPP `subscribe`
    /// from the user's JID, answered at once with the XMPP user's entry as
    /// far as the gateway knows it (closed until the XMPP user approves
    /// and is available); a `terminate` becomes `unsubscribe`.
    async fn serve_presence(&self, ctx: &Context, originator: &str, payload: &Bytes) -> Outcome {
        let refuse = |code: imxp_apex::ReplyCode, text: String| {
            Outcome::Failed(Failure::new(FailureKind::Reply { code: code.0 }, text))
        };
        let content = match datagram::parse_stored(payload) {
            Ok((_, content)) => content,
            Err(r) => return refuse(r.code, r.text),
        };
        let message = match PresenceMessage::from_content(&content) {
            Ok(message) => message,
            Err(e) => return refuse(imxp_apex::ReplyCode::PARAMETER_INVALID, e.to_string()),
        };
        let from = jid::endpoint_jid(originator, &self.settings.component).to_string();
        match message {
            PresenceMessage::Subscribe(subscribe) => {
                let publisher = subscribe.publisher;
                if !publisher
                    .domain()
                    .canonical()
                    .eq_ignore_ascii_case(&self.settings.domain)
                {
                    return refuse(
                        imxp_apex::ReplyCode::ACTION_NOT_TAKEN,
                        format!("{publisher} is not an XMPP user of this gateway"),
                    );
                }
                let target = match jid::recipient_jid(&publisher.local()) {
                    Ok(target) => target.to_string(),
                    Err(e) => return refuse(imxp_apex::ReplyCode::ACTION_NOT_TAKEN, e.to_string()),
                };
                let key = (originator.to_owned(), target.clone());
                let available = self
                    .watchers
                    .lock()
                    .get(&key)
                    .is_some_and(|(_, _, available)| *available);
                if subscribe.duration != 0 {
                    let id = self.stanza_id();
                    let outcome = self
                        .send_and_confirm(
                            id.clone(),
                            stanza::presence(&from, &target, &id, Some("subscribe"), None),
                        )
                        .await;
                    if !matches!(outcome, Outcome::Delivered { .. }) {
                        return outcome;
                    }
                    self.watchers
                        .lock()
                        .insert(key, (subscribe.trans_id, publisher.clone(), available));
                }
                match publish_entry(
                    ctx,
                    &self.settings.domain,
                    originator,
                    &publisher,
                    subscribe.trans_id,
                    &target,
                    available,
                )
                .await
                {
                    Ok(()) => Outcome::Delivered {
                        via: Some(format!("xmpp:{}", self.settings.server)),
                    },
                    Err(text) => Outcome::Deferred(Failure::new(FailureKind::Other, text)),
                }
            }
            PresenceMessage::Terminate { trans_id } => {
                let ended = {
                    let mut watchers = self.watchers.lock();
                    let key = watchers
                        .iter()
                        .find(|((subscriber, _), (t, _, _))| {
                            subscriber == originator && *t == trans_id
                        })
                        .map(|(key, _)| key.clone());
                    key.and_then(|key| watchers.remove(&key).map(|_| key.1))
                };
                match ended {
                    Some(target) => {
                        let id = self.stanza_id();
                        self.send_and_confirm(
                            id.clone(),
                            stanza::presence(&from, &target, &id, Some("unsubscribe"), None),
                        )
                        .await
                    }
                    None => Outcome::Delivered {
                        via: Some(format!("xmpp:{}", self.settings.server)),
                    },
                }
            }
            other => refuse(
                imxp_apex::ReplyCode::PARAMETER_NOT_IMPLEMENTED,
                format!("{} is not offered for XMPP users", other.name()),
            ),
        }
    }

    /// What the presence service tells an XMPP watcher, as a presence
    /// stanza (RFC 3922 §5.2, §6.1): a successful subscribe reply is
    /// `subscribed`, a refusal or a terminate `unsubscribed`, a publish
    /// available or unavailable presence from the publisher's JID with the
    /// resource `imxp` (available while any tuple is open). `None`: nothing
    /// to tell (an answer about an unknown subscription, a notify). The
    /// first update of a subscription is preceded by `subscribed`.
    fn presence_for(
        &self,
        recipient: &str,
        payload: &Bytes,
    ) -> Result<Option<(String, String)>, Failure> {
        let invalid = |text: String| {
            Failure::new(
                FailureKind::Reply {
                    code: imxp_apex::ReplyCode::PARAMETER_INVALID.0,
                },
                text,
            )
        };
        let local = recipient
            .rsplit_once('@')
            .map_or(recipient, |(local, _)| local);
        let to = jid::recipient_jid(local).map_err(|e| invalid(e.to_string()))?;
        let (_, content) = datagram::parse_stored(payload)
            .map_err(|r| Failure::new(FailureKind::Reply { code: r.code.0 }, r.text))?;
        let message =
            PresenceMessage::from_content(&content).map_err(|e| invalid(e.to_string()))?;
        let component = &self.settings.component;
        let from_publisher =
            |publisher: &Endpoint| jid::endpoint_jid(&publisher.to_string(), component).to_string();
        let id = self.stanza_id();
        let to = to.to_string();
        let stanza = match message {
            PresenceMessage::Reply(reply) => {
                let Some(trans_id) = reply.trans_id else {
                    return Ok(None);
                };
                let key = (local.to_owned(), trans_id);
                let mut watched = self.watched.lock();
                if reply.code.is_positive() {
                    let Some((publisher, told)) = watched.get_mut(&key) else {
                        return Ok(None);
                    };
                    if *told {
                        return Ok(None);
                    }
                    *told = true;
                    stanza::presence(
                        &from_publisher(publisher),
                        &to,
                        &id,
                        Some("subscribed"),
                        None,
                    )
                } else {
                    let Some((publisher, _)) = watched.remove(&key) else {
                        return Ok(None);
                    };
                    stanza::presence(
                        &from_publisher(&publisher),
                        &to,
                        &id,
                        Some("unsubscribed"),
                        None,
                    )
                }
            }
            PresenceMessage::Terminate { trans_id } => {
                let Some((publisher, _)) =
                    self.watched.lock().remove(&(local.to_owned(), trans_id))
                else {
                    return Ok(None);
                };
                stanza::presence(
                    &from_publisher(&publisher),
                    &to,
                    &id,
                    Some("unsubscribed"),
                    None,
                )
            }
            PresenceMessage::Publish(publish) => {
                let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
                let open = publish.presence.is_open(now);
                let publisher_jid = from_publisher(&publish.publisher);
                let from = format!("{publisher_jid}/imxp");
                // The first update of a subscription is also its
                // acceptance (RFC 3343 §4.2 answers a subscribe with the
                // entry): `subscribed` first, so that the server lets the
                // presence through (RFC 6121 §3.1.5).
                let mut first = String::new();
                if let Some((_, told)) = self
                    .watched
                    .lock()
                    .get_mut(&(local.to_owned(), publish.trans_id))
                    && !*told
                {
                    *told = true;
                    first = stanza::presence(
                        &publisher_jid,
                        &to,
                        &self.stanza_id(),
                        Some("subscribed"),
                        None,
                    );
                }
                let availability = if open {
                    stanza::presence(&from, &to, &id, None, None)
                } else {
                    stanza::presence(&from, &to, &id, Some("unavailable"), None)
                };
                first + &availability
            }
            PresenceMessage::Subscribe(_)
            | PresenceMessage::Watch(_)
            | PresenceMessage::Notify(_) => return Ok(None),
        };
        Ok(Some((id, stanza)))
    }

    /// The stanza for one recipient (RFC 3922 §4.2, RFC 3923 §8).
    fn message_for(
        &self,
        originator: &str,
        recipient: &str,
        payload: &Bytes,
    ) -> Result<OutMessage, Failure> {
        let refuse = |code: imxp_apex::ReplyCode, text: String| {
            Failure::new(FailureKind::Reply { code: code.0 }, text)
        };
        let local = recipient
            .rsplit_once('@')
            .map_or(recipient, |(local, _)| local);
        let to = jid::recipient_jid(local)
            .map_err(|e| refuse(imxp_apex::ReplyCode::PARAMETER_INVALID, e.to_string()))?;
        if to.domain == self.settings.component {
            return Err(refuse(
                imxp_apex::ReplyCode::ACTION_NOT_TAKEN,
                format!("{to} is this gateway's own component: a loop"),
            ));
        }
        let from = jid::endpoint_jid(originator, &self.settings.component);
        let (data, content) = datagram::parse_stored(payload)
            .map_err(|r| Failure::new(FailureKind::Reply { code: r.code.0 }, r.text))?;
        let hops = data
            .data_hopping()
            .ok()
            .flatten()
            .map(|(_, h)| h.no_more_than)
            .filter(|&n| n != 0);
        let Content::Part(part) = content else {
            return Err(refuse(
                imxp_apex::ReplyCode::PARAMETER_NOT_IMPLEMENTED,
                "only content in a MIME part can cross into XMPP".into(),
            ));
        };
        let content_type = part.content_type();
        let not_mapped = |e: content::ContentError| {
            refuse(
                imxp_apex::ReplyCode::PARAMETER_NOT_IMPLEMENTED,
                e.to_string(),
            )
        };
        let (mut fields, message_type) = if content::is_protected(&content_type) {
            let e2e = content::e2e_text(&content_type, part.body()).map_err(not_mapped)?;
            (
                MessageFields {
                    e2e: Some(e2e),
                    ..MessageFields::default()
                },
                None,
            )
        } else {
            content::to_plain(&content_type, part.body())
                .map_err(not_mapped)?
                .into_fields()
        };
        fields.hops = hops;
        let id = format!("imxp-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        Ok(OutMessage {
            from: from.to_string(),
            to: to.to_string(),
            id,
            message_type: message_type
                .filter(|t| matches!(t.as_str(), "chat" | "normal" | "headline"))
                .unwrap_or_else(|| "chat".to_owned()),
            fields,
        })
    }
}

/// The connection task of one gateway, until `stop`.
async fn run(
    ctx: Arc<Context>,
    link: Arc<Link>,
    mut commands: mpsc::Receiver<Outgoing>,
    stop: CancellationToken,
) {
    let settings = link.settings.clone();
    let mut backoff = MIN_BACKOFF;
    loop {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            connected = tokio::time::timeout(CONNECT_TIMEOUT, connect(&settings)) => connected,
        };
        match connected {
            Ok(Ok((stream, splitter))) => {
                tracing::info!(gateway = %settings.domain, server = %settings.server, component = %settings.component, "XMPP component stream established");
                backoff = MIN_BACKOFF;
                link.connected.store(true, Ordering::Release);
                let ended = serve(&ctx, &link, stream, splitter, &mut commands, &stop).await;
                link.connected.store(false, Ordering::Release);
                match ended {
                    Ok(()) => return,
                    Err(why) => {
                        tracing::warn!(gateway = %settings.domain, server = %settings.server, %why, "XMPP component stream ended");
                    }
                }
            }
            Ok(Err(why)) => {
                tracing::warn!(gateway = %settings.domain, server = %settings.server, %why, "XMPP component connection failed");
            }
            Err(_) => {
                tracing::warn!(gateway = %settings.domain, server = %settings.server, "XMPP component connection timed out");
            }
        }
        // Down: whatever is asked now is deferred.
        let wake = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(wake) => break,
                send = commands.recv() => match send {
                    Some(send) => {
                        let _ = send.done.send(Fate::Lost("the XMPP server is not connected".into()));
                    }
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(settings.max_backoff);
    }
}

/// Connects and authenticates (XEP-0114 §3).
async fn connect(settings: &GatewaySettings) -> Result<(TcpStream, Splitter), String> {
    let mut stream = TcpStream::connect(&settings.server)
        .await
        .map_err(|e| format!("connecting to {}: {e}", settings.server))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let secret = std::fs::read_to_string(&settings.secret_file).map_err(|e| {
        format!(
            "reading the secret file {}: {e}",
            settings.secret_file.display()
        )
    })?;
    let secret = secret.trim_end_matches(['\r', '\n']);
    stream
        .write_all(stanza::stream_header(&settings.component).as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut splitter = Splitter::new(settings.max_stanza_size);
    let mut buffer = vec![0u8; 16 * 1024];
    let mut handshake_sent = false;
    loop {
        while let Some(frame) = splitter.next_frame().map_err(|e| e.to_string())? {
            match frame {
                Frame::Open(header) => {
                    let id =
                        stanza::stream_id(&header).ok_or("the server's stream header has no id")?;
                    stream
                        .write_all(stanza::handshake(&id, secret).as_bytes())
                        .await
                        .map_err(|e| e.to_string())?;
                    handshake_sent = true;
                }
                Frame::Stanza(bytes) if handshake_sent => {
                    let text = String::from_utf8_lossy(&bytes);
                    if text.starts_with("<handshake") {
                        return Ok((stream, splitter));
                    }
                    return Err(format!(
                        "the server refused the component: {}",
                        stream_error(&text)
                    ));
                }
                Frame::Close => {
                    return Err("the server closed the stream during the handshake".into());
                }
                Frame::Stanza(_) | Frame::Oversized(_) => {
                    return Err("unexpected data before the handshake".into());
                }
            }
        }
        let read = stream.read(&mut buffer).await.map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("the server closed the connection during the handshake".into());
        }
        splitter.push(&buffer[..read]);
    }
}

/// The condition of a `<stream:error/>`, or the element's name.
fn stream_error(text: &str) -> String {
    match imxp_wire::xml::parse(text.as_bytes(), &imxp_wire::xml::XmlLimits::new(8192, 8)) {
        Ok(document) => document
            .root
            .elements()
            .next()
            .map_or_else(|| document.root.name.clone(), |c| c.name.clone()),
        Err(_) => "an unreadable answer".into(),
    }
}

/// Per-XMPP-domain message counts in the current minute.
#[derive(Default)]
struct RateLimit {
    minute: u64,
    counts: HashMap<String, u32>,
}

impl RateLimit {
    fn admit(&mut self, domain: &str, now_ms: u64, limit: u32) -> bool {
        let minute = now_ms / 60_000;
        if minute != self.minute {
            self.minute = minute;
            self.counts.clear();
        }
        let count = self.counts.entry(domain.to_owned()).or_default();
        *count += 1;
        *count <= limit
    }
}

/// Serves an established stream until it ends (`Ok` on `stop`).
async fn serve(
    ctx: &Arc<Context>,
    link: &Arc<Link>,
    stream: TcpStream,
    mut splitter: Splitter,
    commands: &mut mpsc::Receiver<Outgoing>,
    stop: &CancellationToken,
) -> Result<(), String> {
    let settings = &link.settings;
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    let mut pending: HashMap<String, oneshot::Sender<Fate>> = HashMap::new();
    let mut batches: VecDeque<(String, Vec<String>, tokio::time::Instant)> = VecDeque::new();
    let mut next_ping = 1u64;
    let (replies, mut reply_queue) = mpsc::unbounded_channel::<String>();
    let inbound = Arc::new(tokio::sync::Semaphore::new(MAX_INBOUND));
    let limits = Arc::new(Mutex::new(RateLimit::default()));
    let mut buffer = vec![0u8; 64 * 1024];
    let lose_all = |pending: &mut HashMap<String, oneshot::Sender<Fate>>, why: &str| {
        for (_, done) in pending.drain() {
            let _ = done.send(Fate::Lost(why.to_owned()));
        }
    };
    loop {
        let deadline = batches.front().map(|(_, _, sent)| *sent + ACK_TIMEOUT);
        tokio::select! {
            () = stop.cancelled() => {
                let _ = writer.write_all(b"</stream:stream>").await;
                let _ = writer.flush().await;
                lose_all(&mut pending, "the relay is stopping");
                return Ok(());
            }
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                lose_all(&mut pending, "the XMPP server did not answer the ping");
                return Err("the XMPP server did not answer a ping in time".into());
            }
            send = commands.recv() => {
                let Some(first) = send else { return Ok(()) };
                let mut batch = Vec::new();
                let mut next = Some(first);
                while let Some(send) = next {
                    writer.write_all(send.xml.as_bytes()).await.map_err(|e| e.to_string())?;
                    pending.insert(send.id.clone(), send.done);
                    batch.push(send.id);
                    next = if batch.len() < MAX_BATCH { commands.try_recv().ok() } else { None };
                }
                let ping_id = format!("imxp-ping-{next_ping}");
                next_ping += 1;
                let server_domain = settings.component.split_once('.').map_or(settings.component.as_str(), |(_, parent)| parent);
                writer
                    .write_all(stanza::ping(&settings.component, server_domain, &ping_id).as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                writer.flush().await.map_err(|e| e.to_string())?;
                batches.push_back((ping_id, batch, tokio::time::Instant::now()));
            }
            reply = reply_queue.recv() => {
                if let Some(reply) = reply {
                    writer.write_all(reply.as_bytes()).await.map_err(|e| e.to_string())?;
                    while let Ok(more) = reply_queue.try_recv() {
                        writer.write_all(more.as_bytes()).await.map_err(|e| e.to_string())?;
                    }
                    writer.flush().await.map_err(|e| e.to_string())?;
                }
            }
            read = reader.read(&mut buffer) => {
                let read = match read {
                    Ok(0) => {
                        lose_all(&mut pending, "the XMPP server closed the connection");
                        return Err("the XMPP server closed the connection".into());
                    }
                    Ok(read) => read,
                    Err(error) => {
                        lose_all(&mut pending, "the connection to the XMPP server broke");
                        return Err(error.to_string());
                    }
                };
                splitter.push(&buffer[..read]);
                loop {
                    let frame = match splitter.next_frame() {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break,
                        Err(error) => {
                            lose_all(&mut pending, "the XMPP stream broke");
                            return Err(error.to_string());
                        }
                    };
                    match frame {
                        Frame::Stanza(bytes) => {
                            let stanza = match stanza::parse(&bytes, settings.max_stanza_size) {
                                Ok(stanza) => stanza,
                                Err(error) => {
                                    if String::from_utf8_lossy(&bytes).starts_with("<stream:error") {
                                        lose_all(&mut pending, "the XMPP server sent a stream error");
                                        return Err(format!("stream error: {}", stream_error(&String::from_utf8_lossy(&bytes))));
                                    }
                                    tracing::info!(gateway = %settings.domain, %error, "unreadable stanza from XMPP dropped");
                                    continue;
                                }
                            };
                            handle(ctx, link, stanza, &mut pending, &mut batches, &replies, &inbound, &limits).await;
                        }
                        Frame::Oversized(head) => {
                            refuse_oversized(settings, &head, &replies);
                        }
                        Frame::Close => {
                            lose_all(&mut pending, "the XMPP server closed the stream");
                            return Err("the XMPP server closed the stream".into());
                        }
                        Frame::Open(_) => {
                            lose_all(&mut pending, "the XMPP server reopened the stream");
                            return Err("a second stream header".into());
                        }
                    }
                }
            }
        }
    }
}

/// One stanza from the server.
#[allow(clippy::too_many_arguments)]
async fn handle(
    ctx: &Arc<Context>,
    link: &Arc<Link>,
    stanza: Stanza,
    pending: &mut HashMap<String, oneshot::Sender<Fate>>,
    batches: &mut VecDeque<(String, Vec<String>, tokio::time::Instant)>,
    replies: &mpsc::UnboundedSender<String>,
    inbound: &Arc<tokio::sync::Semaphore>,
    limits: &Arc<Mutex<RateLimit>>,
) {
    let settings = &link.settings;
    let is_error = stanza.stanza_type.as_deref() == Some("error");
    match stanza.kind {
        Kind::Iq if matches!(stanza.stanza_type.as_deref(), Some("result" | "error")) => {
            // A ping's answer confirms its batch and every one before it
            // (the server answers in order).
            let Some(id) = stanza.id.as_deref() else {
                return;
            };
            if let Some(position) = batches.iter().position(|(ping, _, _)| ping == id) {
                for (_, batch, _) in batches.drain(..=position) {
                    for message in batch {
                        if let Some(done) = pending.remove(&message) {
                            let _ = done.send(Fate::Taken);
                        }
                    }
                }
            }
        }
        Kind::Iq => {
            // Requests to the component: answer pings, refuse the rest
            // (RFC 6120 §8.2.3: every get/set gets an answer).
            let (Some(from), Some(to)) = (stanza.from.as_deref(), stanza.to.as_deref()) else {
                return;
            };
            let is_ping = stanza
                .element
                .elements()
                .any(|c| c.name == "ping" && c.attribute("xmlns") == Some("urn:xmpp:ping"));
            let answer = if is_ping && stanza.stanza_type.as_deref() == Some("get") {
                format!(
                    "<iq from='{}' to='{}' id='{}' type='result'/>",
                    stanza::escape(to),
                    stanza::escape(from),
                    stanza::escape(stanza.id.as_deref().unwrap_or(""))
                )
            } else {
                stanza::error_reply(
                    Kind::Iq,
                    from,
                    to,
                    stanza.id.as_deref(),
                    "cancel",
                    "service-unavailable",
                    "not offered by this gateway",
                )
            };
            let _ = replies.send(answer);
        }
        Kind::Message if is_error => {
            let fields = stanza.message_fields().unwrap_or_default();
            let error = fields.error.unwrap_or_else(|| ErrorInfo {
                error_type: "cancel".into(),
                condition: "undefined-condition".into(),
                text: None,
            });
            match stanza.id.as_deref().and_then(|id| pending.remove(id)) {
                Some(done) => {
                    let _ = done.send(Fate::Error(error));
                }
                None => tracing::info!(
                    gateway = %settings.domain,
                    from = stanza.from.as_deref().unwrap_or(""),
                    condition = %error.condition,
                    "XMPP error for a message already confirmed or unknown; dropped"
                ),
            }
        }
        Kind::Message | Kind::Presence => {
            // Backpressure: with MAX_INBOUND messages and presence stanzas
            // being queued, stop reading the stream until one is done (TCP
            // tells the server).
            let Ok(permit) = inbound.clone().acquire_owned().await else {
                return;
            };
            let ctx = ctx.clone();
            let link = link.clone();
            let replies = replies.clone();
            let limits = limits.clone();
            let presence = matches!(stanza.kind, Kind::Presence);
            tokio::spawn(async move {
                let accepted = if presence {
                    accept_presence(&ctx, &link, &stanza, &limits).await
                } else {
                    accept(&ctx, &link, &stanza, &limits).await
                };
                if let Err((error_type, condition, text)) = accepted {
                    tracing::info!(
                        gateway = %link.settings.domain,
                        from = stanza.from.as_deref().unwrap_or(""),
                        condition,
                        reason = %text,
                        "{} from XMPP refused",
                        if presence { "presence" } else { "message" }
                    );
                    answer_error(&replies, &stanza, error_type, condition, &text);
                }
                drop(permit);
            });
        }
    }
}

fn answer_error(
    replies: &mpsc::UnboundedSender<String>,
    stanza: &Stanza,
    error_type: &str,
    condition: &str,
    text: &str,
) {
    if stanza.stanza_type.as_deref() == Some("error") {
        return;
    }
    let (Some(from), Some(to)) = (stanza.from.as_deref(), stanza.to.as_deref()) else {
        return;
    };
    let _ = replies.send(stanza::error_reply(
        stanza.kind,
        from,
        to,
        stanza.id.as_deref(),
        error_type,
        condition,
        text,
    ));
}

/// A stanza over the size limit: `policy-violation` (RFC 6120 §8.3.3.12).
fn refuse_oversized(
    settings: &GatewaySettings,
    head: &[u8],
    replies: &mpsc::UnboundedSender<String>,
) {
    let head = String::from_utf8_lossy(head);
    let empty = format!(
        "{}/>",
        head.trim_end().trim_end_matches('>').trim_end_matches('/')
    );
    match stanza::parse(empty.as_bytes(), settings.max_stanza_size) {
        Ok(stanza) => {
            tracing::info!(gateway = %settings.domain, from = stanza.from.as_deref().unwrap_or(""), limit = settings.max_stanza_size, "oversized stanza refused");
            answer_error(
                replies,
                &stanza,
                "modify",
                "policy-violation",
                &format!("stanzas are limited to {} octets", settings.max_stanza_size),
            );
        }
        Err(error) => {
            tracing::info!(gateway = %settings.domain, %error, "oversized unreadable stanza dropped")
        }
    }
}

type StanzaRefusal = (&'static str, &'static str, String);

/// XMPP → imxp: the message as a datagram, durably queued.
async fn accept(
    ctx: &Arc<Context>,
    link: &Link,
    stanza: &Stanza,
    limits: &Mutex<RateLimit>,
) -> Result<(), StanzaRefusal> {
    let settings = &link.settings;
    let bad = |condition: &'static str, text: String| ("modify", condition, text);
    let from = Jid::parse(stanza.from.as_deref().unwrap_or(""))
        .map_err(|e| bad("jid-malformed", e.to_string()))?;
    let to = Jid::parse(stanza.to.as_deref().unwrap_or(""))
        .map_err(|e| bad("jid-malformed", e.to_string()))?;
    if stanza.stanza_type.as_deref() == Some("groupchat") {
        return Err((
            "cancel",
            "feature-not-implemented",
            "groupchat does not cross this gateway".into(),
        ));
    }
    if !limits.lock().admit(
        &from.domain,
        ctx.now_ms(),
        settings.max_per_domain_per_minute,
    ) {
        return Err((
            "wait",
            "resource-constraint",
            format!("{} sends too many messages; try later", from.domain),
        ));
    }
    let fields = stanza
        .message_fields()
        .map_err(|e| bad("bad-request", e.to_string()))?;
    if fields.body.is_none() && fields.e2e.is_none() {
        // Chat states, receipts and the like: nothing to carry.
        return Ok(());
    }
    let local = jid::apex_local_of(&from).map_err(|e| bad("jid-malformed", e.to_string()))?;
    let originator = Endpoint::parse(&format!("{local}@{}", settings.domain))
        .map_err(|e| bad("jid-malformed", format!("{local}: {e}")))?;
    let recipient_text =
        jid::endpoint_of(&to).map_err(|e| ("cancel", "item-not-found", e.to_string()))?;
    let recipient = Endpoint::parse(&recipient_text)
        .map_err(|e| ("cancel", "item-not-found", e.to_string()))?;
    if recipient.is_service() {
        return Err((
            "cancel",
            "forbidden",
            "APEX services are not reachable from XMPP".into(),
        ));
    }
    let domain = Domain::parse(&settings.domain)
        .map_err(|e| ("cancel", "internal-server-error", e.to_string()))?;
    let part = match &fields.e2e {
        Some(e2e) => {
            let (content_type, body) =
                content::from_e2e(e2e).map_err(|e| bad("bad-request", e.to_string()))?;
            MimePart::new(&content_type, &body, &domain)
        }
        None => {
            let plain = Plain {
                body: fields.body.clone(),
                subject: fields.subject.clone(),
                thread: fields.thread.clone(),
                message_type: stanza.stanza_type.clone(),
            };
            let bare_from = format!("{}", from);
            let date_time = imxp_wire::datetime::rfc3339_seconds(ctx.now_ms() / 1000);
            let cpim = content::from_plain(&bare_from, &recipient_text, &date_time, &plain);
            MimePart::new("message/cpim", &cpim, &domain)
        }
    }
    .map_err(|e| bad("bad-request", e.to_string()))?;
    let mut data = Data::new(originator, [recipient]);
    let hops = fields
        .hops
        .filter(|&n| n != 0)
        .unwrap_or(ctx.config().options.default_hops);
    if hops != 0 {
        data.options.push(
            DataHopping {
                no_more_than: hops,
                report_errors: false,
            }
            .to_option(options::fresh_trans_id()),
        );
    }
    let content = Content::Part(part);
    let payload = Bytes::from(data.to_payload(&content));
    let internal = |text: String| ("wait", "internal-server-error", text);
    let mut incoming = match datagram::parse_request(&payload, ctx.config().max_message_size) {
        Ok(Request::Data(incoming)) => incoming,
        Ok(_) => return Err(internal("not a data".into())),
        Err(refusal) => return Err(bad("policy-violation", refusal.text)),
    };
    options::at_intake(&ctx.config(), &mut incoming, Source::Mesh, ctx.now_ms())
        .map_err(|r| bad("not-acceptable", r.text))?;
    ctx.intake
        .accept(incoming, &Sender::Endpoint)
        .await
        .map_err(|e| internal(e.0))?;
    Ok(())
}

/// Milliseconds since the UNIX epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long a subscription on behalf of an XMPP user asks to last: XMPP
/// subscriptions do not expire; the publisher's relay shortens it to its
/// `[presence] max_duration`.
const SUBSCRIPTION_SECONDS: u32 = 7 * 24 * 3600;

/// The transID of `watcher`'s subscription to `publisher` (`poll`: of a
/// one-time poll): derived from both, so that an `unsubscribe` names the
/// same subscription as the `subscribe` did (RFC 3343 §4.2: a transID
/// identifies the subscription), 1..2^31-1.
fn presence_trans_id(watcher: &str, publisher: &str, poll: bool) -> u32 {
    let input = format!(
        "{watcher}\n{publisher}\n{}",
        if poll { "poll" } else { "subscribe" }
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, input.as_bytes());
    let bytes: [u8; 4] = digest.as_ref()[..4].try_into().unwrap_or_default();
    (u32::from_be_bytes(bytes) & 0x7fff_ffff).max(1)
}

/// XMPP → imxp presence (RFC 3922 §6): `subscribe` becomes an APEX
/// subscribe to the imxp user's presence service on the XMPP user's
/// behalf, `unsubscribe` its terminate, a `probe` a one-time poll (the
/// service answers with the current entry). Presence the XMPP user sends
/// to imxp users (`subscribed`, availability) is not mapped
/// (docs/decisions.md, "XMPP gateway").
async fn accept_presence(
    ctx: &Arc<Context>,
    link: &Link,
    stanza: &Stanza,
    limits: &Mutex<RateLimit>,
) -> Result<(), StanzaRefusal> {
    let settings = &link.settings;
    let bad = |condition: &'static str, text: String| ("modify", condition, text);
    let presence_type = stanza.stanza_type.as_deref().unwrap_or("available");
    if matches!(presence_type, "available" | "unavailable" | "unsubscribed") {
        return availability(ctx, link, stanza, presence_type).await;
    }
    if !matches!(presence_type, "subscribe" | "unsubscribe" | "probe") {
        return Ok(());
    }
    let from = Jid::parse(stanza.from.as_deref().unwrap_or(""))
        .map_err(|e| bad("jid-malformed", e.to_string()))?;
    let to = Jid::parse(stanza.to.as_deref().unwrap_or(""))
        .map_err(|e| bad("jid-malformed", e.to_string()))?;
    if !limits.lock().admit(
        &from.domain,
        ctx.now_ms(),
        settings.max_per_domain_per_minute,
    ) {
        return Err((
            "wait",
            "resource-constraint",
            format!("{} sends too much; try later", from.domain),
        ));
    }
    let local = jid::apex_local_of(&from).map_err(|e| bad("jid-malformed", e.to_string()))?;
    let watcher = Endpoint::parse(&format!("{local}@{}", settings.domain))
        .map_err(|e| bad("jid-malformed", format!("{local}: {e}")))?;
    let publisher = jid::endpoint_of(&to)
        .ok()
        .and_then(|text| Endpoint::parse(&text).ok())
        .filter(|p| !p.is_service())
        .ok_or_else(|| {
            (
                "cancel",
                "item-not-found",
                format!("{to} names no imxp user"),
            )
        })?;
    let poll = presence_type == "probe";
    let trans_id = presence_trans_id(&watcher.to_string(), &publisher.to_string(), poll);
    let message = match presence_type {
        "subscribe" | "probe" => {
            if !poll {
                link.watched
                    .lock()
                    .insert((local.clone(), trans_id), (publisher.clone(), false));
            }
            PresenceMessage::Subscribe(imxp_apex::presence::Subscribe {
                publisher: publisher.clone(),
                duration: if poll { 0 } else { SUBSCRIPTION_SECONDS },
                trans_id,
            })
        }
        _ => {
            link.watched.lock().remove(&(local.clone(), trans_id));
            PresenceMessage::Terminate { trans_id }
        }
    };
    let service = imxp_apex::presence::service_endpoint(publisher.domain());
    let (data, content) = message.to_data(watcher, service);
    let payload = Bytes::from(data.to_payload(&content));
    let internal = |text: String| ("wait", "internal-server-error", text);
    let mut incoming = match datagram::parse_request(&payload, ctx.config().max_message_size) {
        Ok(Request::Data(incoming)) => incoming,
        Ok(_) => return Err(internal("not a data".into())),
        Err(refusal) => return Err(bad("bad-request", refusal.text)),
    };
    options::at_intake(&ctx.config(), &mut incoming, Source::Mesh, ctx.now_ms())
        .map_err(|r| bad("not-acceptable", r.text))?;
    ctx.intake
        .accept(incoming, &Sender::Endpoint)
        .await
        .map_err(|e| internal(e.0))?;
    Ok(())
}

/// An XMPP user's availability (or `unsubscribed`) sent to an imxp user
/// who watches it through the gateway: a `publish` (or `terminate`) from
/// `apex=presence@<gateway>` to the watcher (RFC 3922 §5.1, §6.5).
async fn availability(
    ctx: &Arc<Context>,
    link: &Link,
    stanza: &Stanza,
    presence_type: &str,
) -> Result<(), StanzaRefusal> {
    let settings = &link.settings;
    let (Ok(from), Ok(to)) = (
        Jid::parse(stanza.from.as_deref().unwrap_or("")),
        Jid::parse(stanza.to.as_deref().unwrap_or("")),
    ) else {
        return Ok(());
    };
    let Ok(subscriber) = jid::endpoint_of(&to) else {
        return Ok(());
    };
    let key = (subscriber.clone(), from.to_string());
    let internal = |text: String| ("wait", "internal-server-error", text);
    if presence_type == "unsubscribed" {
        let Some((trans_id, _, _)) = link.watchers.lock().remove(&key) else {
            return Ok(());
        };
        return send_service_message(
            ctx,
            &settings.domain,
            &subscriber,
            PresenceMessage::Terminate { trans_id },
        )
        .await
        .map_err(internal);
    }
    let available = presence_type == "available";
    let found = {
        let mut watchers = link.watchers.lock();
        watchers.get_mut(&key).map(|(trans_id, publisher, known)| {
            *known = available;
            (*trans_id, publisher.clone())
        })
    };
    let Some((trans_id, publisher)) = found else {
        return Ok(());
    };
    publish_entry(
        ctx,
        &settings.domain,
        &subscriber,
        &publisher,
        trans_id,
        &from.to_string(),
        available,
    )
    .await
    .map_err(internal)
}

/// Sends `subscriber` the XMPP user's entry: one tuple `xmpp:<jid>`, open
/// (available for a day, renewed by every presence) or closed.
async fn publish_entry(
    ctx: &Context,
    gateway: &str,
    subscriber: &str,
    publisher: &Endpoint,
    trans_id: u32,
    jid: &str,
    available: bool,
) -> Result<(), String> {
    use imxp_apex::access::Timestamp;
    use imxp_apex::presence::{PresenceEntry, Publish, Tuple};
    let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
    let until = if available {
        now + 24 * 3600 * 1000
    } else {
        now
    };
    let presence = PresenceEntry {
        publisher: publisher.clone(),
        last_update: Timestamp::from_unix_millis(now),
        publisher_info: String::new(),
        tuples: vec![Tuple::new(
            format!("xmpp:{jid}"),
            Timestamp::from_unix_millis(until),
        )],
    };
    send_service_message(
        ctx,
        gateway,
        subscriber,
        PresenceMessage::Publish(Box::new(Publish {
            publisher: publisher.clone(),
            trans_id,
            time_stamp: Timestamp::from_unix_millis(now),
            presence,
        })),
    )
    .await
}

/// Queues `message` from `apex=presence@<gateway>` to `subscriber`.
async fn send_service_message(
    ctx: &Context,
    gateway: &str,
    subscriber: &str,
    message: PresenceMessage,
) -> Result<(), String> {
    let domain = Domain::parse(gateway).map_err(|e| e.to_string())?;
    let to = Endpoint::parse(subscriber).map_err(|e| e.to_string())?;
    let (data, content) = message.to_data(imxp_apex::presence::service_endpoint(&domain), to);
    let payload = Bytes::from(data.to_payload(&content));
    let mut incoming = match datagram::parse_request(&payload, usize::MAX) {
        Ok(Request::Data(incoming)) => incoming,
        Ok(_) => return Err("not a data".into()),
        Err(refusal) => return Err(refusal.text),
    };
    options::at_intake(&ctx.config(), &mut incoming, Source::Mesh, ctx.now_ms())
        .map_err(|r| r.text)?;
    ctx.intake
        .accept(incoming, &Sender::Endpoint)
        .await
        .map(drop)
        .map_err(|e| e.0)
}
