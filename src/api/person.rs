//! A person's export: everything the plan holds about one contact, in one JSON document, for
//! the person who asks what is kept about them.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::contacts::Contact;
use super::error::{ApiError, Problem};
use super::inbound::ConsentEventBody;
use crate::domain::ids::ContactId;
use crate::domain::time::Timestamp;
use crate::store::{ReportState, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export_person))
}

/// Everything held about one person.
#[derive(Serialize, ToSchema)]
pub struct PersonExport {
    pub exported_at: String,
    /// The contact with its fields, consent state and groups.
    pub contact: Contact,
    /// Every consent change, oldest first.
    pub consent: Vec<ConsentEventBody>,
    /// The batches that sent to the contact's number, oldest first.
    pub messages_sent: Vec<MessageSent>,
    /// The messages the number sent to the plan, oldest first.
    pub messages_received: Vec<MessageReceived>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageSent {
    pub batch_id: String,
    /// The batch's text as written (placeholders are filled per recipient when it is sent).
    pub body: String,
    /// The batch's status.
    pub status: String,
    pub created_at: String,
    /// When its recipients were resolved: when it was sent to this number.
    pub resolved_at: Option<String>,
    /// What the provider last reported of this message.
    pub delivery: Option<DeliveryState>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryState {
    pub status: String,
    pub code: Option<i64>,
    pub at: String,
}

impl From<ReportState> for DeliveryState {
    fn from(report: ReportState) -> Self {
        Self {
            status: report.status,
            code: report.code,
            at: report.at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessageReceived {
    /// The SMS platform's id of the message.
    pub id: String,
    /// The number or short code it was sent to.
    pub to: String,
    pub body: String,
    pub at: String,
}

/// Export a person's data
///
/// Everything the plan holds about one contact, as one JSON document: the contact and its
/// groups, its consent history, the batches sent to its number (with their delivery reports)
/// and the messages its number sent. Reads every recorded recipient of the plan: seconds for a
/// plan with millions of them.
#[utoipa::path(
    get, path = "/api/contacts/{id}/export", tag = "Contacts",
    params(("id" = String, Path, description = "The contact's id")),
    responses(
        (status = 200, description = "The person's data", body = PersonExport),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such contact in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn export_person(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<PersonExport>, ApiError> {
    let not_found = |error| match error {
        StoreError::NotFound(_) => ApiError::NotFound("contact"),
        other => ApiError::from(other),
    };
    let id = ContactId::parse(&id).ok_or(ApiError::NotFound("contact"))?;
    let record = state
        .store
        .get_contact(&plan.id, &id)
        .await
        .map_err(not_found)?;
    let groups = state
        .store
        .contact_groups(&plan.id, &id)
        .await
        .map_err(not_found)?;
    let consent = state
        .store
        .consent_history(&plan.id, &id)
        .await
        .map_err(not_found)?;
    let messages = state.store.person_messages(&plan.id, &record.phone).await?;
    Ok(Json(PersonExport {
        exported_at: Timestamp::now().to_rfc3339(),
        contact: Contact::from_record(record, Some(groups)),
        consent: consent.into_iter().map(ConsentEventBody::from).collect(),
        messages_sent: messages
            .sent
            .into_iter()
            .map(|sent| MessageSent {
                batch_id: sent.batch_id.to_string(),
                body: sent.body,
                status: sent.status.as_str().to_owned(),
                created_at: sent.created_at.to_rfc3339(),
                resolved_at: sent.resolved_at.map(Timestamp::to_rfc3339),
                delivery: sent.delivery.map(DeliveryState::from),
            })
            .collect(),
        messages_received: messages
            .received
            .into_iter()
            .map(|received| MessageReceived {
                id: received.id,
                to: received.to,
                body: received.body,
                at: received.at.to_rfc3339(),
            })
            .collect(),
    }))
}
