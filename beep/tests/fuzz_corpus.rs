//! Replays the fuzz corpora and saved regressions (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzzing entry points, so every
//! seed and every past finding runs on stable in CI.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir` (sorted), or none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_file() && !is_hidden(path))
        .collect();
    files.sort();
    files
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.'))
}

/// Runs `target` on every corpus and regression file; fails listing the
/// files that panicked. The corpus must not be empty.
fn replay(name: &str, target: fn(&[u8])) {
    let corpus = files(&fuzz_dir().join("corpus").join(name));
    assert!(
        corpus.len() >= 10,
        "fuzz/corpus/{name} has {} files: the seed corpus is missing",
        corpus.len()
    );
    let regressions = files(&fuzz_dir().join("regressions").join(name));
    let mut failed = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("readable corpus file");
        if std::panic::catch_unwind(|| target(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{name}: {} of {} inputs panicked:\n{}",
        failed.len(),
        corpus.len() + regressions.len(),
        failed.join("\n")
    );
}

#[test]
fn beep_frame_corpus() {
    replay("beep_frame", imxp_beep::fuzzing::frame_decode);
}

#[test]
fn beep_session_corpus() {
    replay("beep_session", imxp_beep::fuzzing::session_input);
}
