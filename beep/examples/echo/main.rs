//! An echo listener and client for interoperability testing of BEEP
//! implementations.
//!
//! ```text
//! cargo run --example echo -- listen --addr 127.0.0.1:10288 --profile http://example.com/ECHO
//! cargo run --example echo -- client --addr 127.0.0.1:10288 --profile http://example.com/ECHO \
//!     --count 100 --size 102400 --pipeline 8
//! ```
//!
//! The listener offers the profile URIs it is given and answers every MSG
//! with an RPY carrying exactly the same payload octets. The client starts a
//! channel on the profile, sends the messages, checks every reply byte for
//! byte and prints `N passed, M failed` (whatever happens when the session
//! is released: a failed release is a warning on standard error, and the
//! exit status is 0 when every message passed). With `--tls-cert/--tls-key` the
//! listener offers TLS tuning (`--self-signed NAME` makes a certificate and
//! writes it with `--write-cert`); the client tunes with `--tls --ca FILE
//! --server-name NAME`.

mod run;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

#[derive(Parser)]
#[command(about = "BEEP echo listener and client (RFC 3080/3081)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Listen and echo every MSG in an RPY.
    Listen {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:10288")]
        addr: String,
        /// Profile URI to offer (repeatable).
        #[arg(long = "profile", required = true)]
        profiles: Vec<String>,
        /// PEM certificate chain for TLS tuning.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// PEM private key for TLS tuning.
        #[arg(long)]
        tls_key: Option<std::path::PathBuf>,
        /// Generate a self-signed certificate for this name instead.
        #[arg(long, conflicts_with = "tls_cert")]
        self_signed: Option<String>,
        /// Where to write the generated certificate (PEM), for clients' --ca.
        #[arg(long, requires = "self_signed")]
        write_cert: Option<std::path::PathBuf>,
        /// Receive window per channel, in octets.
        #[arg(long, default_value_t = 256 * 1024)]
        window: u32,
    },
    /// Send messages and check the echoes.
    Client {
        /// Listener address, host:port.
        #[arg(long)]
        addr: String,
        /// Profile URI to start.
        #[arg(long)]
        profile: String,
        /// Messages per channel.
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Octets per message.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Messages in flight per channel (1: no pipelining).
        #[arg(long, default_value_t = 1)]
        pipeline: usize,
        /// Channels used in parallel.
        #[arg(long, default_value_t = 1)]
        channels: usize,
        /// Tune the session with TLS first.
        #[arg(long, requires = "ca")]
        tls: bool,
        /// PEM trust anchors for the listener's certificate.
        #[arg(long)]
        ca: Option<std::path::PathBuf>,
        /// Name expected in the listener's certificate.
        #[arg(long, default_value = "localhost")]
        server_name: String,
        /// Receive window per channel, in octets.
        #[arg(long, default_value_t = 256 * 1024)]
        window: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Listen {
            addr,
            profiles,
            tls_cert,
            tls_key,
            self_signed,
            write_cert,
            window,
        } => {
            let tls = match (tls_cert, tls_key, self_signed) {
                (Some(cert), Some(key), _) => {
                    let chain = CertificateDer::pem_file_iter(&cert)
                        .with_context(|| format!("reading {}", cert.display()))?
                        .collect::<Result<Vec<_>, _>>()?;
                    let key = PrivateKeyDer::from_pem_file(&key)
                        .with_context(|| format!("reading {}", key.display()))?;
                    Some(server_config(chain, key)?)
                }
                (_, _, Some(name)) => {
                    let generated = rcgen::generate_simple_self_signed(vec![name])?;
                    if let Some(path) = write_cert {
                        std::fs::write(&path, generated.cert.pem())
                            .with_context(|| format!("writing {}", path.display()))?;
                    }
                    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
                        .map_err(anyhow::Error::msg)?;
                    Some(server_config(vec![generated.cert.der().clone()], key)?)
                }
                _ => None,
            };
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            eprintln!("echo: listening on {}", listener.local_addr()?);
            run::listen(
                listener,
                run::ListenOptions {
                    profiles,
                    tls,
                    window,
                },
            )
            .await?;
        }
        Command::Client {
            addr,
            profile,
            count,
            size,
            pipeline,
            channels,
            tls,
            ca,
            server_name,
            window,
        } => {
            let tls = match (tls, ca) {
                (true, Some(ca)) => {
                    let mut roots = rustls::RootCertStore::empty();
                    for cert in CertificateDer::pem_file_iter(&ca)
                        .with_context(|| format!("reading {}", ca.display()))?
                    {
                        roots.add(cert?)?;
                    }
                    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                    Some((Arc::new(config), server_name))
                }
                _ => None,
            };
            let outcome = run::client(run::ClientOptions {
                address: addr,
                profile,
                count,
                size,
                pipeline,
                channels,
                tls,
                window,
            })
            .await?;
            // The counts are printed in every case; how the session ended
            // only decides the exit status when messages were lost.
            println!("{} passed, {} failed", outcome.passed, outcome.failed);
            if let Some(error) = &outcome.exchange_error {
                eprintln!("echo: error: {error}");
            }
            if let Err(error) = &outcome.release {
                eprintln!("echo: warning: {error}");
            }
            if outcome.failed > 0 {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}
