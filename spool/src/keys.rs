//! Key layouts of the index trees. All integers are big-endian, so byte
//! order equals numeric order and a range scan walks time in order.

use crate::record::DatagramId;

/// `due` key: `be_u64(due_ms) ‖ id`.
pub fn due(due_ms: u64, id: &DatagramId) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.extend_from_slice(&due_ms.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// Parses a `due` key.
pub fn parse_due(key: &[u8]) -> Option<(u64, DatagramId)> {
    if key.len() != 24 {
        return None;
    }
    let due = u64::from_be_bytes(key[..8].try_into().ok()?);
    Some((due, DatagramId::from_slice(&key[8..])?))
}

/// The `held` prefix of an endpoint: `endpoint ‖ 0x00`.
pub fn held_prefix(endpoint: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(endpoint.len() + HELD_SUFFIX + 1);
    k.extend_from_slice(endpoint.as_bytes());
    k.push(0);
    k
}

/// Length of what follows the endpoint and its `0x00` in a `held` key.
const HELD_SUFFIX: usize = 8 + 8 + DatagramId::LEN;

/// `held` key: `endpoint ‖ 0x00 ‖ be_u64(arrival) ‖ be_u64(size) ‖ id`.
///
/// A prefix scan of one endpoint walks its held datagrams in order of
/// arrival (`arrival` is the spool's arrival sequence, see
/// [`crate::Envelope::arrival`]); the content size rides in the key so the
/// index alone gives an endpoint's held count and bytes, and `check`
/// verifies it with the key.
pub fn held(endpoint: &str, arrival: u64, size: u64, id: &DatagramId) -> Vec<u8> {
    let mut k = held_prefix(endpoint);
    k.extend_from_slice(&arrival.to_be_bytes());
    k.extend_from_slice(&size.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// A parsed `held` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldKey {
    /// The endpoint it is held for.
    pub endpoint: String,
    /// Its arrival sequence.
    pub arrival: u64,
    /// Its content size in bytes.
    pub size: u64,
    /// The datagram.
    pub id: DatagramId,
}

/// Parses a `held` key into endpoint and id.
pub fn parse_held(key: &[u8]) -> Option<(String, DatagramId)> {
    parse_held_key(key).map(|k| (k.endpoint, k.id))
}

/// Parses a `held` key into all its parts.
pub fn parse_held_key(key: &[u8]) -> Option<HeldKey> {
    if key.len() < HELD_SUFFIX + 2 || key[key.len() - HELD_SUFFIX - 1] != 0 {
        return None;
    }
    let split = key.len() - HELD_SUFFIX;
    let endpoint = std::str::from_utf8(&key[..split - 1]).ok()?;
    let tail = &key[split..];
    Some(HeldKey {
        endpoint: endpoint.to_owned(),
        arrival: u64::from_be_bytes(tail[..8].try_into().ok()?),
        size: u64::from_be_bytes(tail[8..16].try_into().ok()?),
        id: DatagramId::from_slice(&tail[16..])?,
    })
}

/// Prefix of the dedup entries by id.
pub const DEDUP_BY_ID: u8 = b'i';
/// Prefix of the dedup entries by time.
pub const DEDUP_BY_TIME: u8 = b't';

/// Dedup key by id: `'i' ‖ id` → `be_u64(seen_ms)`.
pub fn dedup_id(id: &DatagramId) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(DEDUP_BY_ID);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Dedup key by time: `'t' ‖ be_u64(seen_ms) ‖ id` → empty.
pub fn dedup_time(seen_ms: u64, id: &DatagramId) -> Vec<u8> {
    let mut k = Vec::with_capacity(25);
    k.push(DEDUP_BY_TIME);
    k.extend_from_slice(&seen_ms.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// Parses a dedup-by-time key.
pub fn parse_dedup_time(key: &[u8]) -> Option<(u64, DatagramId)> {
    if key.len() != 25 || key[0] != DEDUP_BY_TIME {
        return None;
    }
    Some((
        u64::from_be_bytes(key[1..9].try_into().ok()?),
        DatagramId::from_slice(&key[9..])?,
    ))
}

/// Quarantine key: `be_u64(at_ms) ‖ tree tag ‖ original key`.
pub fn quarantine(at_ms: u64, tree: crate::engine::Tree, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + key.len());
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.push(tree.tag());
    k.extend_from_slice(key);
    k
}

/// Meta key of the schema version (value `be_u32`).
pub const META_SCHEMA: &[u8] = b"schema";
/// Meta key of the creation time (value `be_u64` ms).
pub const META_CREATED: &[u8] = b"created_ms";
/// Meta key of the engine name.
pub const META_ENGINE: &[u8] = b"engine";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort() {
        let a = DatagramId::from_bytes([1; 16]);
        let b = DatagramId::from_bytes([0; 16]);
        assert_eq!(parse_due(&due(7, &a)), Some((7, a)));
        assert!(due(255, &a) < due(256, &b));
        assert_eq!(parse_held(&held("x@y", 3, 9, &a)), Some(("x@y".into(), a)));
        let parsed = parse_held_key(&held("x@y", 3, 9, &a)).unwrap();
        assert_eq!((parsed.arrival, parsed.size), (3, 9));
        assert!(held("x@y", 3, 9, &a).starts_with(&held_prefix("x@y")));
        assert!(!held("x@yz", 3, 9, &a).starts_with(&held_prefix("x@y")));
        // Arrival order, whatever the ids.
        assert!(held("x@y", 1, 500, &a) < held("x@y", 2, 1, &b));
        assert_eq!(parse_held(b"x@y"), None);
        assert_eq!(parse_dedup_time(&dedup_time(9, &b)), Some((9, b)));
        assert!(dedup_time(1, &a) < dedup_time(2, &b));
    }
}
