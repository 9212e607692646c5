//! Replays the APEX fuzz corpora and saved regressions
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) through the
//! fuzzing entry points, so every seed and every past finding runs on
//! stable in CI.

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
        .filter(|path| {
            path.is_file()
                && !path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Runs `target` on every corpus and regression file; fails listing the
/// files that panicked. The corpus must hold at least the seeds.
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
fn apex_xml_corpus() {
    replay("apex_xml", imxp_apex::fuzzing::xml);
}

#[test]
fn apex_mime_corpus() {
    replay("apex_mime", imxp_apex::fuzzing::mime);
}

#[test]
fn access_match_corpus() {
    replay("access_match", imxp_apex::fuzzing::access_match);
}
