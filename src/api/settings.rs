//! A plan's sending settings: the frequency cap that keeps marketing batches from texting one
//! person too often, and the quiet hours in which they wait.

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
use crate::domain::quiet::QuietHours;
use crate::domain::sending::{FrequencyCap, FrequencyCapError, QuietHoursSetting, SendingSettings};

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
    /// A daily window in each recipient's local time in which marketing messages wait: a
    /// batch resolved then holds those recipients' messages and hands them over when the
    /// window ends where they are (or records them as expired if the batch's `expire_at`
    /// comes first). A recipient's zone is their contact's `time_zone`, else the zones of their
    /// number's prefix (several for some prefixes: a moment is quiet if it is quiet in any).
    /// Transactional batches are never held.
    #[serde(default)]
    pub quiet_hours: Option<QuietHoursBody>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct QuietHoursBody {
    /// Local time the window starts, `HH:MM` (or `HH:MM:SS`).
    #[schema(example = "21:00")]
    pub start: String,
    /// Local time it ends; before `start` for a window over midnight.
    #[schema(example = "08:00")]
    pub end: String,
    /// The IANA zone of numbers whose own zone is unknown (no contact `time_zone`, a prefix
    /// with no zone); null: such numbers are never held.
    #[serde(default)]
    #[schema(example = "America/New_York")]
    pub fallback_time_zone: Option<String>,
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
            quiet_hours: settings.quiet_hours.map(|quiet| QuietHoursBody {
                start: QuietHours::format_time(quiet.window.start()),
                end: QuietHours::format_time(quiet.window.end()),
                fallback_time_zone: quiet.fallback_zone.map(|zone| zone.name().to_owned()),
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
    Authenticated(plan, _): Authenticated,
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
    Authenticated(plan, by): Authenticated,
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
    let quiet_hours = body.quiet_hours.map(quiet_hours).transpose()?;
    let settings = SendingSettings {
        frequency_cap,
        quiet_hours,
    };
    state
        .store
        .set_sending_settings(&plan.id, &by, &settings)
        .await?;
    Ok(Json(settings.into()))
}

fn quiet_hours(body: QuietHoursBody) -> Result<QuietHoursSetting, ApiError> {
    let time = |field: &'static str, value: &str| {
        QuietHours::parse_time(value)
            .map_err(|error| ApiError::invalid(FieldError::constraint(field, error)))
    };
    let start = time("quiet_hours.start", &body.start)?;
    let end = time("quiet_hours.end", &body.end)?;
    let window = QuietHours::new(start, end)
        .map_err(|error| ApiError::invalid(FieldError::constraint("quiet_hours.end", error)))?;
    let fallback_zone = body
        .fallback_time_zone
        .map(|name| {
            name.parse::<chrono_tz::Tz>().map_err(|_| {
                ApiError::invalid(FieldError::constraint(
                    "quiet_hours.fallback_time_zone",
                    "must be an IANA time zone name, such as \"America/New_York\"",
                ))
            })
        })
        .transpose()?;
    Ok(QuietHoursSetting {
        window,
        fallback_zone,
    })
}
