//! The BEEP session with the relay's edge port (RFC 3340 §2.1, §3.1): TCP,
//! TLS tuning, SASL (SCRAM-SHA-256 by default, PLAIN or EXTERNAL), then
//! APEX channels.

use crate::attachment::{AttachOptions, Attachment};
use crate::error::ClientError;
use crate::payload;
use imxp_apex::{Endpoint, PROFILE_URI};
use imxp_beep::io::{Connection, DriverConfig, DriverError, TlsSetup};
use imxp_beep::mgmt::Greeting;
use imxp_beep::tuning::sasl::{PlainClient, SaslClient, profile_uri};
use imxp_beep::tuning::tls::TLS_URI;
use imxp_beep::{Config, Profile, Role};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How often an otherwise silent session sends a SEQ keepalive.
pub const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(60);

/// The apex-edge port (endpoint → relay), used when the relay address
/// names no port.
pub const DEFAULT_EDGE_PORT: u16 = 913;

/// How to reach and log in to the relay.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `host:port`, `host` (port [`DEFAULT_EDGE_PORT`]) or `[v6]:port`.
    pub relay: String,
    /// TLS client configuration and the name the relay's certificate must
    /// carry (see [`relay_host`]); `None` for plaintext, which exposes the
    /// password: development and loopback tests only.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// The SASL user: the full endpoint address, e.g. `fred@example.com`.
    /// With [`Mechanism::External`] it is the authorization identity and
    /// may be empty (the certificate's address is used).
    pub user: String,
    /// The password (unused with [`Mechanism::External`]).
    pub password: String,
    /// The SASL mechanism.
    pub mechanism: Mechanism,
}

/// How the client logs in (RFC 3080 §4, RFC 4422).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mechanism {
    /// SCRAM-SHA-256 (RFC 7677): the password never crosses the wire and
    /// the relay proves it holds the verifier. The default.
    #[default]
    ScramSha256,
    /// PLAIN (RFC 4616): the password is sent, protected only by TLS (the
    /// relay refuses it with 538 without TLS).
    Plain,
    /// EXTERNAL (RFC 4422 Appendix A): the TLS client certificate is the
    /// login; the TLS configuration must carry one
    /// ([`crate::tls::ClientCertificate`]).
    External,
}

impl Mechanism {
    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::Plain => "PLAIN",
            Self::External => "EXTERNAL",
        }
    }
}

impl std::str::FromStr for Mechanism {
    type Err = String;

    /// `SCRAM-SHA-256`, `PLAIN` or `EXTERNAL` (any case).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Self::ScramSha256, Self::Plain, Self::External]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("{text:?} is not SCRAM-SHA-256, PLAIN or EXTERNAL"))
    }
}

/// EXTERNAL client: the authorization identity, possibly empty.
#[derive(Debug)]
struct ExternalClient {
    authzid: String,
}

impl SaslClient for ExternalClient {
    fn mechanism(&self) -> &str {
        "EXTERNAL"
    }
    fn identity(&self) -> String {
        self.authzid.clone()
    }
    fn initial_response(&mut self) -> Option<Vec<u8>> {
        Some(self.authzid.clone().into_bytes())
    }
    fn step(&mut self, _challenge: &[u8]) -> Result<Vec<u8>, String> {
        Ok(self.authzid.clone().into_bytes())
    }
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("relay", &self.relay)
            .field("tls", &self.tls.as_ref().map(|(_, name)| name))
            .field("user", &self.user)
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

/// Splits a relay address into host and port: `host:port`, `host`,
/// `[v6]:port`, `[v6]`, or a bare IPv6 address; the port defaults to
/// [`DEFAULT_EDGE_PORT`]. Brackets are removed from the host.
pub fn split_relay(relay: &str) -> Result<(&str, u16), ClientError> {
    let bad = || ClientError::RelayAddress(relay.to_owned());
    let port = |text: &str| text.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad);
    let (host, port) = if let Some(rest) = relay.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, DEFAULT_EDGE_PORT),
            _ => (host, port(after.strip_prefix(':').ok_or_else(bad)?)?),
        }
    } else {
        match relay.matches(':').count() {
            0 => (relay, DEFAULT_EDGE_PORT),
            1 => {
                let (host, text) = relay.split_once(':').ok_or_else(bad)?;
                (host, port(text)?)
            }
            // A bare IPv6 address.
            _ => (relay, DEFAULT_EDGE_PORT),
        }
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    Ok((host, port))
}

/// The host part of a relay address: the default TLS server name.
pub fn relay_host(relay: &str) -> Result<&str, ClientError> {
    split_relay(relay).map(|(host, _)| host)
}

/// A BEEP session with a relay, TLS-protected (unless plaintext was asked
/// for) and authenticated.
#[derive(Debug)]
pub struct Client {
    connection: Connection,
    driver: JoinHandle<Result<(), DriverError>>,
    identity: String,
}

impl Client {
    /// Connects to `options.relay`, tunes TLS, authenticates with
    /// `options.mechanism` and checks that the relay offers APEX.
    pub async fn connect(options: ConnectOptions) -> Result<Self, ClientError> {
        let (host, port) = split_relay(&options.relay)?;
        let stream =
            TcpStream::connect((host, port))
                .await
                .map_err(|source| ClientError::Connect {
                    relay: options.relay.clone(),
                    source,
                })?;
        // Datagrams are small and interactive.
        let _ = stream.set_nodelay(true);
        let mut driver = DriverConfig::new(Config::new(Role::Initiator));
        // A listening endpoint may send nothing for hours: a SEQ every
        // minute keeps the relay's idle timeout (imxpd: 10 min) from
        // releasing the session.
        driver.keepalive = Some(KEEPALIVE);
        if let Some((config, name)) = &options.tls {
            let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|_| ClientError::ServerName(name.clone()))?;
            driver.tls = TlsSetup::Client {
                config: config.clone(),
                server_name,
            };
        }
        let (connection, _incoming, task) = Connection::spawn(stream, driver);
        // The relay never starts channels on an edge session; `_incoming`
        // is dropped and any such start goes unanswered by design.
        let mut client = Self {
            connection,
            driver: task,
            identity: String::new(),
        };
        client.identity = client.handshake(&options).await?;
        Ok(client)
    }

    async fn handshake(&self, options: &ConnectOptions) -> Result<String, ClientError> {
        let mut greeting = self.connection.greeting(1).await?;
        if options.tls.is_some() {
            require(&greeting, TLS_URI, "TLS (http://iana.org/beep/TLS)")?;
            greeting = self.connection.start_tls().await?;
        }
        let mechanism = options.mechanism.name();
        if !greeting
            .profiles
            .iter()
            .any(|p| *p == profile_uri(mechanism))
        {
            return Err(ClientError::NotOffered(match options.mechanism {
                Mechanism::ScramSha256 => {
                    "SASL SCRAM-SHA-256 (http://iana.org/beep/SASL/SCRAM-SHA-256)"
                }
                Mechanism::Plain => "SASL PLAIN (http://iana.org/beep/SASL/PLAIN)",
                Mechanism::External => {
                    "SASL EXTERNAL (http://iana.org/beep/SASL/EXTERNAL): \
                     no client certificate, or not one the relay accepts"
                }
            }));
        }
        let client: Box<dyn SaslClient> = match options.mechanism {
            Mechanism::ScramSha256 => Box::new(crate::scram::ScramClient::new(
                options.user.clone(),
                options.password.clone(),
            )),
            Mechanism::Plain => Box::new(PlainClient {
                authzid: String::new(),
                authcid: options.user.clone(),
                password: options.password.clone(),
            }),
            Mechanism::External => Box::new(ExternalClient {
                authzid: options.user.clone(),
            }),
        };
        let identity = self
            .connection
            .authenticate(client)
            .await
            .map_err(|error| match error {
                DriverError::Refused(reply) => ClientError::Authentication {
                    code: reply.code.0,
                    text: reply.diagnostic,
                },
                other => other.into(),
            })?;
        let greeting = self.connection.state().greeting.unwrap_or(greeting);
        require(&greeting, PROFILE_URI, "APEX (http://iana.org/beep/APEX)")?;
        Ok(identity)
    }

    /// The identity the relay authenticated.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// True when TLS protects the session.
    pub fn tls_active(&self) -> bool {
        self.connection.state().tls_active
    }

    /// The BEEP connection, for what this library does not wrap.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Attaches as `endpoint` on a new APEX channel (the `attach` rides
    /// on the channel's start, RFC 3340 §4.2), with explicit
    /// acknowledgement. [`ClientError::Refused`] carries the relay's code:
    /// 555, 553 (not a domain it serves), 537 (not this user's), 554
    /// (another application is attached).
    pub async fn attach(&self, endpoint: Endpoint) -> Result<Attachment, ClientError> {
        self.attach_with(endpoint, AttachOptions::default()).await
    }

    /// [`Client::attach`] with options.
    pub async fn attach_with(
        &self,
        endpoint: Endpoint,
        options: AttachOptions,
    ) -> Result<Attachment, ClientError> {
        let trans_id = Attachment::first_trans_id();
        let attach =
            crate::attachment::attach_element(endpoint.clone(), trans_id, options.take_over);
        let channel = self
            .connection
            .open_channel(vec![Profile::with_init(PROFILE_URI, attach.to_xml())], None)
            .await?;
        if let Err(error) = payload::init_outcome(channel.init()) {
            // The channel exists even when the attach is refused.
            let _ = channel.close(imxp_beep::ReplyCode::BEEP_OK).await;
            return Err(error);
        }
        Ok(Attachment::start(channel, endpoint, trans_id, options))
    }

    /// Releases the session (RFC 3080 §2.4): every channel and so every
    /// attachment on it ends.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.connection.release().await?;
        match (&mut self.driver).await {
            Ok(result) => result.map_err(Into::into),
            Err(error) => Err(ClientError::Protocol(format!(
                "BEEP driver failed: {error}"
            ))),
        }
    }
}

impl Drop for Client {
    /// Without [`Client::close`], the connection is dropped abruptly.
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn require(greeting: &Greeting, uri: &str, what: &'static str) -> Result<(), ClientError> {
    if greeting.profiles.iter().any(|p| p == uri) {
        Ok(())
    } else {
        Err(ClientError::NotOffered(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_addresses() {
        assert_eq!(
            split_relay("relay.example.com:913").unwrap(),
            ("relay.example.com", 913)
        );
        assert_eq!(
            split_relay("relay.example.com").unwrap(),
            ("relay.example.com", DEFAULT_EDGE_PORT)
        );
        assert_eq!(split_relay("127.0.0.1:4000").unwrap(), ("127.0.0.1", 4000));
        assert_eq!(split_relay("[::1]:4000").unwrap(), ("::1", 4000));
        assert_eq!(split_relay("[::1]").unwrap(), ("::1", DEFAULT_EDGE_PORT));
        assert_eq!(split_relay("::1").unwrap(), ("::1", DEFAULT_EDGE_PORT));
        assert_eq!(
            relay_host("relay.example.com:1").unwrap(),
            "relay.example.com"
        );
        for bad in [
            "",
            ":913",
            "host:",
            "host:0",
            "host:70000",
            "host:x",
            "[::1",
            "[::1]x",
            "[::1]:",
            "a b:1",
        ] {
            assert!(
                matches!(split_relay(bad), Err(ClientError::RelayAddress(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn options_do_not_show_the_password() {
        let options = ConnectOptions {
            relay: "relay.example.com".into(),
            tls: None,
            user: "fred@example.com".into(),
            password: "hunter2".into(),
            mechanism: Mechanism::default(),
        };
        let shown = format!("{options:?}");
        assert!(shown.contains("fred@example.com"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
