//! The SQL and logic both backends share, written once over a [`Dialect`], one file per entity.

mod audit;
mod batches;
mod confirm;
mod consent;
mod contacts;
mod delivery_reports;
mod erasure;
mod exports;
mod filter;
mod groups;
mod import_prepare;
mod imports;
mod person;
mod plans;
mod seal;
mod series;
mod webhooks;

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::dialect::{Conn, Dialect, RowsAffected};
use super::*;
use crate::domain::algebra::{MembershipChange, MembershipStep};
use crate::domain::auto_update::AutoUpdate;
use crate::domain::batch::{Audience, BatchStatus};
use crate::domain::contact::{
    CustomFields, Email, Gender, OptOutReason, PersonName, TimeZoneName, sort_names,
    stored_sort_names,
};
use crate::domain::filter::{CompareOp, Expr, Field, FilterExpr, Value as FilterValue};
use crate::domain::group::{
    ChildGroupsError, Description, GroupName, GroupStatus, check_child_groups,
};
use crate::domain::ids::{BatchId, ContactId, ExportId, GroupId, ImportId, PlanId, SeriesId};
use crate::domain::keywords::{Consent, ConsentKeywords, GroupRequest, group_request, normalize};
use crate::domain::msisdn::{Msisdn, NumberType, ParsedNumber};
use crate::domain::time::Timestamp;
use crate::domain::webhook::EventType;
use crate::store::audit::Change;
use webhooks::Event;

pub(crate) use batches::{Columns, DetailsRow, Recipient, Wanted};
pub(crate) use contacts::*;
pub(crate) use groups::*;
pub(crate) use import_prepare::*;
pub(crate) use imports::*;
use seal::{CURSOR_SECRET, CursorSeal};

type Args<D> = <<D as Dialect>::Db as Database>::Arguments;
type Row<D> = <<D as Dialect>::Db as Database>::Row;

/// The store over one backend: its [`Dialect`] and the SQL of `sql/` written for any dialect.
#[derive(Clone)]
pub(crate) struct SqlStore<D> {
    pub(crate) dialect: D,
    /// Seals contact keys into cursors; read from `server_secrets` when first needed.
    cursor_seal: Arc<tokio::sync::OnceCell<seal::CursorSeal>>,
}

impl<D> SqlStore<D> {
    pub(crate) fn new(dialect: D) -> Self {
        Self {
            dialect,
            cursor_seal: Arc::default(),
        }
    }
}

/// A JSON document a column holds, read into its type.
fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(text).map_err(|error| sqlx::Error::Decode(Box::new(error)))
}

/// A value as the JSON document a column holds.
fn to_json<T: serde::Serialize>(value: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(value).map_err(|error| sqlx::Error::Encode(Box::new(error)))
}

/// `(SELECT key FROM contact_groups …)`: the key of the plan's group `id`.
fn push_group_key<DB: Database>(builder: &mut sqlx::QueryBuilder<DB>, plan: &PlanId, id: &str)
where
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    builder
        .push("(SELECT key FROM contact_groups WHERE plan_id = ")
        .push_bind(plan.as_str().to_owned())
        .push(" AND id = ")
        .push_bind(id.to_owned())
        .push(")");
}

/// A contact id as `contacts.id` holds it (migration 30): the ULID's 16 bytes.
fn id_bytes(id: &ContactId) -> Vec<u8> {
    id.to_bytes().to_vec()
}

/// A contact id read from `contacts.id`.
fn stored_contact_id(bytes: Vec<u8>) -> Result<ContactId, sqlx::Error> {
    ContactId::from_bytes(&bytes).ok_or_else(|| {
        sqlx::Error::Decode(format!("a stored contact id of {} bytes, not 16", bytes.len()).into())
    })
}

/// Rows of `(id, phone)` read from `contacts`, their ids decoded.
fn stored_id_phones(rows: Vec<(Vec<u8>, String)>) -> Result<Vec<(ContactId, String)>, sqlx::Error> {
    rows.into_iter()
        .map(|(id, phone)| Ok((stored_contact_id(id)?, phone)))
        .collect()
}

/// The sort key of a cursor, as a bound parameter.
fn push_cursor_key<DB: Database>(builder: &mut sqlx::QueryBuilder<DB>, key: &CursorKey)
where
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    match key {
        CursorKey::Text(text) => builder.push_bind(text.clone()),
        CursorKey::Number(number) => builder.push_bind(*number),
    };
}

/// `(SELECT key FROM plans …)`: the key of plan `plan`, which contacts carry instead of its id.
pub(crate) fn push_plan_key<DB: Database>(builder: &mut sqlx::QueryBuilder<DB>, plan: &PlanId)
where
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    builder
        .push("(SELECT key FROM plans WHERE id = ")
        .push_bind(plan.as_str().to_owned())
        .push(")");
}

/// `(SELECT key FROM batches WHERE …)`: a batch's integer key, which the rows kept per batch
/// (its recorded recipients, chunks, skips and delivery reports) name it by.
fn push_batch_key<DB: Database>(builder: &mut sqlx::QueryBuilder<DB>, plan: &PlanId, id: &BatchId)
where
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    builder
        .push("(SELECT key FROM batches WHERE plan_id = ")
        .push_bind(plan.as_str().to_owned())
        .push(" AND id = ")
        .push_bind(id.as_str().to_owned())
        .push(")");
}
