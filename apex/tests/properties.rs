//! Property tests: endpoints survive every textual form they take, and any
//! content part survives a payload round trip octet for octet.

use std::net::{Ipv4Addr, Ipv6Addr};

use imxp_apex::{Attach, Content, Data, Domain, Endpoint, MimePart, Operation};
use proptest::prelude::*;

/// A token per RFC 3340 §2.2 (no controls, `/` or `@`), with interior
/// spaces but none at the ends, mixing in XML and URI specials and UTF-8.
fn token() -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        8 => proptest::char::range('!', '~').prop_filter("no / or @", |c| *c != '/' && *c != '@'),
        1 => Just(' '),
        1 => prop_oneof![Just('é'), Just('日'), Just('\u{1F600}'), Just('\u{a0}'), Just('ß')],
    ];
    proptest::collection::vec(chars, 1..24)
        .prop_map(|chars| chars.into_iter().collect::<String>())
        .prop_filter("no edge spaces", |t| {
            !t.starts_with(' ') && !t.ends_with(' ')
        })
}

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?"
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (proptest::collection::vec(label(), 0..3), "[a-zA-Z][a-zA-Z0-9]{0,5}")
            .prop_map(|(mut labels, tld)| {
                labels.push(tld);
                labels.join(".")
            }),
        1 => any::<u32>().prop_map(|ip| format!("[{}]", Ipv4Addr::from(ip))),
        1 => any::<u128>().prop_map(|ip| format!("[IPv6:{}]", Ipv6Addr::from(ip))),
        1 => ("[a-zA-Z][a-zA-Z0-9-]{0,5}[a-zA-Z0-9]", "[!-Z^-~]{1,12}")
            .prop_filter("not IPv6", |(tag, _)| !tag.eq_ignore_ascii_case("ipv6"))
            .prop_map(|(tag, content)| format!("[{tag}:{content}]")),
    ]
}

fn endpoint_text() -> impl Strategy<Value = String> {
    (token(), proptest::option::of(token()), domain()).prop_map(
        |(address, sub, domain)| match sub {
            Some(sub) => format!("{address}/{sub}@{domain}"),
            None => format!("{address}@{domain}"),
        },
    )
}

proptest! {
    #[test]
    fn endpoint_display_parse_round_trip(text in endpoint_text()) {
        let endpoint = Endpoint::parse(&text).unwrap();
        prop_assert_eq!(endpoint.to_string(), text);
        prop_assert_eq!(&Endpoint::parse(&endpoint.to_string()).unwrap(), &endpoint);
        // The URL form, %-encoded, reverses to the same endpoint.
        let uri = endpoint.to_uri();
        prop_assert!(uri.is_ascii());
        prop_assert_eq!(&Endpoint::parse_uri(&uri).unwrap(), &endpoint);
        // The base drops only the subaddress.
        let base = endpoint.base();
        prop_assert_eq!(base.subaddress(), None);
        prop_assert_eq!(endpoint.is_subaddress_of(&base), endpoint.subaddress().is_some());
        // Domains compare without regard to case.
        let upper = Endpoint::new(
            endpoint.address(),
            endpoint.subaddress(),
            Domain::parse(&endpoint.domain().as_str().to_ascii_uppercase()).unwrap(),
        )
        .unwrap();
        prop_assert_eq!(&upper, &endpoint);
        // And through XML: escaping in attributes is lossless.
        let attach = Attach::new(endpoint, 1);
        let parsed = Operation::parse(&attach.to_payload()).unwrap();
        prop_assert_eq!(parsed.operation, Operation::Attach(attach));
    }

    #[test]
    fn local_part_compares_octet_exactly(a in token(), b in token(), domain in domain()) {
        let x = Endpoint::parse(&format!("{a}@{domain}")).unwrap();
        let y = Endpoint::parse(&format!("{b}@{domain}")).unwrap();
        prop_assert_eq!(x == y, a == b);
    }

    #[test]
    fn any_part_survives_a_payload_round_trip(
        body in proptest::collection::vec(any::<u8>(), 0..4096),
        recipients in 1usize..4,
    ) {
        let domain = Domain::parse("example.com").unwrap();
        let part = MimePart::new("application/octet-stream", &body, &domain).unwrap();
        let raw = part.raw().clone();
        let recipients = (0..recipients).map(|i| Endpoint::parse(&format!("r{i}@example.net")).unwrap());
        let data = Data::new(Endpoint::parse("o@example.com").unwrap(), recipients);
        let payload = data.to_payload(&Content::Part(part));
        let (got, content) = Operation::parse(&payload).unwrap().into_data().unwrap();
        let Content::Part(got_part) = content else {
            return Err(TestCaseError::fail("part expected"));
        };
        prop_assert_eq!(got_part.raw(), &raw);
        prop_assert_eq!(got_part.body(), &body[..]);
        prop_assert_eq!(got.recipients.len(), data.recipients.len());
    }

    #[test]
    fn arbitrary_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Operation::parse(&input);
        let _ = Operation::parse_init(&input);
        let _ = imxp_apex::Response::parse(&input);
        let _ = imxp_apex::Response::parse_init(&input);
        let mut with_header = b"Content-Type: application/beep+xml\r\n\r\n".to_vec();
        with_header.extend_from_slice(&input);
        let _ = Operation::parse(&with_header);
    }
}
