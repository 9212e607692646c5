//! Replays the fuzz corpora and saved regressions (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzzing entry points, so every
//! seed and every past finding runs on stable in CI.

use std::path::{Path, PathBuf};

use imxp_wire::fuzzing::replay;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn beep_frame_corpus() {
    replay(&fuzz_dir(), "beep_frame", imxp_beep::fuzzing::frame_decode);
}

#[test]
fn beep_session_corpus() {
    replay(
        &fuzz_dir(),
        "beep_session",
        imxp_beep::fuzzing::session_input,
    );
}
