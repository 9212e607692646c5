//! A clap command rendered as the generated blocks of its man page:
//! the synopsis, the options, and one subsection per command.

use clap::Command;
use clap_mangen::Man;

use crate::ManError;

/// A generated block of a page: its name in the markers and its roff text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// `PROGRAM synopsis`, `PROGRAM options` or `PROGRAM commands`.
    pub name: String,
    /// The roff text between the markers.
    pub text: String,
}

/// The three blocks of `command`'s page, named after the command (so one
/// page can hold the blocks of several commands, e.g. `imxp` and
/// `imxp keys`):
///
/// * `NAME synopsis`: the program's usage line, then one per command;
/// * `NAME options`: the program's own (global) options;
/// * `NAME commands`: one subsection per command with its usage,
///   description, options and arguments (global options are in
///   `NAME options`).
///
/// Hidden commands and arguments are left out; `help` is neither a command
/// nor an option of a command.
pub fn reference(command: Command) -> Result<Vec<Block>, ManError> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let name = command.get_name().to_owned();
    let render = |what: &str, f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut out = Vec::new();
        f(&mut out).map_err(|source| ManError::Render {
            command: what.to_owned(),
            source,
        })?;
        Ok::<_, ManError>(without_headings(&String::from_utf8_lossy(&out)))
    };
    let leaves = leaves(&command);

    let top = Man::new(command.clone());
    let mut synopsis = PREAMBLE.join("\n") + "\n";
    synopsis.push_str(&render(&name, &|w| top.render_synopsis_section(w))?);
    for leaf in &leaves {
        let man = Man::new(own_arguments(leaf.clone()));
        synopsis.push_str(".br\n");
        synopsis.push_str(&render(leaf_name(leaf), &|w| {
            man.render_synopsis_section(w)
        })?);
    }

    let options = render(&name, &|w| top.render_options_section(w))?;

    let mut commands = String::new();
    for leaf in &leaves {
        let title = leaf_name(leaf);
        let man = Man::new(own_arguments(leaf.clone()));
        commands.push_str(&format!(".SS \"{title}\"\n"));
        commands.push_str(&render(title, &|w| man.render_synopsis_section(w))?);
        commands.push_str(".PP\n");
        commands.push_str(&render(title, &|w| man.render_description_section(w))?);
        if own_arguments(leaf.clone())
            .get_arguments()
            .any(|a| !a.is_hide_set())
        {
            commands.push_str(&render(title, &|w| man.render_options_section(w))?);
        }
    }
    let block = |part: &str, text: String| Block {
        name: format!("{name} {part}"),
        text,
    };
    Ok(vec![
        block("synopsis", synopsis),
        block("options", options),
        block("commands", commands),
    ])
}

/// The commands that do something (those without commands of their own),
/// depth first in the order clap shows them.
fn leaves(command: &Command) -> Vec<Command> {
    let mut subs: Vec<&Command> = command
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .collect();
    subs.sort_by_key(|s| s.get_display_order());
    let mut out = Vec::new();
    for sub in subs {
        if sub.has_subcommands() {
            out.extend(leaves(sub));
        } else {
            out.push(sub.clone());
        }
    }
    out
}

/// `imxpd user add`: the name as typed (clap's bin name once built).
fn leaf_name(command: &Command) -> &str {
    command.get_bin_name().unwrap_or_else(|| command.get_name())
}

/// `command` without the options it inherits (global ones, documented
/// once) and without `--help`/`--version`.
fn own_arguments(command: Command) -> Command {
    command.mut_args(|arg| {
        if arg.is_global_set() || matches!(arg.get_id().as_str(), "help" | "version") {
            arg.hide(true)
        } else {
            arg
        }
    })
}

/// The two lines `roff` starts every rendering with: they define the
/// string `Aq` (an apostrophe) that rendered text uses. A page needs them
/// once, before the first use: at the start of its synopsis block.
const PREAMBLE: [&str; 2] = [".ie \\n(.g .ds Aq \\(aq", ".el .ds Aq '"];

/// `clap_mangen` renders whole sections; the page has its own `.SH`
/// headings, so a block keeps only their content (and no preamble, see
/// [`PREAMBLE`]). A further heading, which clap adds for a help heading,
/// becomes a subsection.
fn without_headings(roff: &str) -> String {
    let mut out = String::new();
    let mut first = true;
    for line in roff.lines() {
        if PREAMBLE.contains(&line) {
            continue;
        }
        if let Some(rest) = line.strip_prefix(".SH ") {
            if !first {
                out.push_str(&format!(".SS {rest}\n"));
            }
            first = false;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
