//! Entry points shared by the cargo-fuzz targets in `fuzz/` and the corpus
//! replay test (`tests/fuzz_corpus.rs`), so CI runs the same checks on
//! stable. Each panics only when an invariant of this crate is broken.
//!
//! * [`xml`] — one XML document through every element parser (operations,
//!   replies, init forms, `statusResponse`, the access service's elements,
//!   `access`, bare `data`); whatever parses is written and parsed again to
//!   the same value.
//! * [`mime`] — a whole MSG payload (`application/beep+xml` or
//!   `multipart/related`): parsing by copy and by shared [`Bytes`] agree,
//!   tighter limits never accept what the defaults refuse, a parsed `data`
//!   written again parses to the same data and the same content octet for
//!   octet, and a content part survives [`MimePart::from_raw`].
//! * [`access_match`] — access-entry parsing and the RFC 3341 §3.1
//!   selection: deterministic, independent of entry order, an exact entry
//!   beats every wildcard, written forms parse back, ranks are consistent.

use bytes::Bytes;

use crate::access::{AccessEntry, AccessMessage, Actions, Actor, Rule, Source, Timestamp, select};
use crate::{Content, Data, Endpoint, Limits, MimePart, Operation, Response, StatusResponse};

/// Every element parser on `data`; round trips for what parses.
pub fn xml(data: &[u8]) {
    let limits = Limits::default();
    if let Ok(op) = Operation::from_xml(data, &limits) {
        let again = Operation::from_xml(op.to_xml().as_bytes(), &limits)
            .expect("a written operation parses");
        assert_eq!(again, op, "operation round trip");
    }
    if let Ok(op) = Operation::parse_init(data) {
        let again = Operation::parse_init(op.to_xml().as_bytes()).expect("written init parses");
        assert_eq!(again, op, "init round trip");
    }
    if let Ok(response) = Response::parse_init(data) {
        let again = Response::parse(&response.to_payload()).expect("written reply parses");
        assert_eq!(again, response, "response round trip");
    }
    if let Ok(status) = StatusResponse::parse(data) {
        let again = StatusResponse::parse(status.to_xml().as_bytes()).expect("written status");
        assert_eq!(again, status, "statusResponse round trip");
    }
    if let Ok(message) = AccessMessage::parse(data) {
        let again = AccessMessage::parse(message.to_xml().as_bytes()).expect("written access");
        assert_eq!(again, message, "access message round trip");
    }
    if let Ok(entry) = AccessEntry::parse(data) {
        let again = AccessEntry::parse(entry.to_xml().as_bytes()).expect("written entry parses");
        assert_eq!(again, entry, "access entry round trip");
    }
    if let Ok(parsed) = Data::from_xml(data, &limits) {
        let again = Data::from_xml(parsed.to_xml().as_bytes(), &limits).expect("written data");
        assert_eq!(again, parsed, "data round trip");
    }
    // The same document as a whole payload.
    let mut payload = crate::mime::BEEP_XML_HEADERS.to_vec();
    payload.extend_from_slice(data);
    mime(&payload);
}

/// A whole MSG payload through the MIME layer.
pub fn mime(data: &[u8]) {
    let limits = Limits::default();
    let copied = Operation::parse_with(data, &limits);
    let shared = Operation::parse_bytes(&Bytes::copy_from_slice(data), &limits);
    assert_eq!(copied, shared, "parse by copy and by Bytes differ");
    let tight = Limits::default()
        .with_max_payload(data.len().saturating_sub(1).max(1))
        .with_max_depth(4)
        .with_max_headers(2);
    if let Ok(tightly) = Operation::parse_with(data, &tight) {
        assert_eq!(
            Ok(&tightly),
            copied.as_ref(),
            "tighter limits accepted what the defaults refused or read it differently"
        );
    }
    let _ = Response::parse(data);
    let Ok(parsed) = copied else { return };
    match (&parsed.operation, &parsed.content) {
        (Operation::Data(data_op), Some(content)) => {
            let written = data_op.to_payload(content);
            let again = Operation::parse(&written).expect("a written data parses");
            let (data2, content2) = again.into_data().expect("still a data");
            assert_eq!(&content2, content, "content changed on the way through");
            assert_eq!(data2.originator, data_op.originator);
            assert_eq!(data2.recipients, data_op.recipients);
            assert_eq!(data2.options, data_op.options);
            if let Content::Part(part) = content {
                let raw = MimePart::from_raw(part.raw().clone()).expect("a found part re-reads");
                assert_eq!(&raw, part, "MimePart::from_raw differs");
                assert!(part.raw().ends_with(part.body()));
                assert_eq!(
                    part.header_block().len() + part.body().len(),
                    part.raw().len()
                );
            }
            if let Ok(message) = AccessMessage::from_content(content) {
                let again = AccessMessage::parse(message.to_xml().as_bytes()).expect("access");
                assert_eq!(again, message);
            }
        }
        (op, None) => {
            let again = Operation::from_xml(op.to_xml().as_bytes(), &limits).expect("written op");
            assert_eq!(&again, op);
        }
        (_, Some(_)) => panic!("content for an operation other than data"),
    }
}

/// Input: line 1 the owner, line 2 the address asked about, then one
/// entry per line as `actor actions…` (or `actor` alone for `all:none`).
/// Lines that do not parse are skipped, as are repeated actors (an owner
/// has one entry per actor). A line that parses as a timestamp is also
/// checked for the millisecond round trip.
pub fn access_match(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let (Some(owner), Some(address)) = (lines.next(), lines.next()) else {
        return;
    };
    for line in text.split('\n') {
        if let Ok(t) = Timestamp::parse(line.trim()) {
            let millis = t.unix_millis();
            let written = Timestamp::from_unix_millis(millis);
            let again = Timestamp::parse(written.as_str()).expect("written timestamp parses");
            assert_eq!(again.unix_millis(), millis, "timestamp round trip");
        }
    }
    let (Ok(owner), Ok(address)) = (
        Endpoint::parse(owner.trim()),
        Endpoint::parse(address.trim()),
    ) else {
        return;
    };
    let exact = Actor::exact(&address);
    assert_eq!(
        exact.matches(&address).map(|r| (r.domain, r.local)),
        Some((0, 0)),
        "an endpoint's exact actor matches it exactly"
    );
    assert_eq!(Actor::parse(&exact.to_string()).as_ref(), Ok(&exact));
    let mut rules: Vec<Rule> = Vec::new();
    let mut site: Vec<Actor> = Vec::new();
    for line in lines.take(64) {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        let site_default = first.starts_with('+');
        let Ok(actor) = Actor::parse(first.trim_start_matches('+')) else {
            continue;
        };
        // Written forms read back to the same pattern.
        let reread = Actor::parse(&actor.to_string()).expect("written actor parses");
        assert_eq!(reread.key(), actor.key());
        let by_key = Actor::parse(&actor.key()).expect("actor key parses");
        assert_eq!(by_key.key(), actor.key());
        if site_default {
            site.push(actor);
            continue;
        }
        let rest: Vec<&str> = words.collect();
        let actions = if rest.is_empty() {
            Actions::none()
        } else {
            match Actions::parse(&rest.join(" ")) {
                Ok(actions) => actions,
                Err(_) => continue,
            }
        };
        if rules.iter().any(|r| r.actor.key() == actor.key()) {
            continue;
        }
        let entry = AccessEntry::new(owner.clone(), actor.clone(), Some(actions.clone()));
        assert_eq!(
            AccessEntry::parse(entry.to_xml().as_bytes()).as_ref(),
            Ok(&entry),
            "access entry XML round trip"
        );
        rules.push(Rule { actor, actions });
    }
    let chosen = select(&owner, &rules, &site, &address);
    assert_eq!(
        chosen.rule.actor.matches(&address),
        Some(chosen.rank),
        "the selected rule matches with its rank"
    );
    assert_eq!(
        select(&owner, &rules, &site, &address),
        chosen,
        "deterministic"
    );
    let mut reversed = rules.clone();
    reversed.reverse();
    assert_eq!(
        select(&owner, &reversed, &site, &address),
        chosen,
        "independent of entry order"
    );
    // No explicit rule that matches beats the chosen one.
    for rule in &rules {
        if let Some(rank) = rule.actor.matches(&address) {
            assert!(rank >= chosen.rank, "a better match was passed over");
        }
    }
    // Exact entry beats wildcard.
    if let Some(rule) = rules.iter().find(|r| r.actor.key() == exact.key()) {
        assert_eq!(chosen.source, Source::Explicit);
        assert_eq!(chosen.rule.actions, rule.actions, "exact entry must win");
    }
}
