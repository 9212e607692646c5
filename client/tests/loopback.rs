//! The client end to end over real TLS against a fake relay in-process
//! (see `support`): TLS tuning, SASL PLAIN, attach (init and MSG), send,
//! receive and acknowledge, refusals, terminate in both directions.

mod support;

use imxp_apex::{Content, Endpoint, ReplyCode, Response};
use imxp_client::{AttachOptions, Client, ClientError, ConnectOptions, Event};
use std::future::Future;
use std::time::Duration;
use support::{FakeRelay, Seen};

/// Guards against a hang (not a timing assertion): generous, and only
/// turns a deadlock into a failure.
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("the test hung")
}

fn endpoint(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

fn options(relay: &FakeRelay, user: &str, password: &str) -> ConnectOptions {
    ConnectOptions {
        relay: relay.address.clone(),
        tls: Some((relay.client_tls.clone(), "localhost".into())),
        user: user.into(),
        password: password.into(),
        // The fake relay speaks PLAIN only.
        mechanism: imxp_client::Mechanism::Plain,
    }
}

async fn fred(relay: &FakeRelay) -> Client {
    Client::connect(options(relay, "fred@example.com", "secret"))
        .await
        .unwrap()
}

#[tokio::test]
async fn attach_send_receive_acknowledge_and_terminate_over_tls() {
    bounded(async {
        let mut relay = FakeRelay::start().await;
        let client = fred(&relay).await;
        assert!(client.tls_active());
        assert_eq!(client.identity(), "fred@example.com");

        let mut attachment = client.attach(endpoint("fred@example.com")).await.unwrap();
        let Seen::Attach {
            endpoint: attached,
            trans_id,
            by_msg: false,
            ..
        } = relay.next_seen().await
        else {
            panic!("attach not seen")
        };
        assert_eq!(attached, endpoint("fred@example.com"));
        assert!((1..=imxp_apex::MAX_TRANS_ID).contains(&trans_id));
        assert_eq!(attachment.endpoints(), [endpoint("fred@example.com")]);

        // Send: the relay gets the text octet for octet.
        attachment
            .send(
                vec![endpoint("barney@example.org")],
                "text/plain; charset=utf-8",
                "hi barney ✓".as_bytes(),
            )
            .await
            .unwrap();
        let Seen::Data(data, Content::Part(part)) = relay.next_seen().await else {
            panic!("data not seen")
        };
        assert_eq!(data.originator.identity, endpoint("fred@example.com"));
        assert_eq!(
            data.recipient_identities().collect::<Vec<_>>(),
            [&endpoint("barney@example.org")]
        );
        assert_eq!(part.content_type(), "text/plain; charset=utf-8");
        assert_eq!(part.body(), "hi barney ✓".as_bytes());

        // Receive: the relay's MSG is answered <ok /> once acknowledged.
        let (answer, received) = tokio::join!(
            relay.deliver_text("barney@example.org", "fred@example.com", "hi fred"),
            async {
                let mut received = attachment.next().await.unwrap();
                assert!(!received.is_answered());
                received.ack().await.unwrap();
                assert!(received.is_answered());
                received
            }
        );
        assert_eq!(answer, Response::Ok);
        assert_eq!(received.originator, endpoint("barney@example.org"));
        assert_eq!(received.recipient, endpoint("fred@example.com"));
        assert_eq!(received.content_type, "text/plain; charset=utf-8");
        assert_eq!(received.text(), Some("hi fred"));
        assert!(received.part.is_some());
        // Acknowledging twice is harmless; rejecting after it is not.
        let mut received = received;
        received.ack().await.unwrap();
        assert!(matches!(
            received.reject(ReplyCode::ACTION_ABORTED, "late").await,
            Err(ClientError::AlreadyAnswered)
        ));

        attachment.terminate().await.unwrap();
        assert_eq!(relay.next_seen().await, Seen::Terminate(trans_id));
        client.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn attach_refusals_carry_the_relays_code() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let client = fred(&relay).await;
        let code = |result: Result<_, ClientError>| match result {
            Err(error) => error.refused_code().map(|c| c.0),
            Ok(_) => None,
        };
        // Someone else's endpoint: 537; a domain the relay does not serve: 553.
        assert_eq!(
            code(client.attach(endpoint("wilma@example.com")).await),
            Some(537)
        );
        assert_eq!(
            code(client.attach(endpoint("fred@example.org")).await),
            Some(553)
        );
        // Already attached (from another session): 554.
        let other = fred(&relay).await;
        let _first = other.attach(endpoint("fred@example.com")).await.unwrap();
        assert_eq!(
            code(client.attach(endpoint("fred@example.com")).await),
            Some(554)
        );
        // The session is still usable after refusals.
        let sub = client
            .attach(endpoint("fred/appl=chat@example.com"))
            .await
            .unwrap();
        assert_eq!(sub.endpoint(), &endpoint("fred/appl=chat@example.com"));
        client.close().await.unwrap();
        other.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn sending_as_an_endpoint_not_attached_is_refused() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let client = fred(&relay).await;
        let attachment = client.attach(endpoint("fred@example.com")).await.unwrap();
        let error = attachment
            .send_as(
                &endpoint("fred/other@example.com"),
                vec![endpoint("barney@example.org")],
                "text/plain",
                b"x",
            )
            .await
            .unwrap_err();
        let ClientError::Refused { code, text } = error else {
            panic!("{error}")
        };
        assert_eq!(code, ReplyCode::NOT_AUTHORIZED);
        assert_eq!(text, "not attached as the originator");
        // An invalid content type never leaves the client.
        let error = attachment
            .send(vec![endpoint("barney@example.org")], "no type", b"x")
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Mime(_)), "{error}");
        client.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_second_endpoint_attaches_by_msg_on_the_same_channel() {
    bounded(async {
        let mut relay = FakeRelay::start().await;
        let client = fred(&relay).await;
        let mut attachment = client.attach(endpoint("fred@example.com")).await.unwrap();
        let Seen::Attach {
            trans_id: first, ..
        } = relay.next_seen().await
        else {
            panic!("attach not seen")
        };
        attachment
            .attach(endpoint("fred/appl=chat@example.com"))
            .await
            .unwrap();
        let Seen::Attach {
            endpoint: second,
            trans_id,
            by_msg: true,
            ..
        } = relay.next_seen().await
        else {
            panic!("attach by MSG not seen")
        };
        assert_eq!(second, endpoint("fred/appl=chat@example.com"));
        assert_ne!(trans_id, first);
        assert_eq!(attachment.endpoints().len(), 2);
        // A refused attach by MSG changes nothing.
        let error = attachment
            .attach(endpoint("wilma@example.com"))
            .await
            .unwrap_err();
        assert_eq!(error.refused_code(), Some(ReplyCode::NOT_AUTHORIZED));
        assert_eq!(attachment.endpoints().len(), 2);

        // Data for the second endpoint arrives on the same channel.
        let (answer, received) = tokio::join!(
            relay.deliver_text(
                "barney@example.org",
                "fred/appl=chat@example.com",
                "to chat"
            ),
            async {
                let mut received = attachment.next().await.unwrap();
                received.ack().await.unwrap();
                received
            }
        );
        assert_eq!(answer, Response::Ok);
        assert_eq!(received.recipient, endpoint("fred/appl=chat@example.com"));
        // It can send as either.
        attachment
            .send_as(
                &endpoint("fred/appl=chat@example.com"),
                vec![endpoint("barney@example.org")],
                "text/plain",
                b"from chat",
            )
            .await
            .unwrap();
        // Ending one attachment keeps the other.
        attachment
            .terminate_endpoint(&endpoint("fred/appl=chat@example.com"))
            .await
            .unwrap();
        assert_eq!(attachment.endpoints(), [endpoint("fred@example.com")]);
        let error = attachment
            .terminate_endpoint(&endpoint("fred/appl=chat@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::NotAttached(_)), "{error}");
        attachment.terminate().await.unwrap();
        client.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn data_for_an_endpoint_not_attached_here_is_refused_and_later_data_still_flows() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let client = fred(&relay).await;
        let mut attachment = client.attach(endpoint("fred@example.com")).await.unwrap();
        // A data for wilma on fred's channel: the client answers ERR 550
        // without bothering the application.
        let (data, content) = imxp_client::payload::text_data(
            &endpoint("barney@example.org"),
            &[endpoint("wilma@example.com")],
            "not for fred",
        );
        let refused = support::reply_of(
            relay
                .deliver_payload(&endpoint("fred@example.com"), data.to_payload(&content))
                .await,
        );
        let Response::Error(error) = refused else {
            panic!("accepted")
        };
        assert_eq!(error.code, ReplyCode::ACTION_NOT_TAKEN);
        assert!(error.text.contains("wilma@example.com"), "{}", error.text);
        // So is garbage.
        let garbage = support::reply_of(
            relay
                .deliver_payload(
                    &endpoint("fred@example.com"),
                    b"Content-Type: application/beep+xml\r\n\r\n<data".to_vec(),
                )
                .await,
        );
        assert!(
            matches!(garbage, Response::Error(ref e) if e.code.0 == 500),
            "{garbage:?}"
        );
        // The next datagram is the first the application sees.
        let (answer, received) = tokio::join!(
            relay.deliver_text("barney@example.org", "fred@example.com", "for fred"),
            async {
                let mut received = attachment.next().await.unwrap();
                received.ack().await.unwrap();
                received
            }
        );
        assert_eq!(answer, Response::Ok);
        assert_eq!(received.text(), Some("for fred"));
        client.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_datagram_dropped_unanswered_is_refused_with_451_and_rejects_carry_their_code() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let client = fred(&relay).await;
        let mut attachment = client.attach(endpoint("fred@example.com")).await.unwrap();
        let (answer, ()) = tokio::join!(
            relay.deliver_text("barney@example.org", "fred@example.com", "dropped"),
            async {
                let received = attachment.next().await.unwrap();
                drop(received);
            }
        );
        let Response::Error(error) = answer else {
            panic!("accepted")
        };
        assert_eq!(error.code, ReplyCode::ACTION_ABORTED);
        let (answer, ()) = tokio::join!(
            relay.deliver_text("barney@example.org", "fred@example.com", "rejected"),
            async {
                let mut received = attachment.next().await.unwrap();
                received
                    .reject(ReplyCode::TRANSACTION_FAILED, "no thanks")
                    .await
                    .unwrap();
                assert!(matches!(
                    received.ack().await,
                    Err(ClientError::AlreadyAnswered)
                ));
            }
        );
        assert_eq!(
            answer,
            Response::Error(imxp_apex::ErrorReply::new(
                ReplyCode::TRANSACTION_FAILED,
                "no thanks"
            ))
        );
        client.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn auto_ack_acknowledges_as_datagrams_are_handed_over() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let client = fred(&relay).await;
        let mut attachment = client
            .attach_with(
                endpoint("fred@example.com"),
                AttachOptions {
                    auto_ack: true,
                    ..AttachOptions::default()
                },
            )
            .await
            .unwrap();
        for n in 0..3 {
            let text = format!("message {n}");
            let (answer, received) = tokio::join!(
                relay.deliver_text("barney@example.org", "fred@example.com", &text),
                attachment.next()
            );
            assert_eq!(answer, Response::Ok);
            let received = received.unwrap();
            assert!(received.is_answered());
            assert_eq!(received.text(), Some(text.as_str()));
        }
        client.close().await.unwrap();
    })
    .await;
}

/// A relay that delivers a datagram again (it stopped before recording
/// the `ok`) repeats its hop identity: the attachment answers the repeat
/// `<ok />` itself and hands over only what is new, even when the text is
/// the same.
#[tokio::test]
async fn a_repeated_delivery_is_answered_but_not_handed_over_again() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let client = fred(&relay).await;
        let seen = std::sync::Arc::new(imxp_client::SeenDeliveries::default());
        let mut attachment = client
            .attach_with(
                endpoint("fred@example.com"),
                AttachOptions {
                    auto_ack: true,
                    seen: seen.clone(),
                    ..AttachOptions::default()
                },
            )
            .await
            .unwrap();
        let fred = endpoint("fred@example.com");
        let delivery = |hop: u8, text: &str| {
            let (mut data, content) = imxp_client::payload::text_data(
                &endpoint("barney@example.org"),
                std::slice::from_ref(&fred),
                text,
            );
            imxp_apex::hop_id::set(&mut data, &[hop; 16]);
            data.to_payload(&content)
        };
        let (answer, received) = tokio::join!(
            relay.deliver_payload(&fred, delivery(1, "hello")),
            attachment.next()
        );
        assert_eq!(support::reply_of(answer), Response::Ok);
        assert_eq!(received.unwrap().hop_id, Some([1; 16]));
        assert!(seen.contains(&[1; 16]));
        // The same delivery again: answered, not handed over.
        let again = relay.deliver_payload(&fred, delivery(1, "hello")).await;
        assert_eq!(support::reply_of(again), Response::Ok);
        // A new datagram with the same text is handed over, and it is the
        // next thing the application sees.
        let (answer, received) = tokio::join!(
            relay.deliver_payload(&fred, delivery(2, "hello")),
            attachment.next()
        );
        assert_eq!(support::reply_of(answer), Response::Ok);
        let received = received.unwrap();
        assert_eq!(received.hop_id, Some([2; 16]));
        assert_eq!(received.text(), Some("hello"));
        client.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_relay_ends_an_attachment() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let client = fred(&relay).await;
        let mut attachment = client.attach(endpoint("fred@example.com")).await.unwrap();
        // An unknown transID: ERR 550.
        let unknown = relay
            .terminate(
                &endpoint("fred@example.com"),
                Some(0x7fff_0000),
                ReplyCode::APEX_OK,
            )
            .await;
        assert!(
            matches!(unknown, Response::Error(ref e) if e.code.0 == 550),
            "{unknown:?}"
        );
        // The attach's transID: <ok />, and the attachment is over.
        let ended = relay
            .terminate(
                &endpoint("fred@example.com"),
                None,
                ReplyCode::ATTACHMENT_OVERRIDDEN,
            )
            .await;
        assert_eq!(ended, Response::Ok);
        assert!(attachment.next().await.is_none());
        assert_eq!(attachment.terminations().len(), 1);
        let termination = &attachment.terminations()[0];
        assert_eq!(termination.endpoint, endpoint("fred@example.com"));
        assert_eq!(termination.code, ReplyCode::ATTACHMENT_OVERRIDDEN);
        assert_eq!(termination.text, "ended by the relay");
        assert!(attachment.endpoints().is_empty());
        client.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn next_event_reports_terminations_without_ending_other_attachments() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let client = fred(&relay).await;
        let mut attachment = client.attach(endpoint("fred@example.com")).await.unwrap();
        attachment
            .attach(endpoint("fred/appl=chat@example.com"))
            .await
            .unwrap();
        let ended = relay
            .terminate(
                &endpoint("fred/appl=chat@example.com"),
                None,
                ReplyCode::APEX_OK,
            )
            .await;
        assert_eq!(ended, Response::Ok);
        let Some(Event::Terminated(termination)) = attachment.next_event().await else {
            panic!("no termination event")
        };
        assert_eq!(termination.endpoint, endpoint("fred/appl=chat@example.com"));
        // fred is still attached and still receives.
        let (answer, received) = tokio::join!(
            relay.deliver_text("barney@example.org", "fred@example.com", "still here"),
            async {
                let mut received = attachment.next().await.unwrap();
                received.ack().await.unwrap();
                received
            }
        );
        assert_eq!(answer, Response::Ok);
        assert_eq!(received.text(), Some("still here"));
        client.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn concurrent_senders_share_one_channel() {
    bounded(async {
        let mut relay = FakeRelay::start().await;
        let client = fred(&relay).await;
        let attachment = client.attach(endpoint("fred@example.com")).await.unwrap();
        let _ = relay.next_seen().await;
        let mut tasks = Vec::new();
        for n in 0..20 {
            let sender = attachment.sender();
            tasks.push(tokio::spawn(async move {
                sender
                    .send(
                        vec![endpoint("barney@example.org")],
                        "application/octet-stream",
                        &[n as u8; 1000],
                    )
                    .await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let mut seen = Vec::new();
        for _ in 0..20 {
            let Seen::Data(_, Content::Part(part)) = relay.next_seen().await else {
                panic!("not data")
            };
            seen.push(part.body()[0]);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..20).collect::<Vec<u8>>());
        client.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_535() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let error = Client::connect(options(&relay, "fred@example.com", "wrong"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ClientError::Authentication { code: 535, .. }),
            "{error}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_tls() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let mut options = options(&relay, "fred@example.com", "secret");
        options.tls = Some((relay.client_tls.clone(), "relay.example.net".into()));
        let error = Client::connect(options).await.unwrap_err();
        assert!(matches!(error, ClientError::Tls(_)), "{error}");
    })
    .await;
}

#[tokio::test]
async fn the_ca_file_helper_trusts_the_relay() {
    bounded(async {
        let relay = FakeRelay::start().await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, &relay.ca_pem).unwrap();
        let mut options = options(&relay, "fred@example.com", "secret");
        options.tls = Some((
            imxp_client::tls::client_config_from_ca_file(&path).unwrap(),
            "localhost".into(),
        ));
        let client = Client::connect(options).await.unwrap();
        assert!(client.tls_active());
        client.close().await.unwrap();
        // Another CA does not.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(&path, other.cert.pem()).unwrap();
        let mut options = options_for(&relay);
        options.tls = Some((
            imxp_client::tls::client_config_from_ca_file(&path).unwrap(),
            "localhost".into(),
        ));
        let error = Client::connect(options).await.unwrap_err();
        assert!(matches!(error, ClientError::Tls(_)), "{error}");
    })
    .await;
}

fn options_for(relay: &FakeRelay) -> ConnectOptions {
    options(relay, "fred@example.com", "secret")
}

#[tokio::test]
async fn plaintext_works_against_a_relay_without_tls_and_tls_is_required_when_asked() {
    bounded(async {
        let relay = FakeRelay::start_with(false).await;
        let mut options = options_for(&relay);
        options.tls = None;
        let client = Client::connect(options).await.unwrap();
        assert!(!client.tls_active());
        let attachment = client.attach(endpoint("fred@example.com")).await.unwrap();
        attachment
            .send(vec![endpoint("barney@example.org")], "text/plain", b"clear")
            .await
            .unwrap();
        client.close().await.unwrap();
        // Asking for TLS from a relay that does not offer it fails.
        let error = Client::connect(options_for(&relay)).await.unwrap_err();
        assert!(matches!(error, ClientError::NotOffered(_)), "{error}");
        // And a TLS relay refuses PLAIN in clear (538).
        let tls_relay = FakeRelay::start().await;
        let mut options = options_for(&tls_relay);
        options.tls = None;
        let error = Client::connect(options).await.unwrap_err();
        assert!(
            matches!(error, ClientError::Authentication { code: 538, .. }),
            "{error}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_relay_is_a_connect_error() {
    bounded(async {
        // Bind then drop to get a port nobody listens on.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let relay = FakeRelay::start().await;
        let mut options = options_for(&relay);
        options.relay = address;
        let error = Client::connect(options).await.unwrap_err();
        assert!(matches!(error, ClientError::Connect { .. }), "{error}");
    })
    .await;
}
