//! A small fake relay for the client's tests, built on imxp-beep's driver:
//! a BEEP listener on 127.0.0.1:0 offering TLS (an rcgen self-signed
//! certificate for `localhost`), SASL PLAIN (after TLS), and the APEX
//! profile. It serves `example.com`, and applies RFC 3340's checks the way
//! the relay does: attach (555, 553, 537, 554), data (537 unless the
//! originator is attached on the channel; 554 for a recipient at
//! [`REFUSED_DOMAIN`]), terminate (550 for an unknown transID). It records
//! what the client did, and can deliver a `data` or a `terminate` to an
//! attached endpoint.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different part

use bytes::Bytes;
use imxp_apex::{Content, Data, Endpoint, ErrorReply, Operation, ReplyCode, Response, Terminate};
use imxp_beep::io::{Channel, ChannelHandle, Connection, DriverConfig, IncomingStart, TlsSetup};
use imxp_beep::tuning::sasl::{AuthContext, PlainServer, SaslServer, SaslServerFactory};
use imxp_beep::{Config, Profile, Role};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// The domain the fake relay serves.
pub const DOMAIN: &str = "example.com";

/// A recipient domain whose data the fake relay refuses with 554.
pub const REFUSED_DOMAIN: &str = "refused.example";

/// Accounts: user → password.
pub const USERS: [(&str, &str); 2] = [
    ("fred@example.com", "secret"),
    ("wilma@example.com", "pebbles"),
];

/// What the fake relay saw the client do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// An accepted attach (by init or MSG).
    Attach {
        endpoint: Endpoint,
        trans_id: u32,
        by_msg: bool,
        /// The attach carried `attachOverride` (RFC 3342 §1).
        take_over: bool,
    },
    /// An accepted data.
    Data(Box<Data>, Content),
    /// An accepted terminate.
    Terminate(u32),
}

/// Where an attached endpoint can be reached.
#[derive(Debug, Clone)]
struct Attached {
    channel: ChannelHandle,
    session: u64,
    channel_number: u32,
    trans_id: u32,
}

#[derive(Debug)]
struct State {
    attached: watch::Sender<HashMap<Endpoint, Attached>>,
    seen: mpsc::UnboundedSender<Seen>,
}

/// A running fake relay.
pub struct FakeRelay {
    /// Its address.
    pub address: String,
    /// The PEM of its (self-signed) certificate: the CA to trust.
    pub ca_pem: String,
    /// A client configuration trusting it.
    pub client_tls: Arc<rustls::ClientConfig>,
    state: Arc<State>,
    /// What clients did, in order.
    pub seen: mpsc::UnboundedReceiver<Seen>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

struct PlainAfterTls {
    require_tls: bool,
}

impl SaslServerFactory for PlainAfterTls {
    fn mechanisms(&self, _: &AuthContext) -> Vec<String> {
        vec!["PLAIN".into()]
    }

    fn start(
        &self,
        _: &str,
        context: &AuthContext,
    ) -> Result<Box<dyn SaslServer>, imxp_beep::ErrorReply> {
        if self.require_tls && !context.tls_active {
            return Err(imxp_beep::ErrorReply::new(
                ReplyCode::ENCRYPTION_REQUIRED,
                "PLAIN requires TLS",
            ));
        }
        Ok(Box::new(PlainServer::new(Arc::new(
            |_: &str, user: &str, password: &str| {
                USERS
                    .iter()
                    .any(|(u, p)| *u == user && *p == password)
                    .then(|| user.to_owned())
            },
        ))))
    }
}

impl FakeRelay {
    /// Starts a fake relay offering TLS (and PLAIN and APEX only after it).
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    /// Starts a fake relay; without TLS it offers PLAIN and APEX in clear.
    pub async fn start_with(tls: bool) -> Self {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let ca_pem = generated.cert.pem();
        let cert = generated.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::try_from(generated.signing_key.serialize_der())
            .unwrap();
        let server_tls = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.clone()], key)
                .unwrap(),
        );
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let client_tls = imxp_client::tls::client_config_with_roots(roots).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            attached: watch::channel(HashMap::new()).0,
            seen: seen_tx,
        });
        let accept_state = state.clone();
        tokio::spawn(async move {
            let mut session = 0u64;
            while let Ok((stream, _)) = listener.accept().await {
                session += 1;
                let mut config = Config::new(Role::Listener);
                config.profiles.push(imxp_apex::PROFILE_URI.into());
                config.profiles_require_tls = tls;
                config.sasl = Some(Arc::new(PlainAfterTls { require_tls: tls }));
                let mut driver = DriverConfig::new(config);
                if tls {
                    driver.tls = TlsSetup::Server(server_tls.clone());
                }
                tokio::spawn(serve(stream, driver, accept_state.clone(), session));
            }
        });
        Self {
            address,
            ca_pem,
            client_tls,
            state,
            seen,
        }
    }

    /// Waits until `endpoint` is attached.
    async fn attached(&self, endpoint: &Endpoint) -> Attached {
        let mut watch = self.state.attached.subscribe();
        let map = watch
            .wait_for(|map| map.contains_key(endpoint))
            .await
            .unwrap();
        map[endpoint].clone()
    }

    /// Waits until `endpoint` is attached, then sends it `payload` as a MSG
    /// on its channel; returns the client's answer.
    pub async fn deliver_payload(
        &self,
        endpoint: &Endpoint,
        payload: Vec<u8>,
    ) -> imxp_beep::io::Response {
        let attached = self.attached(endpoint).await;
        attached
            .channel
            .request(Bytes::from(payload))
            .await
            .unwrap()
    }

    /// Delivers a text datagram from `from` to `to` on `to`'s channel.
    pub async fn deliver_text(&self, from: &str, to: &str, text: &str) -> Response {
        let (data, content) = imxp_client::payload::text_data(
            &Endpoint::parse(from).unwrap(),
            &[Endpoint::parse(to).unwrap()],
            text,
        );
        let to = Endpoint::parse(to).unwrap();
        reply_of(self.deliver_payload(&to, data.to_payload(&content)).await)
    }

    /// Sends `terminate` for `endpoint`'s attach transID (or `trans_id`)
    /// on its channel; returns the client's answer.
    pub async fn terminate(
        &self,
        endpoint: &Endpoint,
        trans_id: Option<u32>,
        code: ReplyCode,
    ) -> Response {
        let attached = self.attached(endpoint).await;
        let terminate = Terminate::with_reason(
            trans_id.unwrap_or(attached.trans_id),
            code,
            "ended by the relay",
        );
        if trans_id.is_none() {
            self.state.attached.send_modify(|map| {
                map.remove(endpoint);
            });
        }
        reply_of(
            attached
                .channel
                .request(Bytes::from(terminate.to_payload()))
                .await
                .unwrap(),
        )
    }

    /// The next thing a client did.
    pub async fn next_seen(&mut self) -> Seen {
        self.seen.recv().await.unwrap()
    }
}

/// Reads the client's RPY or ERR as an APEX response.
pub fn reply_of(response: imxp_beep::io::Response) -> Response {
    match response {
        imxp_beep::io::Response::Reply(payload) => {
            let parsed = Response::parse(&payload).unwrap();
            assert!(parsed.is_ok(), "an <error> in RPY: {parsed:?}");
            parsed
        }
        imxp_beep::io::Response::Error(payload) => {
            let parsed = Response::parse(&payload).unwrap();
            assert!(!parsed.is_ok(), "<ok /> in ERR");
            parsed
        }
        imxp_beep::io::Response::Answers(_) => panic!("answers from an endpoint"),
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    driver: DriverConfig,
    state: Arc<State>,
    session: u64,
) {
    let (connection, mut incoming, task) = Connection::spawn(stream, driver);
    while let Some(start) = incoming.next().await {
        let Some(user) = connection.state().authenticated else {
            start.reject(imxp_beep::ErrorReply::new(
                ReplyCode::AUTH_REQUIRED,
                "authentication required",
            ));
            continue;
        };
        if let Some(channel) = open(start, &user, &state, session).await {
            tokio::spawn(run_channel(channel, user, state.clone(), session));
        }
    }
    let _ = task.await;
    state
        .attached
        .send_modify(|map| map.retain(|_, a| a.session != session));
}

/// RFC 3340 §4.4.1 in order: 555, 553, 537, 554.
fn check_attach(
    state: &State,
    user: &str,
    session: u64,
    channel: u32,
    endpoint: &Endpoint,
    trans_id: u32,
) -> Result<(), ErrorReply> {
    let map = state.attached.borrow();
    if map
        .values()
        .any(|a| a.session == session && a.channel_number == channel && a.trans_id == trans_id)
    {
        return Err(ErrorReply::new(
            ReplyCode::TRANSACTION_IN_PROGRESS,
            "transID in use",
        ));
    }
    if !endpoint.domain().canonical().eq_ignore_ascii_case(DOMAIN) {
        return Err(ErrorReply::new(
            ReplyCode::PARAMETER_INVALID,
            "not served here",
        ));
    }
    if endpoint.base().to_string() != user {
        return Err(ErrorReply::new(ReplyCode::NOT_AUTHORIZED, "access denied"));
    }
    if map.contains_key(endpoint) {
        return Err(ErrorReply::new(
            ReplyCode::TRANSACTION_FAILED,
            "already attached",
        ));
    }
    Ok(())
}

async fn open(start: IncomingStart, user: &str, state: &State, session: u64) -> Option<Channel> {
    let number = start.request.channel;
    let init = start.request.profiles[0].init.clone();
    let mut attached = None;
    let reply = init.map(|init| match Operation::parse_init(&init) {
        Ok(Operation::Attach(attach)) => {
            match check_attach(
                state,
                user,
                session,
                number,
                &attach.endpoint,
                attach.trans_id,
            ) {
                Ok(()) => {
                    attached = Some(attach);
                    Response::Ok
                }
                Err(error) => Response::Error(error),
            }
        }
        Ok(_) => Response::Error(ErrorReply::new(
            ReplyCode::PARAMETER_NOT_IMPLEMENTED,
            "attach only",
        )),
        Err(error) => Response::Error(error.to_error_reply()),
    });
    let profile = match reply {
        Some(reply) => Profile::with_init(imxp_apex::PROFILE_URI, reply.to_xml()),
        None => Profile::new(imxp_apex::PROFILE_URI),
    };
    let channel = start.accept(profile).await.ok()?;
    if let Some(attach) = attached {
        register(
            state,
            &channel.handle(),
            session,
            &attach.endpoint,
            attach.trans_id,
            (false, takes_over(&attach)),
        );
    }
    Some(channel)
}

fn takes_over(attach: &imxp_apex::Attach) -> bool {
    attach
        .options
        .iter()
        .any(|o| o.is_internal(imxp_apex::party::ATTACH_OVERRIDE))
}

fn register(
    state: &State,
    channel: &ChannelHandle,
    session: u64,
    endpoint: &Endpoint,
    trans_id: u32,
    (by_msg, take_over): (bool, bool),
) {
    state.attached.send_modify(|map| {
        map.insert(
            endpoint.clone(),
            Attached {
                channel: channel.clone(),
                session,
                channel_number: channel.number(),
                trans_id,
            },
        );
    });
    let _ = state.seen.send(Seen::Attach {
        endpoint: endpoint.clone(),
        trans_id,
        by_msg,
        take_over,
    });
}

async fn run_channel(mut channel: Channel, user: String, state: Arc<State>, session: u64) {
    let handle = channel.handle();
    let number = handle.number();
    while let Some(message) = channel.next_message().await {
        let result = match Operation::parse(&message.payload) {
            Err(error) => Err(error.to_error_reply()),
            Ok(parsed) => match parsed.operation {
                Operation::Attach(attach) => check_attach(
                    &state,
                    &user,
                    session,
                    number,
                    &attach.endpoint,
                    attach.trans_id,
                )
                .map(|()| {
                    register(
                        &state,
                        &handle,
                        session,
                        &attach.endpoint,
                        attach.trans_id,
                        (true, takes_over(&attach)),
                    )
                }),
                Operation::Terminate(terminate) => {
                    let mut found = false;
                    state.attached.send_modify(|map| {
                        map.retain(|_, a| {
                            let ends = a.session == session
                                && a.channel_number == number
                                && a.trans_id == terminate.trans_id;
                            found |= ends;
                            !ends
                        });
                    });
                    if found {
                        let _ = state.seen.send(Seen::Terminate(terminate.trans_id));
                        Ok(())
                    } else {
                        Err(ErrorReply::new(
                            ReplyCode::ACTION_NOT_TAKEN,
                            "unknown transaction-identifier",
                        ))
                    }
                }
                Operation::Data(data) => {
                    let here = state
                        .attached
                        .borrow()
                        .get(&data.originator.identity)
                        .is_some_and(|a| a.session == session && a.channel_number == number);
                    let refused = data
                        .recipient_identities()
                        .any(|r| r.domain().canonical() == REFUSED_DOMAIN);
                    if refused {
                        Err(ErrorReply::new(
                            ReplyCode::TRANSACTION_FAILED,
                            "policy: no mail to refused.example",
                        ))
                    } else if here {
                        let content = parsed.content.expect("data has content");
                        let _ = state.seen.send(Seen::Data(Box::new(data), content));
                        Ok(())
                    } else {
                        Err(ErrorReply::new(
                            ReplyCode::NOT_AUTHORIZED,
                            "not attached as the originator",
                        ))
                    }
                }
                Operation::Bind(_) => Err(ErrorReply::new(
                    ReplyCode::NOT_AUTHORIZED,
                    "bind is for relays",
                )),
            },
        };
        let sent = match result {
            Ok(()) => {
                handle
                    .reply(message.msgno, Response::Ok.to_payload().into())
                    .await
            }
            Err(error) => {
                handle
                    .reply_error(message.msgno, error.to_payload().into())
                    .await
            }
        };
        if sent.is_err() {
            break;
        }
    }
    state.attached.send_modify(|map| {
        map.retain(|_, a| !(a.session == session && a.channel_number == number))
    });
}
