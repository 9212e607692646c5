//! Transaction identifiers (RFC 3340 §9.1 data types): `UNIQID` is
//! 1..2147483647, `UNIZID` is 0..2147483647.

use crate::error::ApexError;

/// Largest transaction identifier, 2^31 − 1.
pub const MAX_TRANS_ID: u32 = 2_147_483_647;

/// Parses a `UNIQID` (1..2147483647) written as decimal digits.
pub(crate) fn parse_uniqid(element: &'static str, value: &str) -> Result<u32, ApexError> {
    match parse_unizid(element, value)? {
        0 => Err(ApexError::InvalidAttribute {
            element,
            attribute: "transID",
            value: value.to_owned(),
            reason: "transID must be 1..2147483647",
        }),
        id => Ok(id),
    }
}

/// Parses a `UNIZID` (0..2147483647) written as decimal digits.
pub(crate) fn parse_unizid(element: &'static str, value: &str) -> Result<u32, ApexError> {
    let invalid = |reason| ApexError::InvalidAttribute {
        element,
        attribute: "transID",
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("transID is not a decimal number"));
    }
    let significant = value.trim_start_matches('0');
    if significant.len() > 10 {
        return Err(invalid("transID must be at most 2147483647"));
    }
    let number: u64 = if significant.is_empty() {
        0
    } else {
        significant
            .parse()
            .map_err(|_| invalid("transID is not a decimal number"))?
    };
    u32::try_from(number)
        .ok()
        .filter(|n| *n <= MAX_TRANS_ID)
        .ok_or_else(|| invalid("transID must be at most 2147483647"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_uniqid("attach", "1").unwrap(), 1);
        assert_eq!(parse_uniqid("attach", "086").unwrap(), 86);
        assert_eq!(parse_uniqid("attach", "2147483647").unwrap(), MAX_TRANS_ID);
        assert_eq!(parse_unizid("terminate", "0").unwrap(), 0);
        assert_eq!(parse_unizid("terminate", "000").unwrap(), 0);
        for bad in [
            "0",
            "00",
            "2147483648",
            "4294967296",
            "99999999999999999999",
            "",
            "-1",
            "+1",
            " 1",
            "1 ",
            "0x10",
            "1e3",
        ] {
            assert!(parse_uniqid("attach", bad).is_err(), "{bad:?}");
        }
        for bad in ["2147483648", "", "-0", "a"] {
            assert!(parse_unizid("terminate", bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_uniqid("attach", "0").unwrap_err().reply_code().0, 501);
    }
}
