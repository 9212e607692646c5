use super::*;
use bytes::BytesMut;

fn decode_all(input: &[u8]) -> Result<Vec<Frame>, FrameError> {
    let mut buf = BytesMut::from(input);
    let mut frames = Vec::new();
    while let Some(frame) = decode(&mut buf, 1 << 20)? {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "trailing bytes left: {buf:?}");
    Ok(frames)
}

fn data(frame: &Frame) -> &DataFrame {
    match frame {
        Frame::Data(data) => data,
        Frame::Seq(_) => panic!("expected a data frame"),
    }
}

#[test]
fn decodes_each_keyword() {
    let frames = decode_all(
        b"MSG 1 2 . 3 2\r\nhiEND\r\nRPY 1 2 * 4 0\r\nEND\r\nERR 0 1 . 0 1\r\nxEND\r\nANS 1 0 * 0 3 7\r\nabcEND\r\nNUL 1 0 . 3 0\r\nEND\r\nSEQ 5 4294967295 2147483647\r\n",
    )
    .unwrap();
    assert_eq!(frames.len(), 6);
    let msg = data(&frames[0]);
    assert_eq!(msg.header.keyword, Keyword::Msg);
    assert_eq!(
        (
            msg.header.channel,
            msg.header.msgno,
            msg.header.seqno,
            msg.header.size
        ),
        (1, 2, 3, 2)
    );
    assert!(!msg.header.more);
    assert_eq!(&msg.payload[..], b"hi");
    assert!(data(&frames[1]).header.more);
    assert_eq!(data(&frames[2]).header.keyword, Keyword::Err);
    assert_eq!(data(&frames[3]).header.ansno, Some(7));
    assert_eq!(data(&frames[4]).header.keyword, Keyword::Nul);
    assert_eq!(
        frames[5],
        Frame::Seq(SeqHeader {
            channel: 5,
            ackno: u32::MAX,
            window: 2_147_483_647
        })
    );
}

#[test]
fn incomplete_input_waits_without_consuming() {
    let full = b"MSG 0 1 . 0 5\r\nhelloEND\r\n";
    for cut in 0..full.len() {
        let mut buf = BytesMut::from(&full[..cut]);
        assert_eq!(decode(&mut buf, 1024), Ok(None), "cut at {cut}");
        assert_eq!(buf.len(), cut);
    }
}

#[test]
fn encode_round_trips() {
    let header = DataHeader {
        keyword: Keyword::Ans,
        channel: 2_147_483_647,
        msgno: 2_147_483_647,
        more: true,
        seqno: u32::MAX,
        size: 0,
        ansno: Some(2_147_483_647),
    };
    let mut out = BytesMut::new();
    encode_data(&header, b"payload", &mut out);
    encode_seq(
        &SeqHeader {
            channel: 0,
            ackno: 1,
            window: 4096,
        },
        &mut out,
    );
    assert_eq!(
        &out[..],
        &b"ANS 2147483647 2147483647 * 4294967295 7 2147483647\r\npayloadEND\r\nSEQ 0 1 4096\r\n"[..]
    );
    let frames = decode_all(&out).unwrap();
    assert_eq!(data(&frames[0]).header, DataHeader { size: 7, ..header });
    let mut again = BytesMut::new();
    for frame in &frames {
        encode(frame, &mut again);
    }
    assert_eq!(again, out);
}

#[test]
fn rejects_malformed_headers() {
    let cases: &[(&[u8], FrameError)] = &[
        (
            b"FOO 0 0 . 0 0\r\n",
            FrameError::UnknownKeyword("FOO".into()),
        ),
        (
            b"msg 0 0 . 0 0\r\n",
            FrameError::UnknownKeyword("msg".into()),
        ),
        (b"MSG 0 0 . 0\r\n", FrameError::MalformedHeader("size")),
        (
            b"MSG 0 0 . 0 0 0\r\n",
            FrameError::MalformedHeader("extra field in header"),
        ),
        (
            b"MSG  0 0 . 0 0\r\n",
            FrameError::MalformedHeader("channel"),
        ),
        (
            b"MSG 0 0 - 0 0\r\n",
            FrameError::MalformedHeader("more must be '.' or '*'"),
        ),
        (
            b"MSG 2147483648 0 . 0 0\r\n",
            FrameError::MalformedHeader("channel"),
        ),
        (
            b"MSG 0 2147483648 . 0 0\r\n",
            FrameError::MalformedHeader("msgno"),
        ),
        (
            b"MSG 0 0 . 4294967296 0\r\n",
            FrameError::MalformedHeader("seqno"),
        ),
        (b"MSG 0 0 . 0 +1\r\n", FrameError::MalformedHeader("size")),
        (b"MSG 0 0 . 0 -1\r\n", FrameError::MalformedHeader("size")),
        (
            b"MSG 0 0 . 0 00000000001\r\n",
            FrameError::MalformedHeader("size"),
        ),
        (b"ANS 0 0 . 0 0\r\n", FrameError::MalformedHeader("ansno")),
        (b"NUL 0 0 * 0 0\r\n", FrameError::NulWithMore),
        (b"NUL 0 0 . 0 1\r\n", FrameError::NulWithPayload),
        (b"SEQ 0 0\r\n", FrameError::MalformedHeader("window")),
        (
            b"SEQ 0 0 2147483648\r\n",
            FrameError::MalformedHeader("window"),
        ),
    ];
    for (input, expected) in cases {
        let mut buf = BytesMut::from(*input);
        assert_eq!(
            decode(&mut buf, 1024).as_ref(),
            Err(expected),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn bad_trailer_is_detected_as_soon_as_it_arrives() {
    let mut buf = BytesMut::from(&b"MSG 0 1 . 0 2\r\nhiEN"[..]);
    assert_eq!(decode(&mut buf, 1024), Ok(None));
    let mut buf = BytesMut::from(&b"MSG 0 1 . 0 2\r\nhiX"[..]);
    assert_eq!(decode(&mut buf, 1024), Err(FrameError::BadTrailer));
    let mut buf = BytesMut::from(&b"MSG 0 1 . 0 2\r\nhi!END\r\n"[..]);
    assert_eq!(decode(&mut buf, 1024), Err(FrameError::BadTrailer));
}

#[test]
fn limits_are_checked_before_buffering() {
    let mut buf = BytesMut::from(&b"MSG 0 1 . 0 2147483647\r\n"[..]);
    assert_eq!(
        decode(&mut buf, 65536),
        Err(FrameError::FrameTooLarge {
            size: 2_147_483_647,
            limit: 65536
        })
    );
    let long = [b'M'; MAX_HEADER_LINE];
    let mut buf = BytesMut::from(&long[..]);
    assert_eq!(decode(&mut buf, 1024), Err(FrameError::HeaderTooLong));
    let mut buf = BytesMut::from(&long[..MAX_HEADER_LINE - 1]);
    assert_eq!(decode(&mut buf, 1024), Ok(None));
}
