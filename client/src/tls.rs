//! rustls client configurations for TLS tuning with the relay (RFC 3080
//! §3.1), always on the *ring* crypto provider: the workspace builds
//! rustls without aws-lc-rs, and two installed providers would make rustls
//! refuse to choose.
//!
//! A client certificate ([`ClientCertificate`], `imxp --cert/--key`) is
//! presented to relays that ask for one; with SASL EXTERNAL it is the
//! login (the relay takes the address from its subjectAltName).

use crate::error::TlsConfigError;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// The crypto provider every configuration here uses (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client certificate chain and its private key.
pub struct ClientCertificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// Loads a PEM certificate chain (end entity first) and a PEM private
    /// key (PKCS #8, PKCS #1 or SEC1).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsConfigError> {
        let error = |path: &Path, reason: String| TlsConfigError::ClientCertificate {
            path: path.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| error(cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(error(
                cert,
                "no certificate (BEGIN CERTIFICATE) found".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| error(key, e.to_string()))?;
        Ok(Self { chain, key })
    }
}

/// A client configuration trusting exactly `roots` (TLS 1.2 and 1.3, no
/// client certificate).
pub fn client_config_with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, TlsConfigError> {
    client_config(roots, None)
}

/// A client configuration trusting exactly `roots` (TLS 1.2 and 1.3),
/// presenting `certificate` when the relay asks for one.
pub fn client_config(
    roots: RootCertStore,
    certificate: Option<ClientCertificate>,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(Arc::new(match certificate {
        Some(ClientCertificate { chain, key }) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    }))
}

/// The trust anchors of a PEM CA file (see [`client_config_from_ca_file`]).
pub fn roots_from_ca_file(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let bytes = std::fs::read(path).map_err(|error| TlsConfigError::CaFile {
        path: path.to_owned(),
        reason: error.to_string(),
    })?;
    roots_from_ca_pem(&bytes, path)
}

/// A client configuration trusting the CA certificates of a PEM file
/// (`imxp --ca FILE`): every `CERTIFICATE` block is a trust anchor; other
/// blocks (keys) are ignored.
pub fn client_config_from_ca_file(path: &Path) -> Result<Arc<ClientConfig>, TlsConfigError> {
    client_config_with_roots(roots_from_ca_file(path)?)
}

/// [`client_config_from_ca_file`] on PEM text already read; `path` names
/// it in errors.
pub fn client_config_from_ca_pem(
    pem: &[u8],
    path: &Path,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    client_config_with_roots(roots_from_ca_pem(pem, path)?)
}

fn roots_from_ca_pem(pem: &[u8], path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsConfigError::CaFile {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsConfigError::NoCertificates(path.to_owned()));
    }
    let mut roots = RootCertStore::empty();
    for (index, certificate) in certificates.into_iter().enumerate() {
        roots
            .add(certificate)
            .map_err(|source| TlsConfigError::BadCertificate {
                path: path.to_owned(),
                index: index + 1,
                source,
            })?;
    }
    Ok(roots)
}

/// A client configuration trusting the system's trust store (used when no
/// CA file is given). Unreadable entries are skipped; it fails only when
/// nothing usable is found.
pub fn client_config_with_native_roots() -> Result<Arc<ClientConfig>, TlsConfigError> {
    client_config_with_roots(native_roots()?)
}

/// The system's trust store (see [`client_config_with_native_roots`]).
pub fn native_roots() -> Result<RootCertStore, TlsConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let detail = found
            .errors
            .first()
            .map(|error| format!(": {error}"))
            .unwrap_or_default();
        return Err(TlsConfigError::NoNativeRoots(detail));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed_pem() -> String {
        rcgen::generate_simple_self_signed(vec!["relay.example".to_owned()])
            .unwrap()
            .cert
            .pem()
    }

    #[test]
    fn a_pem_with_certificates_and_a_key_gives_a_config() {
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let pem = format!("{}{key}{}", self_signed_pem(), self_signed_pem());
        client_config_from_ca_pem(pem.as_bytes(), Path::new("ca.pem")).unwrap();
    }

    #[test]
    fn a_pem_without_certificates_is_refused() {
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let error = client_config_from_ca_pem(key.as_bytes(), Path::new("key.pem")).unwrap_err();
        assert!(
            matches!(error, TlsConfigError::NoCertificates(ref path) if path == Path::new("key.pem")),
            "{error}"
        );
        let error = client_config_from_ca_pem(b"", Path::new("empty.pem")).unwrap_err();
        assert!(
            matches!(error, TlsConfigError::NoCertificates(_)),
            "{error}"
        );
    }

    #[test]
    fn a_certificate_that_is_not_der_is_refused() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let error = client_config_from_ca_pem(pem.as_bytes(), Path::new("bad.pem")).unwrap_err();
        assert!(
            matches!(error, TlsConfigError::BadCertificate { index: 1, .. }),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let error = client_config_from_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
