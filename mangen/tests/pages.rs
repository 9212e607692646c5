//! Every page in `man/` renders with `groff -man -ww` without a warning,
//! and the set of pages is the one the project ships (the Debian package
//! installs these files).

use imxp_mangen::{lint, man_dir};

/// The pages, as the package metadata lists them.
const PAGES: [&str; 5] = [
    "imxp.1",
    "imxpd.toml.5",
    "imxp.7",
    "imxpd.8",
    "imxp-spool.8",
];

#[test]
fn every_page_renders_without_warnings() {
    let mut found: Vec<String> = std::fs::read_dir(man_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut expected: Vec<String> = PAGES.iter().map(|p| (*p).to_owned()).collect();
    expected.sort();
    assert_eq!(found, expected, "man/ holds exactly the shipped pages");
    let problems: Vec<String> = PAGES
        .iter()
        .filter_map(|page| lint(&man_dir().join(page)).err())
        .map(|e| e.to_string())
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn lint_reports_what_groff_warns_about() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.1");
    std::fs::write(&page, ".TH BAD 1\n.SH NAME\nbad \\- a page\n.XY what\n").unwrap();
    let err = lint(&page).unwrap_err().to_string();
    assert!(err.contains("bad.1") && err.contains("XY"), "{err}");
    let good = dir.path().join("good.1");
    std::fs::write(&good, ".TH GOOD 1\n.SH NAME\ngood \\- a page\n").unwrap();
    lint(&good).unwrap();
}
