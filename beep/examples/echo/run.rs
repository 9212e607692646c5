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

/// Runs the client; returns (passed, failed) message counts.
pub async fn client(options: ClientOptions) -> Result<(usize, usize), DriverError> {
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
    if options.tls.is_some() {
        connection.start_tls().await?;
    }
    let mut workers = Vec::new();
    for worker in 0..options.channels.max(1) {
        let channel = connection
            .open_channel(vec![Profile::new(options.profile.clone())], None)
            .await?;
        let options = options.clone();
        workers.push(tokio::spawn(async move {
            let mut passed = 0;
            let mut failed = 0;
            let mut in_flight = std::collections::VecDeque::new();
            for i in 0..options.count {
                let payload = pattern(worker, i, options.size);
                in_flight.push_back((payload.clone(), channel.send(payload).await?));
                if in_flight.len() >= options.pipeline.max(1) {
                    let (sent, pending) = in_flight.pop_front().expect("non-empty");
                    match pending.response().await? {
                        Response::Reply(echo) if echo == sent => passed += 1,
                        _ => failed += 1,
                    }
                }
            }
            for (sent, pending) in in_flight {
                match pending.response().await? {
                    Response::Reply(echo) if echo == sent => passed += 1,
                    _ => failed += 1,
                }
            }
            Ok::<_, DriverError>((passed, failed))
        }));
    }
    let mut totals = (0, 0);
    for worker in workers {
        let (passed, failed) = worker.await.map_err(|_| DriverError::Closed)??;
        totals.0 += passed;
        totals.1 += failed;
    }
    connection.release().await?;
    Ok(totals)
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
