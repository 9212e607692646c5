//! Transcripts against a scripted peer, one sans-IO session on our side:
//! what we send at release (RFC 3080 §2.4: every channel closed first,
//! then `<close number='0' …>`), a release the peer declines, and a peer
//! that shrinks its window (RFC 3081 §3.1.4, RFC 1122 §4.2.2.16).

use bytes::{Bytes, BytesMut};
use imxp_beep::frame::{self, Frame};
use imxp_beep::{Config, Event, Profile, ReplyCode, Role, Session, mime};
use std::collections::HashMap;
use std::time::Instant;

const ECHO: &str = "http://example.com/beep/ECHO";

/// The scripted peer: writes frames with its own seqnos per channel.
#[derive(Default)]
struct Script {
    seqno: HashMap<u32, u32>,
}

impl Script {
    /// A complete frame carrying `payload`.
    fn frame(&mut self, keyword: &str, channel: u32, msgno: u32, payload: &[u8]) -> Vec<u8> {
        let seqno = self.seqno.entry(channel).or_insert(0);
        let mut out = format!(
            "{keyword} {channel} {msgno} . {seqno} {}\r\n",
            payload.len()
        )
        .into_bytes();
        out.extend_from_slice(payload);
        out.extend_from_slice(b"END\r\n");
        *seqno += payload.len() as u32;
        out
    }

    /// A frame on channel 0 carrying an `application/beep+xml` element.
    fn xml(&mut self, keyword: &str, msgno: u32, xml: &str) -> Vec<u8> {
        self.frame(keyword, 0, msgno, &mime::beep_xml_payload(xml))
    }
}

/// One frame our session wrote, for comparison with the transcript:
/// `KEYWORD channel msgno more seqno size` and, on channel 0, the element.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    header: String,
    element: String,
    payload: Bytes,
}

/// Everything `session` has to send, decoded frame by frame (SEQ frames left out).
fn sent(session: &mut Session) -> Vec<Sent> {
    let mut out = BytesMut::new();
    while session.poll_transmit(&mut out) {}
    let mut frames = Vec::new();
    while let Some(frame) = frame::decode(&mut out, 1 << 20).expect("well-formed output") {
        // Our own window updates are not what these transcripts are about.
        let Frame::Data(data) = frame else {
            continue;
        };
        let h = data.header;
        let element = if h.channel == 0 {
            String::from_utf8(mime::beep_xml_body(&data.payload).unwrap().to_vec())
                .unwrap()
                .trim_end()
                .to_owned()
        } else {
            String::new()
        };
        frames.push(Sent {
            header: format!(
                "{} {} {} {} {} {}",
                h.keyword.as_str(),
                h.channel,
                h.msgno,
                if h.more { '*' } else { '.' },
                h.seqno,
                h.size
            ),
            element,
            payload: data.payload,
        });
    }
    frames
}

fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

/// The `(header, element)` pairs of channel-0 frames.
fn elements(frames: &[Sent]) -> Vec<(&str, &str)> {
    frames
        .iter()
        .map(|f| {
            (
                f.header.split(' ').take(3).last().unwrap(),
                f.element.as_str(),
            )
        })
        .collect()
}

fn config(role: Role) -> Config {
    let mut config = Config::new(role);
    // 4096 octets: the initial window, so no SEQ clutters the transcript.
    config.receive_window = 4096;
    config.profiles.push(ECHO.into());
    config
}

/// An initiator greeted by the script, with channels 1 and 3 on ECHO open.
fn initiator_with_two_channels(peer: &mut Script) -> Session {
    let now = Instant::now();
    let mut session = Session::new(config(Role::Initiator), now);
    let _greeting = sent(&mut session);
    let listener_greeting = format!("<greeting>\r\n   <profile uri='{ECHO}' />\r\n</greeting>");
    session
        .handle_input(now, &peer.xml("RPY", 0, &listener_greeting))
        .unwrap();
    for (msgno, number) in [(1, 1), (2, 3)] {
        assert_eq!(
            session.start_channel(vec![Profile::new(ECHO)], None),
            Ok(number)
        );
        let start = sent(&mut session);
        assert_eq!(start.len(), 1);
        assert!(
            start[0]
                .element
                .starts_with(&format!("<start number='{number}'>"))
        );
        session
            .handle_input(
                now,
                &peer.xml("RPY", msgno, &format!("<profile uri='{ECHO}' />")),
            )
            .unwrap();
    }
    let started = events(&mut session)
        .into_iter()
        .filter(|e| matches!(e, Event::ChannelStarted { .. }))
        .count();
    assert_eq!(started, 2);
    session
}

#[test]
fn release_closes_every_channel_then_channel_zero_with_an_explicit_number() {
    let mut peer = Script::default();
    let mut session = initiator_with_two_channels(&mut peer);
    let now = Instant::now();
    session.release(ReplyCode::BEEP_OK).unwrap();
    // Both channels are closed first; channel 0 waits for their <ok />s.
    assert_eq!(
        elements(&sent(&mut session)),
        [
            ("3", "<close number='1' code='200' />"),
            ("4", "<close number='3' code='200' />"),
        ]
    );
    session
        .handle_input(now, &peer.xml("RPY", 3, "<ok />"))
        .unwrap();
    assert_eq!(sent(&mut session), [], "channel 3 is still open");
    session
        .handle_input(now, &peer.xml("RPY", 4, "<ok />"))
        .unwrap();
    // RFC 3080 §2.3.1.3's DTD defaults number to 0, but some peers refuse
    // or crash on a <close> without it: it is always written.
    assert_eq!(
        elements(&sent(&mut session)),
        [("5", "<close number='0' code='200' />")]
    );
    let closed: Vec<u32> = events(&mut session)
        .into_iter()
        .filter_map(|e| match e {
            Event::ChannelClosed {
                channel,
                local: true,
                ..
            } => Some(channel),
            _ => None,
        })
        .collect();
    assert_eq!(closed, [1, 3]);
    session
        .handle_input(now, &peer.xml("RPY", 5, "<ok />"))
        .unwrap();
    assert_eq!(events(&mut session), [Event::Released { local: true }]);
    assert!(session.is_ended());
}

#[test]
fn a_declined_release_is_reported_and_the_session_stays_usable() {
    let mut peer = Script::default();
    let mut session = initiator_with_two_channels(&mut peer);
    let now = Instant::now();
    session.release(ReplyCode::BEEP_OK).unwrap();
    assert_eq!(sent(&mut session).len(), 2);
    session
        .handle_input(now, &peer.xml("RPY", 3, "<ok />"))
        .unwrap();
    session
        .handle_input(now, &peer.xml("RPY", 4, "<ok />"))
        .unwrap();
    assert_eq!(sent(&mut session).len(), 1, "the close of channel 0");
    let _ = events(&mut session);
    // The answer one independent implementation gives.
    session
        .handle_input(
            now,
            &peer.xml(
                "ERR",
                5,
                "<error code='501'>Malformed &lt;close&gt;: bad channel number</error>",
            ),
        )
        .unwrap();
    let [Event::CloseRefused { channel: 0, error }] = &events(&mut session)[..] else {
        panic!("no refusal event")
    };
    assert_eq!(error.code, ReplyCode::PARAMETER_SYNTAX_ERROR);
    assert!(
        !session.is_ended(),
        "the caller decides (the driver ends it)"
    );
    // Releasing again is possible.
    session.release(ReplyCode::BEEP_OK).unwrap();
    assert_eq!(
        elements(&sent(&mut session)),
        [("6", "<close number='0' code='200' />")]
    );
}

#[test]
fn a_channel_that_refuses_to_close_stops_the_release() {
    let mut peer = Script::default();
    let mut session = initiator_with_two_channels(&mut peer);
    let now = Instant::now();
    session.release(ReplyCode::BEEP_OK).unwrap();
    assert_eq!(sent(&mut session).len(), 2);
    session
        .handle_input(now, &peer.xml("ERR", 3, "<error code='550'>busy</error>"))
        .unwrap();
    session
        .handle_input(now, &peer.xml("RPY", 4, "<ok />"))
        .unwrap();
    let refusals: Vec<u32> = events(&mut session)
        .into_iter()
        .filter_map(|e| match e {
            Event::CloseRefused { channel, error } => {
                assert_eq!(error.code, ReplyCode::ACTION_NOT_TAKEN);
                Some(channel)
            }
            _ => None,
        })
        .collect();
    assert_eq!(refusals, [1, 0], "channel 1's refusal, then the release's");
    assert_eq!(sent(&mut session), [], "no close of channel 0 follows");
    assert_eq!(session.channels().map(|(n, _)| n).collect::<Vec<_>>(), [1]);
}

/// A listener with channel 1 on ECHO started by the script.
fn listener_with_channel_one(peer: &mut Script) -> Session {
    let now = Instant::now();
    let mut session = Session::new(config(Role::Listener), now);
    let _greeting = sent(&mut session);
    session
        .handle_input(now, &peer.xml("RPY", 0, "<greeting />"))
        .unwrap();
    let start = format!("<start number='1'>\r\n   <profile uri='{ECHO}' />\r\n</start>");
    session
        .handle_input(now, &peer.xml("MSG", 1, &start))
        .unwrap();
    let request = events(&mut session)
        .into_iter()
        .find_map(|e| match e {
            Event::StartRequested(request) => Some(request),
            _ => None,
        })
        .expect("start requested");
    session
        .accept_start(1, request.profiles[0].clone())
        .unwrap();
    assert_eq!(
        elements(&sent(&mut session)),
        [("1", &*format!("<profile uri='{ECHO}' />"))]
    );
    session
}

#[test]
fn a_shrunk_window_is_never_overrun() {
    let mut peer = Script::default();
    let mut session = listener_with_channel_one(&mut peer);
    let now = Instant::now();
    // Right after the start, the peer shrinks the initial 4096-octet
    // window to 512 octets.
    session.handle_input(now, b"SEQ 1 0 512\r\n").unwrap();
    let message: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    session
        .handle_input(now, &peer.frame("MSG", 1, 0, &message))
        .unwrap();
    let payload = events(&mut session)
        .into_iter()
        .find_map(|e| match e {
            Event::Message {
                channel: 1,
                msgno: 0,
                payload,
            } => Some(payload),
            _ => None,
        })
        .expect("the MSG");
    session.consumed(1, payload.len());
    session.send_rpy(1, 0, payload).unwrap();
    let headers = |frames: Vec<Sent>| frames.into_iter().map(|f| f.header).collect::<Vec<_>>();
    let mut echoed = Vec::new();
    let first = sent(&mut session);
    echoed.extend(first.iter().flat_map(|f| f.payload.to_vec()));
    assert_eq!(headers(first), ["RPY 1 0 * 0 512"], "up to the new edge");
    assert_eq!(sent(&mut session), [], "the window is full: wait");
    // A SEQ whose edge is behind what was already sent opens nothing.
    session.handle_input(now, b"SEQ 1 0 100\r\n").unwrap();
    assert_eq!(sent(&mut session), []);
    session.handle_input(now, b"SEQ 1 512 1000\r\n").unwrap();
    let second = sent(&mut session);
    echoed.extend(second.iter().flat_map(|f| f.payload.to_vec()));
    assert_eq!(headers(second), ["RPY 1 0 * 512 1000"]);
    session.handle_input(now, b"SEQ 1 1512 4096\r\n").unwrap();
    let last = sent(&mut session);
    echoed.extend(last.iter().flat_map(|f| f.payload.to_vec()));
    assert_eq!(headers(last), ["RPY 1 0 . 1512 1488"]);
    assert_eq!(echoed, message);
}
