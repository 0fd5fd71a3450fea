//! Sending: the dispatcher that claims due batches, resolves them and hands their recipients to a
//! sender in chunks, recording each chunk before and after the hand-off so that a crash resumes
//! without sending anything twice; and the senders themselves.

pub mod dispatcher;
pub mod http;
pub mod log;

use async_trait::async_trait;

use crate::domain::time::Timestamp;
use crate::store::BatchRecord;

/// Some recipients of a batch, handed over together.
pub struct Chunk<'a> {
    pub batch: &'a BatchRecord,
    /// The chunk's number within the batch, from 0.
    pub index: i64,
    pub recipients: &'a [String],
    /// The text each recipient gets: personalized, and in the batch's encoding (`smart` has
    /// already replaced what it replaces).
    pub bodies: Bodies<'a>,
}

/// The texts of a chunk's messages.
#[derive(Clone, Copy)]
pub enum Bodies<'a> {
    /// One text for every recipient.
    Same(&'a str),
    /// A text per recipient, in the order of `recipients`.
    Each(&'a [String]),
}

impl<'a> Bodies<'a> {
    /// The text of the recipient at `index`.
    pub fn get(&self, index: usize) -> &'a str {
        match self {
            Bodies::Same(text) => text,
            Bodies::Each(texts) => texts.get(index).map_or("", String::as_str),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    /// Worth trying again (a timeout, a 5xx, a full disk) rather than a refusal.
    pub retryable: bool,
}

impl SendError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
}

/// Where messages go. A sender must be able to say, after a crash or an ambiguous failure,
/// which recipients of a chunk it does not have: that is what makes sending exactly once.
#[async_trait]
pub trait Sender: Send + Sync {
    /// What will find the chunk again later; recorded before the hand-off.
    async fn locate(&self, chunk: &Chunk<'_>) -> Result<String, SendError>;
    /// Hands the chunk over.
    async fn deliver(&self, chunk: &Chunk<'_>) -> Result<(), SendError>;
    /// The recipients of the chunk the sender did not get, given what `locate` said and when.
    async fn missing(
        &self,
        chunk: &Chunk<'_>,
        located: &str,
        handed_at: Timestamp,
    ) -> Result<Vec<String>, SendError>;
}
