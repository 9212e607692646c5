//! `show`: one datagram, as text (envelope, options, each recipient's
//! state, attempts, last error and report), as JSON, or its raw content
//! (postcat).

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::Args;
use imxp_spool::admin::{Reply, Request};
use imxp_spool::{DatagramId, Envelope, RecipientState};

use crate::cli::Cli;
use crate::mode::{IfMissing, Reach, connect};
use crate::time::{age, fmt_ms};

#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    /// The datagram id.
    id: DatagramId,
    /// Write the raw content bytes to standard output instead (exactly
    /// as received, nothing else).
    #[arg(long)]
    content: bool,
    /// Print the envelope as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cli: &Cli, args: &ShowArgs, now: u64) -> Result<()> {
    let ShowArgs { id, content, json } = args;
    let mut m = connect(cli, Reach::Either, IfMissing::Fail)?;
    let Reply::Show {
        envelope,
        content: bytes,
    } = m.call(
        Request::Show {
            id: *id,
            content: *content,
        },
        None,
    )?
    else {
        bail!("unexpected reply");
    };
    if *content {
        let bytes = bytes.with_context(|| format!("datagram {id} has no content (run check)"))?;
        let mut o = std::io::stdout().lock();
        o.write_all(&bytes)?;
        o.flush()?;
    } else if *json {
        println!("{}", serde_json::to_string_pretty(&envelope)?);
    } else {
        print_show(&envelope, now)?;
    }
    Ok(())
}

fn print_show(env: &Envelope, now: u64) -> Result<()> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "id:           {}", env.id)?;
    writeln!(o, "originator:   {}", env.originator)?;
    writeln!(
        o,
        "queued:       {} ({} ago)",
        fmt_ms(env.queued_ms),
        age(now, env.queued_ms)
    )?;
    writeln!(o, "expires:      {}", fmt_ms(env.expires_ms))?;
    writeln!(o, "size:         {} bytes", env.size)?;
    writeln!(
        o,
        "on hold:      {}",
        if env.admin_hold {
            "yes (operator)"
        } else {
            "no"
        }
    )?;
    let opt = &env.options;
    writeln!(
        o,
        "options:      deadline={} hold4Endpoint={} hops-left={} statusRequest={} reportErrors={}",
        opt.deadline_ms.map_or_else(|| "-".into(), fmt_ms),
        opt.hold_for_endpoint,
        opt.hops_left.map_or_else(|| "-".into(), |h| h.to_string()),
        opt.status_request.as_deref().unwrap_or("-"),
        opt.report_errors
    )?;
    if opt.report_delivery || opt.report_after_ms.is_some() {
        writeln!(
            o,
            "reports:      on-delivery={} transient-at={}",
            opt.report_delivery,
            opt.report_after_ms.map_or_else(|| "-".into(), fmt_ms),
        )?;
    }
    writeln!(o, "recipients:   {}", env.recipients.len())?;
    for (i, r) in env.recipients.iter().enumerate() {
        let detail = match &r.state {
            RecipientState::Queued { due_ms } => format!("due {}", fmt_ms(*due_ms)),
            RecipientState::InFlight { since_ms } => format!("since {}", fmt_ms(*since_ms)),
            // The error is shown once, on the attempts line below.
            RecipientState::Deferred {
                attempt,
                next_due_ms,
                ..
            } => format!("attempt {attempt}, next {}", fmt_ms(*next_due_ms)),
            RecipientState::Held { since_ms, until_ms } => match until_ms {
                Some(until) => format!(
                    "waiting for the endpoint since {}, until {}",
                    fmt_ms(*since_ms),
                    fmt_ms(*until)
                ),
                None => format!("waiting for the endpoint since {}", fmt_ms(*since_ms)),
            },
            RecipientState::Delivered { at_ms, via } => {
                format!(
                    "at {}{}",
                    fmt_ms(*at_ms),
                    via.as_ref()
                        .map(|v| format!(" via {v}"))
                        .unwrap_or_default()
                )
            }
            RecipientState::Failed { at_ms, .. } => format!("at {}", fmt_ms(*at_ms)),
        };
        writeln!(o, "  [{i}] {}  {}  ({detail})", r.endpoint, r.state.name())?;
        writeln!(
            o,
            "      attempts {}, last error: {}, report: {:?}",
            r.attempts,
            r.last_error
                .as_ref()
                .map_or_else(|| "-".into(), ToString::to_string),
            r.report
        )?;
    }
    Ok(())
}
