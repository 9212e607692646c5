//! Session limits that protect a listener: the idle timeout (with the SEQ
//! keepalive that holds it off) and the cap on unanswered MSGs per channel.

mod common;

use bytes::{Bytes, BytesMut};
use common::{Pair, config};
use imxp_beep::{Event, Role};
use std::time::Duration;

const IDLE: Duration = Duration::from_secs(60);

fn idle_pair() -> Pair {
    let mut listener = config(Role::Listener);
    listener.idle_timeout = Some(IDLE);
    Pair::greeted(config(Role::Initiator), listener)
}

/// Fires the listener's timer if it is due, then moves bytes.
fn tick(pair: &mut Pair) {
    if pair
        .listener
        .poll_timeout()
        .is_some_and(|deadline| deadline <= pair.now)
    {
        pair.listener.handle_timeout(pair.now).unwrap();
    }
    pair.run().unwrap();
}

#[test]
fn an_idle_session_is_released_with_421() {
    let mut pair = idle_pair();
    assert_eq!(pair.listener.poll_timeout(), Some(pair.now + IDLE));
    pair.advance(IDLE - Duration::from_secs(1));
    tick(&mut pair);
    assert!(!pair.listener.is_ended(), "not idle long enough yet");
    pair.advance(Duration::from_secs(1));
    tick(&mut pair);
    assert!(pair.listener.is_ended(), "released after the idle timeout");
    assert!(pair.initiator.is_ended());
    assert!(
        pair.listener_events
            .iter()
            .any(|e| matches!(e, Event::Released { local: true }))
    );
    let wire = String::from_utf8_lossy(&pair.wire.1);
    assert!(wire.contains("<close number='0' code='421' />"), "{wire}");
}

#[test]
fn a_keepalive_seq_counts_as_traffic() {
    let mut pair = idle_pair();
    for _ in 0..5 {
        pair.advance(IDLE / 2);
        pair.initiator.keepalive();
        let mut out = BytesMut::new();
        assert!(pair.initiator.poll_transmit(&mut out), "a SEQ is sent");
        assert!(out.starts_with(b"SEQ 0 "), "{out:?}");
        pair.listener.handle_input(pair.now, &out).unwrap();
        tick(&mut pair);
        assert!(!pair.listener.is_ended(), "kept alive");
    }
    pair.advance(IDLE);
    tick(&mut pair);
    assert!(
        pair.listener.is_ended(),
        "released once the keepalives stop"
    );
}

#[test]
fn a_session_with_an_unanswered_msg_is_not_idle() {
    let mut pair = idle_pair();
    let channel = pair.open_app_channel();
    pair.initiator
        .send_msg(channel, Bytes::from_static(b"question"))
        .unwrap();
    pair.run().unwrap();
    let msgno = pair
        .listener_events
        .iter()
        .find_map(|e| match e {
            Event::Message { msgno, .. } => Some(*msgno),
            _ => None,
        })
        .expect("MSG arrived");
    pair.advance(IDLE * 3);
    tick(&mut pair);
    assert!(!pair.listener.is_ended(), "a reply is owed: busy");
    pair.listener
        .send_rpy(channel, msgno, Bytes::from_static(b"answer"))
        .unwrap();
    pair.run().unwrap();
    pair.advance(IDLE);
    tick(&mut pair);
    assert!(pair.listener.is_ended(), "idle once answered");
}

#[test]
fn no_idle_timeout_by_default() {
    let pair = Pair::greeted(config(Role::Initiator), config(Role::Listener));
    assert_eq!(pair.listener.poll_timeout(), None);
}

#[test]
fn unanswered_msgs_stop_the_window_without_dropping_any() {
    let mut listener = config(Role::Listener);
    listener.max_outstanding = 4;
    listener.receive_window = 4096;
    let mut pair = Pair::greeted(config(Role::Initiator), listener);
    let channel = pair.open_app_channel();
    // 400 MSGs of 100 octets: ten windows' worth.
    for i in 0..400u32 {
        let payload = format!("{i:0>100}");
        pair.initiator
            .send_msg(channel, Bytes::from(payload))
            .unwrap();
    }
    pair.run().unwrap();
    let received: Vec<u32> = pair
        .listener_events
        .drain(..)
        .filter_map(|e| match e {
            Event::Message { msgno, .. } => Some(msgno),
            _ => None,
        })
        .collect();
    // The first window (4096 octets) arrives; no SEQ opens more while
    // four or more are unanswered.
    assert!(
        received.len() >= 4 && received.len() < 60,
        "{}",
        received.len()
    );
    // Answer them all, round after round: everything arrives, in order.
    let mut all = received;
    let mut answered = 0;
    for _ in 0..1000 {
        while answered < all.len() {
            pair.listener
                .send_rpy(channel, all[answered], Bytes::from_static(b"ok"))
                .unwrap();
            answered += 1;
        }
        pair.run().unwrap();
        let more: Vec<u32> = pair
            .listener_events
            .drain(..)
            .filter_map(|e| match e {
                Event::Message { msgno, .. } => Some(msgno),
                _ => None,
            })
            .collect();
        if more.is_empty() && all.len() == 400 {
            break;
        }
        all.extend(more);
    }
    assert_eq!(all, (0..400).collect::<Vec<_>>(), "none lost, in order");
}
