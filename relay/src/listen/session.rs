//! One inbound BEEP session, edge or mesh: the skeleton both share. It
//! starts the BEEP driver, accepts APEX channels and reads their MSGs; a
//! [`Role`] decides what a `<start>` and each request mean for its kind of
//! peer. A `data` the role lets in goes to [`crate::intake`], which answers
//! it once it is durable; everything else is answered here, in MSG order.

use crate::context::Context;
use crate::datagram::{self, Incoming, Request};
use crate::identity::Sender;
use crate::refusal::Refusal;
use imxp_beep::io::{Channel, ChannelHandle, Connection, DriverConfig, DriverError, IncomingStart};
use imxp_beep::{ErrorReply, Profile};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running session, as the role sees it.
pub(crate) struct Session {
    /// Its number (attachments are owned by sessions).
    pub(crate) id: u64,
    /// The BEEP connection (TLS state, authenticated identity).
    pub(crate) connection: Connection,
    /// The peer's address.
    pub(crate) peer: SocketAddr,
}

/// What a role makes of one request on a channel.
pub(crate) enum Handled {
    /// Answer it now: `<ok />` or the refusal.
    Answer(Result<(), Refusal>),
    /// A `data` to take in: intake answers it once it is durable.
    Intake(Box<Incoming>, Sender),
}

/// What makes an edge session different from a mesh session.
pub(crate) trait Role: Send + Sync + 'static {
    /// What a channel keeps between its MSGs.
    type Channel: Send + 'static;

    /// The listener kind, for logs.
    const NAME: &'static str;

    /// The BEEP driver settings for a session from `peer`.
    fn driver(&self, ctx: &Context, peer: SocketAddr) -> DriverConfig;

    /// A `<start>` for the APEX profile on `channel`, with its init (an
    /// `attach` or `bind`) parsed if it carried one. `Err` rejects the
    /// start; `Ok` gives the channel's state and the init's reply.
    fn open(
        &self,
        ctx: &Context,
        session: &Session,
        channel: u32,
        init: Option<Result<Request, Refusal>>,
    ) -> Result<(Self::Channel, Option<String>), ErrorReply>;

    /// The channel exists now.
    fn opened(&self, _ctx: &Context, _state: &mut Self::Channel, _handle: &ChannelHandle) {}

    /// One request read on the channel.
    fn handle(
        &self,
        ctx: &Context,
        session: &Session,
        state: &mut Self::Channel,
        handle: &ChannelHandle,
        request: Request,
    ) -> Handled;

    /// The channel ended (or was never created after [`Role::open`]).
    fn closed(&self, _ctx: &Context, _state: Self::Channel) {}
}

/// Serves one session until it ends or `stop` is cancelled.
pub(crate) async fn serve<R: Role>(
    role: Arc<R>,
    ctx: Arc<Context>,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    stop: CancellationToken,
) {
    let driver = role.driver(&ctx, peer);
    let (connection, mut incoming, task) = Connection::spawn(stream, driver);
    let session = Arc::new(Session {
        id,
        connection: connection.clone(),
        peer,
    });
    let channels = TaskTracker::new();
    loop {
        tokio::select! {
            start = incoming.next() => match start {
                Some(start) => {
                    if let Some((channel, state)) = open(&*role, &ctx, &session, start).await {
                        channels.spawn(run_channel(
                            role.clone(),
                            ctx.clone(),
                            session.clone(),
                            channel,
                            state,
                        ));
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
    // How the driver ended: a failed TLS handshake is counted.
    let mut task = task;
    match tokio::time::timeout(Duration::from_secs(1), &mut task).await {
        Ok(Ok(Err(DriverError::Tls(error)))) => {
            tracing::info!(%peer, %error, "TLS handshake failed");
            ctx.metrics
                .tls_failures
                .get_or_create(&crate::metrics::label("direction", "inbound"))
                .inc();
        }
        Ok(_) => {}
        Err(_) => task.abort(),
    }
}

/// Accepts (or rejects) a channel on the APEX profile. An init is answered
/// in the init reply (docs/decisions.md, APEX core: the channel is created
/// even when the attach or bind in it is refused).
async fn open<R: Role>(
    role: &R,
    ctx: &Context,
    session: &Session,
    start: IncomingStart,
) -> Option<(Channel, R::Channel)> {
    let init = start.request.profiles[0]
        .init
        .as_ref()
        .map(|init| datagram::parse_init(init));
    let (mut state, reply) = match role.open(ctx, session, start.request.channel, init) {
        Ok(opened) => opened,
        Err(error) => {
            start.reject(error);
            return None;
        }
    };
    let profile = match reply {
        Some(reply) => Profile::with_init(datagram::APEX_PROFILE, reply),
        None => Profile::new(datagram::APEX_PROFILE),
    };
    match start.accept(profile).await {
        Ok(channel) => {
            role.opened(ctx, &mut state, &channel.handle());
            Some((channel, state))
        }
        Err(_) => {
            role.closed(ctx, state);
            None
        }
    }
}

/// Reads the MSGs of one APEX channel until it ends.
async fn run_channel<R: Role>(
    role: Arc<R>,
    ctx: Arc<Context>,
    session: Arc<Session>,
    mut channel: Channel,
    mut state: R::Channel,
) {
    let handle = channel.handle();
    let writes = TaskTracker::new();
    while let Some(message) = channel.next_message().await {
        let msgno = message.msgno;
        let handled = match datagram::parse_request(&message.payload, ctx.config().max_message_size)
        {
            Err(refusal) => Handled::Answer(Err(refusal)),
            // Draining (SIGTERM): what was received before is answered,
            // a new datagram is not taken.
            Ok(Request::Data(_)) if ctx.draining() => Handled::Answer(Err(Refusal::draining())),
            Ok(request) => role.handle(&ctx, &session, &mut state, &handle, request),
        };
        match handled {
            Handled::Intake(incoming, sender) => {
                ctx.intake.spawn(&writes, &handle, msgno, *incoming, sender);
            }
            Handled::Answer(reply) => {
                if datagram::answer(&handle, msgno, reply).await.is_err() {
                    break;
                }
            }
        }
    }
    writes.close();
    writes.wait().await;
    role.closed(&ctx, state);
}
