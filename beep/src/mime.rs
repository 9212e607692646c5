//! BEEP messages as MIME entities (RFC 3080 §2.2.2): optional entity headers,
//! an empty line, then the body. Only what BEEP itself needs: splitting the
//! headers off and checking the `application/beep+xml` content type used on
//! channel 0 and by the tuning profiles (RFC 3080 §6.4).

use thiserror::Error;

/// The entity headers BEEP writes in front of every channel-0 message.
pub const BEEP_XML_HEADERS: &[u8] = b"Content-Type: application/beep+xml\r\n\r\n";

/// Largest header block accepted before the empty line.
const MAX_HEADERS: usize = 8 * 1024;

/// Why a payload is not the expected MIME entity.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MimeError {
    /// No empty line ends the headers (within 8 KiB).
    #[error("entity headers are not terminated by an empty line")]
    Unterminated,
    /// A header line without a colon, or not UTF-8.
    #[error("poorly-formed entity header")]
    BadHeader,
    /// The content type is not `application/beep+xml` (with UTF-8).
    #[error("content type {0:?} is not application/beep+xml")]
    ContentType(String),
}

/// A MIME entity split into headers and body (borrowed from the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity<'a> {
    /// Header fields in order, names as written, values trimmed and unfolded.
    pub headers: Vec<(String, String)>,
    /// The body after the empty line.
    pub body: &'a [u8],
}

impl Entity<'_> {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The content type, defaulting to `application/octet-stream` (RFC 3080 §2.2.2).
    pub fn content_type(&self) -> &str {
        self.header("Content-Type")
            .unwrap_or("application/octet-stream")
    }
}

/// Splits a message payload into entity headers and body.
pub fn split(payload: &[u8]) -> Result<Entity<'_>, MimeError> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut rest = payload;
    loop {
        let end = rest
            .windows(2)
            .take(MAX_HEADERS)
            .position(|w| w == b"\r\n")
            .ok_or(MimeError::Unterminated)?;
        let line = &rest[..end];
        rest = &rest[end + 2..];
        if line.is_empty() {
            return Ok(Entity {
                headers,
                body: rest,
            });
        }
        if payload.len() - rest.len() > MAX_HEADERS {
            return Err(MimeError::Unterminated);
        }
        let line = std::str::from_utf8(line).map_err(|_| MimeError::BadHeader)?;
        if line.starts_with([' ', '\t']) {
            // Folded continuation of the previous header (RFC 5322 §2.2.3).
            let (_, value) = headers.last_mut().ok_or(MimeError::BadHeader)?;
            value.push(' ');
            value.push_str(line.trim());
            continue;
        }
        let (name, value) = line.split_once(':').ok_or(MimeError::BadHeader)?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(MimeError::BadHeader);
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
}

/// Returns the body of an `application/beep+xml` entity, checking the content
/// type (a `charset` parameter, if any, must name UTF-8).
pub fn beep_xml_body(payload: &[u8]) -> Result<&[u8], MimeError> {
    let entity = split(payload)?;
    let content_type = entity.content_type();
    let mut parts = content_type.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default();
    let charset_ok = parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let value = value.trim().trim_matches('"');
            value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    });
    if media.eq_ignore_ascii_case("application/beep+xml") && charset_ok {
        Ok(entity.body)
    } else {
        Err(MimeError::ContentType(content_type.to_owned()))
    }
}

/// Builds an `application/beep+xml` payload: headers, empty line, `xml`, CRLF
/// (the layout of every RFC 3080 example).
pub fn beep_xml_payload(xml: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(BEEP_XML_HEADERS.len() + xml.len() + 2);
    payload.extend_from_slice(BEEP_XML_HEADERS);
    payload.extend_from_slice(xml.as_bytes());
    payload.extend_from_slice(b"\r\n");
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_headers_and_body() {
        let entity = split(b"Content-Type: text/plain\r\nX-A: 1\r\n  2\r\n\r\nbody").unwrap();
        assert_eq!(entity.content_type(), "text/plain");
        assert_eq!(entity.header("x-a"), Some("1 2"));
        assert_eq!(entity.body, b"body");
    }

    #[test]
    fn no_headers_means_octet_stream() {
        let entity = split(b"\r\nraw").unwrap();
        assert_eq!(entity.content_type(), "application/octet-stream");
        assert_eq!(entity.body, b"raw");
    }

    #[test]
    fn checks_beep_xml_content_type() {
        assert_eq!(
            beep_xml_body(&beep_xml_payload("<ok />")).unwrap(),
            b"<ok />\r\n"
        );
        assert!(
            beep_xml_body(b"Content-Type: application/beep+xml; charset=UTF-8\r\n\r\n<ok/>")
                .is_ok()
        );
        assert!(matches!(
            beep_xml_body(b"Content-Type: text/xml\r\n\r\n<ok/>"),
            Err(MimeError::ContentType(_))
        ));
        assert!(matches!(
            beep_xml_body(b"Content-Type: application/beep+xml; charset=iso-8859-1\r\n\r\n<ok/>"),
            Err(MimeError::ContentType(_))
        ));
        assert_eq!(beep_xml_body(b"<ok/>"), Err(MimeError::Unterminated));
        assert_eq!(
            beep_xml_body(b"bad header\r\n\r\n"),
            Err(MimeError::BadHeader)
        );
    }
}
