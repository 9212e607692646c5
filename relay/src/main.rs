//! imxpd: the APEX relay daemon.
//!
//! ```text
//! imxpd --dev                         run a development relay for localhost
//! imxpd --config /etc/imxp/imxpd.toml run
//! imxpd check-config --config FILE    validate a configuration
//! imxpd user add|del|list             manage the users file
//! ```

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use imxp_relay::config::Config;
use imxp_relay::server::{self, Listeners};
use imxp_relay::{activation, auth, tls};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "imxpd",
    version,
    about = "The imxp relay: APEX (RFC 3340) over BEEP, with a durable spool",
    long_about = "The imxp relay. Endpoints attach on the edge listener (apex-edge, \
                  port 913) after TLS and SASL; other relays bind on the mesh listener \
                  (apex-mesh, port 912). Accepted datagrams are written durably to the \
                  spool before they are acknowledged, delivered to attached endpoints of \
                  the relay's domains, and forwarded to other domains' relays found by \
                  [routes] or DNS SRV _apex-mesh._tcp.\n\n\
                  Without a subcommand the relay runs until SIGINT or SIGTERM."
)]
struct Cli {
    /// Configuration file (TOML; every key is described in imxpd.toml(5)).
    #[arg(long, short, global = true, default_value = "/etc/imxp/imxpd.toml")]
    config: PathBuf,
    /// Development mode: serve `localhost` from a local state directory with
    /// a generated self-signed certificate and a development user; edge on
    /// 127.0.0.1:9913, mesh on 127.0.0.1:9912. Writes `imxpd.toml` there on
    /// first use and ignores --config.
    #[arg(long)]
    dev: bool,
    /// State directory for --dev.
    #[arg(long, default_value = "imxp-dev", requires = "dev")]
    state_dir: PathBuf,
    /// Log lines as text for people, or as one JSON object per line for
    /// log collectors (fields: timestamp, level, target, and the event's
    /// own fields such as id, recipient and event). Overrides `[log]
    /// format` of the configuration (default: text). Logs go to standard
    /// error (under systemd, to the journal, without a timestamp of their
    /// own); the level is set with IMXP_LOG (default "info").
    #[arg(long, value_enum, global = true)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration; every error names the key.
    CheckConfig,
    /// Manage the users file ([auth] users) of edge logins.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user (a full endpoint address, e.g. fred@example.com).
    Add {
        /// The user name.
        name: String,
        /// Read the password from this file (`-`: standard input).
        #[arg(long, default_value = "-")]
        password_file: PathBuf,
    },
    /// Remove a user.
    Del {
        /// The user name.
        name: String,
    },
    /// List the users.
    List,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The configuration may choose the log format: read it first, quietly
    // (a broken file is reported by the command that loads it below).
    let configured = if cli.dev {
        None
    } else {
        Config::load(&cli.config).ok().map(|c| c.log_format)
    };
    init_logging(cli.log_format, configured);
    let config_path = if cli.dev {
        prepare_dev(&cli.state_dir)?
    } else {
        cli.config.clone()
    };
    match cli.command {
        Some(Command::CheckConfig) => {
            let config = Config::load(&config_path)?;
            println!(
                "{}: ok (domains {}, state_dir {})",
                config_path.display(),
                config.domains.join(", "),
                config.state_dir.display()
            );
            Ok(())
        }
        Some(Command::User { command }) => {
            let config = Config::load(&config_path)?;
            match command {
                UserCommand::Add {
                    name,
                    password_file,
                } => {
                    let password = auth::read_password(&password_file)?;
                    let name = auth::add_user(&config.users, &name, &password)?;
                    println!("added {name}");
                }
                UserCommand::Del { name } => {
                    let name = auth::remove_user(&config.users, &name)?;
                    println!("removed {name}");
                }
                UserCommand::List => {
                    for name in auth::list_users(&config.users)? {
                        println!("{name}");
                    }
                }
            }
            Ok(())
        }
        None => {
            let config = Config::load(&config_path)?;
            if cli.dev && activation::running_as_root() {
                tracing::warn!(
                    "running as root: fine for a look around, never in production \
                     (see the README, \"Running without root\")"
                );
            } else {
                activation::check_not_root(&config)?;
            }
            // Before the runtime starts threads: this edits the environment.
            let inherited = activation::take_inherited(&config)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let listeners = match inherited {
                    Some(inherited) => {
                        tracing::info!(
                            edge = inherited.edge.len(),
                            mesh = inherited.mesh.len(),
                            "using the sockets passed by the service manager; [listen] is not bound"
                        );
                        Listeners::from_inherited(inherited)?
                    }
                    None => Listeners::bind(&config).await?,
                };
                server::run(config, listeners, shutdown_signal()?).await?;
                anyhow::Ok(())
            })
        }
    }
}

/// Installs the log subscriber: `flag` (`--log-format`) wins over
/// `configured` (`[log] format`). Under systemd (`JOURNAL_STREAM` set,
/// standard error connected to the journal) text lines carry no
/// timestamp: the journal adds its own, and keeps the `key=value` fields
/// as written. Colours only when standard error is a terminal.
fn init_logging(flag: Option<LogFormat>, configured: Option<imxp_relay::config::LogFormat>) {
    let format = flag.unwrap_or(match configured {
        Some(imxp_relay::config::LogFormat::Json) => LogFormat::Json,
        _ => LogFormat::Text,
    });
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMXP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    // Colours only for a person at a terminal, never into a file or pipe.
    let logs = logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match (format, journal) {
        (LogFormat::Text, false) => logs.init(),
        (LogFormat::Text, true) => logs.without_time().with_ansi(false).init(),
        (LogFormat::Json, _) => logs.json().with_current_span(false).init(),
    }
}

/// Writes the development configuration, certificate and user, once.
fn prepare_dev(state_dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let state_dir = state_dir.canonicalize()?;
    let (cert, key) = tls::generate_dev_certificate(&state_dir, &["localhost".to_owned()])?;
    let config_path = state_dir.join("imxpd.toml");
    if !config_path.exists() {
        let text = format!(
            "# imxpd development configuration (written by `imxpd --dev`).\n\
             [relay]\ndomains = [\"localhost\"]\nstate_dir = \"{dir}\"\n\n\
             [listen]\nedge = [\"127.0.0.1:9913\"]\nmesh = [\"127.0.0.1:9912\"]\n\n\
             [tls]\ncert = \"{cert}\"\nkey = \"{key}\"\nca = \"{cert}\"\n\n\
             [auth]\nusers = \"{dir}/users.toml\"\n",
            dir = state_dir.display(),
            cert = cert.display(),
            key = key.display(),
        );
        std::fs::write(&config_path, text)
            .with_context(|| format!("writing {}", config_path.display()))?;
    }
    let config = Config::load(&config_path)?;
    let (_, password_file) = auth::create_dev_user(&config.users, "dev@localhost")?;
    eprintln!(
        "imxpd --dev: serving localhost; edge 127.0.0.1:9913, mesh 127.0.0.1:9912\n\
         \x20 config   {}\n  CA       {}\n  user     dev@localhost\n  password {}",
        config_path.display(),
        cert.display(),
        password_file.display()
    );
    Ok(config_path)
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when the future is first polled: the relay tells systemd it
/// is ready before it waits for the shutdown, and a SIGTERM in between
/// must start a drain, not kill the process.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(test)]
mod man_page {
    use clap::CommandFactory as _;

    /// The synopsis and option lists of imxpd(8) are generated from [`Cli`]
    /// (`scripts/man` rewrites them).
    #[test]
    fn generated_parts_are_current() {
        if let Err(e) = imxp_mangen::check_page("imxpd.8", [super::Cli::command()]) {
            panic!("{e}");
        }
    }
}
