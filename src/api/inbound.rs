//! Inbound SMS and consent: `POST /api/inbound` takes a message in Sinch's MO callback shape and
//! acts on its keywords; `/api/keywords` sets a plan's opt-out and opt-in words;
//! `/api/contacts/{id}/consent` is a contact's consent history.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, FieldError, Problem};
use super::extract::JsonBody;
use super::validate::Validator;
use crate::domain::ids::ContactId;
use crate::domain::keywords::{ConsentKeywords, ConsentKeywordsError};
use crate::store::{ConsentEvent, InboundMessage, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receive_inbound))
        .routes(routes!(get_keywords, set_keywords))
        .routes(routes!(consent_history))
}

const TAG: &str = "Inbound and consent";

/// An inbound SMS, in the shape of Sinch's MO callback. Its other fields (`sent_at`,
/// `operator_id`, `client_reference`, …) are accepted and ignored.
#[derive(Deserialize, ToSchema)]
pub struct InboundBody {
    /// `mo_text`; other kinds of message are refused.
    #[serde(rename = "type")]
    #[schema(example = "mo_text")]
    pub kind: String,
    /// The platform's id for the message: a message delivered twice is acted on once.
    #[schema(example = "01FC66621VHDBN119Z8PMV1QPQ")]
    pub id: String,
    /// The sender's number (MSISDN, with or without `+`).
    #[schema(example = "+14155552671")]
    pub from: String,
    /// The short code or number the message was sent to.
    #[schema(example = "12345")]
    pub to: String,
    #[schema(example = "STOP")]
    pub body: String,
    #[serde(default)]
    pub received_at: Option<String>,
}

/// What the message did.
#[derive(Serialize, ToSchema)]
pub struct InboundResult {
    pub message_id: String,
    /// The sender's contact (created if the number was new).
    pub contact_id: String,
    /// `opted_out`, `opted_in`, `joined`, `left`, or `none` for a message that is no keyword.
    #[schema(example = "opted_out")]
    pub action: String,
    /// The groups joined or left.
    pub groups: Vec<String>,
    /// True when this message id was seen before: nothing was done again.
    pub duplicate: bool,
}

/// A plan's consent keywords.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Keywords {
    /// Words that opt the sender out of everything (default: the FCC list). Each a single word
    /// of letters or digits, at most 20 characters.
    #[schema(example = json!(["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]))]
    pub opt_out: Vec<String>,
    /// Words that opt the sender back in; the same rules.
    #[schema(example = json!(["START", "UNSTOP"]))]
    pub opt_in: Vec<String>,
}

/// One consent change.
#[derive(Serialize, ToSchema)]
pub struct ConsentEventBody {
    /// `opt_out`, `opt_in`, `join` or `leave`.
    pub event: String,
    /// The group joined or left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// `keyword` (an inbound message), `api`, `import`, `page` or `carrier` (a delivery report).
    pub source: String,
    /// The inbound message that made the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The number the contact had then.
    pub phone: String,
    pub at: String,
}

#[derive(Serialize, ToSchema)]
pub struct ConsentHistory {
    /// Oldest first.
    pub events: Vec<ConsentEventBody>,
}

impl From<ConsentEvent> for ConsentEventBody {
    fn from(event: ConsentEvent) -> Self {
        Self {
            event: event.event,
            group_id: event.group_id,
            source: event.source,
            message_id: event.message_id,
            phone: event.phone,
            at: event.at.to_rfc3339(),
        }
    }
}

/// Receive an inbound SMS
///
/// A message that is, trimmed, case-folded and without trailing punctuation, an opt-out word opts
/// the sender out of everything (memberships are kept); an opt-in word opts them back in. Any
/// other message addressed to a group's `auto_update.to` with its words joins or leaves that
/// group. Opt-out words win over group words. Unknown words change nothing.
#[utoipa::path(
    post, path = "/api/inbound", tag = TAG,
    request_body = InboundBody,
    responses(
        (status = 200, description = "What the message did", body = InboundResult),
        (status = 400, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn receive_inbound(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<InboundBody>,
) -> Result<Json<InboundResult>, ApiError> {
    let mut check = Validator::new();
    if body.kind != "mo_text" {
        check.push(FieldError::constraint(
            "type",
            "only mo_text messages are taken",
        ));
    }
    if body.id.trim().is_empty() || body.id.len() > 100 {
        check.push(FieldError::constraint("id", "must be 1 to 100 characters"));
    }
    let from = check.number("from", &body.from, None);
    let to = body.to.trim();
    if to.is_empty() || to.len() > 20 {
        check.push(FieldError::constraint(
            "to",
            "must be a short code or number",
        ));
    }
    if body.body.chars().count() > 2000 {
        check.push(FieldError::constraint(
            "body",
            "must be at most 2000 characters",
        ));
    }
    check.finish()?;
    let Some(from) = from else {
        return Err(ApiError::Internal);
    };
    let message = InboundMessage {
        id: body.id.trim().to_owned(),
        from,
        to: to.to_owned(),
        body: body.body,
        received_at: body.received_at,
    };
    let id = message.id.clone();
    let (outcome, duplicate) = state.store.process_inbound(&plan.id, &by, message).await?;
    Ok(Json(InboundResult {
        message_id: id,
        contact_id: outcome.contact_id,
        action: outcome.action,
        groups: outcome.groups,
        duplicate,
    }))
}

/// Get the consent keywords
#[utoipa::path(
    get, path = "/api/keywords", tag = TAG,
    responses(
        (status = 200, description = "The plan's keywords", body = Keywords),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_keywords(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
) -> Result<Json<Keywords>, ApiError> {
    let keywords = state.store.consent_keywords(&plan.id).await?;
    Ok(Json(Keywords {
        opt_out: keywords.opt_out().to_vec(),
        opt_in: keywords.opt_in().to_vec(),
    }))
}

/// Set the consent keywords
///
/// Words are single words of letters or digits, at most 20 characters, compared
/// case-insensitively; at least one opt-out word is required, and no word may be in both lists.
/// A refused word is named by its list and position, e.g. `opt_in[1]`.
#[utoipa::path(
    put, path = "/api/keywords", tag = TAG,
    request_body = Keywords,
    responses(
        (status = 200, description = "The plan's keywords", body = Keywords),
        (status = 400, description = "A word is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn set_keywords(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<Keywords>,
) -> Result<Json<Keywords>, ApiError> {
    let keywords = ConsentKeywords::new(&body.opt_out, &body.opt_in).map_err(|error| {
        let field = match &error {
            ConsentKeywordsError::NotAWord { list, index, .. } => {
                format!("{}[{index}]", list.field())
            }
            ConsentKeywordsError::Both { index, .. } => format!("opt_in[{index}]"),
            ConsentKeywordsError::NoOptOut => "opt_out".to_owned(),
        };
        ApiError::invalid(FieldError::constraint(field, error))
    })?;
    state
        .store
        .set_consent_keywords(&plan.id, &by, &keywords)
        .await?;
    Ok(Json(Keywords {
        opt_out: keywords.opt_out().to_vec(),
        opt_in: keywords.opt_in().to_vec(),
    }))
}

/// A contact's consent history
///
/// Every opt-out, opt-in, join and leave, by keyword or API, oldest first.
#[utoipa::path(
    get, path = "/api/contacts/{id}/consent", tag = TAG,
    params(("id" = String, Path, description = "The contact's id")),
    responses(
        (status = 200, description = "The history", body = ConsentHistory),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such contact in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn consent_history(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ConsentHistory>, ApiError> {
    let id = ContactId::parse(&id).ok_or(ApiError::NotFound("contact"))?;
    let events = state
        .store
        .consent_history(&plan.id, &id)
        .await
        .map_err(|error| match error {
            StoreError::NotFound(_) => ApiError::NotFound("contact"),
            other => ApiError::from(other),
        })?;
    Ok(Json(ConsentHistory {
        events: events.into_iter().map(ConsentEventBody::from).collect(),
    }))
}
