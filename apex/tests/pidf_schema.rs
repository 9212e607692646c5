//! What imxp writes as PIDF is valid against the RFC 3863 §4.4 schema
//! (`tests/pidf/pidf.xsd`), checked with `xmllint` (Debian
//! `libxml2-utils`, which `scripts/test` installs). The RFC's own examples
//! validate too, and a document that breaks the schema does not, so the
//! check itself is known to work.

use std::path::{Path, PathBuf};
use std::process::Command;

use imxp_apex::access::Timestamp;
use imxp_apex::presence::pidf::{PidfDocument, data_uri_of_note};
use imxp_apex::presence::{Capability, PresenceEntry, Tuple};

fn pidf_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pidf")
}

/// Runs `xmllint --schema` on `file`; `Ok` if it validates, else its
/// complaint.
fn validate(file: &Path) -> Result<(), String> {
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(pidf_dir().join("pidf.xsd"))
        .arg(file)
        .output()
        .expect("xmllint runs (Debian package libxml2-utils; scripts/test installs it)");
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

fn entries() -> Vec<PresenceEntry> {
    let fred = "fred@example.com".parse().unwrap();
    let mut busy = Tuple::new("apex:fred/appl=im@example.com", ts("2030-01-01T00:00:00Z"));
    busy.tuple_info = data_uri_of_note("in a meeting <until 3> & \"busy\"");
    busy.capabilities.push(Capability {
        baseline: "urn:ietf:rfc:rfc2533".into(),
        text: "(type=text/plain)".into(),
    });
    let mut automatic = Tuple::new("apex:fred/appl=cli@example.com", ts("2001-01-01T00:00:00Z"));
    automatic.tuple_info = imxp_apex::presence::AUTOMATIC_TUPLE_INFO.into();
    vec![
        PresenceEntry::offline(&fred),
        PresenceEntry {
            publisher: fred.clone(),
            last_update: ts("2000-05-14T13:02:00-08:00"),
            publisher_info: "http://www.example.com/fred/".into(),
            tuples: vec![
                busy.clone(),
                Tuple::new(
                    "mailto:fred@flintstone.com",
                    ts("2525-12-31T23:59:59-08:00"),
                ),
                automatic,
                busy,
            ],
        },
        PresenceEntry {
            publisher: "fred/appl=im@example.com".parse().unwrap(),
            last_update: ts("2026-12-07T10:00:00.123Z"),
            publisher_info: data_uri_of_note("Je suis là"),
            tuples: vec![Tuple::new("tel:+09012345678", ts("2026-12-07T11:00:00Z"))],
        },
    ]
}

#[test]
fn what_imxp_writes_validates_against_the_rfc_schema() {
    let dir = tempfile::tempdir().unwrap();
    let now = ts("2026-12-07T10:30:00Z").unix_millis();
    for (i, entry) in entries().iter().enumerate() {
        let xml = PidfDocument::from_entry(entry, now).to_xml();
        let file = dir.path().join(format!("entry-{i}.xml"));
        std::fs::write(&file, &xml).unwrap();
        validate(&file).unwrap_or_else(|e| panic!("entry {i}:\n{xml}\n{e}"));
    }
}

#[test]
fn the_schema_check_accepts_the_rfc_examples_and_refuses_a_broken_document() {
    for example in std::fs::read_dir(pidf_dir()).unwrap() {
        let path = example.unwrap().path();
        if path.extension().is_some_and(|e| e == "xml") {
            validate(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.xml");
    std::fs::write(
        &broken,
        "<?xml version='1.0'?><presence xmlns='urn:ietf:params:xml:ns:pidf' \
         entity='pres:a@example.com'><tuple id='1x'><status><basic>maybe</basic>\
         </status></tuple></presence>",
    )
    .unwrap();
    assert!(
        validate(&broken).is_err(),
        "basic 'maybe' and id '1x' break the schema"
    );
}
