//! imxp-bench: load driver for a relay pair.
//!
//! `imxp-bench relay` starts two relays in-process (a.test → b.test, static
//! routes, TLS on every hop with a test CA, redb spools in a temporary
//! directory), attaches one receiver at B and N senders at A, and measures
//! how many datagrams per second A accepts durably and B delivers.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use imxp_apex::Endpoint;
use imxp_tests::relays::{RelaySpec, TestCa, TestRelay, loopback_listener};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Load driver and benchmarks for imxp")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A→B delivery through two relays.
    Relay {
        /// Concurrent senders (one session and attachment each).
        #[arg(long, default_value_t = 50)]
        senders: usize,
        /// Datagrams per sender.
        #[arg(long, default_value_t = 200)]
        per_sender: usize,
        /// Content size in octets.
        #[arg(long, default_value_t = 512)]
        size: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let Command::Relay {
        senders,
        per_sender,
        size,
    } = Cli::parse().command;
    tokio::runtime::Runtime::new()?.block_on(relay(senders, per_sender, size))
}

async fn relay(senders: usize, per_sender: usize, size: usize) -> anyhow::Result<()> {
    let base = tempfile::tempdir()?;
    let ca = TestCa::new();
    let a_mesh = loopback_listener().await;
    let b_mesh = loopback_listener().await;
    let names: Vec<String> = (0..senders).map(|i| format!("s{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut a = RelaySpec::new("a.test", &name_refs);
    // Every sender connects from 127.0.0.1: lift the per-address limit.
    a.extra.push_str(&format!(
        "[limits]\nmax_sessions_per_address = {}\n",
        senders + 8
    ));
    a.routes
        .push(("b.test".into(), b_mesh.local_addr()?.to_string()));
    let mut b = RelaySpec::new("b.test", &["sink"]);
    b.routes
        .push(("a.test".into(), a_mesh.local_addr()?.to_string()));
    let relay_a = TestRelay::start(&a, &ca, &base.path().join("a"), None, Some(a_mesh)).await;
    let relay_b = TestRelay::start(&b, &ca, &base.path().join("b"), None, Some(b_mesh)).await;
    let mut sink = relay_b
        .attach(&ca, "sink@b.test", "secret-sink", "sink@b.test")
        .await
        .context("sink attach")?;
    sink.set_auto_ack(true);
    let total = senders * per_sender;
    let mut attachments = Vec::new();
    for name in &names {
        attachments.push(
            relay_a
                .attach(
                    &ca,
                    &format!("{name}@a.test"),
                    &format!("secret-{name}"),
                    &format!("{name}@a.test"),
                )
                .await
                .context("sender attach")?,
        );
    }
    let body = vec![b'x'; size];
    let start = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut received = 0;
        while received < total {
            match tokio::time::timeout(Duration::from_secs(120), sink.next()).await {
                Ok(Some(_)) => received += 1,
                _ => break,
            }
        }
        (received, start.elapsed())
    });
    let mut tasks = Vec::new();
    for (s, attachment) in attachments.into_iter().enumerate() {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let to = vec![Endpoint::parse("sink@b.test").expect("endpoint")];
            for i in 0..per_sender {
                let mut content = body.clone();
                let tag = format!("{s}:{i}:");
                content[..tag.len().min(size)]
                    .copy_from_slice(&tag.as_bytes()[..tag.len().min(size)]);
                attachment
                    .send(to.clone(), "application/octet-stream", &content)
                    .await
                    .expect("accepted");
            }
            attachment
        }));
    }
    for task in tasks {
        drop(task.await?);
    }
    let accepted = start.elapsed();
    let (received, delivered) = receiver.await?;
    println!(
        "senders {senders}, {total} datagrams of {size} octets\n\
         accepted at A (durable): {:.0} datagrams/s ({:.2} s)\n\
         delivered at B:          {:.0} datagrams/s ({:.2} s), {received} received",
        total as f64 / accepted.as_secs_f64(),
        accepted.as_secs_f64(),
        received as f64 / delivered.as_secs_f64(),
        delivered.as_secs_f64(),
    );
    relay_a.stop().await;
    relay_b.stop().await;
    anyhow::ensure!(received == total, "only {received} of {total} delivered");
    Ok(())
}
