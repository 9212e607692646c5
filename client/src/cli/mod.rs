//! The `imxp` command's pieces: one module per command, plus the connection
//! arguments and output formats they share.

pub(crate) mod access;
pub(crate) mod connect;
pub(crate) mod interrupt;
pub(crate) mod keys;
pub(crate) mod listen;
pub(crate) mod options;
pub(crate) mod output;
pub(crate) mod presence;
pub(crate) mod protect;
pub(crate) mod send;
pub(crate) mod wait;

use anyhow::{Context as _, Result, bail};
use imxp_apex::Endpoint;
use imxp_client::{AttachOptions, Attachment, Client, ClientError};
use std::time::Duration;

/// Exit status when the relay refused the attach or the datagram.
pub(crate) const EXIT_REFUSED: u8 = 3;

pub(crate) async fn within<T>(
    limit: Duration,
    what: &str,
    future: impl Future<Output = Result<T, ClientError>>,
) -> Result<T> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => Ok(result?),
        Err(_) => bail!("{what}: no answer within {} s", limit.as_secs()),
    }
}

pub(crate) async fn attach_all(
    client: &Client,
    endpoints: &[Endpoint],
    timeout: Duration,
) -> Result<Attachment> {
    attach_all_with(client, endpoints, false, timeout).await
}

/// Attaches as `endpoints` on one channel; `take_over`: each attach carries
/// `attachOverride` (RFC 3342 §1).
pub(crate) async fn attach_all_with(
    client: &Client,
    endpoints: &[Endpoint],
    take_over: bool,
    timeout: Duration,
) -> Result<Attachment> {
    let (first, rest) = endpoints
        .split_first()
        .context("no endpoint to attach as")?;
    let options = AttachOptions {
        take_over,
        ..AttachOptions::default()
    };
    let attachment = within(
        timeout,
        "attaching",
        client.attach_with(first.clone(), options),
    )
    .await
    .with_context(|| format!("cannot attach as {first}"))?;
    for endpoint in rest {
        let attached = if take_over {
            within(
                timeout,
                "attaching",
                attachment.attach_override(endpoint.clone()),
            )
            .await
        } else {
            within(timeout, "attaching", attachment.attach(endpoint.clone())).await
        };
        attached.with_context(|| format!("cannot attach as {endpoint}"))?;
    }
    Ok(attachment)
}
