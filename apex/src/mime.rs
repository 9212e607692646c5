//! The MIME side of APEX payloads (RFC 3340 §4.1): a BEEP message is a MIME
//! entity (RFC 3080 §2.2.2) that is either `application/beep+xml`, or a
//! `multipart/related` (RFC 2387) whose start part is the XML control
//! document and whose other part is the content a `cid:` URL (RFC 2392)
//! names.
//!
//! Content parts are never decoded or re-encoded: a [`MimePart`] holds the
//! part exactly as received, header lines and body, octet for octet, and is
//! written back the same way.

use std::ops::Range;

use bytes::Bytes;

use crate::address::{Domain, percent_decode, percent_encode};
use crate::error::{ApexError, MimeError};
use crate::limits::Limits;

/// The media type of APEX control documents.
pub const BEEP_XML: &str = "application/beep+xml";

/// The entity headers written in front of an XML-only payload.
pub const BEEP_XML_HEADERS: &[u8] = b"Content-Type: application/beep+xml\r\n\r\n";

// ===== impl MimePart =====

/// One body part of a `multipart/related` payload, exactly as received.
///
/// `raw` is everything between the CRLF that ends the boundary delimiter
/// line before the part and the CRLF that begins the delimiter after it:
/// the part's header lines, the empty line, and the body (RFC 2046 §5.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MimePart {
    content_id: String,
    raw: Bytes,
    body_offset: usize,
}

impl MimePart {
    /// Makes a part from a content type and a body, with a fresh, globally
    /// unique Content-ID at `domain` (RFC 2045 §7) and
    /// `Content-Transfer-Encoding: binary` (BEEP is 8-bit clean, RFC 3340
    /// §4.1, so the body is never transformed).
    pub fn new(content_type: &str, body: &[u8], domain: &Domain) -> Result<Self, MimeError> {
        Self::with_content_id(&new_content_id(domain), content_type, body)
    }

    /// Makes a part with the given Content-ID (without angle brackets).
    pub fn with_content_id(
        content_id: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Self, MimeError> {
        check_content_id(content_id)?;
        ContentType::parse(content_type)?;
        if content_type.bytes().any(|b| b.is_ascii_control()) {
            return Err(MimeError::HeaderValue(content_type.to_owned()));
        }
        let mut raw = format!(
            "Content-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{content_id}>\r\n\r\n"
        )
        .into_bytes();
        let body_offset = raw.len();
        raw.extend_from_slice(body);
        Ok(Self {
            content_id: content_id.to_owned(),
            raw: Bytes::from(raw),
            body_offset,
        })
    }

    /// Takes a part as it would appear inside a multipart body (headers,
    /// empty line, body), e.g. from the spool. It must carry a Content-ID.
    pub fn from_raw(raw: impl Into<Bytes>) -> Result<Self, MimeError> {
        let raw = raw.into();
        let (headers, body_offset) = split_headers(&raw, Limits::DEFAULT.max_headers)?;
        let content_id = content_id_of(&headers).ok_or(MimeError::MissingContentId)?;
        Ok(Self {
            content_id,
            raw,
            body_offset,
        })
    }

    /// A part found by [`split_payload`].
    pub(crate) fn from_parts(content_id: String, raw: Bytes, body_offset: usize) -> Self {
        Self {
            content_id,
            raw,
            body_offset,
        }
    }

    /// The Content-ID, without angle brackets.
    pub fn content_id(&self) -> &str {
        &self.content_id
    }

    /// The `cid:` URL naming this part (RFC 2392), for a `content` attribute.
    pub fn cid_url(&self) -> String {
        let mut out = String::from("cid:");
        percent_encode(&mut out, &self.content_id, b"@");
        out
    }

    /// The part exactly as received: header lines, empty line, body.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The part's raw octets, consuming it.
    pub fn into_raw(self) -> Bytes {
        self.raw
    }

    /// The body (after the empty line), undecoded.
    pub fn body(&self) -> &[u8] {
        &self.raw[self.body_offset..]
    }

    /// The header block (before the empty line), undecoded.
    pub fn header_block(&self) -> &[u8] {
        &self.raw[..self.body_offset]
    }

    /// The unfolded value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let (headers, _) = split_headers(&self.raw, self.body_offset).ok()?;
        headers
            .into_iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// The `Content-Type` value, `text/plain` by default (RFC 2045 §5.2).
    pub fn content_type(&self) -> String {
        self.header("Content-Type")
            .unwrap_or_else(|| "text/plain".to_owned())
    }
}

/// A fresh Content-ID, `<128 random bits in hex>@<domain>`: globally unique
/// as RFC 2045 §7 requires, without angle brackets.
pub fn new_content_id(domain: &Domain) -> String {
    format!("{:032x}@{}", rand::random::<u128>(), domain.as_str())
}

fn check_content_id(content_id: &str) -> Result<(), MimeError> {
    let ok = content_id.contains('@')
        && !content_id.starts_with('@')
        && !content_id.ends_with('@')
        && content_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\'));
    if ok {
        Ok(())
    } else {
        Err(MimeError::HeaderValue(content_id.to_owned()))
    }
}

/// Decodes a `cid:` URL into a Content-ID; `None` if `uri` is not one.
pub(crate) fn cid_of_url(uri: &str) -> Option<Result<String, ApexError>> {
    let scheme = uri.get(..4)?;
    if !scheme.eq_ignore_ascii_case("cid:") {
        return None;
    }
    Some(
        percent_decode(&uri[4..])
            .ok()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ApexError::ContentReference {
                reference: uri.to_owned(),
                reason: "not a valid cid: URL",
            }),
    )
}

// ===== headers =====

/// Splits a header block off `buf`: the fields (names as written, values
/// unfolded and trimmed) and the offset of the body after the empty line.
pub(crate) fn split_headers(
    buf: &[u8],
    max_headers: usize,
) -> Result<(Vec<(String, String)>, usize), MimeError> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut at = 0;
    loop {
        let window_end = buf.len().min(max_headers.saturating_add(2));
        let window = buf.get(at..window_end).ok_or(MimeError::Unterminated)?;
        let end = find(window, b"\r\n").ok_or(MimeError::Unterminated)?;
        let line = &buf[at..at + end];
        at += end + 2;
        if line.is_empty() {
            return Ok((headers, at));
        }
        if line.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(MimeError::BadHeader);
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            // Folded continuation of the previous field (RFC 5322 §2.2.3).
            let (_, value) = headers.last_mut().ok_or(MimeError::BadHeader)?;
            if !value.is_empty() {
                value.push(' ');
            }
            value.push_str(text.trim());
            continue;
        }
        let (name, value) = text.split_once(':').ok_or(MimeError::BadHeader)?;
        if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b)) {
            return Err(MimeError::BadHeader);
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn content_id_of(headers: &[(String, String)]) -> Option<String> {
    let value = header(headers, "Content-ID")?;
    let id = strip_angle(value);
    (!id.is_empty()).then(|| id.to_owned())
}

fn strip_angle(value: &str) -> &str {
    let value = value.trim();
    value
        .strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(value)
        .trim()
}

/// A parsed `Content-Type` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentType {
    /// `type/subtype`, lower case.
    pub(crate) mime: String,
    /// Parameters, names lower case, values unquoted.
    pub(crate) params: Vec<(String, String)>,
}

impl ContentType {
    pub(crate) fn parse(value: &str) -> Result<Self, MimeError> {
        let bad = || MimeError::BadContentType(value.to_owned());
        let mut rest = value.trim_start();
        let end = rest.find(';').unwrap_or(rest.len());
        let mime = rest[..end].trim().to_ascii_lowercase();
        let (kind, subtype) = mime.split_once('/').ok_or_else(bad)?;
        if !is_token(kind) || !is_token(subtype) {
            return Err(bad());
        }
        rest = &rest[end..];
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            rest = rest.strip_prefix(';').ok_or_else(bad)?.trim_start();
            if rest.is_empty() {
                break;
            }
            let eq = rest.find('=').ok_or_else(bad)?;
            let name = rest[..eq].trim().to_ascii_lowercase();
            if !is_token(&name) {
                return Err(bad());
            }
            rest = rest[eq + 1..].trim_start();
            let value;
            if let Some(quoted) = rest.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = quoted.char_indices();
                let mut closed = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => out.push(chars.next().ok_or_else(bad)?.1),
                        '"' => {
                            closed = Some(i);
                            break;
                        }
                        c => out.push(c),
                    }
                }
                let close = closed.ok_or_else(bad)?;
                value = out;
                rest = &quoted[close + 1..];
            } else {
                let end = rest
                    .find(|c: char| c == ';' || c.is_whitespace())
                    .unwrap_or(rest.len());
                value = rest[..end].to_owned();
                if !is_token(&value) {
                    return Err(bad());
                }
                rest = &rest[end..];
            }
            params.push((name, value));
        }
        Ok(Self { mime, params })
    }

    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Checks that this is `application/beep+xml` in UTF-8.
    fn check_beep_xml(&self) -> Result<(), MimeError> {
        if self.mime != BEEP_XML {
            return Err(MimeError::ContentType(self.mime.clone()));
        }
        check_charset(self.param("charset"))
    }
}

fn check_charset(charset: Option<&str>) -> Result<(), MimeError> {
    match charset {
        Some(c) if !c.eq_ignore_ascii_case("utf-8") && !c.eq_ignore_ascii_case("us-ascii") => {
            Err(MimeError::Charset(c.to_owned()))
        }
        _ => Ok(()),
    }
}

/// RFC 2045 token: printable ASCII without SP and tspecials.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| (33..=126).contains(&b) && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut start = 0;
    while start + needle.len() <= haystack.len() {
        let offset = haystack[start..=haystack.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        let at = start + offset;
        if &haystack[at..at + needle.len()] == needle {
            return Some(at);
        }
        start = at + 1;
    }
    None
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

// ===== splitting payloads =====

/// A payload split into its XML document and content parts, as ranges of
/// the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    /// The XML control document.
    pub(crate) xml: Range<usize>,
    /// The content parts (at most one), raw.
    pub(crate) parts: Vec<PartSpan>,
}

/// A content part: its raw range and its Content-ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartSpan {
    pub(crate) raw: Range<usize>,
    pub(crate) body_offset: usize,
    pub(crate) content_id: Option<String>,
}

fn check_size(payload: &[u8], limits: &Limits) -> Result<(), MimeError> {
    if payload.len() > limits.max_payload {
        Err(MimeError::TooLarge {
            size: payload.len(),
            limit: limits.max_payload,
        })
    } else {
        Ok(())
    }
}

/// The XML of an `application/beep+xml` payload (replies, or operations
/// that carry no MIME content).
pub(crate) fn xml_only(payload: &[u8], limits: &Limits) -> Result<Range<usize>, MimeError> {
    check_size(payload, limits)?;
    let (headers, body) = split_headers(payload, limits.max_headers)?;
    let content_type = header(&headers, "Content-Type").unwrap_or("application/octet-stream");
    ContentType::parse(content_type)?.check_beep_xml()?;
    check_transfer_encoding(&headers)?;
    Ok(body..payload.len())
}

/// Splits an operation payload: `application/beep+xml`, or
/// `multipart/related; type="application/beep+xml"` with the XML as the
/// start part and at most one content part.
pub(crate) fn split_payload(payload: &[u8], limits: &Limits) -> Result<Split, MimeError> {
    check_size(payload, limits)?;
    let (headers, body) = split_headers(payload, limits.max_headers)?;
    let content_type = header(&headers, "Content-Type").unwrap_or("application/octet-stream");
    let content_type = ContentType::parse(content_type)?;
    if content_type.mime == BEEP_XML {
        content_type.check_beep_xml()?;
        check_transfer_encoding(&headers)?;
        return Ok(Split {
            xml: body..payload.len(),
            parts: Vec::new(),
        });
    }
    if content_type.mime != "multipart/related" {
        return Err(MimeError::ContentType(content_type.mime));
    }
    if let Some(kind) = content_type.param("type")
        && !kind.eq_ignore_ascii_case(BEEP_XML)
    {
        return Err(MimeError::RelatedType(kind.to_owned()));
    }
    let boundary = content_type
        .param("boundary")
        .filter(|b| !b.is_empty() && b.len() <= 70 && b.bytes().all(|c| (32..=126).contains(&c)))
        .ok_or(MimeError::Boundary)?;
    let spans = multipart_spans(payload, body, boundary.as_bytes())?;
    let mut parts = Vec::with_capacity(spans.len());
    for span in spans {
        let (headers, offset) = split_headers(&payload[span.clone()], limits.max_headers)?;
        parts.push((span, offset, headers));
    }
    let root_index = match content_type.param("start") {
        Some(start) => {
            let start = strip_angle(start);
            parts
                .iter()
                .position(|(_, _, headers)| content_id_of(headers).as_deref() == Some(start))
                .ok_or_else(|| MimeError::StartNotFound(start.to_owned()))?
        }
        None => 0,
    };
    let (root_span, root_offset, root_headers) = parts.remove(root_index);
    let root_type = header(&root_headers, "Content-Type").unwrap_or("text/plain");
    let root_type = ContentType::parse(root_type)?;
    if root_type.mime != BEEP_XML {
        return Err(MimeError::RootContentType(root_type.mime));
    }
    check_charset(root_type.param("charset"))?;
    check_transfer_encoding(&root_headers)?;
    let mut seen: Vec<String> = content_id_of(&root_headers).into_iter().collect();
    let mut content = Vec::with_capacity(parts.len());
    for (span, offset, headers) in parts {
        let content_id = content_id_of(&headers);
        if let Some(id) = &content_id {
            if seen.contains(id) {
                return Err(MimeError::DuplicateContentId(id.clone()));
            }
            seen.push(id.clone());
        }
        content.push(PartSpan {
            raw: span,
            body_offset: offset,
            content_id,
        });
    }
    Ok(Split {
        xml: root_span.start + root_offset..root_span.end,
        parts: content,
    })
}

fn check_transfer_encoding(headers: &[(String, String)]) -> Result<(), MimeError> {
    match header(headers, "Content-Transfer-Encoding") {
        Some(cte)
            if !["7bit", "8bit", "binary"]
                .iter()
                .any(|ok| cte.eq_ignore_ascii_case(ok)) =>
        {
            Err(MimeError::TransferEncoding(cte.to_owned()))
        }
        _ => Ok(()),
    }
}

/// The maximum number of body parts: the XML and one content part.
const MAX_PARTS: usize = 2;

/// Finds the body parts of a multipart body starting at `body` (RFC 2046
/// §5.1.1). A delimiter is CRLF (or the start of the body), `--boundary`,
/// then either `--` (close) or optional linear white space and CRLF; a line
/// that merely starts with `--boundary` followed by anything else is content.
fn multipart_spans(
    payload: &[u8],
    body: usize,
    boundary: &[u8],
) -> Result<Vec<Range<usize>>, MimeError> {
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"\r\n--");
    delimiter.extend_from_slice(boundary);
    // The first delimiter may start the body (no preceding CRLF).
    let mut search = body;
    let mut part_start: Option<usize> = None;
    let mut spans = Vec::new();
    if payload[body..].starts_with(&delimiter[2..]) {
        match delimiter_end(payload, body + delimiter.len() - 2) {
            Some(DelimiterEnd::Next(next)) => {
                part_start = Some(next);
                search = next;
            }
            Some(DelimiterEnd::Close) => return Err(MimeError::Truncated),
            None => {}
        }
    }
    loop {
        let at = find(&payload[search..], &delimiter)
            .map(|i| search + i)
            .ok_or(MimeError::Truncated)?;
        match delimiter_end(payload, at + delimiter.len()) {
            Some(DelimiterEnd::Next(next)) => {
                if let Some(start) = part_start {
                    spans.push(start..at);
                    if spans.len() > MAX_PARTS {
                        return Err(MimeError::TooManyParts(spans.len()));
                    }
                }
                part_start = Some(next);
                search = next;
            }
            Some(DelimiterEnd::Close) => {
                let Some(start) = part_start else {
                    return Err(MimeError::Truncated);
                };
                spans.push(start..at);
                if spans.len() > MAX_PARTS {
                    return Err(MimeError::TooManyParts(spans.len()));
                }
                return Ok(spans);
            }
            None => search = at + 1,
        }
    }
}

enum DelimiterEnd {
    /// A dash-boundary line; the next part starts here.
    Next(usize),
    /// The close delimiter.
    Close,
}

/// What follows `--boundary` at `at`: `--` (close, then padding and CRLF or
/// the end), or transport padding and CRLF; `None` if neither.
fn delimiter_end(payload: &[u8], at: usize) -> Option<DelimiterEnd> {
    let rest = &payload[at..];
    let (close, rest) = match rest.strip_prefix(b"--") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let padding = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest = &rest[padding..];
    if close {
        (rest.is_empty() || rest.starts_with(b"\r\n")).then_some(DelimiterEnd::Close)
    } else {
        rest.starts_with(b"\r\n")
            .then(|| DelimiterEnd::Next(payload.len() - rest.len() + 2))
    }
}

/// Heuristic for init content: bare XML starts (after white space and an
/// optional byte-order mark) with `<`; a MIME entity starts with a header
/// or CRLF.
pub(crate) fn looks_like_bare_xml(init: &[u8]) -> bool {
    let init = init.strip_prefix(b"\xef\xbb\xbf").unwrap_or(init);
    init.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'<')
}

// ===== writing payloads =====

/// An `application/beep+xml` payload carrying `xml`.
pub(crate) fn xml_payload(xml: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(BEEP_XML_HEADERS.len() + xml.len() + 2);
    out.extend_from_slice(BEEP_XML_HEADERS);
    out.extend_from_slice(xml.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// A `multipart/related` payload: `xml` as the start part, then `part`
/// unchanged, with random boundary and root Content-ID.
pub(crate) fn related_payload(xml: &str, part: &MimePart) -> Vec<u8> {
    let right = part
        .content_id()
        .rsplit_once('@')
        .map_or("apex.invalid", |(_, right)| right);
    let root_id = format!("{:032x}.xml@{right}", rand::random::<u128>());
    related_payload_with(
        xml,
        part,
        &root_id,
        std::iter::repeat_with(|| format!("apex-{:032x}", rand::random::<u128>())),
    )
}

/// [`related_payload`] with the root Content-ID and boundary candidates
/// given; the first candidate that occurs in neither the XML nor the part
/// is used.
pub(crate) fn related_payload_with(
    xml: &str,
    part: &MimePart,
    root_id: &str,
    candidates: impl IntoIterator<Item = String>,
) -> Vec<u8> {
    let boundary = candidates
        .into_iter()
        .find(|b| !contains(part.raw(), b.as_bytes()) && !contains(xml.as_bytes(), b.as_bytes()))
        .unwrap_or_else(|| {
            // Candidate lists from callers are unbounded; a finite list that
            // runs out falls back to a boundary built from the part itself.
            unique_boundary(part.raw(), xml.as_bytes())
        });
    let mut out = Vec::with_capacity(xml.len() + part.raw().len() + 4 * boundary.len() + 256);
    out.extend_from_slice(
        format!(
            "Content-Type: multipart/related; boundary=\"{boundary}\";\r\n              start=\"<{root_id}>\";\r\n              type=\"application/beep+xml\"\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Type: application/beep+xml\r\nContent-ID: <{root_id}>\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(xml.as_bytes());
    out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
    out.extend_from_slice(part.raw());
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// A boundary occurring in neither input: `=_` (which cannot start a line of
/// a base64 or quoted-printable body) plus a counter, grown until unique.
fn unique_boundary(a: &[u8], b: &[u8]) -> String {
    (0u64..)
        .map(|n| format!("=_apex_{n}"))
        .find(|candidate| !contains(a, candidate.as_bytes()) && !contains(b, candidate.as_bytes()))
        .unwrap_or_else(|| unreachable!("the counter outruns any finite input"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_parameters() {
        let ct = ContentType::parse(
            "Multipart/Related; boundary=\"boundary\"; start=\"<1@example.com>\"; type=\"application/beep+xml\"",
        )
        .unwrap();
        assert_eq!(ct.mime, "multipart/related");
        assert_eq!(ct.param("boundary"), Some("boundary"));
        assert_eq!(ct.param("start"), Some("<1@example.com>"));
        assert_eq!(ct.param("type"), Some(BEEP_XML));
        let ct = ContentType::parse("text/plain;charset=utf-8;").unwrap();
        assert_eq!(ct.param("charset"), Some("utf-8"));
        let ct = ContentType::parse("a/b; x=\"q\\\"uo;te\"").unwrap();
        assert_eq!(ct.param("x"), Some("q\"uo;te"));
        for bad in [
            "",
            "text",
            "text/",
            "/x",
            "a/b; x",
            "a/b; x=\"open",
            "a/b x=1",
            "a/b; x=a@b",
        ] {
            assert!(ContentType::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn headers_unfold_and_bound() {
        let (headers, body) = split_headers(b"A: 1\r\n  2\r\nB:3\r\n\r\nbody", 1024).unwrap();
        assert_eq!(
            headers,
            [("A".into(), "1 2".into()), ("B".into(), "3".into())]
        );
        assert_eq!(body, 18);
        assert_eq!(split_headers(b"\r\nbody", 1024).unwrap(), (vec![], 2));
        assert_eq!(
            split_headers(b"A: 1\r\n", 1024),
            Err(MimeError::Unterminated)
        );
        assert_eq!(
            split_headers(b" A: 1\r\n\r\n", 1024),
            Err(MimeError::BadHeader)
        );
        assert_eq!(
            split_headers(b"no colon\r\n\r\n", 1024),
            Err(MimeError::BadHeader)
        );
        assert_eq!(
            split_headers(b"A: 1\nB: 2\r\n\r\n", 1024),
            Err(MimeError::BadHeader)
        );
        let long = format!("A: {}\r\n\r\n", "x".repeat(100));
        assert_eq!(
            split_headers(long.as_bytes(), 50),
            Err(MimeError::Unterminated)
        );
        assert!(split_headers(long.as_bytes(), 200).is_ok());
    }

    #[test]
    fn multipart_delimiters() {
        let payload = b"Content-Type: multipart/related; boundary=b\r\n\r\npreamble\r\n--b\r\nContent-Type: application/beep+xml\r\n\r\n<x/>\r\n--b \t\r\nContent-ID: <p@q>\r\n\r\nA\r\n--bX\r\n--b-\r\n\r\n--b--\r\nepilogue";
        let split = split_payload(payload, &Limits::default()).unwrap();
        assert_eq!(&payload[split.xml.clone()], b"<x/>");
        assert_eq!(split.parts.len(), 1);
        let part = &split.parts[0];
        assert_eq!(
            &payload[part.raw.clone()],
            b"Content-ID: <p@q>\r\n\r\nA\r\n--bX\r\n--b-\r\n"
        );
        assert_eq!(part.content_id.as_deref(), Some("p@q"));
        // Close delimiter at the very end, no CRLF.
        let payload = b"Content-Type: multipart/related; boundary=b\r\n\r\n--b\r\nContent-Type: application/beep+xml\r\n\r\n<x/>\r\n--b--";
        assert!(
            split_payload(payload, &Limits::default())
                .unwrap()
                .parts
                .is_empty()
        );
        let truncated = b"Content-Type: multipart/related; boundary=b\r\n\r\n--b\r\nContent-Type: application/beep+xml\r\n\r\n<x/>\r\n--b\r\n";
        assert_eq!(
            split_payload(truncated, &Limits::default()),
            Err(MimeError::Truncated)
        );
        let empty = b"Content-Type: multipart/related; boundary=b\r\n\r\n--b--\r\n";
        assert_eq!(
            split_payload(empty, &Limits::default()),
            Err(MimeError::Truncated)
        );
    }

    #[test]
    fn finds_needles() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"", b"a"), None);
        assert_eq!(find(b"aaa", b"aa"), Some(0));
        assert_eq!(find(b"xa", b"a"), Some(1));
    }

    #[test]
    fn boundary_avoids_collisions() {
        let part =
            MimePart::with_content_id("p@q", "text/plain", b"--taken\r\nalso-taken").unwrap();
        let payload = related_payload_with(
            "<x/>",
            &part,
            "r@q",
            [
                "taken".to_owned(),
                "also-taken".to_owned(),
                "free".to_owned(),
            ],
        );
        assert!(payload.starts_with(b"Content-Type: multipart/related; boundary=\"free\";"));
        let fallback = related_payload_with("<x/>", &part, "r@q", ["taken".to_owned()]);
        assert!(fallback.starts_with(b"Content-Type: multipart/related; boundary=\"=_apex_0\";"));
        let tricky = MimePart::with_content_id("p@q", "text/plain", b"=_apex_0 =_apex_1").unwrap();
        let fallback = related_payload_with("<x/>", &tricky, "r@q", []);
        assert!(fallback.starts_with(b"Content-Type: multipart/related; boundary=\"=_apex_2\";"));
    }

    #[test]
    fn parts() {
        let domain = Domain::parse("example.com").unwrap();
        let a = MimePart::new("text/plain; charset=utf-8", b"hello", &domain).unwrap();
        let b = MimePart::new("text/plain; charset=utf-8", b"hello", &domain).unwrap();
        assert_ne!(a.content_id(), b.content_id());
        assert!(a.content_id().ends_with("@example.com"));
        assert_eq!(a.body(), b"hello");
        assert_eq!(a.content_type(), "text/plain; charset=utf-8");
        assert_eq!(
            a.header("content-transfer-encoding").as_deref(),
            Some("binary")
        );
        assert_eq!(MimePart::from_raw(a.raw().clone()).unwrap(), a);
        assert_eq!(
            MimePart::from_raw(Bytes::from_static(b"Content-Type: text/plain\r\n\r\nx")),
            Err(MimeError::MissingContentId)
        );
        assert_eq!(
            MimePart::from_raw(Bytes::from_static(b"\r\nx")),
            Err(MimeError::MissingContentId)
        );
        let bare = MimePart::from_raw(Bytes::from_static(b"Content-ID: <a@b>\r\n\r\n")).unwrap();
        assert_eq!(bare.content_type(), "text/plain");
        assert_eq!(bare.body(), b"");
        for bad_type in ["text/plain\r\nX-Evil: 1", "textplain", ""] {
            assert!(
                MimePart::with_content_id("a@b", bad_type, b"").is_err(),
                "{bad_type:?}"
            );
        }
        for bad_id in ["", "nobody", "a b@c", "<a@b>", "@b", "a@"] {
            assert!(
                MimePart::with_content_id(bad_id, "text/plain", b"").is_err(),
                "{bad_id:?}"
            );
        }
        let weird = MimePart::with_content_id("a%b[1]@[10.0.0.1]", "text/plain", b"").unwrap();
        assert_eq!(weird.cid_url(), "cid:a%25b%5B1%5D@%5B10.0.0.1%5D");
        assert_eq!(
            cid_of_url(&weird.cid_url()).unwrap().unwrap(),
            "a%b[1]@[10.0.0.1]"
        );
        assert!(cid_of_url("http://x").is_none());
        assert!(cid_of_url("CID:a@b").unwrap().is_ok());
        assert!(cid_of_url("cid:").unwrap().is_err());
        assert!(cid_of_url("cid:%zz").unwrap().is_err());
    }
}
