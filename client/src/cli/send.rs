//! `imxp send`: attach as the originator, send one datagram, report the
//! relay's answer; with `--wait`, stay attached for the status reports
//! the datagram asked for.

use super::options::{Asked, DeliveryOptions};
use super::output::{report_json, status_lines, status_response};
use super::wait::{Awaited, EXIT_UNKNOWN};
use super::{EXIT_REFUSED, attach_all, within};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use imxp_apex::{Endpoint, ReplyCode};
use imxp_client::{Attachment, Client, ClientError};
use std::io::Read as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("body").required(true).args(["text", "file"]))]
#[command(group = clap::ArgGroup::new("reports").multiple(true).args(
    ["status_request", "report_after", "return_trip", "report_errors"]
))]
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
    /// Stay attached as the originator until every report the datagram
    /// asked for (--status-request, --report-after, --return-trip,
    /// --report-errors) has arrived or --timeout runs out, and print each:
    /// one "status: RECIPIENT CODE TEXT" line per recipient. Exit status 0
    /// when every recipient was delivered, 3 when one failed, 1 on timeout
    /// (or when the reports cannot tell: only --status-request and
    /// --return-trip report a delivery).
    #[arg(long, requires = "reports")]
    pub(crate) wait: bool,
    /// With --wait: JSON lines on standard output, the relay's answer
    /// ({"accepted": …}) then one object per report.
    #[arg(long, requires = "wait")]
    pub(crate) json: bool,
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
    let mut attachment = attach_all(client, std::slice::from_ref(&send.from), timeout).await?;
    let (mut data, content) =
        imxp_client::payload::build_data(&send.from, &send.to, content_type, body)?;
    add_hold_option(&send, &mut data);
    let asked = send.delivery.apply(&mut data);
    let sent = within(timeout, "sending", attachment.send_data(&data, &content)).await;
    let code = match sent {
        Ok(()) => {
            print_accepted(&asked, send.json)?;
            if send.wait {
                let awaited = Awaited::new(asked, &send.to);
                ExitCode::from(
                    wait_for_reports(&mut attachment, awaited, send.json, timeout).await?,
                )
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => match error.downcast::<ClientError>() {
            Ok(ClientError::Refused { code, text }) => {
                if send.json {
                    let value = serde_json::json!({
                        "accepted": false,
                        "code": code.0,
                        "text": text,
                    });
                    println!("{value}");
                } else {
                    println!("{}", format!("refused {code} {text}").trim_end());
                }
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

/// "accepted" and what reports will answer (their transIDs), or as JSON.
fn print_accepted(asked: &[Asked], json: bool) -> Result<()> {
    let mut stdout = std::io::stdout();
    if json {
        let asked: Vec<String> = asked.iter().map(ToString::to_string).collect();
        let value = serde_json::json!({ "accepted": true, "asked": asked });
        writeln!(stdout, "{value}")?;
    } else {
        writeln!(stdout, "accepted")?;
        for line in asked {
            writeln!(stdout, "{line}")?;
        }
    }
    stdout.flush().context("writing to standard output")
}

/// Receives datagrams as the originator until `awaited` is done or
/// `timeout` runs out, printing each report of this datagram and
/// acknowledging it once printed; returns the exit status. Anything else
/// (a message, another datagram's report) is refused with 450 so that the
/// relay keeps it for a later `imxp listen`.
async fn wait_for_reports(
    attachment: &mut Attachment,
    mut awaited: Awaited,
    json: bool,
    timeout: Duration,
) -> Result<u8> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut stdout = std::io::stdout();
    while !awaited.done() {
        let mut datagram = match tokio::time::timeout_at(deadline, attachment.next()).await {
            Ok(Some(datagram)) => datagram,
            Ok(None) => bail!("the relay ended the attachment before the reports arrived"),
            Err(_) => {
                let missing: Vec<String> =
                    awaited.unknown().iter().map(ToString::to_string).collect();
                eprintln!(
                    "imxp: no outcome within {} s for {}",
                    timeout.as_secs(),
                    missing.join(", ")
                );
                return Ok(EXIT_UNKNOWN);
            }
        };
        let report = status_response(&datagram).filter(|_| datagram.originator.is_service());
        let ours = report
            .as_ref()
            .is_some_and(|report| awaited.take(&datagram.originator, report));
        let Some(report) = report.filter(|_| ours) else {
            datagram
                .reject(
                    ReplyCode(450),
                    "not reading now: waiting for status reports",
                )
                .await
                .context("refusing a datagram")?;
            continue;
        };
        if json {
            let mut value = report_json(&report);
            value["reporter"] = serde_json::json!(datagram.originator.to_string());
            writeln!(stdout, "{value}")?;
        } else {
            write!(stdout, "{}", status_lines(&report))?;
        }
        stdout.flush().context("writing to standard output")?;
        datagram.ack().await.context("acknowledging a report")?;
    }
    Ok(awaited.exit_status())
}
