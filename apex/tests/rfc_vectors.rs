//! Every APEX example of RFC 3340, 3341, 3342 and 3343 (
//! Appendix A.2–A.5), copied verbatim into `tests/vectors/`, parses; what
//! parses round-trips through the writers unchanged.
//!
//! A vector file holds the example as printed: an optional ASCII diagram,
//! then `C:` / `S:` lines. Indented lines continue the element above them.
//! A `C:` chunk starting with `MSG` is a whole BEEP frame, whose payload is
//! the lines up to `END` joined with CRLF (the RFC sizes are placeholders).

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use imxp_apex::{
    ApexError, Content, Data, Operation, ParsedMessage, ReplyCode, Response, StatusResponse,
    TargetHop, XmlError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

#[derive(Debug)]
struct Chunk {
    side: Side,
    lines: Vec<String>,
}

impl Chunk {
    fn is_frame(&self) -> bool {
        self.lines[0].starts_with("MSG ")
    }

    /// The element text of a bare chunk.
    fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The payload of a frame chunk: header line and `END` dropped, CRLF
    /// line ends.
    fn payload(&self) -> Vec<u8> {
        assert_eq!(self.lines.last().map(String::as_str), Some("END"));
        let body = &self.lines[1..self.lines.len() - 1];
        let mut out = body.join("\r\n").into_bytes();
        out.extend_from_slice(b"\r\n");
        out
    }
}

fn vectors() -> BTreeMap<String, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read_to_string(&path).unwrap())
        })
        .collect()
}

fn chunks(text: &str) -> Vec<Chunk> {
    let mut chunks: Vec<Chunk> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let prefixed = match line.get(..2) {
            Some("C:") => Some(Side::Client),
            Some("S:") => Some(Side::Server),
            _ => None,
        };
        match prefixed {
            Some(side) => {
                let after = &line[2..];
                let rest = after.strip_prefix(' ').unwrap_or(after).to_owned();
                let open_frame = chunks.last().is_some_and(|c| {
                    c.side == side && c.is_frame() && c.lines.last().unwrap() != "END"
                });
                if open_frame {
                    chunks.last_mut().unwrap().lines.push(rest);
                } else {
                    chunks.push(Chunk {
                        side,
                        lines: vec![rest],
                    });
                }
            }
            None => {
                // Continuation of the element above; diagram lines come
                // before the first chunk and are skipped.
                if let Some(chunk) = chunks.last_mut()
                    && !line.trim().is_empty()
                {
                    chunk.lines.push(line.to_owned());
                }
            }
        }
    }
    chunks
}

fn beep_xml(xml: &str) -> Vec<u8> {
    format!("Content-Type: application/beep+xml\r\n\r\n{xml}\r\n").into_bytes()
}

/// A multipart/related payload laid out as RFC 3340 §4.1 shows it, written
/// by hand (not by the crate), with `xml` as the start part and a GIF-ish
/// part with Content-ID `cid`.
fn related(xml: &str, cid: &str) -> (Vec<u8>, Vec<u8>) {
    let part = format!(
        "Content-Type: image/gif\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{cid}>\r\n\r\nGIF89a..."
    )
    .into_bytes();
    let mut payload = format!(
        "Content-Type: multipart/related; boundary=\"boundary\";\r\n              start=\"<root@example.com>\";\r\n              type=\"application/beep+xml\"\r\n\r\n--boundary\r\nContent-Type: application/beep+xml\r\nContent-ID: <root@example.com>\r\n\r\n{xml}\r\n--boundary\r\n"
    )
    .into_bytes();
    payload.extend_from_slice(&part);
    payload.extend_from_slice(b"\r\n--boundary--\r\n");
    (payload, part)
}

/// The one known-bad example: RFC 3343 §2.3 (lines 374-381) prints
/// `<data-content Name='Content'` without its `>` (an error in the RFC text).
const MALFORMED: &str = "rfc3343-2.3-lines-374-381.txt";

/// Checks shared by every parsed operation: the writers round-trip it, and
/// verbatim content is a substring of the source.
fn check_round_trip(name: &str, source: &str, parsed: &ParsedMessage) {
    let op = &parsed.operation;
    assert_eq!(
        &Operation::from_xml(op.to_xml().as_bytes(), &Default::default()).unwrap(),
        op,
        "{name}: to_xml/from_xml"
    );
    match (op, &parsed.content) {
        (Operation::Data(data), Some(content)) => {
            let payload = data.to_payload(content);
            assert_eq!(
                &Operation::parse(&payload).unwrap(),
                parsed,
                "{name}: to_payload/parse"
            );
            if let Content::Inline(inline) = content {
                assert!(
                    source.contains(&inline.xml),
                    "{name}: data-content verbatim"
                );
            }
            let options = data
                .options
                .iter()
                .chain(&data.originator.options)
                .chain(data.recipients.iter().flat_map(|r| &r.options));
            for option in options {
                assert!(source.contains(&option.content), "{name}: option verbatim");
            }
        }
        (Operation::Data(_), None) => panic!("{name}: data without content"),
        (other, None) => {
            let payload = match other {
                Operation::Attach(a) => a.to_payload(),
                Operation::Bind(b) => b.to_payload(),
                Operation::Terminate(t) => t.to_payload(),
                Operation::Data(_) => unreachable!(),
            };
            assert_eq!(
                &Operation::parse(&payload).unwrap(),
                parsed,
                "{name}: payload"
            );
        }
        (_, Some(_)) => panic!("{name}: content on a non-data operation"),
    }
}

#[test]
fn every_rfc_example_parses() {
    let vectors = vectors();
    assert_eq!(
        vectors.len(),
        68,
        "A.2 (25) + A.3 (15) + A.4 (13) + A.5 (15)"
    );
    let mut operations = 0;
    let mut responses = 0;
    let mut malformed = 0;
    for (name, text) in &vectors {
        let chunks = chunks(text);
        assert!(!chunks.is_empty(), "{name}: no C:/S: lines");
        for chunk in chunks {
            match (chunk.side, chunk.is_frame()) {
                (Side::Client, true) => {
                    let payload = chunk.payload();
                    let parsed =
                        Operation::parse(&payload).unwrap_or_else(|e| panic!("{name}: {e}"));
                    check_round_trip(name, &String::from_utf8_lossy(&payload), &parsed);
                    operations += 1;
                }
                (Side::Client, false) => {
                    let xml = chunk.text();
                    if name == MALFORMED {
                        let error =
                            Operation::from_xml(xml.as_bytes(), &Default::default()).unwrap_err();
                        assert!(
                            matches!(error, ApexError::Xml(XmlError::Syntax { .. })),
                            "{name}: {error}"
                        );
                        assert_eq!(error.reply_code(), ReplyCode::SYNTAX_ERROR);
                        malformed += 1;
                        continue;
                    }
                    let op = Operation::from_xml(xml.as_bytes(), &Default::default())
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    // As a MSG payload: a cid: content needs its MIME part.
                    let cid = match &op {
                        Operation::Data(d) => d.content.strip_prefix("cid:").map(str::to_owned),
                        _ => None,
                    };
                    let parsed = match cid {
                        Some(cid) => {
                            let (payload, part) = related(&xml, &cid);
                            let parsed = Operation::parse(&payload)
                                .unwrap_or_else(|e| panic!("{name}: {e}"));
                            let Some(Content::Part(p)) = &parsed.content else {
                                panic!("{name}: part expected");
                            };
                            assert_eq!(&p.raw()[..], &part[..], "{name}: part octets");
                            assert_eq!(p.content_id(), cid);
                            parsed
                        }
                        None => Operation::parse(&beep_xml(&xml))
                            .unwrap_or_else(|e| panic!("{name}: {e}")),
                    };
                    assert_eq!(parsed.operation, op, "{name}");
                    if matches!(op, Operation::Attach(_) | Operation::Bind(_)) {
                        assert_eq!(Operation::parse_init(xml.as_bytes()).unwrap(), op);
                    }
                    check_round_trip(name, &xml, &parsed);
                    operations += 1;
                }
                (Side::Server, _) => {
                    let xml = chunk.text();
                    let response = Response::parse_init(xml.as_bytes())
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(Response::parse(&beep_xml(&xml)).unwrap(), response);
                    assert_eq!(Response::parse(&response.to_payload()).unwrap(), response);
                    responses += 1;
                }
            }
        }
    }
    // 70 client chunks less the malformed one; 63 printed replies (the
    // frame-only examples show none).
    assert_eq!(operations, 69);
    assert_eq!(malformed, 1);
    assert_eq!(responses, 63);
}

fn parse_vector(name: &str) -> ParsedMessage {
    let text = &vectors()[name];
    let chunk = chunks(text)
        .into_iter()
        .find(|c| c.side == Side::Client)
        .unwrap();
    if chunk.is_frame() {
        Operation::parse(&chunk.payload()).unwrap()
    } else {
        let xml = chunk.text();
        match Operation::from_xml(xml.as_bytes(), &Default::default()).unwrap() {
            Operation::Data(d) if d.content.starts_with("cid:") => {
                let cid = d.content["cid:".len()..].to_owned();
                Operation::parse(&related(&xml, &cid).0).unwrap()
            }
            _ => Operation::parse(&beep_xml(&xml)).unwrap(),
        }
    }
}

fn data_of(name: &str) -> (Data, Content) {
    parse_vector(name).into_data().unwrap()
}

#[test]
fn rfc3340_section_4_1_examples() {
    let parsed = parse_vector("rfc3340-4.1-lines-475-479.txt");
    let Operation::Terminate(t) = parsed.operation else {
        panic!("terminate expected")
    };
    assert_eq!(
        (t.trans_id, t.code, t.text.as_str()),
        (1, ReplyCode::APEX_OK, "")
    );

    let (data, content) = data_of("rfc3340-4.1-lines-490-518.txt");
    assert_eq!(data.content, "cid:2@example.com");
    assert_eq!(data.originator.identity.to_string(), "fred@example.com");
    let Content::Part(part) = content else {
        panic!("part expected")
    };
    assert_eq!(
        &part.raw()[..],
        b"Content-Type: image/gif\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <2@example.com>\r\n\r\n..."
    );
    assert_eq!(part.body(), b"...");
    assert_eq!(part.content_type(), "image/gif");

    let (data, content) = data_of("rfc3340-4.1-lines-530-544.txt");
    let Content::Inline(inline) = content else {
        panic!("inline expected")
    };
    assert_eq!(inline.name, "Content");
    assert_eq!(data.data_content.as_ref(), Some(&inline));
    let status = StatusResponse::from_data_content(&inline).unwrap();
    assert_eq!(status.trans_id, 86);
    assert_eq!(
        status.destinations[0].identity.to_string(),
        "barney@example.com"
    );
    assert_eq!(status.destinations[0].reply.code, ReplyCode::APEX_OK);
}

#[test]
fn rfc3340_operations() {
    let Operation::Attach(a) = parse_vector("rfc3340-4.4.1-lines-601-602.txt").operation else {
        panic!()
    };
    assert_eq!(
        (a.endpoint.to_string().as_str(), a.trans_id),
        ("fred@example.com", 1)
    );
    let Operation::Bind(b) = parse_vector("rfc3340-4.4.2-lines-718-719.txt").operation else {
        panic!()
    };
    assert_eq!((b.relay.as_str(), b.trans_id), ("example.com", 1));
    let Operation::Terminate(t) = parse_vector("rfc3340-4.4.3-lines-778-779.txt").operation else {
        panic!()
    };
    assert_eq!(t.trans_id, 13);
    let text = &vectors()["rfc3340-4.4.3-lines-778-779.txt"];
    let reply = chunks(text)
        .into_iter()
        .find(|c| c.side == Side::Server)
        .unwrap();
    let Response::Error(error) = Response::parse_init(reply.text().as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(error.code, ReplyCode::ACTION_NOT_TAKEN);
    assert_eq!(error.text, "unknown transaction-identifier");

    let (data, content) = data_of("rfc3340-5.1-lines-1221-1227.txt");
    assert!(matches!(content, Content::Part(_)));
    let option = &data.options[0];
    assert!(option.is_internal("statusRequest"));
    assert_eq!(option.target_hop, TargetHop::Final);
    assert!(option.must_understand);
    assert_eq!(option.trans_id, Some(86));

    let (_, content) = data_of("rfc3340-5.1-lines-1301-1313.txt");
    let Content::Inline(inline) = content else {
        panic!()
    };
    let status = StatusResponse::from_data_content(&inline).unwrap();
    let reply = &status.destinations[0].reply;
    assert_eq!(reply.code, ReplyCode::ACTION_NOT_TAKEN);
    assert!(reply.text.starts_with("unknown endpoint\n"));
    assert!(reply.text.ends_with("identity"));

    let (data, _) = data_of("rfc3340-5.1-lines-1371-1382.txt");
    assert!(data.originator.identity.is_service());
    assert_eq!(data.originator.identity.service_name(), Some("report"));
}

#[test]
fn rfc3342_options_keep_unknown_content() {
    let (data, _) = data_of("rfc3342-2.1.1-lines-295-303.txt");
    let timing = &data.options[0];
    assert!(timing.is_internal("dataTiming"));
    assert_eq!(timing.target_hop, TargetHop::All);
    assert_eq!(
        timing.content.trim(),
        "<dataTiming noLaterThan='10000' returnTrip='20000' />"
    );

    // hold4Endpoint without transID (erratum 8).
    let (data, _) = data_of("rfc3342-3-lines-631-640.txt");
    assert!(data.options[0].is_internal("hold4Endpoint"));
    assert_eq!(data.options[0].trans_id, None);
    assert_eq!(data.options[0].content, "");
    assert_eq!(
        data.options[1].content.trim(),
        "<dataTiming noLaterThan='60000' />"
    );

    // attachOverride inside attach.
    let Operation::Attach(a) = parse_vector("rfc3342-1-lines-143-146.txt").operation else {
        panic!()
    };
    assert_eq!(a.trans_id, 2);
    assert!(a.options[0].is_internal("attachOverride"));
    assert_eq!(a.options[0].trans_id, Some(3));

    let Operation::Terminate(t) = parse_vector("rfc3342-1-lines-148-149.txt").operation else {
        panic!()
    };
    assert_eq!((t.trans_id, t.code), (1, ReplyCode::ATTACHMENT_OVERRIDDEN));
    assert_eq!(t.text, "overriden");

    // The pubsub leftover (erratum 19) is an address with a subaddress.
    let (data, _) = data_of("rfc3342-4-lines-743-751.txt");
    assert_eq!(data.originator.identity.address(), "appl=pubsub");
    assert_eq!(data.originator.identity.subaddress(), Some("topic=fred"));
    assert_eq!(
        data.options[0].content.trim(),
        "<dataHopping noMoreThan='2' reportErrors='true' />"
    );
}

#[test]
fn service_documents_stay_verbatim() {
    // RFC 3341 §4.1: the content part is itself application/beep+xml; it
    // stays an opaque part.
    let (data, content) = data_of("rfc3341-4.1-lines-809-830.txt");
    assert_eq!(
        data.recipients[0].identity.to_string(),
        "apex=access@example.com"
    );
    let Content::Part(part) = content else {
        panic!()
    };
    assert_eq!(
        &part.raw()[..],
        b"Content-Type: application/beep+xml\r\nContent-ID: <2@example.com>\r\n\r\n<query owner='fred@example.com' transID='1'\r\n       actor='barney@example.com'\r\n       actions='core:data presence:subscribe' />"
    );

    // RFC 3343 §2.1: nested presence document inline, verbatim.
    let (_, content) = data_of("rfc3343-2.1-lines-146-164.txt");
    let Content::Inline(inline) = content else {
        panic!()
    };
    assert!(
        inline
            .xml
            .contains("destination='apex:fred/appl=im@example.com'")
    );
    assert!(
        inline
            .xml
            .trim_start()
            .starts_with("<publish publisher='fred@example.com'")
    );
    assert!(inline.xml.trim_end().ends_with("</publish>"));

    // `terminate` inside data-content is service content, not an operation
    // (erratum 21): it stays text.
    let (_, content) = data_of("rfc3343-2.2-lines-296-303.txt");
    let Content::Inline(inline) = content else {
        panic!()
    };
    assert_eq!(inline.xml.trim(), "<terminate transID='100' />");
}
