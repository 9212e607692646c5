//! Calendar dates and times of day in UTC, on top of the `time` crate: the
//! one place the workspace turns instants into dates and back.
//!
//! Used for RFC 3339 `date-time` values, which APEX carries as access-entry
//! `lastUpdate` stamps (RFC 3341 §2.3) and Message/CPIM as `DateTime`
//! headers (RFC 3862 §4.4), and for dates shown to operators.
//!
//! Instants outside the years 0000 to 9999 have no four-digit year; they
//! are written as the nearest instant that has one
//! ([`MIN_UNIX_MILLIS`], [`MAX_UNIX_MILLIS`]).

use thiserror::Error;
use time::{Date, Month, OffsetDateTime};

/// 0000-01-01T00:00:00.000Z, the first instant with a four-digit year, in
/// milliseconds since the Unix epoch.
pub const MIN_UNIX_MILLIS: i64 = -62_167_219_200_000;
/// 9999-12-31T23:59:59.999Z, the last millisecond with a four-digit year,
/// in milliseconds since the Unix epoch.
pub const MAX_UNIX_MILLIS: i64 = 253_402_300_799_999;

/// Why a calendar date does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DateError {
    /// The month is not 1 to 12.
    #[error("month out of range")]
    Month,
    /// The day does not exist in that month of that year, or the year is
    /// outside the supported range.
    #[error("day out of range for the month")]
    Day,
}

/// Days since 1970-01-01 of a proleptic Gregorian date, after checking that
/// the date exists (a 29 February only in leap years).
pub fn unix_days(year: i32, month: u8, day: u8) -> Result<i64, DateError> {
    let month = Month::try_from(month).map_err(|_| DateError::Month)?;
    let date = Date::from_calendar_date(year, month, day).map_err(|_| DateError::Day)?;
    Ok(i64::from(date.to_julian_day()) - i64::from(epoch_julian_day()))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`: an RFC 3339 §5.6 `date-time` in UTC with
/// milliseconds, for `unix_millis` milliseconds since the Unix epoch.
pub fn rfc3339_millis(unix_millis: i64) -> String {
    let t = utc(i128::from(unix_millis) * 1_000_000);
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        date(&t),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ`: an RFC 3339 §5.6 `date-time` in UTC to the
/// second, for `unix_seconds` seconds since the Unix epoch.
pub fn rfc3339_seconds(unix_seconds: u64) -> String {
    let t = utc(i128::from(unix_seconds) * 1_000_000_000);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        date(&t),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `YYYY-MM-DD HH:MM:SS.mmm UTC`: an instant for people to read, for
/// `unix_millis` milliseconds since the Unix epoch.
pub fn display_millis(unix_millis: u64) -> String {
    let t = utc(i128::from(unix_millis) * 1_000_000);
    format!(
        "{} {:02}:{:02}:{:02}.{:03} UTC",
        date(&t),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The instant `unix_nanos` nanoseconds after the epoch, clamped to the
/// years 0000 to 9999.
fn utc(unix_nanos: i128) -> OffsetDateTime {
    let min = i128::from(MIN_UNIX_MILLIS) * 1_000_000;
    let max = i128::from(MAX_UNIX_MILLIS) * 1_000_000 + 999_999;
    OffsetDateTime::from_unix_timestamp_nanos(unix_nanos.clamp(min, max))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn date(t: &OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

fn epoch_julian_day() -> i32 {
    OffsetDateTime::UNIX_EPOCH.date().to_julian_day()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(rfc3339_millis(958_338_120_000), "2000-05-14T21:02:00.000Z");
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(4_102_444_799_999),
            "2099-12-31T23:59:59.999Z"
        );
        assert_eq!(
            display_millis(958_338_120_123),
            "2000-05-14 21:02:00.123 UTC"
        );
    }

    #[test]
    fn clamps_instants_without_a_four_digit_year() {
        assert_eq!(rfc3339_millis(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_seconds(u64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339_millis(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(MIN_UNIX_MILLIS), "0000-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(MAX_UNIX_MILLIS), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            rfc3339_millis(MIN_UNIX_MILLIS - 1),
            rfc3339_millis(MIN_UNIX_MILLIS)
        );
    }

    #[test]
    fn days_of_calendar_dates() {
        assert_eq!(unix_days(1970, 1, 1), Ok(0));
        assert_eq!(unix_days(2000, 5, 14), Ok(11_091));
        assert_eq!(unix_days(1969, 12, 31), Ok(-1));
        assert_eq!(unix_days(2000, 2, 29), Ok(11_016));
        assert_eq!(unix_days(2001, 2, 29), Err(DateError::Day));
        assert_eq!(unix_days(2000, 13, 1), Err(DateError::Month));
        assert_eq!(unix_days(2000, 4, 31), Err(DateError::Day));
        assert_eq!(unix_days(2000, 4, 0), Err(DateError::Day));
    }
}
