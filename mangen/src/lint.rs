//! Rendering a page with `groff -k -man -ww -z` (`-k`: the page is UTF-8,
//! as `man` reads it): every warning groff knows
//! (`-ww`), no output (`-z`). A page that renders without a message is
//! what `man -l` shows without surprises.

use std::path::Path;
use std::process::Command;

use crate::ManError;

/// Renders `page` with groff; its warnings (or errors) are an error.
pub fn lint(page: &Path) -> Result<(), ManError> {
    let output = Command::new("groff")
        .args(["-k", "-man", "-ww", "-z", "-t"])
        .arg(page)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .map_err(|source| ManError::Groff {
            path: page.to_owned(),
            source,
        })?;
    let warnings = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if output.status.success() && warnings.is_empty() {
        Ok(())
    } else {
        Err(ManError::Warnings {
            path: page.to_owned(),
            warnings: if warnings.is_empty() {
                format!("groff exited with {}", output.status)
            } else {
                warnings
            },
        })
    }
}
