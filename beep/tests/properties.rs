//! Property tests: random messages, random frame splits, random windows
//! and channel interleavings between two in-memory sessions — everything
//! arrives intact and in order.

mod common;

use bytes::{Bytes, BytesMut};
use common::{Pair, config};
use imxp_beep::frame::{self, DataHeader, Frame, Keyword, SeqHeader};
use imxp_beep::{Event, Role};
use proptest::prelude::*;

fn keyword() -> impl Strategy<Value = Keyword> {
    prop_oneof![
        Just(Keyword::Msg),
        Just(Keyword::Rpy),
        Just(Keyword::Err),
        Just(Keyword::Ans),
        Just(Keyword::Nul),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frames_round_trip(
        keyword in keyword(),
        channel in 0u32..=2_147_483_647,
        msgno in 0u32..=2_147_483_647,
        more in any::<bool>(),
        seqno in any::<u32>(),
        ansno in 0u32..=2_147_483_647,
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        split in 0usize..400,
    ) {
        let nul = keyword == Keyword::Nul;
        let payload = if nul { Vec::new() } else { payload };
        let header = DataHeader {
            keyword,
            channel,
            msgno,
            more: more && !nul,
            seqno,
            size: payload.len() as u32,
            ansno: (keyword == Keyword::Ans).then_some(ansno),
        };
        let mut wire = BytesMut::new();
        frame::encode_data(&header, &payload, &mut wire);
        frame::encode_seq(&SeqHeader { channel, ackno: seqno, window: msgno }, &mut wire);
        let bytes = wire.clone().freeze();
        // Deliver in two pieces: the decoder waits, then completes.
        let split = split.min(bytes.len());
        let mut buf = BytesMut::from(&bytes[..split]);
        let mut decoded = Vec::new();
        while let Some(frame) = frame::decode(&mut buf, 1 << 20).unwrap() {
            decoded.push(frame);
        }
        buf.extend_from_slice(&bytes[split..]);
        while let Some(frame) = frame::decode(&mut buf, 1 << 20).unwrap() {
            decoded.push(frame);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded.len(), 2);
        let Frame::Data(data) = &decoded[0] else { panic!("data frame") };
        prop_assert_eq!(data.header, header);
        prop_assert_eq!(&data.payload[..], &payload[..]);
        prop_assert_eq!(&decoded[1], &Frame::Seq(SeqHeader { channel, ackno: seqno, window: msgno }));
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    window: u32,
    max_frame: u32,
    chunk: usize,
    channels: usize,
    /// (channel index, message size) in send order.
    messages: Vec<(usize, usize)>,
    answers: bool,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        4096u32..300_000,
        1u32..70_000,
        1usize..9000,
        1usize..5,
        proptest::collection::vec((0usize..4, 0usize..40_000), 1..24),
        any::<bool>(),
    )
        .prop_map(
            |(window, max_frame, chunk, channels, messages, answers)| Scenario {
                window,
                max_frame,
                chunk,
                channels,
                messages: messages
                    .into_iter()
                    .map(|(c, size)| (c % channels, size))
                    .collect(),
                answers,
            },
        )
}

fn payload(index: usize, size: usize) -> Bytes {
    Bytes::from(
        (0..size)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(index as u8))
            .collect::<Vec<_>>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn messages_and_replies_arrive_intact_and_in_order(s in scenario()) {
        let mut initiator = config(Role::Initiator);
        initiator.receive_window = s.window;
        initiator.max_frame_size = s.max_frame;
        let mut listener = config(Role::Listener);
        listener.receive_window = s.window;
        listener.max_frame_size = s.max_frame;
        let mut pair = Pair::greeted(initiator, listener);
        pair.chunk = s.chunk;
        let channels: Vec<u32> = (0..s.channels).map(|_| pair.open_app_channel()).collect();
        let mut sent: Vec<Vec<(u32, Bytes)>> = vec![Vec::new(); s.channels];
        for (index, &(c, size)) in s.messages.iter().enumerate() {
            let data = payload(index, size);
            let msgno = pair.initiator.send_msg(channels[c], data.clone()).unwrap();
            sent[c].push((msgno, data));
        }
        pair.run().unwrap();
        // Every MSG arrived intact, in order per channel.
        for (c, &channel) in channels.iter().enumerate() {
            let got: Vec<(u32, Bytes)> = pair.listener_events.iter().filter_map(|e| match e {
                Event::Message { channel: ch, msgno, payload } if *ch == channel => Some((*msgno, payload.clone())),
                _ => None,
            }).collect();
            prop_assert_eq!(&got, &sent[c]);
        }
        // Echo them back, in reverse order of the calls; replies come back in MSG order.
        let received: Vec<(u32, u32, Bytes)> = pair.listener_events.iter().filter_map(|e| match e {
            Event::Message { channel, msgno, payload } => Some((*channel, *msgno, payload.clone())),
            _ => None,
        }).collect();
        for (channel, msgno, payload) in received.iter().rev() {
            if s.answers {
                pair.listener.send_ans(*channel, *msgno, payload.clone()).unwrap();
                pair.listener.send_nul(*channel, *msgno).unwrap();
            } else {
                pair.listener.send_rpy(*channel, *msgno, payload.clone()).unwrap();
            }
        }
        pair.run().unwrap();
        for (c, &channel) in channels.iter().enumerate() {
            let got: Vec<(u32, Bytes)> = pair.initiator_events.iter().filter_map(|e| match e {
                Event::Reply { channel: ch, msgno, payload, error: false } if *ch == channel => Some((*msgno, payload.clone())),
                Event::Answer { channel: ch, msgno, payload, .. } if *ch == channel => Some((*msgno, payload.clone())),
                _ => None,
            }).collect();
            prop_assert_eq!(&got, &sent[c]);
        }
        for &channel in &channels {
            prop_assert_eq!(pair.initiator.queued_bytes(channel), 0);
            prop_assert_eq!(pair.listener.queued_bytes(channel), 0);
        }
    }
}
