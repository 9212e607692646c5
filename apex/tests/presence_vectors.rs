//! RFC 3343 vectors: the presence-service examples of §2 and §4.1
//! (`tests/vectors/rfc3343-*.txt`) parse as presence messages and
//! round-trip, with the values the text gives; the one with the missing
//! `>` (erratum: §2.3, lines 374-381) is refused as malformed. The PIDF
//! examples of RFC 3863 §4.2.2–4.3.3 (`tests/pidf/`) read as documents and
//! convert to APEX entries.

mod common;

use common::{client_payload, dir};
use std::fs;
use std::path::PathBuf;

use imxp_apex::access::Timestamp;
use imxp_apex::presence::pidf::PidfDocument;
use imxp_apex::presence::{NotifyAction, PresenceEntry, PresenceMessage};
use imxp_apex::{Content, Operation};

fn examples() -> Vec<(String, Result<PresenceMessage, String>)> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir("vectors"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("rfc3343-")
        })
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 15, "the 15 examples of RFC 3343 §2 and §4.1");
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let payload = client_payload(&fs::read_to_string(&path).unwrap());
            let message = Operation::parse(&payload)
                .map_err(|e| e.to_string())
                .and_then(|op| op.into_data().ok_or_else(|| "not a data".to_owned()))
                .and_then(|(_, content)| {
                    PresenceMessage::from_content(&content).map_err(|e| e.to_string())
                });
            (name, message)
        })
        .collect()
}

fn find(prefix: &str) -> PresenceMessage {
    examples()
        .into_iter()
        .find(|(name, _)| name.starts_with(prefix))
        .unwrap()
        .1
        .unwrap()
}

#[test]
fn every_example_parses_and_round_trips_but_the_malformed_one() {
    for (name, message) in examples() {
        if name.starts_with("rfc3343-2.3-lines-374") {
            assert!(
                message.is_err(),
                "{name}: `<data-content Name='Content'` lacks its `>`"
            );
            continue;
        }
        let message = message.unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = PresenceMessage::parse(message.to_xml().as_bytes()).unwrap();
        assert_eq!(again, message, "{name}");
        let (data, content) = message.to_data(
            "apex=presence@example.com".parse().unwrap(),
            "fred@example.com".parse().unwrap(),
        );
        let (_, content2) = Operation::parse(&data.to_payload(&content))
            .unwrap()
            .into_data()
            .unwrap();
        assert!(matches!(content2, Content::Inline(_)));
        assert_eq!(
            PresenceMessage::from_content(&content2).unwrap(),
            message,
            "{name}"
        );
    }
}

#[test]
fn example_values() {
    let PresenceMessage::Publish(publish) = find("rfc3343-2.1-lines-146") else {
        panic!("publish expected")
    };
    assert_eq!(publish.publisher.to_string(), "fred@example.com");
    assert_eq!(publish.trans_id, 1);
    assert_eq!(
        publish.time_stamp,
        Timestamp::parse("2000-05-14T21:30:00Z").unwrap()
    );
    let entry = &publish.presence;
    assert_eq!(entry.publisher_info, "http://www.example.com/fred/");
    assert_eq!(entry.tuples.len(), 2);
    assert_eq!(entry.tuples[0].destination, "apex:fred/appl=im@example.com");
    assert_eq!(entry.tuples[1].destination, "mailto:fred@flintstone.com");
    let at = Timestamp::parse("2000-05-14T13:30:00-08:00")
        .unwrap()
        .unix_millis();
    assert!(entry.tuples[0].is_open(at) && entry.tuples[1].is_open(at));
    assert!(!entry.tuples[0].is_open(at + 3_600_000));

    let PresenceMessage::Subscribe(subscribe) = find("rfc3343-2.2-lines-211") else {
        panic!("subscribe expected")
    };
    assert_eq!(
        (
            subscribe.publisher.to_string(),
            subscribe.duration,
            subscribe.trans_id
        ),
        ("fred@example.com".to_owned(), 86_400, 100)
    );
    assert_eq!(
        find("rfc3343-2.2-lines-296"),
        PresenceMessage::Terminate { trans_id: 100 }
    );
    let PresenceMessage::Reply(reply) = find("rfc3343-2.2-lines-311") else {
        panic!("reply expected")
    };
    assert_eq!((reply.code.0, reply.trans_id), (250, Some(100)));
    let PresenceMessage::Watch(watch) = find("rfc3343-2.3-lines-355") else {
        panic!("watch expected")
    };
    assert_eq!((watch.duration, watch.trans_id), (86_400, 2));
    let PresenceMessage::Notify(notify) = find("rfc3343-2.3-lines-408") else {
        panic!("notify expected")
    };
    assert_eq!(notify.subscriber.to_string(), "wilma@example.com");
    assert_eq!(
        (notify.trans_id, notify.duration, notify.action),
        (2, 86_000, NotifyAction::Subscribe)
    );
    // §4.1: the same reply in both of its MIME forms.
    assert_eq!(find("rfc3343-4.1-lines-637"), find("rfc3343-4.1-lines-660"));
}

#[test]
fn malformed_elements_are_refused_with_the_attribute_named() {
    for (xml, needle) in [
        (
            "<subscribe publisher='fred@example.com' duration='-1' transID='1'/>",
            "duration",
        ),
        (
            "<subscribe publisher='fred' duration='1' transID='1'/>",
            "publisher",
        ),
        (
            "<watch publisher='fred@example.com' duration='1' transID='0'/>",
            "transID",
        ),
        (
            "<notify subscriber='w@example.com' transID='1' action='maybe'/>",
            "action",
        ),
        (
            "<publish publisher='fred@example.com' transID='1' timeStamp='yesterday'>\
             <presence publisher='fred@example.com' lastUpdate='2000-05-14T13:02:00Z'>\
             <tuple destination='x:y' availableUntil='2000-05-14T13:02:00Z'/></presence></publish>",
            "timeStamp",
        ),
        (
            "<publish publisher='fred@example.com' transID='1' timeStamp='2000-05-14T13:02:00Z'>\
             <presence publisher='fred@example.com' lastUpdate='2000-05-14T13:02:00Z'/></publish>",
            "tuple",
        ),
    ] {
        let error = PresenceMessage::parse(xml.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(error.contains(needle), "{xml}: {error}");
    }
}

#[test]
fn rfc3863_examples_read_as_pidf_and_convert() {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir("pidf"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    paths.sort();
    assert_eq!(
        paths.len(),
        6,
        "RFC 3863 §4.2.2 (two forms), §4.2.4, §4.3.1-4.3.3"
    );
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let document = PidfDocument::parse(&fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(document.entity, "pres:someone@example.com", "{name}");
        assert!(!document.tuples.is_empty(), "{name}");
        assert!(
            document.tuples.iter().all(|t| t.basic == Some(true)),
            "{name}"
        );
        let entry: PresenceEntry = document.to_entry(0).unwrap();
        assert_eq!(entry.publisher.to_string(), "someone@example.com");
        assert!(entry.is_open(1_000_000_000_000), "{name}");
        // Unknown extensions are ignored, never an error; what imxp writes
        // back reads as the same entry.
        let back = PidfDocument::from_entry(&entry, 0);
        assert_eq!(
            PidfDocument::parse(back.to_xml().as_bytes())
                .unwrap()
                .to_entry(0)
                .unwrap(),
            entry,
            "{name}"
        );
    }
    let busy =
        PidfDocument::parse(&fs::read(dir("pidf").join("rfc3863-4.3.1.xml")).unwrap()).unwrap();
    assert_eq!(busy.tuples[0].notes.len(), 2);
    assert_eq!(busy.tuples[0].notes[1].lang.as_deref(), Some("fr"));
    assert_eq!(busy.notes[0].text, "I'll be in Tokyo next week");
    let contact = busy.tuples[0].contact.as_ref().unwrap();
    assert_eq!(
        (contact.uri.as_str(), contact.priority.as_deref()),
        ("im:someone@mobilecarrier.net", Some("0.8"))
    );
    let entry = busy.to_entry(0).unwrap();
    assert_eq!(
        entry.tuples[0].destination,
        "apex:someone@mobilecarrier.net"
    );
    assert_eq!(
        entry.last_update,
        Timestamp::parse("2001-10-27T16:49:29Z").unwrap()
    );
}
