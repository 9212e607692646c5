//! Every poorly-formed case of RFC 3080 §2.2.1.1, a bad
//! trailer, flow-control violations and over-long input: each ends the
//! session with a typed error and no reply.

mod common;

use bytes::{Bytes, BytesMut};
use common::{Pair, config};
use imxp_beep::frame::{self, FrameError, Keyword};
use imxp_beep::{Role, Session, SessionError};

/// A greeted listener with application channel 1 open, and the seqno the
/// listener expects next on channel 0 and channel 1.
fn open_session() -> (Pair, u32) {
    let mut pair = Pair::greeted(config(Role::Initiator), config(Role::Listener));
    let channel = pair.open_app_channel();
    assert_eq!(channel, 1);
    (pair, 0)
}

/// Feeds `input` to the listener; returns the error and checks that
/// nothing at all is sent in response.
fn feed(listener: &mut Session, input: &[u8]) -> SessionError {
    let now = std::time::Instant::now();
    let error = listener
        .handle_input(now, input)
        .expect_err("poorly-formed input must end the session");
    let mut out = BytesMut::new();
    assert!(!listener.poll_transmit(&mut out), "no reply: {out:?}");
    assert!(listener.is_ended());
    assert_eq!(
        listener.handle_input(now, b"MSG 1 9 . 0 0\r\nEND\r\n"),
        Err(SessionError::Ended)
    );
    error
}

#[test]
fn case_1_unknown_keyword() {
    let (mut pair, _) = open_session();
    assert_eq!(
        feed(&mut pair.listener, b"FOO 1 0 . 0 0\r\n"),
        SessionError::Frame(FrameError::UnknownKeyword("FOO".into()))
    );
}

#[test]
fn case_2_missing_or_invalid_parameter() {
    for input in [
        &b"MSG 1 x . 0 0\r\n"[..],
        b"MSG 1 0 . 0\r\n",
        b"MSG 1 0 + 0 0\r\n",
        b"RPY 1 0 . 0 -1\r\n",
        b"MSG 1 0 . 0 0 extra\r\n",
    ] {
        let (mut pair, _) = open_session();
        assert!(matches!(
            feed(&mut pair.listener, input),
            SessionError::Frame(FrameError::MalformedHeader(_))
        ));
    }
}

#[test]
fn case_3_channel_does_not_exist() {
    let (mut pair, _) = open_session();
    assert_eq!(
        feed(&mut pair.listener, b"MSG 7 0 . 0 1\r\nxEND\r\n"),
        SessionError::UnknownChannel(7)
    );
}

#[test]
fn case_4_msg_reusing_msgno_whose_reply_is_not_sent() {
    let (mut pair, _) = open_session();
    let error = feed(
        &mut pair.listener,
        b"MSG 1 0 . 0 1\r\nxEND\r\nMSG 1 0 . 1 1\r\nyEND\r\n",
    );
    assert_eq!(
        error,
        SessionError::MsgnoInUse {
            channel: 1,
            msgno: 0
        }
    );
}

#[test]
fn case_5_reply_after_the_reply_was_complete() {
    let (mut pair, _) = open_session();
    let msgno = pair.listener.send_msg(1, Bytes::from("q")).unwrap();
    pair.run().unwrap();
    pair.initiator.send_rpy(1, msgno, Bytes::from("a")).unwrap();
    pair.run().unwrap();
    assert_eq!(
        feed(&mut pair.listener, b"RPY 1 0 . 1 1\r\nbEND\r\n"),
        SessionError::UnsolicitedReply {
            channel: 1,
            msgno: 0,
            keyword: Keyword::Rpy
        }
    );
}

#[test]
fn case_6_reply_to_a_msgno_never_sent() {
    let (mut pair, _) = open_session();
    assert_eq!(
        feed(&mut pair.listener, b"ANS 1 5 . 0 1 0\r\nbEND\r\n"),
        SessionError::UnsolicitedReply {
            channel: 1,
            msgno: 5,
            keyword: Keyword::Ans
        }
    );
}

#[test]
fn case_7_message_continued_with_another_keyword() {
    let (mut pair, _) = open_session();
    let _ = pair.listener.send_msg(1, Bytes::from("q")).unwrap();
    pair.run().unwrap();
    assert_eq!(
        feed(
            &mut pair.listener,
            b"RPY 1 0 * 0 1\r\nxEND\r\nERR 1 0 . 1 1\r\nyEND\r\n"
        ),
        SessionError::KeywordChanged {
            channel: 1,
            expected: Keyword::Rpy,
            got: Keyword::Err
        }
    );
}

#[test]
fn case_8_nul_continuing_a_reply_that_is_not_ans() {
    let (mut pair, _) = open_session();
    let _ = pair.listener.send_msg(1, Bytes::from("q")).unwrap();
    pair.run().unwrap();
    assert_eq!(
        feed(
            &mut pair.listener,
            b"RPY 1 0 * 0 1\r\nxEND\r\nNUL 1 0 . 1 0\r\nEND\r\n"
        ),
        SessionError::KeywordChanged {
            channel: 1,
            expected: Keyword::Rpy,
            got: Keyword::Nul
        }
    );
}

#[test]
fn case_9_other_msgno_while_a_message_is_incomplete() {
    let (mut pair, _) = open_session();
    assert_eq!(
        feed(
            &mut pair.listener,
            b"MSG 1 0 * 0 1\r\nxEND\r\nMSG 1 1 . 1 1\r\nyEND\r\n"
        ),
        SessionError::Interleaved {
            channel: 1,
            expected: 0,
            got: 1
        }
    );
}

#[test]
fn case_10_wrong_seqno() {
    let (mut pair, _) = open_session();
    assert_eq!(
        feed(&mut pair.listener, b"MSG 1 0 . 5 1\r\nxEND\r\n"),
        SessionError::Seqno {
            channel: 1,
            expected: 0,
            got: 5
        }
    );
}

#[test]
fn case_11_nul_with_more_or_payload() {
    let (mut pair, _) = open_session();
    assert_eq!(
        feed(&mut pair.listener, b"NUL 1 0 * 0 0\r\nEND\r\n"),
        SessionError::Frame(FrameError::NulWithMore)
    );
    let (mut pair, _) = open_session();
    assert_eq!(
        feed(&mut pair.listener, b"NUL 1 0 . 0 1\r\nxEND\r\n"),
        SessionError::Frame(FrameError::NulWithPayload)
    );
}

#[test]
fn bad_trailer() {
    let (mut pair, _) = open_session();
    assert_eq!(
        feed(&mut pair.listener, b"MSG 1 0 . 0 1\r\nxENDX\r\n"),
        SessionError::Frame(FrameError::BadTrailer)
    );
}

#[test]
fn frame_beyond_the_advertised_window() {
    let (mut pair, _) = open_session();
    // The listener advertised 64 KiB on channel 1; two 40,000-octet frames
    // without a SEQ in between overrun it.
    let mut input = BytesMut::new();
    for (msgno, seqno) in [(0, 0), (1, 40_000)] {
        frame::encode_data(
            &frame::DataHeader {
                keyword: Keyword::Msg,
                channel: 1,
                msgno,
                more: false,
                seqno,
                size: 0,
                ansno: None,
            },
            &[0u8; 40_000],
            &mut input,
        );
    }
    assert_eq!(
        feed(&mut pair.listener, &input),
        SessionError::WindowOverrun {
            channel: 1,
            size: 40_000,
            available: 25_536
        }
    );
}

#[test]
fn frame_over_the_size_limit_is_refused_from_its_header() {
    let (mut pair, _) = open_session();
    // Only the header arrives: refused before any payload is buffered.
    assert!(matches!(
        feed(&mut pair.listener, b"MSG 1 0 . 0 2147483647\r\n"),
        SessionError::Frame(FrameError::FrameTooLarge { .. })
    ));
}

#[test]
fn huge_header_line() {
    let (mut pair, _) = open_session();
    assert_eq!(
        feed(&mut pair.listener, &[b'9'; 1000]),
        SessionError::Frame(FrameError::HeaderTooLong)
    );
}

#[test]
fn seq_for_unknown_channel_or_unsent_octets() {
    let (mut pair, _) = open_session();
    assert_eq!(
        feed(&mut pair.listener, b"SEQ 9 0 4096\r\n"),
        SessionError::UnknownChannel(9)
    );
    let (mut pair, _) = open_session();
    assert_eq!(
        feed(&mut pair.listener, b"SEQ 1 100 4096\r\n"),
        SessionError::AckBeyondSent {
            channel: 1,
            ackno: 100,
            sent: 0
        }
    );
}

#[test]
fn first_frame_must_be_the_greeting() {
    let mut listener = Session::new(config(Role::Listener), std::time::Instant::now());
    let mut out = BytesMut::new();
    listener.poll_transmit(&mut out);
    assert_eq!(
        feed(&mut listener, b"MSG 0 1 . 0 1\r\nxEND\r\n"),
        SessionError::ExpectedGreeting
    );
}

#[test]
fn garbage_bytes() {
    let (mut pair, _) = open_session();
    assert!(matches!(
        feed(
            &mut pair.listener,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n"
        ),
        SessionError::Frame(FrameError::UnknownKeyword(_))
    ));
}
