//! `imxp`: the endpoint command. Attach to a relay and listen for
//! datagrams, or send one.

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use imxp_apex::Endpoint;
use imxp_client::{Attachment, Client, ClientError, ConnectOptions, Received, relay_host, tls};
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status when the relay refused the attach or the datagram.
const EXIT_REFUSED: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "imxp",
    version,
    about = "Send and receive instant messages through an imxp (APEX) relay",
    long_about = "imxp is an APEX endpoint (RFC 3340): it connects to its domain's relay over BEEP, \
protects the session with TLS, authenticates with SASL PLAIN, attaches as an endpoint, and \
sends or receives datagrams.",
    after_help = "Exit status: 0 success; 1 failure (connection, TLS, authentication, I/O); \
2 usage error; 3 the relay refused the attach or the datagram.\n\n\
Examples:\n  \
imxp --relay relay.example.com --user fred@example.com --password-file ~/.imxp-pass \\\n      \
send --from fred@example.com --to barney@example.org 'Hello, Barney'\n  \
imxp --relay relay.example.com:913 --ca ca.pem --user fred@example.com --password-file - \\\n      \
listen --as fred@example.com --json\n\n\
Set IMXP_LOG (e.g. IMXP_LOG=debug) for diagnostics on standard error."
)]
struct Cli {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct ConnectionArgs {
    #[arg(
        long,
        value_name = "HOST:PORT",
        help = "The relay's edge address: HOST[:PORT] or [IPV6][:PORT] (port 913 by default)"
    )]
    relay: String,
    /// PEM file of CA certificates to trust for the relay's certificate
    /// (default: the system trust store).
    #[arg(long, value_name = "FILE", conflicts_with = "plaintext")]
    ca: Option<PathBuf>,
    /// The name the relay's certificate must carry (default: the host of --relay).
    #[arg(long, value_name = "NAME", conflicts_with = "plaintext")]
    server_name: Option<String>,
    /// Do not use TLS. The password crosses the network in clear:
    /// development and loopback tests only.
    #[arg(long)]
    plaintext: bool,
    /// The SASL user: your endpoint address, e.g. fred@example.com.
    #[arg(long, value_name = "NAME")]
    user: String,
    /// File holding the password (its first line); "-" reads standard input.
    #[arg(long, value_name = "FILE")]
    password_file: PathBuf,
    /// Seconds allowed for connecting, TLS, authentication and attaching,
    /// and for the relay to answer a datagram (send).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Attach and print each datagram received, acknowledging it once printed.
    ///
    /// Text output: a header block (originator, recipient, content-type,
    /// content-length; content-transfer-encoding: base64 when the content
    /// is not UTF-8), an empty line, the content, an empty line.
    Listen(ListenArgs),
    /// Attach, send one datagram, and print "accepted" or the relay's
    /// refusal ("refused CODE TEXT").
    Send(SendArgs),
}

#[derive(Debug, Args)]
struct ListenArgs {
    /// The endpoint to attach as; repeat to attach as several (on one channel).
    #[arg(long = "as", value_name = "ENDPOINT", required = true)]
    endpoints: Vec<Endpoint>,
    /// One JSON object per line: originator, recipient, content_type,
    /// content (UTF-8 text, or base64 when "base64" is true).
    #[arg(long)]
    json: bool,
    /// Exit after N datagrams.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("body").required(true).args(["text", "file"]))]
struct SendArgs {
    /// The originator: an endpoint this user may attach as.
    #[arg(long, value_name = "ENDPOINT")]
    from: Endpoint,
    /// A recipient; repeat for several.
    #[arg(long, value_name = "ENDPOINT", required = true)]
    to: Vec<Endpoint>,
    /// The message text; "-" reads the content from standard input.
    #[arg(value_name = "TEXT")]
    text: Option<String>,
    /// Send the bytes of FILE as the content.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// The content's media type (default: text/plain; charset=utf-8 when
    /// the content is UTF-8 text, else application/octet-stream).
    #[arg(long, value_name = "TYPE")]
    content_type: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IMXP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("imxp: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            let refused = error
                .chain()
                .any(|cause| matches!(cause.downcast_ref(), Some(ClientError::Refused { .. })));
            eprintln!("imxp: {error:#}");
            if refused {
                ExitCode::from(EXIT_REFUSED)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let stdin_body =
        matches!(&cli.command, Command::Send(send) if send.text.as_deref() == Some("-"));
    if stdin_body && cli.connection.password_file.as_os_str() == "-" {
        bail!("standard input cannot hold both the password and the content");
    }
    let timeout = Duration::from_secs(cli.connection.timeout);
    // Read the content before connecting: a bad file fails fast.
    let body = match &cli.command {
        Command::Send(send) => Some(read_body(send)?),
        Command::Listen(_) => None,
    };
    let options = connect_options(&cli.connection)?;
    // Only listen catches signals (send stays interruptible as usual).
    let interrupt = match &cli.command {
        Command::Listen(_) => Some(Interrupt::install()?),
        Command::Send(_) => None,
    };
    let client = within(timeout, "connecting to the relay", Client::connect(options))
        .await
        .with_context(|| format!("cannot log in to {}", cli.connection.relay))?;
    let outcome = match cli.command {
        Command::Listen(listen) => {
            let interrupt = interrupt.context("signal handlers")?;
            listen_command(&client, listen, interrupt, timeout).await
        }
        Command::Send(send) => {
            let (content_type, body) = body.unwrap_or_default();
            send_command(&client, send, &content_type, &body, timeout).await
        }
    };
    // Release the session whatever happened; report the command's outcome first.
    let closed = within(timeout, "releasing the session", client.close()).await;
    let code = outcome?;
    closed.context("releasing the session")?;
    Ok(code)
}

fn connect_options(args: &ConnectionArgs) -> Result<ConnectOptions> {
    let password = read_password(&args.password_file)?;
    let tls = if args.plaintext {
        None
    } else {
        let config = match &args.ca {
            Some(path) => tls::client_config_from_ca_file(path)?,
            None => tls::client_config_with_native_roots()
                .context("no --ca given and the system trust store is unusable")?,
        };
        let name = match &args.server_name {
            Some(name) => name.clone(),
            None => relay_host(&args.relay)?.to_owned(),
        };
        Some((config, name))
    };
    Ok(ConnectOptions {
        relay: args.relay.clone(),
        tls,
        user: args.user.clone(),
        password,
    })
}

/// The first line of the password file (or of standard input for "-").
fn read_password(path: &PathBuf) -> Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the password from standard input")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the password file {}", path.display()))?;
    }
    let password = text.lines().next().unwrap_or_default().to_owned();
    if password.is_empty() {
        bail!("the password file {} is empty", path.display());
    }
    Ok(password)
}

/// The content type and the octets to send.
fn read_body(send: &SendArgs) -> Result<(String, Vec<u8>)> {
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

async fn within<T>(
    limit: Duration,
    what: &str,
    future: impl Future<Output = Result<T, ClientError>>,
) -> Result<T> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => Ok(result?),
        Err(_) => bail!("{what}: no answer within {} s", limit.as_secs()),
    }
}

async fn attach_all(
    client: &Client,
    endpoints: &[Endpoint],
    timeout: Duration,
) -> Result<Attachment> {
    let (first, rest) = endpoints
        .split_first()
        .context("no endpoint to attach as")?;
    let attachment = within(timeout, "attaching", client.attach(first.clone()))
        .await
        .with_context(|| format!("cannot attach as {first}"))?;
    for endpoint in rest {
        within(timeout, "attaching", attachment.attach(endpoint.clone()))
            .await
            .with_context(|| format!("cannot attach as {endpoint}"))?;
    }
    Ok(attachment)
}

async fn send_command(
    client: &Client,
    send: SendArgs,
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<ExitCode> {
    let attachment = attach_all(client, std::slice::from_ref(&send.from), timeout).await?;
    let sent = within(
        timeout,
        "sending",
        attachment.send(send.to, content_type, body),
    )
    .await;
    let code = match sent {
        Ok(()) => {
            println!("accepted");
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

async fn listen_command(
    client: &Client,
    listen: ListenArgs,
    mut interrupt: Interrupt,
    timeout: Duration,
) -> Result<ExitCode> {
    let mut attachment = attach_all(client, &listen.endpoints, timeout).await?;
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
        let text = if listen.json {
            json_line(&datagram)
        } else {
            text_block(&datagram)
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

/// SIGINT and (on Unix) SIGTERM, caught from before connecting so that
/// `listen` always ends cleanly: its attachments terminated, the session
/// released.
struct Interrupt {
    #[cfg(unix)]
    signals: [tokio::signal::unix::Signal; 2],
}

impl Interrupt {
    fn install() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                signals: [
                    signal(SignalKind::interrupt()).context("catching SIGINT")?,
                    signal(SignalKind::terminate()).context("catching SIGTERM")?,
                ],
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            let [interrupt, terminate] = &mut self.signals;
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The content as text if it is UTF-8, else base64 (and `true`).
fn content_text(datagram: &Received) -> (String, bool) {
    match datagram.text() {
        Some(text) => (text.to_owned(), false),
        None => (
            base64::engine::general_purpose::STANDARD.encode(&datagram.content),
            true,
        ),
    }
}

fn json_line(datagram: &Received) -> String {
    let (content, base64) = content_text(datagram);
    let mut line = serde_json::json!({
        "originator": datagram.originator.to_string(),
        "recipient": datagram.recipient.to_string(),
        "content_type": datagram.content_type,
        "content": content,
        "base64": base64,
    })
    .to_string();
    line.push('\n');
    line
}

fn text_block(datagram: &Received) -> String {
    let (content, base64) = content_text(datagram);
    let mut block = format!(
        "originator: {}\nrecipient: {}\ncontent-type: {}\ncontent-length: {}\n",
        datagram.originator,
        datagram.recipient,
        datagram.content_type,
        datagram.content.len()
    );
    if base64 {
        block.push_str("content-transfer-encoding: base64\n");
    }
    block.push('\n');
    block.push_str(&content);
    if !content.ends_with('\n') {
        block.push('\n');
    }
    block.push('\n');
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;
    use imxp_client::payload::{self, Inbound};

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut all = vec![
            "imxp",
            "--relay",
            "relay.example.com:913",
            "--user",
            "fred@example.com",
            "--password-file",
            "pw",
        ];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)
    }

    #[test]
    fn send_needs_exactly_one_body() {
        let base = [
            "send",
            "--from",
            "fred@example.com",
            "--to",
            "barney@example.org",
        ];
        assert!(parse(&base).is_err());
        let mut with_both = base.to_vec();
        with_both.extend(["hello", "--file", "x"]);
        assert!(parse(&with_both).is_err());
        let mut with_text = base.to_vec();
        with_text.push("hello");
        let Command::Send(send) = parse(&with_text).unwrap().command else {
            panic!("not send")
        };
        assert_eq!(send.text.as_deref(), Some("hello"));
        assert_eq!(
            read_body(&send).unwrap(),
            (payload::TEXT_PLAIN_UTF8.to_owned(), b"hello".to_vec())
        );
    }

    #[test]
    fn endpoints_are_checked_on_the_command_line() {
        assert!(parse(&["send", "--from", "fred", "--to", "barney@example.org", "x"]).is_err());
        assert!(
            parse(&[
                "listen",
                "--as",
                "fred@example.com",
                "--as",
                "wilma@example.com"
            ])
            .is_ok()
        );
        assert!(parse(&["listen"]).is_err());
        assert!(
            parse(&[
                "--plaintext",
                "--ca",
                "x",
                "listen",
                "--as",
                "fred@example.com"
            ])
            .is_err()
        );
    }

    #[test]
    fn a_file_body_takes_the_given_content_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("body.bin");
        std::fs::write(&path, [0u8, 159, 146, 150]).unwrap();
        let path = path.to_str().unwrap();
        let Command::Send(send) = parse(&[
            "send",
            "--from",
            "fred@example.com",
            "--to",
            "barney@example.org",
            "--file",
            path,
            "--content-type",
            "image/png",
        ])
        .unwrap()
        .command
        else {
            panic!("not send")
        };
        assert_eq!(
            read_body(&send).unwrap(),
            ("image/png".to_owned(), vec![0u8, 159, 146, 150])
        );
    }

    #[test]
    fn the_password_is_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\r\nignored\n").unwrap();
        assert_eq!(read_password(&path).unwrap(), "s3cret");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_password(&path).is_err());
    }

    fn received(content_type: &str, body: &[u8]) -> Received {
        let (data, content) = payload::build_data(
            &Endpoint::parse("barney@example.org").unwrap(),
            &[Endpoint::parse("fred@example.com").unwrap()],
            content_type,
            body,
        )
        .unwrap();
        let payload = bytes::Bytes::from(data.to_payload(&content));
        let Inbound::Deliver(delivery) =
            payload::classify(&payload, |_| true, &imxp_apex::Limits::default())
        else {
            panic!("not delivered")
        };
        Received::detached(*delivery)
    }

    #[test]
    fn json_lines() {
        let line = json_line(&received(
            "text/plain; charset=utf-8",
            "hi \"fred\"\n".as_bytes(),
        ));
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line}"
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["originator"], "barney@example.org");
        assert_eq!(value["recipient"], "fred@example.com");
        assert_eq!(value["content_type"], "text/plain; charset=utf-8");
        assert_eq!(value["content"], "hi \"fred\"\n");
        assert_eq!(value["base64"], false);
        let value: serde_json::Value =
            serde_json::from_str(&json_line(&received("image/png", &[0xff, 0, 1]))).unwrap();
        assert_eq!(value["content"], "/wAB");
        assert_eq!(value["base64"], true);
    }

    #[test]
    fn text_blocks() {
        assert_eq!(
            text_block(&received("text/plain; charset=utf-8", b"hello")),
            "originator: barney@example.org\nrecipient: fred@example.com\n\
             content-type: text/plain; charset=utf-8\ncontent-length: 5\n\nhello\n\n"
        );
        assert_eq!(
            text_block(&received("image/png", &[0xff, 0, 1])),
            "originator: barney@example.org\nrecipient: fred@example.com\n\
             content-type: image/png\ncontent-length: 3\ncontent-transfer-encoding: base64\n\n/wAB\n\n"
        );
    }
}
