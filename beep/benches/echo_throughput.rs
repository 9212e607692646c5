//! Loopback echo throughput over real TCP on 127.0.0.1: 64 KiB messages
//! through the driver (the echo listener of `examples/echo` answers every
//! MSG with an RPY of the same octets) on 1 and on 8 channels, pipelined,
//! with 256 KiB receive windows; and, in the same run, the baseline: a plain
//! tokio TCP echo moving the same octets over 1 and over 8 connections.
//!
//! Every figure is in payload octets echoed per second (each octet crosses
//! the loopback twice, out and back, in both cases), so BEEP / plain TCP is
//! the ratio of the throughputs.
//!
//! `cargo bench -p imxp-beep --bench echo_throughput`

#[path = "../examples/echo/run.rs"]
mod run;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imxp_beep::io::{Channel, Connection, DriverConfig, Response};
use imxp_beep::{Config, Profile, Role};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

const PROFILE: &str = "http://example.com/beep/ECHO";
/// Payload of one message; one benchmark iteration echoes one message.
const MESSAGE: usize = 64 * 1024;
/// Receive window of both peers, per channel.
const WINDOW: u32 = 256 * 1024;
/// Messages in flight per channel (or 64 KiB blocks per connection).
const DEPTH: usize = 8;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A BEEP session to the echo listener with `count` channels open.
struct Beep {
    _connection: Connection,
    channels: Vec<Channel>,
}

async fn beep_setup(count: usize) -> Beep {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(run::listen(
        listener,
        run::ListenOptions {
            profiles: vec![PROFILE.into()],
            tls: None,
            window: WINDOW,
        },
    ));
    let stream = TcpStream::connect(address).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut config = Config::new(Role::Initiator);
    config.receive_window = WINDOW;
    let (connection, _incoming, _task) = Connection::spawn(stream, DriverConfig::new(config));
    let mut channels = Vec::new();
    for _ in 0..count {
        channels.push(
            connection
                .open_channel(vec![Profile::new(PROFILE)], None)
                .await
                .expect("open channel"),
        );
    }
    Beep {
        _connection: connection,
        channels,
    }
}

/// Echoes `messages` messages spread over the channels, `DEPTH` in flight
/// on each; returns the elapsed time.
async fn beep_echo(beep: &mut Beep, messages: u64) -> Duration {
    let payload = Bytes::from((0..MESSAGE).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let count = beep.channels.len() as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, channel) in beep.channels.drain(..).enumerate() {
        let share = messages / count + u64::from((i as u64) < messages % count);
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut in_flight = VecDeque::new();
            for _ in 0..share {
                in_flight.push_back(channel.send(payload.clone()).await.expect("send"));
                if in_flight.len() >= DEPTH {
                    check(in_flight.pop_front().expect("in flight").response().await);
                }
            }
            for pending in in_flight {
                check(pending.response().await);
            }
            channel
        }));
    }
    for task in tasks {
        beep.channels.push(task.await.expect("echo task"));
    }
    start.elapsed()
}

fn check(response: Result<Response, imxp_beep::io::DriverError>) {
    match response.expect("response") {
        Response::Reply(echo) => assert_eq!(echo.len(), MESSAGE, "short echo"),
        other => panic!("unexpected response {other:?}"),
    }
}

/// A plain TCP echo server: every connection writes back what it reads.
async fn tcp_setup(count: usize) -> Vec<TcpStream> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address: SocketAddr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            stream.set_nodelay(true).expect("nodelay");
            tokio::spawn(async move {
                // The same read size as the driver's default read buffer
                // (tokio::io::copy would use 8 KiB and understate TCP).
                let (mut reader, mut writer) = stream.into_split();
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    match reader.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if writer.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    let mut streams = Vec::new();
    for _ in 0..count {
        let stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        streams.push(stream);
    }
    streams
}

/// Writes `messages` blocks of 64 KiB spread over the connections and reads
/// them back (the writer runs ahead by at most `DEPTH` blocks per
/// connection, like the pipelined BEEP client); returns the elapsed time.
async fn tcp_echo(streams: &mut Vec<TcpStream>, messages: u64) -> Duration {
    let block = Bytes::from((0..MESSAGE).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let count = streams.len() as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, stream) in streams.drain(..).enumerate() {
        let share = messages / count + u64::from((i as u64) < messages % count);
        let block = block.clone();
        tasks.push(tokio::spawn(async move {
            let (mut reader, mut writer) = stream.into_split();
            let total = share as usize * MESSAGE;
            let (credit_tx, mut credit_rx) = tokio::sync::mpsc::channel::<()>(DEPTH);
            let writing = tokio::spawn(async move {
                for _ in 0..share {
                    if credit_tx.send(()).await.is_err() {
                        break;
                    }
                    writer.write_all(&block).await.expect("write");
                }
                writer
            });
            let mut buffer = vec![0u8; 64 * 1024];
            let mut received = 0;
            let mut blocks_done = 0;
            while received < total {
                let n = reader.read(&mut buffer).await.expect("read");
                assert!(n > 0, "echo server closed");
                received += n;
                while blocks_done < received / MESSAGE {
                    blocks_done += 1;
                    let _ = credit_rx.recv().await;
                }
            }
            let writer = writing.await.expect("writer task");
            reader.reunite(writer).expect("same stream")
        }));
    }
    for task in tasks {
        streams.push(task.await.expect("echo task"));
    }
    start.elapsed()
}

fn echo(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("echo_64KiB");
    group.throughput(Throughput::Bytes(MESSAGE as u64));
    for channels in [1, 8] {
        let mut beep = runtime.block_on(beep_setup(channels));
        group.bench_function(format!("beep/{channels}ch"), |b| {
            b.iter_custom(|iters| runtime.block_on(beep_echo(&mut beep, iters)));
        });
        let mut tcp = runtime.block_on(tcp_setup(channels));
        group.bench_function(format!("tcp/{channels}conn"), |b| {
            b.iter_custom(|iters| runtime.block_on(tcp_echo(&mut tcp, iters)));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10);
    targets = echo
}
criterion_main!(benches);
