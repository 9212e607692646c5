//! Splits an XMPP stream into its parts without parsing them (sans-IO):
//! the stream header, each top-level stanza as the octets it was sent
//! as, and the stream's end (RFC 6120 §4). Stanzas over the size limit
//! are not kept: only their start tag is, so that the gateway can answer
//! them with `policy-violation` (RFC 6120 §8.3.3.12).
//!
//! Only what a stream may carry is accepted: no DOCTYPE or other `<!`
//! declarations (RFC 6120 §11.1), processing instructions only before the
//! stream header.

use thiserror::Error;

/// What the stream sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// The opening `<stream:stream …>` tag.
    Open(String),
    /// One complete top-level element (a stanza, a handshake, an error).
    Stanza(Vec<u8>),
    /// A stanza longer than the limit: its start tag only.
    Oversized(Vec<u8>),
    /// `</stream:stream>`.
    Close,
}

/// The stream is not well-formed or breaks a limit of its own.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum FrameError {
    /// A DOCTYPE, entity or other declaration.
    #[error("the stream holds a declaration ({0}), which XMPP forbids")]
    Declaration(String),
    /// A tag that does not fit XML's grammar at this point.
    #[error("malformed XML in the stream: {0}")]
    Malformed(&'static str),
    /// A single tag (or the stream header) longer than the limit.
    #[error("a tag longer than {0} octets")]
    TagTooLong(usize),
}

/// The splitter: feed it octets with [`Splitter::push`], take frames with
/// [`Splitter::next_frame`].
#[derive(Debug)]
pub(crate) struct Splitter {
    buffer: Vec<u8>,
    /// Octets of `buffer` already scanned into complete constructs.
    scanned: usize,
    /// Element depth at `scanned` (1 inside the stream element).
    depth: usize,
    opened: bool,
    max_stanza: usize,
    /// The start tag of the stanza being skipped, once it ran over.
    skipping: Option<Vec<u8>>,
}

/// One complete construct.
enum Construct {
    Start { empty: bool },
    End,
    Other,
}

impl Splitter {
    /// A splitter keeping stanzas of at most `max_stanza` octets.
    pub(crate) fn new(max_stanza: usize) -> Self {
        Self {
            buffer: Vec::new(),
            scanned: 0,
            depth: 0,
            opened: false,
            max_stanza,
            skipping: None,
        }
    }

    /// Appends octets read from the stream.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, if the octets so far hold one.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            let Some((end, construct)) = self.scan(self.scanned)? else {
                if self.skipping.is_some() {
                    // Keep memory bounded while skipping.
                    self.buffer.drain(..self.scanned);
                    self.scanned = 0;
                } else if self.buffer.len() > self.max_stanza.max(4096) * 2 {
                    return Err(FrameError::TagTooLong(self.max_stanza));
                }
                return Ok(None);
            };
            let start = self.scanned;
            self.scanned = end;
            match construct {
                Construct::Other => {
                    if !self.opened || self.depth == 1 {
                        // Text or a PI between stanzas: whitespace keepalives.
                        self.buffer.drain(..end);
                        self.scanned = 0;
                    }
                }
                Construct::Start { empty } => {
                    if !self.opened {
                        if empty {
                            return Err(FrameError::Malformed("an empty stream element"));
                        }
                        let header = String::from_utf8_lossy(&self.buffer[start..end]).into_owned();
                        self.buffer.drain(..end);
                        self.scanned = 0;
                        self.opened = true;
                        self.depth = 1;
                        return Ok(Some(Frame::Open(header)));
                    }
                    if self.depth == 1 && start != 0 {
                        // Anything before a stanza was whitespace, dropped above.
                        self.buffer.drain(..start);
                        self.scanned -= start;
                    }
                    if self.depth == 1 && empty {
                        return Ok(Some(self.take_stanza()));
                    }
                    if !empty {
                        self.depth += 1;
                    }
                }
                Construct::End => {
                    if self.depth <= 1 {
                        self.buffer.drain(..end);
                        self.scanned = 0;
                        self.depth = 0;
                        return Ok(Some(Frame::Close));
                    }
                    self.depth -= 1;
                    if self.depth == 1 {
                        return Ok(Some(self.take_stanza()));
                    }
                }
            }
            if self.depth > 1 && self.skipping.is_none() && self.scanned > self.max_stanza {
                let tag_end = self.buffer[..self.scanned]
                    .iter()
                    .position(|&b| b == b'>')
                    .map_or(self.scanned, |p| p + 1);
                let head = self.buffer[..tag_end].to_vec();
                self.skipping = Some(head);
            }
            if self.skipping.is_some() && self.depth > 1 {
                self.buffer.drain(..self.scanned);
                self.scanned = 0;
            }
        }
    }

    fn take_stanza(&mut self) -> Frame {
        let stanza: Vec<u8> = self.buffer.drain(..self.scanned).collect();
        self.scanned = 0;
        match self.skipping.take() {
            Some(head) => Frame::Oversized(head),
            None if stanza.len() > self.max_stanza => {
                let tag_end = stanza
                    .iter()
                    .position(|&b| b == b'>')
                    .map_or(stanza.len(), |p| p + 1);
                Frame::Oversized(stanza[..tag_end].to_vec())
            }
            None => Frame::Stanza(stanza),
        }
    }

    /// The construct starting at `at`, if complete: its end and kind.
    fn scan(&self, at: usize) -> Result<Option<(usize, Construct)>, FrameError> {
        let rest = &self.buffer[at..];
        if rest.is_empty() {
            return Ok(None);
        }
        if rest[0] != b'<' {
            // Character data has no structure to wait for: take what is
            // there (so a long text never piles up while skipping).
            let end = rest.iter().position(|&b| b == b'<').unwrap_or(rest.len());
            return Ok(Some((at + end, Construct::Other)));
        }
        let find = |needle: &[u8], from: usize| {
            rest.get(from..).and_then(|tail| {
                tail.windows(needle.len())
                    .position(|w| w == needle)
                    .map(|p| from + p + needle.len())
            })
        };
        if rest.len() < 2 {
            return Ok(None);
        }
        match rest[1] {
            b'?' => {
                if self.opened {
                    return Err(FrameError::Declaration("a processing instruction".into()));
                }
                Ok(find(b"?>", 2).map(|e| (at + e, Construct::Other)))
            }
            b'!' => {
                if rest.len() < 9 {
                    return Ok(None);
                }
                if rest.starts_with(b"<!--") {
                    Ok(find(b"-->", 4).map(|e| (at + e, Construct::Other)))
                } else if rest.starts_with(b"<![CDATA[") && self.depth > 1 {
                    Ok(find(b"]]>", 9).map(|e| (at + e, Construct::Other)))
                } else {
                    let what = String::from_utf8_lossy(&rest[..9.min(rest.len())]).into_owned();
                    Err(FrameError::Declaration(what))
                }
            }
            b'/' => Ok(rest
                .iter()
                .position(|&b| b == b'>')
                .map(|p| (at + p + 1, Construct::End))),
            _ => {
                let mut quote: Option<u8> = None;
                for (i, &b) in rest.iter().enumerate().skip(1) {
                    match (quote, b) {
                        (Some(q), b) if b == q => quote = None,
                        (Some(_), _) => {}
                        (None, b'"' | b'\'') => quote = Some(b),
                        (None, b'<') => return Err(FrameError::Malformed("'<' inside a tag")),
                        (None, b'>') => {
                            let empty = rest[i - 1] == b'/';
                            return Ok(Some((at + i + 1, Construct::Start { empty })));
                        }
                        _ => {}
                    }
                }
                if rest.len() > self.max_stanza.max(4096) {
                    return Err(FrameError::TagTooLong(self.max_stanza.max(4096)));
                }
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(splitter: &mut Splitter) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(frame) = splitter.next_frame().unwrap() {
            out.push(frame);
        }
        out
    }

    const STREAM: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
        xmlns:stream='http://etherx.jabber.org/streams' from='gw.example' id='3BF96D32'>\
        <handshake/> \n<message to='a@b' from='c@d'><body>x &lt; y</body>\
        <e2e xmlns='urn:ietf:params:xml:ns:xmpp-e2e'><![CDATA[a</e2e>b]]></e2e></message>\
        </stream:stream>";

    #[test]
    fn stanzas_are_cut_at_every_split_point() {
        for cut in 0..STREAM.len() {
            let mut splitter = Splitter::new(1 << 16);
            splitter.push(&STREAM.as_bytes()[..cut]);
            let mut got = frames(&mut splitter);
            splitter.push(&STREAM.as_bytes()[cut..]);
            got.extend(frames(&mut splitter));
            assert_eq!(got.len(), 4, "cut at {cut}: {got:?}");
            assert!(matches!(&got[0], Frame::Open(h) if h.contains("id='3BF96D32'")));
            assert_eq!(got[1], Frame::Stanza(b"<handshake/>".to_vec()));
            match &got[2] {
                Frame::Stanza(s) => {
                    assert!(s.starts_with(b"<message"));
                    assert!(s.ends_with(b"</message>"));
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(got[3], Frame::Close);
        }
    }

    #[test]
    fn an_oversized_stanza_keeps_only_its_start_tag() {
        let mut splitter = Splitter::new(64);
        splitter.push(b"<stream:stream id='1'>");
        assert!(matches!(frames(&mut splitter)[..], [Frame::Open(_)]));
        splitter.push(b"<message id='big' from='r@m'><body>");
        for _ in 0..100 {
            splitter.push(&[b'x'; 100]);
            assert!(frames(&mut splitter).is_empty());
        }
        assert!(splitter.buffer.len() < 200, "memory stays bounded");
        splitter.push(b"</body></message><message id='small'/>");
        let got = frames(&mut splitter);
        assert_eq!(
            got,
            vec![
                Frame::Oversized(b"<message id='big' from='r@m'>".to_vec()),
                Frame::Stanza(b"<message id='small'/>".to_vec()),
            ]
        );
    }

    #[test]
    fn declarations_are_refused() {
        let mut splitter = Splitter::new(1024);
        splitter.push(b"<stream:stream><!DOCTYPE x [<!ENTITY a 'b'>]>");
        assert!(matches!(splitter.next_frame(), Ok(Some(Frame::Open(_)))));
        assert!(matches!(
            splitter.next_frame(),
            Err(FrameError::Declaration(_))
        ));
    }
}
