//! The echo listener and client, shared by the `echo` example and the
//! loopback tests.

#![allow(dead_code, unreachable_pub)] // each includer uses a part

use bytes::Bytes;
use imxp_beep::io::{Connection, DriverConfig, DriverError, Response, TlsSetup};
use imxp_beep::{Config, Profile, Role};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// Listener settings.
#[derive(Clone)]
pub struct ListenOptions {
    /// Profile URIs to offer; every MSG on them is echoed in an RPY.
    pub profiles: Vec<String>,
    /// TLS server configuration, if TLS tuning is offered.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Receive window per channel.
    pub window: u32,
}

/// Serves echo sessions on `listener` forever.
pub async fn listen(listener: TcpListener, options: ListenOptions) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let options = options.clone();
        tokio::spawn(async move {
            let mut config = Config::new(Role::Listener);
            config.profiles = options.profiles.clone();
            config.receive_window = options.window;
            let mut driver = DriverConfig::new(config);
            if let Some(tls) = options.tls {
                driver.tls = TlsSetup::Server(tls);
            }
            let (_connection, mut incoming, task) = Connection::spawn(stream, driver);
            while let Some(start) = incoming.next().await {
                let profile = start.request.profiles[0].clone();
                let Ok(mut channel) = start.accept(Profile::new(profile.uri)).await else {
                    break;
                };
                tokio::spawn(async move {
                    while let Some(message) = channel.next_message().await {
                        if channel.reply(message.msgno, message.payload).await.is_err() {
                            break;
                        }
                    }
                });
            }
            let _ = task.await;
        });
    }
}

/// Client settings.
#[derive(Clone)]
pub struct ClientOptions {
    /// `host:port` of the listener.
    pub address: String,
    /// The profile to start.
    pub profile: String,
    /// Messages per channel.
    pub count: usize,
    /// Octets per message.
    pub size: usize,
    /// Messages in flight per channel.
    pub pipeline: usize,
    /// Channels used in parallel.
    pub channels: usize,
    /// TLS client configuration and server name, to tune the session with TLS.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// Receive window per channel.
    pub window: u32,
}

/// What a client run exchanged, and how the session ended.
#[derive(Debug)]
pub struct Outcome {
    /// Messages whose echo matched byte for byte.
    pub passed: usize,
    /// Messages answered otherwise, or not answered.
    pub failed: usize,
    /// Why some messages were not answered (the session broke during the
    /// exchange), if it did.
    pub exchange_error: Option<DriverError>,
    /// How the release went (RFC 3080 §2.4); a failure here loses nothing
    /// that was exchanged.
    pub release: Result<(), DriverError>,
}

/// Runs the client. Fails only if no message could be exchanged at all
/// (connection, greeting, TLS); once messages flow, the counts are kept
/// whatever happens to the session afterwards.
pub async fn client(options: ClientOptions) -> Result<Outcome, DriverError> {
    let stream = TcpStream::connect(&options.address).await?;
    stream.set_nodelay(true)?;
    let mut config = Config::new(Role::Initiator);
    config.receive_window = options.window;
    let mut driver = DriverConfig::new(config);
    if let Some((tls, name)) = &options.tls {
        driver.tls = TlsSetup::Client {
            config: tls.clone(),
            server_name: rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| DriverError::Tls(e.to_string()))?,
        };
    }
    let (connection, _incoming, _task) = Connection::spawn(stream, driver);
    connection.greeting(1).await?;
    if options.tls.is_some() {
        connection.start_tls().await?;
    }
    let mut workers = Vec::new();
    for worker in 0..options.channels.max(1) {
        let connection = connection.clone();
        let options = options.clone();
        workers.push(tokio::spawn(async move {
            let mut counts = (0, 0);
            let result = exchange(&connection, &options, worker, &mut counts).await;
            // Messages never answered count as failed.
            let unanswered = options.count.saturating_sub(counts.0 + counts.1);
            (counts.0, counts.1 + unanswered, result.err())
        }));
    }
    let mut outcome = Outcome {
        passed: 0,
        failed: 0,
        exchange_error: None,
        release: Ok(()),
    };
    for worker in workers {
        let (passed, failed, error) = worker.await.map_err(|_| DriverError::Closed)?;
        outcome.passed += passed;
        outcome.failed += failed;
        outcome.exchange_error = outcome.exchange_error.or(error);
    }
    outcome.release = connection.release().await;
    Ok(outcome)
}

/// One channel's messages; counts (passed, failed) as replies arrive.
async fn exchange(
    connection: &Connection,
    options: &ClientOptions,
    worker: usize,
    counts: &mut (usize, usize),
) -> Result<(), DriverError> {
    let channel = connection
        .open_channel(vec![Profile::new(options.profile.clone())], None)
        .await?;
    let mut in_flight = std::collections::VecDeque::new();
    for i in 0..options.count {
        let payload = pattern(worker, i, options.size);
        in_flight.push_back((payload.clone(), channel.send(payload).await?));
        if in_flight.len() >= options.pipeline.max(1) {
            let (sent, pending) = in_flight.pop_front().expect("non-empty");
            check(sent, pending.response().await?, counts);
        }
    }
    for (sent, pending) in in_flight {
        check(sent, pending.response().await?, counts);
    }
    Ok(())
}

fn check(sent: Bytes, response: Response, counts: &mut (usize, usize)) {
    match response {
        Response::Reply(echo) if echo == sent => counts.0 += 1,
        _ => counts.1 += 1,
    }
}

/// A recognizable payload: different per worker and message.
fn pattern(worker: usize, index: usize, size: usize) -> Bytes {
    let seed = (worker * 31 + index * 7) as u8;
    Bytes::from(
        (0..size)
            .map(|i| seed.wrapping_add((i % 251) as u8))
            .collect::<Vec<u8>>(),
    )
}
