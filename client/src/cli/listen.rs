//! `imxp listen`: attach and print each datagram received.

use super::interrupt::Interrupt;
use super::output::{json_line, text_block};
use super::{attach_all_with, within};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use imxp_apex::Endpoint;
use imxp_client::Client;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// The endpoint to attach as; repeat to attach as several (on one channel).
    #[arg(long = "as", value_name = "ENDPOINT", required = true)]
    pub(crate) endpoints: Vec<Endpoint>,
    /// One JSON object per line: originator, recipient, content_type,
    /// content (UTF-8 text, or base64 when "base64" is true).
    #[arg(long)]
    pub(crate) json: bool,
    /// Exit after N datagrams.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
    /// Take the endpoints over from applications attached as them
    /// (attachOverride, RFC 3342 §1); they are ended with code 556.
    #[arg(long = "override")]
    pub(crate) take_over: bool,
    #[command(flatten)]
    pub(crate) keyring: super::protect::KeyringArg,
}

pub(crate) async fn listen_command(
    client: &Client,
    listen: ListenArgs,
    mut interrupt: Interrupt,
    timeout: Duration,
) -> Result<ExitCode> {
    let opener = super::protect::Opener::new(&listen.keyring)?;
    let mut attachment =
        attach_all_with(client, &listen.endpoints, listen.take_over, timeout).await?;
    let mut received = 0u64;
    let mut stdout = std::io::stdout();
    while listen.count.is_none_or(|count| received < count) {
        let mut datagram = tokio::select! {
            next = attachment.next() => match next {
                Some(datagram) => datagram,
                None => {
                    for ended in attachment.terminations() {
                        eprintln!("imxp: the relay ended the attachment as {}: {} {}", ended.endpoint, ended.code, ended.text);
                    }
                    bail!("the relay ended the session or the attachments");
                }
            },
            () = interrupt.recv() => break,
        };
        // Printed (and flushed) before the relay is told we have it; if
        // printing fails the datagram is dropped unanswered and refused
        // with 451, so the relay keeps it.
        let text = match opener.render(&datagram, listen.json) {
            Some(text) => text,
            None if listen.json => json_line(&datagram),
            None => text_block(&datagram),
        };
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .context("writing to standard output")?;
        datagram.ack().await.context("acknowledging")?;
        received += 1;
    }
    within(
        timeout,
        "terminating the attachment",
        attachment.terminate(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
