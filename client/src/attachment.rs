//! One APEX channel with the endpoints attached on it (RFC 3340 §4.4.1):
//! sending `data`, receiving the relay's `data` and `terminate`, ending
//! attachments.
//!
//! A task per attachment reads the channel: it answers what the
//! application need not see (a `terminate` from the relay, a `data` for an
//! endpoint not attached here, anything unreadable) and queues datagrams
//! for [`Attachment::next`]. The queue is bounded; while it is full the
//! task stops reading, so the BEEP window (RFC 3081) makes the relay wait.
//!
//! A relay's `terminate` names the transID of the attach it ends; with
//! transID 0 (all attachments of the session, §4.4.3) each channel's task
//! ends the attachments of its own channel.

use crate::error::ClientError;
use crate::payload::{self, Delivery, Inbound};
use crate::seen::{HopId, SeenDeliveries};
use bytes::Bytes;
use imxp_apex::{
    Attach, Content, Data, Endpoint, ErrorReply, Limits, MimePart, ReplyCode, Terminate,
};
use imxp_beep::io::{Channel, ChannelHandle};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// How an attachment delivers datagrams.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// Acknowledge each datagram as [`Attachment::next`] hands it over
    /// (otherwise the application calls [`Received::ack`]).
    pub auto_ack: bool,
    /// Datagrams read ahead of the application, at most (≥ 1).
    pub queue: usize,
    /// Bounds for parsing the relay's MSGs.
    pub limits: Limits,
    /// Attach with `attachOverride` (RFC 3342 §1): if another application
    /// is attached as the endpoint, the relay ends its attachment (it gets
    /// a 556 `terminate`, see [`Event::Terminated`]) and this one takes
    /// over, along with the data in flight to the old one.
    pub take_over: bool,
    /// The deliveries acknowledged before: a datagram the relay delivers
    /// again is answered `<ok />` without being handed over a second time
    /// ([`crate::seen`]). Share it across reconnections.
    pub seen: Arc<SeenDeliveries>,
}

impl Default for AttachOptions {
    /// Explicit acknowledgement, 16 datagrams read ahead, default limits,
    /// a fresh [`SeenDeliveries`].
    fn default() -> Self {
        Self {
            auto_ack: false,
            queue: 16,
            limits: Limits::default(),
            take_over: false,
            seen: Arc::default(),
        }
    }
}

/// The endpoints attached on one channel and the transIDs used there.
#[derive(Debug, Default)]
struct Attached {
    /// Endpoint and the transID of the attach that made it.
    endpoints: Vec<(Endpoint, u32)>,
    /// Every transID ever used on the channel: never reused, so a late
    /// reply or terminate cannot be mistaken for a newer operation.
    used: HashSet<u32>,
}

#[derive(Debug, Default)]
struct Shared {
    attached: Mutex<Attached>,
}

impl Shared {
    // A std mutex: the critical sections are short and hold no `.await`.
    fn lock(&self) -> MutexGuard<'_, Attached> {
        self.attached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh, unpredictable transID (RFC 3340 §6.1), 1..2147483647.
    fn new_trans_id(&self) -> u32 {
        let mut attached = self.lock();
        loop {
            let candidate = rand::random_range(1..=imxp_apex::MAX_TRANS_ID);
            if attached.used.insert(candidate) {
                return candidate;
            }
        }
    }

    fn is_attached(&self, endpoint: &Endpoint) -> bool {
        self.lock().endpoints.iter().any(|(e, _)| e == endpoint)
    }
}

/// Something the relay did on the attach channel.
#[derive(Debug)]
pub enum Event {
    /// A datagram for an endpoint attached here.
    Data(Box<Received>),
    /// The relay ended an attachment (RFC 3340 §4.4.3), e.g. with 556
    /// when another application attached with `attachOverride`.
    Terminated(Termination),
}

/// An attachment the relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// The endpoint no longer attached.
    pub endpoint: Endpoint,
    /// The reply code the relay gave (250 when it gave none).
    pub code: ReplyCode,
    /// The relay's text (may be empty).
    pub text: String,
}

/// Where the answer to a received datagram goes.
#[derive(Debug)]
enum Answer {
    Owed {
        handle: ChannelHandle,
        msgno: u32,
    },
    Acked,
    Rejected,
    /// Built outside a channel (tests): nothing to answer.
    Detached,
}

/// A datagram the relay delivered. Acknowledge it with [`Received::ack`]
/// once the application has it (the relay then drops its copy), or
/// refuse it with [`Received::reject`]. Dropped unanswered, it is refused
/// with 451 (requested action aborted) so that the relay keeps it and
/// tries again; the replies on a channel go out in MSG order, so an
/// unanswered datagram would hold back the answers to later ones.
#[derive(Debug)]
pub struct Received {
    /// The originator.
    pub originator: Endpoint,
    /// The recipient this application is attached as.
    pub recipient: Endpoint,
    /// The content's media type, e.g. `text/plain; charset=utf-8`.
    pub content_type: String,
    /// The content (transfer encoding undone); see [`Delivery::content`].
    pub content: Bytes,
    /// The MIME content part octet for octet, when the content is one.
    pub part: Option<MimePart>,
    /// The whole `data` element (all recipients, options).
    pub data: Data,
    /// The delivering relay's id for the datagram ([`crate::seen`]), if it
    /// gave one: the same for a repeated delivery.
    pub hop_id: Option<HopId>,
    answer: Answer,
    /// Where an acknowledgement is remembered.
    seen: Option<Arc<SeenDeliveries>>,
}

impl Received {
    fn new(delivery: Delivery, answer: Answer, seen: Option<Arc<SeenDeliveries>>) -> Self {
        let Delivery {
            data,
            recipient,
            content_type,
            content,
            part,
        } = delivery;
        Self {
            originator: data.originator.identity.clone(),
            recipient,
            content_type,
            content,
            part,
            hop_id: imxp_apex::hop_id::of(&data),
            data,
            answer,
            seen,
        }
    }

    /// A datagram not bound to a channel (acknowledging it does nothing):
    /// for tests and for replaying stored datagrams.
    pub fn detached(delivery: Delivery) -> Self {
        Self::new(delivery, Answer::Detached, None)
    }

    /// The content as UTF-8 text, if it is valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.content).ok()
    }

    /// True once acknowledged or refused.
    pub fn is_answered(&self) -> bool {
        !matches!(self.answer, Answer::Owed { .. })
    }

    /// Acknowledges the datagram: RPY `<ok />` (RFC 3340 §4.4.4.2). Calling
    /// it again is harmless; after [`Received::reject`] it fails.
    pub async fn ack(&mut self) -> Result<(), ClientError> {
        if let Some((handle, msgno)) = self.settle(true)? {
            // Remembered before the answer leaves: if the relay never gets
            // it, the delivery it repeats is recognised.
            if let (Some(seen), Some(id)) = (&self.seen, self.hop_id) {
                seen.insert(id);
            }
            handle
                .reply(msgno, Bytes::from_static(imxp_apex::reply::OK_PAYLOAD))
                .await?;
        }
        Ok(())
    }

    /// Refuses the datagram: ERR `<error code=…>text</error>`. A 4xx code
    /// asks the relay to try again later, a 5xx code is final. Calling it
    /// again is harmless; after [`Received::ack`] it fails.
    pub async fn reject(&mut self, code: ReplyCode, text: &str) -> Result<(), ClientError> {
        if let Some((handle, msgno)) = self.settle(false)? {
            let payload = ErrorReply::new(code, text).to_payload();
            handle.reply_error(msgno, payload.into()).await?;
        }
        Ok(())
    }

    /// Records the answer; returns where to send it if it is still owed.
    fn settle(&mut self, ack: bool) -> Result<Option<(ChannelHandle, u32)>, ClientError> {
        let settled = if ack { Answer::Acked } else { Answer::Rejected };
        match std::mem::replace(&mut self.answer, settled) {
            Answer::Owed { handle, msgno } => Ok(Some((handle, msgno))),
            Answer::Acked if ack => Ok(None),
            Answer::Rejected if !ack => Ok(None),
            Answer::Detached => {
                self.answer = Answer::Detached;
                Ok(None)
            }
            previous => {
                self.answer = previous;
                Err(ClientError::AlreadyAnswered)
            }
        }
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        if let Answer::Owed { handle, msgno } =
            std::mem::replace(&mut self.answer, Answer::Detached)
        {
            let payload = ErrorReply::new(
                ReplyCode::ACTION_ABORTED,
                "not processed by the application",
            )
            .to_payload();
            // The reply is queued by the driver; without a runtime it
            // cannot be, and the session's end will free the relay.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { handle.reply_error(msgno, payload.into()).await });
            }
        }
    }
}

/// The sending side of an attachment; cheap to clone, usable from many
/// tasks at once (the relay's replies are matched to each MSG).
#[derive(Debug, Clone)]
pub struct Sender {
    handle: ChannelHandle,
    originator: Endpoint,
}

impl Sender {
    /// The endpoint [`Sender::send`] sends as.
    pub fn originator(&self) -> &Endpoint {
        &self.originator
    }

    /// Sends `body` of type `content_type` to `to` as the attachment's
    /// endpoint; `Ok` once the relay has accepted it durably (RPY
    /// `<ok />`), [`ClientError::Refused`] with the relay's code and text
    /// otherwise.
    pub async fn send(
        &self,
        to: Vec<Endpoint>,
        content_type: &str,
        body: &[u8],
    ) -> Result<(), ClientError> {
        self.send_as(&self.originator, to, content_type, body).await
    }

    /// [`Sender::send`] as `from`, another endpoint attached on this channel.
    pub async fn send_as(
        &self,
        from: &Endpoint,
        to: Vec<Endpoint>,
        content_type: &str,
        body: &[u8],
    ) -> Result<(), ClientError> {
        let (data, content) = payload::build_data(from, &to, content_type, body)?;
        self.send_data(&data, &content).await
    }

    /// Sends a `data` built by the caller (options such as
    /// `statusRequest`, inline or external content, a signed or encrypted
    /// MIME part).
    pub async fn send_data(&self, data: &Data, content: &Content) -> Result<(), ClientError> {
        if data.recipients.is_empty() {
            return Err(ClientError::Protocol("a data needs a recipient".into()));
        }
        let response = self
            .handle
            .request(Bytes::from(data.to_payload(content)))
            .await?;
        payload::outcome(&response)
    }
}

/// An APEX channel with one or more endpoints attached on it.
#[derive(Debug)]
pub struct Attachment {
    sender: Sender,
    shared: Arc<Shared>,
    events: mpsc::Receiver<Event>,
    auto_ack: bool,
    terminations: Vec<Termination>,
}

impl Attachment {
    /// Takes over a channel whose start carried `attach` for `endpoint`
    /// with `trans_id`, accepted by the relay.
    pub(crate) fn start(
        channel: Channel,
        endpoint: Endpoint,
        trans_id: u32,
        options: AttachOptions,
    ) -> Self {
        let shared = Arc::new(Shared::default());
        {
            let mut attached = shared.lock();
            attached.endpoints.push((endpoint.clone(), trans_id));
            attached.used.insert(trans_id);
        }
        let (events_tx, events) = mpsc::channel(options.queue.max(1));
        let sender = Sender {
            handle: channel.handle(),
            originator: endpoint,
        };
        tokio::spawn(read_channel(
            channel,
            shared.clone(),
            events_tx,
            options.limits,
            options.seen,
        ));
        Self {
            sender,
            shared,
            events,
            auto_ack: options.auto_ack,
            terminations: Vec::new(),
        }
    }

    /// A transID for the attach that opens a channel (fresh channel: any
    /// value is unused; it is still unpredictable, RFC 3340 §6.1).
    pub(crate) fn first_trans_id() -> u32 {
        rand::random_range(1..=imxp_apex::MAX_TRANS_ID)
    }

    /// The endpoint the channel was opened with (the default originator).
    pub fn endpoint(&self) -> &Endpoint {
        &self.sender.originator
    }

    /// The endpoints currently attached on this channel.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.shared
            .lock()
            .endpoints
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// A sending handle for other tasks.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// Acknowledge datagrams as [`Attachment::next`] returns them.
    pub fn set_auto_ack(&mut self, auto_ack: bool) {
        self.auto_ack = auto_ack;
    }

    /// Attachments the relay ended so far.
    pub fn terminations(&self) -> &[Termination] {
        &self.terminations
    }

    /// Attaches as one more endpoint on this channel with a MSG `attach`
    /// (RFC 3340 §4.4.1: several attachments per channel are allowed);
    /// [`ClientError::Refused`] with 555, 553, 537 or 554 if refused. The
    /// endpoint counts as attached (in [`Attachment::endpoints`], for
    /// accepting data) from the moment the MSG is sent until a refusal.
    pub async fn attach(&self, endpoint: Endpoint) -> Result<(), ClientError> {
        self.attach_msg(endpoint, false).await
    }

    /// [`Attachment::attach`] with `attachOverride` (RFC 3342 §1): takes
    /// the endpoint over from another application attached as it.
    pub async fn attach_override(&self, endpoint: Endpoint) -> Result<(), ClientError> {
        self.attach_msg(endpoint, true).await
    }

    async fn attach_msg(&self, endpoint: Endpoint, take_over: bool) -> Result<(), ClientError> {
        let trans_id = self.shared.new_trans_id();
        let attach = attach_element(endpoint.clone(), trans_id, take_over);
        // Counted as attached from before the MSG leaves: the relay may
        // deliver right after its <ok />, and the reader task may see that
        // data before this task sees the reply.
        self.shared.lock().endpoints.push((endpoint, trans_id));
        let result = match self
            .sender
            .handle
            .request(Bytes::from(attach.to_payload()))
            .await
        {
            Ok(response) => payload::outcome(&response),
            Err(error) => Err(error.into()),
        };
        if result.is_err() {
            self.shared.lock().endpoints.retain(|(_, t)| *t != trans_id);
        }
        result
    }

    /// See [`Sender::send`].
    pub async fn send(
        &self,
        to: Vec<Endpoint>,
        content_type: &str,
        body: &[u8],
    ) -> Result<(), ClientError> {
        self.sender.send(to, content_type, body).await
    }

    /// See [`Sender::send_as`].
    pub async fn send_as(
        &self,
        from: &Endpoint,
        to: Vec<Endpoint>,
        content_type: &str,
        body: &[u8],
    ) -> Result<(), ClientError> {
        self.sender.send_as(from, to, content_type, body).await
    }

    /// See [`Sender::send_data`].
    pub async fn send_data(&self, data: &Data, content: &Content) -> Result<(), ClientError> {
        self.sender.send_data(data, content).await
    }

    /// The next thing the relay did: a datagram or a termination; `None`
    /// once the channel or session has ended. Datagrams are not
    /// acknowledged here, whatever [`AttachOptions::auto_ack`] says.
    pub async fn next_event(&mut self) -> Option<Event> {
        let event = self.events.recv().await?;
        if let Event::Terminated(termination) = &event {
            self.terminations.push(termination.clone());
        }
        Some(event)
    }

    /// The next datagram (acknowledged first under auto-ack); `None` once
    /// the channel or session has ended or the relay has ended every
    /// attachment on it (see [`Attachment::terminations`]).
    pub async fn next(&mut self) -> Option<Received> {
        loop {
            match self.next_event().await? {
                Event::Data(mut received) => {
                    if self.auto_ack
                        && let Err(error) = received.ack().await
                    {
                        tracing::warn!(%error, "acknowledging a datagram failed");
                    }
                    return Some(*received);
                }
                Event::Terminated(_) => {
                    if self.shared.lock().endpoints.is_empty() {
                        return None;
                    }
                }
            }
        }
    }

    /// Ends the attachment as `endpoint` (MSG `terminate` with its attach's
    /// transID, RFC 3340 §4.4.3); the channel stays open.
    pub async fn terminate_endpoint(&self, endpoint: &Endpoint) -> Result<(), ClientError> {
        let trans_id = self
            .shared
            .lock()
            .endpoints
            .iter()
            .find(|(e, _)| e == endpoint)
            .map(|(_, t)| *t)
            .ok_or_else(|| ClientError::NotAttached(endpoint.to_string()))?;
        let response = self
            .sender
            .handle
            .request(Bytes::from(Terminate::new(trans_id).to_payload()))
            .await?;
        let result = payload::outcome(&response);
        // Ended either way: after <ok />, or the relay no longer knows it.
        self.shared.lock().endpoints.retain(|(_, t)| *t != trans_id);
        result
    }

    /// Ends every attachment on the channel, then closes the channel.
    /// Returns the first refusal, if the relay refused a `terminate`.
    pub async fn terminate(self) -> Result<(), ClientError> {
        let mut first_error = None;
        for endpoint in self.endpoints() {
            if let Err(error) = self.terminate_endpoint(&endpoint).await {
                first_error.get_or_insert(error);
            }
        }
        // Closing may be declined while the relay has a MSG outstanding;
        // the attachments are ended already and the session's release
        // closes the channel in any case.
        if let Err(error) = self.sender.handle.close(ReplyCode::BEEP_OK).await {
            tracing::debug!(%error, "closing the APEX channel");
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// An `attach`, with the `attachOverride` option if `take_over`.
pub(crate) fn attach_element(endpoint: Endpoint, trans_id: u32, take_over: bool) -> Attach {
    let mut attach = Attach::new(endpoint, trans_id);
    if take_over {
        attach.options.push(imxp_apex::ApexOption::internal(
            imxp_apex::party::ATTACH_OVERRIDE,
        ));
    }
    attach
}

/// Reads the channel until it ends: answers terminates and refusals,
/// queues datagrams.
async fn read_channel(
    mut channel: Channel,
    shared: Arc<Shared>,
    events: mpsc::Sender<Event>,
    limits: Limits,
    seen: Arc<SeenDeliveries>,
) {
    let handle = channel.handle();
    while let Some(message) = channel.next_message().await {
        let msgno = message.msgno;
        let answered = match payload::classify(&message.payload, |e| shared.is_attached(e), &limits)
        {
            Inbound::Deliver(delivery)
                if imxp_apex::hop_id::of(&delivery.data).is_some_and(|id| seen.contains(&id)) =>
            {
                tracing::debug!("a delivery acknowledged before, repeated by the relay");
                handle
                    .reply(msgno, Bytes::from_static(imxp_apex::reply::OK_PAYLOAD))
                    .await
            }
            Inbound::Deliver(delivery) => {
                let received = Received::new(
                    *delivery,
                    Answer::Owed {
                        handle: handle.clone(),
                        msgno,
                    },
                    Some(seen.clone()),
                );
                // If the application has dropped the attachment, the
                // datagram comes back and its drop refuses it with 451.
                let _ = events.send(Event::Data(Box::new(received))).await;
                Ok(())
            }
            Inbound::Terminate(terminate) => {
                let ended = end_attachments(&shared, &terminate);
                if ended.is_empty() {
                    let error = ErrorReply::new(
                        ReplyCode::ACTION_NOT_TAKEN,
                        "unknown transaction-identifier",
                    );
                    handle.reply_error(msgno, error.to_payload().into()).await
                } else {
                    let sent = handle
                        .reply(msgno, Bytes::from_static(imxp_apex::reply::OK_PAYLOAD))
                        .await;
                    for endpoint in ended {
                        let _ = events
                            .send(Event::Terminated(Termination {
                                endpoint,
                                code: terminate.code,
                                text: terminate.text.clone(),
                            }))
                            .await;
                    }
                    sent
                }
            }
            Inbound::Refuse(error) => {
                tracing::debug!(code = %error.code, text = %error.text, "refusing a MSG from the relay");
                handle.reply_error(msgno, error.to_payload().into()).await
            }
        };
        if answered.is_err() {
            break;
        }
    }
}

/// Removes the attachments a relay's `terminate` ends (transID 0: all of
/// them) and returns their endpoints.
fn end_attachments(shared: &Shared, terminate: &Terminate) -> Vec<Endpoint> {
    let mut attached = shared.lock();
    let (ended, kept) = std::mem::take(&mut attached.endpoints)
        .into_iter()
        .partition::<Vec<_>, _>(|(_, t)| terminate.is_all() || *t == terminate.trans_id);
    attached.endpoints = kept;
    ended.into_iter().map(|(e, _)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared_with(endpoints: &[(&str, u32)]) -> Shared {
        let shared = Shared::default();
        {
            let mut attached = shared.lock();
            for (e, t) in endpoints {
                attached.endpoints.push((Endpoint::parse(e).unwrap(), *t));
                attached.used.insert(*t);
            }
        }
        shared
    }

    #[test]
    fn a_terminate_ends_the_attachment_with_its_trans_id() {
        let shared = shared_with(&[("fred@example.com", 5), ("wilma@example.com", 9)]);
        let ended = end_attachments(&shared, &Terminate::new(9));
        assert_eq!(ended, [Endpoint::parse("wilma@example.com").unwrap()]);
        assert!(end_attachments(&shared, &Terminate::new(9)).is_empty());
        assert!(shared.is_attached(&Endpoint::parse("fred@example.com").unwrap()));
        assert!(!shared.is_attached(&Endpoint::parse("wilma@example.com").unwrap()));
    }

    #[test]
    fn terminate_zero_ends_all() {
        let shared = shared_with(&[("fred@example.com", 5), ("wilma@example.com", 9)]);
        assert_eq!(end_attachments(&shared, &Terminate::new(0)).len(), 2);
        assert!(shared.lock().endpoints.is_empty());
    }

    #[test]
    fn trans_ids_are_in_range_and_never_reused() {
        let shared = shared_with(&[("fred@example.com", 5)]);
        let mut seen = HashSet::from([5]);
        for _ in 0..1000 {
            let id = shared.new_trans_id();
            assert!((1..=imxp_apex::MAX_TRANS_ID).contains(&id));
            assert!(seen.insert(id), "{id} reused");
        }
    }

    #[tokio::test]
    async fn answering_a_detached_datagram() {
        let (data, content) = payload::text_data(
            &Endpoint::parse("barney@example.org").unwrap(),
            &[Endpoint::parse("fred@example.com").unwrap()],
            "hi",
        );
        let payload = Bytes::from(data.to_payload(&content));
        let Inbound::Deliver(delivery) = payload::classify(&payload, |_| true, &Limits::default())
        else {
            panic!("not delivered")
        };
        let mut received = Received::detached(*delivery);
        assert_eq!(received.text(), Some("hi"));
        assert_eq!(received.originator.to_string(), "barney@example.org");
        assert!(received.is_answered());
        received.ack().await.unwrap();
        received
            .reject(ReplyCode::ACTION_ABORTED, "x")
            .await
            .unwrap();
    }
}
