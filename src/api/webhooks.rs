//! Webhooks, managed by a plan's admins: where the plan's events are posted, which ones, the log
//! of each delivery and redelivery on demand.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, FieldError, Problem};
use super::extract::JsonBody;
use super::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use super::paging::bounded_number;
use super::validate::{Validator, nullable};
use crate::domain::ids::{EventId, WebhookId};
use crate::domain::time::Timestamp;
use crate::domain::webhook::{EventType, check_url, new_secret};
use crate::store::{
    DeliveryQuery, DeliveryRecord, DeliveryStatus, NewWebhook, WebhookRecord, WebhookUpdate,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

const TAG: &str = "Webhooks";

/// The most webhooks a plan may have.
const MAX_WEBHOOKS: usize = 20;
/// The longest description.
const MAX_DESCRIPTION_CHARS: usize = 500;

#[derive(Serialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    pub description: Option<String>,
    /// `false` once Roster disabled it after failing for long (see `disabled_reason`), or when an
    /// admin did; `PATCH {"enabled": true}` enables it again.
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// When its current streak of failed attempts began (absent after a success).
    pub failing_since: Option<String>,
    pub created_at: String,
    pub modified_at: String,
}

impl From<WebhookRecord> for Webhook {
    fn from(record: WebhookRecord) -> Self {
        Self {
            id: record.id.to_string(),
            url: record.url,
            events: record
                .events
                .iter()
                .map(|kind| kind.as_str().to_owned())
                .collect(),
            description: record.description,
            enabled: record.enabled,
            disabled_reason: record.disabled_reason,
            failing_since: record.failing_since.map(Timestamp::to_rfc3339),
            created_at: record.created_at.to_rfc3339(),
            modified_at: record.modified_at.to_rfc3339(),
        }
    }
}

/// A webhook as a change answers it: with its signing secret when the change made one.
#[derive(Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` and base64: the key of the `webhook-signature` header (Standard Webhooks). Only
    /// in the answer that made it; it is not shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// Where events are posted: http or https, not a private, loopback or link-local address
    /// (unless the operator allows those).
    pub url: String,
    /// At least one of `contact.created`, `contact.updated`, `contact.deleted`,
    /// `consent.changed`, `group.changed`, `import.finished`, `export.finished`, `batch.sent`,
    /// `batch.failed`, `delivery.updated`.
    pub events: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `true` enables a disabled webhook (clearing its failure streak); `false` stops deliveries
    /// to it (events are not kept for it meanwhile).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `true` replaces the signing secret; the answer carries the new one, once.
    #[serde(default)]
    pub rotate_secret: bool,
}

/// One event's delivery to the webhook.
#[derive(Serialize, ToSchema)]
pub struct Delivery {
    /// The event's id: the `webhook-id` header, the same at every attempt.
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (retries ran out).
    pub status: String,
    pub attempts: i64,
    /// The receiver's answer to the last attempt.
    pub response_status: Option<i64>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// How long the last attempt took.
    pub latency_ms: Option<i64>,
    pub created_at: String,
    /// When it is attempted next, while pending.
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
}

impl From<DeliveryRecord> for Delivery {
    fn from(record: DeliveryRecord) -> Self {
        Self {
            event_id: record.event_id.to_string(),
            event_type: record.event_type,
            status: record.status.as_str().to_owned(),
            attempts: record.attempts,
            response_status: record.response_status,
            error: record.error,
            latency_ms: record.latency_ms,
            created_at: record.created_at.to_rfc3339(),
            next_attempt_at: record.next_at.map(Timestamp::to_rfc3339),
            delivered_at: record.delivered_at.map(Timestamp::to_rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
    /// Pass as `next` for the following (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryParams {
    /// `pending`, `delivered` or `failed`.
    status: Option<String>,
    /// Entries per page, 1 to 1000 (default 100).
    limit: Option<String>,
    /// The `next` value of the previous page.
    next: Option<String>,
}

fn webhook_id(id: &str) -> Result<WebhookId, ApiError> {
    WebhookId::parse(id).ok_or(ApiError::NotFound("webhook"))
}

fn check_events(check: &mut Validator, inputs: &[String]) -> Vec<EventType> {
    let mut events = Vec::new();
    for (index, text) in inputs.iter().enumerate() {
        match EventType::parse(text) {
            Some(kind) if !events.contains(&kind) => events.push(kind),
            Some(_) => {}
            None => check.push(FieldError::constraint(
                format!("events[{index}]"),
                format!(
                    "{text:?} is not an event type: use {}",
                    EventType::ALL.map(EventType::as_str).join(", ")
                ),
            )),
        }
    }
    if inputs.is_empty() {
        check.push(FieldError::constraint(
            "events",
            "name at least one event type",
        ));
    }
    events.sort();
    events
}

fn check_description(check: &mut Validator, input: &str) -> Option<String> {
    if input.chars().count() > MAX_DESCRIPTION_CHARS {
        check.push(FieldError::constraint(
            "description",
            format!("is longer than {MAX_DESCRIPTION_CHARS} characters"),
        ));
        return None;
    }
    Some(input.to_owned())
}

fn check_webhook_url(check: &mut Validator, state: &AppState, input: &str) -> Option<String> {
    match check_url(input, state.webhook_allow_private) {
        Ok(url) => Some(url.to_string()),
        Err(error) => {
            check.push(FieldError::constraint("url", error));
            None
        }
    }
}

/// List webhooks
///
/// The plan's webhooks, oldest first, without their secrets. Needs `admin`.
#[utoipa::path(
    get, path = "/api/webhooks", tag = TAG,
    responses(
        (status = 200, description = "The plan's webhooks", body = WebhookList),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token does not have the scope admin", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_webhooks(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
) -> Result<Json<WebhookList>, ApiError> {
    let webhooks = state.store.list_webhooks(&plan.id).await?;
    Ok(Json(WebhookList {
        webhooks: webhooks.into_iter().map(Webhook::from).collect(),
    }))
}

/// Create a webhook
///
/// From now on each event of the types named is posted to the URL, signed with the secret in
/// the answer (shown this once). At most 20 webhooks per plan. Needs `admin`.
#[utoipa::path(
    post, path = "/api/webhooks", tag = TAG,
    request_body = WebhookBody,
    responses(
        (status = 201, description = "The webhook, with its secret", body = WebhookWithSecret),
        (status = 400, description = "A bad URL, event type or description (the field is named)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token does not have the scope admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The plan has 20 webhooks already", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn create_webhook(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<WebhookBody>,
) -> Result<(StatusCode, Json<WebhookWithSecret>), ApiError> {
    let mut check = Validator::new();
    let url = check_webhook_url(&mut check, &state, &body.url);
    let events = check_events(&mut check, &body.events);
    let description = body
        .description
        .as_deref()
        .and_then(|text| check_description(&mut check, text));
    check.finish()?;
    let Some(url) = url else {
        return Err(ApiError::invalid(FieldError::constraint(
            "url",
            "is not valid",
        )));
    };
    if state.store.list_webhooks(&plan.id).await?.len() >= MAX_WEBHOOKS {
        return Err(ApiError::Conflict(format!(
            "the plan has {MAX_WEBHOOKS} webhooks already: delete one first"
        )));
    }
    let secret = new_secret();
    let record = state
        .store
        .create_webhook(
            &plan.id,
            &by,
            NewWebhook {
                url,
                events,
                description,
                secret: secret.clone(),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecret {
            webhook: record.into(),
            secret: Some(secret),
        }),
    ))
}

/// Get a webhook
///
/// Needs `admin`.
#[utoipa::path(
    get, path = "/api/webhooks/{id}", tag = TAG,
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 200, description = "The webhook", body = Webhook),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token does not have the scope admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_webhook(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Webhook>, ApiError> {
    let record = state.store.get_webhook(&plan.id, &webhook_id(&id)?).await?;
    Ok(Json(record.into()))
}

/// Update a webhook
///
/// Changes its URL, events or description; enables or disables it; `rotate_secret` replaces its
/// secret (the answer carries the new one, once). Needs `admin`.
#[utoipa::path(
    patch, path = "/api/webhooks/{id}", tag = TAG,
    params(("id" = String, Path, description = "The webhook's id")),
    request_body = WebhookPatch,
    responses(
        (status = 200, description = "The webhook (with `secret` when it was replaced)", body = WebhookWithSecret),
        (status = 400, description = "A bad URL, event type or description (the field is named)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token does not have the scope admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn update_webhook(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<WebhookPatch>,
) -> Result<Json<WebhookWithSecret>, ApiError> {
    let id = webhook_id(&id)?;
    let mut check = Validator::new();
    let url = body
        .url
        .as_deref()
        .and_then(|url| check_webhook_url(&mut check, &state, url));
    let events = body
        .events
        .as_deref()
        .map(|events| check_events(&mut check, events));
    let description = body.description.map(|text| {
        text.as_deref()
            .and_then(|text| check_description(&mut check, text))
    });
    check.finish()?;
    let secret = body.rotate_secret.then(new_secret);
    let record = state
        .store
        .update_webhook(
            &plan.id,
            &by,
            &id,
            WebhookUpdate {
                url,
                events,
                description,
                enabled: body.enabled,
                secret: secret.clone(),
            },
        )
        .await?;
    Ok(Json(WebhookWithSecret {
        webhook: record.into(),
        secret,
    }))
}

/// Delete a webhook
///
/// No event is posted to it from then on; its delivery log goes with it. Needs `admin`.
#[utoipa::path(
    delete, path = "/api/webhooks/{id}", tag = TAG,
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token does not have the scope admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn delete_webhook(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_webhook(&plan.id, &by, &webhook_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a webhook's deliveries
///
/// Each event posted (or to be posted) to the webhook, newest first: its status, attempts, the
/// receiver's last answer and how long it took. Kept 7 days. Needs `admin`.
#[utoipa::path(
    get, path = "/api/webhooks/{id}/deliveries", tag = TAG,
    params(("id" = String, Path, description = "The webhook's id"), DeliveryParams),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryList),
        (status = 400, description = "A query parameter is invalid (it is named)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token does not have the scope admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_deliveries(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<DeliveryParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    let id = webhook_id(&id)?;
    let status = params
        .status
        .as_deref()
        .filter(|status| !status.is_empty())
        .map(|status| {
            DeliveryStatus::parse(status).ok_or_else(|| {
                ApiError::invalid(FieldError::format(
                    "status",
                    "must be pending, delivered or failed",
                ))
            })
        })
        .transpose()?;
    let query = DeliveryQuery {
        status,
        after: params.next,
        limit: bounded_number("limit", params.limit.as_deref(), 1, MAX_PAGE_SIZE)?
            .unwrap_or(DEFAULT_PAGE_SIZE),
    };
    let page = state
        .store
        .webhook_deliveries(&plan.id, &id, &query)
        .await?;
    Ok(Json(DeliveryList {
        deliveries: page.deliveries.into_iter().map(Delivery::from).collect(),
        next: page.next,
    }))
}

/// Redeliver an event
///
/// Sends the event to the webhook again, now, with another 24 hours of retries, whatever became
/// of it before; the receiver sees the same `webhook-id`. Needs `admin`.
#[utoipa::path(
    post, path = "/api/webhooks/{id}/deliveries/{event_id}/redeliver", tag = TAG,
    params(
        ("id" = String, Path, description = "The webhook's id"),
        ("event_id" = String, Path, description = "The event's id"),
    ),
    responses(
        (status = 202, description = "The delivery, pending again", body = Delivery),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token does not have the scope admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook in this plan, or no delivery of that event to it", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn redeliver(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path((id, event)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    let id = webhook_id(&id)?;
    let event = EventId::parse(&event).ok_or(ApiError::NotFound("delivery"))?;
    let record = state.store.redeliver(&plan.id, &by, &id, &event).await?;
    Ok((StatusCode::ACCEPTED, Json(record.into())))
}
