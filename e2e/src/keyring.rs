//! The keyring: a directory of OpenPGP certificates and S/MIME
//! certificates, the user's own secret keys, and what the user trusts.
//!
//! ```text
//! <root>/                      0700
//!   pgp/certs/<FPR>.asc        public certificates (own and imported)
//!   pgp/secret/<FPR>.asc       own keys with secret material, 0600
//!   pgp/trusted/<FPR>          marker: the user trusts this certificate
//!   smime/certs/<SHA256>.pem   certificates (own and imported)
//!   smime/secret/<SHA256>.pem  own private keys, 0600, named by their certificate
//!   smime/anchors/<SHA256>.pem trust anchors (CA or self-signed certificates)
//! ```
//!
//! The default root is `$IMXP_KEYRING`, else `$XDG_CONFIG_HOME/imxp/keyring`,
//! else `$HOME/.config/imxp/keyring`. Every directory is created 0700 and
//! every secret file 0600 (written to a temporary name, then renamed).

use std::collections::HashSet;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use sequoia_openpgp::Cert;

use crate::error::E2eError;
use crate::pgp::{self, PgpKeys};
use crate::smime::{self, SmimeKeys};
use crate::uri::ImUri;
use crate::verdict::Scheme;

/// Everything the keyring holds, loaded.
#[derive(Debug, Default)]
pub struct Keys {
    /// OpenPGP.
    pub pgp: PgpKeys,
    /// S/MIME.
    pub smime: SmimeKeys,
}

/// One line of `imxp keys list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The scheme.
    pub scheme: Scheme,
    /// OpenPGP fingerprint or certificate SHA-256 fingerprint.
    pub id: String,
    /// User ID or subject common name.
    pub name: Option<String>,
    /// The `im:` identities.
    pub identities: Vec<ImUri>,
    /// Whether the secret key is in the keyring.
    pub secret: bool,
    /// Whether the user trusts it (OpenPGP: marked trusted; S/MIME: a
    /// trust anchor).
    pub trusted: bool,
}

/// A keyring directory.
#[derive(Debug, Clone)]
pub struct Keyring {
    root: PathBuf,
}

const DIRS: &[&str] = &[
    "pgp/certs",
    "pgp/secret",
    "pgp/trusted",
    "smime/certs",
    "smime/secret",
    "smime/anchors",
];

impl Keyring {
    /// The default keyring directory (see the module documentation).
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("IMXP_KEYRING").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir));
        }
        if let Some(config) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(config).join("imxp").join("keyring"));
        }
        std::env::var_os("HOME")
            .filter(|d| !d.is_empty())
            .map(|home| {
                PathBuf::from(home)
                    .join(".config")
                    .join("imxp")
                    .join("keyring")
            })
    }

    /// Opens (creating if needed) the keyring at `root`. An existing root
    /// that others can read is refused.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, E2eError> {
        let root = root.into();
        let keyring = Self { root };
        make_private_dir(&keyring.root)?;
        let mode = fs::metadata(&keyring.root)
            .map_err(E2eError::io(&keyring.root))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(E2eError::Keyring {
                path: keyring.root,
                reason: format!(
                    "the directory is accessible to others (mode {:o}); chmod 700 it",
                    mode & 0o777
                ),
            });
        }
        for dir in DIRS {
            make_private_dir(&keyring.root.join(dir))?;
        }
        Ok(keyring)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Loads every key and certificate.
    pub fn load(&self) -> Result<Keys, E2eError> {
        let mut keys = Keys::default();
        for path in self.files("pgp/certs")? {
            keys.pgp.certs.extend(read_pgp(&path)?);
        }
        for path in self.files("pgp/secret")? {
            keys.pgp.secrets.extend(read_pgp(&path)?);
        }
        for path in self.files("pgp/trusted")? {
            if let Some(name) = path.file_name().and_then(|n| n.to_str())
                && let Ok(fpr) = name.parse()
            {
                keys.pgp.trusted.insert(fpr);
            }
        }
        for path in self.files("smime/certs")? {
            keys.smime.certs.extend(read_x509(&path)?);
        }
        for path in self.files("smime/anchors")? {
            keys.smime.anchors.extend(read_x509(&path)?);
        }
        for path in self.files("smime/secret")? {
            let key = smime::read_key(&read(&path)?).map_err(|e| keyring_error(&path, e))?;
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let cert = keys
                .smime
                .certs
                .iter()
                .find(|cert| smime::fingerprint(cert) == stem)
                .cloned()
                .ok_or_else(|| E2eError::Keyring {
                    path: path.clone(),
                    reason: format!("no certificate smime/certs/{stem}.pem for this private key"),
                })?;
            keys.smime.keys.push((cert, key));
        }
        Ok(keys)
    }

    fn files(&self, dir: &str) -> Result<Vec<PathBuf>, E2eError> {
        let dir = self.root.join(dir);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(E2eError::io(&dir))? {
            let entry = entry.map_err(E2eError::io(&dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            out.push(entry.path());
        }
        out.sort();
        Ok(out)
    }

    /// Stores an OpenPGP certificate; with secret material, the secret key
    /// too (0600). `trusted` marks it trusted.
    pub fn add_pgp(&self, cert: &Cert, trusted: bool) -> Result<KeyEntry, E2eError> {
        let fpr = cert.fingerprint().to_hex();
        let public = cert.clone().strip_secret_key_material();
        write_file(
            &self.root.join("pgp/certs").join(format!("{fpr}.asc")),
            &pgp::armored_cert(&public)?,
            false,
        )?;
        if cert.is_tsk() {
            write_file(
                &self.root.join("pgp/secret").join(format!("{fpr}.asc")),
                &pgp::armored_secret(cert)?,
                true,
            )?;
        }
        if trusted {
            self.trust_pgp(&fpr)?;
        }
        Ok(KeyEntry {
            scheme: Scheme::OpenPgp,
            id: fpr,
            name: pgp::primary_user_id(cert),
            identities: pgp::identities(cert),
            secret: cert.is_tsk(),
            trusted,
        })
    }

    fn trust_pgp(&self, fpr: &str) -> Result<(), E2eError> {
        write_file(&self.root.join("pgp/trusted").join(fpr), b"", false)
    }

    /// Stores an S/MIME certificate; with `key`, the private key too
    /// (0600). `anchor` also makes the certificate a trust anchor.
    pub fn add_smime(
        &self,
        cert: &X509,
        key: Option<&PKey<Private>>,
        anchor: bool,
    ) -> Result<KeyEntry, E2eError> {
        let fpr = smime::fingerprint(cert);
        let pem = cert.to_pem().map_err(|e| E2eError::Smime(e.to_string()))?;
        write_file(
            &self.root.join("smime/certs").join(format!("{fpr}.pem")),
            &pem,
            false,
        )?;
        if let Some(key) = key {
            let key_pem = key
                .private_key_to_pem_pkcs8()
                .map_err(|e| E2eError::Smime(e.to_string()))?;
            write_file(
                &self.root.join("smime/secret").join(format!("{fpr}.pem")),
                &key_pem,
                true,
            )?;
        }
        if anchor {
            write_file(
                &self.root.join("smime/anchors").join(format!("{fpr}.pem")),
                &pem,
                false,
            )?;
        }
        Ok(KeyEntry {
            scheme: Scheme::Smime,
            id: fpr,
            name: smime::common_name(cert),
            identities: smime::identities(cert),
            secret: key.is_some(),
            trusted: anchor,
        })
    }

    /// Generates an OpenPGP key for `identity`, stores it and trusts it.
    pub fn generate_pgp(&self, identity: &ImUri) -> Result<KeyEntry, E2eError> {
        let cert = pgp::generate(identity)?;
        self.add_pgp(&cert, true)
    }

    /// Generates an S/MIME certificate for `identity`, signed by `issuer`
    /// (whose certificate becomes a trust anchor) or self-signed (and then
    /// its own trust anchor), and stores it with its key.
    pub fn generate_smime(
        &self,
        identity: &ImUri,
        issuer: Option<(&X509, &PKey<Private>)>,
    ) -> Result<KeyEntry, E2eError> {
        let (cert, key) = smime::generate_cert(identity, issuer)?;
        match issuer {
            Some((ca, _)) => {
                let fpr = smime::fingerprint(ca);
                let pem = ca.to_pem().map_err(|e| E2eError::Smime(e.to_string()))?;
                write_file(
                    &self.root.join("smime/anchors").join(format!("{fpr}.pem")),
                    &pem,
                    false,
                )?;
                self.add_smime(&cert, Some(&key), false)
            }
            None => self.add_smime(&cert, Some(&key), true),
        }
    }

    /// Imports keys from `bytes`: OpenPGP certificates or secret keys
    /// (armored or binary), or PEM certificates with an optional PEM private
    /// key for the first certificate. Nothing imported is trusted.
    pub fn import(&self, bytes: &[u8]) -> Result<Vec<KeyEntry>, E2eError> {
        if bytes.windows(11).any(|w| w == b"-----BEGIN ") && !is_pgp_armor(bytes) {
            let certs = smime::read_certs(bytes)?;
            if certs.is_empty() {
                return Err(E2eError::Smime("no PEM certificate found".into()));
            }
            let key = if bytes.windows(11).any(|w| w == b"PRIVATE KEY") {
                Some(smime::read_key(bytes)?)
            } else {
                None
            };
            if let Some(key) = &key {
                let public = certs[0]
                    .public_key()
                    .map_err(|e| E2eError::Smime(e.to_string()))?;
                if !public.public_eq(key) {
                    return Err(E2eError::Smime(
                        "the private key does not belong to the first certificate".into(),
                    ));
                }
            }
            return certs
                .iter()
                .enumerate()
                .map(|(i, cert)| {
                    self.add_smime(cert, if i == 0 { key.as_ref() } else { None }, false)
                })
                .collect();
        }
        let certs = pgp::read_certs(bytes)?;
        if certs.is_empty() {
            return Err(E2eError::Pgp("no OpenPGP certificate found".into()));
        }
        certs.iter().map(|cert| self.add_pgp(cert, false)).collect()
    }

    /// Exports the key or certificate named by `selector` (a fingerprint,
    /// an `im:` URI or an address): public parts, or with `secret` the
    /// secret key too.
    pub fn export(
        &self,
        selector: &str,
        scheme: Option<Scheme>,
        secret: bool,
    ) -> Result<Vec<u8>, E2eError> {
        let keys = self.load()?;
        let wanted = selector_uri(selector);
        if scheme != Some(Scheme::Smime) {
            let pool = if secret {
                &keys.pgp.secrets
            } else {
                &keys.pgp.certs
            };
            if let Some(cert) = pool.iter().find(|cert| {
                cert.fingerprint().to_hex().eq_ignore_ascii_case(selector)
                    || wanted
                        .as_ref()
                        .is_some_and(|w| pgp::identities(cert).contains(w))
            }) {
                return if secret {
                    pgp::armored_secret(cert)
                } else {
                    pgp::armored_cert(cert)
                };
            }
        }
        if scheme != Some(Scheme::OpenPgp) {
            let matches = |cert: &X509| {
                smime::fingerprint(cert).eq_ignore_ascii_case(selector)
                    || wanted
                        .as_ref()
                        .is_some_and(|w| smime::identities(cert).contains(w))
            };
            if secret {
                if let Some((cert, key)) = keys.smime.keys.iter().find(|(cert, _)| matches(cert)) {
                    let mut out = cert.to_pem().map_err(|e| E2eError::Smime(e.to_string()))?;
                    out.extend(
                        key.private_key_to_pem_pkcs8()
                            .map_err(|e| E2eError::Smime(e.to_string()))?,
                    );
                    return Ok(out);
                }
            } else if let Some(cert) = keys.smime.certs.iter().find(|cert| matches(cert)) {
                return cert.to_pem().map_err(|e| E2eError::Smime(e.to_string()));
            }
        }
        Err(E2eError::NoKey {
            kind: if secret {
                "secret key"
            } else {
                "key or certificate"
            },
            identity: selector.to_owned(),
        })
    }

    /// Trusts the certificate named by `selector` (fingerprint, `im:` URI
    /// or address): an OpenPGP certificate is marked trusted, an S/MIME
    /// certificate (e.g. a CA) becomes a trust anchor.
    pub fn trust(&self, selector: &str) -> Result<Vec<KeyEntry>, E2eError> {
        let keys = self.load()?;
        let wanted = selector_uri(selector);
        let mut out = Vec::new();
        for cert in &keys.pgp.certs {
            if cert.fingerprint().to_hex().eq_ignore_ascii_case(selector)
                || wanted
                    .as_ref()
                    .is_some_and(|w| pgp::identities(cert).contains(w))
            {
                let mut entry = self.add_pgp(cert, true)?;
                entry.secret = keys
                    .pgp
                    .secrets
                    .iter()
                    .any(|s| s.fingerprint() == cert.fingerprint());
                out.push(entry);
            }
        }
        for cert in &keys.smime.certs {
            if smime::fingerprint(cert).eq_ignore_ascii_case(selector)
                || wanted
                    .as_ref()
                    .is_some_and(|w| smime::identities(cert).contains(w))
            {
                out.push(self.add_smime(cert, None, true)?);
            }
        }
        if out.is_empty() {
            return Err(E2eError::NoKey {
                kind: "key or certificate",
                identity: selector.to_owned(),
            });
        }
        Ok(out)
    }

    /// Every key and certificate, OpenPGP first.
    pub fn list(&self) -> Result<Vec<KeyEntry>, E2eError> {
        let keys = self.load()?;
        let mut out = Vec::new();
        for cert in &keys.pgp.certs {
            out.push(KeyEntry {
                scheme: Scheme::OpenPgp,
                id: cert.fingerprint().to_hex(),
                name: pgp::primary_user_id(cert),
                identities: pgp::identities(cert),
                secret: keys
                    .pgp
                    .secrets
                    .iter()
                    .any(|s| s.fingerprint() == cert.fingerprint()),
                trusted: keys.pgp.trusted.contains(&cert.fingerprint()),
            });
        }
        let anchors: HashSet<String> = keys.smime.anchors.iter().map(smime::fingerprint).collect();
        for cert in &keys.smime.certs {
            let fpr = smime::fingerprint(cert);
            out.push(KeyEntry {
                scheme: Scheme::Smime,
                name: smime::common_name(cert),
                identities: smime::identities(cert),
                secret: keys
                    .smime
                    .keys
                    .iter()
                    .any(|(c, _)| smime::fingerprint(c) == fpr),
                trusted: anchors.contains(&fpr),
                id: fpr,
            });
        }
        for anchor in &keys.smime.anchors {
            let fpr = smime::fingerprint(anchor);
            if !out.iter().any(|e| e.id == fpr) {
                out.push(KeyEntry {
                    scheme: Scheme::Smime,
                    name: smime::common_name(anchor),
                    identities: smime::identities(anchor),
                    secret: false,
                    trusted: true,
                    id: fpr,
                });
            }
        }
        Ok(out)
    }
}

fn selector_uri(selector: &str) -> Option<ImUri> {
    ImUri::parse(selector)
        .or_else(|_| ImUri::from_address(selector))
        .ok()
}

fn is_pgp_armor(bytes: &[u8]) -> bool {
    bytes.windows(15).any(|w| w == b"-----BEGIN PGP ")
}

fn keyring_error(path: &Path, error: E2eError) -> E2eError {
    E2eError::Keyring {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, E2eError> {
    fs::read(path).map_err(E2eError::io(path))
}

fn read_pgp(path: &Path) -> Result<Vec<Cert>, E2eError> {
    pgp::read_certs(&read(path)?).map_err(|e| keyring_error(path, e))
}

fn read_x509(path: &Path) -> Result<Vec<X509>, E2eError> {
    smime::read_certs(&read(path)?).map_err(|e| keyring_error(path, e))
}

fn make_private_dir(dir: &Path) -> Result<(), E2eError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(E2eError::io(dir))
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// (0600 for secrets, 0644 otherwise), synced, then renamed into place.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), E2eError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&temp)
        .map_err(E2eError::io(&temp))?;
    file.write_all(bytes).map_err(E2eError::io(&temp))?;
    file.sync_all().map_err(E2eError::io(&temp))?;
    fs::rename(&temp, path).map_err(E2eError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    fn uri(address: &str) -> ImUri {
        ImUri::from_address(address).unwrap()
    }

    #[test]
    fn generate_list_export_import_trust() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(dir.path().join("ring")).unwrap();
        let pgp_entry = ring.generate_pgp(&uri("alice@a.test")).unwrap();
        let smime_entry = ring.generate_smime(&uri("alice@a.test"), None).unwrap();
        let secret_file = ring.root().join(format!("pgp/secret/{}.asc", pgp_entry.id));
        assert_eq!(fs::metadata(&secret_file).unwrap().mode() & 0o777, 0o600);
        let key_file = ring
            .root()
            .join(format!("smime/secret/{}.pem", smime_entry.id));
        assert_eq!(fs::metadata(&key_file).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(ring.root()).unwrap().mode() & 0o777, 0o700);

        let list = ring.list().unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|e| e.secret && e.trusted));
        assert!(
            list.iter()
                .all(|e| e.identities == vec![uri("alice@a.test")])
        );

        // Export public parts into a second keyring: known, not trusted.
        let other = Keyring::open(dir.path().join("other")).unwrap();
        let public = ring
            .export("im:alice@a.test", Some(Scheme::OpenPgp), false)
            .unwrap();
        assert!(!String::from_utf8_lossy(&public).contains("PRIVATE"));
        let imported = other.import(&public).unwrap();
        assert_eq!(imported[0].id, pgp_entry.id);
        assert!(!imported[0].secret && !imported[0].trusted);
        let cert = ring
            .export("alice@a.test", Some(Scheme::Smime), false)
            .unwrap();
        other.import(&cert).unwrap();
        let keys = other.load().unwrap();
        assert!(keys.pgp.trusted.is_empty() && keys.smime.anchors.is_empty());
        let trusted = other.trust("im:alice@a.test").unwrap();
        assert_eq!(trusted.len(), 2);
        let keys = other.load().unwrap();
        assert_eq!(keys.pgp.trusted.len(), 1);
        assert_eq!(keys.smime.anchors.len(), 1);

        // Secret export and re-import carries the key.
        let secret = ring.export(&smime_entry.id, None, true).unwrap();
        let third = Keyring::open(dir.path().join("third")).unwrap();
        let entries = third.import(&secret).unwrap();
        assert!(entries[0].secret);
        assert_eq!(third.load().unwrap().smime.keys.len(), 1);

        assert!(ring.export("nobody@x.test", None, false).is_err());
        assert!(ring.trust("nobody@x.test").is_err());
        assert!(ring.import(b"garbage").is_err());
    }

    #[test]
    fn a_readable_keyring_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("open");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let error = Keyring::open(&root).unwrap_err().to_string();
        assert!(error.contains("chmod 700"), "{error}");
    }

    #[test]
    fn ca_signed_generation_records_the_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(dir.path().join("ring")).unwrap();
        let (ca, ca_key) = smime::generate_ca("test CA").unwrap();
        let entry = ring
            .generate_smime(&uri("bob@b.test"), Some((&ca, &ca_key)))
            .unwrap();
        assert!(!entry.trusted);
        let keys = ring.load().unwrap();
        assert_eq!(keys.smime.anchors.len(), 1);
        assert_eq!(
            smime::fingerprint(&keys.smime.anchors[0]),
            smime::fingerprint(&ca)
        );
        assert_eq!(keys.smime.keys.len(), 1);
    }
}
