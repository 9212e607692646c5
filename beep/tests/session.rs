//! Two in-memory sessions talking to each other: channel management,
//! message exchange styles, flow control, limits, release and tuning.

mod common;

use bytes::Bytes;
use common::{APP, Pair, config};
use imxp_beep::tuning::sasl::{
    AnonymousClient, AnonymousServer, AuthContext, PlainClient, PlainServer, PlainVerifier,
    SaslServer, SaslServerFactory,
};
use imxp_beep::{ErrorReply, Event, Profile, ReplyCode, Role, SessionError, UserError};
use std::sync::Arc;
use std::time::Duration;

fn messages(events: &[Event]) -> Vec<(u32, u32, Bytes)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message {
                channel,
                msgno,
                payload,
            } => Some((*channel, *msgno, payload.clone())),
            _ => None,
        })
        .collect()
}

fn replies(events: &[Event]) -> Vec<(u32, Bytes, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reply {
                msgno,
                payload,
                error,
                ..
            } => Some((*msgno, payload.clone(), *error)),
            _ => None,
        })
        .collect()
}

#[test]
fn both_sides_greet_without_waiting() {
    let mut pair = Pair::new(config(Role::Initiator), config(Role::Listener));
    let mut out = bytes::BytesMut::new();
    assert!(
        pair.initiator.poll_transmit(&mut out),
        "initiator greets at once"
    );
    assert!(out.starts_with(b"RPY 0 0 . 0 "));
    out.clear();
    assert!(
        pair.listener.poll_transmit(&mut out),
        "listener greets at once"
    );
    assert!(out.starts_with(b"RPY 0 0 . 0 "));
}

#[test]
fn greeting_advertises_profiles_features_and_localize() {
    let mut listener = config(Role::Listener);
    listener.features = vec!["x-fast".into()];
    listener.localize = vec!["fr".into(), "en".into()];
    listener.tls_server = true;
    let pair = Pair::greeted(config(Role::Initiator), listener);
    let greeting = pair.initiator.peer_greeting().unwrap();
    assert_eq!(
        greeting.profiles,
        vec![APP.to_string(), "http://iana.org/beep/TLS".to_string()]
    );
    assert_eq!(greeting.features, vec!["x-fast".to_string()]);
    assert_eq!(greeting.localize, vec!["fr".to_string(), "en".to_string()]);
}

#[test]
fn start_picks_one_of_several_profiles_with_server_name_and_init() {
    let mut pair = Pair::greeted(config(Role::Initiator), config(Role::Listener));
    let channel = pair
        .initiator
        .start_channel(
            vec![
                Profile::new("http://example.com/unknown"),
                Profile::with_init(APP, "hello init"),
            ],
            Some("relay.example".into()),
        )
        .unwrap();
    assert_eq!(channel % 2, 1, "initiator channels are odd");
    pair.run().unwrap();
    let Some(Event::StartRequested(request)) = pair.listener_events.pop() else {
        panic!("no start request")
    };
    assert_eq!(request.server_name.as_deref(), Some("relay.example"));
    assert_eq!(
        request.profiles.len(),
        1,
        "only supported profiles are offered"
    );
    assert_eq!(
        request.profiles[0].init.as_deref(),
        Some(&b"hello init"[..])
    );
    pair.listener
        .accept_start(channel, Profile::with_init(APP, vec![0xffu8, 0, 1]))
        .unwrap();
    pair.run().unwrap();
    assert_eq!(
        pair.initiator_events.pop(),
        Some(Event::ChannelStarted {
            channel,
            profile: APP.into(),
            init: Some(vec![0xff, 0, 1])
        })
    );
    assert_eq!(pair.listener.server_name(), Some("relay.example"));
}

#[test]
fn start_errors_use_rfc_codes() {
    let mut pair = Pair::greeted(config(Role::Initiator), config(Role::Listener));
    let channel = pair
        .initiator
        .start_channel(vec![Profile::new("http://iana.org/beep/FOO")], None)
        .unwrap();
    pair.run().unwrap();
    let Some(Event::ChannelRefused { channel: c, error }) = pair.initiator_events.pop() else {
        panic!("no refusal")
    };
    assert_eq!(c, channel);
    assert_eq!(error.code, ReplyCode::ACTION_NOT_TAKEN);
    assert_eq!(error.diagnostic, "all requested profiles are unsupported");

    // The listener starts even channels; the initiator rejects application refusals too.
    let listener_channel = pair
        .listener
        .start_channel(vec![Profile::new(APP)], None)
        .unwrap();
    assert_eq!(listener_channel % 2, 0);
    pair.run().unwrap();
    pair.initiator
        .reject_start(
            listener_channel,
            ErrorReply::new(ReplyCode::NOT_AUTHORIZED, "no"),
        )
        .unwrap();
    pair.run().unwrap();
    assert!(matches!(
        pair.listener_events.pop(),
        Some(Event::ChannelRefused { error, .. }) if error.code == ReplyCode::NOT_AUTHORIZED
    ));
}

#[test]
fn wrong_parity_is_refused_with_501() {
    let mut pair = Pair::greeted(
        imxp_beep::Config::new(Role::Initiator),
        config(Role::Listener),
    );
    // Inject a start for an even channel from the initiator by raw frames;
    // the initiator's greeting was 52 octets on channel 0.
    let payload = imxp_beep::mgmt::Start {
        number: 2,
        server_name: None,
        profiles: vec![Profile::new(APP)],
    }
    .to_payload();
    let mut frame = bytes::BytesMut::new();
    imxp_beep::frame::encode_data(
        &imxp_beep::frame::DataHeader {
            keyword: imxp_beep::frame::Keyword::Msg,
            channel: 0,
            msgno: 1,
            more: false,
            seqno: 52,
            size: 0,
            ansno: None,
        },
        &payload,
        &mut frame,
    );
    pair.listener.handle_input(pair.now, &frame).unwrap();
    let mut out = bytes::BytesMut::new();
    pair.listener.poll_transmit(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("ERR 0 1 . "), "{text}");
    assert!(
        text.contains(
            "<error code='501'>number attribute in &lt;start&gt; element must be odd-valued</error>"
        ),
        "{text}"
    );
}

#[test]
fn pipelined_messages_get_replies_in_order_even_if_answered_out_of_order() {
    let mut pair = Pair::greeted(config(Role::Initiator), config(Role::Listener));
    let channel = pair.open_app_channel();
    let msgnos: Vec<u32> = (0..5)
        .map(|i| {
            pair.initiator
                .send_msg(channel, Bytes::from(format!("request {i}")))
                .unwrap()
        })
        .collect();
    pair.run().unwrap();
    let received = messages(&pair.listener_events);
    assert_eq!(received.len(), 5);
    // Answer in reverse order; the wire order must still follow arrival.
    for (_, msgno, payload) in received.iter().rev() {
        let mut reply = b"reply to ".to_vec();
        reply.extend_from_slice(payload);
        pair.listener
            .send_rpy(channel, *msgno, Bytes::from(reply))
            .unwrap();
    }
    pair.run().unwrap();
    let got = replies(&pair.initiator_events);
    assert_eq!(
        got.iter().map(|r| r.0).collect::<Vec<_>>(),
        msgnos,
        "replies in MSG order"
    );
    for (i, (_, payload, error)) in got.iter().enumerate() {
        assert_eq!(payload, &Bytes::from(format!("reply to request {i}")));
        assert!(!error);
    }
}

#[test]
fn one_to_many_answers_end_with_nul() {
    let mut pair = Pair::greeted(config(Role::Initiator), config(Role::Listener));
    let channel = pair.open_app_channel();
    let msgno = pair
        .initiator
        .send_msg(channel, Bytes::from("list"))
        .unwrap();
    pair.run().unwrap();
    for i in 0..3 {
        let ansno = pair
            .listener
            .send_ans(channel, msgno, Bytes::from(format!("item {i}")))
            .unwrap();
        assert_eq!(ansno, i);
    }
    assert_eq!(
        pair.listener.send_rpy(channel, msgno, Bytes::new()),
        Err(UserError::ReplyStyle { channel, msgno })
    );
    pair.listener.send_nul(channel, msgno).unwrap();
    pair.run().unwrap();
    let answers: Vec<_> = pair
        .initiator_events
        .iter()
        .filter_map(|e| match e {
            Event::Answer { ansno, payload, .. } => Some((*ansno, payload.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[2], (2, Bytes::from("item 2")));
    assert_eq!(
        pair.initiator_events.last(),
        Some(&Event::AnswersComplete { channel, msgno })
    );
    // The msgno is free again and a reply to it is no longer possible.
    assert!(pair.listener.send_nul(channel, msgno).is_err());
}

#[test]
fn large_messages_are_split_and_flow_controlled() {
    let mut initiator = config(Role::Initiator);
    initiator.max_frame_size = 1000;
    let mut listener = config(Role::Listener);
    listener.receive_window = 8192;
    let mut pair = Pair::greeted(initiator, listener);
    let channel = pair.open_app_channel();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    pair.initiator
        .send_msg(channel, Bytes::from(big.clone()))
        .unwrap();
    pair.run().unwrap();
    let received = messages(&pair.listener_events);
    assert_eq!(received.len(), 1);
    assert_eq!(&received[0].2[..], &big[..]);
    // Frames were at most 1000 octets and SEQ frames opened the window.
    let wire = String::from_utf8_lossy(&pair.wire.1);
    assert!(wire.contains("SEQ 1 0 8192\r\n"), "SEQ advertised");
    let frames = pair.wire.0.windows(6).filter(|w| w == b"MSG 1 ").count();
    assert!(frames >= 200, "{frames} frames");
}

#[test]
fn unconsumed_messages_stop_the_sender_until_consumed() {
    let mut pair = Pair::greeted(config(Role::Initiator), config(Role::Listener));
    let channel = pair.open_app_channel();
    pair.auto_consume = false;
    for _ in 0..40 {
        pair.initiator
            .send_msg(channel, Bytes::from(vec![7u8; 4096]))
            .unwrap();
    }
    pair.run().unwrap();
    let delivered = messages(&pair.listener_events).len();
    assert!(
        delivered < 40,
        "receiver buffer (64 KiB) bounds what is delivered: {delivered}"
    );
    assert!(pair.initiator.queued_bytes(channel) > 0);
    let octets: usize = messages(&pair.listener_events)
        .iter()
        .map(|m| m.2.len())
        .sum();
    pair.listener.consumed(channel, octets);
    pair.auto_consume = true;
    pair.run().unwrap();
    assert_eq!(messages(&pair.listener_events).len(), 40);
    assert_eq!(pair.initiator.queued_bytes(channel), 0);
}

#[test]
fn busy_channel_does_not_starve_another() {
    let mut initiator = config(Role::Initiator);
    initiator.max_frame_size = 4096;
    initiator.transmit_budget = 16 * 1024;
    let mut pair = Pair::greeted(initiator, config(Role::Listener));
    let bulk = pair.open_app_channel();
    let chat = pair.open_app_channel();
    pair.initiator
        .send_msg(bulk, Bytes::from(vec![1u8; 1 << 20]))
        .unwrap();
    pair.initiator.send_msg(chat, Bytes::from("ping")).unwrap();
    // One transmit round: the small message must be in it.
    let mut out = bytes::BytesMut::new();
    pair.initiator.poll_transmit(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains(&format!("MSG {chat} 0 . 0 4\r\nping")),
        "chat frame sent in the first round"
    );
}

#[test]
fn oversized_msg_gets_preemptive_554_and_sender_truncates() {
    let mut listener = config(Role::Listener);
    listener.max_message_size = 10_000;
    let mut initiator = config(Role::Initiator);
    initiator.max_frame_size = 2000;
    let mut pair = Pair::greeted(initiator, listener);
    let channel = pair.open_app_channel();
    let msgno = pair
        .initiator
        .send_msg(channel, Bytes::from(vec![b'x'; 50_000]))
        .unwrap();
    pair.initiator
        .send_msg(channel, Bytes::from("small"))
        .unwrap();
    pair.run().unwrap();
    let got = replies(&pair.initiator_events);
    assert_eq!(got[0].0, msgno);
    assert!(got[0].2, "ERR");
    assert!(String::from_utf8_lossy(&got[0].1).contains("code='554'"));
    // The sender finished the message with an empty final frame, and the
    // session goes on: the next message arrives.
    let wire = String::from_utf8_lossy(&pair.wire.0);
    assert!(
        wire.contains(&format!("MSG {channel} {msgno} . ")),
        "final frame sent"
    );
    assert_eq!(messages(&pair.listener_events).len(), 1);
    assert_eq!(&messages(&pair.listener_events)[0].2[..], b"small");
    assert!(pair.initiator.queued_bytes(channel) == 0);
}

#[test]
fn close_waits_for_replies_then_both_sides_see_it() {
    let mut pair = Pair::greeted(config(Role::Initiator), config(Role::Listener));
    let channel = pair.open_app_channel();
    let msgno = pair.initiator.send_msg(channel, Bytes::from("q")).unwrap();
    pair.run().unwrap();
    pair.initiator
        .close_channel(channel, ReplyCode::BEEP_OK, "")
        .unwrap();
    assert_eq!(
        pair.initiator.send_msg(channel, Bytes::from("more")),
        Err(UserError::ChannelClosing(channel))
    );
    pair.run().unwrap();
    // The close was sent (our MSG is acknowledged? no: not yet replied).
    assert!(
        !pair
            .initiator_events
            .iter()
            .any(|e| matches!(e, Event::ChannelClosed { .. })),
        "not closed while the reply is pending"
    );
    pair.listener
        .send_rpy(channel, msgno, Bytes::from("a"))
        .unwrap();
    pair.run().unwrap();
    assert!(pair.initiator_events.iter().any(
        |e| matches!(e, Event::ChannelClosed { channel: c, local: true, code } if *c == channel && *code == ReplyCode::BEEP_OK)
    ));
    assert!(pair.listener_events.iter().any(
        |e| matches!(e, Event::ChannelClosed { channel: c, local: false, .. } if *c == channel)
    ));
    assert_eq!(pair.initiator.channels().count(), 0);
    assert_eq!(pair.listener.channels().count(), 0);
}

#[test]
fn peer_close_is_accepted_only_after_our_owed_replies_are_sent() {
    let mut pair = Pair::greeted(config(Role::Initiator), config(Role::Listener));
    let channel = pair.open_app_channel();
    // The listener sends a MSG; the initiator owes a reply and the listener closes.
    let msgno = pair.listener.send_msg(channel, Bytes::from("q")).unwrap();
    pair.run().unwrap();
    pair.initiator
        .send_rpy(channel, msgno, Bytes::from("a"))
        .unwrap();
    pair.listener
        .close_channel(channel, ReplyCode::BEEP_OK, "bye")
        .unwrap();
    pair.run().unwrap();
    // Reply arrives before the ok on TCP order: the listener sees both.
    let reply_index = pair
        .listener_events
        .iter()
        .position(|e| matches!(e, Event::Reply { .. }))
        .unwrap();
    let closed_index = pair
        .listener_events
        .iter()
        .position(|e| matches!(e, Event::ChannelClosed { .. }))
        .unwrap();
    assert!(reply_index < closed_index);
}

#[test]
fn release_closes_the_session_on_both_sides() {
    let mut pair = Pair::greeted(config(Role::Initiator), config(Role::Listener));
    let _channel = pair.open_app_channel();
    pair.initiator.release(ReplyCode::BEEP_OK).unwrap();
    pair.run().unwrap();
    assert!(
        pair.initiator_events
            .contains(&Event::Released { local: true })
    );
    assert!(
        pair.listener_events
            .contains(&Event::Released { local: false })
    );
    assert!(pair.initiator.is_ended() && pair.listener.is_ended());
    let wire = String::from_utf8_lossy(&pair.wire.0);
    // The app channel is closed first, then the session, with explicit numbers.
    let channel = wire
        .find("<close number='1' code='200' />")
        .expect("channel closed");
    let session = wire
        .find("<close number='0' code='200' />")
        .expect("released");
    assert!(channel < session, "{wire}");
}

#[test]
fn listener_unavailable_sends_421_instead_of_greeting() {
    let mut listener = config(Role::Listener);
    listener.refuse = Some(ErrorReply::new(ReplyCode::SERVICE_NOT_AVAILABLE, ""));
    let mut pair = Pair::new(config(Role::Initiator), listener);
    let _ = pair.run();
    let wire = String::from_utf8_lossy(&pair.wire.1).into_owned();
    assert!(
        wire.starts_with("ERR 0 0 . 0 60\r\nContent-Type: application/beep+xml\r\n\r\n<error code='421' />\r\nEND\r\n"),
        "{wire}"
    );
    assert!(matches!(
        pair.initiator_events.first(),
        Some(Event::GreetingRefused(e)) if e.code == ReplyCode::SERVICE_NOT_AVAILABLE
    ));
    assert!(pair.initiator.is_ended());
    assert!(pair.listener.is_ended());
}

#[test]
fn greeting_timeout_ends_the_session() {
    let mut pair = Pair::new(config(Role::Initiator), config(Role::Listener));
    let deadline = pair.listener.poll_timeout().unwrap();
    assert_eq!(deadline, pair.now + Duration::from_secs(30));
    pair.advance(Duration::from_secs(29));
    assert_eq!(pair.listener.handle_timeout(pair.now), Ok(()));
    pair.advance(Duration::from_secs(1));
    assert_eq!(
        pair.listener.handle_timeout(pair.now),
        Err(SessionError::GreetingTimeout)
    );
    // Greeted sessions have no greeting timer.
    let pair = Pair::greeted(config(Role::Initiator), config(Role::Listener));
    assert_eq!(pair.listener.poll_timeout(), None);
}

#[test]
fn channel_limit_refuses_extra_starts_with_550() {
    let mut listener = config(Role::Listener);
    listener.max_channels = 3;
    let mut pair = Pair::greeted(config(Role::Initiator), listener);
    pair.open_app_channel();
    pair.open_app_channel();
    pair.initiator
        .start_channel(vec![Profile::new(APP)], None)
        .unwrap();
    pair.run().unwrap();
    assert!(matches!(
        pair.initiator_events.pop(),
        Some(Event::ChannelRefused { error, .. }) if error.code == ReplyCode::ACTION_NOT_TAKEN && error.diagnostic.contains("too many channels")
    ));
}

// ===== tuning =====

struct Mechanisms {
    verify: Arc<PlainVerifier>,
}

impl SaslServerFactory for Mechanisms {
    fn mechanisms(&self, _context: &AuthContext) -> Vec<String> {
        vec!["PLAIN".into(), "ANONYMOUS".into()]
    }
    fn start(
        &self,
        mechanism: &str,
        context: &AuthContext,
    ) -> Result<Box<dyn SaslServer>, ErrorReply> {
        match mechanism {
            "PLAIN" if !context.tls_active => Err(ErrorReply::new(
                ReplyCode::ENCRYPTION_REQUIRED,
                "PLAIN requires TLS",
            )),
            "PLAIN" => Ok(Box::new(PlainServer::new(self.verify.clone()))),
            "ANONYMOUS" => Ok(Box::new(AnonymousServer)),
            _ => Err(ErrorReply::new(ReplyCode::ACTION_NOT_TAKEN, "unknown")),
        }
    }
}

fn sasl_listener() -> imxp_beep::Config {
    let mut listener = config(Role::Listener);
    listener.sasl = Some(Arc::new(Mechanisms {
        verify: Arc::new(|_, user: &str, password: &str| {
            (user == "fred" && password == "secret").then(|| "fred@example.com".into())
        }),
    }));
    listener.tls_server = true;
    listener
}

#[test]
fn sasl_anonymous_authenticates_once_per_session() {
    let mut pair = Pair::greeted(config(Role::Initiator), sasl_listener());
    assert!(
        pair.initiator
            .peer_greeting()
            .unwrap()
            .profiles
            .contains(&"http://iana.org/beep/SASL/ANONYMOUS".to_string())
    );
    pair.initiator
        .start_sasl(Box::new(AnonymousClient {
            trace: "tester".into(),
        }))
        .unwrap();
    pair.run().unwrap();
    assert_eq!(pair.listener.authenticated_identity(), Some("anonymous"));
    assert!(pair.listener_events.iter().any(
        |e| matches!(e, Event::Authenticated { peer: true, mechanism, .. } if mechanism == "ANONYMOUS")
    ));
    assert!(
        pair.initiator_events
            .iter()
            .any(|e| matches!(e, Event::Authenticated { peer: false, .. }))
    );
    // A second attempt is not allowed (RFC 3080 §4.1).
    assert!(
        pair.initiator
            .start_sasl(Box::new(AnonymousClient::default()))
            .is_err()
    );
}

#[test]
fn sasl_plain_requires_tls_with_538() {
    let mut pair = Pair::greeted(config(Role::Initiator), sasl_listener());
    pair.initiator
        .start_sasl(Box::new(PlainClient {
            authzid: String::new(),
            authcid: "fred".into(),
            password: "secret".into(),
        }))
        .unwrap();
    pair.run().unwrap();
    assert!(pair.initiator_events.iter().any(
        |e| matches!(e, Event::AuthenticationFailed { error, .. } if error.code == ReplyCode::ENCRYPTION_REQUIRED)
    ));
    assert_eq!(pair.listener.authenticated_identity(), None);
}

fn tls_then_greet(pair: &mut Pair) {
    pair.initiator
        .start_tls(Some("relay.example".into()))
        .unwrap();
    pair.run().unwrap();
    assert!(
        pair.initiator_events
            .iter()
            .any(|e| matches!(e, Event::TlsProceed { .. }))
    );
    assert!(pair.listener_events.iter().any(
        |e| matches!(e, Event::TlsProceed { server_name } if server_name.as_deref() == Some("relay.example"))
    ));
    // Here the driver would run the handshake on the transport.
    let now = pair.now;
    pair.initiator.tls_complete(now, None);
    pair.listener.tls_complete(now, Some("peer".into()));
    pair.initiator_events.clear();
    pair.listener_events.clear();
    pair.run().unwrap();
    assert!(matches!(
        pair.initiator_events.first(),
        Some(Event::Greeting(_))
    ));
    assert!(matches!(
        pair.listener_events.first(),
        Some(Event::Greeting(_))
    ));
    pair.initiator_events.clear();
    pair.listener_events.clear();
}

#[test]
fn tls_tuning_resets_and_regreets_then_plain_succeeds() {
    let mut listener = sasl_listener();
    listener.profiles_require_tls = true;
    let mut pair = Pair::greeted(config(Role::Initiator), listener);
    let before = pair.initiator.peer_greeting().unwrap().profiles.clone();
    assert!(before.contains(&"http://iana.org/beep/TLS".to_string()));
    assert!(!before.contains(&APP.to_string()), "APP only after TLS");
    tls_then_greet(&mut pair);
    let after = pair.initiator.peer_greeting().unwrap().profiles.clone();
    assert!(!after.contains(&"http://iana.org/beep/TLS".to_string()));
    assert!(after.contains(&APP.to_string()));
    assert!(pair.listener.tls_active() && pair.initiator.tls_active());
    // Sequence numbers restarted: the new greeting is RPY 0 0 . 0 on the wire.
    pair.initiator
        .start_sasl(Box::new(PlainClient {
            authzid: String::new(),
            authcid: "fred".into(),
            password: "secret".into(),
        }))
        .unwrap();
    pair.run().unwrap();
    assert_eq!(
        pair.listener.authenticated_identity(),
        Some("fred@example.com")
    );
    let channel = pair.open_app_channel();
    assert_eq!(channel, 3, "channel numbering restarted after tuning");
}

#[test]
fn tls_refused_when_ready_version_is_bad() {
    let mut pair = Pair::greeted(config(Role::Initiator), sasl_listener());
    pair.initiator
        .start_channel(
            vec![Profile::with_init(
                "http://iana.org/beep/TLS",
                "<ready version=\"oops\" />",
            )],
            None,
        )
        .unwrap();
    pair.run().unwrap();
    // Application-level start of the TLS profile: the init reply carries the error.
    let Some(Event::ChannelStarted { init, .. }) = pair.initiator_events.pop() else {
        panic!("channel created with an error init")
    };
    let init = String::from_utf8(init.unwrap()).unwrap();
    assert!(init.contains("<error code='501'>"), "{init}");
}

#[test]
fn wrong_password_fails_with_535() {
    let mut pair = Pair::greeted(config(Role::Initiator), sasl_listener());
    tls_then_greet(&mut pair);
    pair.initiator
        .start_sasl(Box::new(PlainClient {
            authzid: String::new(),
            authcid: "fred".into(),
            password: "wrong".into(),
        }))
        .unwrap();
    pair.run().unwrap();
    assert!(pair.initiator_events.iter().any(
        |e| matches!(e, Event::AuthenticationFailed { error, .. } if error.code == ReplyCode::AUTH_FAILURE)
    ));
    assert_eq!(pair.listener.authenticated_identity(), None);
}

#[test]
fn partly_received_messages_are_bounded_session_wide() {
    let mut listener = config(Role::Listener);
    listener.max_assembly_buffer = 100_000;
    listener.receive_window = 32 * 1024;
    let mut initiator = config(Role::Initiator);
    initiator.max_frame_size = 8 * 1024;
    let mut pair = Pair::greeted(initiator, listener);
    let channels: Vec<u32> = (0..8).map(|_| pair.open_app_channel()).collect();
    for &channel in &channels {
        pair.initiator
            .send_msg(channel, Bytes::from(vec![9u8; 1_000_000]))
            .unwrap();
    }
    // Every message completes (the largest partial always gets credit),
    // while partial buffers stay bounded far below the 8 MB in flight: the
    // limit, plus credit granted before it was reached, plus the one
    // favoured message.
    let mut peak = 0;
    while pair.step().unwrap() {
        peak = peak.max(pair.listener.buffered_octets());
    }
    assert_eq!(messages(&pair.listener_events).len(), 8);
    let bound = 100_000 + 8 * 32 * 1024 + 1_000_000;
    assert!(peak <= bound, "peak {peak} over {bound}");
    assert!(
        peak > 50_000,
        "the test did buffer partial messages: {peak}"
    );
}
