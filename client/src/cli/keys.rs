//! `imxp keys`: the end-to-end keyring (imxp-e2e): generate, import,
//! export, list and trust OpenPGP keys and S/MIME certificates. Needs no
//! relay, so it is dispatched before the relay options are parsed.

use super::protect::KeyringArg;
use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use imxp_apex::Endpoint;
use imxp_e2e::keyring::KeyEntry;
use imxp_e2e::{ImUri, Scheme, smime};
use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "imxp keys",
    version,
    about = "Manage the end-to-end keys of imxp: OpenPGP keys and S/MIME certificates",
    after_help = "Examples:\n  \
imxp keys generate --pgp alice@a.test\n  \
imxp keys export --pgp alice@a.test > alice.asc     (give this to your correspondents)\n  \
imxp keys import bob.asc && imxp keys trust bob@b.test\n  \
imxp keys test-ca --cert ca.pem --key ca.key && imxp keys generate --smime alice@a.test --ca ca.pem --ca-key ca.key"
)]
pub(crate) struct KeysCli {
    #[command(flatten)]
    keyring: KeyringArg,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("scheme").required(true).args(["pgp", "smime"]))]
struct SchemeChoice {
    /// OpenPGP.
    #[arg(long)]
    pgp: bool,
    /// S/MIME.
    #[arg(long)]
    smime: bool,
}

impl SchemeChoice {
    fn scheme(&self) -> Scheme {
        if self.pgp {
            Scheme::OpenPgp
        } else {
            Scheme::Smime
        }
    }
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a key for ENDPOINT: an OpenPGP key (user ID <im:ENDPOINT>), or
    /// an X.509 certificate with subjectAltName URI im:ENDPOINT, signed by
    /// --ca or self-signed. Own keys are trusted.
    Generate {
        #[command(flatten)]
        scheme: SchemeChoice,
        /// The endpoint the key belongs to, e.g. alice@a.test.
        #[arg(value_name = "ENDPOINT")]
        endpoint: Endpoint,
        /// S/MIME: the issuing CA's certificate (PEM); it becomes a trust anchor.
        #[arg(long, value_name = "FILE", requires = "ca_key")]
        ca: Option<PathBuf>,
        /// S/MIME: the issuing CA's private key (PEM).
        #[arg(long, value_name = "FILE", requires = "ca")]
        ca_key: Option<PathBuf>,
    },
    /// Make a test certificate authority for S/MIME certificates and write
    /// its certificate and key (0600) to files.
    TestCa {
        /// The CA's name.
        #[arg(value_name = "NAME", default_value = "imxp test CA")]
        name: String,
        /// Where to write the CA certificate (PEM).
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// Where to write the CA private key (PEM, mode 0600).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Import OpenPGP certificates or keys (armored or binary), or PEM
    /// certificates with an optional private key. Imported keys are not
    /// trusted until `imxp keys trust`.
    Import {
        /// The file; "-" reads standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print a certificate (or with --secret, the secret key too) to
    /// standard output.
    Export {
        /// A fingerprint, an endpoint or an im: URI.
        #[arg(value_name = "WHICH")]
        selector: String,
        /// Only OpenPGP.
        #[arg(long, conflicts_with = "smime")]
        pgp: bool,
        /// Only S/MIME.
        #[arg(long)]
        smime: bool,
        /// Include the secret key.
        #[arg(long)]
        secret: bool,
    },
    /// List the keys and certificates.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Trust a key: an OpenPGP certificate is marked trusted, an S/MIME
    /// certificate (e.g. a CA) becomes a trust anchor.
    Trust {
        /// A fingerprint, an endpoint or an im: URI.
        #[arg(value_name = "WHICH")]
        selector: String,
    },
}

/// Runs `imxp keys …` if that is what the command line asks for.
pub(crate) fn dispatch(args: &[OsString]) -> Option<ExitCode> {
    if args.get(1).is_none_or(|command| command != "keys") {
        return None;
    }
    let cli = KeysCli::parse_from(
        std::iter::once(OsString::from("imxp keys")).chain(args.iter().skip(2).cloned()),
    );
    Some(match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("imxp keys: {error:#}");
            ExitCode::FAILURE
        }
    })
}

fn run(cli: KeysCli) -> Result<()> {
    if let KeysCommand::TestCa { name, cert, key } = &cli.command {
        let (ca, ca_key) = smime::generate_ca(name)?;
        std::fs::write(cert, ca.to_pem()?)
            .with_context(|| format!("writing {}", cert.display()))?;
        write_secret(key, &ca_key.private_key_to_pem_pkcs8()?)?;
        println!(
            "test CA {name:?} {}: certificate {}, key {}",
            smime::fingerprint(&ca),
            cert.display(),
            key.display()
        );
        return Ok(());
    }
    let keyring = cli.keyring.open()?;
    let mut stdout = std::io::stdout();
    match cli.command {
        KeysCommand::TestCa { .. } => unreachable!("handled above"),
        KeysCommand::Generate {
            scheme,
            endpoint,
            ca,
            ca_key,
        } => {
            let identity = ImUri::from_address(&endpoint.to_string())?;
            let entry = match scheme.scheme() {
                Scheme::OpenPgp => {
                    if ca.is_some() {
                        bail!("--ca is for S/MIME certificates");
                    }
                    keyring.generate_pgp(&identity)?
                }
                Scheme::Smime => match (ca, ca_key) {
                    (Some(ca), Some(ca_key)) => {
                        let ca_cert = smime::read_certs(&read(&ca)?)?
                            .into_iter()
                            .next()
                            .with_context(|| format!("no certificate in {}", ca.display()))?;
                        let ca_key = smime::read_key(&read(&ca_key)?)?;
                        keyring.generate_smime(&identity, Some((&ca_cert, &ca_key)))?
                    }
                    _ => keyring.generate_smime(&identity, None)?,
                },
            };
            println!(
                "generated {} {} for {identity} in {}",
                entry.scheme,
                entry.id,
                keyring.root().display()
            );
        }
        KeysCommand::Import { file } => {
            let bytes = if file.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .context("reading standard input")?;
                bytes
            } else {
                read(&file)?
            };
            for entry in keyring.import(&bytes)? {
                println!("imported {}", line(&entry));
            }
        }
        KeysCommand::Export {
            selector,
            pgp,
            smime,
            secret,
        } => {
            let scheme = match (pgp, smime) {
                (true, _) => Some(Scheme::OpenPgp),
                (_, true) => Some(Scheme::Smime),
                _ => None,
            };
            let bytes = keyring.export(&selector, scheme, secret)?;
            stdout
                .write_all(&bytes)
                .context("writing standard output")?;
        }
        KeysCommand::List { json } => {
            for entry in keyring.list()? {
                if json {
                    let value = serde_json::json!({
                        "scheme": entry.scheme.as_str(),
                        "id": entry.id,
                        "name": entry.name,
                        "identities": entry.identities.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "secret": entry.secret,
                        "trusted": entry.trusted,
                    });
                    writeln!(stdout, "{value}").context("writing standard output")?;
                } else {
                    writeln!(stdout, "{}", line(&entry)).context("writing standard output")?;
                }
            }
        }
        KeysCommand::Trust { selector } => {
            for entry in keyring.trust(&selector)? {
                println!("trusted {}", line(&entry));
            }
        }
    }
    Ok(())
}

fn line(entry: &KeyEntry) -> String {
    let identities = entry
        .identities
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "{:<7} {} {}{} {} {}",
        entry.scheme.as_str(),
        entry.id,
        if entry.secret { "secret" } else { "public" },
        if entry.trusted { ",trusted" } else { "" },
        if identities.is_empty() {
            "-"
        } else {
            &identities
        },
        entry.name.as_deref().unwrap_or("")
    )
    .trim_end()
    .to_owned()
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_definition_is_consistent() {
        KeysCli::command().debug_assert();
    }

    #[test]
    fn only_the_keys_command_is_dispatched() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(dispatch(&args(&["imxp", "send"])).is_none());
        assert!(dispatch(&args(&["imxp"])).is_none());
    }

    #[test]
    fn generate_needs_a_scheme() {
        assert!(KeysCli::try_parse_from(["imxp keys", "generate", "alice@a.test"]).is_err());
        assert!(
            KeysCli::try_parse_from(["imxp keys", "generate", "--pgp", "--smime", "alice@a.test"])
                .is_err()
        );
        assert!(
            KeysCli::try_parse_from(["imxp keys", "generate", "--pgp", "alice@a.test"]).is_ok()
        );
        assert!(
            KeysCli::try_parse_from(["imxp keys", "generate", "--smime", "a@b.test", "--ca", "x"])
                .is_err()
        );
    }
}
