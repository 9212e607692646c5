//! The Debian package metadata (`[package.metadata.deb]` in
//! relay/Cargo.toml, built by scripts/package) without building a package:
//! every file it lists exists, the programs are the workspace's binaries,
//! every man page and unit is packaged, the configuration is a conffile
//! that `imxpd check-config` accepts, and the maintainer script creates the
//! user the service runs as.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn relay_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn root() -> PathBuf {
    relay_dir().parent().unwrap().to_owned()
}

fn toml_of(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn metadata() -> toml::Table {
    let manifest = toml_of(&relay_dir().join("Cargo.toml"));
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("relay/Cargo.toml has [package.metadata.deb]")
        .clone()
}

/// (source, destination) of every asset.
fn assets(deb: &toml::Table) -> Vec<(String, String)> {
    deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            (
                a[0].as_str().unwrap().to_owned(),
                a[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The installed path of an asset (a destination ending in `/` is a
/// directory that keeps the file's name).
fn installed(source: &str, destination: &str) -> String {
    if destination.ends_with('/') {
        let name = Path::new(source).file_name().unwrap().to_string_lossy();
        format!("/{destination}{name}")
    } else {
        format!("/{destination}")
    }
}

/// The names of the `[[bin]]` targets of the workspace's crates.
fn workspace_binaries() -> BTreeSet<String> {
    let workspace = toml_of(&root().join("Cargo.toml"));
    let mut bins = BTreeSet::new();
    for member in workspace["workspace"]["members"].as_array().unwrap() {
        let manifest = toml_of(&root().join(member.as_str().unwrap()).join("Cargo.toml"));
        for bin in manifest
            .get("bin")
            .and_then(|b| b.as_array())
            .into_iter()
            .flatten()
        {
            bins.insert(bin["name"].as_str().unwrap().to_owned());
        }
    }
    bins
}

#[test]
fn every_listed_file_exists_and_everything_shipped_is_listed() {
    let deb = metadata();
    let assets = assets(&deb);
    let binaries = workspace_binaries();
    let mut installed_paths = BTreeSet::new();
    for (source, destination) in &assets {
        if let Some(bin) = source.strip_prefix("target/release/") {
            assert!(
                binaries.contains(bin),
                "the package lists {source}, but no workspace crate has a binary {bin} ({binaries:?})"
            );
        } else {
            let path = relay_dir().join(source);
            assert!(
                path.is_file(),
                "the package lists {source}, which does not exist"
            );
        }
        installed_paths.insert(installed(source, destination));
    }
    for program in ["imxpd", "imxp-spool", "imxp"] {
        assert!(
            installed_paths.contains(&format!("/usr/bin/{program}")),
            "{program} is packaged"
        );
    }
    // Every man page, in the directory of its section.
    for entry in std::fs::read_dir(root().join("man")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let section = name.rsplit('.').next().unwrap();
        let wanted = format!("/usr/share/man/man{section}/{name}");
        assert!(
            installed_paths.contains(&wanted),
            "man/{name} is packaged as {wanted}"
        );
    }
    // Every systemd unit.
    for entry in std::fs::read_dir(root().join("dist")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".service") || name.ends_with(".socket") {
            let wanted = format!("/lib/systemd/system/{name}");
            assert!(
                installed_paths.contains(&wanted),
                "dist/{name} is packaged as {wanted}"
            );
        }
    }
    // The configuration is a conffile: dpkg keeps the operator's edits.
    let conffiles: Vec<&str> = deb["conf-files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(conffiles.contains(&"/etc/imxp/imxpd.toml"), "{conffiles:?}");
    for conffile in &conffiles {
        assert!(
            installed_paths.contains(*conffile),
            "conffile {conffile} is an asset"
        );
    }
    // The maintainer scripts exist and are executable.
    let scripts = relay_dir().join(deb["maintainer-scripts"].as_str().unwrap());
    for script in ["postinst", "prerm", "postrm"] {
        let path = scripts.join(script);
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions();
        use std::os::unix::fs::PermissionsExt as _;
        assert!(mode.mode() & 0o111 != 0, "{} is executable", path.display());
    }
}

#[test]
fn the_conffile_passes_check_config() {
    let deb = metadata();
    let (source, _) = assets(&deb)
        .into_iter()
        .find(|(source, destination)| installed(source, destination) == "/etc/imxp/imxpd.toml")
        .expect("an asset installs /etc/imxp/imxpd.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_imxpd"))
        .args(["check-config", "--config"])
        .arg(relay_dir().join(&source))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "imxpd check-config {source}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_postinst_creates_the_user_the_service_runs_as() {
    let unit = std::fs::read_to_string(root().join("dist/imxpd.service")).unwrap();
    let user = unit
        .lines()
        .find_map(|l| l.strip_prefix("User="))
        .expect("imxpd.service sets User= (DynamicUser= would need no user)");
    let group = unit
        .lines()
        .find_map(|l| l.strip_prefix("Group="))
        .unwrap_or(user);
    let deb = metadata();
    let postinst = std::fs::read_to_string(
        relay_dir()
            .join(deb["maintainer-scripts"].as_str().unwrap())
            .join("postinst"),
    )
    .unwrap();
    // Shell commands with their continuation lines joined.
    let commands: Vec<String> = postinst
        .replace("\\\n", " ")
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let creates_user = commands.iter().any(|c| {
        c.starts_with("adduser --system")
            && c.contains(&format!("--ingroup {group}"))
            && c.ends_with(&format!(" {user}"))
    });
    assert!(
        creates_user,
        "postinst creates the system user {user} in group {group}:\n{postinst}"
    );
    assert!(
        postinst.contains(&format!("addgroup --system --quiet {group}")),
        "postinst creates the group {group}"
    );
    // The shell syntax is valid.
    let out = Command::new("sh")
        .arg("-n")
        .arg(
            relay_dir()
                .join(deb["maintainer-scripts"].as_str().unwrap())
                .join("postinst"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
