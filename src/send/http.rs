//! The `http` sender: each chunk becomes one batch on a Sinch-compatible upstream
//! (`POST {url}/xms/v1/{plan}/batches`, bearer token), tagged with a `client_reference` naming the
//! batch and chunk. When it is unclear whether the upstream took a chunk (a timeout, a crash
//! before the answer was recorded), the upstream's batch list filtered by that reference says.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Bodies, Chunk, SendError, Sender};
use crate::domain::time::Timestamp;

pub struct HttpSender {
    client: reqwest::Client,
    batches_url: String,
    token: String,
    /// Where the upstream posts each recipient's final delivery report, when set.
    callback_url: Option<String>,
}

#[derive(Serialize)]
struct UpstreamBatch<'a> {
    to: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    body: &'a str,
    /// Personalized texts, Sinch's way: the body is one placeholder filled per number.
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<serde_json::Value>,
    client_reference: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expire_at: Option<String>,
    /// `per_recipient_final` with a callback URL: one report per recipient, when its message
    /// reached a final state.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_report: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_url: Option<&'a str>,
}

#[derive(Deserialize)]
struct UpstreamList {
    count: i64,
}

/// Longest upstream error text kept in a batch's error.
const MAX_ERROR_TEXT: usize = 500;

impl HttpSender {
    /// `url` is the upstream's base (`https://us.sms.api.sinch.com`), `plan` its service plan id.
    /// With `callback_url`, the upstream is asked to post each recipient's final delivery report
    /// there (Roster's `POST /api/delivery-reports`).
    pub fn new(
        url: &str,
        plan: &str,
        token: &str,
        timeout: Duration,
        callback_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self {
            client,
            batches_url: format!("{}/xms/v1/{plan}/batches", url.trim_end_matches('/')),
            token: token.to_owned(),
            callback_url: callback_url.map(str::to_owned),
        })
    }

    fn reference(chunk: &Chunk<'_>) -> String {
        format!("roster:{}:{}", chunk.batch.id, chunk.index)
    }
}

fn transport_error(error: &reqwest::Error) -> SendError {
    // Timeouts and refused connections may succeed later; so may everything else on the wire.
    SendError::retryable(format!("upstream unreachable: {error}"))
}

#[async_trait]
impl Sender for HttpSender {
    async fn locate(&self, chunk: &Chunk<'_>) -> Result<String, SendError> {
        Ok(serde_json::json!({"client_reference": Self::reference(chunk)}).to_string())
    }

    async fn deliver(&self, chunk: &Chunk<'_>) -> Result<(), SendError> {
        let batch = chunk.batch;
        let (body, parameters) = match chunk.bodies {
            Bodies::Same(text) => (text, None),
            Bodies::Each(texts) => {
                let per_number: serde_json::Map<String, serde_json::Value> = chunk
                    .recipients
                    .iter()
                    .zip(texts)
                    .map(|(to, text)| (to.clone(), serde_json::Value::String(text.clone())))
                    .collect();
                (
                    "${message}",
                    Some(serde_json::json!({ "message": per_number })),
                )
            }
        };
        let request = UpstreamBatch {
            to: chunk.recipients,
            from: batch.from.as_deref(),
            body,
            parameters,
            client_reference: Self::reference(chunk),
            expire_at: batch.expire_at.map(Timestamp::to_rfc3339),
            delivery_report: self.callback_url.as_ref().map(|_| "per_recipient_final"),
            callback_url: self.callback_url.as_deref(),
        };
        let response = self
            .client
            .post(&self.batches_url)
            .bearer_auth(&self.token)
            .json(&request)
            .send()
            .await
            .map_err(|error| transport_error(&error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(MAX_ERROR_TEXT)
            .collect();
        let message = format!("upstream answered {status}: {text}");
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(SendError::retryable(message))
        } else {
            Err(SendError::permanent(message))
        }
    }

    async fn missing(
        &self,
        chunk: &Chunk<'_>,
        _located: &str,
        handed_at: Timestamp,
    ) -> Result<Vec<String>, SendError> {
        // Sinch lists the last 24 hours unless told otherwise.
        let since = handed_at.plus_millis(-3_600_000).to_rfc3339();
        let response = self
            .client
            .get(&self.batches_url)
            .bearer_auth(&self.token)
            .query(&[
                ("client_reference", Self::reference(chunk).as_str()),
                ("start_date", since.as_str()),
                ("page_size", "1"),
            ])
            .send()
            .await
            .map_err(|error| transport_error(&error))?;
        if !response.status().is_success() {
            return Err(SendError::retryable(format!(
                "upstream batch list answered {}",
                response.status()
            )));
        }
        let list: UpstreamList = response
            .json()
            .await
            .map_err(|error| SendError::retryable(format!("unreadable batch list: {error}")))?;
        // The upstream holds a chunk whole or not at all.
        Ok(if list.count > 0 {
            Vec::new()
        } else {
            chunk.recipients.to_vec()
        })
    }
}
