//! The relay's module graph has layers (docs/architecture.md, "Layers"):
//! no module of `relay/src` uses one above it. This test reads the sources
//! the way a reviewer would — every `crate::…` (and, inside `listen/`,
//! `super::…`) path outside comments and test modules — and fails naming
//! the file and the path that points upwards, or a module missing from
//! the list below.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Modules from the bottom up: each may use only those before it.
const LAYERS: &[&str] = &[
    "config",
    "metrics",
    "trail",
    "notify",
    "activation",
    "route",
    "auth",
    "tls",
    "refusal",
    "identity",
    "datagram",
    "options",
    "xmpp",
    "attachments",
    "hold",
    "access",
    "presence",
    "intake",
    "context",
    "access::service",
    "presence::service",
    "report",
    "outbound",
    "gateway",
    "deliver",
    "qmgr",
    "listen::admission",
    "listen::session",
    "listen::edge",
    "listen::mesh",
    "listen",
    "server",
];

/// Directories whose files are one module to the outside (their inner
/// `super::` paths are their own business), except those named in
/// [`LAYERS`] with a `::`.
const PACKAGES: &[&str] = &[
    "config", "metrics", "route", "auth", "access", "presence", "listen", "xmpp",
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|m| *m == module)
}

/// The module a source file is, as [`LAYERS`] names it.
fn module_of(relative: &Path) -> Option<String> {
    let parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    match parts.as_slice() {
        [file] if file == "lib" || file == "main" => None,
        [file] => Some(file.clone()),
        [dir, file] if (dir == "access" || dir == "presence") && file == "service" => {
            Some(format!("{dir}::service"))
        }
        [dir, file] if dir == "listen" && file != "mod" => Some(format!("listen::{file}")),
        [dir, ..] if PACKAGES.contains(&dir.as_str()) => Some(dir.clone()),
        _ => None,
    }
}

/// The module a path names, if it is one of ours.
fn target_of(path: &str, module: &str) -> Option<String> {
    let (first, rest) = if let Some(rest) = path.strip_prefix("crate::") {
        let mut parts = rest.split("::");
        (parts.next()?.to_owned(), parts.next().map(str::to_owned))
    } else if let Some(rest) = path.strip_prefix("super::") {
        // Only listen/ files are separate layers inside a package.
        if !module.starts_with("listen::") {
            return None;
        }
        let name = rest.split("::").next()?;
        return Some(format!("listen::{name}"));
    } else {
        return None;
    };
    let second = rest.unwrap_or_default();
    Some(match first.as_str() {
        "access" if second == "service" => "access::service".into(),
        "listen" if rank(&format!("listen::{second}")).is_some() => format!("listen::{second}"),
        _ => first,
    })
}

/// Paths starting with `crate::` or `super::` in the code of `source`
/// (comments and `#[cfg(test)]` modules left out). A `use` with braces
/// (`use crate::{a, b::c}`) is expanded.
fn paths(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let code = code.split("//").next().unwrap_or_default();
        for prefix in ["crate::", "super::"] {
            let mut rest = code;
            while let Some(at) = rest.find(prefix) {
                let after = &rest[at + prefix.len()..];
                if let Some(group) = after.strip_prefix('{') {
                    let group = group.split('}').next().unwrap_or_default();
                    for item in group.split(',') {
                        let item = item.trim();
                        if !item.is_empty() {
                            out.push(format!("{prefix}{item}"));
                        }
                    }
                } else {
                    let end = after
                        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                        .unwrap_or(after.len());
                    out.push(format!("{prefix}{}", &after[..end]));
                }
                rest = &rest[at + prefix.len()..];
            }
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src").to_owned();
        let Some(module) = module_of(&relative) else {
            continue;
        };
        let Some(own) = rank(&module) else {
            if !relative.starts_with("bin") {
                problems.push(format!(
                    "{}: module {module} is in no layer",
                    relative.display()
                ));
            }
            continue;
        };
        seen.insert(module.clone(), relative.clone());
        let source = std::fs::read_to_string(&file).expect("read source");
        for path in paths(&source) {
            let Some(target) = target_of(&path, &module) else {
                continue;
            };
            if target == module {
                continue;
            }
            match rank(&target) {
                Some(theirs) if theirs < own => {}
                Some(_) => problems.push(format!(
                    "{}: {module} uses {path}, which is not below it",
                    relative.display()
                )),
                None => problems.push(format!(
                    "{}: {path} names a module in no layer",
                    relative.display()
                )),
            }
        }
    }
    assert!(seen.len() > 20, "the test found too few modules: {seen:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reader_finds_paths_in_code_only() {
    let found = paths(
        "use crate::{a, b::c};\n// crate::comment\nfn f() { crate::d::e(); }\n#[cfg(test)]\nuse crate::z;",
    );
    assert_eq!(found, ["crate::a", "crate::b::c", "crate::d::e"]);
}
