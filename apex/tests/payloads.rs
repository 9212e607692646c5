//! Whole-payload behaviour: byte-exact content parts, round trips of every
//! writer, and hostile or invalid input mapped to the right error and reply
//! code.

use bytes::Bytes;
use imxp_apex::{
    AddressError, ApexError, ApexOption, Attach, Bind, Content, Data, DataContent, Domain,
    Endpoint, ErrorReply, Limits, MimeError, MimePart, Operation, ReplyCode, Response, Terminate,
    XmlError,
};

fn ep(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

fn domain() -> Domain {
    Domain::parse("example.com").unwrap()
}

/// Every octet value, CRLFs, bare CR and LF, and lines that look like
/// boundary delimiters of various kinds.
fn nasty_body() -> Vec<u8> {
    let mut body: Vec<u8> = (0..=255u8).collect();
    body.extend_from_slice(b"\r\n--boundary\r\n--boundary--\r\n--apex-\r\n--=_apex_0\r\n");
    body.extend_from_slice(b"\r\n\r\nContent-ID: <fake@example.com>\r\n\r\n");
    body.extend_from_slice(b"\n--boundary\n\r--boundary\r\r\n");
    body.extend((0..=255u8).rev());
    body.extend_from_slice(b"\r\n");
    body
}

fn part_of(content: &Content) -> &MimePart {
    match content {
        Content::Part(part) => part,
        other => panic!("part expected, got {other:?}"),
    }
}

#[test]
fn binary_part_survives_octet_for_octet() {
    let body = nasty_body();
    let part = MimePart::new("application/octet-stream", &body, &domain()).unwrap();
    let raw = part.raw().clone();
    let mut data = Data::new(ep("fred@example.com"), [ep("barney@rubble.com")]);
    data.options.push(ApexOption::status_request(86));
    let content = Content::Part(part);
    let payload = data.to_payload(&content);

    let parsed = Operation::parse(&payload).unwrap();
    let (got, got_content) = parsed.clone().into_data().unwrap();
    let got_part = part_of(&got_content);
    assert_eq!(got_part.raw(), &raw);
    assert_eq!(got_part.body(), &body[..]);
    assert_eq!(got_part, part_of(&content));
    data.set_content(&content);
    assert_eq!(got, data);

    // Forward again (new boundary, new root id): the part is unchanged.
    let again = got.to_payload(&got_content);
    assert_ne!(again, payload, "fresh boundary and root Content-ID");
    assert_eq!(Operation::parse(&again).unwrap(), parsed);

    // Zero-copy parse: the part is a slice of the payload buffer.
    let shared = Bytes::from(payload);
    let zero = Operation::parse_bytes(&shared, &Limits::default()).unwrap();
    let zero_part = part_of(zero.content.as_ref().unwrap());
    assert_eq!(zero_part.raw(), &raw);
    let start = shared.as_ptr() as usize;
    let at = zero_part.raw().as_ptr() as usize;
    assert!(at >= start && at + raw.len() <= start + shared.len());
}

#[test]
fn spooled_xml_and_part_rebuild_the_same_message() {
    let body = nasty_body();
    let part = MimePart::new("application/octet-stream", &body, &domain()).unwrap();
    let mut data = Data::new(ep("fred@example.com"), [ep("barney@rubble.com")]);
    data.set_content(&Content::Part(part.clone()));
    let parsed = Operation::parse(&data.to_payload(&Content::Part(part))).unwrap();
    let (data, content) = parsed.clone().into_data().unwrap();

    // What a spool would keep: the data element and the raw part.
    let xml = data.to_xml();
    let raw = part_of(&content).raw().to_vec();

    let data = Data::from_xml(xml.as_bytes(), &Limits::default()).unwrap();
    let part = MimePart::from_raw(raw).unwrap();
    let rebuilt = Operation::parse(&data.to_payload(&Content::Part(part))).unwrap();
    assert_eq!(rebuilt, parsed);
    assert!(Data::from_xml(b"<terminate />", &Limits::default()).is_err());
}

#[test]
fn received_part_with_boundary_lookalikes_is_kept_exactly() {
    let part: &[u8] = b"Content-Type: text/plain\r\nContent-ID: <2@example.com>\r\n\r\nline\r\n--boundaryX\r\n--boundary-\r\n--boundar\r\n--boundary --\r\n --boundary\r\nlast\r\n";
    let mut payload = b"Content-Type: multipart/related; boundary=\"boundary\"; start=\"<1@example.com>\"; type=\"application/beep+xml\"\r\n\r\nignored preamble\r\n--boundary\r\nContent-Type: application/beep+xml\r\nContent-ID: <1@example.com>\r\n\r\n<data content='cid:2@example.com'><originator identity='fred@example.com' /><recipient identity='barney@example.com' /></data>\r\n--boundary\r\n".to_vec();
    payload.extend_from_slice(part);
    payload.extend_from_slice(b"\r\n--boundary--\r\nignored epilogue\r\n");
    let (data, content) = Operation::parse(&payload).unwrap().into_data().unwrap();
    assert_eq!(&part_of(&content).raw()[..], part);
    assert!(part_of(&content).body().ends_with(b"last\r\n"));
    // Forwarded: the as-written reference is kept, the part is identical.
    let forwarded = data.to_payload(&content);
    let (again, again_content) = Operation::parse(&forwarded).unwrap().into_data().unwrap();
    assert_eq!(again.content, "cid:2@example.com");
    assert_eq!(&part_of(&again_content).raw()[..], part);
}

#[test]
fn part_may_come_before_the_xml_when_start_names_it() {
    let payload = b"Content-Type: multipart/related; boundary=b; start=\"<x@y>\"\r\n\r\n--b\r\nContent-ID: <p@y>\r\n\r\nPART\r\n--b\r\nContent-Type: application/beep+xml; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\nContent-ID: <x@y>\r\n\r\n<data content='cid:p@y'><originator identity='a@y' /><recipient identity='b@y' /></data>\r\n--b--\r\n";
    let (_, content) = Operation::parse(payload).unwrap().into_data().unwrap();
    assert_eq!(
        &part_of(&content).raw()[..],
        b"Content-ID: <p@y>\r\n\r\nPART"
    );
}

#[test]
fn text_datagram_builder() {
    let part = MimePart::new(
        "text/plain; charset=utf-8",
        "héllo, wörld\r\n".as_bytes(),
        &domain(),
    )
    .unwrap();
    assert!(part.content_id().ends_with("@example.com"));
    let data = Data::new(
        ep("fred@example.com"),
        [ep("barney@rubble.com"), ep("wilma/appl=im@example.com")],
    );
    let content = Content::Part(part.clone());
    let payload = data.to_payload(&content);
    assert!(payload.starts_with(b"Content-Type: multipart/related; boundary=\""));
    let (got, got_content) = Operation::parse(&payload).unwrap().into_data().unwrap();
    assert_eq!(got.content, part.cid_url());
    assert_eq!(got.recipients.len(), 2);
    assert_eq!(part_of(&got_content).body(), "héllo, wörld\r\n".as_bytes());
    assert_eq!(
        part_of(&got_content).content_type(),
        "text/plain; charset=utf-8"
    );
}

#[test]
fn inline_and_external_content() {
    let data = Data::new(ep("fred@example.com"), [ep("barney@example.com")]);
    let inline = DataContent::new("Msg", "\n  <note xml:lang='en'>hi &amp; bye</note>\n").unwrap();
    let payload = data.to_payload(&Content::Inline(inline.clone()));
    assert!(
        payload.starts_with(b"Content-Type: application/beep+xml\r\n\r\n<data content='#Msg'>")
    );
    let parsed = Operation::parse(&payload).unwrap();
    assert_eq!(parsed.content, Some(Content::Inline(inline)));

    let external = Content::External("http://example.com/blob#part".into());
    let payload = data.to_payload(&external);
    let parsed = Operation::parse(&payload).unwrap();
    assert_eq!(parsed.content, Some(external));
    let (got, _) = parsed.into_data().unwrap();
    assert_eq!(got.content, "http://example.com/blob#part");
}

#[test]
fn operations_round_trip_through_payloads() {
    let mut attach = Attach::new(ep("fred/appl=im@example.com"), 1);
    attach
        .options
        .push(ApexOption::internal("attachOverride").trans_id(3));
    let bind = Bind::new(Domain::parse("[IPv6:2001:db8::1]").unwrap(), 2_147_483_647);
    let mut terminate = Terminate::with_reason(
        0,
        ReplyCode::ATTACHMENT_OVERRIDDEN,
        "over <ridden> & 'gone'",
    );
    terminate.lang = Some("en".into());
    for op in [
        Operation::from(attach.clone()),
        Operation::from(bind.clone()),
        Operation::from(terminate),
        Operation::from(Terminate::new(7)),
    ] {
        let payload = match &op {
            Operation::Attach(a) => a.to_payload(),
            Operation::Bind(b) => b.to_payload(),
            Operation::Terminate(t) => t.to_payload(),
            Operation::Data(_) => unreachable!(),
        };
        let parsed = Operation::parse(&payload).unwrap();
        assert_eq!(parsed.operation, op);
        assert_eq!(parsed.content, None);
    }
    assert_eq!(
        attach.to_xml(),
        "<attach endpoint='fred/appl=im@example.com' transID='1'><option internal='attachOverride' transID='3' /></attach>"
    );
    assert_eq!(
        Operation::parse_init(attach.to_xml().as_bytes()).unwrap(),
        attach.into()
    );
    assert_eq!(
        Operation::parse_init(&bind.to_payload()).unwrap(),
        bind.into()
    );
    assert_eq!(Terminate::new(1).to_xml(), "<terminate transID='1' />");
    // A terminate without transID is transID 0 (DTD default): all of them.
    assert!(Operation::parse_init(b"<terminate />").is_err());
    let Operation::Terminate(all) =
        Operation::from_xml(b"<terminate />", &Limits::default()).unwrap()
    else {
        panic!("terminate expected")
    };
    assert!(all.is_all());
    assert_eq!(all.code, ReplyCode::APEX_OK);
}

fn code_of(payload: &[u8]) -> u16 {
    Operation::parse(payload).unwrap_err().reply_code().0
}

fn xml(body: &str) -> Vec<u8> {
    format!("Content-Type: application/beep+xml\r\n\r\n{body}").into_bytes()
}

#[test]
fn hostile_xml() {
    let doctype = xml(
        "<!DOCTYPE data [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]><terminate>&lol2;</terminate>",
    );
    assert_eq!(
        Operation::parse(&doctype).unwrap_err(),
        ApexError::Xml(XmlError::Doctype)
    );
    assert_eq!(code_of(&doctype), 500);
    let entity = xml("<attach endpoint='&ext;' transID='1' />");
    assert_eq!(
        Operation::parse(&entity).unwrap_err(),
        ApexError::Xml(XmlError::Entity("ext".into()))
    );
    assert_eq!(code_of(&xml("<terminate>&foo;</terminate>")), 500);
    assert_eq!(code_of(&xml("<attach endpoint='a@b' transID='1'>")), 500);
    assert_eq!(code_of(&xml("")), 500);
    assert_eq!(
        code_of(&xml("<attach endpoint='a@b' transID='1'/><x/>")),
        500
    );
    assert_eq!(
        code_of(b"Content-Type: application/beep+xml\r\n\r\n<terminate>\xff</terminate>"),
        500
    );

    // Deep nesting inside data-content (ANY) is bounded.
    let nested = "<x>".repeat(40) + &"</x>".repeat(40);
    let deep = xml(&format!(
        "<data content='#C'><originator identity='a@b' /><recipient identity='c@d' /><data-content Name='C'>{nested}</data-content></data>"
    ));
    assert_eq!(
        Operation::parse(&deep).unwrap_err(),
        ApexError::Xml(XmlError::TooDeep { limit: 32 })
    );
    assert_eq!(code_of(&deep), 554);
    let roomy = Limits::default().with_max_depth(64);
    assert!(Operation::parse_with(&deep, &roomy).is_ok());

    // Size bounds, on the XML and on the whole payload.
    let big_text = "x".repeat(300 * 1024);
    let huge = xml(&format!("<terminate>{big_text}</terminate>"));
    assert!(matches!(
        Operation::parse(&huge).unwrap_err(),
        ApexError::Xml(XmlError::TooLarge { .. })
    ));
    assert_eq!(code_of(&huge), 554);
    let small = Limits::default().with_max_payload(64);
    let payload = Terminate::with_reason(1, ReplyCode::APEX_OK, "x".repeat(64)).to_payload();
    assert!(matches!(
        Operation::parse_with(&payload, &small).unwrap_err(),
        ApexError::Mime(MimeError::TooLarge { .. })
    ));
    let few_headers = Limits::default().with_max_headers(16);
    assert_eq!(
        Operation::parse_with(&Terminate::new(1).to_payload(), &few_headers).unwrap_err(),
        ApexError::Mime(MimeError::Unterminated)
    );
}

#[test]
fn dtd_violations_are_501() {
    let cases: &[(&str, &str)] = &[
        ("<attach transID='1' />", "attach without endpoint"),
        (
            "<attach endpoint='fred@example.com' />",
            "attach without transID",
        ),
        (
            "<attach endpoint='fred@example.com' transID='0' />",
            "attach transID 0",
        ),
        (
            "<attach endpoint='fred@example.com' transID='2147483648' />",
            "transID too large",
        ),
        (
            "<attach endpoint='fred@example.com' transID='x' />",
            "transID not a number",
        ),
        (
            "<attach endpoint='fred@example.com' transID='1'>hello</attach>",
            "text in attach",
        ),
        (
            "<attach endpoint='fred@example.com' transID='1'><foo/></attach>",
            "foreign child",
        ),
        (
            "<attach endpoint='fred@example.com' transID='1' relay='x.com' />",
            "foreign attribute",
        ),
        ("<bind transID='1' />", "bind without relay"),
        ("<bind relay='example.com' transID='0' />", "bind transID 0"),
        ("<terminate transID='-1' />", "negative transID"),
        (
            "<terminate transID='2147483648' />",
            "terminate transID too large",
        ),
        ("<terminate transID='1' code='25' />", "bad code"),
        (
            "<terminate transID='1'><b/></terminate>",
            "element in terminate",
        ),
        (
            "<data><originator identity='a@b' /><recipient identity='c@d' /></data>",
            "data without content",
        ),
        (
            "<data content='urn:x'><originator /><recipient identity='c@d' /></data>",
            "originator without identity",
        ),
        (
            "<data content='urn:x'><originator identity='a@b' /></data>",
            "data without recipient",
        ),
        (
            "<data content='urn:x'><originator identity='a@b' /><recipient identity='c@d' /><option internal='a' external='urn:b' transID='1' /></data>",
            "both internal and external",
        ),
        (
            "<data content='urn:x'><originator identity='a@b' /><recipient identity='c@d' /><option transID='1' /></data>",
            "neither internal nor external",
        ),
        ("<ok />", "a reply as a MSG"),
        ("<error code='550' />", "a reply as a MSG"),
    ];
    for (body, why) in cases {
        assert_eq!(code_of(&xml(body)), 501, "{why}: {body}");
    }
    assert_eq!(
        Operation::parse(&xml("<attach endpoint='fred@example.com' />")).unwrap_err(),
        ApexError::MissingAttribute {
            element: "attach",
            attribute: "transID"
        }
    );
    // Unknown operations are 504, not a panic or a 500.
    assert_eq!(code_of(&xml("<publish />")), 504);
    assert_eq!(
        Operation::parse(&xml("<foo:attach endpoint='a@b' transID='1' />")).unwrap_err(),
        ApexError::UnknownElement("foo:attach".into())
    );
    // Init content is attach or bind only.
    assert_eq!(
        Operation::parse_init(b"<terminate transID='1' />")
            .unwrap_err()
            .reply_code()
            .0,
        501
    );
    assert_eq!(
        Operation::parse_init(b"<data content='urn:x'><originator identity='a@b' /><recipient identity='c@d' /></data>")
            .unwrap_err()
            .reply_code()
            .0,
        501
    );
}

#[test]
fn bad_addresses_are_553() {
    for body in [
        "<attach endpoint='fred' transID='1' />",
        "<attach endpoint='fred@' transID='1' />",
        "<attach endpoint=' fred@example.com' transID='1' />",
        "<attach endpoint='fred@exa mple.com' transID='1' />",
        "<bind relay='[10.0.0.256]' transID='1' />",
        "<bind relay='fred@example.com' transID='1' />",
        "<data content='urn:x'><originator identity='a@b' /><recipient identity='c@[1.2.3]' /></data>",
    ] {
        assert_eq!(code_of(&xml(body)), 553, "{body}");
    }
    // A control character is not even XML (XML 1.0 §2.2 Char): 500.
    assert_eq!(
        code_of(&xml(
            "<attach endpoint='fr&#1;ed@example.com' transID='1' />"
        )),
        500
    );
    assert_eq!(
        Operation::parse(&xml("<attach endpoint='fred' transID='1' />")).unwrap_err(),
        ApexError::Address {
            element: "attach",
            attribute: "endpoint",
            value: "fred".into(),
            source: AddressError::MissingAt
        }
    );
    // XML character references are the transmission encoding of attributes.
    let parsed = Operation::parse(&xml(
        "<attach endpoint='f&#x72;ed@example.com' transID='1' />",
    ))
    .unwrap();
    let Operation::Attach(attach) = parsed.operation else {
        panic!()
    };
    assert_eq!(attach.endpoint, ep("fred@example.com"));
}

fn related(root_headers: &str, xml: &str, parts: &[&str], content_type: &str) -> Vec<u8> {
    let mut out = format!("Content-Type: {content_type}\r\n\r\n--b\r\n{root_headers}\r\n\r\n{xml}");
    for part in parts {
        out.push_str("\r\n--b\r\n");
        out.push_str(part);
    }
    out.push_str("\r\n--b--\r\n");
    out.into_bytes()
}

const ROOT: &str = "Content-Type: application/beep+xml\r\nContent-ID: <r@x>";
const MT: &str = "multipart/related; boundary=b; start=\"<r@x>\"; type=\"application/beep+xml\"";
const DATA_CID: &str =
    "<data content='cid:p@x'><originator identity='a@x' /><recipient identity='b@x' /></data>";
const PART: &str = "Content-ID: <p@x>\r\n\r\nbody";

#[test]
fn multipart_errors() {
    assert!(Operation::parse(&related(ROOT, DATA_CID, &[PART], MT)).is_ok());
    let err = |payload: Vec<u8>| Operation::parse(&payload).unwrap_err();

    // References that do not resolve, parts nobody references: 553.
    let e = err(related(ROOT, DATA_CID, &[], MT));
    assert!(matches!(e, ApexError::ContentReference { .. }), "{e}");
    assert_eq!(e.reply_code().0, 553);
    let e = err(related(
        ROOT,
        DATA_CID,
        &["Content-ID: <q@x>\r\n\r\nbody"],
        MT,
    ));
    assert_eq!(e.reply_code().0, 553);
    let external =
        "<data content='urn:x'><originator identity='a@x' /><recipient identity='b@x' /></data>";
    assert_eq!(
        err(related(ROOT, external, &[PART], MT)).reply_code().0,
        553
    );
    assert_eq!(
        err(related(ROOT, "<terminate transID='1' />", &[PART], MT))
            .reply_code()
            .0,
        553
    );
    assert_eq!(
        err(related(
            ROOT,
            external,
            &["Content-Type: text/plain\r\n\r\nno id"],
            MT
        )),
        ApexError::Mime(MimeError::MissingContentId)
    );
    assert!(Operation::parse(&related(ROOT, "<terminate transID='1' />", &[], MT)).is_ok());

    // MIME framing: 500.
    let mime = |payload: Vec<u8>| match err(payload) {
        ApexError::Mime(e) => {
            assert_eq!(e.reply_code().0, 500);
            e
        }
        other => panic!("MIME error expected, got {other}"),
    };
    assert_eq!(
        mime(related(ROOT, DATA_CID, &[PART, PART], MT)),
        MimeError::TooManyParts(3)
    );
    assert_eq!(
        mime(related(ROOT, DATA_CID, &["Content-ID: <r@x>\r\n\r\n"], MT)),
        MimeError::DuplicateContentId("r@x".into())
    );
    assert_eq!(
        mime(related(
            ROOT,
            DATA_CID,
            &[PART],
            "multipart/related; boundary=b; start=\"<nope@x>\""
        )),
        MimeError::StartNotFound("nope@x".into())
    );
    assert_eq!(
        mime(related(
            ROOT,
            DATA_CID,
            &[PART],
            "multipart/related; start=\"<r@x>\""
        )),
        MimeError::Boundary
    );
    assert_eq!(
        mime(related(
            ROOT,
            DATA_CID,
            &[PART],
            "multipart/related; boundary=b; type=\"text/xml\""
        )),
        MimeError::RelatedType("text/xml".into())
    );
    assert_eq!(
        mime(related(
            ROOT,
            DATA_CID,
            &[PART],
            "multipart/mixed; boundary=b"
        )),
        MimeError::ContentType("multipart/mixed".into())
    );
    assert_eq!(
        mime(related(
            "Content-Type: text/xml\r\nContent-ID: <r@x>",
            DATA_CID,
            &[PART],
            MT
        )),
        MimeError::RootContentType("text/xml".into())
    );
    assert_eq!(
        mime(related(
            "Content-Type: application/beep+xml\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <r@x>",
            DATA_CID,
            &[PART],
            MT
        )),
        MimeError::TransferEncoding("base64".into())
    );
    assert_eq!(
        mime(related(
            "Content-Type: application/beep+xml; charset=iso-8859-1\r\nContent-ID: <r@x>",
            DATA_CID,
            &[PART],
            MT
        )),
        MimeError::Charset("iso-8859-1".into())
    );
    let mut truncated = related(ROOT, DATA_CID, &[PART], MT);
    truncated.truncate(truncated.len() - 8);
    assert_eq!(mime(truncated), MimeError::Truncated);
    assert_eq!(
        mime(b"\r\n<terminate transID='1' />".to_vec()),
        MimeError::ContentType("application/octet-stream".into())
    );
    assert_eq!(
        mime(b"Content-Type: text/plain\r\n\r\n<terminate transID='1' />".to_vec()),
        MimeError::ContentType("text/plain".into())
    );
    assert_eq!(
        mime(b"<terminate transID='1' />".to_vec()),
        MimeError::Unterminated
    );
}

#[test]
fn errors_become_error_replies() {
    let error = Operation::parse(&xml("<attach endpoint='fred' transID='1' />")).unwrap_err();
    let reply: ErrorReply = error.clone().into();
    assert_eq!(reply.code, ReplyCode::PARAMETER_INVALID);
    assert_eq!(reply.text, error.to_string());
    let back = Response::parse(&reply.to_payload()).unwrap();
    assert_eq!(back, Response::Error(reply));
}
