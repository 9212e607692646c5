//! BEEP frames: the data frames of RFC 3080 §2.2.1 (MSG, RPY, ERR, ANS, NUL)
//! and the SEQ frame of RFC 3081 §3.1.3.
//!
//! [`decode`] is a resumable decoder over a [`BytesMut`]: it returns
//! `Ok(None)` while a frame is incomplete and never buffers more than one
//! header line (bounded by [`MAX_HEADER_LINE`]) plus one payload (bounded by
//! the caller's limit, checked from the header before any payload is kept).
//! [`encode`] writes a frame back byte-exact.

mod header;

pub use header::{DataHeader, Header, MAX_HEADER_LINE, SeqHeader, parse_header};

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// The five data-frame keywords (RFC 3080 §2.2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyword {
    /// `MSG`: a message.
    Msg,
    /// `RPY`: a positive one-to-one reply.
    Rpy,
    /// `ERR`: a negative one-to-one reply.
    Err,
    /// `ANS`: one answer of a one-to-many reply.
    Ans,
    /// `NUL`: the end of a one-to-many reply.
    Nul,
}

impl Keyword {
    /// The three-letter keyword as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Msg => "MSG",
            Self::Rpy => "RPY",
            Self::Err => "ERR",
            Self::Ans => "ANS",
            Self::Nul => "NUL",
        }
    }
}

/// A data frame (RFC 3080 §2.2.1): header, payload and (implicit) trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFrame {
    /// The frame's header fields.
    pub header: DataHeader,
    /// Exactly `header.size` octets of payload.
    pub payload: Bytes,
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// MSG, RPY, ERR, ANS or NUL (RFC 3080 §2.2.1).
    Data(DataFrame),
    /// SEQ (RFC 3081 §3.1.3): a window advertisement, no payload, no trailer.
    Seq(SeqHeader),
}

/// Why a byte stream is not a well-formed sequence of frames. Every variant
/// is a "poorly-formed frame" in the sense of RFC 3080 §2.2.1.1: the session
/// must be terminated without a response.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The keyword is not MSG, RPY, ERR, ANS, NUL or SEQ.
    #[error("unknown frame keyword {0:?}")]
    UnknownKeyword(String),
    /// A header field is missing, extra, empty, non-numeric or out of range.
    #[error("poorly-formed header: {0}")]
    MalformedHeader(&'static str),
    /// No CRLF within the longest legal header line.
    #[error("header line longer than {MAX_HEADER_LINE} octets")]
    HeaderTooLong,
    /// The payload size is over the configured frame limit.
    #[error("frame payload of {size} octets exceeds the limit of {limit}")]
    FrameTooLarge {
        /// The size announced in the header.
        size: u32,
        /// The configured limit.
        limit: u32,
    },
    /// The octets after the payload are not `END\r\n` (RFC 3080 §2.2.1.3).
    #[error("frame trailer is not END CRLF")]
    BadTrailer,
    /// A NUL frame with the continuation indicator `*` (RFC 3080 §2.2.1.1).
    #[error("NUL frame with more='*'")]
    NulWithMore,
    /// A NUL frame with a non-empty payload (RFC 3080 §2.2.1.1).
    #[error("NUL frame with a non-empty payload")]
    NulWithPayload,
}

const TRAILER: &[u8] = b"END\r\n";

/// Decodes one frame from the front of `buf`, removing it.
///
/// Returns `Ok(None)` if more input is needed (nothing is removed then).
/// `max_payload` bounds the payload size accepted in a header, before any
/// payload octet is buffered.
pub fn decode(buf: &mut BytesMut, max_payload: u32) -> Result<Option<Frame>, FrameError> {
    let Some(line_end) = find_crlf(buf)? else {
        return Ok(None);
    };
    let header = parse_header(&buf[..line_end])?;
    let header_len = line_end + 2;
    match header {
        Header::Seq(seq) => {
            let _ = buf.split_to(header_len);
            Ok(Some(Frame::Seq(seq)))
        }
        Header::Data(data) => {
            if data.size > max_payload {
                return Err(FrameError::FrameTooLarge {
                    size: data.size,
                    limit: max_payload,
                });
            }
            let size = data.size as usize;
            let total = header_len + size + TRAILER.len();
            if buf.len() < total {
                // Check what we can of the trailer early, so garbage is caught
                // as soon as it arrives.
                let have = buf.len().saturating_sub(header_len + size);
                if have > 0 && buf[header_len + size..] != TRAILER[..have] {
                    return Err(FrameError::BadTrailer);
                }
                buf.reserve(total - buf.len());
                return Ok(None);
            }
            if &buf[header_len + size..total] != TRAILER {
                return Err(FrameError::BadTrailer);
            }
            let mut frame = buf.split_to(total);
            let _ = frame.split_to(header_len);
            frame.truncate(size);
            Ok(Some(Frame::Data(DataFrame {
                header: data,
                payload: frame.freeze(),
            })))
        }
    }
}

/// Finds the CRLF ending the header line, bounded by [`MAX_HEADER_LINE`].
fn find_crlf(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let window = &buf[..buf.len().min(MAX_HEADER_LINE)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(pos) => Ok(Some(pos)),
        None if buf.len() >= MAX_HEADER_LINE => Err(FrameError::HeaderTooLong),
        None => Ok(None),
    }
}

/// Appends a data frame (header, payload, trailer) to `out`.
///
/// The header's `size` is taken from `payload.len()`.
pub fn encode_data(header: &DataHeader, payload: &[u8], out: &mut BytesMut) {
    let header = DataHeader {
        size: payload.len() as u32,
        ..*header
    };
    out.reserve(MAX_HEADER_LINE + payload.len() + TRAILER.len());
    header.write(out);
    out.put_slice(payload);
    out.put_slice(TRAILER);
}

/// Appends a SEQ frame (RFC 3081 §3.1.3) to `out`.
pub fn encode_seq(seq: &SeqHeader, out: &mut BytesMut) {
    seq.write(out);
}

/// Appends any frame to `out`.
pub fn encode(frame: &Frame, out: &mut BytesMut) {
    match frame {
        Frame::Data(data) => encode_data(&data.header, &data.payload, out),
        Frame::Seq(seq) => encode_seq(seq, out),
    }
}

#[cfg(test)]
mod tests;
