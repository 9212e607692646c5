//! `imxp`: the endpoint command. Attach to a relay and listen for
//! datagrams, or send one.

mod cli;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use cli::access::{AccessArgs, access_command};
use cli::connect::{ConnectionArgs, connect_options};
use cli::interrupt::Interrupt;
use cli::listen::{ListenArgs, listen_command};
use cli::presence::{PresenceArgs, presence_command};
use cli::send::{SendArgs, read_body, send_command};
use cli::{EXIT_REFUSED, within};
use imxp_client::{Client, ClientError};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "imxp",
    version,
    about = "Send and receive instant messages through an imxp (APEX) relay",
    long_about = "imxp is an APEX endpoint (RFC 3340): it connects to its domain's relay over BEEP, \
protects the session with TLS, authenticates with SASL (SCRAM-SHA-256 by default; PLAIN, or \
EXTERNAL with a client certificate: see --mechanism), attaches as an endpoint, and sends or \
receives datagrams.",
    after_help = "Exit status: 0 success; 1 failure (connection, TLS, authentication, I/O); \
2 usage error; 3 the relay refused the attach or the datagram.\n\n\
Examples:\n  \
imxp --relay relay.example.com --user fred@example.com --password-file ~/.imxp-pass \\\n      \
send --from fred@example.com --to barney@example.org 'Hello, Barney'\n  \
imxp --relay relay.example.com:913 --ca ca.pem --user fred@example.com --password-file - \\\n      \
listen --as fred@example.com --json\n\n\
Set IMXP_LOG (e.g. IMXP_LOG=debug) for diagnostics on standard error.\n\n\
End-to-end keys (OpenPGP, S/MIME): imxp keys --help"
)]
struct Cli {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: Command,
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
    /// Your access entries (RFC 3341): list, allow, block, remove, query.
    Access(AccessArgs),
    /// Presence (RFC 3343): publish yours; show, subscribe to or watch
    /// someone's; unsubscribe.
    Presence(PresenceArgs),
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = cli::keys::dispatch(&args) {
        return code;
    }
    let cli = Cli::parse_from(args);
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
    if stdin_body
        && cli
            .connection
            .password_file
            .as_ref()
            .is_some_and(|p| p.as_os_str() == "-")
    {
        bail!("standard input cannot hold both the password and the content");
    }
    let timeout = Duration::from_secs(cli.connection.timeout);
    // Read the content before connecting: a bad file fails fast.
    let body = match &cli.command {
        Command::Send(send) => {
            let (content_type, body) = read_body(send)?;
            Some(cli::protect::protect_body(
                &send.protection,
                &send.from,
                &send.to,
                content_type,
                body,
            )?)
        }
        Command::Listen(_) | Command::Access(_) | Command::Presence(_) => None,
    };
    let options = connect_options(&cli.connection)?;
    // Only listen and presence catch signals (send stays interruptible as usual).
    let interrupt = match &cli.command {
        Command::Listen(_) | Command::Presence(_) => Some(Interrupt::install()?),
        Command::Send(_) | Command::Access(_) => None,
    };
    // Empty with EXTERNAL and no --user: access then needs --owner.
    let user = cli.connection.user.clone().unwrap_or_default();
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
        Command::Access(args) => access_command(&client, &user, args, timeout).await,
        Command::Presence(args) => presence_command(&client, &user, args, interrupt, timeout).await,
    };
    // Release the session whatever happened; report the command's outcome first.
    let closed = within(timeout, "releasing the session", client.close()).await;
    let code = outcome?;
    closed.context("releasing the session")?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;
    use imxp_client::payload;

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
    fn access_arguments() {
        use cli::access::AccessCommand;
        let Command::Access(args) = parse(&["access", "block", r"a\*b@example.com"])
            .unwrap()
            .command
        else {
            panic!("access expected")
        };
        assert!(args.owner.is_none());
        let AccessCommand::Block { actor } = args.command else {
            panic!("block expected")
        };
        assert!(actor.is_exact(), "an escaped star is a literal");
        let Command::Access(args) = parse(&[
            "access",
            "--owner",
            "fred/appl=wb@example.com",
            "query",
            "barney@example.com",
            "--actions",
            "core:data presence:watch",
        ])
        .unwrap()
        .command
        else {
            panic!("access expected")
        };
        assert_eq!(args.owner.unwrap().to_string(), "fred/appl=wb@example.com");
        let AccessCommand::Query { actions, .. } = args.command else {
            panic!("query expected")
        };
        assert_eq!(actions.to_string(), "core:data presence:watch");
        // Bad actors and actions are usage errors naming the problem.
        let error = parse(&["access", "allow", "fr*d@example.com"]).unwrap_err();
        assert!(error.to_string().contains("local wildcard"), "{error}");
        assert!(parse(&["access", "query", "x@example.com", "--actions", "core"]).is_err());
        // query takes a plain endpoint (RFC 3341 §3): `*` is a literal there.
        assert!(parse(&["access", "query", "*@example.com"]).is_ok());
        assert!(parse(&["access", "query", "nobody"]).is_err());
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
}

#[cfg(test)]
mod man_page {
    use clap::CommandFactory as _;

    /// The synopsis and option lists of imxp(1) are generated from [`Cli`]
    /// and, for `imxp keys` (parsed on its own), from its `KeysCli`
    /// (`scripts/man` rewrites them).
    #[test]
    fn generated_parts_are_current() {
        let commands = [super::Cli::command(), super::cli::keys::KeysCli::command()];
        if let Err(e) = imxp_mangen::check_page("imxp.1", commands) {
            panic!("{e}");
        }
    }
}
