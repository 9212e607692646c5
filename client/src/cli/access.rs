//! `imxp access`: one's own access entries (RFC 3341) — list them, allow
//! or block an actor, remove an entry, query what an actor may do. Attaches
//! as a fresh subaddress of the owner, so that a running `imxp listen` is
//! not disturbed.

use super::within;
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use imxp_apex::Endpoint;
use imxp_apex::access::{Actions, Actor};
use imxp_client::{Client, access};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct AccessArgs {
    /// Whose entries (default: the --user endpoint).
    #[arg(long, value_name = "ENDPOINT")]
    pub(crate) owner: Option<Endpoint>,
    #[command(subcommand)]
    pub(crate) command: AccessCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccessCommand {
    /// Print the owner's entries: actor, actions, lastUpdate (tab-separated).
    List,
    /// Let ACTOR do ACTIONS on the owner (adds them to its entry; by
    /// default core:data, sending data).
    ///
    /// ACTOR is an endpoint or a wildcard: fred@example.com, fred/*@example.com,
    /// *@example.com, *@*.example.com, *@*, apex=*@*; write a literal * or \ in a
    /// name as \* or \\.
    Allow {
        /// The actor.
        actor: Actor,
        /// The actions to grant, e.g. 'core:data presence:subscribe
        /// presence:watch' (RFC 3341 §2, RFC 3343 §5).
        #[arg(long, default_value = "core:data", value_parser = parse_actions)]
        actions: Actions,
    },
    /// Stop ACTOR from sending data to the owner (its datagrams are dropped
    /// without telling it).
    Block {
        /// The actor.
        actor: Actor,
    },
    /// Delete the owner's entry for ACTOR (a wildcard entry may then apply).
    Remove {
        /// The actor, exactly as in the entry.
        actor: Actor,
    },
    /// Ask whether ENDPOINT may perform ACTIONS on the owner; prints "allow"
    /// or "deny".
    Query {
        /// The endpoint asked about (no wildcards).
        endpoint: Endpoint,
        /// The actions, e.g. "core:data presence:subscribe".
        #[arg(long, default_value = "core:data", value_parser = parse_actions)]
        actions: Actions,
    },
}

fn parse_actions(text: &str) -> Result<Actions, String> {
    Actions::parse(text).map_err(|e| e.to_string())
}

pub(crate) async fn access_command(
    client: &Client,
    user: &str,
    args: AccessArgs,
    timeout: Duration,
) -> Result<ExitCode> {
    let owner = match args.owner {
        Some(owner) => owner,
        None => Endpoint::parse(user)
            .with_context(|| format!("--user {user:?} is not an endpoint; give --owner"))?,
    };
    let private = access::private_endpoint(&owner)?;
    let mut attachment = within(timeout, "attaching", client.attach(private.clone()))
        .await
        .with_context(|| format!("cannot attach as {private}"))?;
    let result = run(&mut attachment, &owner, args.command, timeout).await;
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
    attachment: &mut imxp_client::Attachment,
    owner: &Endpoint,
    command: AccessCommand,
    timeout: Duration,
) -> Result<()> {
    match command {
        AccessCommand::List => {
            let entries = within(timeout, "listing", access::list(attachment, owner)).await?;
            if entries.is_empty() {
                println!("no entries for {owner}");
            }
            for entry in entries {
                println!(
                    "{}\t{}\t{}",
                    entry.actor,
                    entry.actions.map(|a| a.to_string()).unwrap_or_default(),
                    entry.last_update.map(|t| t.to_string()).unwrap_or_default()
                );
            }
        }
        AccessCommand::Allow { actor, actions } => {
            let actions = within(
                timeout,
                "allowing",
                access::grant(attachment, owner, &actor, &actions),
            )
            .await?;
            println!("allowed {actor}: {actions}");
        }
        AccessCommand::Block { actor } => {
            let actions = within(
                timeout,
                "blocking",
                access::block(attachment, owner, &actor),
            )
            .await?;
            println!("blocked {actor}: {actions}");
        }
        AccessCommand::Remove { actor } => {
            if within(
                timeout,
                "removing",
                access::remove(attachment, owner, &actor),
            )
            .await?
            {
                println!("removed {actor}");
            } else {
                println!("no entry for {actor}");
            }
        }
        AccessCommand::Query { endpoint, actions } => {
            let allowed = within(
                timeout,
                "querying",
                access::query(attachment, owner, &endpoint, &actions),
            )
            .await?;
            println!("{}", if allowed { "allow" } else { "deny" });
        }
    }
    Ok(())
}
