//! `lastUpdate` timestamps (RFC 3341 §2.3, §4.4; the `%TIMESTAMP;` type of
//! RFC 3340 §9.1): RFC 3339 `date-time` values, compared by the instant
//! they denote ("differs semantically"), not by their text.
//!
//! Accepted: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, `T` and `Z` in either
//! case, a leap second `:60`, the unknown-offset `-00:00` (RFC 3339 §4.3,
//! which RFC 3341 §7 suggests for privacy: it denotes the UTC instant).
//! Written: UTC with milliseconds and `Z`, e.g. `2000-05-14T21:02:00.000Z`.

use std::fmt;

use imxp_wire::datetime::{self, DateError};

use super::AccessError;

/// An RFC 3339 timestamp, kept as written; equality and ordering are by
/// instant (nanoseconds since 1970-01-01T00:00:00Z).
#[derive(Debug, Clone)]
pub struct Timestamp {
    text: String,
    nanos: i128,
}

impl Timestamp {
    /// Parses an RFC 3339 `date-time`.
    pub fn parse(text: &str) -> Result<Self, AccessError> {
        let nanos = parse_nanos(text).map_err(|reason| AccessError::Timestamp {
            value: text.to_owned(),
            reason,
        })?;
        Ok(Self {
            text: text.to_owned(),
            nanos,
        })
    }

    /// The timestamp of `millis` milliseconds since the Unix epoch, in UTC
    /// (clamped to the years 0000 to 9999, which RFC 3339 can write).
    pub fn from_unix_millis(millis: i64) -> Self {
        let millis = millis.clamp(datetime::MIN_UNIX_MILLIS, datetime::MAX_UNIX_MILLIS);
        Self {
            text: datetime::rfc3339_millis(millis),
            nanos: i128::from(millis) * 1_000_000,
        }
    }

    /// Milliseconds since the Unix epoch (fractions below a millisecond are
    /// truncated towards negative infinity).
    pub fn unix_millis(&self) -> i64 {
        i64::try_from(self.nanos.div_euclid(1_000_000)).unwrap_or(i64::MAX)
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Timestamp {}

impl std::hash::Hash for Timestamp {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn digits(text: &[u8], range: std::ops::Range<usize>) -> Result<i64, &'static str> {
    let part = text.get(range).ok_or("too short for a date-time")?;
    if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
        return Err("expected digits (YYYY-MM-DDTHH:MM:SS plus Z or ±HH:MM)");
    }
    Ok(part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
}

fn expect(text: &[u8], at: usize, what: &[u8]) -> Result<(), &'static str> {
    match text.get(at) {
        Some(c) if what.contains(c) => Ok(()),
        _ => Err("not of the form YYYY-MM-DDTHH:MM:SS plus Z or ±HH:MM"),
    }
}

fn parse_nanos(text: &str) -> Result<i128, &'static str> {
    let b = text.as_bytes();
    let year = digits(b, 0..4)?;
    expect(b, 4, b"-")?;
    let month = digits(b, 5..7)?;
    expect(b, 7, b"-")?;
    let day = digits(b, 8..10)?;
    expect(b, 10, b"Tt")?;
    let hour = digits(b, 11..13)?;
    expect(b, 13, b":")?;
    let minute = digits(b, 14..16)?;
    expect(b, 16, b":")?;
    let second = digits(b, 17..19)?;
    let days = calendar_days(year, month, day).map_err(|e| match e {
        DateError::Month => "month out of range",
        _ => "day out of range for the month",
    })?;
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time of day out of range");
    }
    let mut at = 19;
    let mut fraction: i128 = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return Err("a decimal point without digits");
        }
        // Nanosecond precision; further digits are accepted and ignored.
        let mut scale = 100_000_000;
        for d in &b[start..at] {
            fraction += i128::from(d - b'0') * scale;
            scale /= 10;
        }
    }
    let offset_minutes = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let hours = digits(b, at + 1..at + 3)?;
            expect(b, at + 3, b":")?;
            let minutes = digits(b, at + 4..at + 6)?;
            if hours > 23 || minutes > 59 {
                return Err("offset out of range");
            }
            let offset = hours * 60 + minutes;
            let offset = if *sign == b'-' { -offset } else { offset };
            at += 6;
            offset
        }
        _ => return Err("missing offset (Z or ±HH:MM)"),
    };
    if at != b.len() {
        return Err("trailing characters after the offset");
    }
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(i128::from(seconds) * 1_000_000_000 + fraction)
}

/// Days since 1970-01-01 of a date read as digits (four for the year, two
/// each for month and day, so the conversions cannot fail).
fn calendar_days(year: i64, month: i64, day: i64) -> Result<i64, DateError> {
    let month = u8::try_from(month).map_err(|_| DateError::Month)?;
    let day = u8::try_from(day).map_err(|_| DateError::Day)?;
    let year = i32::try_from(year).map_err(|_| DateError::Day)?;
    datetime::unix_days(year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples_compare_by_instant() {
        let a = Timestamp::parse("2000-05-14T13:02:00-08:00").unwrap();
        let b = Timestamp::parse("2000-05-14T21:02:00Z").unwrap();
        let c = Timestamp::parse("2000-05-14T21:02:00.000z").unwrap();
        let later = Timestamp::parse("2000-05-14T23:02:00-08:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_ne!(a, later);
        assert!(later > a);
        assert_eq!(a.as_str(), "2000-05-14T13:02:00-08:00");
        assert_eq!(a.unix_millis(), 958_338_120_000);
    }

    #[test]
    fn writes_utc_millis_and_reads_it_back() {
        for millis in [0, 958_338_120_123, -1, 951_782_400_000, 4_102_444_799_999] {
            let t = Timestamp::from_unix_millis(millis);
            let again = Timestamp::parse(t.as_str()).unwrap();
            assert_eq!(again.unix_millis(), millis, "{t}");
        }
        assert_eq!(
            Timestamp::from_unix_millis(958_338_120_000).as_str(),
            "2000-05-14T21:02:00.000Z"
        );
    }

    #[test]
    fn refuses_malformed_values() {
        for bad in [
            "",
            "2000-05-14",
            "2000-05-14T13:02:00",
            "2000-05-14 13:02:00Z",
            "2000-13-14T13:02:00Z",
            "2001-02-29T13:02:00Z",
            "2000-05-14T24:00:00Z",
            "2000-05-14T13:02:00.Z",
            "2000-05-14T13:02:00+0800",
            "2000-05-14T13:02:00Zjunk",
            "２000-05-14T13:02:00Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Timestamp::parse("2000-02-29T23:59:60-00:00").is_ok());
    }
}
