//! Certificates and rustls configurations.
//!
//! Every configuration uses rustls' *ring* provider ([`provider`]) and only
//! TLS 1.3 and 1.2 with rustls' default (modern, AEAD) cipher suites; the
//! obsolete RFC 3340 §11 suite is not offered (see imxp(7)).
//!
//! * [`load_chain`], [`load_key`], [`load_roots`]: PEM files, errors name the
//!   file.
//! * [`generate_dev_certificate`]: a self-signed certificate for development.
//! * [`server_config`] with [`ClientAuth`], [`client_config`]: the rustls
//!   configurations for the BEEP driver's `TlsSetup`; [`server_name`] turns a
//!   domain (or address literal) into the name a server must prove.
//! * [`certificate_names_domain`]: does a peer's certificate name a domain
//!   (mesh `bind` check, 537 otherwise).

use crate::config::Config;
use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// File name of the development certificate (see [`generate_dev_certificate`]).
pub const DEV_CERT_FILE: &str = "dev-cert.pem";
/// File name of the development certificate's key.
pub const DEV_KEY_FILE: &str = "dev-key.pem";

/// Why loading TLS material or building a configuration failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A PEM file is malformed, or holds something unusable.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A PEM file holds no certificate.
    #[error("{}: no certificate (BEGIN CERTIFICATE) found", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A PEM file holds no private key.
    #[error("{}: no private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) found", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// Generating a certificate failed.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration (e.g. the key does not match the
    /// certificate).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (e.g. no trust
    /// anchors).
    #[error("client certificate verification: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A domain is not usable as a TLS server name.
    #[error("{0:?} is not a DNS name or address literal usable as a TLS server name")]
    InvalidServerName(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn pem_error(path: &Path, error: rustls::pki_types::pem::Error) -> TlsError {
    match error {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Io {
            path: path.to_owned(),
            source,
        },
        other => TlsError::Pem {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// The crypto provider of every configuration here: rustls' *ring*.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocol versions offered: TLS 1.3 and TLS 1.2.
pub const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Reads a certificate chain (end entity first, then intermediates) from a
/// PEM file.
pub fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// Reads a private key (PKCS #8, PKCS #1 or SEC1) from a PEM file; the first
/// key in the file is used.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    match PrivateKeyDer::from_pem_file(path) {
        Ok(key) => Ok(key),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => Err(TlsError::NoKey {
            path: path.to_owned(),
        }),
        Err(e) => Err(pem_error(path, e)),
    }
}

/// Trust anchors: every certificate in the PEM file `ca`, or, without one,
/// the system's roots (`rustls-native-certs`). When the system has none
/// (e.g. no `ca-certificates` package), the Mozilla roots compiled in from
/// `webpki-roots` are used instead, with a warning; this never fails.
pub fn load_roots(ca: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for certificate in load_chain(path)? {
                roots.add(certificate).map_err(|e| TlsError::Pem {
                    path: path.to_owned(),
                    reason: format!("unusable trust anchor: {e}"),
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::debug!(%error, "system trust anchors");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            if ignored > 0 {
                tracing::debug!(ignored, "unparsable system trust anchors skipped");
            }
            if added == 0 {
                tracing::warn!("no system trust anchors found; using the built-in Mozilla roots");
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
    }
    Ok(roots)
}

/// A self-signed certificate for development, valid for `names` (DNS names
/// or IP addresses; the first also becomes the common name) for both server
/// and client authentication: `dir/dev-cert.pem` and `dir/dev-key.pem`
/// (mode 0600), returned as `(certificate, key)`.
///
/// Existing files are reused when they load and the certificate names every
/// one of `names`; otherwise both are replaced. Peers trust the certificate
/// by using `dev-cert.pem` itself as their CA file.
pub fn generate_dev_certificate(
    dir: &Path,
    names: &[String],
) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join(DEV_CERT_FILE);
    let key_path = dir.join(DEV_KEY_FILE);
    if let (Ok(chain), Ok(_)) = (load_chain(&cert_path), load_key(&key_path))
        && names
            .iter()
            .all(|name| certificate_names_domain(&chain[0], name))
    {
        return Ok((cert_path, key_path));
    }
    let names: Vec<String> = names
        .iter()
        .map(|n| {
            n.strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .map(|n| n.strip_prefix("IPv6:").unwrap_or(n))
                .unwrap_or(n)
                .to_owned()
        })
        .collect();
    let mut params = rcgen::CertificateParams::new(names.clone())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names
            .first()
            .cloned()
            .unwrap_or_else(|| "imxpd development certificate".into()),
    );
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    crate::auth::write_private_atomic(&key_path, key.serialize_pem().as_bytes())
        .map_err(io_error(&key_path))?;
    std::fs::write(&cert_path, certificate.pem()).map_err(io_error(&cert_path))?;
    Ok((cert_path, key_path))
}

/// Whether and how a server asks for client certificates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// No client certificates are requested (edge listener).
    None,
    /// A client certificate is requested and, if sent, must chain to these
    /// roots; clients without one are let in.
    Optional(RootCertStore),
    /// A client certificate chaining to these roots is required (mesh).
    Required(RootCertStore),
}

/// A server configuration presenting `chain` (signed by `key`), TLS 1.3 and
/// 1.2, verifying client certificates as `client_auth` says.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let verifier = match client_auth {
        ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::Optional(roots) => {
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .allow_unauthenticated()
                .build()?
        }
        ClientAuth::Required(roots) => {
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()?
        }
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// A client configuration trusting `roots`, TLS 1.3 and 1.2, presenting
/// `client_cert` (chain and key) when given.
pub fn client_config(
    roots: RootCertStore,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_root_certificates(roots);
    let config = match client_cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The TLS server name for a domain as APEX writes it: a DNS name (one
/// trailing dot allowed) or an address literal `[192.0.2.1]` /
/// `[IPv6:2001:db8::1]` (RFC 2821 §4.1.3).
pub fn server_name(domain: &str) -> Result<ServerName<'static>, TlsError> {
    let invalid = || TlsError::InvalidServerName(domain.to_owned());
    if let Some(literal) = domain.strip_prefix('[') {
        let inner = literal.strip_suffix(']').ok_or_else(invalid)?;
        let inner = inner
            .strip_prefix("IPv6:")
            .or_else(|| inner.strip_prefix("ipv6:"))
            .unwrap_or(inner);
        let address: IpAddr = inner.parse().map_err(|_| invalid())?;
        return Ok(ServerName::IpAddress(address.into()));
    }
    let name = domain.strip_suffix('.').unwrap_or(domain);
    if name.is_empty() || name.parse::<IpAddr>().is_ok() {
        // A bare IP address is not an APEX domain: literals are bracketed.
        return Err(invalid());
    }
    ServerName::try_from(name.to_owned()).map_err(|_| invalid())
}

/// Whether the end-entity certificate `cert` names `domain` in its
/// subjectAltName: a DNS name (case-insensitive; a wildcard `*.example.com`
/// names `a.example.com`, as for any TLS server) or, for an address literal
/// `[…]`, an IP address. The subject common name is not consulted.
///
/// The mesh listener uses this on the peer's verified client certificate:
/// a peer may `bind` only domains its certificate names (537 otherwise).
/// The certificate's validity and chain are the rustls verifier's concern.
pub fn certificate_names_domain(cert: &CertificateDer<'_>, domain: &str) -> bool {
    let Ok(name) = server_name(domain) else {
        return false;
    };
    let Ok(cert) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

/// The endpoint address a verified client certificate vouches for (SASL
/// EXTERNAL on edge sessions): the first subjectAltName rfc822Name that is
/// a valid user name, in canonical form (see
/// [`canonical_user_name`](crate::auth::canonical_user_name)). The subject
/// (common name, emailAddress) is not consulted; a certificate without such
/// a name gives no identity.
pub fn certificate_identity(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let names = parsed.subject_alternative_name().ok()??;
    names
        .value
        .general_names
        .iter()
        .find_map(|name| match name {
            x509_parser::extensions::GeneralName::RFC822Name(address) => {
                crate::auth::canonical_user_name(address).ok()
            }
            _ => None,
        })
}

/// TLS configurations derived from `[tls]` and `[auth] client_ca`.
pub(crate) struct TlsMaterial {
    /// For edge sessions: client certificates asked (optional) and
    /// verified against `[auth] client_ca` when it is set, else not asked.
    pub(crate) edge: Option<Arc<ServerConfig>>,
    /// For mesh sessions: client certificates verified against `[tls] ca`.
    pub(crate) mesh: Option<Arc<ServerConfig>>,
    /// For outbound mesh sessions: `[tls] ca` roots, our certificate.
    pub(crate) client: Arc<ClientConfig>,
}

impl TlsMaterial {
    /// Loads every file `config` names.
    pub(crate) fn load(config: &Config) -> Result<Self, TlsError> {
        let roots = load_roots(config.tls.ca.as_deref())?;
        let edge_client_auth = match &config.client_ca {
            Some(path) => ClientAuth::Optional(load_roots(Some(path))?),
            None => ClientAuth::None,
        };
        let ours = match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => Some((load_chain(cert)?, load_key(key)?)),
            _ => None,
        };
        let (edge, mesh) = match &ours {
            Some((chain, key)) => (
                Some(server_config(
                    chain.clone(),
                    key.clone_key(),
                    edge_client_auth,
                )?),
                Some(server_config(
                    chain.clone(),
                    key.clone_key(),
                    ClientAuth::Optional(roots.clone()),
                )?),
            ),
            None => (None, None),
        };
        let client = client_config(roots, ours)?;
        Ok(Self { edge, mesh, client })
    }
}

/// The TLS material in force; [`TlsStore::reload`] swaps it atomically.
/// A session takes the current material once, when it starts, and keeps
/// it: a reload affects only later sessions.
pub(crate) struct TlsStore(RwLock<Arc<TlsMaterial>>);

impl TlsStore {
    /// The store, with `material` in force.
    pub(crate) fn new(material: TlsMaterial) -> Self {
        Self(RwLock::new(Arc::new(material)))
    }

    /// The material in force.
    pub(crate) fn current(&self) -> Arc<TlsMaterial> {
        Arc::clone(&self.0.read())
    }

    /// Re-reads every file; on error nothing changes.
    pub(crate) fn reload(&self, config: &Config) -> Result<(), TlsError> {
        let fresh = Arc::new(TlsMaterial::load(config)?);
        *self.0.write() = fresh;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};

    type Material = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

    /// A test CA: its issuer and its certificate as a root store.
    struct Ca {
        issuer: CertifiedIssuer<'static, KeyPair>,
    }

    impl Ca {
        fn new(name: &str) -> Self {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::CrlSign,
                rcgen::KeyUsagePurpose::DigitalSignature,
            ];
            let issuer =
                CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            Self { issuer }
        }

        fn roots(&self) -> RootCertStore {
            let mut roots = RootCertStore::empty();
            roots.add(self.issuer.der().clone()).unwrap();
            roots
        }

        fn issue(&self, names: &[&str]) -> Material {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            let params = CertificateParams::new(names).unwrap();
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            (
                vec![cert.der().clone()],
                PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
        }
    }

    struct Outcome {
        /// Server side: the client's certificates on success.
        server: Result<Option<Vec<CertificateDer<'static>>>, String>,
        /// Client side: the negotiated version on success.
        client: Result<rustls::ProtocolVersion, String>,
    }

    /// One TLS session over loopback TCP: the client sends "ping", the
    /// server answers "pong".
    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Outcome {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server_task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let mut tls = tokio_rustls::TlsAcceptor::from(server)
                .accept(tcp)
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            assert_eq!(&buf, b"ping");
            tls.write_all(b"pong").await.map_err(|e| e.to_string())?;
            tls.shutdown().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| c.iter().map(|c| c.clone().into_owned()).collect()),
            )
        });
        let client_result = async {
            let tcp = TcpStream::connect(address)
                .await
                .map_err(|e| e.to_string())?;
            let mut tls = tokio_rustls::TlsConnector::from(client)
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            assert_eq!(&buf, b"pong");
            Ok::<_, String>(tls.get_ref().1.protocol_version().unwrap())
        };
        let client = tokio::time::timeout(Duration::from_secs(20), client_result)
            .await
            .expect("client timed out");
        let server = tokio::time::timeout(Duration::from_secs(20), server_task)
            .await
            .expect("server timed out")
            .unwrap();
        Outcome { server, client }
    }

    #[tokio::test]
    async fn dev_certificate_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned(), "[127.0.0.1]".to_owned()];
        let (cert_path, key_path) = generate_dev_certificate(dir.path(), &names).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Reused on the second call, replaced when a name is missing.
        let pem = std::fs::read(&cert_path).unwrap();
        generate_dev_certificate(dir.path(), &names[..1]).unwrap();
        assert_eq!(std::fs::read(&cert_path).unwrap(), pem);
        generate_dev_certificate(dir.path(), &["relay.test".to_owned()]).unwrap();
        assert_ne!(std::fs::read(&cert_path).unwrap(), pem);
        let (cert_path, key_path) = generate_dev_certificate(dir.path(), &names).unwrap();

        let chain = load_chain(&cert_path).unwrap();
        assert!(certificate_names_domain(&chain[0], "localhost"));
        assert!(certificate_names_domain(&chain[0], "[127.0.0.1]"));
        assert!(!certificate_names_domain(&chain[0], "relay.test"));
        let server = server_config(chain, load_key(&key_path).unwrap(), ClientAuth::None).unwrap();
        let roots = load_roots(Some(&cert_path)).unwrap();
        let client = client_config(roots.clone(), None).unwrap();

        let outcome = handshake(
            server.clone(),
            client.clone(),
            server_name("localhost").unwrap(),
        )
        .await;
        assert_eq!(outcome.client, Ok(rustls::ProtocolVersion::TLSv1_3));
        assert_eq!(outcome.server, Ok(None));
        let outcome = handshake(
            server.clone(),
            client.clone(),
            server_name("[127.0.0.1]").unwrap(),
        )
        .await;
        assert!(outcome.client.is_ok(), "{:?}", outcome.client);

        // TLS 1.2 is accepted too.
        let tls12 = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let outcome = handshake(
            server.clone(),
            Arc::new(tls12),
            server_name("localhost").unwrap(),
        )
        .await;
        assert_eq!(outcome.client, Ok(rustls::ProtocolVersion::TLSv1_2));

        // A name the certificate does not carry is refused by the client.
        let outcome = handshake(server, client, server_name("relay.test").unwrap()).await;
        assert!(outcome.client.is_err());
        assert!(outcome.server.is_err());
    }

    #[tokio::test]
    async fn mutual_tls() {
        let ca = Ca::new("imxp test CA");
        let other_ca = Ca::new("someone else's CA");
        let (server_chain, server_key) = ca.issue(&["relay.example.com"]);
        let server = server_config(
            server_chain.clone(),
            server_key.clone_key(),
            ClientAuth::Required(ca.roots()),
        )
        .unwrap();
        let name = server_name("relay.example.com").unwrap();

        // A client certificate from the CA is accepted and visible.
        let (peer_chain, peer_key) = ca.issue(&["peer.example.net"]);
        let client = client_config(ca.roots(), Some((peer_chain.clone(), peer_key))).unwrap();
        let outcome = handshake(server.clone(), client, name.clone()).await;
        assert!(outcome.client.is_ok(), "{:?}", outcome.client);
        let seen = outcome.server.unwrap().expect("client certificate");
        assert_eq!(seen, peer_chain);
        assert!(certificate_names_domain(&seen[0], "peer.example.net"));
        assert!(!certificate_names_domain(&seen[0], "relay.example.com"));

        // A certificate from another CA is refused.
        let (foreign_chain, foreign_key) = other_ca.issue(&["peer.example.net"]);
        let foreign = client_config(ca.roots(), Some((foreign_chain, foreign_key))).unwrap();
        let outcome = handshake(server.clone(), foreign.clone(), name.clone()).await;
        assert!(outcome.server.is_err());
        assert!(outcome.client.is_err());

        // No certificate: refused when required, let in when optional.
        let anonymous = client_config(ca.roots(), None).unwrap();
        let outcome = handshake(server, anonymous.clone(), name.clone()).await;
        assert!(outcome.server.is_err());
        let optional = server_config(
            server_chain.clone(),
            server_key.clone_key(),
            ClientAuth::Optional(ca.roots()),
        )
        .unwrap();
        let outcome = handshake(optional.clone(), anonymous, name.clone()).await;
        assert_eq!(outcome.server, Ok(None));
        // ... but a bad certificate is still refused.
        let outcome = handshake(optional, foreign, name).await;
        assert!(outcome.server.is_err());

        // Required client auth without trust anchors is a configuration error.
        assert!(matches!(
            server_config(
                server_chain,
                server_key,
                ClientAuth::Required(RootCertStore::empty())
            ),
            Err(TlsError::Verifier(_))
        ));
    }

    #[test]
    fn names_in_certificates() {
        let ca = Ca::new("names CA");
        let (chain, _) = ca.issue(&[
            "relay.example.com",
            "*.wild.example",
            "192.0.2.1",
            "2001:db8::1",
        ]);
        let cert = &chain[0];
        for yes in [
            "relay.example.com",
            "RELAY.Example.COM",
            "relay.example.com.",
            "a.wild.example",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
        ] {
            assert!(certificate_names_domain(cert, yes), "{yes}");
        }
        for no in [
            "example.com",
            "other.example.com",
            "relay.example.com.evil",
            "wild.example",
            "a.b.wild.example",
            "[192.0.2.2]",
            "192.0.2.1",
            "[2001:db8::1]x",
            "",
            "bad name",
        ] {
            assert!(!certificate_names_domain(cert, no), "{no}");
        }
        assert!(!certificate_names_domain(
            &CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]),
            "relay.example.com"
        ));
    }

    #[test]
    fn loading_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = load_chain(&missing).unwrap_err();
        assert!(matches!(error, TlsError::Io { .. }));
        assert!(error.to_string().contains("missing.pem"), "{error}");
        assert!(
            load_key(&missing)
                .unwrap_err()
                .to_string()
                .contains("missing.pem")
        );

        let (cert_path, key_path) =
            generate_dev_certificate(dir.path(), &["localhost".to_owned()]).unwrap();
        let error = load_key(&cert_path).unwrap_err();
        assert!(matches!(error, TlsError::NoKey { .. }), "{error}");
        assert!(error.to_string().contains(DEV_CERT_FILE));
        let error = load_chain(&key_path).unwrap_err();
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
        assert!(error.to_string().contains(DEV_KEY_FILE));

        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let error = load_chain(&broken).unwrap_err();
        assert!(matches!(error, TlsError::Pem { .. }), "{error}");
        assert!(error.to_string().contains("broken.pem"));
        assert!(load_roots(Some(&broken)).is_err());

        // A key that does not match the certificate.
        let other = KeyPair::generate().unwrap();
        let mismatched = server_config(
            load_chain(&cert_path).unwrap(),
            PrivateKeyDer::try_from(other.serialize_der()).unwrap(),
            ClientAuth::None,
        );
        assert!(matches!(mismatched, Err(TlsError::Config(_))));
    }

    #[test]
    fn system_roots_never_empty() {
        let roots = load_roots(None).unwrap();
        assert!(!roots.is_empty());
    }

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("example.com").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("[10.0.0.1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[IPv6:::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        for bad in ["", ".", "10.0.0.1", "[10.0.0.1", "[example.com]", "a b"] {
            assert!(server_name(bad).is_err(), "{bad}");
        }
    }
}
