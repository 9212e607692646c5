//! An in-memory initiator/listener pair with a simulated clock.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different part

use bytes::BytesMut;
use imxp_beep::{Config, Event, Role, Session, SessionError};
use std::time::{Duration, Instant};

pub const APP: &str = "http://example.com/beep/ECHO";

pub struct Pair {
    pub initiator: Session,
    pub listener: Session,
    pub now: Instant,
    pub initiator_events: Vec<Event>,
    pub listener_events: Vec<Event>,
    /// Octets moved initiator → listener and listener → initiator.
    pub wire: (Vec<u8>, Vec<u8>),
    /// Largest chunk delivered per `handle_input` call (to exercise splits).
    pub chunk: usize,
    /// Release consumed payload at once (the application keeps up).
    pub auto_consume: bool,
}

pub fn config(role: Role) -> Config {
    let mut config = Config::new(role);
    config.profiles.push(APP.into());
    config
}

impl Pair {
    pub fn new(initiator: Config, listener: Config) -> Self {
        let now = Instant::now();
        Self {
            initiator: Session::new(initiator, now),
            listener: Session::new(listener, now),
            now,
            initiator_events: Vec::new(),
            listener_events: Vec::new(),
            wire: (Vec::new(), Vec::new()),
            chunk: usize::MAX,
            auto_consume: true,
        }
    }

    /// A pair with greetings exchanged.
    pub fn greeted(initiator: Config, listener: Config) -> Self {
        let mut pair = Self::new(initiator, listener);
        pair.run().unwrap();
        assert!(matches!(
            pair.initiator_events.remove(0),
            Event::Greeting(_)
        ));
        assert!(matches!(pair.listener_events.remove(0), Event::Greeting(_)));
        pair
    }

    /// Moves bytes both ways until neither side has anything to send.
    pub fn run(&mut self) -> Result<(), (Role, SessionError)> {
        for _ in 0..100_000 {
            let a = self.step_direction(true)?;
            let b = self.step_direction(false)?;
            if !a && !b {
                return Ok(());
            }
        }
        panic!("pair did not quiesce");
    }

    /// One transmit round in each direction; true if anything moved.
    pub fn step(&mut self) -> Result<bool, (Role, SessionError)> {
        let a = self.step_direction(true)?;
        let b = self.step_direction(false)?;
        Ok(a || b)
    }

    fn step_direction(&mut self, from_initiator: bool) -> Result<bool, (Role, SessionError)> {
        let mut out = BytesMut::new();
        let (from, to, role, log) = if from_initiator {
            (
                &mut self.initiator,
                &mut self.listener,
                Role::Listener,
                &mut self.wire.0,
            )
        } else {
            (
                &mut self.listener,
                &mut self.initiator,
                Role::Initiator,
                &mut self.wire.1,
            )
        };
        let sent = from.poll_transmit(&mut out);
        log.extend_from_slice(&out);
        for piece in out.chunks(self.chunk.max(1)) {
            to.handle_input(self.now, piece).map_err(|e| (role, e))?;
        }
        self.drain_events();
        Ok(sent)
    }

    pub fn drain_events(&mut self) {
        for (session, events) in [
            (&mut self.initiator, &mut self.initiator_events),
            (&mut self.listener, &mut self.listener_events),
        ] {
            while let Some(event) = session.poll_event() {
                if self.auto_consume {
                    match &event {
                        Event::Message {
                            channel, payload, ..
                        }
                        | Event::Reply {
                            channel, payload, ..
                        }
                        | Event::Answer {
                            channel, payload, ..
                        } => session.consumed(*channel, payload.len()),
                        _ => {}
                    }
                }
                events.push(event);
            }
        }
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Opens a channel on APP from the initiator, accepted by the listener.
    pub fn open_app_channel(&mut self) -> u32 {
        let channel = self
            .initiator
            .start_channel(vec![imxp_beep::Profile::new(APP)], None)
            .unwrap();
        self.run().unwrap();
        let request = self
            .listener_events
            .drain(..)
            .find_map(|e| match e {
                Event::StartRequested(r) => Some(r),
                _ => None,
            })
            .expect("start requested");
        assert_eq!(request.channel, channel);
        self.listener
            .accept_start(channel, request.profiles[0].clone())
            .unwrap();
        self.run().unwrap();
        assert!(
            self.initiator_events
                .drain(..)
                .any(|e| matches!(e, Event::ChannelStarted { channel: c, .. } if c == channel))
        );
        channel
    }
}
