//! A plan's sending settings: the frequency cap that keeps marketing batches from texting one
//! person too often.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, FieldError, Problem};
use super::extract::JsonBody;
use crate::domain::sending::{FrequencyCap, FrequencyCapError, SendingSettings};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, set_settings))
}

const TAG: &str = "Sending settings";

/// A plan's sending rules. Each is off while null.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SendingSettingsBody {
    /// At most `messages` marketing messages per number in any `days` days. When a batch is
    /// resolved, numbers that had their share are left out and recorded as skipped with reason
    /// `frequency_cap`. Batches with `"purpose": "transactional"` are neither held to it nor
    /// counted by it.
    #[serde(default)]
    pub frequency_cap: Option<FrequencyCapBody>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct FrequencyCapBody {
    /// 1 to 1000.
    #[schema(example = 3)]
    pub messages: u32,
    /// The rolling period, 1 to 366 days.
    #[schema(example = 7)]
    pub days: u32,
}

impl From<SendingSettings> for SendingSettingsBody {
    fn from(settings: SendingSettings) -> Self {
        SendingSettingsBody {
            frequency_cap: settings.frequency_cap.map(|cap| FrequencyCapBody {
                messages: cap.messages(),
                days: cap.days(),
            }),
        }
    }
}

/// Get the sending settings
#[utoipa::path(
    get, path = "/api/settings/sending", tag = TAG,
    responses(
        (status = 200, description = "The plan's sending settings", body = SendingSettingsBody),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_settings(
    State(state): State<AppState>,
    Authenticated(plan): Authenticated,
) -> Result<Json<SendingSettingsBody>, ApiError> {
    let settings = state.store.sending_settings(&plan.id).await?;
    Ok(Json(settings.into()))
}

/// Set the sending settings
///
/// Replaces them all: a setting left out or null is off. A cap applies to batches resolved
/// from then on.
#[utoipa::path(
    put, path = "/api/settings/sending", tag = TAG,
    request_body = SendingSettingsBody,
    responses(
        (status = 200, description = "The plan's sending settings", body = SendingSettingsBody),
        (status = 400, description = "A setting is out of range", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn set_settings(
    State(state): State<AppState>,
    Authenticated(plan): Authenticated,
    JsonBody(body): JsonBody<SendingSettingsBody>,
) -> Result<Json<SendingSettingsBody>, ApiError> {
    let frequency_cap = body
        .frequency_cap
        .map(|cap| {
            FrequencyCap::new(cap.messages, cap.days).map_err(|error| {
                let field = match error {
                    FrequencyCapError::Messages(_) => "frequency_cap.messages",
                    FrequencyCapError::Days(_) => "frequency_cap.days",
                };
                ApiError::invalid(FieldError::constraint(field, error))
            })
        })
        .transpose()?;
    let settings = SendingSettings { frequency_cap };
    state
        .store
        .set_sending_settings(&plan.id, &settings)
        .await?;
    Ok(Json(settings.into()))
}
