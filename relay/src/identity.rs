//! How the relay names a datagram it accepts, and so when it treats one as
//! a retransmission of another (docs/decisions.md, "Duplicates").
//!
//! Content equality is not identity: "ok" written twice to the same friend
//! is two messages. A datagram is recognised as a duplicate only by an
//! identity that a retransmission of it carries again:
//!
//! * **From a relay**, the hop identity ([`imxp_apex::hop_id`]): the
//!   sending relay's own id for the datagram, scoped by the domain the peer
//!   bound, so a forward repeated after a lost `ok` maps to the same id
//!   and one peer cannot suppress another's datagrams.
//! * **From an endpoint** (or a relay that sends no hop identity), the
//!   Content-ID of its content part (RFC 2045 §7: globally unique), with
//!   the part's octets, originator and recipients.
//! * Otherwise (inline or external content without either) the datagram
//!   has no identity: it gets a fresh id and is never treated as a
//!   duplicate, so an endpoint that resends after a lost `ok` gets
//!   at-least-once delivery.

use imxp_apex::{Content, Data};
use imxp_spool::{DatagramId, IdOrigin};
use sha2::{Digest, Sha256};

/// Who handed the relay a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sender {
    /// An attached application (apex-edge), or the relay's own services.
    Endpoint,
    /// A relay bound as `domain` (apex-mesh): the bound domain that
    /// authorized the datagram's originator.
    Relay {
        /// The bound domain.
        domain: String,
    },
}

/// The spool id of a datagram from `sender`, and whether it is a dedup key.
/// `now_ms` orders generated ids.
pub(crate) fn identify(
    sender: &Sender,
    originator: &str,
    recipients: &[String],
    data: &Data,
    content: &Content,
    now_ms: u64,
) -> (DatagramId, IdOrigin) {
    let derived = |digest: Sha256| (truncate(digest), IdOrigin::Derived);
    if let Sender::Relay { domain } = sender
        && let Some(hop_id) = imxp_apex::hop_id::of(data)
    {
        let mut digest = tagged(b"imxp hop id");
        field(&mut digest, domain.to_ascii_lowercase().as_bytes());
        field(&mut digest, &hop_id);
        parties(&mut digest, originator, recipients);
        return derived(digest);
    }
    match content {
        Content::Part(part) => {
            let mut digest = tagged(b"imxp content id");
            parties(&mut digest, originator, recipients);
            field(&mut digest, part.content_id().as_bytes());
            field(&mut digest, part.raw());
            derived(digest)
        }
        Content::Inline(_) | Content::External(_) => {
            (DatagramId::generate(now_ms), IdOrigin::Generated)
        }
    }
}

fn tagged(tag: &[u8]) -> Sha256 {
    let mut digest = Sha256::new();
    field(&mut digest, tag);
    digest
}

/// Length-prefixed, so that no two different field lists hash alike.
fn field(digest: &mut Sha256, bytes: &[u8]) {
    digest.update((bytes.len() as u64).to_be_bytes());
    digest.update(bytes);
}

fn parties(digest: &mut Sha256, originator: &str, recipients: &[String]) {
    field(digest, originator.as_bytes());
    digest.update((recipients.len() as u64).to_be_bytes());
    for recipient in recipients {
        field(digest, recipient.as_bytes());
    }
}

fn truncate(digest: Sha256) -> DatagramId {
    let hash = digest.finalize();
    let mut id = [0u8; DatagramId::LEN];
    id.copy_from_slice(&hash[..DatagramId::LEN]);
    DatagramId::from_bytes(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use imxp_apex::{DataContent, Domain, Endpoint, MimePart};

    fn data() -> Data {
        Data::new(
            Endpoint::parse("alice@a.test").unwrap(),
            [Endpoint::parse("bob@b.test").unwrap()],
        )
    }

    fn parties_of() -> (String, Vec<String>) {
        ("alice@a.test".into(), vec!["bob@b.test".into()])
    }

    fn inline(text: &str) -> Content {
        Content::Inline(DataContent::new("c", text).unwrap())
    }

    fn part(text: &str) -> Content {
        let domain = Domain::parse("a.test").unwrap();
        Content::Part(MimePart::new("text/plain", text.as_bytes(), &domain).unwrap())
    }

    #[test]
    fn inline_content_has_no_identity() {
        let (o, r) = parties_of();
        let a = identify(&Sender::Endpoint, &o, &r, &data(), &inline("ok"), 1);
        let b = identify(&Sender::Endpoint, &o, &r, &data(), &inline("ok"), 1);
        assert_eq!(a.1, IdOrigin::Generated);
        assert_ne!(a.0, b.0, "the same text twice is two datagrams");
    }

    #[test]
    fn a_content_part_is_identified_by_its_content_id() {
        let (o, r) = parties_of();
        let first = part("ok");
        let again = identify(&Sender::Endpoint, &o, &r, &data(), &first, 1);
        assert_eq!(again.1, IdOrigin::Derived);
        assert_eq!(
            again,
            identify(&Sender::Endpoint, &o, &r, &data(), &first, 2),
            "a resend of the same part is the same datagram"
        );
        let other = identify(&Sender::Endpoint, &o, &r, &data(), &part("ok"), 1);
        assert_ne!(again.0, other.0, "a fresh Content-ID is a new datagram");
        let to_more = identify(
            &Sender::Endpoint,
            &o,
            &["bob@b.test".into(), "carol@b.test".into()],
            &data(),
            &first,
            1,
        );
        assert_ne!(again.0, to_more.0);
    }

    #[test]
    fn a_hop_id_is_scoped_by_the_bound_domain() {
        let (o, r) = parties_of();
        let mut d = data();
        imxp_apex::hop_id::set(&mut d, &[9; 16]);
        let peer = |domain: &str| Sender::Relay {
            domain: domain.into(),
        };
        let a = identify(&peer("a.test"), &o, &r, &d, &inline("ok"), 1);
        assert_eq!(a.1, IdOrigin::Derived);
        assert_eq!(a, identify(&peer("A.test"), &o, &r, &d, &inline("ok"), 5));
        assert_ne!(
            a.0,
            identify(&peer("c.test"), &o, &r, &d, &inline("ok"), 1).0
        );
        imxp_apex::hop_id::set(&mut d, &[8; 16]);
        assert_ne!(
            a.0,
            identify(&peer("a.test"), &o, &r, &d, &inline("ok"), 1).0
        );
        // An endpoint's hop id means nothing: it is not a relay's id.
        assert_eq!(
            identify(&Sender::Endpoint, &o, &r, &d, &inline("ok"), 1).1,
            IdOrigin::Generated
        );
    }
}
