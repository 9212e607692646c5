//! The presence service's state and rules, without I/O (RFC 3343 §4):
//! entries, subscriptions and watches in progress, and what each
//! operation changes and sends. Every method takes the time and returns
//! [`Effects`]: the records to store and the datagrams to send, which
//! `presence::service` carries out (store first, then send).
//!
//! # Views and polite blocking
//!
//! What a subscriber is sent is a *view* of the entry ([`Registry::view`]):
//! the owner itself (any endpoint with the publisher's base) sees the
//! entry as it is; anyone else sees it while one of its tuples is open,
//! and [`PresenceEntry::offline`] otherwise. A subscriber the publisher's
//! access entries do not grant `presence:subscribe` is treated exactly
//! like one who is granted it while the publisher is offline (RFC 2779
//! §5.1.15): the same operations, the same datagrams, octet for octet.
//! RFC 3343 §4.2 step 3 would answer 537 instead, which tells the
//! subscriber it is blocked; imxp does not.
//!
//! A subscriber is sent an update only when its view changes (its
//! `lastUpdate` differs from the last one sent), so offline-to-offline
//! changes and blocked subscribers cause no traffic.

use std::collections::{BTreeMap, HashMap};

use imxp_apex::access::Timestamp;
use imxp_apex::presence::pidf::FOREVER;
use imxp_apex::presence::{
    AUTOMATIC_TUPLE_INFO, Notify, NotifyAction, PresenceEntry, PresenceMessage, Publish, Subscribe,
    Tuple, service_endpoint,
};
use imxp_apex::{Endpoint, Reply, ReplyCode};
use imxp_spool::DatagramId;
use serde::{Deserialize, Serialize};

use crate::config::PresenceSettings;

/// (publisher, subscriber or watcher), canonical endpoint texts.
pub(crate) type Key = (String, String);

/// A subscription in progress (§4.2 step 6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Subscription {
    pub(crate) publisher: String,
    pub(crate) subscriber: String,
    pub(crate) trans_id: u32,
    /// As granted (seconds).
    pub(crate) duration: u32,
    pub(crate) expires_ms: u64,
    /// `lastUpdate` of the view last sent.
    pub(crate) last_sent: Option<String>,
    /// The datagrams of its updates that may still wait in the queue (the
    /// last one, and older ones that were in flight when it was queued):
    /// the next update supersedes them.
    #[serde(default)]
    pub(crate) in_queue: Vec<DatagramId>,
}

/// A watch in progress (§4.3 step 6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Watch {
    pub(crate) publisher: String,
    pub(crate) watcher: String,
    pub(crate) trans_id: u32,
    pub(crate) duration: u32,
    pub(crate) expires_ms: u64,
}

/// A record to store (or delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Entry(PresenceEntry),
    Subscription(Subscription),
    EndSubscription(Key),
    Watch(Watch),
    EndWatch(Key),
}

/// A datagram the service sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub(crate) from: Endpoint,
    pub(crate) to: Endpoint,
    pub(crate) message: PresenceMessage,
    /// The subscription a `publish` is for: the datagram replaces the
    /// subscription's previous one if that still waits in the queue.
    pub(crate) subscription: Option<Key>,
}

/// What an operation changes and sends.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub(crate) changes: Vec<Change>,
    pub(crate) outgoing: Vec<Outgoing>,
}

impl Effects {
    fn reply(from: &Endpoint, to: &Endpoint, code: ReplyCode, trans_id: u32, text: &str) -> Self {
        Self {
            changes: Vec::new(),
            outgoing: vec![Outgoing {
                from: from.clone(),
                to: to.clone(),
                message: PresenceMessage::Reply(Reply {
                    code,
                    trans_id: Some(trans_id),
                    lang: None,
                    text: text.to_owned(),
                }),
                subscription: None,
            }],
        }
    }

    /// These effects with `changes` made before the refusal they carry
    /// (a replaced subscription stays ended).
    fn keeping(mut self, changes: Vec<Change>) -> Self {
        self.changes = changes;
        self
    }

    fn send(&mut self, from: Endpoint, to: Endpoint, message: PresenceMessage) {
        self.outgoing.push(Outgoing {
            from,
            to,
            message,
            subscription: None,
        });
    }
}

/// What the access entries grant (RFC 3343 §5), asked by the registry.
pub(crate) trait Grants {
    /// Does `publisher`'s entry grant `action` (`presence:subscribe`, …)
    /// to `actor`?
    fn grants(&self, publisher: &Endpoint, actor: &Endpoint, action: &str) -> bool;
}

/// Operations per minute, in fixed one-minute windows.
#[derive(Debug, Default)]
struct RateWindow {
    window: u64,
    counts: HashMap<String, u32>,
}

impl RateWindow {
    /// Counts one for `key`; false if that is over `limit` this minute.
    fn admit(&mut self, key: &str, limit: u32, now_ms: u64) -> bool {
        let window = now_ms / 60_000;
        if window != self.window {
            self.window = window;
            self.counts.clear();
        }
        let count = self.counts.entry(key.to_owned()).or_insert(0);
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }
}

/// Which operation of an originator a transID names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum InProgress {
    Subscription(String),
    Watch(String),
}

/// The state of the presence service of one relay.
pub(crate) struct Registry {
    settings: PresenceSettings,
    entries: HashMap<String, PresenceEntry>,
    subscriptions: BTreeMap<Key, Subscription>,
    watches: BTreeMap<Key, Watch>,
    /// originator → transID → its subscription or watch (§4.2 step 5).
    by_originator: HashMap<String, HashMap<u32, InProgress>>,
    publishes: RateWindow,
    subscribes: RateWindow,
}

impl Registry {
    /// An empty registry with `settings`.
    pub(crate) fn new(settings: PresenceSettings) -> Self {
        Self {
            settings,
            entries: HashMap::new(),
            subscriptions: BTreeMap::new(),
            watches: BTreeMap::new(),
            by_originator: HashMap::new(),
            publishes: RateWindow::default(),
            subscribes: RateWindow::default(),
        }
    }

    /// Loads stored state (at start).
    pub(crate) fn restore(
        &mut self,
        entries: Vec<PresenceEntry>,
        subscriptions: Vec<Subscription>,
        watches: Vec<Watch>,
    ) {
        for entry in entries {
            self.entries.insert(entry.publisher.to_string(), entry);
        }
        for subscription in subscriptions {
            self.insert_subscription(subscription);
        }
        for watch in watches {
            self.insert_watch(watch);
        }
    }

    /// Puts `settings` in force (a reload may have changed them).
    pub(crate) fn use_settings(&mut self, settings: &PresenceSettings) {
        self.settings.clone_from(settings);
    }

    /// Counts: entries, subscriptions, watches.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (
            self.entries.len(),
            self.subscriptions.len(),
            self.watches.len(),
        )
    }

    /// The subscription `key`, if in progress.
    pub(crate) fn subscription(&self, key: &Key) -> Option<&Subscription> {
        self.subscriptions.get(key)
    }

    /// What `subscriber` is shown of `publisher`'s entry (module docs).
    pub(crate) fn view(
        &self,
        publisher: &Endpoint,
        subscriber: &Endpoint,
        grants: &dyn Grants,
        now_ms: u64,
    ) -> PresenceEntry {
        let entry = self.entries.get(&publisher.to_string());
        if subscriber.same_base(publisher) && !subscriber.is_service() {
            return entry
                .cloned()
                .unwrap_or_else(|| PresenceEntry::offline(publisher));
        }
        match entry {
            Some(entry)
                if entry.is_open(millis(now_ms))
                    && grants.grants(publisher, subscriber, "presence:subscribe") =>
            {
                entry.clone()
            }
            _ => PresenceEntry::offline(publisher),
        }
    }

    /// A `subscribe` from `originator` to `service` (§4.2).
    pub(crate) fn subscribe(
        &mut self,
        service: &Endpoint,
        originator: &Endpoint,
        request: &Subscribe,
        grants: &dyn Grants,
        now_ms: u64,
    ) -> Effects {
        let trans_id = request.trans_id;
        if let Err(refusal) = self.check_subject(service, originator, request, now_ms) {
            return refusal;
        }
        // Step 3 is polite blocking (module docs): no 537.
        let publisher = &request.publisher;
        let key = (publisher.to_string(), originator.to_string());
        let mut effects = Effects::default();
        // Step 4: a subscription to the same subject is replaced silently.
        if self.remove_subscription(&key).is_some() {
            effects.changes.push(Change::EndSubscription(key.clone()));
        }
        // Step 5.
        if self.trans_id_in_use(originator, trans_id) {
            return Effects::reply(
                service,
                originator,
                ReplyCode::TRANSACTION_IN_PROGRESS,
                trans_id,
                "transID in use by another subscribe or watch",
            )
            .keeping(effects.changes);
        }
        let held = self
            .subscriptions
            .values()
            .filter(|s| s.subscriber == key.1)
            .count();
        if request.duration > 0 && held >= self.settings.max_subscriptions_per_subscriber {
            return Effects::reply(
                service,
                originator,
                ReplyCode::ACTION_NOT_TAKEN,
                trans_id,
                &format!(
                    "{originator} has {held} subscriptions in progress, the most this relay allows"
                ),
            )
            .keeping(effects.changes);
        }
        let duration = self.granted(request.duration);
        // Step 6.1: the entry now.
        let view = self.view(publisher, originator, grants, now_ms);
        let stamp = view.last_update.as_str().to_owned();
        effects.outgoing.push(Outgoing {
            from: service.clone(),
            to: originator.clone(),
            message: publish(publisher, trans_id, view, now_ms),
            subscription: (duration > 0).then(|| key.clone()),
        });
        // Step 6.2: the watchers.
        self.notify_watchers(
            &mut effects,
            publisher,
            originator,
            duration,
            NotifyAction::Subscribe,
        );
        // Step 6.3 (not for a poll).
        if duration > 0 {
            let subscription = Subscription {
                publisher: key.0.clone(),
                subscriber: key.1.clone(),
                trans_id,
                duration,
                expires_ms: now_ms.saturating_add(u64::from(duration) * 1000),
                last_sent: Some(stamp),
                in_queue: Vec::new(),
            };
            self.insert_subscription(subscription.clone());
            effects.changes.push(Change::Subscription(subscription));
        }
        effects
    }

    /// A `watch` from `originator` to `service` (§4.3).
    pub(crate) fn watch(
        &mut self,
        service: &Endpoint,
        originator: &Endpoint,
        request: &Subscribe,
        grants: &dyn Grants,
        now_ms: u64,
    ) -> Effects {
        let trans_id = request.trans_id;
        if let Err(refusal) = self.check_subject(service, originator, request, now_ms) {
            return refusal;
        }
        let publisher = &request.publisher;
        if !grants.grants(publisher, originator, "presence:watch") {
            return Effects::reply(
                service,
                originator,
                ReplyCode::NOT_AUTHORIZED,
                trans_id,
                "presence:watch not permitted",
            );
        }
        let key = (publisher.to_string(), originator.to_string());
        let mut effects = Effects::default();
        if self.remove_watch(&key).is_some() {
            effects.changes.push(Change::EndWatch(key.clone()));
        }
        if self.trans_id_in_use(originator, trans_id) {
            return Effects::reply(
                service,
                originator,
                ReplyCode::TRANSACTION_IN_PROGRESS,
                trans_id,
                "transID in use by another subscribe or watch",
            )
            .keeping(effects.changes);
        }
        let watchers = self.watches_of(&key.0).count();
        if request.duration > 0 && watchers >= self.settings.max_watchers_per_presentity {
            return Effects::reply(
                service,
                originator,
                ReplyCode::ACTION_NOT_TAKEN,
                trans_id,
                &format!("{publisher} has {watchers} watchers, the most this relay allows"),
            )
            .keeping(effects.changes);
        }
        let duration = self.granted(request.duration);
        let reply = Effects::reply(service, originator, ReplyCode::APEX_OK, trans_id, "");
        effects.outgoing.extend(reply.outgoing);
        // Step 6.2: the current subscribers.
        let current: Vec<(Endpoint, u32)> = self
            .subscriptions_of(&key.0)
            .filter_map(|s| Some((s.subscriber.parse().ok()?, s.duration)))
            .collect();
        for (subscriber, duration) in current {
            effects.send(
                service.clone(),
                originator.clone(),
                PresenceMessage::Notify(Notify {
                    subscriber,
                    trans_id,
                    duration,
                    action: NotifyAction::Subscribe,
                }),
            );
        }
        if duration > 0 {
            let watch = Watch {
                publisher: key.0,
                watcher: key.1,
                trans_id,
                duration,
                expires_ms: now_ms.saturating_add(u64::from(duration) * 1000),
            };
            self.insert_watch(watch.clone());
            effects.changes.push(Change::Watch(watch));
        }
        effects
    }

    /// A `publish` from `originator` to `service` (§4.4).
    pub(crate) fn publish(
        &mut self,
        service: &Endpoint,
        originator: &Endpoint,
        request: &Publish,
        grants: &dyn Grants,
        now_ms: u64,
    ) -> Effects {
        let trans_id = request.trans_id;
        let publisher = &request.publisher;
        let refuse = |code, text: &str| Effects::reply(service, originator, code, trans_id, text);
        if request.presence.publisher != *publisher {
            return refuse(
                ReplyCode::PUBLISHER_MISMATCH,
                "publisher of publish and of presence differ",
            );
        }
        if publisher.domain() != service.domain() {
            return refuse(
                ReplyCode::PARAMETER_INVALID,
                &format!("{} is not served by {service}", publisher.domain()),
            );
        }
        if publisher.is_service() {
            return refuse(
                ReplyCode::ACTION_NOT_TAKEN,
                "APEX services have no presence",
            );
        }
        if !grants.grants(publisher, originator, "presence:publish") {
            return refuse(ReplyCode::NOT_AUTHORIZED, "presence:publish not permitted");
        }
        let current = self.entries.get(&publisher.to_string());
        let current_stamp =
            current.map_or_else(|| Timestamp::from_unix_millis(0), |e| e.last_update.clone());
        if request.presence.last_update != current_stamp {
            return refuse(
                ReplyCode::TRANSACTION_IN_PROGRESS,
                &format!(
                    "lastUpdate does not match the entry's ({current_stamp}); fetch it with a subscribe of duration 0"
                ),
            );
        }
        if !self.publishes.admit(
            &publisher.to_string(),
            self.settings.max_publishes_per_minute,
            now_ms,
        ) {
            return refuse(
                ReplyCode::ACTION_NOT_TAKEN_TEMPORARY,
                "too many publish operations this minute; try again later",
            );
        }
        let automatic: Vec<Tuple> = current
            .map(|e| {
                e.tuples
                    .iter()
                    .filter(|t| t.is_automatic() && t.is_open(millis(now_ms)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut entry = request.presence.clone();
        entry.tuples.retain(|t| !t.is_automatic());
        entry.tuples.extend(automatic);
        if entry.tuples.is_empty() {
            entry.tuples.push(placeholder(publisher, now_ms));
        }
        entry.last_update = next_stamp(current, now_ms);
        let size = entry.to_xml().len();
        if size > self.settings.max_entry_size {
            return refuse(
                ReplyCode::ACTION_NOT_TAKEN,
                &format!(
                    "the entry is {size} octets, more than this relay keeps ({})",
                    self.settings.max_entry_size
                ),
            );
        }
        let mut effects = self.store_entry(entry, grants, now_ms);
        effects.outgoing.insert(
            0,
            Effects::reply(service, originator, ReplyCode::APEX_OK, trans_id, "")
                .outgoing
                .remove(0),
        );
        effects
    }

    /// A `terminate` from `originator` to `service` (§4.5).
    pub(crate) fn terminate(
        &mut self,
        service: &Endpoint,
        originator: &Endpoint,
        trans_id: u32,
    ) -> Effects {
        let found = self
            .by_originator
            .get(&originator.to_string())
            .and_then(|ops| ops.get(&trans_id))
            .cloned();
        let mut effects = match &found {
            None => {
                return Effects::reply(
                    service,
                    originator,
                    ReplyCode::ACTION_NOT_TAKEN,
                    trans_id,
                    "no subscribe or watch in progress with this transID",
                );
            }
            Some(_) => Effects::reply(service, originator, ReplyCode::APEX_OK, trans_id, ""),
        };
        match found {
            Some(InProgress::Subscription(publisher)) => {
                let key = (publisher, originator.to_string());
                if self.remove_subscription(&key).is_some() {
                    effects.changes.push(Change::EndSubscription(key.clone()));
                    if let Ok(publisher) = key.0.parse::<Endpoint>() {
                        self.notify_watchers(
                            &mut effects,
                            &publisher,
                            originator,
                            0,
                            NotifyAction::Terminate,
                        );
                    }
                }
            }
            Some(InProgress::Watch(publisher)) => {
                let key = (publisher, originator.to_string());
                if self.remove_watch(&key).is_some() {
                    effects.changes.push(Change::EndWatch(key));
                }
            }
            None => {}
        }
        effects
    }

    /// An endpoint of a served domain attached (`true`) or its attachment
    /// ended: its tuple in its user's entry opens or goes (module docs of
    /// `presence`).
    pub(crate) fn attachment(
        &mut self,
        endpoint: &Endpoint,
        attached: bool,
        grants: &dyn Grants,
        now_ms: u64,
    ) -> Effects {
        let user = endpoint.base();
        let current = self.entries.get(&user.to_string());
        let destination = format!("apex:{endpoint}");
        let mut tuples: Vec<Tuple> = current.map(|e| e.tuples.clone()).unwrap_or_default();
        let before = tuples.clone();
        tuples.retain(|t| !(t.is_automatic() && t.destination == destination));
        if attached {
            let mut tuple = Tuple::new(destination, Timestamp::parse(FOREVER).expect("constant"));
            tuple.tuple_info = AUTOMATIC_TUPLE_INFO.to_owned();
            tuples.push(tuple);
        }
        if tuples.len() > 1 {
            // The placeholder of an entry that had no tuple left.
            tuples.retain(|t| {
                !(t.is_automatic()
                    && !t.is_open(millis(now_ms))
                    && t.destination == format!("apex:{user}"))
            });
        }
        if tuples.is_empty() {
            tuples.push(placeholder(&user, now_ms));
        }
        if tuples == before {
            return Effects::default();
        }
        let entry = PresenceEntry {
            publisher: user.clone(),
            last_update: next_stamp(current, now_ms),
            publisher_info: current
                .map(|e| e.publisher_info.clone())
                .unwrap_or_default(),
            tuples,
        };
        self.store_entry(entry, grants, now_ms)
    }

    /// At start, no endpoint is attached: every automatic tuple goes.
    pub(crate) fn detach_all(&mut self, grants: &dyn Grants, now_ms: u64) -> Effects {
        let attached: Vec<Endpoint> = self
            .entries
            .values()
            .flat_map(|e| e.tuples.iter())
            .filter(|t| t.is_automatic() && t.is_open(millis(now_ms)))
            .filter_map(|t| t.destination.strip_prefix("apex:")?.parse().ok())
            .collect();
        let mut effects = Effects::default();
        for endpoint in attached {
            let more = self.attachment(&endpoint, false, grants, now_ms);
            effects.changes.extend(more.changes);
            effects.outgoing.extend(more.outgoing);
        }
        effects
    }

    /// Updates owed at start: subscriptions whose view changed since the
    /// last one sent (a stop between storing a change and sending it).
    pub(crate) fn resume(&mut self, grants: &dyn Grants, now_ms: u64) -> Effects {
        let publishers: Vec<String> = self.subscriptions.keys().map(|(p, _)| p.clone()).collect();
        let mut effects = Effects::default();
        let mut done = std::collections::HashSet::new();
        for publisher in publishers {
            if done.insert(publisher.clone())
                && let Ok(publisher) = publisher.parse::<Endpoint>()
            {
                self.fan_out(&mut effects, &publisher, grants, now_ms);
            }
        }
        effects
    }

    /// Sends each subscriber of `publisher` whose view changed (e.g. the
    /// publisher's access entries changed) the view it has now.
    pub(crate) fn refresh(
        &self,
        publisher: &Endpoint,
        grants: &dyn Grants,
        now_ms: u64,
    ) -> Effects {
        let mut effects = Effects::default();
        self.fan_out(&mut effects, publisher, grants, now_ms);
        effects
    }

    /// Subscriptions and watches whose time is up at `now_ms` end: each
    /// holder is sent `terminate`, watchers of an ended subscription a
    /// `notify` (§4.2, §4.3 step 6.3).
    pub(crate) fn expire(&mut self, now_ms: u64) -> Effects {
        let mut effects = Effects::default();
        let subscriptions: Vec<Key> = self
            .subscriptions
            .iter()
            .filter(|(_, s)| s.expires_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for key in subscriptions {
            let Some(subscription) = self.remove_subscription(&key) else {
                continue;
            };
            effects.changes.push(Change::EndSubscription(key.clone()));
            let (Ok(publisher), Ok(subscriber)) = (
                subscription.publisher.parse::<Endpoint>(),
                subscription.subscriber.parse::<Endpoint>(),
            ) else {
                continue;
            };
            effects.send(
                service_endpoint(publisher.domain()),
                subscriber.clone(),
                PresenceMessage::Terminate {
                    trans_id: subscription.trans_id,
                },
            );
            self.notify_watchers(
                &mut effects,
                &publisher,
                &subscriber,
                0,
                NotifyAction::Terminate,
            );
        }
        let watches: Vec<Key> = self
            .watches
            .iter()
            .filter(|(_, w)| w.expires_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for key in watches {
            let Some(watch) = self.remove_watch(&key) else {
                continue;
            };
            effects.changes.push(Change::EndWatch(key));
            let (Ok(publisher), Ok(watcher)) = (
                watch.publisher.parse::<Endpoint>(),
                watch.watcher.parse::<Endpoint>(),
            ) else {
                continue;
            };
            effects.send(
                service_endpoint(publisher.domain()),
                watcher,
                PresenceMessage::Terminate {
                    trans_id: watch.trans_id,
                },
            );
        }
        effects
    }

    /// When the next subscription or watch runs out.
    pub(crate) fn next_expiry(&self) -> Option<u64> {
        let subscriptions = self.subscriptions.values().map(|s| s.expires_ms);
        let watches = self.watches.values().map(|w| w.expires_ms);
        subscriptions.chain(watches).min()
    }

    /// Records that the update for `key` went out as `datagram`, showing
    /// the view stamped `stamp`; `in_flight` are older updates that could
    /// not be superseded because they were being delivered.
    pub(crate) fn sent(
        &mut self,
        key: &Key,
        stamp: &str,
        datagram: DatagramId,
        in_flight: Vec<DatagramId>,
    ) -> Option<Change> {
        let subscription = self.subscriptions.get_mut(key)?;
        subscription.last_sent = Some(stamp.to_owned());
        subscription.in_queue = in_flight;
        subscription.in_queue.push(datagram);
        Some(Change::Subscription(subscription.clone()))
    }

    /// Admits one more `subscribe`/`watch` from `domain` this minute.
    pub(crate) fn admit_subscribe(&mut self, domain: &str, now_ms: u64) -> bool {
        self.subscribes.admit(
            domain,
            self.settings.max_subscribes_per_domain_per_minute,
            now_ms,
        )
    }

    fn check_subject(
        &self,
        service: &Endpoint,
        originator: &Endpoint,
        request: &Subscribe,
        _now_ms: u64,
    ) -> Result<(), Effects> {
        let publisher = &request.publisher;
        if publisher.domain() != service.domain() {
            return Err(Effects::reply(
                service,
                originator,
                ReplyCode::PARAMETER_INVALID,
                request.trans_id,
                &format!("{} is not served by {service}", publisher.domain()),
            ));
        }
        if publisher.is_service() {
            return Err(Effects::reply(
                service,
                originator,
                ReplyCode::ACTION_NOT_TAKEN,
                request.trans_id,
                "APEX services have no presence",
            ));
        }
        Ok(())
    }

    fn granted(&self, requested: u32) -> u32 {
        let most = u32::try_from(self.settings.max_duration.as_secs()).unwrap_or(u32::MAX);
        requested.min(most)
    }

    /// Stores `entry` and sends every subscriber whose view changed.
    fn store_entry(&mut self, entry: PresenceEntry, grants: &dyn Grants, now_ms: u64) -> Effects {
        let publisher = entry.publisher.clone();
        self.entries.insert(publisher.to_string(), entry.clone());
        let mut effects = Effects {
            changes: vec![Change::Entry(entry)],
            outgoing: Vec::new(),
        };
        self.fan_out(&mut effects, &publisher, grants, now_ms);
        effects
    }

    fn fan_out(
        &self,
        effects: &mut Effects,
        publisher: &Endpoint,
        grants: &dyn Grants,
        now_ms: u64,
    ) {
        let service = service_endpoint(publisher.domain());
        for subscription in self.subscriptions_of(&publisher.to_string()) {
            let Ok(subscriber) = subscription.subscriber.parse::<Endpoint>() else {
                continue;
            };
            let view = self.view(publisher, &subscriber, grants, now_ms);
            if subscription.last_sent.as_deref() == Some(view.last_update.as_str()) {
                continue;
            }
            effects.outgoing.push(Outgoing {
                from: service.clone(),
                to: subscriber,
                message: publish(publisher, subscription.trans_id, view, now_ms),
                subscription: Some((
                    subscription.publisher.clone(),
                    subscription.subscriber.clone(),
                )),
            });
        }
    }

    fn notify_watchers(
        &self,
        effects: &mut Effects,
        publisher: &Endpoint,
        subscriber: &Endpoint,
        duration: u32,
        action: NotifyAction,
    ) {
        let service = service_endpoint(publisher.domain());
        for watch in self.watches_of(&publisher.to_string()) {
            let Ok(watcher) = watch.watcher.parse::<Endpoint>() else {
                continue;
            };
            effects.send(
                service.clone(),
                watcher,
                PresenceMessage::Notify(Notify {
                    subscriber: subscriber.clone(),
                    trans_id: watch.trans_id,
                    duration,
                    action,
                }),
            );
        }
    }

    fn subscriptions_of<'a>(
        &'a self,
        publisher: &'a str,
    ) -> impl Iterator<Item = &'a Subscription> {
        self.subscriptions
            .range((publisher.to_owned(), String::new())..)
            .take_while(move |((p, _), _)| p == publisher)
            .map(|(_, s)| s)
    }

    fn watches_of<'a>(&'a self, publisher: &'a str) -> impl Iterator<Item = &'a Watch> {
        self.watches
            .range((publisher.to_owned(), String::new())..)
            .take_while(move |((p, _), _)| p == publisher)
            .map(|(_, w)| w)
    }

    fn trans_id_in_use(&self, originator: &Endpoint, trans_id: u32) -> bool {
        self.by_originator
            .get(&originator.to_string())
            .is_some_and(|ops| ops.contains_key(&trans_id))
    }

    fn insert_subscription(&mut self, subscription: Subscription) {
        self.by_originator
            .entry(subscription.subscriber.clone())
            .or_default()
            .insert(
                subscription.trans_id,
                InProgress::Subscription(subscription.publisher.clone()),
            );
        self.subscriptions.insert(
            (
                subscription.publisher.clone(),
                subscription.subscriber.clone(),
            ),
            subscription,
        );
    }

    fn insert_watch(&mut self, watch: Watch) {
        self.by_originator
            .entry(watch.watcher.clone())
            .or_default()
            .insert(watch.trans_id, InProgress::Watch(watch.publisher.clone()));
        self.watches
            .insert((watch.publisher.clone(), watch.watcher.clone()), watch);
    }

    fn remove_subscription(&mut self, key: &Key) -> Option<Subscription> {
        let subscription = self.subscriptions.remove(key)?;
        self.forget(&subscription.subscriber, subscription.trans_id);
        Some(subscription)
    }

    fn remove_watch(&mut self, key: &Key) -> Option<Watch> {
        let watch = self.watches.remove(key)?;
        self.forget(&watch.watcher, watch.trans_id);
        Some(watch)
    }

    fn forget(&mut self, originator: &str, trans_id: u32) {
        if let Some(ops) = self.by_originator.get_mut(originator) {
            ops.remove(&trans_id);
            if ops.is_empty() {
                self.by_originator.remove(originator);
            }
        }
    }
}

/// The `publish` the service sends a subscriber (§4.4: the subscription's
/// transID, the service's time).
fn publish(
    publisher: &Endpoint,
    trans_id: u32,
    view: PresenceEntry,
    now_ms: u64,
) -> PresenceMessage {
    PresenceMessage::Publish(Box::new(Publish {
        publisher: publisher.clone(),
        trans_id,
        time_stamp: Timestamp::from_unix_millis(millis(now_ms)),
        presence: view,
    }))
}

/// The closed tuple an entry keeps when nothing else is left (a
/// `presence` has at least one tuple).
fn placeholder(user: &Endpoint, now_ms: u64) -> Tuple {
    let mut tuple = Tuple::new(
        format!("apex:{user}"),
        Timestamp::from_unix_millis(millis(now_ms)),
    );
    tuple.tuple_info = AUTOMATIC_TUPLE_INFO.to_owned();
    tuple
}

/// `lastUpdate` of a change at `now_ms`: later than the previous one, so
/// that two different states never carry the same stamp (RFC 3863
/// §4.1.7 for their PIDF form).
fn next_stamp(current: Option<&PresenceEntry>, now_ms: u64) -> Timestamp {
    let after = current.map_or(1, |e| e.last_update.unix_millis().saturating_add(1));
    Timestamp::from_unix_millis(millis(now_ms).max(after))
}

fn millis(now_ms: u64) -> i64 {
    i64::try_from(now_ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
