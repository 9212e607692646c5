//! The access service, `apex=access@<domain>` (RFC 3341), and the
//! `core:data` check of local delivery (RFC 3340 §4.4.4.1 step 5.3).
//!
//! * `store` — the entries on disk (`access.json` in the state directory,
//!   replaced atomically).
//! * `service` — datagrams addressed to `apex=access@<served domain>`:
//!   `query`, `get` and `set` answered by a datagram back to the
//!   originator, owner notifications after every change; both go through
//!   the normal intake path.
//!
//! Policy (RFC 3341 §3, §3.1, implemented in [`imxp_apex::access`]): the
//! owner's explicit entries, then the four default entries, plus the
//! site's `[access] default_data` actors, which get `core:data` by default
//! (`["*@*"]` unless configured: anyone may send data to anyone unless the
//! owner blocks them; `[]` gives RFC 3341's own defaults, under which no
//! ordinary endpoint may send data to another until the owner allows it).
//!
//! Who may `query`/`get`/`set` an owner's entries: the owner itself and
//! every endpoint with the same base (`fred@…`, `fred/appl=wb@…`: the relay
//! lets only user `fred` act as any of them), the `[access] admins`, and whoever the owner's entries grant
//! `access:query`/`access:get`/`access:set` (the defaults grant them to
//! the domain's APEX services).

pub(crate) mod service;
mod store;

use crate::config::AccessSettings;
use imxp_apex::Endpoint;
use imxp_apex::access::{Action, Actions, Actor, Rule, Selection, Timestamp, select};
use parking_lot::RwLock;
use std::path::Path;
use store::{Entries, Stored, owner_key, rules_of};

pub(crate) use store::StoreError;

/// The access entries and the site policy.
pub(crate) struct Access {
    path: std::path::PathBuf,
    entries: RwLock<Entries>,
    /// Serializes changes (read, decide, write the file, publish).
    writer: tokio::sync::Mutex<()>,
    /// The site policy (`[access]`), replaced on reload.
    policy: RwLock<Policy>,
}

/// `[access] default_data` and `admins`.
struct Policy {
    default_data: Vec<Actor>,
    admins: Vec<Endpoint>,
}

/// The result of an accepted `set` (RFC 3341 §4.4 steps 6–8).
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Created or replaced: the entry as stored now.
    Stored(Stored),
    /// Deleted: the entry as it was.
    Deleted(Stored),
}

/// Why a `set` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetRefusal {
    /// 555: `lastUpdate` does not match (optimistic locking, §4.4).
    Stale,
    /// 551: deleting an entry that does not exist.
    NoSuchEntry,
    /// 451: the file could not be written; nothing changed.
    Io,
}

impl Access {
    /// Loads the entries from `state_dir`.
    pub(crate) fn open(state_dir: &Path, settings: &AccessSettings) -> Result<Self, StoreError> {
        let path = state_dir.join(store::FILE_NAME);
        let entries = store::load(&path)?;
        Ok(Self {
            path,
            entries: RwLock::new(entries),
            writer: tokio::sync::Mutex::new(()),
            policy: RwLock::new(Policy {
                default_data: settings.default_data.clone(),
                admins: settings.admins.clone(),
            }),
        })
    }

    /// Puts the site policy of `settings` in force (a reload).
    pub(crate) fn set_policy(&self, settings: &AccessSettings) {
        *self.policy.write() = Policy {
            default_data: settings.default_data.clone(),
            admins: settings.admins.clone(),
        };
    }

    /// The owner's entry that applies to `address` (RFC 3341 §3.1).
    pub(crate) fn select(&self, owner: &Endpoint, address: &Endpoint) -> Selection {
        let rules: Vec<Rule> = rules_of(&self.entries.read(), owner);
        select(owner, &rules, &self.policy.read().default_data, address)
    }

    /// RFC 3340 §4.4.4.1 step 5.3: may `originator` send data to the local
    /// endpoint `recipient`? Services (`apex=…`) check their own access.
    /// Canonical endpoint texts that do not parse are refused.
    pub(crate) fn permits_data(&self, originator: &str, recipient: &str) -> bool {
        let (Ok(originator), Ok(recipient)) =
            (Endpoint::parse(originator), Endpoint::parse(recipient))
        else {
            return false;
        };
        if recipient.is_service() {
            return true;
        }
        let data = Action::parse(imxp_apex::access::CORE_DATA).expect("constant");
        self.select(&recipient, &originator)
            .rule
            .actions
            .grants(&data)
    }

    /// Does `owner`'s entry for `actor` grant `action` (e.g.
    /// `presence:subscribe`, RFC 3343 §5)? The owner itself (any endpoint
    /// with its base, not a service) always may.
    pub(crate) fn permits(&self, owner: &Endpoint, actor: &Endpoint, action: &str) -> bool {
        if actor.same_base(owner) && !actor.is_service() {
            return true;
        }
        let wanted = Action::parse(action).expect("a service:operation constant");
        self.select(owner, actor).rule.actions.grants(&wanted)
    }

    /// May `originator` use `operation` (`query`, `get`, `set`) on
    /// `owner`'s entries (RFC 3341 §4.2–4.4 step 3)?
    pub(crate) fn may_manage(
        &self,
        originator: &Endpoint,
        owner: &Endpoint,
        operation: &str,
    ) -> bool {
        if originator.same_base(owner) && !originator.is_service() {
            return true;
        }
        if self.policy.read().admins.contains(originator) {
            return true;
        }
        let wanted = Action::parse(&format!("access:{operation}")).expect("access operation");
        self.select(owner, originator).rule.actions.grants(&wanted)
    }

    /// The entry of `owner` whose actor is identical to `actor` (§4.3).
    pub(crate) fn get(&self, owner: &Endpoint, actor: &Actor) -> Option<Stored> {
        self.entries
            .read()
            .get(&owner_key(owner))
            .and_then(|by_actor| by_actor.get(&actor.key()))
            .cloned()
    }

    /// All explicit entries of `owner`, by actor key.
    pub(crate) fn entries_of(&self, owner: &Endpoint) -> Vec<Stored> {
        self.entries
            .read()
            .get(&owner_key(owner))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// RFC 3341 §4.4 steps 4–8: create, replace or delete the entry of
    /// `owner` for `actor`, durably, if `last_update` matches.
    pub(crate) async fn set(
        &self,
        owner: &Endpoint,
        actor: &Actor,
        actions: Option<&Actions>,
        last_update: Option<&Timestamp>,
        now_ms: i64,
    ) -> Result<Change, SetRefusal> {
        let _writing = self.writer.lock().await;
        let mut next = self.entries.read().clone();
        let owner_entries = next.entry(owner_key(owner)).or_default();
        let key = actor.key();
        let existing = owner_entries.get(&key).cloned();
        let change = match (&existing, last_update) {
            (None, Some(_)) => return Err(SetRefusal::Stale),
            (None, None) if actions.is_none() => return Err(SetRefusal::NoSuchEntry),
            (Some(_), None) => return Err(SetRefusal::Stale),
            (Some(old), Some(given)) if old.last_update != *given => {
                return Err(SetRefusal::Stale);
            }
            (old, _) => match actions {
                None => {
                    owner_entries.remove(&key);
                    Change::Deleted(old.clone().expect("checked above"))
                }
                Some(actions) => {
                    // A new stamp that differs from (is later than) the old.
                    let after = old
                        .as_ref()
                        .map_or(i64::MIN, |o| o.last_update.unix_millis().saturating_add(1));
                    let stored = Stored {
                        actor: actor.clone(),
                        actions: actions.clone(),
                        last_update: Timestamp::from_unix_millis(now_ms.max(after)),
                    };
                    owner_entries.insert(key, stored.clone());
                    Change::Stored(stored)
                }
            },
        };
        if next.get(&owner_key(owner)).is_some_and(|m| m.is_empty()) {
            next.remove(&owner_key(owner));
        }
        let path = self.path.clone();
        let written = {
            let next = next.clone();
            tokio::task::spawn_blocking(move || store::save(&path, &next))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        };
        if let Err(error) = written {
            tracing::error!(%error, "writing the access entries failed; nothing changed");
            return Err(SetRefusal::Io);
        }
        *self.entries.write() = next;
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(text: &str) -> Endpoint {
        Endpoint::parse(text).unwrap()
    }

    fn settings(default_data: &[&str]) -> AccessSettings {
        AccessSettings {
            default_data: default_data
                .iter()
                .map(|a| Actor::parse(a).unwrap())
                .collect(),
            admins: vec![ep("postmaster@example.com")],
        }
    }

    #[tokio::test]
    async fn set_get_optimistic_locking_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let access = Access::open(dir.path(), &settings(&["*@*"])).unwrap();
        let fred = ep("fred@example.com");
        let barney = Actor::parse("barney@example.com").unwrap();
        assert!(access.permits_data("barney@example.com", "fred@example.com"));
        // Create: no lastUpdate; a lastUpdate for a missing entry is 555.
        let stale = Timestamp::from_unix_millis(1);
        assert_eq!(
            access
                .set(&fred, &barney, Some(&Actions::none()), Some(&stale), 1000)
                .await
                .unwrap_err(),
            SetRefusal::Stale
        );
        assert_eq!(
            access
                .set(&fred, &barney, None, None, 1000)
                .await
                .unwrap_err(),
            SetRefusal::NoSuchEntry
        );
        let Change::Stored(created) = access
            .set(&fred, &barney, Some(&Actions::none()), None, 1000)
            .await
            .unwrap()
        else {
            panic!("stored expected")
        };
        assert_eq!(created.last_update.unix_millis(), 1000);
        assert!(!access.permits_data("barney@example.com", "fred@example.com"));
        assert!(access.permits_data("wilma@example.com", "fred@example.com"));
        // Replace: needs the current stamp; the new one is later even if the
        // clock went backwards.
        assert_eq!(
            access
                .set(&fred, &barney, Some(&Actions::core_data()), None, 2000)
                .await
                .unwrap_err(),
            SetRefusal::Stale
        );
        let Change::Stored(replaced) = access
            .set(
                &fred,
                &barney,
                Some(&Actions::core_data()),
                Some(&created.last_update),
                500,
            )
            .await
            .unwrap()
        else {
            panic!("stored expected")
        };
        assert_eq!(replaced.last_update.unix_millis(), 1001);
        assert!(access.permits_data("barney@example.com", "fred@example.com"));
        // The entries survive a restart.
        drop(access);
        let access = Access::open(dir.path(), &settings(&["*@*"])).unwrap();
        assert_eq!(access.get(&fred, &barney), Some(replaced.clone()));
        assert_eq!(access.entries_of(&fred).len(), 1);
        // Delete.
        let Change::Deleted(deleted) = access
            .set(&fred, &barney, None, Some(&replaced.last_update), 3000)
            .await
            .unwrap()
        else {
            panic!("deleted expected")
        };
        assert_eq!(deleted, replaced);
        assert!(access.get(&fred, &barney).is_none());
        drop(access);
        assert!(
            Access::open(dir.path(), &settings(&[]))
                .unwrap()
                .entries_of(&fred)
                .is_empty()
        );
    }

    #[test]
    fn who_may_manage() {
        let dir = tempfile::tempdir().unwrap();
        let access = Access::open(dir.path(), &settings(&[])).unwrap();
        let fred = ep("fred@example.com");
        let fred_wb = ep("fred/appl=wb@example.com");
        assert!(access.may_manage(&fred, &fred, "set"));
        assert!(
            access.may_manage(&fred, &fred_wb, "set"),
            "base of a subaddress"
        );
        assert!(access.may_manage(&fred_wb, &fred, "set"), "same user");
        assert!(!access.may_manage(&ep("fred@other.example"), &fred, "set"));
        assert!(!access.may_manage(&ep("barney@example.com"), &fred, "query"));
        assert!(
            access.may_manage(&ep("postmaster@example.com"), &fred, "set"),
            "admin"
        );
        assert!(
            access.may_manage(&ep("apex=presence@example.com"), &fred, "query"),
            "default apex=*@domain all:all"
        );
        assert!(!access.may_manage(&ep("apex=presence@other.example"), &fred, "query"));
        // RFC defaults alone: nobody else may send data.
        assert!(!access.permits_data("barney@example.com", "fred@example.com"));
        assert!(access.permits_data("fred@example.com", "fred@example.com"));
        assert!(access.permits_data("apex=report@other.example", "fred@example.com"));
        assert!(access.permits_data("barney@example.com", "apex=access@example.com"));
    }
}
