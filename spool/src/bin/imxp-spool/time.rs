//! Times as the commands print them: an age (`42s`, `17m`, `5h`, `3d`) and
//! a UTC date with milliseconds.

pub(crate) fn age(now: u64, then: u64) -> String {
    let s = now.saturating_sub(then) / 1000;
    match s {
        0..=99 => format!("{s}s"),
        100..=5999 => format!("{}m", s / 60),
        6000..=359_999 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

pub(crate) fn fmt_ms(ms: u64) -> String {
    imxp_wire::datetime::display_millis(ms)
}
