//! CPU time and memory of a process from `/proc` (proc(5)): `utime` and
//! `stime` of `/proc/PID/stat` (fields 14 and 15, in clock ticks, all
//! threads together), `VmRSS` and `VmHWM` of `/proc/PID/status`.

use anyhow::{Context as _, bail};

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// User plus system CPU time, in microseconds.
    pub(crate) cpu_us: u64,
    /// Resident set size, KiB.
    pub(crate) rss_kib: u64,
    /// Peak resident set size, KiB.
    pub(crate) peak_rss_kib: u64,
}

/// Reads process `pid` now.
pub(crate) fn sample(pid: u32) -> anyhow::Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let ticks = cpu_ticks(&stat).with_context(|| format!("/proc/{pid}/stat"))?;
    let per_second = rustix::param::clock_ticks_per_second();
    Ok(Sample {
        cpu_us: ticks * 1_000_000 / per_second,
        rss_kib: status_kib(&status, "VmRSS").with_context(|| format!("/proc/{pid}/status"))?,
        peak_rss_kib: status_kib(&status, "VmHWM")
            .with_context(|| format!("/proc/{pid}/status"))?,
    })
}

/// `utime + stime` from the text of `/proc/PID/stat`. The command name
/// (field 2) is in parentheses and may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
pub(crate) fn cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let Some(close) = stat.rfind(')') else {
        bail!("no ')' after the command name");
    };
    // After ')': field 3 (state) is the first; utime is field 14, stime 15.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        let text = fields
            .get(n - 3)
            .with_context(|| format!("only {} fields, field {n} missing", fields.len() + 2))?;
        text.parse()
            .with_context(|| format!("field {n} is not a number: {text:?}"))
    };
    Ok(field(14)? + field(15)?)
}

/// The value of `key` (e.g. `VmRSS`) in KiB from the text of
/// `/proc/PID/status` (lines like `VmRSS:     1234 kB`).
pub(crate) fn status_kib(status: &str, key: &str) -> anyhow::Result<u64> {
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let mut words = rest.split_whitespace();
            let value = words.next().with_context(|| format!("{key}: no value"))?;
            if words.next() != Some("kB") {
                bail!("{key}: not in kB: {line:?}");
            }
            return value
                .parse()
                .with_context(|| format!("{key}: not a number: {value:?}"));
        }
    }
    bail!("no {key} line")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (im xpd) (x)) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    1500 250 0 0 20 0 3 0 123 456789 1234 18446744073709551615";
        assert_eq!(cpu_ticks(stat).unwrap(), 1750);
    }

    #[test]
    fn truncated_stat_names_the_missing_field() {
        let error = cpu_ticks("1 (a) S 1 2 3").unwrap_err().to_string();
        assert!(error.contains("field 14 missing"), "{error}");
        assert!(cpu_ticks("no parenthesis").is_err());
    }

    #[test]
    fn status_values_in_kib() {
        let status = "Name:\timxpd\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS").unwrap(), 10240);
        assert_eq!(status_kib(status, "VmHWM").unwrap(), 20480);
        assert!(status_kib(status, "VmSwap").is_err());
        assert!(status_kib("VmRSS: 12 pages\n", "VmRSS").is_err());
    }

    #[test]
    fn this_process_can_be_read() {
        let me = sample(std::process::id()).unwrap();
        assert!(me.rss_kib > 0);
        assert!(me.peak_rss_kib >= me.rss_kib);
    }
}
