//! `imxp presence`: presence (RFC 3343) from the command line — publish
//! one's own status, show or follow someone's, watch who follows one's
//! own, end a subscription.

use super::interrupt::Interrupt;
use super::within;
use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use imxp_apex::Endpoint;
use imxp_apex::access::Timestamp;
use imxp_apex::presence::pidf::{FOREVER, PidfDocument, data_uri_of_note, note_of_data_uri};
use imxp_apex::presence::{NotifyAction, PresenceEntry, Tuple};
use imxp_client::{Attachment, Client, presence};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct PresenceArgs {
    /// The endpoint to subscribe, watch and fetch as; default a tool
    /// subaddress of the --user endpoint (fred/tool.presence.…), which the
    /// presentity's access entries treat as the user and which gets no
    /// presence tuple of its own.
    #[arg(long = "as", id = "as", value_name = "ENDPOINT", global = true)]
    pub(crate) subscriber: Option<Endpoint>,
    #[command(subcommand)]
    pub(crate) command: PresenceCommand,
}

/// Online or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Status {
    /// Available: reachable now.
    Open,
    /// Not available.
    Closed,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PresenceCommand {
    /// Publish your own status: one tuple, open or closed, replacing what
    /// you published before (the relay's tuples for your attached
    /// applications stay).
    Publish {
        /// open or closed.
        #[arg(long, value_enum)]
        status: Status,
        /// A note about you ("in a meeting"), shown to subscribers.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// Where to reach you (a URI, e.g. im:fred@example.com or
        /// tel:+15551234); default `apex:` and your endpoint.
        #[arg(long, value_name = "URI")]
        contact: Option<String>,
    },
    /// Show ENDPOINT's presence as you are allowed to see it (a subscribe
    /// of duration 0).
    Show {
        /// Whose presence.
        endpoint: Endpoint,
        /// Print the PIDF document (RFC 3863, application/pidf+xml).
        #[arg(long, conflicts_with = "json")]
        pidf: bool,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Subscribe to ENDPOINT's presence and print every update as it
    /// arrives, until the subscription runs out or you interrupt (which
    /// ends the subscription).
    Subscribe {
        /// Whose presence.
        endpoint: Endpoint,
        /// Seconds the subscription lasts (the relay may shorten it).
        #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
        duration: u32,
        /// One JSON object per update, one per line.
        #[arg(long)]
        json: bool,
        /// Exit after N updates (the first, current state counts).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Watch who subscribes to ENDPOINT's presence (default: yours) and
    /// print each subscription and its end, until the watch runs out or
    /// you interrupt.
    Watch {
        /// Whose subscribers.
        endpoint: Option<Endpoint>,
        /// Seconds the watch lasts.
        #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
        duration: u32,
        /// One JSON object per notice, one per line.
        #[arg(long)]
        json: bool,
        /// Exit after N notices.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// End subscription (or watch) TRANSID that you made to ENDPOINT's
    /// presence as the endpoint --as names (`subscribe --as` prints the
    /// transID when it starts).
    Unsubscribe {
        /// Whose presence.
        endpoint: Endpoint,
        /// The subscription's transID.
        trans_id: u32,
    },
}

pub(crate) async fn presence_command(
    client: &Client,
    user: &str,
    args: PresenceArgs,
    interrupt: Option<Interrupt>,
    timeout: Duration,
) -> Result<ExitCode> {
    let user =
        Endpoint::parse(user).with_context(|| format!("--user {user:?} is not an endpoint"))?;
    if matches!(args.command, PresenceCommand::Unsubscribe { .. }) && args.subscriber.is_none() {
        bail!("unsubscribe needs --as ENDPOINT: the endpoint that made the subscription");
    }
    let attach_as = match (&args.command, args.subscriber.clone()) {
        (PresenceCommand::Publish { .. }, _) | (_, None) => presence::tool_endpoint(&user)?,
        (_, Some(subscriber)) => subscriber,
    };
    let mut attachment = within(timeout, "attaching", client.attach(attach_as.clone()))
        .await
        .with_context(|| format!("cannot attach as {attach_as}"))?;
    let result = run(&mut attachment, &user, args.command, interrupt, timeout).await;
    let terminated = within(
        timeout,
        "terminating the attachment",
        attachment.terminate(),
    )
    .await;
    result?;
    terminated?;
    Ok(ExitCode::SUCCESS)
}

async fn run(
    attachment: &mut Attachment,
    user: &Endpoint,
    command: PresenceCommand,
    interrupt: Option<Interrupt>,
    timeout: Duration,
) -> Result<()> {
    match command {
        PresenceCommand::Publish {
            status,
            note,
            contact,
        } => {
            let publisher = user.base();
            let destination = contact.unwrap_or_else(|| format!("apex:{publisher}"));
            let now = presence::now_ms();
            let until = match status {
                Status::Open => Timestamp::parse(FOREVER).expect("constant"),
                Status::Closed => Timestamp::from_unix_millis(now),
            };
            let note = note.as_deref().map(data_uri_of_note).unwrap_or_default();
            let published = within(
                timeout,
                "publishing",
                presence::update(attachment, &publisher, |mut entry| {
                    entry.tuples = vec![Tuple::new(destination.clone(), until.clone())];
                    entry.publisher_info.clone_from(&note);
                    entry
                }),
            )
            .await?;
            println!(
                "published {publisher}: {}",
                if status == Status::Open {
                    "open"
                } else {
                    "closed"
                }
            );
            drop(published);
        }
        PresenceCommand::Show {
            endpoint,
            pidf,
            json,
        } => {
            let entry = within(timeout, "fetching", presence::fetch(attachment, &endpoint)).await?;
            print!("{}", render(&entry, pidf, json));
        }
        PresenceCommand::Subscribe {
            endpoint,
            duration,
            json,
            count,
        } => {
            let mut interrupt = interrupt.context("signal handlers")?;
            let (mut subscription, entry) = within(
                timeout,
                "subscribing",
                presence::subscribe(attachment, &endpoint, duration),
            )
            .await?;
            let trans_id = subscription.trans_id;
            if !json {
                eprintln!("imxp: subscribed to {endpoint} for {duration} s (transID {trans_id})");
            }
            print!("{}", render(&entry, false, json));
            let mut shown = 1u64;
            while count.is_none_or(|count| shown < count) {
                tokio::select! {
                    update = presence::next_update(attachment, &mut subscription) => match update? {
                        Some(entry) => print!("{}", render(&entry, false, json)),
                        None => {
                            if !json {
                                eprintln!("imxp: the subscription to {endpoint} ended");
                            }
                            return Ok(());
                        }
                    },
                    () = interrupt.recv() => break,
                }
                shown += 1;
            }
            within(
                timeout,
                "ending the subscription",
                presence::terminate(attachment, &endpoint, trans_id),
            )
            .await?;
        }
        PresenceCommand::Watch {
            endpoint,
            duration,
            json,
            count,
        } => {
            let mut interrupt = interrupt.context("signal handlers")?;
            let endpoint = endpoint.unwrap_or_else(|| user.base());
            let trans_id = within(
                timeout,
                "watching",
                presence::watch(attachment, &endpoint, duration),
            )
            .await?;
            if !json {
                eprintln!(
                    "imxp: watching the subscribers of {endpoint} for {duration} s (transID {trans_id})"
                );
            }
            let mut shown = 0u64;
            while count.is_none_or(|count| shown < count) {
                tokio::select! {
                    notice = presence::next_notice(attachment, trans_id) => match notice? {
                        Some(notify) => {
                            let action = match notify.action {
                                NotifyAction::Subscribe => "subscribe",
                                NotifyAction::Terminate => "terminate",
                            };
                            if json {
                                println!("{}", serde_json::json!({
                                    "subscriber": notify.subscriber.to_string(),
                                    "action": action,
                                    "duration": notify.duration,
                                }));
                            } else {
                                println!("{action}\t{}\t{} s", notify.subscriber, notify.duration);
                            }
                        }
                        None => return Ok(()),
                    },
                    () = interrupt.recv() => break,
                }
                shown += 1;
            }
            within(
                timeout,
                "ending the watch",
                presence::terminate(attachment, &endpoint, trans_id),
            )
            .await?;
        }
        PresenceCommand::Unsubscribe { endpoint, trans_id } => {
            if trans_id == 0 {
                bail!("a transID is 1 to 2147483647");
            }
            within(
                timeout,
                "ending the subscription",
                presence::terminate(attachment, &endpoint, trans_id),
            )
            .await?;
            println!("unsubscribed from {endpoint} (transID {trans_id})");
        }
    }
    Ok(())
}

/// An entry as text, one JSON line, or a PIDF document.
fn render(entry: &PresenceEntry, pidf: bool, json: bool) -> String {
    let now = presence::now_ms();
    if pidf {
        return PidfDocument::from_entry(entry, now).to_xml();
    }
    let online = entry.is_open(now);
    let note = note_of_data_uri(&entry.publisher_info);
    if json {
        let tuples: Vec<serde_json::Value> = entry
            .tuples
            .iter()
            .map(|t| {
                serde_json::json!({
                    "destination": t.destination,
                    "open": t.is_open(now),
                    "until": t.available_until.as_str(),
                    "note": note_of_data_uri(&t.tuple_info),
                    "automatic": t.is_automatic(),
                })
            })
            .collect();
        return format!(
            "{}\n",
            serde_json::json!({
                "publisher": entry.publisher.to_string(),
                "online": online,
                "last_update": entry.last_update.as_str(),
                "note": note,
                "tuples": tuples,
            })
        );
    }
    let mut out = format!(
        "{} {} (last update {})\n",
        entry.publisher,
        if online { "online" } else { "offline" },
        entry.last_update
    );
    if let Some(note) = note {
        out.push_str(&format!("  note: {note}\n"));
    }
    for tuple in &entry.tuples {
        out.push_str(&format!(
            "  {}\t{}\tuntil {}\n",
            if tuple.is_open(now) { "open" } else { "closed" },
            tuple.destination,
            tuple.available_until
        ));
    }
    out
}
