//! Message/CPIM (RFC 3862): the common message format of CPIM instant
//! messaging (RFC 3860 §3.3), which carries the sender, recipients, date and
//! subject inside the end-to-end protected part.
//!
//! A Message/CPIM body is a block of message headers (§3), an empty line, and
//! an encapsulated MIME entity (§2.4). [`CpimMessage`] keeps the octets it
//! was made from and gives them back unchanged: "Message processors MUST
//! preserve all octets of all headers (both name and value) exactly" and
//! "MUST NOT change the order of message headers" (§2.2). Values are read
//! through the escape mechanism of §2.3 and written with it by
//! [`CpimBuilder`].
//!
//! The headers of §4 (`From`, `To`, `cc`, `DateTime`, `Subject`, `NS`,
//! `Require`) live in the namespace `urn:ietf:params:cpim-headers:`, which is
//! the default namespace until an `NS` header without prefix replaces it
//! (§3.4); an `NS` header can also give it a prefix. The spelling
//! `urn:ietf:params-cpim-headers:` of RFC 3862 §6 is an erratum and is read
//! as the same namespace.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::E2eError;

/// The namespace URI of the headers defined by RFC 3862 §4.
pub const CPIM_NAMESPACE: &str = "urn:ietf:params:cpim-headers:";

/// The misspelled namespace of RFC 3862 §6 (an erratum), read as
/// [`CPIM_NAMESPACE`].
const CPIM_NAMESPACE_ERRATUM: &str = "urn:ietf:params-cpim-headers:";

/// The media type of a Message/CPIM entity (RFC 3862 §7).
pub const MEDIA_TYPE: &str = "message/cpim";

/// The header names of RFC 3862 §4 that this implementation understands,
/// for `Require` (§4.7).
const UNDERSTOOD: &[&str] = &["From", "To", "cc", "DateTime", "Subject", "NS", "Require"];

fn cpim_error(reason: impl Into<String>) -> E2eError {
    E2eError::Cpim(reason.into())
}

// ===== header =====

/// One message header line (§3.6: `Header-name ":" *( ";" Parameter ) SP
/// Header-value`), exactly as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpimHeader {
    line: String,
    name_end: usize,
    value_start: usize,
}

impl CpimHeader {
    /// Parses one header line (without its CRLF).
    pub fn parse(line: &str) -> Result<Self, E2eError> {
        let bad = |reason: &str| cpim_error(format!("header {line:?}: {reason}"));
        if let Some(c) = line.chars().find(|&c| is_ctl(c)) {
            return Err(bad(&format!(
                "control character U+{:04X} must be escaped (RFC 3862 §2.3)",
                c as u32
            )));
        }
        let name_end = line
            .find(':')
            .ok_or_else(|| bad("no ':' after the header name"))?;
        check_header_name(&line[..name_end]).map_err(|reason| bad(&reason))?;
        let mut at = name_end + 1;
        while line[at..].starts_with(';') {
            at += 1 + parameter_len(&line[at + 1..]).map_err(|reason| bad(&reason))?;
        }
        if !line[at..].starts_with(' ') {
            return Err(bad(
                "the header name and its parameters must be followed by one space (RFC 3862 §3)",
            ));
        }
        Ok(Self {
            line: line.to_owned(),
            name_end,
            value_start: at + 1,
        })
    }

    /// The header line as written.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The header name as written, with its namespace prefix if any.
    pub fn name(&self) -> &str {
        &self.line[..self.name_end]
    }

    /// The namespace prefix, if the name has one (`prefix.name`, §3.4).
    pub fn prefix(&self) -> Option<&str> {
        self.name().split_once('.').map(|(prefix, _)| prefix)
    }

    /// The name without its namespace prefix.
    pub fn local_name(&self) -> &str {
        self.name()
            .split_once('.')
            .map_or_else(|| self.name(), |(_, name)| name)
    }

    /// The parameters (`;name=value`), values unescaped and unquoted.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = &self.line[self.name_end + 1..self.value_start - 1];
        while let Some(after) = rest.strip_prefix(';') {
            let len = parameter_len(after).unwrap_or(after.len());
            let param = &after[..len];
            if let Some((name, value)) = param.split_once('=') {
                let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    Some(quoted) => unescape(quoted),
                    None => value.to_owned(),
                };
                out.push((name.to_owned(), value));
            }
            rest = &after[len..];
        }
        out
    }

    /// The `lang` parameter (§3.3).
    pub fn lang(&self) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(name, _)| name == "lang")
            .map(|(_, value)| value)
    }

    /// The value as written (escape sequences not undone).
    pub fn raw_value(&self) -> &str {
        &self.line[self.value_start..]
    }

    /// The value with the escape sequences of §2.3 undone.
    pub fn value(&self) -> String {
        unescape(self.raw_value())
    }
}

/// `Header-name = [ Name-prefix "." ] Name`, `Name = 1*NAMECHAR`.
fn check_header_name(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 {
        return Err(format!(
            "header name {name:?} has more than one '.' (only a namespace prefix may be separated)"
        ));
    }
    for part in parts {
        if part.is_empty() {
            return Err(format!("header name {name:?} has an empty part"));
        }
        if let Some(c) = part.chars().find(|&c| !is_namechar(c)) {
            return Err(format!(
                "header name {name:?} contains {c:?}, which is not allowed (RFC 3862 §3.1)"
            ));
        }
    }
    Ok(())
}

/// The length of one `Parameter` at the start of `text` (after its `;`).
fn parameter_len(text: &str) -> Result<usize, String> {
    let eq = text
        .find('=')
        .ok_or_else(|| "a parameter has no '='".to_owned())?;
    let name = &text[..eq];
    if name.is_empty() || !name.chars().all(is_namechar) {
        return Err(format!("parameter name {name:?} is not a Name"));
    }
    let value = &text[eq + 1..];
    if let Some(quoted) = value.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return Ok(eq + 2 + i + 1),
                _ => {}
            }
        }
        Err("a quoted parameter value is not closed".to_owned())
    } else {
        let len = value
            .find(|c: char| !is_tokenchar(c))
            .unwrap_or(value.len());
        if len == 0 {
            return Err(format!("parameter {name:?} has an empty value"));
        }
        Ok(eq + 1 + len)
    }
}

fn is_ctl(c: char) -> bool {
    (c as u32) < 0x20 || c == '\u{7f}'
}

fn is_separator(c: char) -> bool {
    matches!(
        c,
        '(' | ')'
            | '<'
            | '>'
            | '@'
            | ','
            | ';'
            | ':'
            | '\\'
            | '"'
            | '/'
            | '['
            | ']'
            | '?'
            | '='
            | '{'
            | '}'
            | ' '
    )
}

/// `NAMECHAR`: any US-ASCII character except `.`, CTLs or separators.
fn is_namechar(c: char) -> bool {
    c.is_ascii() && !is_ctl(c) && !is_separator(c) && c != '.'
}

/// `TOKENCHAR`: `NAMECHAR`, `.`, or any non-ASCII character.
fn is_tokenchar(c: char) -> bool {
    is_namechar(c) || c == '.' || !c.is_ascii()
}

// ===== escapes (§2.3) =====

/// Undoes the escape mechanism of §2.3: `\uXXXX` (UCS-2, surrogate pairs
/// joined), `\\ \" \' \b \t \n \r`; an unknown escape stands for the
/// character after the backslash, and a lone backslash at the end is
/// dropped (§2.3.1).
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut high_surrogate: Option<u32> = None;
    while let Some(c) = chars.next() {
        if c != '\\' {
            flush_surrogate(&mut out, &mut high_surrogate);
            out.push(c);
            continue;
        }
        let Some(next) = chars.next() else {
            break;
        };
        if next == 'u' {
            let hex: String = chars.clone().take(4).collect();
            if hex.len() == 4 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                for _ in 0..4 {
                    chars.next();
                }
                let unit = u32::from_str_radix(&hex, 16).unwrap_or(0xfffd);
                match (unit, high_surrogate.take()) {
                    (0xdc00..=0xdfff, Some(high)) => {
                        let code = 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00);
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    (0xd800..=0xdbff, previous) => {
                        if previous.is_some() {
                            out.push('\u{fffd}');
                        }
                        high_surrogate = Some(unit);
                    }
                    (_, previous) => {
                        if previous.is_some() {
                            out.push('\u{fffd}');
                        }
                        out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
                    }
                }
                continue;
            }
        }
        flush_surrogate(&mut out, &mut high_surrogate);
        out.push(match next {
            'b' => '\u{8}',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            other => other,
        });
    }
    flush_surrogate(&mut out, &mut high_surrogate);
    out
}

fn flush_surrogate(out: &mut String, high: &mut Option<u32>) {
    if high.take().is_some() {
        out.push('\u{fffd}');
    }
}

/// Applies §2.3.1 to a header value: `\` `\b` `\t` `\n` `\r` as their
/// special sequences, other control characters as `\uXXXX`, everything else
/// as it is. `quote` is the delimiter of an enclosing quoted string, whose
/// occurrences are escaped too.
pub fn escape(text: &str, quote: Option<char>) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if Some(c) == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_ctl(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

// ===== addresses =====

/// The value of `From`, `To` and `cc` (§4.1–4.3): `[ Formal-name ] "<" URI ">"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpimAddress {
    /// The person's name, if given (quotes and escapes undone).
    pub formal_name: Option<String>,
    /// The URI between the angle brackets, e.g. `im:alice@a.test`.
    pub uri: String,
}

impl CpimAddress {
    /// An address with a URI and no formal name.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            formal_name: None,
            uri: uri.into(),
        }
    }

    /// Reads a header value (as written, escapes not undone).
    pub fn parse(raw_value: &str) -> Result<Self, E2eError> {
        let bad = |reason: &str| cpim_error(format!("address {raw_value:?}: {reason}"));
        let inner = raw_value
            .strip_suffix('>')
            .ok_or_else(|| bad("must end with '<URI>'"))?;
        let open = inner
            .rfind('<')
            .ok_or_else(|| bad("no '<' before the URI"))?;
        let uri = &inner[open + 1..];
        if uri.is_empty() || uri.contains(char::is_whitespace) || !uri.contains(':') {
            return Err(bad("the URI is not an absolute URI"));
        }
        let name = &inner[..open];
        let formal_name = if name.is_empty() {
            None
        } else if let Some(quoted) = name
            .trim_end_matches(' ')
            .strip_prefix('"')
            .and_then(|n| n.strip_suffix('"'))
        {
            Some(unescape(quoted))
        } else {
            let Some(tokens) = name.strip_suffix(' ') else {
                return Err(bad("a formal name must be followed by one space"));
            };
            Some(unescape(tokens))
        };
        Ok(Self {
            formal_name,
            uri: uri.to_owned(),
        })
    }

    /// Writes the header value: a formal name of tokens as it is, any other
    /// as a quoted string.
    pub fn to_value(&self) -> String {
        match &self.formal_name {
            None => format!("<{}>", self.uri),
            Some(name)
                if !name.is_empty()
                    && name
                        .split(' ')
                        .all(|token| !token.is_empty() && token.chars().all(is_tokenchar)) =>
            {
                format!("{name} <{}>", self.uri)
            }
            Some(name) => format!("\"{}\" <{}>", escape(name, Some('"')), self.uri),
        }
    }
}

// ===== message =====

/// A Message/CPIM body: headers, empty line, encapsulated MIME entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpimMessage {
    raw: Vec<u8>,
    headers: Vec<CpimHeader>,
    content_offset: usize,
}

/// A header with its namespace resolved (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// The namespace URI, `None` for a prefix that no `NS` declared.
    pub namespace: Option<&'a str>,
    /// The name within the namespace.
    pub name: &'a str,
    /// The header itself.
    pub header: &'a CpimHeader,
}

impl CpimMessage {
    /// Parses the body of a Message/CPIM entity (what follows its MIME
    /// headers). Header lines end with CRLF (§2.2); the encapsulated entity
    /// is kept octet for octet and must have a `Content-Type` (§2.4).
    pub fn parse(body: &[u8]) -> Result<Self, E2eError> {
        let mut headers = Vec::new();
        let mut at = 0;
        loop {
            let end = find(&body[at..], b"\r\n").map(|i| at + i).ok_or_else(|| {
                cpim_error(
                    "the message headers are not ended by an empty line (CRLF CRLF, RFC 3862 §2)",
                )
            })?;
            let line = &body[at..end];
            at = end + 2;
            if line.is_empty() {
                break;
            }
            let line = std::str::from_utf8(line).map_err(|_| {
                cpim_error(format!(
                    "header line {} is not UTF-8 (RFC 3862 §2.2)",
                    headers.len() + 1
                ))
            })?;
            headers.push(CpimHeader::parse(line)?);
        }
        if headers.is_empty() {
            return Err(cpim_error("no message headers (at least From is expected)"));
        }
        let message = Self {
            raw: body.to_vec(),
            headers,
            content_offset: at,
        };
        let content = message.content();
        let has_content_type = crate::mime::split_entity(content)
            .map(|entity| entity.header("content-type").is_some())
            .unwrap_or(false);
        if !has_content_type {
            return Err(cpim_error(
                "the encapsulated MIME entity has no Content-Type (RFC 3862 §2.4)",
            ));
        }
        message.check_namespaces()?;
        Ok(message)
    }

    /// Parses a whole Message/CPIM entity, MIME headers included (the form
    /// of RFC 3862 §5.1); its Content-Type must be `message/cpim`.
    pub fn parse_entity(entity: &[u8]) -> Result<Self, E2eError> {
        let split = crate::mime::split_entity(entity)?;
        if !split.media_type().eq_ignore_ascii_case(MEDIA_TYPE) {
            return Err(cpim_error(format!(
                "the entity is {}, not {MEDIA_TYPE}",
                split.media_type()
            )));
        }
        Self::parse(split.body)
    }

    /// The octets this message was read from (or built as).
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The whole entity: `Content-Type: message/cpim`, empty line, body.
    /// CPIM headers are UTF-8 (RFC 3862 §2.2): when any octet is not
    /// ASCII the entity says `Content-Transfer-Encoding: 8bit` (RFC 2045
    /// §6.2; BEEP carries 8-bit content unchanged, RFC 3340 §4.1).
    pub fn to_entity(&self) -> Vec<u8> {
        let mut out = if self.raw.is_ascii() {
            b"Content-Type: message/cpim\r\n\r\n".to_vec()
        } else {
            b"Content-Type: message/cpim\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".to_vec()
        };
        out.extend_from_slice(&self.raw);
        out
    }

    /// The header lines, in order.
    pub fn headers(&self) -> &[CpimHeader] {
        &self.headers
    }

    /// The encapsulated MIME entity, octet for octet.
    pub fn content(&self) -> &[u8] {
        &self.raw[self.content_offset..]
    }

    /// Every header with its namespace (§3.4), in order.
    pub fn resolved(&self) -> Vec<Resolved<'_>> {
        let mut default_ns: &str = CPIM_NAMESPACE;
        let mut prefixes: Vec<(&str, &str)> = Vec::new();
        let mut out = Vec::with_capacity(self.headers.len());
        for header in &self.headers {
            let namespace = match header.prefix() {
                None => Some(default_ns),
                Some(prefix) => prefixes
                    .iter()
                    .rev()
                    .find(|(p, _)| *p == prefix)
                    .map(|(_, uri)| *uri),
            };
            out.push(Resolved {
                namespace,
                name: header.local_name(),
                header,
            });
            if namespace == Some(CPIM_NAMESPACE)
                && header.local_name() == "NS"
                && let Some((prefix, uri)) = ns_declaration(header.raw_value())
            {
                match prefix {
                    Some(prefix) => prefixes.push((prefix, uri)),
                    None => default_ns = uri,
                }
            }
        }
        out
    }

    fn check_namespaces(&self) -> Result<(), E2eError> {
        for resolved in self.resolved() {
            if resolved.namespace.is_none() {
                return Err(cpim_error(format!(
                    "header {:?} uses a namespace prefix no earlier NS header declared (RFC 3862 §3.4)",
                    resolved.header.name()
                )));
            }
            if resolved.namespace == Some(CPIM_NAMESPACE)
                && resolved.name == "NS"
                && ns_declaration(resolved.header.raw_value()).is_none()
            {
                return Err(cpim_error(format!(
                    "NS header {:?} is not '[prefix] <URI>' (RFC 3862 §4.6)",
                    resolved.header.line()
                )));
            }
        }
        Ok(())
    }

    /// The headers of RFC 3862 §4 named `name`, in order.
    pub fn core(&self, name: &str) -> Vec<&CpimHeader> {
        self.resolved()
            .into_iter()
            .filter(|r| r.namespace == Some(CPIM_NAMESPACE) && r.name == name)
            .map(|r| r.header)
            .collect()
    }

    /// The `From` address (§4.1).
    pub fn from(&self) -> Result<Option<CpimAddress>, E2eError> {
        self.core("From")
            .first()
            .map(|h| CpimAddress::parse(h.raw_value()))
            .transpose()
    }

    /// The `To` addresses (§4.2).
    pub fn to(&self) -> Result<Vec<CpimAddress>, E2eError> {
        self.core("To")
            .iter()
            .map(|h| CpimAddress::parse(h.raw_value()))
            .collect()
    }

    /// The `cc` addresses (§4.3).
    pub fn cc(&self) -> Result<Vec<CpimAddress>, E2eError> {
        self.core("cc")
            .iter()
            .map(|h| CpimAddress::parse(h.raw_value()))
            .collect()
    }

    /// The `DateTime` value (§4.4), checked against RFC 3339.
    pub fn date_time(&self) -> Result<Option<String>, E2eError> {
        match self.core("DateTime").first() {
            None => Ok(None),
            Some(header) => {
                let value = header.value();
                if is_rfc3339(&value) {
                    Ok(Some(value))
                } else {
                    Err(cpim_error(format!(
                        "DateTime {value:?} is not an RFC 3339 date-time (RFC 3862 §4.4)"
                    )))
                }
            }
        }
    }

    /// The `Subject` values with their `lang` (§4.5, §3.3).
    pub fn subjects(&self) -> Vec<(Option<String>, String)> {
        self.core("Subject")
            .iter()
            .map(|h| (h.lang(), h.value()))
            .collect()
    }

    /// The names listed by `Require` headers (§4.7) that this
    /// implementation does not understand (anything but the headers of §4),
    /// as written.
    pub fn unsupported_required(&self) -> Vec<String> {
        let resolved = self.resolved();
        let mut out = Vec::new();
        for require in resolved
            .iter()
            .filter(|r| r.namespace == Some(CPIM_NAMESPACE) && r.name == "Require")
        {
            for name in require.header.value().split(',').map(str::trim) {
                let understood = match name.split_once('.') {
                    None => UNDERSTOOD.contains(&name),
                    Some((prefix, local)) => {
                        let namespace = resolved
                            .iter()
                            .take_while(|r| !std::ptr::eq(r.header, require.header))
                            .filter(|r| r.namespace == Some(CPIM_NAMESPACE) && r.name == "NS")
                            .filter_map(|r| ns_declaration(r.header.raw_value()))
                            .filter(|(p, _)| *p == Some(prefix))
                            .map(|(_, uri)| uri)
                            .last();
                        namespace == Some(CPIM_NAMESPACE) && UNDERSTOOD.contains(&local)
                    }
                };
                if !understood && !name.is_empty() {
                    out.push(name.to_owned());
                }
            }
        }
        out
    }
}

/// Reads an `NS` value, `[ Name-prefix SP ] "<" URI ">"`, mapping the
/// erratum spelling of the CPIM namespace to the right one.
fn ns_declaration(raw_value: &str) -> Option<(Option<&str>, &str)> {
    let inner = raw_value.strip_suffix('>')?;
    let open = inner.rfind('<')?;
    let mut uri = &inner[open + 1..];
    if uri == CPIM_NAMESPACE_ERRATUM {
        uri = CPIM_NAMESPACE;
    }
    if uri.is_empty() || !uri.contains(':') {
        return None;
    }
    let prefix = &inner[..open];
    if prefix.is_empty() {
        return Some((None, uri));
    }
    let prefix = prefix.strip_suffix(' ')?;
    (!prefix.is_empty() && prefix.chars().all(is_namechar)).then_some((Some(prefix), uri))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// RFC 3339 §5.6 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn is_rfc3339(value: &str) -> bool {
    let b = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut at = 19;
    if b[at] == b'.' {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        if at == start {
            return false;
        }
    }
    match &b[at..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

/// The current time as an RFC 3339 UTC date-time, for `DateTime`.
pub fn now_rfc3339() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_rfc3339(seconds)
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(seconds: u64) -> String {
    imxp_wire::datetime::rfc3339_seconds(seconds)
}

// ===== builder =====

/// Builds a Message/CPIM body with correctly escaped headers, in the order
/// the methods are called.
#[derive(Debug, Clone, Default)]
pub struct CpimBuilder {
    lines: Vec<String>,
}

impl CpimBuilder {
    /// An empty header block.
    pub fn new() -> Self {
        Self::default()
    }

    /// `From` (§4.1).
    pub fn from(self, address: &CpimAddress) -> Self {
        self.raw_line(format!("From: {}", address.to_value()))
    }

    /// One `To` (§4.2).
    pub fn to(self, address: &CpimAddress) -> Self {
        self.raw_line(format!("To: {}", address.to_value()))
    }

    /// One `cc` (§4.3).
    pub fn cc(self, address: &CpimAddress) -> Self {
        self.raw_line(format!("cc: {}", address.to_value()))
    }

    /// `DateTime` (§4.4), an RFC 3339 date-time such as [`now_rfc3339`].
    pub fn date_time(self, date_time: &str) -> Self {
        self.raw_line(format!("DateTime: {}", escape(date_time, None)))
    }

    /// One `Subject` (§4.5), with an optional language tag (§3.3).
    pub fn subject(self, text: &str, lang: Option<&str>) -> Self {
        match lang {
            Some(lang) => self.raw_line(format!("Subject:;lang={lang} {}", escape(text, None))),
            None => self.raw_line(format!("Subject: {}", escape(text, None))),
        }
    }

    /// `NS` (§4.6): declares `prefix` (or the default namespace) for `uri`.
    pub fn ns(self, prefix: Option<&str>, uri: &str) -> Self {
        match prefix {
            Some(prefix) => self.raw_line(format!("NS: {prefix} <{uri}>")),
            None => self.raw_line(format!("NS: <{uri}>")),
        }
    }

    /// `Require` (§4.7) listing header names.
    pub fn require(self, names: &[&str]) -> Self {
        self.raw_line(format!("Require: {}", names.join(",")))
    }

    /// Any other header; the value is escaped.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.raw_line(format!("{name}: {}", escape(value, None)))
    }

    fn raw_line(mut self, line: String) -> Self {
        self.lines.push(line);
        self
    }

    /// Writes the headers, an empty line and `content` (a MIME entity with
    /// its own headers), and checks the result by parsing it.
    pub fn build(self, content: &[u8]) -> Result<CpimMessage, E2eError> {
        let mut raw = Vec::new();
        for line in &self.lines {
            raw.extend_from_slice(line.as_bytes());
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(content);
        CpimMessage::parse(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC3862_5_1: &[u8] = include_bytes!("../tests/data/rfc3862-5.1.txt");

    #[test]
    fn rfc3862_example_reads_and_round_trips() {
        let message = CpimMessage::parse_entity(RFC3862_5_1).unwrap();
        let from = message.from().unwrap().unwrap();
        assert_eq!(from.formal_name.as_deref(), Some("MR SANDERS"));
        assert_eq!(from.uri, "im:piglet@100akerwood.com");
        let to = message.to().unwrap();
        assert_eq!(to[0].formal_name.as_deref(), Some("Depressed Donkey"));
        assert_eq!(
            message.date_time().unwrap().as_deref(),
            Some("2000-12-13T13:40:00-08:00")
        );
        assert_eq!(
            message.subjects(),
            vec![
                (None, "the weather will be fine today".to_owned()),
                (
                    Some("fr".to_owned()),
                    "beau temps prevu pour aujourd'hui".to_owned()
                ),
            ]
        );
        assert_eq!(
            message.unsupported_required(),
            vec!["MyFeatures.VitalMessageOption".to_owned()]
        );
        let resolved = message.resolved();
        let wacky = resolved
            .iter()
            .find(|r| r.name == "WackyMessageOption")
            .unwrap();
        assert_eq!(wacky.namespace, Some("mid:MessageFeatures@id.foo.com"));
        assert!(message.content().starts_with(b"Content-type: text/xml"));
        // Octets and order preserved.
        let mime_headers = b"Content-type: Message/CPIM\r\n\r\n".len();
        assert!(message.as_bytes() == &RFC3862_5_1[mime_headers..]);
        assert_eq!(
            message.headers()[4].line(),
            "Subject:;lang=fr beau temps prevu pour aujourd'hui"
        );
    }

    #[test]
    fn builder_escapes_and_reads_back() {
        let from = CpimAddress {
            formal_name: Some("Ann \"the\" Tester".into()),
            uri: "im:ann@a.test".into(),
        };
        let message = CpimBuilder::new()
            .from(&from)
            .to(&CpimAddress::new("im:bob@b.test"))
            .cc(&CpimAddress {
                formal_name: Some("Carol Q".into()),
                uri: "im:carol@c.test".into(),
            })
            .date_time("2026-11-26T11:00:00Z")
            .subject("tab\there\\ and line\nbreak \u{1}", None)
            .subject("bonjour", Some("fr"))
            .build(b"Content-Type: text/plain\r\n\r\nhi")
            .unwrap();
        let text = String::from_utf8(message.as_bytes().to_vec()).unwrap();
        assert!(text.starts_with("From: \"Ann \\\"the\\\" Tester\" <im:ann@a.test>\r\n"));
        assert!(text.contains("cc: Carol Q <im:carol@c.test>\r\n"));
        assert!(text.contains("Subject: tab\\there\\\\ and line\\nbreak \\u0001\r\n"));
        assert_eq!(message.from().unwrap().unwrap(), from);
        assert_eq!(message.subjects()[0].1, "tab\there\\ and line\nbreak \u{1}");
        assert_eq!(message.subjects()[1].0.as_deref(), Some("fr"));
        assert!(message.unsupported_required().is_empty());
        assert!(
            message
                .to_entity()
                .starts_with(b"Content-Type: message/cpim\r\n\r\n")
        );
        let utf8 = CpimBuilder::new()
            .from(&CpimAddress::new("im:a@a.test"))
            .subject("Grüße", Some("de"))
            .build(b"Content-Type: text/plain\r\n\r\n")
            .unwrap();
        assert_eq!(utf8.subjects()[0].1, "Grüße");
        let entity = utf8.to_entity();
        assert!(
            entity.starts_with(
                b"Content-Type: message/cpim\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            )
        );
        assert_eq!(CpimMessage::parse_entity(&entity).unwrap(), utf8);
    }

    #[test]
    fn unescape_rules_of_2_3_1() {
        assert_eq!(unescape(r"a\u00e9b"), "aéb");
        assert_eq!(unescape(r"\ud83d\ude00"), "😀");
        assert_eq!(unescape(r"\x"), "x");
        assert_eq!(unescape(r#"\"\'"#), "\"'");
        assert_eq!(unescape("end\\"), "end");
    }

    #[test]
    fn prefixed_namespaces_and_default_namespace_change() {
        let body = b"NS: c <urn:ietf:params:cpim-headers:>\r\nNS: <http://example.com/x>\r\nFrom: <im:not@core.test>\r\nc.From: <im:real@a.test>\r\nc.Require: c.Subject\r\n\r\nContent-Type: text/plain\r\n\r\n";
        let message = CpimMessage::parse(body).unwrap();
        assert_eq!(message.from().unwrap().unwrap().uri, "im:real@a.test");
        assert!(message.unsupported_required().is_empty());
        let erratum = b"NS: e <urn:ietf:params-cpim-headers:>\r\ne.From: <im:x@a.test>\r\n\r\nContent-Type: text/plain\r\n\r\n";
        let message = CpimMessage::parse(erratum).unwrap();
        assert_eq!(message.from().unwrap().unwrap().uri, "im:x@a.test");
    }

    #[test]
    fn malformed_headers_are_named() {
        for (body, why) in [
            (
                &b"From:<im:a@b>\r\n\r\nContent-Type: a/b\r\n\r\n"[..],
                "one space",
            ),
            (b"Fr om: x\r\n\r\nContent-Type: a/b\r\n\r\n", "not allowed"),
            (
                b"x.From: <im:a@b>\r\n\r\nContent-Type: a/b\r\n\r\n",
                "no earlier NS",
            ),
            (b"From: <im:a@b>\r\n\r\nhello", "no Content-Type"),
            (
                b"From: <im:a@b>\r\nSubject: a\tb\r\n\r\nContent-Type: a/b\r\n\r\n",
                "escaped",
            ),
            (b"From: <im:a@b>\r\n", "empty line"),
            (
                b"Subject:;lang= x\r\n\r\nContent-Type: a/b\r\n\r\n",
                "empty value",
            ),
        ] {
            let error = CpimMessage::parse(body).unwrap_err().to_string();
            assert!(error.contains(why), "{error}");
        }
        let message =
            CpimMessage::parse(b"DateTime: yesterday\r\n\r\nContent-Type: a/b\r\n\r\n").unwrap();
        assert!(
            message
                .date_time()
                .unwrap_err()
                .to_string()
                .contains("RFC 3339")
        );
    }

    #[test]
    fn dates() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert!(is_rfc3339("2000-12-13T13:40:00-08:00"));
        assert!(is_rfc3339("2000-12-13T13:40:00.25Z"));
        assert!(!is_rfc3339("2000-12-13 13:40:00Z"));
        assert!(is_rfc3339(&now_rfc3339()));
    }
}
