//! The portable dump: the migration path between engines and schema
//! versions (`imxp-spool export` / `import`).
//!
//! A dump is JSON lines (UTF-8, one object per line, tagged by `type`):
//!
//! 1. `{"type":"header","format":"imxp-spool-dump","version":1,...}`;
//! 2. one `{"type":"datagram","envelope":{...},"content":"<base64>"}` per
//!    datagram (the envelope in its serde form, the content byte-exact);
//! 3. `{"type":"dedup","id":"…","seen_ms":…}` per remembered id;
//! 4. `{"type":"quarantine","key":"<base64>","value":"<base64>"}` per
//!    quarantined record, raw;
//! 5. `{"type":"presence","key":"<base64>","value":"<base64>"}` per record
//!    of the relay's presence state (entries, subscriptions, watches), raw;
//! 6. `{"type":"end","datagrams":N,"dedup":N,"quarantine":N,"presence":N}`:
//!    a dump without it is truncated and refused at the end of import
//!    (`presence` may be absent in dumps of older versions: 0).
//!
//! Import is idempotent: datagrams, dedup and quarantine entries already
//! present are skipped, so an interrupted import can be run again.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::error::SpoolError;
use crate::record::{DatagramId, Envelope, serde_bytes_b64};
use crate::spool::{Pending, Spool};

/// The `format` of a dump header.
pub const DUMP_FORMAT: &str = "imxp-spool-dump";
/// The dump format version this build writes and reads.
pub const DUMP_VERSION: u32 = 1;

/// One line of a dump.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DumpLine {
    /// First line.
    Header {
        /// Always [`DUMP_FORMAT`].
        format: String,
        /// [`DUMP_VERSION`].
        version: u32,
        /// The engine it was exported from.
        engine: String,
        /// When (ms since the epoch).
        exported_ms: u64,
        /// Datagrams that follow (as counted when the export started).
        datagrams: u64,
    },
    /// A datagram.
    Datagram {
        /// Its envelope.
        envelope: Box<Envelope>,
        /// Its content.
        #[serde(with = "serde_bytes_b64")]
        content: Vec<u8>,
    },
    /// A remembered datagram id.
    Dedup {
        /// The id.
        id: DatagramId,
        /// When it was seen.
        seen_ms: u64,
    },
    /// A quarantined record, raw.
    Quarantine {
        /// Its key in the quarantine tree.
        #[serde(with = "serde_bytes_b64")]
        key: Vec<u8>,
        /// Its stored value.
        #[serde(with = "serde_bytes_b64")]
        value: Vec<u8>,
    },
    /// A record of the relay's presence state, raw.
    Presence {
        /// Its key in the presence tree.
        #[serde(with = "serde_bytes_b64")]
        key: Vec<u8>,
        /// Its stored value.
        #[serde(with = "serde_bytes_b64")]
        value: Vec<u8>,
    },
    /// Last line.
    End {
        /// Datagram lines written.
        datagrams: u64,
        /// Dedup lines written.
        dedup: u64,
        /// Quarantine lines written.
        quarantine: u64,
        /// Presence lines written.
        #[serde(default)]
        presence: u64,
    },
}

/// An error of export or import.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DumpError {
    /// Reading or writing the dump failed.
    #[error("dump I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not valid JSON of a dump line.
    #[error("dump line {line}: {source}")]
    Json {
        /// 1-based line number.
        line: u64,
        /// The error.
        source: serde_json::Error,
    },
    /// The dump is not one this build reads, or is truncated.
    #[error("dump: {0}")]
    Format(String),
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// Counts of an export or import.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpSummary {
    /// Datagrams written / imported.
    pub datagrams: u64,
    /// Datagrams skipped on import (id already present) or on export
    /// (content missing: run `check`).
    pub skipped: u64,
    /// Dedup entries.
    pub dedup: u64,
    /// Quarantine entries.
    pub quarantine: u64,
    /// Presence records.
    #[serde(default)]
    pub presence: u64,
}

fn write_line(out: &mut impl Write, line: &DumpLine) -> Result<(), DumpError> {
    serde_json::to_writer(&mut *out, line).map_err(|e| DumpError::Io(e.into()))?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes a dump of `spool` to `out`; `progress` is called with the number
/// of datagrams written so far (the header's count is the total).
pub fn export(
    spool: &Spool,
    out: &mut impl Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<DumpSummary, DumpError> {
    let total = spool.len()?;
    write_line(
        out,
        &DumpLine::Header {
            format: DUMP_FORMAT.into(),
            version: DUMP_VERSION,
            engine: spool.engine_kind().name().into(),
            exported_ms: spool.now_ms(),
            datagrams: total,
        },
    )?;
    let mut summary = DumpSummary::default();
    let mut err = None;
    spool.for_each(|env| {
        let content = match spool.content(env.id) {
            Ok(Some(c)) => c,
            Ok(None) => {
                summary.skipped += 1;
                return std::ops::ControlFlow::Continue(());
            }
            Err(e) => {
                err = Some(DumpError::from(e));
                return std::ops::ControlFlow::Break(());
            }
        };
        if let Err(e) = write_line(
            out,
            &DumpLine::Datagram {
                envelope: Box::new(env),
                content,
            },
        ) {
            err = Some(e);
            return std::ops::ControlFlow::Break(());
        }
        summary.datagrams += 1;
        progress(summary.datagrams, total);
        std::ops::ControlFlow::Continue(())
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    for (id, seen_ms) in spool.dedup_entries()? {
        write_line(out, &DumpLine::Dedup { id, seen_ms })?;
        summary.dedup += 1;
    }
    for (key, value) in spool.quarantine_raw()? {
        write_line(out, &DumpLine::Quarantine { key, value })?;
        summary.quarantine += 1;
    }
    for (key, value) in spool.presence_records()? {
        write_line(out, &DumpLine::Presence { key, value })?;
        summary.presence += 1;
    }
    write_line(
        out,
        &DumpLine::End {
            datagrams: summary.datagrams,
            dedup: summary.dedup,
            quarantine: summary.quarantine,
            presence: summary.presence,
        },
    )?;
    out.flush()?;
    Ok(summary)
}

/// Reads a dump into `spool` (group-committed in windows of 1024 writes);
/// `progress` is called with datagrams imported so far and the header's
/// total.
pub fn import(
    spool: &Spool,
    input: impl BufRead,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<DumpSummary, DumpError> {
    let mut summary = DumpSummary::default();
    let mut total = 0;
    let mut header = false;
    let mut end = None;
    let mut window: Vec<(bool, Pending<bool>)> = Vec::new();
    let drain = |window: &mut Vec<(bool, Pending<bool>)>,
                 summary: &mut DumpSummary|
     -> Result<(), DumpError> {
        for (is_datagram, p) in window.drain(..) {
            let added = p.wait()?;
            if is_datagram && !added {
                summary.skipped += 1;
            }
        }
        Ok(())
    };
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        let lineno = n as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: DumpLine = serde_json::from_str(&line).map_err(|source| DumpError::Json {
            line: lineno,
            source,
        })?;
        if end.is_some() {
            return Err(DumpError::Format(format!(
                "line {lineno}: data after the end line"
            )));
        }
        match parsed {
            DumpLine::Header {
                format,
                version,
                datagrams,
                ..
            } => {
                if header || format != DUMP_FORMAT || version != DUMP_VERSION {
                    return Err(DumpError::Format(format!(
                        "line {lineno}: unsupported header ({format} version {version})"
                    )));
                }
                header = true;
                total = datagrams;
            }
            _ if !header => {
                return Err(DumpError::Format("missing header line".into()));
            }
            DumpLine::Datagram { envelope, content } => {
                window.push((true, spool.import(*envelope, content)));
                summary.datagrams += 1;
                progress(summary.datagrams, total);
            }
            DumpLine::Dedup { id, seen_ms } => {
                window.push((false, spool.restore_dedup(id, seen_ms)));
                summary.dedup += 1;
            }
            DumpLine::Quarantine { key, value } => {
                window.push((false, spool.restore_quarantine(key, value)));
                summary.quarantine += 1;
            }
            DumpLine::Presence { key, value } => {
                window.push((false, spool.restore_presence(key, value)));
                summary.presence += 1;
            }
            DumpLine::End {
                datagrams,
                dedup,
                quarantine,
                presence,
            } => end = Some((datagrams, dedup, quarantine, presence)),
        }
        if window.len() >= 1024 {
            drain(&mut window, &mut summary)?;
        }
    }
    drain(&mut window, &mut summary)?;
    summary.datagrams -= summary.skipped;
    match end {
        None => Err(DumpError::Format(
            "truncated dump (no end line); what was read is imported, run import again with a complete dump".into(),
        )),
        Some((d, q, r, p))
            if (d, q, r, p)
                != (
                    summary.datagrams + summary.skipped,
                    summary.dedup,
                    summary.quarantine,
                    summary.presence,
                ) =>
        {
            Err(DumpError::Format(format!(
                "end line counts ({d} datagrams, {q} dedup, {r} quarantine, {p} presence) do not match the lines read"
            )))
        }
        Some(_) => Ok(summary),
    }
}
