//! Hex encoding of raw keys, for quarantine listings, check reports and
//! the keys carried by a [`Fix`](super::Fix).

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Hex of a key (check reports, fixes).
pub(crate) fn key_hex(k: &[u8]) -> String {
    hex(k)
}
