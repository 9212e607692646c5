//! Edge sessions (endpoint → relay, RFC 3340 §2.1): TLS tuning, SASL,
//! then APEX channels carrying `attach`, `terminate` and `data`.

use crate::attachments::{AttachRefused, Displaced, Owner};
use crate::datagram::{self, Request};
use crate::intake;
use crate::server::Relay;
use crate::tls;
use imxp_beep::io::{Channel, Connection, IncomingStart};
use imxp_beep::{ErrorReply, Profile, ReplyCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Serves one endpoint session until it ends or the relay stops.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    relay: Arc<Relay>,
    session: u64,
    stop: CancellationToken,
) {
    let mut config = relay.inbound_session();
    config.sasl = Some(Arc::new(relay.sasl.clone()));
    let mut driver = relay.inbound_driver(config, relay.tls.current().edge.as_ref());
    // EXTERNAL: the address a verified client certificate carries.
    driver.peer_identity = Some(Arc::new(|chain| {
        chain.first().and_then(tls::certificate_identity)
    }));
    // Failed SASL exchanges are answered late, per peer address.
    let penalties = relay.penalties.clone();
    driver.auth_failure_delay = Some(Arc::new(move || {
        let delay = penalties.fail(peer.ip(), std::time::Instant::now());
        tracing::info!(%peer, ?delay, "authentication failed");
        delay
    }));
    let (connection, mut incoming, task) = Connection::spawn(stream, driver);
    let channels = TaskTracker::new();
    loop {
        tokio::select! {
            start = incoming.next() => match start {
                Some(start) => {
                    if let Some(channel) = open(start, &connection, &relay, session).await {
                        channels.spawn(run_channel(channel, connection.clone(), relay.clone(), session));
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

/// The authenticated user of the session, if any.
fn user(connection: &Connection) -> Option<String> {
    connection.state().authenticated
}

/// Accepts a channel on the APEX profile; an `attach` in the init is
/// answered in the init reply (spec-digest §9.3: the channel is created
/// even when the attach is refused).
async fn open(
    start: IncomingStart,
    connection: &Connection,
    relay: &Relay,
    session: u64,
) -> Option<Channel> {
    let Some(user) = user(connection) else {
        start.reject(ErrorReply::new(
            ReplyCode::AUTH_REQUIRED,
            "authentication required",
        ));
        return None;
    };
    let owner = Owner {
        session,
        channel: start.request.channel,
    };
    let init = start.request.profiles[0].init.clone();
    let reply = init.map(|init| match datagram::parse_init(&init) {
        Ok(Request::Attach {
            endpoint,
            trans_id,
            take_over,
        }) => match attach(relay, &user, owner, &endpoint, trans_id, take_over) {
            Ok(()) => datagram::ok_init(),
            Err((code, text)) => datagram::error_init(code, &text),
        },
        Ok(_) => datagram::error_init(504, "only attach may be piggybacked on an edge channel"),
        Err((code, text)) => datagram::error_init(code, &text),
    });
    let profile = match reply {
        Some(reply) => Profile::with_init(datagram::APEX_PROFILE, reply),
        None => Profile::new(datagram::APEX_PROFILE),
    };
    match start.accept(profile).await {
        Ok(channel) => {
            relay.attachments.activate(owner, &channel.handle());
            for endpoint in relay.attachments.on_channel(owner) {
                relay.release.request(&endpoint);
            }
            Some(channel)
        }
        Err(_) => {
            relay.attachments.end(session, Some(owner.channel));
            None
        }
    }
}

/// The attach steps of RFC 3340 §4.4.1, in order: 555, 553, 537, then the
/// options (`attachOverride`, RFC 3342 §1), then 554 (already attached —
/// unless the attach overrides: the application attached before gets a
/// 556 `terminate` — or `limits.max_attachments_per_session` reached).
fn attach(
    relay: &Relay,
    user: &str,
    owner: Owner,
    endpoint: &imxp_apex::Endpoint,
    trans_id: u32,
    take_over: bool,
) -> Result<(), (u16, String)> {
    if relay.attachments.trans_id_in_use(owner, trans_id) {
        return Err((555, format!("transaction-identifier {trans_id} is in use")));
    }
    if !relay.config.serves(endpoint.domain().canonical()) {
        return Err((
            553,
            format!("this relay does not serve {}", endpoint.domain()),
        ));
    }
    if user == crate::auth::ANONYMOUS_IDENTITY {
        // `[auth] anonymous = "read-only"`: no attach, hence no data.
        return Err((537, "an anonymous session is read-only".into()));
    }
    if !datagram::may_act_as(user, endpoint) {
        return Err((537, "access denied".into()));
    }
    let key = datagram::key(endpoint);
    let limit = relay.config.limits.max_attachments_per_session;
    match relay
        .attachments
        .attach(&key, owner, trans_id, None, limit, take_over)
    {
        Ok(None) => Ok(()),
        Ok(Some(displaced)) => {
            tokio::spawn(terminate_displaced(key, displaced));
            Ok(())
        }
        Err(AttachRefused::Taken) => Err((554, format!("{key} is already attached"))),
        // A site policy, like the RFC's own 554 for "already attached":
        // 554 "transaction failed (e.g. policy violation)", RFC 3340 §10.
        Err(AttachRefused::SessionFull) => Err((
            554,
            format!("this session has {limit} attachments, the most allowed"),
        )),
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

/// Serves the MSGs of one APEX channel.
async fn run_channel(
    mut channel: Channel,
    connection: Connection,
    relay: Arc<Relay>,
    session: u64,
) {
    let owner = Owner {
        session,
        channel: channel.number(),
    };
    let handle = channel.handle();
    let user = user(&connection).unwrap_or_default();
    let writes = TaskTracker::new();
    while let Some(message) = channel.next_message().await {
        let msgno = message.msgno;
        let reply = match datagram::parse_request(&message.payload, relay.config.max_message_size) {
            Err((code, text)) => Err((code, text)),
            Ok(Request::Attach {
                endpoint,
                trans_id,
                take_over,
            }) => attach(&relay, &user, owner, &endpoint, trans_id, take_over).map(|()| {
                relay.attachments.activate(owner, &handle);
                relay.release.request(&datagram::key(&endpoint));
            }),
            Ok(Request::Bind { .. }) => Err((537, "bind is for relays (apex-mesh)".into())),
            Ok(Request::Terminate { trans_id: 0 }) => {
                // RFC 3340 §4.4.3: transID 0 ends everything on the session.
                relay.attachments.end(session, None);
                Ok(())
            }
            Ok(Request::Terminate { trans_id }) => relay
                .attachments
                .terminate(owner, trans_id)
                .map(drop)
                .ok_or_else(|| (550, "unknown transaction-identifier".into())),
            Ok(Request::Data(incoming)) => {
                // §4.4.4.1 step 1: the originator must be attached here.
                let attached = relay.attachments.on_channel(owner);
                if !attached.contains(&incoming.originator) {
                    Err((537, format!("not attached as {}", incoming.originator)))
                } else {
                    intake::spawn(
                        &writes,
                        &relay,
                        &handle,
                        msgno,
                        incoming,
                        crate::identity::Sender::Endpoint,
                    );
                    continue;
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
    relay.attachments.end(session, Some(owner.channel));
}
