//! The connection arguments shared by every command: relay address, TLS,
//! login.

use anyhow::{Context as _, Result, bail};
use clap::Args;
use imxp_client::{ConnectOptions, relay_host, tls};
use std::io::Read as _;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct ConnectionArgs {
    #[arg(
        long,
        value_name = "HOST:PORT",
        help = "The relay's edge address: HOST[:PORT] or [IPV6][:PORT] (port 913 by default)"
    )]
    pub(crate) relay: String,
    /// PEM file of CA certificates to trust for the relay's certificate
    /// (default: the system trust store).
    #[arg(long, value_name = "FILE", conflicts_with = "plaintext")]
    pub(crate) ca: Option<PathBuf>,
    /// The name the relay's certificate must carry (default: the host of --relay).
    #[arg(long, value_name = "NAME", conflicts_with = "plaintext")]
    pub(crate) server_name: Option<String>,
    /// Do not use TLS. The password crosses the network in clear:
    /// development and loopback tests only.
    #[arg(long)]
    pub(crate) plaintext: bool,
    /// The SASL user: your endpoint address, e.g. fred@example.com.
    #[arg(long, value_name = "NAME")]
    pub(crate) user: String,
    /// File holding the password (its first line); "-" reads standard input.
    #[arg(long, value_name = "FILE")]
    pub(crate) password_file: PathBuf,
    /// Seconds allowed for connecting, TLS, authentication and attaching,
    /// and for the relay to answer a datagram (send).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub(crate) timeout: u64,
}

pub(crate) fn connect_options(args: &ConnectionArgs) -> Result<ConnectOptions> {
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
pub(crate) fn read_password(path: &PathBuf) -> Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\r\nignored\n").unwrap();
        assert_eq!(read_password(&path).unwrap(), "s3cret");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_password(&path).is_err());
    }
}
