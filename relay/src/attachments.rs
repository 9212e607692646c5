//! Which endpoints are attached, and over which channel (RFC 3340 §4.4.1):
//! local delivery looks endpoints up here. An attachment ends with a
//! `terminate`, or when its channel or session goes away (§6.1.1).

use imxp_beep::io::ChannelHandle;
use std::collections::HashMap;
use std::sync::Mutex;

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
}

impl Attachments {
    /// Attaches `endpoint` unless another application already is, or the
    /// owner's session has `per_session` attachments already. `channel` is
    /// `None` until [`Attachments::activate`].
    pub(crate) fn attach(
        &self,
        endpoint: &str,
        owner: Owner,
        trans_id: u32,
        channel: Option<ChannelHandle>,
        per_session: usize,
    ) -> Result<(), AttachRefused> {
        let mut inner = self.inner.lock().expect("attachments");
        if inner.contains_key(endpoint) {
            return Err(AttachRefused::Taken);
        }
        let on_session = inner
            .values()
            .filter(|a| a.owner.session == owner.session)
            .count();
        if on_session >= per_session {
            return Err(AttachRefused::SessionFull);
        }
        inner.insert(
            endpoint.to_owned(),
            Attachment {
                owner,
                trans_id,
                channel,
            },
        );
        tracing::info!(%endpoint, session = owner.session, channel = owner.channel, "attached");
        Ok(())
    }

    /// Gives the attachments of `owner`'s channel their channel handle once
    /// the channel exists.
    pub(crate) fn activate(&self, owner: Owner, channel: &ChannelHandle) {
        for attachment in self.inner.lock().expect("attachments").values_mut() {
            if attachment.owner == owner && attachment.channel.is_none() {
                attachment.channel = Some(channel.clone());
            }
        }
    }

    /// The channel to deliver to `endpoint`, if attached.
    pub(crate) fn channel(&self, endpoint: &str) -> Option<ChannelHandle> {
        self.inner
            .lock()
            .expect("attachments")
            .get(endpoint)
            .and_then(|a| a.channel.clone())
    }

    /// Ends the attachment made by `trans_id` on `owner`'s channel; returns
    /// the endpoint if there was one.
    pub(crate) fn terminate(&self, owner: Owner, trans_id: u32) -> Option<String> {
        let mut inner = self.inner.lock().expect("attachments");
        let endpoint = inner
            .iter()
            .find(|(_, a)| a.owner == owner && a.trans_id == trans_id)
            .map(|(e, _)| e.clone())?;
        inner.remove(&endpoint);
        tracing::info!(%endpoint, "detached");
        Some(endpoint)
    }

    /// Ends every attachment of a channel (`channel = Some`) or of a whole
    /// session (`None`).
    pub(crate) fn end(&self, session: u64, channel: Option<u32>) {
        self.inner
            .lock()
            .expect("attachments")
            .retain(|endpoint, a| {
                let ends =
                    a.owner.session == session && channel.is_none_or(|c| a.owner.channel == c);
                if ends {
                    tracing::info!(%endpoint, "detached");
                }
                !ends
            });
    }

    /// True if `trans_id` names a live attachment on `owner`'s channel
    /// (RFC 3340 §4.4.1 step 1).
    pub(crate) fn trans_id_in_use(&self, owner: Owner, trans_id: u32) -> bool {
        self.inner
            .lock()
            .expect("attachments")
            .values()
            .any(|a| a.owner == owner && a.trans_id == trans_id)
    }

    /// The endpoints attached on `owner`'s channel.
    pub(crate) fn on_channel(&self, owner: Owner) -> Vec<String> {
        self.inner
            .lock()
            .expect("attachments")
            .iter()
            .filter(|(_, a)| a.owner == owner)
            .map(|(e, _)| e.clone())
            .collect()
    }
}
