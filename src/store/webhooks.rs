//! Webhooks: a plan's subscriptions, the outbox of events the store writes with each change, and
//! the deliveries that instances claim, attempt and record.

use async_trait::async_trait;

use super::{Actor, Lease, StoreResult};
use crate::domain::ids::{EventId, PlanId, WebhookId};
use crate::domain::time::Timestamp;
use crate::domain::webhook::EventType;

/// A webhook to make.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<EventType>,
    pub description: Option<String>,
    pub secret: String,
}

/// A partial update of a webhook: `None` leaves a field.
#[derive(Debug, Clone, Default)]
pub struct WebhookUpdate {
    pub url: Option<String>,
    pub events: Option<Vec<EventType>>,
    pub description: Option<Option<String>>,
    /// `true` re-enables a webhook disabled after failing (and clears its failure streak).
    pub enabled: Option<bool>,
    /// A new signing secret.
    pub secret: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WebhookRecord {
    pub id: WebhookId,
    pub url: String,
    pub events: Vec<EventType>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why it was disabled, when Roster disabled it.
    pub disabled_reason: Option<String>,
    /// When its current streak of failed attempts began.
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Retries ran out (24 hours after the event, or after the redelivery asked for).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event's delivery to one webhook, as its log shows it.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub event_id: EventId,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// The last attempt's HTTP status, when the receiver answered.
    pub response_status: Option<i64>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub latency_ms: Option<i64>,
    pub created_at: Timestamp,
    /// When it is attempted next, while pending.
    pub next_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
}

/// Which deliveries of a webhook to list, newest first.
#[derive(Debug, Clone)]
pub struct DeliveryQuery {
    pub status: Option<DeliveryStatus>,
    pub after: Option<String>,
    pub limit: i64,
}

#[derive(Debug, Clone)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryRecord>,
    pub next: Option<String>,
}

/// A delivery claimed by an instance, with what it takes to attempt it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub key: i64,
    pub webhook: i64,
    pub url: String,
    pub secret: String,
    pub event_id: String,
    pub body: String,
    /// Attempts before this one.
    pub attempts: i64,
    pub expires_at: Timestamp,
}

/// How an attempt went.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub key: i64,
    pub webhook: i64,
    /// The receiver's status, when it answered.
    pub response_status: Option<i64>,
    /// `None` when the receiver took it (a 2xx answer).
    pub error: Option<String>,
    pub latency_ms: i64,
    /// When to try again after a failure; `None` gives up (the delivery fails).
    pub retry_at: Option<Timestamp>,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook(
        &self,
        plan: &PlanId,
        by: &Actor,
        webhook: NewWebhook,
    ) -> StoreResult<WebhookRecord>;
    /// The plan's webhooks, oldest first.
    async fn list_webhooks(&self, plan: &PlanId) -> StoreResult<Vec<WebhookRecord>>;
    async fn get_webhook(&self, plan: &PlanId, id: &WebhookId) -> StoreResult<WebhookRecord>;
    async fn update_webhook(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &WebhookId,
        update: WebhookUpdate,
    ) -> StoreResult<WebhookRecord>;
    /// Deletes the webhook and its deliveries.
    async fn delete_webhook(&self, plan: &PlanId, by: &Actor, id: &WebhookId) -> StoreResult<()>;
    /// A page of the webhook's deliveries, newest first.
    async fn webhook_deliveries(
        &self,
        plan: &PlanId,
        id: &WebhookId,
        query: &DeliveryQuery,
    ) -> StoreResult<DeliveryPage>;
    /// Makes a delivery pending again, due now, with another 24 hours of retries.
    async fn redeliver(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &WebhookId,
        event: &EventId,
    ) -> StoreResult<DeliveryRecord>;
    /// Claims up to `limit` due deliveries of enabled webhooks for `lease`: for each webhook,
    /// only the oldest pending delivery of each object, so that an object's events arrive in
    /// order. Deliveries whose retries ran out are marked failed on the way.
    async fn claim_deliveries(
        &self,
        lease: &Lease,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records attempts of deliveries claimed under `lease` (an outcome of a claim that was lost
    /// is dropped). A webhook failing for longer than `disable_after_millis` is disabled.
    async fn record_attempts(
        &self,
        lease: &Lease,
        outcomes: &[AttemptOutcome],
        disable_after_millis: i64,
    ) -> StoreResult<()>;
    /// Removes deliveries finished (delivered or failed) that were made before `before`.
    async fn prune_deliveries(&self, before: Timestamp) -> StoreResult<u64>;
}
