//! Replays the APEX fuzz corpora and saved regressions
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) through the
//! fuzzing entry points, so every seed and every past finding runs on
//! stable in CI.

use std::path::{Path, PathBuf};

use imxp_wire::fuzzing::replay;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn apex_xml_corpus() {
    replay(&fuzz_dir(), "apex_xml", imxp_apex::fuzzing::xml);
}

#[test]
fn apex_mime_corpus() {
    replay(&fuzz_dir(), "apex_mime", imxp_apex::fuzzing::mime);
}

#[test]
fn access_match_corpus() {
    replay(
        &fuzz_dir(),
        "access_match",
        imxp_apex::fuzzing::access_match,
    );
}
