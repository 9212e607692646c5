//! The RFC 3080 examples (copied to
//! `tests/vectors/`) as golden vectors: every frame decodes and re-encodes
//! byte-exact, and whole exchanges are replayed against sessions.

use bytes::BytesMut;
use imxp_beep::frame::{self, Frame};
use imxp_beep::tuning::sasl::{AuthContext, SaslClient, SaslServer, SaslServerFactory, ServerStep};
use imxp_beep::xml::{self, Element, Node};
use imxp_beep::{Config, ErrorReply, Event, Profile, ReplyCode, Role, Session};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// One speaker's contiguous bytes in a transcript.
#[derive(Debug)]
struct Turn {
    speaker: char,
    bytes: Vec<u8>,
}

fn vector(name: &str) -> Vec<Turn> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "vectors", name]
        .iter()
        .collect();
    parse_transcript(&std::fs::read_to_string(path).unwrap())
}

/// Turns `C: line` transcripts into raw bytes with CRLF line ends. Lines
/// that are indented continuations (the RFC's wrapped SASL blobs) are
/// joined to the previous line; `<… connection>` notes and `...` lines
/// separate turns.
fn parse_transcript(text: &str) -> Vec<Turn> {
    let mut turns: Vec<Turn> = Vec::new();
    let mut lines: Vec<(char, String)> = Vec::new();
    let flush = |lines: &mut Vec<(char, String)>, turns: &mut Vec<Turn>| {
        for (speaker, line) in lines.drain(..) {
            match turns.last_mut() {
                Some(turn) if turn.speaker == speaker => {}
                _ => turns.push(Turn {
                    speaker,
                    bytes: Vec::new(),
                }),
            }
            let turn = turns.last_mut().unwrap();
            turn.bytes.extend_from_slice(line.as_bytes());
            turn.bytes.extend_from_slice(b"\r\n");
        }
    };
    for raw in text.lines() {
        if raw.starts_with('#') {
            continue;
        }
        let mut chars = raw.chars();
        let (first, second) = (chars.next(), chars.next());
        match (first, second) {
            (Some(speaker @ ('C' | 'S' | 'I' | 'L')), Some(':')) => {
                let rest = &raw[2..];
                let content = rest.strip_prefix(" ").unwrap_or(rest);
                if content.starts_with('<') && content.ends_with("connection>") {
                    flush(&mut lines, &mut turns);
                    turns.push(Turn {
                        speaker: '-',
                        bytes: Vec::new(),
                    });
                    continue;
                }
                lines.push((speaker, content.to_owned()));
            }
            _ if raw.starts_with(' ')
                && !raw.trim().is_empty()
                && !raw.trim().starts_with("...") =>
            {
                let (_, last) = lines.last_mut().expect("continuation after a line");
                last.push_str(raw.trim());
            }
            _ => {
                flush(&mut lines, &mut turns);
                turns.push(Turn {
                    speaker: '-',
                    bytes: Vec::new(),
                });
            }
        }
    }
    flush(&mut lines, &mut turns);
    turns.retain(|t| t.speaker != '-');
    turns
}

/// Decodes all frames of `bytes`, checking each re-encodes byte-exact.
fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    let mut offset = 0;
    while !buf.is_empty() {
        let before = buf.len();
        let frame = frame::decode(&mut buf, 1 << 20)
            .unwrap_or_else(|e| panic!("decode error {e} at {offset}"))
            .expect("complete frame");
        let used = before - buf.len();
        let mut again = BytesMut::new();
        frame::encode(&frame, &mut again);
        assert_eq!(
            &again[..],
            &bytes[offset..offset + used],
            "re-encoding differs"
        );
        offset += used;
        out.push(frame);
    }
    out
}

#[test]
fn every_rfc_frame_decodes_and_reencodes_byte_exact() {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "vectors"]
        .iter()
        .collect();
    let mut files = 0;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let turns = parse_transcript(&std::fs::read_to_string(&path).unwrap());
        assert!(!turns.is_empty(), "{path:?}");
        for turn in &turns {
            if turn.bytes.windows(3).any(|w| w == b"...") {
                // §2.2.1.1 elides payloads as "...": only the headers are real.
                for line in String::from_utf8_lossy(&turn.bytes).lines() {
                    if line.len() > 3 && line.as_bytes()[3] == b' ' && !line.starts_with(' ') {
                        frame::parse_header(line.as_bytes()).unwrap();
                        total += 1;
                    }
                }
                continue;
            }
            let decoded = frames(&turn.bytes);
            assert!(!decoded.is_empty(), "{path:?}");
            for frame in &decoded {
                if let Frame::Data(data) = frame {
                    assert_eq!(data.header.size as usize, data.payload.len());
                }
            }
            total += decoded.len();
        }
        files += 1;
    }
    assert_eq!(files, 28, "27 RFC 3080 transcripts and the SEQ set");
    assert!(total >= 50, "{total} frames");
}

// ===== semantic comparison for examples whose layout is not reproducible =====

fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn same_element(a: &Element, b: &Element) -> bool {
    let content = |e: &Element| -> Vec<String> {
        e.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) | Node::CData(t) => Some(normalize(t)).filter(|t| !t.is_empty()),
                Node::Element(_) => None,
            })
            .collect()
    };
    a.name == b.name
        && a.attributes == b.attributes
        && content(a) == content(b)
        && a.elements().count() == b.elements().count()
        && a.elements()
            .zip(b.elements())
            .all(|(x, y)| same_element(x, y))
}

/// Compares our frames to the RFC's: headers exactly except seqno and size,
/// payloads as XML documents (whitespace-insensitive).
fn assert_equivalent(ours: &[u8], rfc: &[u8]) {
    let ours: Vec<_> = frames(ours)
        .into_iter()
        .filter(|f| matches!(f, Frame::Data(_)))
        .collect();
    let rfc = frames(rfc);
    assert_eq!(ours.len(), rfc.len());
    for (a, b) in ours.iter().zip(&rfc) {
        let (Frame::Data(a), Frame::Data(b)) = (a, b) else {
            unreachable!()
        };
        assert_eq!(
            (
                a.header.keyword,
                a.header.channel,
                a.header.msgno,
                a.header.more
            ),
            (
                b.header.keyword,
                b.header.channel,
                b.header.msgno,
                b.header.more
            )
        );
        let body = |p: &[u8]| xml::parse(imxp_beep::mime::beep_xml_body(p).unwrap()).unwrap();
        let (x, y) = (body(&a.payload), body(&b.payload));
        assert!(same_element(&x, &y), "{x:?}\n!=\n{y:?}");
    }
}

// ===== sessions configured like the RFC's peers =====

/// A stand-in for the OTP mechanism with the RFC 3080 §4.1.1 exchange.
struct RfcOtp {
    /// How to answer the initial response: too weak, or a challenge.
    too_weak: bool,
    step: usize,
}

const OTP_CHALLENGE: &[u8] = b"otp-sha1 9997 pixymisas85805 ext";
const OTP_RESPONSE: &[u8] = b"word:fern hang brow bong herd tog";

impl SaslServer for RfcOtp {
    fn step(&mut self, response: Option<&[u8]>) -> ServerStep {
        self.step += 1;
        match response {
            None => ServerStep::Challenge(Vec::new()),
            Some(b"\0blockmaster") if self.too_weak => ServerStep::Failure(ErrorReply::new(
                ReplyCode::AUTH_MECHANISM_INSUFFICIENT,
                "authentication mechanism is\r\ntoo weak",
            )),
            Some(b"\0blockmaster") => ServerStep::Challenge(OTP_CHALLENGE.to_vec()),
            Some(OTP_RESPONSE) => ServerStep::Success {
                identity: "blockmaster".into(),
                data: Vec::new(),
            },
            Some(_) => ServerStep::Failure(ErrorReply::new(ReplyCode::AUTH_FAILURE, "")),
        }
    }
}

struct RfcMechanisms {
    only_after_tls: bool,
    too_weak: bool,
}

impl SaslServerFactory for RfcMechanisms {
    fn mechanisms(&self, context: &AuthContext) -> Vec<String> {
        if self.only_after_tls && !context.tls_active {
            return Vec::new();
        }
        vec!["ANONYMOUS".into(), "OTP".into()]
    }
    fn start(&self, mechanism: &str, _: &AuthContext) -> Result<Box<dyn SaslServer>, ErrorReply> {
        match mechanism {
            "OTP" => Ok(Box::new(RfcOtp {
                too_weak: self.too_weak,
                step: 0,
            })),
            _ => Err(ErrorReply::new(ReplyCode::AUTH_MECHANISM_INSUFFICIENT, "")),
        }
    }
}

struct RfcOtpClient;

impl SaslClient for RfcOtpClient {
    fn mechanism(&self) -> &str {
        "OTP"
    }
    fn identity(&self) -> String {
        "blockmaster".into()
    }
    fn initial_response(&mut self) -> Option<Vec<u8>> {
        Some(b"\0blockmaster".to_vec())
    }
    fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, String> {
        assert_eq!(challenge, OTP_CHALLENGE);
        Ok(OTP_RESPONSE.to_vec())
    }
}

const APEX: &str = "http://iana.org/beep/APEX";

fn listener(tls: bool, sasl: Option<RfcMechanisms>, apex_after_tls: bool) -> Session {
    let mut config = Config::new(Role::Listener);
    config.receive_window = 4096; // no SEQ: the RFC examples show none
    config.tls_server = tls;
    if let Some(sasl) = sasl {
        config.sasl = Some(Arc::new(sasl));
        config.profiles.push(APEX.into());
    }
    config.profiles_require_tls = apex_after_tls;
    Session::new(config, Instant::now())
}

fn initiator() -> Session {
    let mut config = Config::new(Role::Initiator);
    config.receive_window = 4096;
    Session::new(config, Instant::now())
}

fn transmit(session: &mut Session) -> Vec<u8> {
    let mut out = BytesMut::new();
    while session.poll_transmit(&mut out) {}
    out.to_vec()
}

fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

#[test]
fn greeting_exchange_is_byte_exact() {
    // §2.3.1.1 and §2.4: the listener offers TLS, the initiator nothing.
    let turns = vector("rfc3080-2.3.1.1-l855.txt");
    let mut listener = listener(true, None, false);
    let mut initiator = initiator();
    assert_eq!(transmit(&mut listener), turns[0].bytes);
    assert_eq!(transmit(&mut initiator), turns[1].bytes);
    let now = Instant::now();
    initiator.handle_input(now, &turns[0].bytes).unwrap();
    listener.handle_input(now, &turns[1].bytes).unwrap();
    assert!(
        matches!(events(&mut initiator)[..], [Event::Greeting(ref g)] if g.profiles == ["http://iana.org/beep/TLS"])
    );
    assert!(matches!(events(&mut listener)[..], [Event::Greeting(ref g)] if g.profiles.is_empty()));
    assert_eq!(
        vector("rfc3080-2.4-l1358.txt")[0].bytes,
        turns[0].bytes,
        "§2.4 repeats the example"
    );
}

#[test]
fn refused_session_is_byte_exact() {
    // §2.4: ERR 0 0 with 421 instead of a greeting.
    let turns = vector("rfc3080-2.4-l1376.txt");
    let mut config = Config::new(Role::Listener);
    config.refuse = Some(ErrorReply::new(ReplyCode::SERVICE_NOT_AVAILABLE, ""));
    let mut listener = Session::new(config, Instant::now());
    assert_eq!(transmit(&mut listener), turns[0].bytes);
    let mut initiator = initiator();
    assert_eq!(transmit(&mut initiator), turns[1].bytes);
    initiator
        .handle_input(Instant::now(), &turns[0].bytes)
        .unwrap();
    assert!(matches!(
        events(&mut initiator)[..],
        [Event::GreetingRefused(ref e)] if e.code == ReplyCode::SERVICE_NOT_AVAILABLE
    ));
    assert!(initiator.is_ended());
}

#[test]
fn successful_tls_negotiation_is_byte_exact() {
    // §3 first example, and §3.1.1 for the start/proceed pair.
    let turns = vector("rfc3080-3.-l1713.txt");
    let speakers: String = turns.iter().map(|t| t.speaker).collect();
    assert_eq!(
        speakers, "LILLI",
        "greeting, greeting+start, proceed, greetings"
    );
    let now = Instant::now();
    let mut listener = listener(
        true,
        Some(RfcMechanisms {
            only_after_tls: true,
            too_weak: false,
        }),
        true,
    );
    let mut initiator = initiator();
    assert_eq!(transmit(&mut listener), turns[0].bytes);
    initiator.handle_input(now, &turns[0].bytes).unwrap();
    let _ = events(&mut initiator);
    initiator.start_tls(None).unwrap();
    assert_eq!(transmit(&mut initiator), turns[1].bytes);
    assert_eq!(
        vector("rfc3080-3.1.1-l1873.txt")[0].bytes,
        turns[1].bytes[turns[1].bytes.len() - vector("rfc3080-3.1.1-l1873.txt")[0].bytes.len()..],
        "§3.1.1 shows the same start"
    );
    listener.handle_input(now, &turns[1].bytes).unwrap();
    assert_eq!(transmit(&mut listener), turns[2].bytes);
    assert!(
        events(&mut listener)
            .iter()
            .any(|e| matches!(e, Event::TlsProceed { .. }))
    );
    initiator.handle_input(now, &turns[2].bytes).unwrap();
    assert!(
        events(&mut initiator)
            .iter()
            .any(|e| matches!(e, Event::TlsProceed { .. }))
    );
    // ... successful transport security negotiation ...
    listener.tls_complete(now, None);
    initiator.tls_complete(now, None);
    assert_eq!(transmit(&mut listener), turns[3].bytes);
    assert_eq!(transmit(&mut initiator), turns[4].bytes);
}

#[test]
fn failed_tls_negotiation_regreets_byte_exact() {
    // §3 second example: the listener offers everything; after a failed
    // negotiation both greet again with the same profiles.
    let turns = vector("rfc3080-3.-l1776.txt");
    let now = Instant::now();
    let mut listener = listener(
        true,
        Some(RfcMechanisms {
            only_after_tls: false,
            too_weak: false,
        }),
        false,
    );
    let mut initiator = initiator();
    assert_eq!(transmit(&mut listener), turns[0].bytes);
    initiator.handle_input(now, &turns[0].bytes).unwrap();
    initiator.start_tls(None).unwrap();
    assert_eq!(transmit(&mut initiator), turns[1].bytes);
    listener.handle_input(now, &turns[1].bytes).unwrap();
    assert_eq!(transmit(&mut listener), turns[2].bytes);
    // ... failed transport security negotiation ...
    listener.tls_failed(now);
    initiator.tls_failed(now);
    assert_eq!(transmit(&mut listener), turns[3].bytes);
    assert_eq!(transmit(&mut initiator), turns[4].bytes);
}

#[test]
fn bad_ready_version_gets_501_inside_the_profile() {
    // §3.1.1 second example: the channel is created, the init reply is an error.
    let turns = vector("rfc3080-3.1.1-l1914.txt");
    let mut listener = listener(true, None, false);
    let greeting = transmit(&mut listener);
    assert_eq!(greeting.len(), 17 + 110 + 5);
    let now = Instant::now();
    listener
        .handle_input(now, &vector("rfc3080-2.3.1.1-l855.txt")[1].bytes)
        .unwrap();
    listener.handle_input(now, &turns[0].bytes).unwrap();
    assert_equivalent(&transmit(&mut listener), &turns[1].bytes);
}

fn sasl_listener(too_weak: bool) -> Session {
    let mut listener = listener(
        false,
        Some(RfcMechanisms {
            only_after_tls: false,
            too_weak,
        }),
        false,
    );
    let greeting = transmit(&mut listener);
    assert!(
        greeting.starts_with(b"RPY 0 0 . 0 221\r\n"),
        "the 221-octet greeting"
    );
    listener
        .handle_input(Instant::now(), &vector("rfc3080-2.3.1.1-l855.txt")[1].bytes)
        .unwrap();
    let _ = events(&mut listener);
    listener
}

#[test]
fn start_picks_the_first_supported_profile_byte_exact() {
    // §2.3.1.2 (lines 972-984) and §4.1.1 (lines 2147-2159).
    for name in ["rfc3080-2.3.1.2-l972.txt", "rfc3080-4.1.1-l2147.txt"] {
        let turns = vector(name);
        let mut listener = sasl_listener(false);
        listener
            .handle_input(Instant::now(), &turns[0].bytes)
            .unwrap();
        assert_eq!(transmit(&mut listener), turns[1].bytes, "{name}");
    }
    // Our own start with the same offer is byte-exact too.
    let mut initiator = initiator();
    let _ = transmit(&mut initiator);
    initiator
        .handle_input(Instant::now(), &vector("rfc3080-2.3.1.1-l855.txt")[0].bytes)
        .unwrap();
    initiator
        .start_channel(
            vec![
                Profile::new("http://iana.org/beep/SASL/OTP"),
                Profile::new("http://iana.org/beep/SASL/ANONYMOUS"),
            ],
            None,
        )
        .unwrap();
    assert_eq!(
        transmit(&mut initiator),
        vector("rfc3080-2.3.1.2-l972.txt")[0].bytes
    );
}

#[test]
fn sasl_too_weak_is_reported_in_the_profile() {
    // §4.1.1 (lines 2196-2212).
    let turns = vector("rfc3080-4.1.1-l2196.txt");
    let mut listener = sasl_listener(true);
    listener
        .handle_input(Instant::now(), &turns[0].bytes)
        .unwrap();
    assert_eq!(transmit(&mut listener), turns[1].bytes);
}

#[test]
fn sasl_exchange_then_close_replays() {
    // §4.1.1 (lines 2220-2263) then §2.3.1.3 (lines 1185-1194): challenge,
    // response, success, and closing channel 1.
    let start = vector("rfc3080-4.1.1-l2220.txt");
    let success = vector("rfc3080-4.1.1-l2254.txt");
    let close = vector("rfc3080-2.3.1.3-l1185.txt");
    let now = Instant::now();
    let mut listener = sasl_listener(false);
    let mut initiator = initiator();
    let _ = transmit(&mut initiator);
    // The initiator sees the 221-octet greeting of the SASL listener.
    initiator
        .handle_input(now, &super_listener_greeting())
        .unwrap();
    initiator.start_sasl(Box::new(RfcOtpClient)).unwrap();
    assert_eq!(transmit(&mut initiator), start[0].bytes, "start with blob");
    listener.handle_input(now, &start[0].bytes).unwrap();
    let challenge = transmit(&mut listener);
    assert_equivalent(&challenge, &start[1].bytes);
    initiator.handle_input(now, &challenge).unwrap();
    assert_eq!(transmit(&mut initiator), success[0].bytes, "response blob");
    listener.handle_input(now, &success[0].bytes).unwrap();
    assert_eq!(transmit(&mut listener), success[1].bytes, "complete");
    initiator.handle_input(now, &success[1].bytes).unwrap();
    assert!(events(&mut listener).iter().any(
        |e| matches!(e, Event::Authenticated { identity, peer: true, .. } if identity == "blockmaster")
    ));
    assert_eq!(initiator.authenticated_identity(), Some("blockmaster"));
    initiator.close_channel(1, ReplyCode::BEEP_OK, "").unwrap();
    assert_eq!(transmit(&mut initiator), close[0].bytes, "close");
    listener.handle_input(now, &close[0].bytes).unwrap();
    let ok = transmit(&mut listener);
    assert_equivalent(&ok, &close[1].bytes);
    initiator.handle_input(now, &ok).unwrap();
    assert!(events(&mut initiator).iter().any(|e| matches!(
        e,
        Event::ChannelClosed {
            channel: 1,
            local: true,
            ..
        }
    )));
}

fn super_listener_greeting() -> Vec<u8> {
    let mut listener = listener(
        false,
        Some(RfcMechanisms {
            only_after_tls: false,
            too_weak: false,
        }),
        false,
    );
    transmit(&mut listener)
}

#[test]
fn wrong_sasl_response_gets_535() {
    // §4.1.1 (lines 2271-2280): the blob does not verify.
    let start = vector("rfc3080-4.1.1-l2220.txt");
    let failure = vector("rfc3080-4.1.1-l2271.txt");
    let mut listener = sasl_listener(false);
    let now = Instant::now();
    listener.handle_input(now, &start[0].bytes).unwrap();
    let _ = transmit(&mut listener);
    // A different response than the one the stand-in mechanism expects.
    let wrong = String::from_utf8(failure[0].bytes.clone())
        .unwrap()
        .replace(
            "d29yZDpmZXJuIGhhbmcgYnJvdyBib25nIGhlcmQgdG9n",
            "d3Jvbmcgd29yZHMgaGVyZSAhISEhISEhISEhISEhISEh",
        );
    listener.handle_input(now, wrong.as_bytes()).unwrap();
    assert_eq!(transmit(&mut listener), failure[1].bytes);
}

#[test]
fn parity_and_unsupported_profile_errors_match_the_rfc() {
    // §2.3.1.2 (lines 988-1000): an even channel from the initiator.
    let turns = vector("rfc3080-2.3.1.2-l988.txt");
    let mut listener = sasl_listener(false);
    listener
        .handle_input(Instant::now(), &turns[0].bytes)
        .unwrap();
    assert_equivalent(&transmit(&mut listener), &turns[1].bytes);
    // §2.3.1.5 (lines 1251-1263) starts an unknown profile on channel 2 from
    // the initiator, which the parity rule forbids; on an odd channel the
    // reply is the RFC's 550.
    let turns = vector("rfc3080-2.3.1.5-l1251.txt");
    let odd = String::from_utf8(turns[0].bytes.clone())
        .unwrap()
        .replace("number='2'", "number='1'");
    let mut listener = sasl_listener(false);
    listener
        .handle_input(Instant::now(), odd.as_bytes())
        .unwrap();
    assert_equivalent(&transmit(&mut listener), &turns[1].bytes);
}

#[test]
fn release_request_and_ok_match_the_rfc() {
    // §2.4 (lines 1417-1429): the initiator releases, the listener agrees.
    let turns = vector("rfc3080-2.4-l1417.txt");
    let mut initiator = initiator();
    let _ = transmit(&mut initiator);
    let now = Instant::now();
    initiator
        .handle_input(now, &super_listener_greeting())
        .unwrap();
    initiator.release(ReplyCode::BEEP_OK).unwrap();
    // The same element as the RFC's `<close code='200' />`, with the
    // DTD's default number written out (interoperability, issue 12).
    let ours = transmit(&mut initiator);
    let rfc = String::from_utf8(turns[0].bytes.clone()).unwrap();
    assert!(rfc.contains("<close code='200' />"), "{rfc}");
    let expected = rfc
        .replace("<close code='200' />", "<close number='0' code='200' />")
        .replace("MSG 0 1 . 52 60\r\n", "MSG 0 1 . 52 71\r\n");
    assert_eq!(String::from_utf8(ours).unwrap(), expected);
    let mut listener = sasl_listener(false);
    listener.handle_input(now, &turns[0].bytes).unwrap();
    let ok = transmit(&mut listener);
    assert_equivalent(&ok, &turns[1].bytes);
    assert!(listener.is_ended());
    initiator.handle_input(now, &ok).unwrap();
    assert!(events(&mut initiator).contains(&Event::Released { local: true }));
}

#[test]
fn peer_to_peer_starts_cross_on_the_wire() {
    // §2.7 (lines 1648-1661): both peers start a channel at once, with
    // their own msgno spaces and channel parities.
    let turns = vector("rfc3080-2.7-l1648.txt");
    let now = Instant::now();
    let mut listener = sasl_listener(false);
    listener
        .start_channel(vec![Profile::new(APEX)], None)
        .unwrap();
    let ours = transmit(&mut listener);
    assert_eq!(&ours[..], &turns[1].bytes[..]);
    listener.handle_input(now, &turns[0].bytes).unwrap();
    assert!(
        transmit(&mut listener).starts_with(b"RPY 0 1 . 337 87\r\n"),
        "the OTP start is answered after our own start"
    );
}
