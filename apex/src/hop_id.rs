//! The hop identity option: the sending relay's own id for a datagram,
//! carried to the next hop only, so that the receiver can tell a
//! retransmission (the same datagram sent again after a lost `ok`) from a
//! new datagram that happens to have the same content.
//!
//! ```xml
//! <option external='urn:x-imxp:hop-id' targetHop='this' transID='…'>0f3a…(32 hex digits)</option>
//! ```
//!
//! It is an imxp extension built only from what RFC 3340 §5 already
//! provides: an `external` option (named by a URI), `targetHop='this'` so
//! that every relay removes it before transmitting further, and
//! `mustUnderstand='false'` so that an implementation that does not know it
//! ignores it. A relay adds a fresh one, with its own id, to every
//! transmission: to a next relay and to an attached application.
//!
//! A receiver must only trust the id as far as it trusts the sender: a
//! relay scopes it by the domain the peer bound (a peer cannot suppress
//! another peer's datagrams), an endpoint by the relay it is attached to.

use crate::data::Data;
use crate::option::{ApexOption, OptionKind, TargetHop};

/// The option's `external` URI.
pub const HOP_ID: &str = "urn:x-imxp:hop-id";

/// Length of the id in octets (shown as twice as many hex digits).
pub const LEN: usize = 16;

/// The option carrying `id`. Its `transID` is derived from the id (the DTD
/// requires one; nothing answers this option, so any valid value does).
pub fn option(id: &[u8; LEN]) -> ApexOption {
    let trans_id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]) & 0x7fff_ffff;
    ApexOption {
        content: hex(id),
        ..ApexOption::external(HOP_ID)
            .target_hop(TargetHop::This)
            .trans_id(trans_id.max(1))
    }
}

/// The hop id of `data`'s per-data options, if it carries exactly one that
/// is well formed (32 hex digits). Several, or a malformed one, count as
/// none: the datagram is then treated as one without a hop identity.
pub fn of(data: &Data) -> Option<[u8; LEN]> {
    let mut found = data.options.iter().filter(|o| is_hop_id(o));
    let first = found.next()?;
    if found.next().is_some() {
        return None;
    }
    parse_hex(first.content.trim())
}

/// Whether `option` is a hop identity option.
pub fn is_hop_id(option: &ApexOption) -> bool {
    matches!(&option.kind, OptionKind::External(uri) if uri == HOP_ID)
}

/// Replaces the hop identity options of `data` with one carrying `id`.
pub fn set(data: &mut Data, id: &[u8; LEN]) {
    data.options.retain(|o| !is_hop_id(o));
    data.options.push(option(id));
}

fn hex(id: &[u8; LEN]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &str) -> Option<[u8; LEN]> {
    if text.len() != 2 * LEN || !text.is_ascii() {
        return None;
    }
    let mut id = [0u8; LEN];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoint, Limits};

    fn data() -> Data {
        let mut data = Data::new(
            Endpoint::parse("alice@a.example").unwrap(),
            [Endpoint::parse("bob@b.example").unwrap()],
        );
        data.content = "cid:1@a.example".into();
        data
    }

    #[test]
    fn round_trips_through_the_wire_form() {
        let id = [0xab; LEN];
        let mut d = data();
        set(&mut d, &id);
        set(&mut d, &id);
        assert_eq!(d.options.len(), 1, "set replaces, never adds a second");
        let xml = d.to_xml();
        assert!(
            xml.contains("<option external='urn:x-imxp:hop-id' targetHop='this' transID="),
            "{xml}"
        );
        let parsed = Data::from_xml(xml.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(of(&parsed), Some(id));
    }

    #[test]
    fn malformed_or_repeated_ids_count_as_none() {
        let mut d = data();
        d.options
            .push(ApexOption::external(HOP_ID).with_content("xyz").unwrap());
        assert_eq!(of(&d), None);
        let mut d = data();
        d.options.push(option(&[1; LEN]));
        d.options.push(option(&[2; LEN]));
        assert_eq!(of(&d), None);
        assert_eq!(of(&data()), None);
    }

    #[test]
    fn removed_before_further_transmission() {
        let mut d = data();
        set(&mut d, &[3; LEN]);
        d.strip_this();
        assert_eq!(of(&d), None);
    }
}
