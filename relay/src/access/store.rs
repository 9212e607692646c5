//! The persistent access entries (RFC 3341 §4: "an implementation of the
//! service must maintain information about access entries in persistent
//! storage"): one JSON file, `access.json` in the state directory,
//! replaced atomically on every change (written beside, flushed to disk,
//! renamed over, directory flushed). A crash mid-write leaves the old file
//! or the new one, never a torn one. A file that does not parse stops the
//! relay rather than silently dropping entries.

use imxp_apex::Endpoint;
use imxp_apex::access::{Actions, Actor, Rule, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file name under the state directory.
pub(crate) const FILE_NAME: &str = "access.json";

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) actor: Actor,
    pub(crate) actions: Actions,
    pub(crate) last_update: Timestamp,
}

/// Entries by owner key, then by actor key.
pub(crate) type Entries = BTreeMap<String, BTreeMap<String, Stored>>;

#[derive(Serialize, Deserialize)]
struct FileForm {
    version: u32,
    entries: Vec<EntryForm>,
}

#[derive(Serialize, Deserialize)]
struct EntryForm {
    owner: String,
    actor: String,
    actions: String,
    last_update: String,
}

/// Why the access file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
}

/// The owner key of an endpoint: local part as written, domain lower case.
pub(crate) fn owner_key(owner: &Endpoint) -> String {
    format!("{}@{}", owner.local(), owner.domain().canonical())
}

/// The explicit rules of `owner`.
pub(crate) fn rules_of(entries: &Entries, owner: &Endpoint) -> Vec<Rule> {
    entries
        .get(&owner_key(owner))
        .map(|by_actor| {
            by_actor
                .values()
                .map(|stored| Rule {
                    actor: stored.actor.clone(),
                    actions: stored.actions.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the file at `path`; a missing file is an empty store.
pub(crate) fn load(path: &Path) -> Result<Entries, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Entries::new()),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let corrupt = |message: String| StoreError::Corrupt {
        path: path.to_owned(),
        message,
    };
    let file: FileForm = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if file.version != 1 {
        return Err(corrupt(format!("unknown version {}", file.version)));
    }
    let mut entries = Entries::new();
    for (i, form) in file.entries.into_iter().enumerate() {
        let at =
            |what: &str, e: &dyn std::fmt::Display| corrupt(format!("entries[{i}].{what}: {e}"));
        let owner = Endpoint::parse(&form.owner).map_err(|e| at("owner", &e))?;
        let actor = Actor::parse(&form.actor).map_err(|e| at("actor", &e))?;
        let actions = Actions::parse(&form.actions).map_err(|e| at("actions", &e))?;
        let last_update = Timestamp::parse(&form.last_update).map_err(|e| at("last_update", &e))?;
        entries.entry(owner_key(&owner)).or_default().insert(
            actor.key(),
            Stored {
                actor,
                actions,
                last_update,
            },
        );
    }
    Ok(entries)
}

/// Replaces the file at `path` with `entries`, atomically and durably.
pub(crate) fn save(path: &Path, entries: &Entries) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let form = FileForm {
        version: 1,
        entries: entries
            .iter()
            .flat_map(|(owner, by_actor)| {
                by_actor.values().map(move |stored| EntryForm {
                    owner: owner.clone(),
                    actor: stored.actor.to_string(),
                    actions: stored.actions.to_string(),
                    last_update: stored.last_update.as_str().to_owned(),
                })
            })
            .collect(),
    };
    let mut text = serde_json::to_vec_pretty(&form).expect("serializable");
    text.push(b'\n');
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let temporary = path.with_extension("json.new");
    {
        let mut file = std::fs::File::create(&temporary).map_err(io)?;
        file.write_all(&text).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&temporary, path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert!(load(&path).unwrap().is_empty());
        let owner = Endpoint::parse("fred@Example.com").unwrap();
        let mut entries = Entries::new();
        entries.entry(owner_key(&owner)).or_default().insert(
            "a\\\\b\\*c@example.com".into(),
            Stored {
                actor: Actor::parse("a\\\\b\\*c@example.com").unwrap(),
                actions: Actions::parse("core:data presence:watch").unwrap(),
                last_update: Timestamp::from_unix_millis(958_338_120_000),
            },
        );
        save(&path, &entries).unwrap();
        assert_eq!(load(&path).unwrap(), entries);
        assert!(!path.with_extension("json.new").exists());
        // A leftover temporary file from a crash is ignored and replaced.
        std::fs::write(path.with_extension("json.new"), b"{torn").unwrap();
        assert_eq!(load(&path).unwrap(), entries);
        save(&path, &Entries::new()).unwrap();
        assert!(load(&path).unwrap().is_empty());
        std::fs::write(&path, b"{\"version\":1,\"entries\":[{\"owner\":\"x\"}]}").unwrap();
        let error = load(&path).unwrap_err().to_string();
        assert!(error.contains("access.json"), "{error}");
        std::fs::write(
            &path,
            br#"{"version":1,"entries":[{"owner":"fred@example.com","actor":"fr*d@example.com","actions":"core:data","last_update":"2000-05-14T21:02:00Z"}]}"#,
        )
        .unwrap();
        let error = load(&path).unwrap_err().to_string();
        assert!(error.contains("entries[0].actor"), "{error}");
    }
}
