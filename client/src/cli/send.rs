//! `imxp send`: attach as the originator, send one datagram, report the
//! relay's answer.

use super::options::DeliveryOptions;
use super::{EXIT_REFUSED, attach_all, within};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use imxp_apex::Endpoint;
use imxp_client::{Client, ClientError};
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("body").required(true).args(["text", "file"]))]
pub(crate) struct SendArgs {
    /// The originator: an endpoint this user may attach as.
    #[arg(long, value_name = "ENDPOINT")]
    pub(crate) from: Endpoint,
    /// A recipient; repeat for several.
    #[arg(long, value_name = "ENDPOINT", required = true)]
    pub(crate) to: Vec<Endpoint>,
    /// The message text; "-" reads the content from standard input.
    #[arg(value_name = "TEXT")]
    pub(crate) text: Option<String>,
    /// Send the bytes of FILE as the content.
    #[arg(long, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// The content's media type (default: text/plain; charset=utf-8 when
    /// the content is UTF-8 text, else application/octet-stream).
    #[arg(long, value_name = "TYPE")]
    pub(crate) content_type: Option<String>,
    /// Delivery options (status reports, deadlines, hop limits).
    #[command(flatten)]
    pub(crate) delivery: DeliveryOptions,
    #[command(flatten)]
    pub(crate) protection: Box<super::protect::ProtectArgs>,
    /// Ask the recipients' relay to hold the datagram until each recipient
    /// attaches (hold4Endpoint, RFC 3342 §3).
    #[arg(long)]
    pub(crate) hold: bool,
}

/// Adds the per-data options the send flags ask for.
fn add_hold_option(send: &SendArgs, data: &mut imxp_apex::Data) {
    if send.hold {
        data.options.push(imxp_apex::ApexOption::internal(
            imxp_apex::party::HOLD_FOR_ENDPOINT,
        ));
    }
}

/// The content type and the octets to send.
pub(crate) fn read_body(send: &SendArgs) -> Result<(String, Vec<u8>)> {
    let body = match (&send.text, &send.file) {
        (Some(text), _) if text == "-" => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading the content from standard input")?;
            body
        }
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(path)) => {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, None) => bail!("give TEXT, --file FILE or -"),
    };
    let default_type = if std::str::from_utf8(&body).is_ok() {
        imxp_client::payload::TEXT_PLAIN_UTF8
    } else {
        "application/octet-stream"
    };
    let content_type = send
        .content_type
        .clone()
        .unwrap_or_else(|| default_type.to_owned());
    Ok((content_type, body))
}

pub(crate) async fn send_command(
    client: &Client,
    send: SendArgs,
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<ExitCode> {
    let attachment = attach_all(client, std::slice::from_ref(&send.from), timeout).await?;
    let (mut data, content) =
        imxp_client::payload::build_data(&send.from, &send.to, content_type, body)?;
    add_hold_option(&send, &mut data);
    let asked = send.delivery.apply(&mut data);
    let sent = within(timeout, "sending", attachment.send_data(&data, &content)).await;
    let code = match sent {
        Ok(()) => {
            println!("accepted");
            // What reports will answer (their transIDs).
            for line in asked {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => match error.downcast::<ClientError>() {
            Ok(ClientError::Refused { code, text }) => {
                println!("{}", format!("refused {code} {text}").trim_end());
                ExitCode::from(EXIT_REFUSED)
            }
            Ok(other) => return Err(anyhow::Error::new(other).context("sending")),
            Err(other) => return Err(other),
        },
    };
    within(
        timeout,
        "terminating the attachment",
        attachment.terminate(),
    )
    .await?;
    Ok(code)
}
