//! RFC 3341 vectors: the access-service examples of §2 and §4.1
//! (`tests/vectors/rfc3341-*.txt`) parse and
//! round-trip; the §3.1 matching example and the §2.3 `all:none` example
//! (`tests/access-vectors/`, Appendix A.6) give the expected decisions.

mod common;

use common::{client_payload, dir};
use std::fs;
use std::path::PathBuf;

use imxp_apex::access::{
    AccessEntry, AccessMessage, Action, Actions, Actor, Rule, Source, Timestamp, select,
};
use imxp_apex::{Content, Endpoint, Operation, ReplyCode};

fn rfc3341_examples() -> Vec<(String, AccessMessage, Endpoint, Endpoint)> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir("vectors"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("rfc3341-")
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 13, "the 13 examples of RFC 3341 §2 and §4.1");
    names
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let payload = client_payload(&fs::read_to_string(&path).unwrap());
            let (data, content) = Operation::parse(&payload)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .into_data()
                .unwrap();
            let message =
                AccessMessage::from_content(&content).unwrap_or_else(|e| panic!("{name}: {e}"));
            let recipient = data.recipients[0].identity.clone();
            (name, message, data.originator.identity, recipient)
        })
        .collect()
}

#[test]
fn every_example_parses_and_round_trips() {
    for (name, message, originator, recipient) in rfc3341_examples() {
        let again = AccessMessage::parse(message.to_xml().as_bytes()).unwrap();
        assert_eq!(again, message, "{name}");
        // Wrapped in a data the way the service sends it, it reads back.
        let (data, content) = message.to_data(originator.clone(), recipient.clone());
        let parsed = Operation::parse(&data.to_payload(&content)).unwrap();
        let (data2, content2) = parsed.into_data().unwrap();
        assert_eq!(data2.originator.identity, originator, "{name}");
        assert!(matches!(content2, Content::Inline(_)));
        assert_eq!(
            AccessMessage::from_content(&content2).unwrap(),
            message,
            "{name}"
        );
        // Requests go to the service, everything else comes from it.
        let to_service = recipient.service_name() == Some("access");
        let from_service = originator.service_name() == Some("access");
        assert!(to_service != from_service, "{name}");
        match &message {
            AccessMessage::Query(_) | AccessMessage::Get(_) => assert!(to_service, "{name}"),
            AccessMessage::Allow { .. } | AccessMessage::Deny { .. } | AccessMessage::Reply(_) => {
                assert!(from_service, "{name}")
            }
            AccessMessage::Set(_) => {}
            other => panic!("{name}: {other:?} is not an RFC 3341 element"),
        }
    }
}

#[test]
fn example_values() {
    let examples = rfc3341_examples();
    let find = |prefix: &str| {
        examples
            .iter()
            .find(|(name, ..)| name.starts_with(prefix))
            .unwrap()
            .1
            .clone()
    };
    let AccessMessage::Query(query) = find("rfc3341-2.1-lines-175") else {
        panic!("query expected")
    };
    assert_eq!(query.owner.to_string(), "fred@example.com");
    assert_eq!(query.actor.to_string(), "barney@example.com");
    assert_eq!(query.actions.to_string(), "core:data presence:subscribe");
    assert_eq!(query.trans_id, 1);
    assert_eq!(
        find("rfc3341-2.1-lines-197"),
        AccessMessage::Allow { trans_id: 1 }
    );
    assert_eq!(
        find("rfc3341-2.1-lines-208"),
        AccessMessage::Deny { trans_id: 1 }
    );
    let AccessMessage::Get(get) = find("rfc3341-2.2-lines-237") else {
        panic!("get expected")
    };
    assert_eq!(get.actor.to_string(), "*@example.com");
    assert!(!get.actor.is_exact());
    // §2.3: the update carries the old lastUpdate, the notification a new
    // one; the deletion has no actions.
    let AccessMessage::Set(update) = find("rfc3341-2.3-lines-293") else {
        panic!("set expected")
    };
    let AccessMessage::Set(notified) = find("rfc3341-2.3-lines-352") else {
        panic!("set expected")
    };
    assert!(notified.entry.last_update > update.entry.last_update);
    let AccessMessage::Set(delete) = find("rfc3341-2.3-lines-376") else {
        panic!("set expected")
    };
    assert!(delete.entry.actions.is_none());
    assert_eq!(
        delete.entry.last_update,
        Some(Timestamp::parse("2000-05-14T21:02:00Z").unwrap())
    );
    let AccessMessage::Reply(reply) = find("rfc3341-2.3-lines-408") else {
        panic!("reply expected")
    };
    assert_eq!((reply.code, reply.trans_id), (ReplyCode::APEX_OK, Some(2)));
    // §4.1: both payload forms carry the same query.
    assert_eq!(find("rfc3341-4.1-lines-809"), find("rfc3341-4.1-lines-849"));
    assert_eq!(find("rfc3341-4.1-lines-809"), AccessMessage::Query(query));
}

/// The `<access …/>` elements of a vector file.
fn entries(file: &str) -> Vec<AccessEntry> {
    let text = fs::read_to_string(dir("access-vectors").join(file)).unwrap();
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("<access") {
        let end = start + rest[start..].find("/>").unwrap() + 2;
        out.push(AccessEntry::parse(&rest.as_bytes()[start..end]).unwrap());
        rest = &rest[end..];
    }
    out
}

fn rules_of(entries: &[AccessEntry], owner: &Endpoint) -> Vec<Rule> {
    entries
        .iter()
        .filter(|e| &e.owner == owner)
        .map(|e| Rule {
            actor: e.actor.clone(),
            actions: e.actions.clone().unwrap(),
        })
        .collect()
}

#[test]
fn section_3_1_worked_example() {
    let entries = entries("rfc3341-3.1-lines-653-691.txt");
    assert_eq!(entries.len(), 5);
    let table = fs::read_to_string(dir("access-vectors").join("rfc3341-3.1-decisions.md")).unwrap();
    let mut rows = 0;
    for line in table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| owner"))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let owner = Endpoint::parse(cells[1].split_whitespace().next().unwrap()).unwrap();
        let actor = Endpoint::parse(cells[2]).unwrap();
        let expected_source = if cells[3].starts_with("default") {
            Source::Default
        } else {
            Source::Explicit
        };
        let expected = Actions::parse(cells[4].split('→').next().unwrap()).unwrap();
        let selection = select(&owner, &rules_of(&entries, &owner), &[], &actor);
        assert_eq!(selection.rule.actions, expected, "{line}");
        assert_eq!(selection.source, expected_source, "{line}");
        rows += 1;
    }
    assert_eq!(rows, 10);
}

#[test]
fn section_2_3_deleting_widens_all_none_revokes() {
    let entries = entries("rfc3341-2.3-lines-455-476.txt");
    assert_eq!(entries.len(), 3);
    let fred = Endpoint::parse("fred@example.com").unwrap();
    let barney = Endpoint::parse("barney@example.com").unwrap();
    let data = Action::parse("core:data").unwrap();
    let watch = Action::parse("presence:watch").unwrap();
    let granted = |rules: &[Rule], action: &Action| {
        select(&fred, rules, &[], &barney)
            .rule
            .actions
            .grants(action)
    };
    let both = rules_of(&entries[..2], &fred);
    assert!(granted(&both, &data) && granted(&both, &watch));
    // Deleting barney's entry: *@example.com still lets him send data.
    let deleted = rules_of(&entries[1..2], &fred);
    assert!(granted(&deleted, &data) && !granted(&deleted, &watch));
    // Replacing it with all:none revokes everything.
    let revoked = rules_of(&entries[1..3], &fred);
    assert!(!granted(&revoked, &data) && !granted(&revoked, &watch));
}

#[test]
fn site_default_data_and_blocking() {
    let wilma = Endpoint::parse("wilma@example.com").unwrap();
    let fred = Endpoint::parse("fred@example.com").unwrap();
    let data = Action::parse("core:data").unwrap();
    let anyone = [Actor::parse("*@*").unwrap()];
    // RFC defaults alone: fred may not write to wilma; the site default
    // `*@*` lets him, until wilma blocks him explicitly.
    assert!(!select(&wilma, &[], &[], &fred).rule.actions.grants(&data));
    assert!(
        select(&wilma, &[], &anyone, &fred)
            .rule
            .actions
            .grants(&data)
    );
    let block = [Rule {
        actor: Actor::exact(&fred),
        actions: Actions::none(),
    }];
    assert!(
        !select(&wilma, &block, &anyone, &fred)
            .rule
            .actions
            .grants(&data)
    );
    // An explicit `*@*` entry overrides the site default too.
    let closed = [Rule {
        actor: Actor::anyone(),
        actions: Actions::none(),
    }];
    assert!(
        !select(&wilma, &closed, &anyone, &fred)
            .rule
            .actions
            .grants(&data)
    );
    // The site default never touches services' or the owner's defaults.
    let svc = Endpoint::parse("apex=presence@example.com").unwrap();
    assert_eq!(
        select(&wilma, &closed, &anyone, &svc).rule.actions,
        Actions::all()
    );
}
