//! The MIME layer (RFC 2045, RFC 2046, RFC 1847): splitting an entity into
//! header block and body, the exact octets of each part of a multipart body
//! (what a `multipart/signed` signature covers), transfer decoding with
//! mail-parser, and building entities with mail-builder.

use std::borrow::Cow;

use mail_builder::headers::content_type::ContentType as BuilderContentType;
use mail_builder::mime::{BodyPart, MimePart};
use mail_parser::{MessageParser, MimeHeaders, PartType};

use crate::error::E2eError;

fn mime_error(reason: impl Into<String>) -> E2eError {
    E2eError::Mime(reason.into())
}

/// A MIME entity split into its header block and body, with its parsed
/// Content-Type (RFC 2045 §5; none means `text/plain`, §5.2).
#[derive(Debug, Clone)]
pub struct Entity<'a> {
    /// The header lines, each with its line ending, without the empty line.
    pub headers: &'a [u8],
    /// Everything after the empty line, octet for octet.
    pub body: &'a [u8],
    media_type: String,
    params: Vec<(String, String)>,
}

impl Entity<'_> {
    /// The media type, lower-case, e.g. `multipart/signed`.
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// A Content-Type parameter (name case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A header's value, unfolded and trimmed (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        header_value(self.headers, name)
    }

    /// The body with its Content-Transfer-Encoding undone (RFC 2045 §6), by
    /// mail-parser. An unknown encoding is an error.
    pub fn decoded_body(&self) -> Result<Vec<u8>, E2eError> {
        let encoding = self
            .header("content-transfer-encoding")
            .map(|e| e.to_ascii_lowercase());
        match encoding.as_deref() {
            None | Some("7bit" | "8bit" | "binary") => Ok(self.body.to_vec()),
            Some("base64" | "quoted-printable") => {
                let mut whole = self.headers.to_vec();
                whole.extend_from_slice(b"\r\n");
                whole.extend_from_slice(self.body);
                let message = MessageParser::new()
                    .parse(&whole)
                    .ok_or_else(|| mime_error("mail-parser could not read the entity"))?;
                let part = message.root_part();
                if part.is_encoding_problem {
                    return Err(mime_error(format!(
                        "the body is not valid {}",
                        encoding.unwrap_or_default()
                    )));
                }
                match &part.body {
                    PartType::Text(text) | PartType::Html(text) => {
                        // mail-parser decodes text to a string; the charset
                        // is UTF-8 or ASCII for what is read here.
                        Ok(text.as_bytes().to_vec())
                    }
                    PartType::Binary(bytes) | PartType::InlineBinary(bytes) => Ok(bytes.to_vec()),
                    _ => Ok(part.contents().to_vec()),
                }
            }
            Some(other) => Err(mime_error(format!(
                "unknown Content-Transfer-Encoding {other:?}"
            ))),
        }
    }
}

/// Splits an entity at the first empty line. An entity that starts with an
/// empty line has no headers.
pub fn split_entity(entity: &[u8]) -> Result<Entity<'_>, E2eError> {
    // The first empty line (CRLF, or a bare LF as some tools write) ends
    // the headers.
    let mut line_start = 0;
    let (headers, body) = loop {
        let Some(newline) = find(&entity[line_start..], b"\n").map(|i| line_start + i) else {
            return Err(mime_error(
                "the entity has no empty line between headers and body",
            ));
        };
        let line = &entity[line_start..newline];
        if line.is_empty() || line == b"\r" {
            break (&entity[..line_start], &entity[newline + 1..]);
        }
        line_start = newline + 1;
    };
    let (media_type, params) = match header_value(headers, "content-type") {
        None => ("text/plain".to_owned(), Vec::new()),
        Some(value) => parse_content_type(&value)?,
    };
    Ok(Entity {
        headers,
        body,
        media_type,
        params,
    })
}

/// Parses a Content-Type value with mail-parser (quoting, RFC 2231).
pub fn parse_content_type(value: &str) -> Result<(String, Vec<(String, String)>), E2eError> {
    let header = format!("Content-Type: {value}\r\n\r\n");
    let message = MessageParser::new()
        .parse_headers(header.as_bytes())
        .ok_or_else(|| mime_error(format!("unreadable Content-Type {value:?}")))?;
    let content_type = message
        .root_part()
        .content_type()
        .ok_or_else(|| mime_error(format!("unreadable Content-Type {value:?}")))?;
    let subtype = content_type
        .subtype()
        .ok_or_else(|| mime_error(format!("Content-Type {value:?} has no subtype")))?;
    let media_type = format!("{}/{}", content_type.ctype(), subtype).to_ascii_lowercase();
    let params = content_type
        .attributes()
        .unwrap_or_default()
        .iter()
        .map(|a| (a.name.to_string(), a.value.to_string()))
        .collect();
    Ok((media_type, params))
}

fn header_value(headers: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(headers);
    let mut current: Option<String> = None;
    let mut found: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some(value) = current.as_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if found.is_none() {
            found = current.take();
        }
        current = line
            .split_once(':')
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned());
    }
    found.or(current)
}

/// The parts of a multipart body (RFC 2046 §5.1.1), each exactly the octets
/// between the CRLF that ends a delimiter line and the CRLF that precedes
/// the next delimiter. The close delimiter must be present.
pub fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, E2eError> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(mime_error(format!(
            "boundary {boundary:?} must be 1 to 70 characters (RFC 2046 §5.1.1)"
        )));
    }
    let dash = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut part_start: Option<usize> = None;
    let mut line_start = 0;
    while line_start <= body.len() {
        let line_end = find(&body[line_start..], b"\n").map_or(body.len(), |i| line_start + i);
        let line = &body[line_start..line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(dash.as_bytes()) {
            let close = rest.starts_with(b"--");
            let padding = if close { &rest[2..] } else { rest };
            if padding.iter().all(|b| *b == b' ' || *b == b'\t') {
                if let Some(start) = part_start {
                    // The CRLF before the delimiter belongs to it.
                    let mut end = line_start;
                    if end > start && body[end - 1] == b'\n' {
                        end -= 1;
                        if end > start && body[end - 1] == b'\r' {
                            end -= 1;
                        }
                    }
                    parts.push(&body[start..end.max(start)]);
                }
                if close {
                    return Ok(parts);
                }
                part_start = Some((line_end + 1).min(body.len()));
            }
        }
        line_start = line_end + 1;
    }
    Err(mime_error(format!(
        "the multipart body has no close delimiter --{boundary}--"
    )))
}

/// Canonical form for signing (RFC 3156 §5, RFC 8551 §3.1.1): every line
/// ending is CRLF.
pub fn canonicalize(entity: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entity.len() + entity.len() / 40);
    let mut previous = 0u8;
    for &byte in entity {
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        previous = byte;
    }
    out
}

/// A text entity (`text/plain; charset=utf-8`) built with mail-builder,
/// which picks a 7-bit transfer encoding (quoted-printable or base64 for
/// 8-bit text, long lines or trailing white space), as signed content
/// needs (RFC 3156 §3, RFC 8551 §3.1.2).
pub fn text_entity(text: &str) -> Vec<u8> {
    write_part(MimePart::new(
        BuilderContentType::new("text/plain").attribute("charset", "utf-8"),
        BodyPart::Text(Cow::Borrowed(text)),
    ))
}

/// An entity of any media type (`content_type` may carry parameters)
/// built with mail-builder: text is written 7-bit (quoted-printable or
/// base64 where needed), anything else base64.
pub fn content_entity(content_type: &str, body: &[u8]) -> Vec<u8> {
    if let Ok(text) = std::str::from_utf8(body)
        && content_type.trim().eq_ignore_ascii_case("text/plain")
    {
        return text_entity(text);
    }
    write_part(MimePart::new(
        BuilderContentType::new(content_type.to_owned()),
        BodyPart::Binary(Cow::Borrowed(body)),
    ))
}

/// One part of a multipart built by [`multipart`].
#[derive(Debug, Clone)]
pub enum Part<'a> {
    /// A whole entity written as it is (headers and body).
    Raw(&'a [u8]),
    /// A text part with extra headers, written 7-bit as it is (no transfer
    /// encoding: the text must be ASCII, e.g. ASCII armor).
    Ascii {
        /// Content-Type value.
        content_type: &'a str,
        /// Extra headers (name, value).
        headers: Vec<(&'a str, String)>,
        /// The text.
        text: &'a str,
    },
    /// A binary part, base64-encoded.
    Base64 {
        /// Content-Type value.
        content_type: &'a str,
        /// Extra headers (name, value).
        headers: Vec<(&'a str, String)>,
        /// The octets.
        body: &'a [u8],
    },
}

/// A multipart entity (`media_type` with `params`, a fresh boundary) built
/// with mail-builder. Returns the unfolded Content-Type value and the
/// body, so that the caller can carry them separately (an APEX content
/// part) or together ([`join_entity`]).
pub fn multipart(
    media_type: &str,
    params: &[(&str, &str)],
    parts: &[Part<'_>],
) -> (String, Vec<u8>) {
    let boundary = mail_builder::mime::make_boundary("_");
    let mut content_type = BuilderContentType::new(media_type.to_owned());
    for (name, value) in params {
        content_type = content_type.attribute((*name).to_owned(), (*value).to_owned());
    }
    content_type = content_type.attribute("boundary", boundary);
    let children = parts
        .iter()
        .map(|part| match part {
            Part::Raw(bytes) => MimePart::raw(BodyPart::Binary(Cow::Owned(bytes.to_vec()))),
            Part::Ascii {
                content_type,
                headers,
                text,
            } => {
                let mut part = MimePart::new(
                    BuilderContentType::new((*content_type).to_owned()),
                    BodyPart::Binary(Cow::Owned(text.as_bytes().to_vec())),
                );
                for (name, value) in headers {
                    part = part.header(
                        (*name).to_owned(),
                        mail_builder::headers::raw::Raw::new(value.clone()),
                    );
                }
                part.header(
                    "Content-Transfer-Encoding",
                    mail_builder::headers::raw::Raw::new("7bit"),
                )
            }
            Part::Base64 {
                content_type,
                headers,
                body,
            } => {
                let mut part = MimePart::new(
                    BuilderContentType::new((*content_type).to_owned()),
                    BodyPart::Binary(Cow::Owned(base64_lines(body))),
                );
                for (name, value) in headers {
                    part = part.header(
                        (*name).to_owned(),
                        mail_builder::headers::raw::Raw::new(value.clone()),
                    );
                }
                part.header(
                    "Content-Transfer-Encoding",
                    mail_builder::headers::raw::Raw::new("base64"),
                )
            }
        })
        .collect::<Vec<_>>();
    let whole = write_part(MimePart::new(content_type, BodyPart::Multipart(children)));
    let entity =
        split_entity(&whole).unwrap_or_else(|_| unreachable!("mail-builder wrote headers"));
    let value = entity
        .header("content-type")
        .unwrap_or_else(|| unreachable!("mail-builder wrote a Content-Type"));
    (value, entity.body.to_vec())
}

/// `Content-Type: {content_type}`, an empty line, then `body`.
pub fn join_entity(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Type: {content_type}\r\n\r\n").into_bytes();
    out.extend_from_slice(body);
    out
}

/// Base64 in lines of 76 characters, each ended by CRLF (RFC 2045 §6.8).
pub fn base64_lines(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn write_part(part: MimePart<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    part.write_part(&mut out)
        .unwrap_or_else(|_| unreachable!("writing to a Vec cannot fail"));
    out
}

/// What a reader shows of a content entity: its media type and, for text,
/// the decoded text (mail-parser handles charsets and transfer encodings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readable {
    /// The media type, lower-case.
    pub media_type: String,
    /// The text, if the entity is `text/*`.
    pub text: Option<String>,
    /// The decoded body.
    pub body: Vec<u8>,
}

/// Reads a content entity for display.
pub fn readable(entity: &[u8]) -> Result<Readable, E2eError> {
    let split = split_entity(entity)?;
    let media_type = split.media_type().to_owned();
    let message = MessageParser::new()
        .parse(entity)
        .ok_or_else(|| mime_error("mail-parser could not read the content entity"))?;
    let part = message.root_part();
    let (text, body) = match &part.body {
        PartType::Text(text) => (Some(text.to_string()), text.as_bytes().to_vec()),
        PartType::Html(html) => (None, html.as_bytes().to_vec()),
        _ => (None, split.decoded_body()?),
    };
    Ok(Readable {
        media_type,
        text,
        body,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_exact_octets() {
        let body = b"preamble\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n\r\n--b  \r\nContent-Type: a/b\r\n\r\ntwo\r\n--b--\r\nepilogue";
        let parts = split_multipart(body, "b").unwrap();
        assert_eq!(
            parts,
            vec![
                &b"Content-Type: text/plain\r\n\r\none\r\n"[..],
                &b"Content-Type: a/b\r\n\r\ntwo"[..]
            ]
        );
        assert!(
            split_multipart(b"--b\r\nx\r\n", "b")
                .unwrap_err()
                .to_string()
                .contains("close delimiter")
        );
        // A line that only starts like the boundary is content.
        let parts = split_multipart(b"--b\r\n\r\n--bx\r\n--b--", "b").unwrap();
        assert_eq!(parts, vec![&b"\r\n--bx"[..]]);
    }

    #[test]
    fn multipart_round_trips_through_the_splitter() {
        let inner = text_entity("hello  \nwörld");
        assert!(
            inner.is_ascii(),
            "7-bit: {}",
            String::from_utf8_lossy(&inner)
        );
        let (content_type, body) = multipart(
            "multipart/signed",
            &[
                ("protocol", "application/pgp-signature"),
                ("micalg", "pgp-sha256"),
            ],
            &[
                Part::Raw(&inner),
                Part::Ascii {
                    content_type: "application/pgp-signature",
                    headers: vec![("Content-Description", "OpenPGP signature".into())],
                    text: "-----BEGIN PGP SIGNATURE-----\r\n\r\nx\r\n-----END PGP SIGNATURE-----\r\n",
                },
            ],
        );
        assert!(!content_type.contains('\n'));
        let entity = join_entity(&content_type, &body);
        let split = split_entity(&entity).unwrap();
        assert_eq!(split.media_type(), "multipart/signed");
        assert_eq!(split.param("protocol"), Some("application/pgp-signature"));
        let parts = split_multipart(split.body, split.param("boundary").unwrap()).unwrap();
        assert_eq!(parts[0], &inner[..]);
        let readable = readable(parts[0]).unwrap();
        assert_eq!(
            readable.text.unwrap().replace("\r\n", "\n"),
            "hello  \nwörld"
        );
        let sig = split_entity(parts[1]).unwrap();
        assert!(
            sig.decoded_body()
                .unwrap()
                .starts_with(b"-----BEGIN PGP SIGNATURE")
        );
    }

    #[test]
    fn base64_parts_decode() {
        let (content_type, body) = multipart(
            "multipart/mixed",
            &[],
            &[Part::Base64 {
                content_type: "application/pkcs7-signature",
                headers: vec![],
                body: &[0, 1, 2, 255],
            }],
        );
        let entity = join_entity(&content_type, &body);
        let split = split_entity(&entity).unwrap();
        let parts = split_multipart(split.body, split.param("boundary").unwrap()).unwrap();
        assert_eq!(
            split_entity(parts[0]).unwrap().decoded_body().unwrap(),
            [0, 1, 2, 255]
        );
    }

    #[test]
    fn headers_end_at_the_first_empty_line() {
        let entity = b"MIME-Version: 1.0\nContent-Type: text/plain\n\nbody\r\n\r\nmore";
        let split = split_entity(entity).unwrap();
        assert_eq!(split.body, b"body\r\n\r\nmore");
        assert_eq!(split.media_type(), "text/plain");
        let split = split_entity(b"\r\nno headers").unwrap();
        assert!(split.headers.is_empty());
        assert_eq!(split.media_type(), "text/plain");
        assert!(split_entity(b"Content-Type: a/b\r\n").is_err());
    }

    #[test]
    fn content_entities_are_7bit_and_read_back() {
        let png = content_entity("image/png", &[0, 0xff, 10, 13]);
        assert!(png.is_ascii());
        let split = split_entity(&png).unwrap();
        assert_eq!(split.media_type(), "image/png");
        assert_eq!(split.decoded_body().unwrap(), [0, 0xff, 10, 13]);
        let text = content_entity("text/plain; charset=utf-8", "grüß".as_bytes());
        assert!(text.is_ascii());
        assert_eq!(readable(&text).unwrap().text.as_deref(), Some("grüß"));
    }

    #[test]
    fn canonical_line_endings() {
        assert_eq!(canonicalize(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }
}
