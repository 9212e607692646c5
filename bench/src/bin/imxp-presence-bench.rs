//! imxp-presence-bench: presence fan-out through real relays.
//!
//! Starts three `imxpd` processes (a.test with the presentity alice,
//! b.test and c.test with the subscribers, static routes, plaintext on
//! loopback, redb spools in a temporary directory), subscribes N
//! endpoints split between b.test and c.test to alice@a.test, then has
//! alice publish a new note R times. For each publish it reports the time
//! from the publish to the first, median and last subscriber's update,
//! and the CPU each relay process spent (utime+stime from
//! /proc/PID/stat) per notification.
//!
//! ```sh
//! cargo build --release -p imxp-relay --bin imxpd -p imxp-bench
//! target/release/imxp-presence-bench --subscribers 1000 --rounds 5
//! ```

use anyhow::{Context as _, bail};
use clap::Parser;
use imxp_apex::Endpoint;
use imxp_apex::access::{Actions, Actor, Timestamp};
use imxp_apex::presence::pidf::{FOREVER, data_uri_of_note, note_of_data_uri};
use imxp_apex::presence::{PresenceMessage, Subscribe, Tuple, service_endpoint};
use imxp_client::{Attachment, Client, ConnectOptions, Mechanism, access, presence};
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Presence fan-out through three imxpd processes")]
struct Cli {
    /// Subscribers, split between b.test and c.test.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Publishes measured.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The imxpd binary (default: next to this one).
    #[arg(long)]
    imxpd: Option<PathBuf>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Relay {
    domain: &'static str,
    dir: PathBuf,
    edge: u16,
    mesh: u16,
    process: Option<Child>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Relay {
    /// utime+stime of the process so far.
    fn cpu(&self) -> anyhow::Result<Duration> {
        let pid = self.process.as_ref().context("not running")?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces).
        let rest = stat.rsplit_once(") ").context("/proc stat")?.1;
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        // USER_HZ is 100 on Linux.
        Ok(Duration::from_millis(ticks * 10))
    }
}

fn write_config(relay: &Relay, routes: &[(&str, u16)], users: &[&str]) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(&relay.dir)?;
    let routes: String = routes
        .iter()
        .map(|(d, p)| format!("\"{d}\" = \"127.0.0.1:{p}\"\n"))
        .collect();
    let config = relay.dir.join("imxpd.toml");
    std::fs::write(
        &config,
        format!(
            "[relay]\ndomains = [\"{domain}\"]\nstate_dir = \"{dir}\"\nallow_root = true\n\
             [listen]\nedge = [\"127.0.0.1:{edge}\"]\nmesh = [\"127.0.0.1:{mesh}\"]\n\
             [tls]\nrequired = false\n[mesh]\ninsecure_unauthenticated_bind = true\n\
             [routes]\n{routes}\
             [limits]\nmax_attachments_per_session = 100000\n\
             [presence]\nmax_watchers_per_presentity = 10\nmax_publishes_per_minute = 100000\n",
            domain = relay.domain,
            dir = relay.dir.display(),
            edge = relay.edge,
            mesh = relay.mesh,
        ),
    )?;
    let parsed = imxp_relay::config::Config::load(&config)?;
    for user in users {
        imxp_relay::auth::add_user(&parsed.users, &format!("{user}@{}", relay.domain), "secret")?;
    }
    Ok(config)
}

async fn wait_listening(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("no relay listening on {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn connect(port: u16, user: &str) -> anyhow::Result<Client> {
    Ok(Client::connect(ConnectOptions {
        relay: format!("127.0.0.1:{port}"),
        tls: None,
        user: user.to_owned(),
        password: "secret".to_owned(),
        mechanism: Mechanism::Plain,
    })
    .await?)
}

/// Attaches `count` subaddresses of `user` on one channel and subscribes
/// each to alice; resolves once every first publish arrived.
async fn subscribers(port: u16, user: &str, count: usize) -> anyhow::Result<(Client, Attachment)> {
    let client = connect(port, user).await?;
    let (local, domain) = user.split_once('@').context("user")?;
    let endpoint = |i: usize| Endpoint::parse(&format!("{local}/s{i}@{domain}"));
    let attachment = client.attach(endpoint(0)?).await?;
    for i in 1..count {
        attachment.attach(endpoint(i)?).await?;
    }
    let alice = Endpoint::parse("alice@a.test")?;
    for i in 0..count {
        let request = PresenceMessage::Subscribe(Subscribe {
            publisher: alice.clone(),
            duration: 3600,
            trans_id: u32::try_from(i + 1)?,
        });
        let (data, content) = request.to_data(endpoint(i)?, service_endpoint(alice.domain()));
        attachment.send_data(&data, &content).await?;
    }
    Ok((client, attachment))
}

/// Waits for `count` publishes carrying `note` on `attachment`; returns
/// when each arrived.
async fn updates(
    attachment: &mut Attachment,
    count: usize,
    note: &str,
) -> anyhow::Result<Vec<Instant>> {
    let mut seen: HashMap<String, Instant> = HashMap::new();
    while seen.len() < count {
        let Some(mut received) =
            tokio::time::timeout(Duration::from_secs(120), attachment.next()).await?
        else {
            bail!("the attachment ended");
        };
        if !received.is_answered() {
            received.ack().await?;
        }
        if let Some(PresenceMessage::Publish(publish)) = presence::message_of(&received)
            && note_of_data_uri(&publish.presence.publisher_info).as_deref() == Some(note)
        {
            seen.entry(received.recipient.to_string())
                .or_insert_with(Instant::now);
        }
    }
    Ok(seen.into_values().collect())
}

/// Waits for the first publish of each of `count` subscriptions.
async fn initial(attachment: &mut Attachment, count: usize) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    while seen.len() < count {
        let Some(mut received) =
            tokio::time::timeout(Duration::from_secs(120), attachment.next()).await?
        else {
            bail!("the attachment ended");
        };
        if !received.is_answered() {
            received.ack().await?;
        }
        if matches!(
            presence::message_of(&received),
            Some(PresenceMessage::Publish(_))
        ) {
            seen.insert(received.recipient.to_string());
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Runtime::new()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let imxpd = match cli.imxpd {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .join("imxpd"),
    };
    if !imxpd.exists() {
        bail!(
            "{} not found: cargo build --release -p imxp-relay --bin imxpd",
            imxpd.display()
        );
    }
    let base = tempfile::tempdir()?;
    let mut relays = Vec::new();
    for domain in ["a.test", "b.test", "c.test"] {
        relays.push(Relay {
            domain,
            dir: base.path().join(domain),
            edge: free_port()?,
            mesh: free_port()?,
            process: None,
        });
    }
    let meshes: Vec<(&str, u16)> = relays.iter().map(|r| (r.domain, r.mesh)).collect();
    let users = [&["alice"][..], &["bob"], &["carol"]];
    for (i, relay) in relays.iter_mut().enumerate() {
        let routes: Vec<(&str, u16)> = meshes
            .iter()
            .copied()
            .filter(|(d, _)| *d != relay.domain)
            .collect();
        let config = write_config(relay, &routes, users[i])?;
        relay.process = Some(
            Command::new(&imxpd)
                .arg("--config")
                .arg(&config)
                .env("IMXP_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .context("starting imxpd")?,
        );
    }
    for relay in &relays {
        wait_listening(relay.edge).await?;
    }
    let (a, b, c) = (&relays[0], &relays[1], &relays[2]);
    let alice = Endpoint::parse("alice@a.test")?;
    let alice_client = connect(a.edge, "alice@a.test").await?;
    let mut tool = alice_client
        .attach(presence::tool_endpoint(&alice)?)
        .await?;
    for actor in ["bob/*@b.test", "carol/*@c.test"] {
        access::grant(
            &mut tool,
            &alice,
            &Actor::parse(actor)?,
            &Actions::parse("presence:subscribe")?,
        )
        .await?;
    }
    let half = cli.subscribers / 2;
    let (_b_client, mut at_b) = subscribers(b.edge, "bob@b.test", half).await?;
    let (_c_client, mut at_c) = subscribers(c.edge, "carol@c.test", cli.subscribers - half).await?;
    initial(&mut at_b, half).await?;
    initial(&mut at_c, cli.subscribers - half).await?;
    eprintln!(
        "{} subscribers to alice@a.test (b.test {half}, c.test {})",
        cli.subscribers,
        cli.subscribers - half
    );
    println!(
        "round\tfirst_ms\tp50_ms\tlast_ms\ta_cpu_us_per_notification\tb+c_cpu_us_per_notification"
    );
    for round in 0..cli.rounds {
        let note = format!("round {round}");
        let cpu_before: Vec<Duration> = relays.iter().map(Relay::cpu).collect::<Result<_, _>>()?;
        let start = Instant::now();
        let published = {
            let note = data_uri_of_note(&note);
            presence::update(&mut tool, &alice, move |mut entry| {
                // Open, so that subscribers see more than "offline".
                entry.tuples = vec![Tuple::new(
                    "apex:alice@a.test",
                    Timestamp::parse(FOREVER).expect("constant"),
                )];
                entry.publisher_info.clone_from(&note);
                entry
            })
        };
        let (published, at_b_times, at_c_times) = tokio::join!(
            published,
            updates(&mut at_b, half, &note),
            updates(&mut at_c, cli.subscribers - half, &note)
        );
        published?;
        let mut times: Vec<Duration> = at_b_times?
            .into_iter()
            .chain(at_c_times?)
            .map(|t| t - start)
            .collect();
        times.sort();
        let cpu_after: Vec<Duration> = relays.iter().map(Relay::cpu).collect::<Result<_, _>>()?;
        let spent: Vec<Duration> = cpu_after
            .iter()
            .zip(&cpu_before)
            .map(|(a, b)| *a - *b)
            .collect();
        let per = |d: Duration| d.as_micros() as f64 / cli.subscribers as f64;
        println!(
            "{round}\t{:.1}\t{:.1}\t{:.1}\t{:.0}\t{:.0}",
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
            per(spent[0]),
            per(spent[1] + spent[2]),
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
