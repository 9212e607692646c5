//! The generated parts of imxp's man pages.
//!
//! Each page in `man/` at the repository root is one committed roff file,
//! written by hand, with blocks that are generated from a program's clap
//! definitions so that they cannot drift from the program:
//!
//! ```text
//! .SH SYNOPSIS
//! .\" BEGIN GENERATED imxpd synopsis: scripts/man rewrites this block
//! …
//! .\" END GENERATED imxpd synopsis
//! ```
//!
//! [`reference()`] renders the blocks of a command (synopsis, options,
//! commands) with `clap_mangen`; [`splice`]
//! puts them into a page's text; [`sync`] checks a page on disk (the tests)
//! or rewrites it (`IMXP_UPDATE_MAN=1`, which `scripts/man` sets); [`lint`]
//! runs the page through `groff -man -ww -z`.
//!
//! # Layout
//!
//! - `reference`: clap command → roff blocks.
//! - `splice`: the markers, and replacing what is between them.
//! - `lint`: rendering a page with groff and collecting its warnings.

mod lint;
mod reference;
mod splice;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use lint::lint;
pub use reference::{Block, reference};
pub use splice::{Spliced, splice};

/// The command that regenerates every generated block of every page.
pub const REGENERATE: &str = "scripts/man";

/// The environment variable that makes [`sync`] rewrite pages instead of
/// checking them.
pub const UPDATE_VAR: &str = "IMXP_UPDATE_MAN";

/// `man/` at the repository root.
pub fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("man"), |root| root.join("man"))
}

/// What went wrong with a page.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ManError {
    /// The page could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The page.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A block's markers are missing, doubled or out of order.
    #[error("{path}: {message}")]
    Markers {
        /// The page.
        path: PathBuf,
        /// Which marker and what is wrong with it.
        message: String,
    },
    /// A generated block differs from what the program's definitions give.
    #[error(
        "{path}: the generated block(s) {blocks} are stale; run `{REGENERATE}` \
         (or `{UPDATE_VAR}=1 cargo test … man_page`) and commit the result"
    )]
    Stale {
        /// The page.
        path: PathBuf,
        /// The names of the stale blocks.
        blocks: String,
    },
    /// Rendering the clap command failed.
    #[error("rendering {command}: {source}")]
    Render {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// groff could not be run.
    #[error("running groff on {path} (install the Debian package groff-base): {source}")]
    Groff {
        /// The page.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// groff warned about the page.
    #[error("{path}: groff -man -ww -z warns:\n{warnings}")]
    Warnings {
        /// The page.
        path: PathBuf,
        /// groff's messages.
        warnings: String,
    },
}

/// Whether [`sync`] checks or rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Fail with [`ManError::Stale`] when a block differs.
    Check,
    /// Rewrite the page's stale blocks.
    Update,
}

impl Mode {
    /// [`Mode::Update`] when `IMXP_UPDATE_MAN=1`, else [`Mode::Check`].
    pub fn from_env() -> Self {
        match std::env::var(UPDATE_VAR).as_deref() {
            Ok("1") => Self::Update,
            _ => Self::Check,
        }
    }
}

/// Brings the generated `blocks` of the page `path` up to date: checks
/// them ([`Mode::Check`]) or rewrites the page ([`Mode::Update`]).
pub fn sync(path: &Path, blocks: &[Block], mode: Mode) -> Result<(), ManError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManError::Io {
        path: path.to_owned(),
        source,
    })?;
    let spliced = splice(&text, blocks).map_err(|message| ManError::Markers {
        path: path.to_owned(),
        message,
    })?;
    if spliced.stale.is_empty() {
        return Ok(());
    }
    match mode {
        Mode::Check => Err(ManError::Stale {
            path: path.to_owned(),
            blocks: spliced.stale.join(", "),
        }),
        Mode::Update => std::fs::write(path, spliced.text).map_err(|source| ManError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The test every program's page runs: the generated blocks of `commands`
/// in `man/PAGE` are current (or, with `IMXP_UPDATE_MAN=1`, made so).
pub fn check_page(
    page: &str,
    commands: impl IntoIterator<Item = clap::Command>,
) -> Result<(), ManError> {
    let mut blocks = Vec::new();
    for command in commands {
        blocks.extend(reference(command)?);
    }
    sync(&man_dir().join(page), &blocks, Mode::from_env())
}
