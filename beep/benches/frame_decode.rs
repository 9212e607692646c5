//! Frame decoding throughput (octets of wire data per second): a buffer of
//! many MSG frames with 64 B, 4 KiB and 64 KiB payloads, and a mix of data
//! and SEQ frames as a busy channel sees them.
//!
//! `cargo bench -p imxp-beep --bench frame_decode`

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use imxp_beep::frame::{self, DataHeader, Frame, Keyword, SeqHeader};
use std::hint::black_box;
use std::time::Duration;

/// Wire octets per benchmark input: large enough that per-call overhead
/// does not dominate, small enough to stay in the caches of most machines.
const STREAM_OCTETS: usize = 4 * 1024 * 1024;

/// The largest payload the benchmark's decoder accepts.
const MAX_PAYLOAD: u32 = 64 * 1024;

/// MSG frames with `payload`-octet payloads (and, with `seq`, a SEQ frame
/// after each), at least `STREAM_OCTETS` long in all.
fn stream(payload: usize, seq: bool) -> Bytes {
    let body: Vec<u8> = (0..payload).map(|i| (i % 251) as u8).collect();
    let mut out = BytesMut::with_capacity(STREAM_OCTETS + payload + 128);
    let mut seqno = 0u32;
    let mut msgno = 0u32;
    while out.len() < STREAM_OCTETS {
        let header = DataHeader {
            keyword: Keyword::Msg,
            channel: 1,
            msgno,
            more: false,
            seqno,
            size: payload as u32,
            ansno: None,
        };
        frame::encode_data(&header, &body, &mut out);
        seqno = seqno.wrapping_add(payload as u32);
        msgno = (msgno + 1) & 0x7fff_ffff;
        if seq {
            frame::encode_seq(
                &SeqHeader {
                    channel: 1,
                    ackno: seqno,
                    window: 256 * 1024,
                },
                &mut out,
            );
        }
    }
    out.freeze()
}

/// Decodes every frame of `input`; returns the frame count.
fn decode_all(mut input: BytesMut) -> usize {
    let mut frames = 0;
    while let Some(frame) = frame::decode(&mut input, MAX_PAYLOAD).expect("well-formed") {
        black_box(&frame);
        if let Frame::Data(data) = frame {
            black_box(data.payload.len());
        }
        frames += 1;
    }
    assert!(input.is_empty(), "trailing octets");
    frames
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_decode");
    for (name, payload, seq) in [
        ("msg_64B", 64, false),
        ("msg_4KiB", 4 * 1024, false),
        ("msg_64KiB", 64 * 1024, false),
        ("msg_4KiB+seq", 4 * 1024, true),
    ] {
        let input = stream(payload, seq);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &input, |b, input| {
            // The decoder consumes its buffer: each run gets a fresh copy,
            // made outside the measurement.
            b.iter_batched(
                || BytesMut::from(&input[..]),
                decode_all,
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = decode
}
criterion_main!(benches);
