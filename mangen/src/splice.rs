//! The markers around a generated block, and replacing what is between
//! them. A marker is a roff comment line, so a page renders the same with
//! or without them.

use crate::reference::Block;

/// A page's text with its generated blocks replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spliced {
    /// The new text.
    pub text: String,
    /// The names of the blocks whose content changed.
    pub stale: Vec<String>,
}

fn begin(name: &str) -> String {
    format!(
        ".\\\" BEGIN GENERATED {name}: {} rewrites this block",
        crate::REGENERATE
    )
}

fn end(name: &str) -> String {
    format!(".\\\" END GENERATED {name}")
}

/// Replaces each block of `blocks` in `page` (every block must be present
/// once, between its two markers). Errors name the marker that is missing,
/// doubled or out of order.
pub fn splice(page: &str, blocks: &[Block]) -> Result<Spliced, String> {
    let mut text = page.to_owned();
    let mut stale = Vec::new();
    for block in blocks {
        let (begin, end) = (begin(&block.name), end(&block.name));
        let start = unique_line(&text, &begin)?;
        let stop = unique_line(&text, &end)?;
        let inner_start = start + begin.len() + 1;
        if stop < inner_start {
            return Err(format!("the line {end:?} comes before {begin:?}"));
        }
        let mut wanted = block.text.clone();
        if !wanted.is_empty() && !wanted.ends_with('\n') {
            wanted.push('\n');
        }
        if text[inner_start..stop] != wanted {
            stale.push(block.name.clone());
            text.replace_range(inner_start..stop, &wanted);
        }
    }
    Ok(Spliced { text, stale })
}

/// The offset of the one line that is exactly `line`.
fn unique_line(text: &str, line: &str) -> Result<usize, String> {
    let mut found = None;
    let mut offset = 0;
    for l in text.split_inclusive('\n') {
        if l.trim_end_matches('\n') == line {
            if found.is_some() {
                return Err(format!("the line {line:?} appears more than once"));
            }
            found = Some(offset);
        }
        offset += l.len();
    }
    found.ok_or_else(|| format!("the marker line {line:?} is missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(inner: &str) -> String {
        format!(
            ".TH X 1\n.SH SYNOPSIS\n{}\n{inner}{}\n.SH MORE\n",
            begin("x synopsis"),
            end("x synopsis")
        )
    }

    fn block(name: &str, text: &str) -> Block {
        Block {
            name: name.to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn replaces_only_what_differs() {
        let blocks = [block("x synopsis", ".B x\n")];
        let same = splice(&page(".B x\n"), &blocks).unwrap();
        assert!(same.stale.is_empty());
        assert_eq!(same.text, page(".B x\n"));
        let changed = splice(&page(".B old\n"), &blocks).unwrap();
        assert_eq!(changed.stale, ["x synopsis"]);
        assert_eq!(changed.text, page(".B x\n"));
        let empty = splice(&page(""), &blocks).unwrap();
        assert_eq!(empty.text, page(".B x\n"));
    }

    #[test]
    fn names_a_missing_or_doubled_marker() {
        let blocks = [block("x options", "")];
        let err = splice(&page(""), &blocks).unwrap_err();
        assert!(err.contains("BEGIN GENERATED x options"), "{err}");
        let doubled = format!("{}{}", page(""), page(""));
        let err = splice(&doubled, &[block("x synopsis", "")]).unwrap_err();
        assert!(err.contains("more than once"), "{err}");
        let reversed = format!("{}\n{}\n", end("x synopsis"), begin("x synopsis"));
        let err = splice(&reversed, &[block("x synopsis", "")]).unwrap_err();
        assert!(err.contains("comes before"), "{err}");
    }
}
