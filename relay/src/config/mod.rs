//! `imxpd.toml`: read, validated once into typed settings. Every error names
//! the offending key (`imxpd check-config` prints them).
//!
//! The reference for operators, every key with its type, default, unit and
//! meaning, and the limits table, is the man page imxpd.toml(5)
//! (`man/imxpd.toml.5`). A test (`documented`) checks that every key the
//! parser accepts (`file.rs` defines them) is documented there and
//! that the page documents no other; add a key to both.

// Layout: `file` holds the file as written (serde), `settings` the typed
// settings it becomes, `validate` one check per section, `values` checks
// of values shared by sections (domains, host:port, durations).
#[cfg(test)]
mod documented;
mod file;
mod live;
mod settings;
#[cfg(test)]
mod tests;
mod validate;
mod values;

use std::path::{Path, PathBuf};

use thiserror::Error;

use file::File;
pub use live::{Live, keep_running};
pub use settings::{
    AccessSettings, Config, GatewaySettings, HoldSettings, LimitSettings, LogFormat, MeshPolicy,
    OptionSettings, PresenceSettings, QueueSettings, ReportSettings, SpoolEngine, TlsSettings,
};
pub use values::parse_duration;

/// The IANA port of apex-edge (endpoint-relay).
pub const EDGE_PORT: u16 = 913;
/// The IANA port of apex-mesh (relay-relay).
pub const MESH_PORT: u16 = 912;

/// A configuration problem, naming the key.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the key and position.
        message: String,
    },
    /// A value that does not make sense.
    #[error("{key}: {message}")]
    Invalid {
        /// The key, e.g. `listen.edge[1]`.
        key: String,
        /// Why.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Validates configuration text; `path` names it in errors and anchors
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::validate(file, base)
    }
}
