//! Message content across the gateway (RFC 3922 §4, RFC 3923 §8).
//!
//! The gateway is the one place in the relay that reads content, and it
//! reads only what it must translate: a plain `Message/CPIM` (or bare
//! `text/plain`) becomes a stanza's `<body/>`, `<subject/>`, `<thread/>`
//! and `type`, and back. Content protected end to end (S/MIME:
//! `multipart/signed` with `application/pkcs7-signature`, or
//! `application/pkcs7-mime`) is never parsed: the MIME entity travels in
//! `<e2e/>` (RFC 3923 §3.1) octet for octet, and comes back out the same.

use super::stanza::{self, IMXP_NS, MessageFields};
use thiserror::Error;

/// Content that cannot cross into XMPP.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum ContentError {
    /// A media type XMPP has no place for (RFC 3922 §4.2.9).
    #[error("content of type {0} cannot be carried in an XMPP message")]
    MediaType(String),
    /// A charset other than UTF-8 or US-ASCII (RFC 3922 §4.2.9).
    #[error("text in charset {0} is not mapped to XMPP (only UTF-8 and US-ASCII)")]
    Charset(String),
    /// The CPIM message is malformed.
    #[error("Message/CPIM: {0}")]
    Cpim(String),
    /// `Require` names an extension the gateway cannot honour (RFC 3922
    /// §4.2.7).
    #[error("Message/CPIM requires {0}, which XMPP cannot carry")]
    Require(String),
    /// Protected content that XML cannot carry unchanged (RFC 3923 §3.1).
    #[error(
        "protected content holds ']]>', a bare CR or LF, or a character XML forbids: it cannot travel in <e2e/> unchanged"
    )]
    NotCdataSafe,
    /// Text that is not UTF-8.
    #[error("the text is not UTF-8")]
    NotUtf8,
}

/// The `Message/CPIM` media type.
pub(crate) const CPIM: &str = "message/cpim";

/// The media type of `content_type` (lowercase, no parameters).
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The value of parameter `name` in `content_type`.
fn parameter(content_type: &str, name: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// Whether `content_type` is content protected end to end with S/MIME,
/// which the gateway carries in `<e2e/>` (RFC 3923 §2).
pub(crate) fn is_protected(content_type: &str) -> bool {
    match media_type(content_type).as_str() {
        "application/pkcs7-mime" => true,
        "multipart/signed" => parameter(content_type, "protocol").is_some_and(|p| {
            p.eq_ignore_ascii_case("application/pkcs7-signature")
                || p.eq_ignore_ascii_case("application/x-pkcs7-signature")
        }),
        _ => false,
    }
}

/// The `<e2e/>` text for protected content: its MIME entity (the
/// Content-Type line, the empty line, the body), checked to survive XML
/// unchanged.
pub(crate) fn e2e_text(content_type: &str, body: &[u8]) -> Result<String, ContentError> {
    let body = std::str::from_utf8(body).map_err(|_| ContentError::NotCdataSafe)?;
    let text = format!("Content-Type: {content_type}\r\n\r\n{body}");
    if stanza::cdata_safe(&text) {
        Ok(text)
    } else {
        Err(ContentError::NotCdataSafe)
    }
}

/// The content type and body of a received `<e2e/>` object, line ends
/// restored (XML parsers turn CRLF into LF).
pub(crate) fn from_e2e(text: &str) -> Result<(String, Vec<u8>), ContentError> {
    let restored = stanza::restore_crlf(text.trim_start_matches(['\r', '\n']));
    let (headers, body) = restored
        .split_once("\r\n\r\n")
        .ok_or_else(|| ContentError::Cpim("the <e2e/> object has no header block".into()))?;
    let content_type = unfolded_headers(headers)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("Content-Type"))
        .map(|(_, value)| value)
        .ok_or_else(|| ContentError::Cpim("the <e2e/> object has no Content-Type".into()))?;
    if !is_protected(&content_type) {
        return Err(ContentError::MediaType(content_type));
    }
    Ok((content_type, body.as_bytes().to_vec()))
}

fn unfolded_headers(block: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in block.split("\r\n").flat_map(|l| l.split('\n')) {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    headers
}

/// What a plain message carries, in XMPP's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plain {
    /// The text.
    pub(crate) body: Option<String>,
    /// Subject and its language.
    pub(crate) subject: Option<(String, Option<String>)>,
    /// The XMPP thread, carried in our CPIM header.
    pub(crate) thread: Option<String>,
    /// The XMPP message type, carried in our CPIM header.
    pub(crate) message_type: Option<String>,
}

impl Plain {
    /// The stanza fields.
    pub(crate) fn into_fields(self) -> (MessageFields, Option<String>) {
        (
            MessageFields {
                body: self.body,
                subject: self.subject,
                thread: self.thread,
                ..MessageFields::default()
            },
            self.message_type,
        )
    }
}

fn text_of(content_type: &str, body: &[u8]) -> Result<String, ContentError> {
    if media_type(content_type) != "text/plain" {
        return Err(ContentError::MediaType(media_type(content_type)));
    }
    if let Some(charset) = parameter(content_type, "charset")
        && !charset.eq_ignore_ascii_case("utf-8")
        && !charset.eq_ignore_ascii_case("us-ascii")
    {
        return Err(ContentError::Charset(charset));
    }
    String::from_utf8(body.to_vec()).map_err(|_| ContentError::NotUtf8)
}

/// Reads unprotected content for XMPP (RFC 3922 §4.2): `Message/CPIM`
/// with a `text/plain` part, or bare `text/plain`.
pub(crate) fn to_plain(content_type: &str, body: &[u8]) -> Result<Plain, ContentError> {
    if media_type(content_type) != CPIM {
        return Ok(Plain {
            body: Some(text_of(content_type, body)?),
            ..Plain::default()
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| ContentError::NotUtf8)?;
    let (cpim_headers, rest) = split_block(text)
        .ok_or_else(|| ContentError::Cpim("no empty line after the message headers".into()))?;
    let (mime_headers, inner_body) = split_block(rest)
        .ok_or_else(|| ContentError::Cpim("no empty line after the content headers".into()))?;
    let headers = unfolded_headers(cpim_headers);
    // NS: prefix <uri> (RFC 3862 §3.3.7): which prefix names ours.
    let prefix = headers.iter().find_map(|(name, value)| {
        let (prefix, uri) = value.split_once('<')?;
        (name.eq_ignore_ascii_case("NS") && uri.trim_end_matches('>').trim() == IMXP_NS)
            .then(|| prefix.trim().to_owned())
    });
    let ours = |name: &str, field: &str| {
        prefix.as_ref().is_some_and(|p| {
            name.split_once('.')
                .is_some_and(|(np, nf)| np == p && nf.eq_ignore_ascii_case(field))
        })
    };
    let mut plain = Plain::default();
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("Require") {
            return Err(ContentError::Require(value.clone()));
        }
        if name.eq_ignore_ascii_case("Subject") && plain.subject.is_none() {
            // Subject:;lang=cz text (RFC 3862 §3.3.5).
            let (lang, text) = match value.strip_prefix(";lang=") {
                Some(rest) => match rest.split_once(' ') {
                    Some((lang, text)) => (Some(lang.to_owned()), text.to_owned()),
                    None => (Some(rest.to_owned()), String::new()),
                },
                None => (None, value.clone()),
            };
            plain.subject = Some((text, lang));
        } else if ours(name, "Thread") {
            plain.thread = Some(value.clone());
        } else if ours(name, "Type") {
            plain.message_type = Some(value.clone());
        }
    }
    let inner_type = unfolded_headers(mime_headers)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("Content-Type"))
        .map_or_else(|| "text/plain".to_owned(), |(_, value)| value);
    plain.body = Some(text_of(&inner_type, inner_body.as_bytes())?);
    Ok(plain)
}

fn split_block(text: &str) -> Option<(&str, &str)> {
    let crlf = text.find("\r\n\r\n").map(|i| (i, 4));
    let lf = text.find("\n\n").map(|i| (i, 2));
    let (at, len) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            if a.0 <= b.0 {
                a
            } else {
                b
            }
        }
        (a, b) => a.or(b)?,
    };
    Some((&text[..at], &text[at + len..]))
}

/// A header value on one line (CR, LF and tabs become spaces).
fn one_line(value: &str) -> String {
    value.replace(['\r', '\n', '\t'], " ")
}

/// The `Message/CPIM` body for a plain XMPP message (RFC 3922 §4.1):
/// From and To as `im:` URIs, DateTime of receipt, Subject with its
/// language, the thread and type in our namespace, then a `text/plain`
/// part.
pub(crate) fn from_plain(from: &str, to: &str, date_time: &str, plain: &Plain) -> Vec<u8> {
    let mut out = format!("From: <im:{from}>\r\nTo: <im:{to}>\r\nDateTime: {date_time}\r\n");
    if let Some((subject, lang)) = &plain.subject {
        match lang {
            Some(lang) => out.push_str(&format!("Subject:;lang={lang} {}\r\n", one_line(subject))),
            None => out.push_str(&format!("Subject: {}\r\n", one_line(subject))),
        }
    }
    if plain.thread.is_some() || plain.message_type.is_some() {
        out.push_str(&format!("NS: xmpp <{IMXP_NS}>\r\n"));
    }
    if let Some(thread) = &plain.thread {
        out.push_str(&format!("xmpp.Thread: {}\r\n", one_line(thread)));
    }
    if let Some(message_type) = &plain.message_type {
        out.push_str(&format!("xmpp.Type: {}\r\n", one_line(message_type)));
    }
    out.push_str("\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    out.push_str(plain.body.as_deref().unwrap_or(""));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_round_trip_keeps_subject_thread_and_type() {
        let plain = Plain {
            body: Some("Wherefore art thou?\nline two".into()),
            subject: Some(("Question".into(), Some("en".into()))),
            thread: Some("e0ffe42b28561960c6b12b944a092794b9683a38".into()),
            message_type: Some("chat".into()),
        };
        let cpim = from_plain(
            "romeo@montague.lit",
            "alice@a.test",
            "2026-01-01T00:00:00Z",
            &plain,
        );
        let text = String::from_utf8(cpim.clone()).unwrap();
        assert!(text.starts_with("From: <im:romeo@montague.lit>\r\nTo: <im:alice@a.test>\r\n"));
        assert!(text.contains("Subject:;lang=en Question\r\n"));
        assert_eq!(to_plain("Message/CPIM", &cpim).unwrap(), plain);
    }

    #[test]
    fn bare_text_and_refusals() {
        let plain = to_plain("text/plain; charset=UTF-8", b"hi").unwrap();
        assert_eq!(plain.body.as_deref(), Some("hi"));
        assert_eq!(
            to_plain("text/plain; charset=iso-8859-1", b"hi"),
            Err(ContentError::Charset("iso-8859-1".into()))
        );
        assert_eq!(
            to_plain("image/png", b"\x89PNG"),
            Err(ContentError::MediaType("image/png".into()))
        );
        let cpim = b"From: <im:a@b>\r\nRequire: x.Foo\r\n\r\nContent-Type: text/plain\r\n\r\nhi";
        assert!(matches!(
            to_plain(CPIM, cpim),
            Err(ContentError::Require(_))
        ));
        let html = b"From: <im:a@b>\r\n\r\nContent-Type: text/html\r\n\r\n<b>hi</b>";
        assert!(matches!(
            to_plain(CPIM, html),
            Err(ContentError::MediaType(_))
        ));
    }

    #[test]
    fn protected_content_travels_unchanged() {
        let content_type = "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"b\"";
        assert!(is_protected(content_type));
        assert!(!is_protected(
            "multipart/signed; protocol=\"application/pgp-signature\""
        ));
        let body = b"--b\r\nContent-Type: message/cpim\r\n\r\nFrom: <im:a@b>\r\n\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n";
        let text = e2e_text(content_type, body).unwrap();
        // What an XML parser hands the far side: LF line ends.
        let parsed = text.replace("\r\n", "\n");
        let (back_type, back_body) = from_e2e(&parsed).unwrap();
        assert_eq!(back_type, content_type);
        assert_eq!(back_body, body);
        assert_eq!(
            e2e_text(content_type, b"bare\nlf"),
            Err(ContentError::NotCdataSafe)
        );
        assert_eq!(
            e2e_text(content_type, b"x]]>y"),
            Err(ContentError::NotCdataSafe)
        );
        assert!(matches!(
            from_e2e("Content-Type: text/plain\n\nhi"),
            Err(ContentError::MediaType(_))
        ));
    }
}
