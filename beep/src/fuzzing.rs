//! Entry points shared by the cargo-fuzz targets in `fuzz/` and the corpus
//! replay test, so CI exercises the same code on stable.
//!
//! Both functions are deterministic (no clock, no randomness: time is a
//! fixed base plus offsets derived from the input) and panic only when an
//! invariant of this crate is broken, which is what the fuzzer looks for.

use crate::frame::{self, DataFrame, Frame, Keyword};
use crate::mgmt::{ErrorReply, Profile};
use crate::reply_code::ReplyCode;
use crate::session::{Config, Event, Role, Session};
use crate::tuning::sasl::{
    AnonymousClient, AnonymousServer, AuthContext, PlainServer, SaslServer, SaslServerFactory,
};
use crate::tuning::tls::TLS_URI;
use bytes::BytesMut;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest payload [`frame_decode`] accepts in a header.
pub const FRAME_MAX_PAYLOAD: u32 = 64 * 1024;

/// Inputs longer than this are fed to the incremental decoder in chunks
/// rather than octet by octet (keeps one execution cheap).
const BYTEWISE_LIMIT: usize = 8 * 1024;

/// Decodes `data` as a stream of frames until it is incomplete or poorly
/// formed, checking for every frame that:
///
/// * the octets removed are exactly the header line, the payload and
///   `END\r\n` of the input, and the header line parses to the frame's header;
/// * [`frame::encode`] of the frame decodes to the same frame, consuming the
///   whole encoding, and re-encoding that is byte-identical (canonical form);
/// * no strict prefix of the encoding decodes to a frame or an error, and
///   decoding a prefix removes nothing;
/// * feeding the input in small pieces yields the same frames and the same
///   outcome (error or not) as feeding it at once.
pub fn frame_decode(data: &[u8]) {
    let (whole, whole_failed) = decode_all(data);
    let (pieces, pieces_failed) = decode_incrementally(data);
    assert_eq!(whole, pieces, "incremental decoding differs");
    assert_eq!(
        whole_failed, pieces_failed,
        "incremental decoding ends differently"
    );
}

/// Decodes all of `data` at once; returns the frames and whether it ended
/// on an error. Checks the per-frame invariants.
fn decode_all(data: &[u8]) -> (Vec<Frame>, bool) {
    let mut buf = BytesMut::from(data);
    let mut offset = 0;
    let mut frames = Vec::new();
    loop {
        let before = buf.len();
        match frame::decode(&mut buf, FRAME_MAX_PAYLOAD) {
            Ok(Some(frame)) => {
                let consumed = before - buf.len();
                assert!(consumed > 0, "a decoded frame consumed nothing");
                check_consumed(&data[offset..offset + consumed], &frame);
                assert_eq!(
                    &buf[..],
                    &data[offset + consumed..],
                    "decode kept wrong octets"
                );
                check_round_trip(&frame);
                offset += consumed;
                frames.push(frame);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "an incomplete decode removed octets");
                return (frames, false);
            }
            Err(error) => {
                if let frame::FrameError::FrameTooLarge { size, limit } = error {
                    assert!(size > limit && limit == FRAME_MAX_PAYLOAD);
                }
                return (frames, true);
            }
        }
    }
}

/// Decodes `data` fed in pieces (octet by octet for small inputs).
fn decode_incrementally(data: &[u8]) -> (Vec<Frame>, bool) {
    let piece = if data.len() <= BYTEWISE_LIMIT { 1 } else { 97 };
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in data.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match frame::decode(&mut buf, FRAME_MAX_PAYLOAD) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => return (frames, true),
            }
        }
    }
    (frames, false)
}

/// `octets` are what decoding `frame` removed from the input.
fn check_consumed(octets: &[u8], frame: &Frame) {
    let line_end = octets
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a decoded frame has a header line");
    assert!(line_end + 2 <= frame::MAX_HEADER_LINE);
    let header = frame::parse_header(&octets[..line_end]).expect("decoded header parses");
    match (frame, header) {
        (Frame::Seq(seq), frame::Header::Seq(parsed)) => {
            assert_eq!(*seq, parsed);
            assert_eq!(octets.len(), line_end + 2, "SEQ has no payload");
        }
        (Frame::Data(DataFrame { header, payload }), frame::Header::Data(parsed)) => {
            assert_eq!(*header, parsed);
            assert_eq!(payload.len(), header.size as usize);
            assert_eq!(header.ansno.is_some(), header.keyword == Keyword::Ans);
            if header.keyword == Keyword::Nul {
                assert!(!header.more && payload.is_empty());
            }
            let body = &octets[line_end + 2..];
            assert_eq!(body.len(), payload.len() + 5);
            assert_eq!(&body[..payload.len()], &payload[..]);
            assert_eq!(&body[payload.len()..], b"END\r\n");
        }
        _ => panic!("frame kind differs from its header line"),
    }
}

/// Encodes `frame`, decodes it back, and checks prefixes of the encoding.
fn check_round_trip(frame: &Frame) {
    let mut encoded = BytesMut::new();
    frame::encode(frame, &mut encoded);
    let mut copy = encoded.clone();
    let again = frame::decode(&mut copy, FRAME_MAX_PAYLOAD)
        .expect("the encoding of a decoded frame decodes")
        .expect("the encoding of a decoded frame is complete");
    assert_eq!(&again, frame, "re-encoding decodes to another frame");
    assert!(copy.is_empty(), "re-encoding has trailing octets");
    let mut twice = BytesMut::new();
    frame::encode(&again, &mut twice);
    assert_eq!(encoded, twice, "encoding is not canonical");
    // Strict prefixes: every cut in the header line and the trailer, and a
    // few in the payload, are incomplete and leave the buffer untouched.
    let len = encoded.len();
    let mut cuts: Vec<usize> = (0..len.min(frame::MAX_HEADER_LINE)).collect();
    cuts.extend(len.saturating_sub(6)..len);
    cuts.extend([len / 2, len / 3, len - len / 4]);
    for cut in cuts {
        if cut >= len {
            continue;
        }
        let mut prefix = BytesMut::from(&encoded[..cut]);
        let result = frame::decode(&mut prefix, FRAME_MAX_PAYLOAD);
        assert_eq!(
            result,
            Ok(None),
            "a strict prefix of {cut} octets of a valid frame is not incomplete"
        );
        assert_eq!(prefix.len(), cut, "an incomplete decode removed octets");
    }
}

// ===== session =====

/// Application profiles of the fuzzed session (APEX as in the RFC 3080
/// examples, and the echo profile of the tests).
const PROFILES: [&str; 2] = ["http://iana.org/beep/APEX", "http://example.com/beep/ECHO"];

/// Offers ANONYMOUS and PLAIN (PLAIN only with TLS, accepting `fred`/`secret`).
struct Mechanisms;

impl SaslServerFactory for Mechanisms {
    fn mechanisms(&self, _context: &AuthContext) -> Vec<String> {
        vec!["ANONYMOUS".into(), "PLAIN".into()]
    }

    fn start(
        &self,
        mechanism: &str,
        context: &AuthContext,
    ) -> Result<Box<dyn SaslServer>, ErrorReply> {
        match mechanism {
            "ANONYMOUS" => Ok(Box::new(AnonymousServer)),
            "PLAIN" if context.tls_active => Ok(Box::new(PlainServer::new(Arc::new(
                |_: &str, user: &str, password: &str| {
                    (user == "fred" && password == "secret").then(|| "fred".to_owned())
                },
            )))),
            "PLAIN" => Err(ErrorReply::new(
                ReplyCode::ENCRYPTION_REQUIRED,
                "PLAIN requires TLS",
            )),
            _ => Err(ErrorReply::new(ReplyCode::ACTION_NOT_TAKEN, "unknown")),
        }
    }
}

/// How [`session_input`] runs, from the first two input octets.
#[derive(Debug, Clone, Copy)]
struct Plan {
    flags: u8,
    /// 0: split after every `END\r\n`; `usize::MAX`: the whole input at once.
    chunk: usize,
    /// Send a MSG on every channel we started.
    ping: bool,
    /// Close application channels after their first message or reply, and
    /// release the session once they are all closed.
    close: bool,
}

impl Plan {
    const INITIATOR: u8 = 0x01;
    const TLS: u8 = 0x02;
    const SASL: u8 = 0x04;
    const SMALL_WINDOWS: u8 = 0x08;
    const SMALL_LIMITS: u8 = 0x10;
    const ACT: u8 = 0x20;
    const TLS_FAILS: u8 = 0x40;
    const REQUIRE_TLS: u8 = 0x80;

    fn new(flags: u8, chunking: u8) -> Self {
        let chunk = match chunking & 0x3f {
            0 => 0,
            63 => usize::MAX,
            n @ 1..=31 => usize::from(n),
            n => usize::from(n - 31) * 64,
        };
        Self {
            flags,
            chunk,
            ping: chunking & 0x40 != 0,
            close: chunking & 0x80 != 0,
        }
    }

    fn has(self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn config(self) -> Config {
        let role = if self.has(Self::INITIATOR) {
            Role::Initiator
        } else {
            Role::Listener
        };
        let mut config = Config::new(role);
        config.profiles = PROFILES.iter().map(|&p| p.to_owned()).collect();
        config.tls_server = self.has(Self::TLS);
        if self.has(Self::SASL) {
            config.sasl = Some(Arc::new(Mechanisms));
        }
        if self.has(Self::SMALL_WINDOWS) {
            config.receive_window = 4096;
            config.max_frame_size = 100;
            config.transmit_budget = 1024;
        }
        if self.has(Self::SMALL_LIMITS) {
            // Enough for a plain <start>, not for one with init content.
            config.max_message_size = 160;
            config.max_channels = 3;
            // The long silence at the end releases an idle session.
            config.idle_timeout = Some(Duration::from_secs(30));
            config.max_outstanding = 2;
        }
        config.profiles_require_tls = self.has(Self::REQUIRE_TLS);
        config
    }

    /// The input split into the pieces given to `handle_input`.
    fn chunks(self, input: &[u8]) -> Vec<&[u8]> {
        match self.chunk {
            0 => {
                let mut pieces = Vec::new();
                let mut start = 0;
                let mut i = 0;
                while i + 5 <= input.len() {
                    if &input[i..i + 5] == b"END\r\n" {
                        pieces.push(&input[start..i + 5]);
                        start = i + 5;
                        i += 5;
                    } else {
                        i += 1;
                    }
                }
                if start < input.len() {
                    pieces.push(&input[start..]);
                }
                pieces
            }
            usize::MAX => vec![input],
            n => input.chunks(n).collect(),
        }
    }
}

/// Runs a session (role and settings from the first octet, chunking and
/// behaviour from the second) on the rest of `data` as received octets.
///
/// The application side accepts every start request with its first
/// profile, echoes every MSG in an RPY, releases received payload at once,
/// completes (or fails, per flags) TLS handshakes, and, per flags, starts
/// TLS, SASL ANONYMOUS and an application channel once greeted. Input stops
/// at the first [`SessionError`](crate::SessionError).
///
/// Checked on what the session sends: it is a sequence of whole,
/// well-formed frames; the greeting comes first (again after TLS); data
/// frames respect `max_frame_size`; seqnos run on per channel.
pub fn session_input(data: &[u8]) {
    let [flags, chunking, input @ ..] = data else {
        return;
    };
    let plan = Plan::new(*flags, *chunking);
    let config = plan.config();
    let max_frame = config.max_frame_size.max(1);
    let base = Instant::now();
    let mut harness = Harness {
        session: Session::new(config, base),
        plan,
        max_frame,
        now: base,
        wire: Wire::restarted(),
        closing: 0,
    };
    harness.drain();
    for chunk in plan.chunks(input) {
        // Each piece arrives 10 ms after the previous one.
        harness.now += Duration::from_millis(10);
        if harness.session.handle_input(harness.now, chunk).is_err() {
            return;
        }
        if plan.has(Plan::SMALL_WINDOWS) {
            // A keepalive SEQ between pieces must keep the output well-formed.
            harness.session.keepalive();
        }
        harness.drain();
    }
    // Then a long silence: greeting, close and idle timeouts fire.
    harness.now += Duration::from_secs(60);
    if harness.session.handle_timeout(harness.now).is_ok() {
        harness.drain();
    }
}

/// What we have sent, as the peer would parse it.
struct Wire {
    /// Nothing sent since the session (re)started: the greeting is due.
    greeting_due: bool,
    /// Next seqno per channel.
    seqnos: BTreeMap<u32, u32>,
}

impl Wire {
    /// A session that just started (or restarted after TLS).
    fn restarted() -> Self {
        Self {
            greeting_due: true,
            seqnos: BTreeMap::new(),
        }
    }
}

struct Harness {
    session: Session,
    plan: Plan,
    max_frame: u32,
    now: Instant,
    wire: Wire,
    /// Application channels we asked to close and not yet closed.
    closing: usize,
}

impl Harness {
    /// Moves everything out of the session: bytes (checked) and events
    /// (acted upon), until it has nothing more.
    fn drain(&mut self) {
        for _ in 0..1_000_000 {
            let mut out = BytesMut::new();
            let sent = self.session.poll_transmit(&mut out);
            assert_eq!(sent, !out.is_empty(), "poll_transmit result disagrees");
            self.check_output(out);
            let mut any_event = false;
            while let Some(event) = self.session.poll_event() {
                any_event = true;
                self.event(event);
            }
            if !sent && !any_event {
                return;
            }
        }
        panic!("the session never stops producing output or events");
    }

    /// Checks one `poll_transmit` output: whole, well-formed frames.
    fn check_output(&mut self, mut out: BytesMut) {
        while !out.is_empty() {
            let frame = frame::decode(&mut out, u32::MAX >> 1)
                .expect("the session sends well-formed frames")
                .expect("poll_transmit produces whole frames");
            let greeting_due = std::mem::replace(&mut self.wire.greeting_due, false);
            match frame {
                Frame::Seq(_) => assert!(!greeting_due, "SEQ sent before the greeting"),
                Frame::Data(DataFrame { header, .. }) => {
                    if greeting_due {
                        assert!(
                            header.channel == 0
                                && header.msgno == 0
                                && header.seqno == 0
                                && matches!(header.keyword, Keyword::Rpy | Keyword::Err),
                            "the first frame is not the greeting: {header:?}"
                        );
                    }
                    assert!(
                        header.size <= self.max_frame,
                        "frame of {} octets over max_frame_size {}",
                        header.size,
                        self.max_frame
                    );
                    let next = self.wire.seqnos.entry(header.channel).or_insert(0);
                    assert_eq!(
                        header.seqno, *next,
                        "seqno gap on channel {}",
                        header.channel
                    );
                    *next = next.wrapping_add(header.size);
                }
            }
        }
    }

    fn event(&mut self, event: Event) {
        let session = &mut self.session;
        // Errors from application calls are fine: the fuzzer drives the
        // session into states where they are refused.
        match event {
            Event::Greeting(greeting) => {
                if !self.plan.has(Plan::ACT) {
                    return;
                }
                let offered = |uri: &str| greeting.profiles.iter().any(|p| p == uri);
                if offered(TLS_URI) && !session.tls_active() {
                    let _ = session.start_tls(Some("relay.example".into()));
                } else if offered("http://iana.org/beep/SASL/ANONYMOUS") {
                    let _ = session.start_sasl(Box::new(AnonymousClient {
                        trace: "fuzz@example.com".into(),
                    }));
                }
                let _ = session.start_channel(
                    PROFILES.iter().map(|&uri| Profile::new(uri)).collect(),
                    None,
                );
            }
            Event::StartRequested(request) => {
                if let Some(profile) = request.profiles.first() {
                    let _ = session.accept_start(request.channel, Profile::new(&profile.uri));
                }
            }
            Event::ChannelStarted { channel, .. } if self.plan.ping => {
                let _ = session.send_msg(channel, bytes::Bytes::from_static(b"ping"));
            }
            Event::Message {
                channel,
                msgno,
                payload,
            } => {
                session.consumed(channel, payload.len());
                let _ = session.send_rpy(channel, msgno, payload);
                self.maybe_close(channel);
            }
            Event::Reply {
                channel, payload, ..
            }
            | Event::Answer {
                channel, payload, ..
            } => {
                session.consumed(channel, payload.len());
                self.maybe_close(channel);
            }
            Event::ChannelClosed { channel, local, .. } => {
                self.wire.seqnos.remove(&channel);
                if local && self.plan.close {
                    self.closing = self.closing.saturating_sub(1);
                    if self.closing == 0 && self.session.channels().next().is_none() {
                        let _ = self.session.release(ReplyCode::BEEP_OK);
                    }
                }
            }
            Event::TlsProceed { .. } => {
                if self.plan.has(Plan::TLS_FAILS) {
                    session.tls_failed(self.now);
                } else {
                    session.tls_complete(self.now, None);
                }
                self.wire = Wire::restarted();
            }
            _ => {}
        }
    }

    fn maybe_close(&mut self, channel: u32) {
        if self.plan.close
            && self
                .session
                .close_channel(channel, ReplyCode::BEEP_OK, "done")
                .is_ok()
        {
            self.closing += 1;
        }
    }
}
