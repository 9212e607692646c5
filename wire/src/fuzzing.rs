//! Replaying fuzz corpora on stable: the loop the corpus tests of
//! `imxp-beep` and `imxp-apex` share. Only with the `fuzzing` feature.
//!
//! The fuzz workspace keeps, per target, its seeds and accumulated inputs in
//! `corpus/<target>/` and every input that once failed in
//! `regressions/<target>/`. Replaying them all through the target's entry
//! point in an ordinary test keeps past findings fixed without a nightly
//! toolchain.

use std::path::{Path, PathBuf};

/// The fewest corpus files a target must have: fewer means the seed corpus
/// is missing, and the replay would prove nothing.
pub const MIN_CORPUS: usize = 10;

/// Runs `target` on every file of `fuzz_dir/corpus/<name>/` and
/// `fuzz_dir/regressions/<name>/` (in name order; hidden files skipped).
///
/// # Panics
///
/// If the corpus has fewer than [`MIN_CORPUS`] files, or if `target`
/// panicked on any input; the message lists every such input.
pub fn replay(fuzz_dir: &Path, name: &str, target: fn(&[u8])) {
    let corpus = files(&fuzz_dir.join("corpus").join(name));
    assert!(
        corpus.len() >= MIN_CORPUS,
        "fuzz/corpus/{name} has {} files: the seed corpus is missing",
        corpus.len()
    );
    let regressions = files(&fuzz_dir.join("regressions").join(name));
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

/// The files of `dir`, sorted, without hidden ones; none if `dir` does not
/// exist.
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
