//! Which endpoints are attached, and over which channel (RFC 3340 §4.4.1):
//! local delivery looks endpoints up here. An attachment ends with a
//! `terminate`, or when its channel or session goes away (§6.1.1), or
//! when another application attaches with `attachOverride` (RFC 3342 §1).
//!
//! Endpoints match exactly, subaddress included (RFC 3340 §2.2):
//! `fred/appl=im@example.com` and `fred@example.com` are two endpoints, each
//! attached, delivered to and held for on its own.

use imxp_beep::io::ChannelHandle;
use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// An attachment began or ended (for the presence service, which keeps a
/// tuple per attached endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AttachmentEvent {
    /// The endpoint (canonical text) is attached now.
    Attached(String),
    /// The endpoint's attachment ended.
    Detached(String),
}

/// Where an attachment was made: a session and a channel on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Owner {
    pub(crate) session: u64,
    pub(crate) channel: u32,
}

struct Attachment {
    owner: Owner,
    trans_id: u32,
    /// `None` while the channel is being created (the attach came in the
    /// `start` init): the endpoint counts as attached but cannot receive yet.
    channel: Option<ChannelHandle>,
    /// Cancelled when the attachment ends, however it ends.
    ended: CancellationToken,
}

/// Where to deliver to an attached endpoint.
pub(crate) enum Lookup {
    /// Nobody is attached as the endpoint.
    Detached,
    /// Attached, but its channel is still being created.
    Pending,
    /// Attached on `channel`; `ended` fires when this attachment ends
    /// (data in flight to it then goes to whoever attached next).
    Ready {
        channel: ChannelHandle,
        ended: CancellationToken,
    },
}

/// The attachment an `attachOverride` displaced.
pub(crate) struct Displaced {
    /// Its attach transID (the `terminate` names it).
    pub(crate) trans_id: u32,
    /// Its channel, if it was created.
    pub(crate) channel: Option<ChannelHandle>,
}

/// Why an attach was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttachRefused {
    /// Another application is attached as the endpoint.
    Taken,
    /// The session holds `limits.max_attachments_per_session` already.
    SessionFull,
}

/// The registry of attached endpoints, keyed by canonical endpoint text.
#[derive(Default)]
pub(crate) struct Attachments {
    // A std mutex: short critical sections, never held across an await.
    inner: Mutex<HashMap<String, Attachment>>,
    /// Where attach and detach events go, if anywhere.
    events: Option<UnboundedSender<AttachmentEvent>>,
}

impl Attachments {
    /// A registry that reports every attach and detach to `events`, in
    /// the order they happen.
    pub(crate) fn with_events(events: UnboundedSender<AttachmentEvent>) -> Self {
        Self {
            inner: Mutex::default(),
            events: Some(events),
        }
    }

    fn report(&self, event: AttachmentEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    /// Attaches `endpoint`. If another application already is, the attach
    /// is refused (554), unless `take_over` (`attachOverride`): then the
    /// old attachment ends and is returned, for the caller to send it the
    /// 556 `terminate`. Refused too if the owner's session has
    /// `per_session` attachments already. `channel` is `None` until
    /// [`Attachments::activate`].
    pub(crate) fn attach(
        &self,
        endpoint: &str,
        owner: Owner,
        trans_id: u32,
        channel: Option<ChannelHandle>,
        per_session: usize,
        take_over: bool,
    ) -> Result<Option<Displaced>, AttachRefused> {
        let mut inner = self.inner.lock();
        let current = inner.get(endpoint).map(|a| a.owner.session);
        if current.is_some() && !take_over {
            return Err(AttachRefused::Taken);
        }
        let on_session = inner
            .values()
            .filter(|a| a.owner.session == owner.session)
            .count()
            - usize::from(current == Some(owner.session));
        if on_session >= per_session {
            return Err(AttachRefused::SessionFull);
        }
        let displaced = inner.remove(endpoint).map(|old| {
            old.ended.cancel();
            tracing::info!(%endpoint, session = old.owner.session, channel = old.owner.channel, "overridden");
            Displaced {
                trans_id: old.trans_id,
                channel: old.channel,
            }
        });
        inner.insert(
            endpoint.to_owned(),
            Attachment {
                owner,
                trans_id,
                channel,
                ended: CancellationToken::new(),
            },
        );
        tracing::info!(%endpoint, session = owner.session, channel = owner.channel, "attached");
        // Sent under the lock, so that events keep the order of changes.
        self.report(AttachmentEvent::Attached(endpoint.to_owned()));
        Ok(displaced)
    }

    /// Gives the attachments of `owner`'s channel their channel handle once
    /// the channel exists.
    pub(crate) fn activate(&self, owner: Owner, channel: &ChannelHandle) {
        for attachment in self.inner.lock().values_mut() {
            if attachment.owner == owner && attachment.channel.is_none() {
                attachment.channel = Some(channel.clone());
            }
        }
    }

    /// Where to deliver to `endpoint` now.
    pub(crate) fn lookup(&self, endpoint: &str) -> Lookup {
        match self.inner.lock().get(endpoint) {
            None => Lookup::Detached,
            Some(Attachment { channel: None, .. }) => Lookup::Pending,
            Some(Attachment {
                channel: Some(channel),
                ended,
                ..
            }) => Lookup::Ready {
                channel: channel.clone(),
                ended: ended.clone(),
            },
        }
    }

    /// How many endpoints are attached (or attaching).
    pub(crate) fn count(&self) -> usize {
        self.inner.lock().len()
    }

    /// Whether anyone is attached as `endpoint`.
    pub(crate) fn is_attached(&self, endpoint: &str) -> bool {
        self.inner.lock().contains_key(endpoint)
    }

    /// Ends the attachment made by `trans_id` on `owner`'s channel; returns
    /// the endpoint if there was one.
    pub(crate) fn terminate(&self, owner: Owner, trans_id: u32) -> Option<String> {
        let mut inner = self.inner.lock();
        let endpoint = inner
            .iter()
            .find(|(_, a)| a.owner == owner && a.trans_id == trans_id)
            .map(|(e, _)| e.clone())?;
        if let Some(old) = inner.remove(&endpoint) {
            old.ended.cancel();
        }
        tracing::info!(%endpoint, "detached");
        self.report(AttachmentEvent::Detached(endpoint.clone()));
        Some(endpoint)
    }

    /// Ends every attachment of a channel (`channel = Some`) or of a whole
    /// session (`None`).
    pub(crate) fn end(&self, session: u64, channel: Option<u32>) {
        self.inner.lock().retain(|endpoint, a| {
            let ends = a.owner.session == session && channel.is_none_or(|c| a.owner.channel == c);
            if ends {
                a.ended.cancel();
                tracing::info!(%endpoint, "detached");
                if let Some(events) = &self.events {
                    let _ = events.send(AttachmentEvent::Detached(endpoint.clone()));
                }
            }
            !ends
        });
    }

    /// True if `trans_id` names a live attachment on `owner`'s channel
    /// (RFC 3340 §4.4.1 step 1).
    pub(crate) fn trans_id_in_use(&self, owner: Owner, trans_id: u32) -> bool {
        self.inner
            .lock()
            .values()
            .any(|a| a.owner == owner && a.trans_id == trans_id)
    }

    /// The endpoints attached on `owner`'s channel.
    pub(crate) fn on_channel(&self, owner: Owner) -> Vec<String> {
        self.inner
            .lock()
            .iter()
            .filter(|(_, a)| a.owner == owner)
            .map(|(e, _)| e.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRED: &str = "fred@example.com";

    fn owner(session: u64) -> Owner {
        Owner {
            session,
            channel: 1,
        }
    }

    #[test]
    fn second_attach_is_refused_unless_it_overrides() {
        let attachments = Attachments::default();
        assert!(matches!(
            attachments.attach(FRED, owner(1), 1, None, 16, false),
            Ok(None)
        ));
        assert!(
            attachments
                .attach(FRED, owner(2), 2, None, 16, false)
                .is_err()
        );
        // The subaddress is another endpoint.
        assert!(matches!(
            attachments.attach("fred/appl=im@example.com", owner(2), 2, None, 16, false),
            Ok(None)
        ));
        let Lookup::Pending = attachments.lookup(FRED) else {
            panic!("attached, channel not created yet");
        };
        let displaced = attachments
            .attach(FRED, owner(2), 3, None, 16, true)
            .unwrap()
            .expect("the first attachment is displaced");
        assert_eq!(displaced.trans_id, 1);
        // The old owner's terminate no longer finds it; the new one's does.
        assert_eq!(attachments.terminate(owner(1), 1), None);
        assert!(!attachments.trans_id_in_use(owner(1), 1));
        attachments.end(1, None);
        assert!(attachments.is_attached(FRED));
        assert_eq!(attachments.terminate(owner(2), 3).as_deref(), Some(FRED));
        assert!(!attachments.is_attached(FRED));
        assert!(matches!(attachments.lookup(FRED), Lookup::Detached));
    }

    #[test]
    fn attach_and_detach_are_reported_in_order() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let attachments = Attachments::with_events(tx);
        attachments
            .attach(FRED, owner(1), 1, None, 16, false)
            .unwrap();
        attachments
            .attach("wilma@example.com", owner(1), 2, None, 16, false)
            .unwrap();
        attachments.terminate(owner(1), 2);
        attachments
            .attach(FRED, owner(2), 3, None, 16, true)
            .unwrap();
        attachments.end(2, None);
        let events: Vec<AttachmentEvent> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(
            events,
            vec![
                AttachmentEvent::Attached(FRED.into()),
                AttachmentEvent::Attached("wilma@example.com".into()),
                AttachmentEvent::Detached("wilma@example.com".into()),
                AttachmentEvent::Attached(FRED.into()),
                AttachmentEvent::Detached(FRED.into()),
            ]
        );
    }

    #[test]
    fn an_override_within_the_session_does_not_count_twice() {
        let attachments = Attachments::default();
        attachments
            .attach(FRED, owner(1), 1, None, 1, false)
            .unwrap();
        assert!(matches!(
            attachments.attach("wilma@example.com", owner(1), 2, None, 1, false),
            Err(AttachRefused::SessionFull)
        ));
        // The same session takes its own endpoint over: still one.
        assert!(
            attachments
                .attach(FRED, owner(1), 3, None, 1, true)
                .unwrap()
                .is_some()
        );
    }
}
