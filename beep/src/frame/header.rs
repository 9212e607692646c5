//! Header lines: RFC 3080 §2.2.1 (data frames) and RFC 3081 §3.1.3 (SEQ).

use super::{FrameError, Keyword};
use bytes::{BufMut, BytesMut};
use std::io::Write as _;

/// The longest legal header line including CRLF: `ANS` and five 10-digit
/// numbers, a one-octet `more`, six spaces and CRLF is 62 octets; anything
/// without a CRLF by this length is poorly formed.
pub const MAX_HEADER_LINE: usize = 64;

/// Largest value of channel, msgno, size, ansno and window (RFC 3080 §2.2.1).
const MAX_31: u64 = 2_147_483_647;
/// Largest value of seqno and ackno (RFC 3080 §2.2.1).
const MAX_32: u64 = 4_294_967_295;

/// The fields of a data-frame header (RFC 3080 §2.2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    /// MSG, RPY, ERR, ANS or NUL.
    pub keyword: Keyword,
    /// Channel number, 0..2147483647.
    pub channel: u32,
    /// Message number, 0..2147483647.
    pub msgno: u32,
    /// `true` for `*` (intermediate frame), `false` for `.` (last frame).
    pub more: bool,
    /// Sequence number of the first payload octet, 0..4294967295.
    pub seqno: u32,
    /// Payload size in octets, 0..2147483647.
    pub size: u32,
    /// Answer number; present exactly for ANS frames (accepted up to
    /// 4294967295, sent up to 2147483647).
    pub ansno: Option<u32>,
}

/// The fields of a SEQ frame (RFC 3081 §3.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqHeader {
    /// Channel number.
    pub channel: u32,
    /// The next sequence number the sender of the SEQ expects.
    pub ackno: u32,
    /// Octets the sender of the SEQ accepts starting at `ackno`.
    pub window: u32,
}

/// A parsed header line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A data frame header.
    Data(DataHeader),
    /// A SEQ frame.
    Seq(SeqHeader),
}

/// Parses one header line, without its CRLF.
///
/// Exactly one space separates the fields; numbers are 1 to 10 decimal digits
/// within their RFC range (no sign, no other characters).
pub fn parse_header(line: &[u8]) -> Result<Header, FrameError> {
    let mut fields = line.split(|&b| b == b' ');
    let keyword = fields.next().unwrap_or_default();
    let keyword = match keyword {
        b"MSG" => Keyword::Msg,
        b"RPY" => Keyword::Rpy,
        b"ERR" => Keyword::Err,
        b"ANS" => Keyword::Ans,
        b"NUL" => Keyword::Nul,
        b"SEQ" => {
            let channel = number(fields.next(), MAX_31, "channel")?;
            let ackno = number(fields.next(), MAX_32, "ackno")?;
            let window = number(fields.next(), MAX_31, "window")?;
            if fields.next().is_some() {
                return Err(FrameError::MalformedHeader("extra field after window"));
            }
            return Ok(Header::Seq(SeqHeader {
                channel,
                ackno,
                window,
            }));
        }
        other => {
            return Err(FrameError::UnknownKeyword(
                String::from_utf8_lossy(&other[..other.len().min(8)]).into_owned(),
            ));
        }
    };
    let channel = number(fields.next(), MAX_31, "channel")?;
    let msgno = number(fields.next(), MAX_31, "msgno")?;
    let more = match fields.next() {
        Some(b".") => false,
        Some(b"*") => true,
        _ => return Err(FrameError::MalformedHeader("more must be '.' or '*'")),
    };
    let seqno = number(fields.next(), MAX_32, "seqno")?;
    let size = number(fields.next(), MAX_31, "size")?;
    let ansno = if keyword == Keyword::Ans {
        // RFC 3080's ABNF says 0..2147483647 but §2.2.1.1's text says
        // 0..4294967295 (docs/decisions.md, BEEP): accept the wider range, emit
        // the narrower one.
        Some(number(fields.next(), MAX_32, "ansno")?)
    } else {
        None
    };
    if fields.next().is_some() {
        return Err(FrameError::MalformedHeader("extra field in header"));
    }
    if keyword == Keyword::Nul {
        if more {
            return Err(FrameError::NulWithMore);
        }
        if size != 0 {
            return Err(FrameError::NulWithPayload);
        }
    }
    Ok(Header::Data(DataHeader {
        keyword,
        channel,
        msgno,
        more,
        seqno,
        size,
        ansno,
    }))
}

fn number(field: Option<&[u8]>, max: u64, what: &'static str) -> Result<u32, FrameError> {
    let field = field.ok_or(FrameError::MalformedHeader(what))?;
    if field.is_empty() || field.len() > 10 || !field.iter().all(u8::is_ascii_digit) {
        return Err(FrameError::MalformedHeader(what));
    }
    let value = field
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    if value > max {
        return Err(FrameError::MalformedHeader(what));
    }
    Ok(value as u32)
}

impl DataHeader {
    /// Writes the header line with CRLF.
    pub(crate) fn write(&self, out: &mut BytesMut) {
        let mut line = [0u8; MAX_HEADER_LINE];
        let mut cursor = &mut line[..];
        // Cannot fail: the longest header fits MAX_HEADER_LINE.
        let _ = write!(
            cursor,
            "{} {} {} {} {} {}",
            self.keyword.as_str(),
            self.channel,
            self.msgno,
            if self.more { '*' } else { '.' },
            self.seqno,
            self.size
        );
        if let Some(ansno) = self.ansno {
            let _ = write!(cursor, " {ansno}");
        }
        let _ = cursor.write_all(b"\r\n");
        let len = MAX_HEADER_LINE - cursor.len();
        out.put_slice(&line[..len]);
    }
}

impl SeqHeader {
    /// Writes the SEQ line with CRLF.
    pub(crate) fn write(&self, out: &mut BytesMut) {
        let mut line = [0u8; MAX_HEADER_LINE];
        let mut cursor = &mut line[..];
        let _ = write!(
            cursor,
            "SEQ {} {} {}\r\n",
            self.channel, self.ackno, self.window
        );
        let len = MAX_HEADER_LINE - cursor.len();
        out.put_slice(&line[..len]);
    }
}
