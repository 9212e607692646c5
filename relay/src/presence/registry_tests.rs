//! The registry's rules, case by case (RFC 3343 §4).

use super::*;
use std::collections::HashSet;
use std::time::Duration;

const T0: u64 = 1_000_000_000_000;

fn ep(text: &str) -> Endpoint {
    text.parse().unwrap()
}

fn settings() -> PresenceSettings {
    PresenceSettings {
        max_subscriptions_per_subscriber: 3,
        max_watchers_per_presentity: 2,
        max_publishes_per_minute: 5,
        max_subscribes_per_domain_per_minute: 100,
        max_entry_size: 4096,
        max_duration: Duration::from_secs(86_400),
    }
}

/// Grants `presence:subscribe` to the listed actors only (owners and
/// their own endpoints always).
struct Allowed(HashSet<&'static str>);

impl Grants for Allowed {
    fn grants(&self, publisher: &Endpoint, actor: &Endpoint, action: &str) -> bool {
        (actor.same_base(publisher) && !actor.is_service())
            || (action == "presence:subscribe" && self.0.contains(actor.to_string().as_str()))
    }
}

fn allowing(actors: &[&'static str]) -> Allowed {
    Allowed(actors.iter().copied().collect())
}

fn service() -> Endpoint {
    ep("apex=presence@example.com")
}

fn subscribe(publisher: &str, duration: u32, trans_id: u32) -> Subscribe {
    Subscribe {
        publisher: ep(publisher),
        duration,
        trans_id,
    }
}

fn reply_code(effects: &Effects) -> Option<u16> {
    match &effects.outgoing.first()?.message {
        PresenceMessage::Reply(reply) => Some(reply.code.0),
        _ => None,
    }
}

fn published(effects: &Effects, to: &str) -> Vec<PresenceEntry> {
    effects
        .outgoing
        .iter()
        .filter(|o| o.to.to_string() == to)
        .filter_map(|o| match &o.message {
            PresenceMessage::Publish(p) => Some(p.presence.clone()),
            _ => None,
        })
        .collect()
}

/// What `carry_out` does after queueing: records each update sent.
fn sent_all(registry: &mut Registry, effects: &Effects) {
    for (n, out) in effects.outgoing.iter().enumerate() {
        if let (Some(key), PresenceMessage::Publish(p)) = (&out.subscription, &out.message) {
            let id = DatagramId::from_bytes([u8::try_from(n).unwrap(); 16]);
            registry.sent(key, p.presence.last_update.as_str(), id, Vec::new());
        }
    }
}

/// fred publishes one open tuple, fetching lastUpdate first like a
/// client must (§4.4 step 5).
fn fred_online(registry: &mut Registry, grants: &dyn Grants, now: u64) -> Effects {
    let fred = ep("fred@example.com");
    let fetch = registry.subscribe(
        &service(),
        &fred,
        &subscribe("fred@example.com", 0, 9),
        grants,
        now,
    );
    let current = published(&fetch, "fred@example.com").remove(0);
    let mut entry = current;
    entry.tuples = vec![Tuple::new(
        "apex:fred/appl=im@example.com",
        Timestamp::from_unix_millis(i64::try_from(now).unwrap() + 3_600_000),
    )];
    let request = Publish {
        publisher: fred.clone(),
        trans_id: 1,
        time_stamp: Timestamp::from_unix_millis(i64::try_from(now).unwrap()),
        presence: entry,
    };
    registry.publish(&service(), &fred, &request, grants, now)
}

#[test]
fn subscribe_publish_terminate_follow_rfc3343() {
    let grants = allowing(&["wilma@example.com"]);
    let mut registry = Registry::new(settings());
    let wilma = ep("wilma@example.com");
    // §4.2 step 6.1: the entry at once; fred is offline.
    let first = registry.subscribe(
        &service(),
        &wilma,
        &subscribe("fred@example.com", 60, 100),
        &grants,
        T0,
    );
    assert_eq!(
        published(&first, "wilma@example.com"),
        vec![PresenceEntry::offline(&ep("fred@example.com"))]
    );
    assert_eq!(
        first.outgoing[0].subscription,
        Some(("fred@example.com".into(), "wilma@example.com".into()))
    );
    // §4.4: publish answers 250 and wilma gets the new entry.
    let online = fred_online(&mut registry, &grants, T0 + 1000);
    assert_eq!(reply_code(&online), Some(250));
    let update = published(&online, "wilma@example.com");
    assert_eq!(update.len(), 1);
    assert!(update[0].is_open(i64::try_from(T0).unwrap() + 2000));
    // §4.5: terminate ends it; a second terminate is 550.
    let ended = registry.terminate(&service(), &wilma, 100);
    assert_eq!(reply_code(&ended), Some(250));
    assert_eq!(registry.counts().1, 0);
    assert_eq!(
        reply_code(&registry.terminate(&service(), &wilma, 100)),
        Some(550)
    );
}

#[test]
fn publish_checks_in_rfc_order() {
    let grants = allowing(&[]);
    let mut registry = Registry::new(settings());
    let fred = ep("fred@example.com");
    let entry = PresenceEntry::offline(&fred);
    let mut request = Publish {
        publisher: ep("barney@example.com"),
        trans_id: 7,
        time_stamp: Timestamp::from_unix_millis(0),
        presence: entry,
    };
    let code = |r: &mut Registry, req: &Publish, from: &str| {
        reply_code(&r.publish(&service(), &ep(from), req, &grants, T0))
    };
    assert_eq!(code(&mut registry, &request, "fred@example.com"), Some(503));
    request.publisher = ep("fred@other.example");
    request.presence.publisher = ep("fred@other.example");
    assert_eq!(
        code(&mut registry, &request, "fred@other.example"),
        Some(553)
    );
    request.publisher = fred.clone();
    request.presence.publisher = fred;
    assert_eq!(
        code(&mut registry, &request, "barney@example.com"),
        Some(537)
    );
    // The offline entry's lastUpdate (the epoch) matches a new entry.
    assert_eq!(
        code(&mut registry, &request, "fred/appl=im@example.com"),
        Some(250)
    );
    // The same lastUpdate again is stale now.
    assert_eq!(code(&mut registry, &request, "fred@example.com"), Some(555));
}

#[test]
fn a_blocked_subscriber_sees_exactly_what_an_allowed_one_sees_of_an_offline_presentity() {
    let wilma = ep("wilma@example.com");
    // Blocked, fred online.
    let blocked = allowing(&[]);
    let mut online = Registry::new(settings());
    fred_online(&mut online, &blocked, T0);
    let seen_blocked = online.subscribe(
        &service(),
        &wilma,
        &subscribe("fred@example.com", 60, 5),
        &blocked,
        T0 + 10,
    );
    // Allowed, fred offline (never published).
    let allowed = allowing(&["wilma@example.com"]);
    let mut offline = Registry::new(settings());
    let seen_offline = offline.subscribe(
        &service(),
        &wilma,
        &subscribe("fred@example.com", 60, 5),
        &allowed,
        T0 + 10,
    );
    assert_eq!(seen_blocked.outgoing, seen_offline.outgoing);
    assert_eq!(seen_blocked.changes, seen_offline.changes);
    // A change of fred's sends the blocked subscriber nothing, as it
    // sends nothing to anyone while fred stays offline.
    let later = fred_online(&mut online, &blocked, T0 + 20);
    assert!(published(&later, "wilma@example.com").is_empty());
}

#[test]
fn watchers_hear_of_subscribers_and_their_end() {
    let grants = allowing(&["wilma@example.com", "barney@example.com"]);
    let mut registry = Registry::new(settings());
    let fred = ep("fred@example.com");
    let wilma = ep("wilma@example.com");
    registry.subscribe(
        &service(),
        &wilma,
        &subscribe("fred@example.com", 60, 100),
        &grants,
        T0,
    );
    // Only the owner may watch by default.
    let refused = registry.watch(
        &service(),
        &ep("barney@example.com"),
        &subscribe("fred@example.com", 60, 1),
        &grants,
        T0,
    );
    assert_eq!(reply_code(&refused), Some(537));
    let watch = registry.watch(
        &service(),
        &fred,
        &subscribe("fred@example.com", 60, 2),
        &grants,
        T0,
    );
    assert_eq!(reply_code(&watch), Some(250));
    let PresenceMessage::Notify(notify) = &watch.outgoing[1].message else {
        panic!("notify expected")
    };
    assert_eq!(
        (
            notify.subscriber.to_string(),
            notify.trans_id,
            notify.action
        ),
        ("wilma@example.com".into(), 2, NotifyAction::Subscribe)
    );
    // A new subscriber and an ending one are notified.
    let barney = registry.subscribe(
        &service(),
        &ep("barney@example.com"),
        &subscribe("fred@example.com", 30, 3),
        &grants,
        T0 + 1,
    );
    assert!(
        barney.outgoing.iter().any(|o| o.to == fred
            && matches!(&o.message, PresenceMessage::Notify(n) if n.duration == 30))
    );
    let ended = registry.terminate(&service(), &wilma, 100);
    assert!(ended.outgoing.iter().any(|o| o.to == fred && matches!(&o.message, PresenceMessage::Notify(n) if n.action == NotifyAction::Terminate)));
    // The transID of the watch is in use for fred.
    let clash = registry.subscribe(
        &service(),
        &fred,
        &subscribe("fred@example.com", 60, 2),
        &grants,
        T0 + 2,
    );
    assert_eq!(reply_code(&clash), Some(555));
}

#[test]
fn expiry_terminates_and_polls_are_not_kept() {
    let grants = allowing(&["wilma@example.com"]);
    let mut registry = Registry::new(settings());
    let wilma = ep("wilma@example.com");
    registry.subscribe(
        &service(),
        &wilma,
        &subscribe("fred@example.com", 0, 1),
        &grants,
        T0,
    );
    assert_eq!(registry.counts().1, 0, "duration 0 is a poll");
    registry.subscribe(
        &service(),
        &wilma,
        &subscribe("fred@example.com", 10, 2),
        &grants,
        T0,
    );
    assert_eq!(registry.next_expiry(), Some(T0 + 10_000));
    assert!(registry.expire(T0 + 9_999).outgoing.is_empty());
    let expired = registry.expire(T0 + 10_000);
    assert_eq!(
        expired.outgoing[0].message,
        PresenceMessage::Terminate { trans_id: 2 }
    );
    assert_eq!(
        expired.changes,
        vec![Change::EndSubscription((
            "fred@example.com".into(),
            "wilma@example.com".into()
        ))]
    );
    assert_eq!(registry.next_expiry(), None);
}

#[test]
fn a_second_subscribe_replaces_the_first_and_limits_hold() {
    let grants = allowing(&["wilma@example.com"]);
    let mut registry = Registry::new(settings());
    let wilma = ep("wilma@example.com");
    registry.subscribe(
        &service(),
        &wilma,
        &subscribe("fred@example.com", 60, 1),
        &grants,
        T0,
    );
    let again = registry.subscribe(
        &service(),
        &wilma,
        &subscribe("fred@example.com", 60, 2),
        &grants,
        T0,
    );
    assert!(again.changes.contains(&Change::EndSubscription((
        "fred@example.com".into(),
        "wilma@example.com".into()
    ))));
    assert_eq!(registry.counts().1, 1);
    // The old transID is free again, the new one is in use.
    assert_eq!(
        reply_code(&registry.terminate(&service(), &wilma, 1)),
        Some(550)
    );
    for (n, who) in ["a", "b"].iter().enumerate() {
        registry.subscribe(
            &service(),
            &wilma,
            &subscribe(&format!("{who}@example.com"), 60, 10 + n as u32),
            &grants,
            T0,
        );
    }
    let over = registry.subscribe(
        &service(),
        &wilma,
        &subscribe("c@example.com", 60, 20),
        &grants,
        T0,
    );
    assert_eq!(
        reply_code(&over),
        Some(550),
        "three subscriptions is the limit"
    );
    // Durations beyond the most allowed are shortened.
    registry.subscribe(
        &service(),
        &ep("x@example.com"),
        &subscribe("fred@example.com", 999_999, 1),
        &grants,
        T0,
    );
    assert_eq!(
        registry
            .subscription(&("fred@example.com".into(), "x@example.com".into()))
            .unwrap()
            .duration,
        86_400
    );
}

#[test]
fn attachments_open_and_close_automatic_tuples_next_to_published_ones() {
    let grants = allowing(&["wilma@example.com"]);
    let mut registry = Registry::new(settings());
    let wilma = ep("wilma@example.com");
    registry.subscribe(
        &service(),
        &wilma,
        &subscribe("fred@example.com", 600, 1),
        &grants,
        T0,
    );
    let im = ep("fred/appl=im@example.com");
    let attached = registry.attachment(&im, true, &grants, T0 + 1);
    let seen = published(&attached, "wilma@example.com");
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0]
            .tuples
            .iter()
            .any(|t| t.is_automatic() && t.destination == "apex:fred/appl=im@example.com")
    );
    // Attaching again changes nothing and sends nothing.
    assert!(
        registry
            .attachment(&im, true, &grants, T0 + 2)
            .outgoing
            .is_empty()
    );
    // A publish keeps the automatic tuple beside its own.
    let published_now = fred_online(&mut registry, &grants, T0 + 3);
    let entry = &published(&published_now, "wilma@example.com")[0];
    assert_eq!(entry.tuples.len(), 2, "{entry:?}");
    // Detached: the automatic tuple goes, the published one stays.
    let detached = registry.attachment(&im, false, &grants, T0 + 4);
    let entry = &published(&detached, "wilma@example.com")[0];
    assert!(entry.tuples.iter().all(|t| !t.is_automatic()));
    // At a restart every automatic tuple goes.
    registry.attachment(&ep("fred/appl=cli@example.com"), true, &grants, T0 + 5);
    let restart = registry.detach_all(&grants, T0 + 6);
    assert!(!restart.changes.is_empty());
    assert!(registry.detach_all(&grants, T0 + 7).changes.is_empty());
}

#[test]
fn an_attachment_alone_makes_the_user_online_and_offline() {
    let grants = allowing(&["wilma@example.com"]);
    let mut registry = Registry::new(settings());
    let wilma = ep("wilma@example.com");
    registry.subscribe(
        &service(),
        &wilma,
        &subscribe("fred@example.com", 600, 1),
        &grants,
        T0,
    );
    let on = registry.attachment(&ep("fred@example.com"), true, &grants, T0 + 1);
    assert!(published(&on, "wilma@example.com")[0].is_open(i64::try_from(T0).unwrap() + 2));
    sent_all(&mut registry, &on);
    let off = registry.attachment(&ep("fred@example.com"), false, &grants, T0 + 2);
    assert_eq!(
        published(&off, "wilma@example.com"),
        vec![PresenceEntry::offline(&ep("fred@example.com"))]
    );
    // The owner sees the real, closed entry.
    let own = registry.view(
        &ep("fred@example.com"),
        &ep("fred/x@example.com"),
        &grants,
        T0 + 3,
    );
    assert_eq!(own.tuples.len(), 1);
    assert!(!own.is_open(i64::try_from(T0).unwrap() + 3));
    assert_ne!(own.last_update, Timestamp::from_unix_millis(0));
}

#[test]
fn stamps_always_move_forward() {
    let fred = ep("fred@example.com");
    let mut entry = PresenceEntry::offline(&fred);
    entry.last_update = Timestamp::from_unix_millis(5_000);
    assert_eq!(next_stamp(Some(&entry), 1_000).unix_millis(), 5_001);
    assert_eq!(next_stamp(Some(&entry), 9_000).unix_millis(), 9_000);
    assert_eq!(next_stamp(None, 0).unix_millis(), 1);
}

#[test]
fn publish_rate_is_limited_per_publisher() {
    let grants = allowing(&[]);
    let mut registry = Registry::new(settings());
    let mut codes = Vec::new();
    for n in 0..7 {
        codes.push(reply_code(&fred_online(&mut registry, &grants, T0 + n)));
    }
    assert_eq!(codes[..5], [Some(250); 5]);
    assert_eq!(codes[5], Some(450));
    assert_eq!(
        reply_code(&fred_online(&mut registry, &grants, T0 + 60_000)),
        Some(250)
    );
}

#[test]
fn one_domains_flood_of_subscribes_leaves_others_alone() {
    let mut registry = Registry::new(settings());
    let mut flood = 0;
    while registry.admit_subscribe("flood.example", T0) {
        flood += 1;
    }
    assert_eq!(flood, 100, "the per-domain limit of this minute");
    assert!(
        registry.admit_subscribe("quiet.example", T0),
        "another domain is still served"
    );
    assert!(
        registry.admit_subscribe("flood.example", T0 + 60_000),
        "the next minute"
    );
}
