//! The payloads an endpoint writes and reads on its APEX channel (RFC 3340
//! §4.1, §4.4), as pure functions: building `data` with a MIME content
//! part, reading the relay's replies (`<ok />`, `<error>`), and sorting the
//! MSGs the relay sends (`data` to deliver, `terminate`, anything else to
//! refuse, §4.4.4.2).

use crate::error::ClientError;
use base64::Engine as _;
use bytes::Bytes;
use imxp_apex::{
    ApexError, Content, Data, Endpoint, ErrorReply, Limits, MimePart, Operation, ReplyCode,
    Response, Terminate,
};
use imxp_beep::io::Response as BeepResponse;

/// The content type of text datagrams sent by [`text_data`].
pub const TEXT_PLAIN_UTF8: &str = "text/plain; charset=utf-8";

/// The content type reported for inline `data-content` (an XML fragment of
/// the control document, e.g. a report service's `statusResponse`).
pub const INLINE_CONTENT_TYPE: &str = "application/beep+xml";

/// The content type reported for a `content` attribute that is an absolute
/// URI; the content is the URI itself (never dereferenced).
pub const EXTERNAL_CONTENT_TYPE: &str = "text/uri-list";

/// A `data` from `from` to `to` whose content is one MIME part of type
/// `content_type` holding `body` octet for octet (a fresh Content-ID at the
/// originator's domain, `Content-Transfer-Encoding: binary`).
pub fn build_data(
    from: &Endpoint,
    to: &[Endpoint],
    content_type: &str,
    body: &[u8],
) -> Result<(Data, Content), ClientError> {
    let part = MimePart::new(content_type, body, from.domain())?;
    let data = Data::new(from.clone(), to.iter().cloned());
    Ok((data, Content::Part(part)))
}

/// [`build_data`] for UTF-8 text (`text/plain; charset=utf-8`).
pub fn text_data(from: &Endpoint, to: &[Endpoint], text: &str) -> (Data, Content) {
    let part = MimePart::new(TEXT_PLAIN_UTF8, text.as_bytes(), from.domain())
        .unwrap_or_else(|_| unreachable!("a constant, valid content type"));
    (
        Data::new(from.clone(), to.iter().cloned()),
        Content::Part(part),
    )
}

/// Reads the relay's answer to an operation sent as MSG: `Ok` for RPY
/// `<ok />`, [`ClientError::Refused`] for an `<error>`, and
/// [`ClientError::Protocol`] for anything else.
pub fn outcome(response: &BeepResponse) -> Result<(), ClientError> {
    match response {
        BeepResponse::Reply(payload) => match Response::parse(payload) {
            Ok(Response::Ok) => Ok(()),
            // An <error> carried by RPY is still a refusal.
            Ok(Response::Error(error)) => Err(refused(error)),
            Err(error) => Err(ClientError::Protocol(format!("unreadable reply: {error}"))),
        },
        BeepResponse::Error(payload) => match Response::parse(payload) {
            Ok(Response::Error(error)) => Err(refused(error)),
            Ok(Response::Ok) => Err(ClientError::Protocol("ERR carrying <ok />".into())),
            Err(error) => Err(ClientError::Protocol(format!(
                "unreadable error reply: {error}"
            ))),
        },
        BeepResponse::Answers(_) => Err(ClientError::Protocol(
            "one-to-many answers to an APEX operation".into(),
        )),
    }
}

/// Reads the init reply of the `<start>` that carried an `attach`
/// (docs/decisions.md, APEX core): `<ok />` or `<error>` as the `<profile>`'s content.
pub fn init_outcome(init: Option<&[u8]>) -> Result<(), ClientError> {
    let init = init.ok_or_else(|| {
        ClientError::Protocol("the relay started the channel without answering the attach".into())
    })?;
    match Response::parse_init(init) {
        Ok(Response::Ok) => Ok(()),
        Ok(Response::Error(error)) => Err(refused(error)),
        Err(error) => Err(ClientError::Protocol(format!(
            "unreadable reply to the attach: {error}"
        ))),
    }
}

fn refused(error: ErrorReply) -> ClientError {
    ClientError::Refused {
        code: error.code,
        text: error.text,
    }
}

/// A datagram for this endpoint, as read from a MSG `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The `data` element (originator, recipients, options).
    pub data: Data,
    /// The first recipient this application is attached as.
    pub recipient: Endpoint,
    /// The content's media type (see [`Delivery::content`]).
    pub content_type: String,
    /// The content: a MIME part's body with any transfer encoding undone;
    /// an inline `data-content`'s XML ([`INLINE_CONTENT_TYPE`]); or an
    /// external URI ([`EXTERNAL_CONTENT_TYPE`]).
    pub content: Bytes,
    /// The MIME part octet for octet (headers and body), if the content is
    /// one: what a signature (PGP/MIME, S/MIME) covers.
    pub part: Option<MimePart>,
}

/// What to do with a MSG the relay sent on the attach channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A datagram for an endpoint this application is attached as: hand it
    /// to the application, which acknowledges it with `<ok />`.
    Deliver(Box<Delivery>),
    /// The relay ends one attachment (or all, transID 0).
    Terminate(Terminate),
    /// Answer ERR with this error and go on.
    Refuse(ErrorReply),
}

/// Sorts a MSG payload from the relay. `attached` tells whether the
/// application is attached as an endpoint; a `data` none of whose
/// recipients is attached is refused with 550 (RFC 3340 §4.4.4.2: "if no
/// recipient succeeded → error"), an unreadable payload with the code its
/// parse error maps to, and `attach` / `bind` (which a relay does not send
/// to an endpoint) with 537.
pub fn classify(payload: &Bytes, attached: impl Fn(&Endpoint) -> bool, limits: &Limits) -> Inbound {
    let message = match Operation::parse_bytes(payload, limits) {
        Ok(message) => message,
        Err(error) => return Inbound::Refuse(error.to_error_reply()),
    };
    match message.operation {
        Operation::Data(data) => {
            let Some(recipient) = data.recipient_identities().find(|e| attached(e)).cloned() else {
                let named = data
                    .recipient_identities()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                return Inbound::Refuse(ErrorReply::new(
                    ReplyCode::ACTION_NOT_TAKEN,
                    format!("not attached as {named}"),
                ));
            };
            let Some(content) = message.content else {
                return Inbound::Refuse(
                    ApexError::UnexpectedElement {
                        expected: "data with content",
                        found: "data".into(),
                    }
                    .to_error_reply(),
                );
            };
            let (content_type, body, part) = match content {
                Content::Part(part) => {
                    let (content_type, body) = decode_part(&part);
                    (content_type, body, Some(part))
                }
                Content::Inline(inline) => (
                    INLINE_CONTENT_TYPE.to_owned(),
                    Bytes::from(inline.xml.into_bytes()),
                    None,
                ),
                Content::External(uri) => (
                    EXTERNAL_CONTENT_TYPE.to_owned(),
                    Bytes::from(uri.into_bytes()),
                    None,
                ),
            };
            Inbound::Deliver(Box::new(Delivery {
                data,
                recipient,
                content_type,
                content: body,
                part,
            }))
        }
        Operation::Terminate(terminate) => Inbound::Terminate(terminate),
        Operation::Attach(_) | Operation::Bind(_) => Inbound::Refuse(ErrorReply::new(
            ReplyCode::NOT_AUTHORIZED,
            format!("{} is not sent to an endpoint", message.operation.name()),
        )),
    }
}

/// A part's media type and body with its Content-Transfer-Encoding undone
/// (RFC 2045 §6). `7bit`, `8bit`, `binary` and none leave the body as it
/// is; an unknown or undecodable encoding leaves it too and reports
/// `application/octet-stream`, as RFC 2045 §6.4 asks.
pub fn decode_part(part: &MimePart) -> (String, Bytes) {
    let raw = part.raw();
    let body_start = raw.len() - part.body().len();
    let body = raw.slice(body_start..);
    let encoding = part
        .header("Content-Transfer-Encoding")
        .map(|value| value.trim().to_ascii_lowercase());
    let decoded = match encoding.as_deref() {
        None | Some("7bit" | "8bit" | "binary") => Some(body.clone()),
        Some("base64") => decode_base64(&body).map(Bytes::from),
        Some("quoted-printable") => Some(Bytes::from(decode_quoted_printable(&body))),
        Some(_) => None,
    };
    match decoded {
        Some(content) => (part.content_type(), content),
        None => ("application/octet-stream".to_owned(), body),
    }
}

fn decode_base64(body: &[u8]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

/// RFC 2045 §6.7: `=XY` is the octet 0xXY, `=` at the end of a line is a
/// soft line break, trailing white space on a line is transport padding.
/// A malformed `=` is kept as it is (the "robust" reading of rule 1).
fn decode_quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while !rest.is_empty() {
        let (line, ending, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(at) if at > 0 && rest[at - 1] == b'\r' => {
                (&rest[..at - 1], &rest[at - 1..=at], &rest[at + 1..])
            }
            Some(at) => (&rest[..at], &rest[at..=at], &rest[at + 1..]),
            None => (rest, &rest[rest.len()..], &rest[rest.len()..]),
        };
        rest = next;
        let end = line
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .map_or(0, |last| last + 1);
        let line = &line[..end];
        let (line, soft) = match line.strip_suffix(b"=") {
            Some(line) => (line, true),
            None => (line, false),
        };
        let mut i = 0;
        while i < line.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            match (line[i], line.get(i + 1).copied(), line.get(i + 2).copied()) {
                (b'=', Some(high), Some(low)) if hex(high).is_some() && hex(low).is_some() => {
                    out.push(((hex(high).unwrap_or(0) << 4) | hex(low).unwrap_or(0)) as u8);
                    i += 3;
                }
                (byte, _, _) => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        if !soft {
            out.extend_from_slice(ending);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(text: &str) -> Endpoint {
        Endpoint::parse(text).unwrap()
    }

    fn fred() -> Endpoint {
        endpoint("fred@example.com")
    }

    fn barney() -> Endpoint {
        endpoint("barney@example.org")
    }

    #[test]
    fn a_text_datagram_is_multipart_related_with_the_text_octet_for_octet() {
        let (data, content) = text_data(&fred(), &[barney()], "hi barney\r\n--x ünïcödé");
        let payload = data.to_payload(&content);
        let head = std::str::from_utf8(&payload[..payload.len().min(200)]).unwrap_or("");
        assert!(
            head.starts_with("Content-Type: multipart/related; boundary="),
            "{head}"
        );
        assert!(head.contains("type=\"application/beep+xml\""), "{head}");
        let parsed = Operation::parse(&payload).unwrap();
        let (back, content) = parsed.into_data().unwrap();
        assert_eq!(back.originator.identity, fred());
        assert_eq!(back.recipient_identities().collect::<Vec<_>>(), [&barney()]);
        let Content::Part(part) = &content else {
            panic!("not a part: {content:?}")
        };
        assert_eq!(back.content, part.cid_url());
        assert!(part.content_id().ends_with("@example.com"));
        assert_eq!(part.content_type(), TEXT_PLAIN_UTF8);
        assert_eq!(part.body(), "hi barney\r\n--x ünïcödé".as_bytes());
    }

    #[test]
    fn binary_content_and_several_recipients() {
        let body: Vec<u8> = (0..=255).collect();
        let to = [barney(), endpoint("wilma/appl=wb@example.org")];
        let (data, content) = build_data(&fred(), &to, "application/octet-stream", &body).unwrap();
        let payload = data.to_payload(&content);
        let (back, content) = Operation::parse(&payload).unwrap().into_data().unwrap();
        assert_eq!(back.recipient_identities().cloned().collect::<Vec<_>>(), to);
        let Content::Part(part) = content else {
            panic!("not a part")
        };
        assert_eq!(part.body(), &body[..]);
        assert_eq!(decode_part(&part).1, body);
    }

    #[test]
    fn an_invalid_content_type_is_refused_before_sending() {
        for bad in ["text", "text/plain\r\nX-Injected: 1", ""] {
            let error = build_data(&fred(), &[barney()], bad, b"x").unwrap_err();
            assert!(matches!(error, ClientError::Mime(_)), "{bad:?}: {error}");
        }
    }

    #[test]
    fn replies() {
        let ok = BeepResponse::Reply(Bytes::from_static(imxp_apex::reply::OK_PAYLOAD));
        assert!(outcome(&ok).is_ok());
        let denied = ErrorReply::new(ReplyCode::NOT_AUTHORIZED, "access denied");
        let error = outcome(&BeepResponse::Error(denied.to_payload().into())).unwrap_err();
        assert!(
            matches!(&error, ClientError::Refused { code, text } if code.0 == 537 && text == "access denied"),
            "{error}"
        );
        assert_eq!(error.refused_code(), Some(ReplyCode::NOT_AUTHORIZED));
        let in_rpy = outcome(&BeepResponse::Reply(denied.to_payload().into())).unwrap_err();
        assert_eq!(in_rpy.refused_code(), Some(ReplyCode::NOT_AUTHORIZED));
        for odd in [
            BeepResponse::Error(Bytes::from_static(imxp_apex::reply::OK_PAYLOAD)),
            BeepResponse::Reply(Bytes::from_static(b"Content-Type: text/plain\r\n\r\nok")),
            BeepResponse::Error(Bytes::from_static(b"garbage")),
            BeepResponse::Answers(vec![]),
        ] {
            let error = outcome(&odd).unwrap_err();
            assert!(
                matches!(error, ClientError::Protocol(_)),
                "{odd:?}: {error}"
            );
        }
    }

    #[test]
    fn init_replies() {
        assert!(init_outcome(Some(b"<ok />")).is_ok());
        assert!(init_outcome(Some(imxp_apex::reply::OK_PAYLOAD)).is_ok());
        for (init, code) in [
            (&b"<error code='555'>in use</error>"[..], 555),
            (b"<error code='553'>not served here</error>", 553),
            (b"<error code='537'>access denied</error>", 537),
            (b"<error code='554'>already attached</error>", 554),
        ] {
            let error = init_outcome(Some(init)).unwrap_err();
            assert_eq!(error.refused_code().map(|c| c.0), Some(code), "{error}");
        }
        assert!(matches!(init_outcome(None), Err(ClientError::Protocol(_))));
        assert!(matches!(
            init_outcome(Some(b"<greeting/>")),
            Err(ClientError::Protocol(_))
        ));
    }

    fn attached_as(endpoints: &[Endpoint]) -> impl Fn(&Endpoint) -> bool + '_ {
        move |e| endpoints.contains(e)
    }

    #[test]
    fn a_data_for_an_attached_recipient_is_delivered() {
        let (data, content) = text_data(&barney(), &[fred()], "hi fred");
        let payload = Bytes::from(data.to_payload(&content));
        let Inbound::Deliver(delivery) =
            classify(&payload, attached_as(&[fred()]), &Limits::default())
        else {
            panic!("not delivered")
        };
        assert_eq!(delivery.data.originator.identity, barney());
        assert_eq!(delivery.recipient, fred());
        assert_eq!(delivery.content_type, TEXT_PLAIN_UTF8);
        assert_eq!(&delivery.content[..], b"hi fred");
        let Content::Part(sent) = content else {
            unreachable!()
        };
        assert_eq!(delivery.part.as_ref().unwrap().raw(), sent.raw());
    }

    #[test]
    fn the_first_attached_recipient_is_the_one_delivered_to() {
        let wilma = endpoint("wilma@example.com");
        let (data, content) = text_data(
            &barney(),
            &[endpoint("x@example.com"), wilma.clone(), fred()],
            "hi",
        );
        let payload = Bytes::from(data.to_payload(&content));
        let Inbound::Deliver(delivery) = classify(
            &payload,
            attached_as(&[fred(), wilma.clone()]),
            &Limits::default(),
        ) else {
            panic!("not delivered")
        };
        assert_eq!(delivery.recipient, wilma);
    }

    #[test]
    fn a_data_for_someone_else_is_refused_with_550() {
        let (data, content) = text_data(&barney(), &[endpoint("wilma@example.com")], "hi");
        let payload = Bytes::from(data.to_payload(&content));
        let Inbound::Refuse(error) = classify(&payload, attached_as(&[fred()]), &Limits::default())
        else {
            panic!("not refused")
        };
        assert_eq!(error.code, ReplyCode::ACTION_NOT_TAKEN);
        assert!(error.text.contains("wilma@example.com"), "{}", error.text);
        // A subaddress is a different endpoint.
        let (data, content) = text_data(&barney(), &[endpoint("fred/appl=wb@example.com")], "hi");
        let payload = Bytes::from(data.to_payload(&content));
        assert!(matches!(
            classify(&payload, attached_as(&[fred()]), &Limits::default()),
            Inbound::Refuse(_)
        ));
    }

    #[test]
    fn inline_and_external_content() {
        let report = "<statusResponse transID='86'><destination identity='barney@example.org'><reply code='250' /></destination></statusResponse>";
        let payload = Bytes::from(format!(
            "Content-Type: application/beep+xml\r\n\r\n<data content='#Content'><originator identity='apex=report@example.org' /><recipient identity='fred@example.com' /><data-content Name='Content'>{report}</data-content></data>"
        ));
        let Inbound::Deliver(delivery) =
            classify(&payload, attached_as(&[fred()]), &Limits::default())
        else {
            panic!("not delivered")
        };
        assert_eq!(delivery.content_type, INLINE_CONTENT_TYPE);
        assert_eq!(&delivery.content[..], report.as_bytes());
        assert!(delivery.part.is_none());
        let payload = Bytes::from_static(b"Content-Type: application/beep+xml\r\n\r\n<data content='http://example.org/x#y'><originator identity='barney@example.org' /><recipient identity='fred@example.com' /></data>");
        let Inbound::Deliver(delivery) =
            classify(&payload, attached_as(&[fred()]), &Limits::default())
        else {
            panic!("not delivered")
        };
        assert_eq!(delivery.content_type, EXTERNAL_CONTENT_TYPE);
        assert_eq!(&delivery.content[..], b"http://example.org/x#y");
    }

    #[test]
    fn terminate_and_refusals() {
        let terminate = Bytes::from(
            Terminate::with_reason(7, ReplyCode::ATTACHMENT_OVERRIDDEN, "overridden").to_payload(),
        );
        let Inbound::Terminate(t) = classify(&terminate, |_| false, &Limits::default()) else {
            panic!("not a terminate")
        };
        assert_eq!(t.trans_id, 7);
        let attach = Bytes::from(imxp_apex::Attach::new(fred(), 1).to_payload());
        let Inbound::Refuse(error) = classify(&attach, |_| true, &Limits::default()) else {
            panic!("attach accepted")
        };
        assert_eq!(error.code, ReplyCode::NOT_AUTHORIZED);
        for garbage in [
            &b"Content-Type: application/beep+xml\r\n\r\n<data"[..],
            b"\r\n<ok />",
            b"",
        ] {
            let Inbound::Refuse(error) =
                classify(&Bytes::from_static(garbage), |_| true, &Limits::default())
            else {
                panic!("garbage accepted")
            };
            assert!(error.code.0 >= 500, "{error:?}");
        }
    }

    fn part_with(encoding: &str, body: &[u8]) -> MimePart {
        let mut raw = format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {encoding}\r\nContent-ID: <p@example.com>\r\n\r\n"
        )
        .into_bytes();
        raw.extend_from_slice(body);
        MimePart::from_raw(raw).unwrap()
    }

    #[test]
    fn transfer_encodings_are_undone() {
        let (ct, body) = decode_part(&part_with("base64", b"aGVs\r\nbG8g\r\n4pyT"));
        assert_eq!(ct, TEXT_PLAIN_UTF8);
        assert_eq!(&body[..], "hello ✓".as_bytes());
        let (_, body) = decode_part(&part_with(
            "Quoted-Printable",
            b"caf=C3=A9 =\r\nau lait  \r\n=3D=\r\n\r\nend=4",
        ));
        assert_eq!(&body[..], "café au lait\r\n=\r\nend=4".as_bytes());
        let (_, body) = decode_part(&part_with("8bit", "déjà".as_bytes()));
        assert_eq!(&body[..], "déjà".as_bytes());
        let (ct, body) = decode_part(&part_with("base64", b"!!not base64!!"));
        assert_eq!(ct, "application/octet-stream");
        assert_eq!(&body[..], b"!!not base64!!");
        let (ct, body) = decode_part(&part_with("x-rot13", b"uryyb"));
        assert_eq!(ct, "application/octet-stream");
        assert_eq!(&body[..], b"uryyb");
    }
}
