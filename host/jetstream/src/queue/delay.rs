//! A queue's delayed messages: stored under the delayed subject, held back
//! by the delays consumer (a nak with the time left), and moved to the
//! ready messages by the host that pops once their time came.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use async_nats::jetstream::message::AckKind;

use super::wire::ByteLimit;
use super::{ENQUEUED, ID, Inner, NOT_BEFORE, header_u64, now_ms};
use crate::JsError;

/// The most delayed messages one look moves.
const MOVES_PER_LOOK: usize = 64;

impl Inner {
    /// Moves the delayed messages whose time came to the ready ones (one
    /// round trip when none is).
    pub(super) async fn move_due(&self) -> Result<(), JsError> {
        let fetched = self
            .fetch(&self.delays, MOVES_PER_LOOK, ByteLimit::Any, None)
            .await?;
        for message in fetched {
            self.move_or_hold_back(message).await?;
        }
        Ok(())
    }

    /// Moves the delayed messages as their time comes, until `until`: the
    /// servers hold the fetch open and give a message back when its nak's
    /// delay ends.
    pub(super) async fn move_due_until(&self, until: tokio::time::Instant) -> Result<(), JsError> {
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let fetched = self
                .fetch(&self.delays, MOVES_PER_LOOK, ByteLimit::Any, Some(left))
                .await?;
            for message in fetched {
                self.move_or_hold_back(message).await?;
            }
        }
    }

    /// Moves `message` to the ready messages if its time came, or holds it
    /// back for the time left.
    async fn move_or_hold_back(&self, message: jetstream::Message) -> Result<(), JsError> {
        let headers = message.headers.clone().unwrap_or_default();
        let not_before = header_u64(&headers, NOT_BEFORE).unwrap_or(0);
        let now = now_ms();
        if not_before > now {
            // Lost, the servers deliver it again after MOVE_WAIT.
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_millis(not_before - now))))
                .await;
            return Ok(());
        }
        let seq = message
            .info()
            .map_err(|e| JsError::Server(format!("a delivery without its info: {e}")))?
            .stream_sequence;
        let mut ready = HeaderMap::new();
        ready.insert(ID, seq.to_string().as_str());
        let enqueued = header_u64(&headers, ENQUEUED).unwrap_or(0);
        ready.insert(ENQUEUED, enqueued.to_string().as_str());
        // Once, though a host dies between the two steps and another moves
        // it again.
        ready.insert("Nats-Msg-Id", format!("due-{seq}").as_str());
        self.publish(
            &self.work_names,
            self.work_names.subject.clone(),
            ready,
            message.payload.clone(),
        )
        .await?;
        self.remove(&message).await
    }
}
