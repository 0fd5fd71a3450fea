//! Delivery reports from the SMS provider, in the shape of Sinch's callbacks: each recipient's
//! state is recorded against the batch, and a code that means the recipient opted out at the
//! carrier opts the contact out.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, FieldError, Problem};
use super::extract::JsonBody;
use crate::domain::delivery::{ReportStatus, roster_reference};
use crate::domain::ids::BatchId;
use crate::domain::time::Timestamp;
use crate::store::{DeliveryReport, ReportOutcome};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_reports))
}

const TAG: &str = "Batches";

/// The most recipients' reports one request may carry.
pub const MAX_REPORTS: usize = 10_000;

#[derive(Serialize, ToSchema)]
pub struct ReportsReceived {
    /// Reports recorded (one older than the report kept, or of a message in transit after a
    /// final report, changes nothing and is not counted).
    pub recorded: u64,
    /// Reports of batches this plan does not have (a batch sent by something else).
    pub unknown_batch: u64,
    /// Reports of numbers the batch did not send to.
    pub not_recipient: u64,
    /// Contacts opted out because the report's code says the recipient opted out.
    pub opted_out: u64,
}

impl From<ReportOutcome> for ReportsReceived {
    fn from(outcome: ReportOutcome) -> Self {
        Self {
            recorded: outcome.recorded,
            unknown_batch: outcome.unknown_batch,
            not_recipient: outcome.not_recipient,
            opted_out: outcome.opted_out,
        }
    }
}

/// Receive delivery reports
///
/// Sinch's delivery report callbacks, as Sinch posts them: a recipient report
/// (`{"type": "recipient_delivery_report_sms", "batch_id", "recipient", "code", "status", "at",
/// "client_reference"}`), a batch report with recipients (`{"type": "delivery_report_sms",
/// "batch_id", "statuses": [{"code", "status", "recipients": [...]}]}`), or an array of them (at
/// most 10,000 recipients). A `client_reference` of the form `roster:{batch}:{chunk}` (the
/// `http` sender tags each hand-over so) names Roster's batch; otherwise `batch_id` is Roster's
/// batch id. Each recipient's last state is kept (a final state is not replaced by a report of
/// the message in transit), shown by the recipients route and counted on the batch; a code that
/// means the recipient opted out (`ROSTER_OPT_OUT_CODES`) opts the contact out, source
/// `carrier`. Reports of other batches and numbers are counted and left.
#[utoipa::path(
    post, path = "/api/delivery-reports", tag = TAG,
    request_body(content = Object, description = "A Sinch delivery report callback, or an array of them"),
    responses(
        (status = 200, description = "What became of the reports", body = ReportsReceived),
        (status = 400, description = "A report is malformed (the field is named), or more than 10,000 recipients' reports", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn receive_reports(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<ReportsReceived>, ApiError> {
    let mut reading = Reading::default();
    match &body {
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                reading.read(item, &format!("[{index}]."))?;
            }
        }
        item => reading.read(item, "")?,
    }
    let mut outcome = state
        .store
        .record_delivery_reports(&plan.id, &by, &reading.reports, &state.opt_out_codes)
        .await?;
    outcome.unknown_batch += reading.foreign;
    Ok(Json(outcome.into()))
}

fn invalid(field: String, detail: &str) -> ApiError {
    ApiError::invalid(FieldError::format(field, detail))
}

fn text<'a>(item: &'a Value, prefix: &str, name: &str) -> Result<Option<&'a str>, ApiError> {
    match item.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid(format!("{prefix}{name}"), "must be a string")),
    }
}

fn required<'a>(item: &'a Value, prefix: &str, name: &str) -> Result<&'a str, ApiError> {
    text(item, prefix, name)?.ok_or_else(|| invalid(format!("{prefix}{name}"), "is required"))
}

fn code(item: &Value, prefix: &str) -> Result<Option<i64>, ApiError> {
    match item.get("code") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid(format!("{prefix}code"), "must be a whole number")),
    }
}

fn status(item: &Value, prefix: &str) -> Result<ReportStatus, ApiError> {
    let text = required(item, prefix, "status")?;
    ReportStatus::parse(text).ok_or_else(|| {
        invalid(
            format!("{prefix}status"),
            "must be one of Queued, Dispatched, Aborted, Cancelled, Rejected, Deleted, \
             Delivered, Failed, Expired, Unknown",
        )
    })
}

/// A recipient as Sinch writes it (`46701234567`, sometimes with its `+`), as E.164.
fn recipient(text: &str, field: String) -> Result<String, ApiError> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(format!("+{digits}"))
    } else {
        Err(invalid(
            field,
            "must be a phone number in international format",
        ))
    }
}

/// The reports of a request, as they are read.
#[derive(Default)]
struct Reading {
    reports: Vec<DeliveryReport>,
    /// Reports whose batch is not one of Roster's ids (counted as of an unknown batch).
    foreign: u64,
}

impl Reading {
    fn push(&mut self, report: Option<DeliveryReport>) -> Result<(), ApiError> {
        let Some(report) = report else {
            self.foreign += 1;
            return Ok(());
        };
        if self.reports.len() >= MAX_REPORTS {
            return Err(invalid(
                "body".into(),
                "holds more than 10,000 recipients' reports: send them in several requests",
            ));
        }
        self.reports.push(report);
        Ok(())
    }

    /// Reads one callback (`prefix` names it in errors).
    fn read(&mut self, item: &Value, prefix: &str) -> Result<(), ApiError> {
        if !item.is_object() {
            let field = prefix.trim_end_matches('.');
            return Err(invalid(
                if field.is_empty() {
                    "body".into()
                } else {
                    field.into()
                },
                "must be a delivery report object",
            ));
        }
        let kind = required(item, prefix, "type")?;
        let upstream = required(item, prefix, "batch_id")?;
        let reference = text(item, prefix, "client_reference")?;
        let (batch, chunk) = match reference.and_then(roster_reference) {
            Some((batch, chunk)) => (batch, Some(chunk)),
            None => (upstream, None),
        };
        // A batch that is not Roster's is counted, not refused: the provider's other callbacks
        // come here too.
        let batch = BatchId::parse(batch);
        let reference = Some(upstream.to_owned());
        let report = |phone, status, code, at| {
            batch.clone().map(|batch| DeliveryReport {
                batch,
                chunk,
                phone,
                status,
                code,
                at,
                reference: reference.clone(),
            })
        };
        match kind {
            "recipient_delivery_report_sms" | "recipient_delivery_report_mms" => {
                let phone = recipient(
                    required(item, prefix, "recipient")?,
                    format!("{prefix}recipient"),
                )?;
                let at = match text(item, prefix, "at")? {
                    Some(at) => Timestamp::parse_rfc3339(at)
                        .map_err(|_| invalid(format!("{prefix}at"), "must be an RFC 3339 time"))?,
                    None => Timestamp::now(),
                };
                self.push(report(
                    phone,
                    status(item, prefix)?,
                    code(item, prefix)?,
                    at,
                ))
            }
            "delivery_report_sms" | "delivery_report_mms" => {
                let statuses = match item.get("statuses") {
                    Some(Value::Array(statuses)) => statuses,
                    _ => return Err(invalid(format!("{prefix}statuses"), "must be an array")),
                };
                let now = Timestamp::now();
                for (index, entry) in statuses.iter().enumerate() {
                    let inner = format!("{prefix}statuses[{index}].");
                    let status = status(entry, &inner)?;
                    let code = code(entry, &inner)?;
                    let Some(Value::Array(numbers)) = entry.get("recipients") else {
                        // A summary report names no recipients: nothing to record.
                        continue;
                    };
                    for (position, number) in numbers.iter().enumerate() {
                        let field = format!("{inner}recipients[{position}]");
                        let Some(number) = number.as_str() else {
                            return Err(invalid(field, "must be a string"));
                        };
                        self.push(report(recipient(number, field)?, status, code, now))?;
                    }
                }
                Ok(())
            }
            _ => Err(invalid(
                format!("{prefix}type"),
                "must be recipient_delivery_report_sms, recipient_delivery_report_mms, \
             delivery_report_sms or delivery_report_mms",
            )),
        }
    }
}
