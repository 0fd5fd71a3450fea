//! Imports and exports as the store sees them: the records of both jobs, the rows an import
//! writes, and the operations that claim, renew and finish a job.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Actor, ContactQuery, ContactRecord, Lease, StoreResult};
use crate::domain::contact::{Email, Gender, PersonName, TimeZoneName};
use crate::domain::group::GroupName;
use crate::domain::ids::{ExportId, GroupId, ImportId, PlanId};
use crate::domain::msisdn::ParsedNumber;
use crate::domain::time::Timestamp;
use crate::export::ExportFormat;
use crate::import::preview::Preview;
use crate::import::read::Detected;

pub use crate::domain::import::ExistingContacts;

/// Where a job is. An import starts `previewed` (uploaded, not committed); an export starts
/// `running`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Previewed,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Previewed => "previewed",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "previewed" => Some(Self::Previewed),
            "running" => Some(Self::Running),
            "done" => Some(Self::Done),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// An uploaded file, before it is committed. The JSON documents are the import layer's own.
#[derive(Debug, Clone)]
pub struct NewImport {
    pub file_name: Option<String>,
    pub file_size: i64,
    pub source: ImportSource,
    pub preview: Preview,
    pub total_rows: i64,
}

/// What an uploaded file was found to be, and the sheet chosen: kept for its commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportSource {
    pub detected: Detected,
    pub sheet: Option<String>,
}

/// How to commit an import: the request as the client gave it, kept and shown back with the
/// import.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = CommitBody)]
pub struct ImportSettings {
    /// Column name → `phone`, `first_name`, `last_name`, `email`, `gender`, `time_zone`,
    /// `opted_out`, `groups`, `fields.NAME` or `ignore`. Columns not named are ignored; without a
    /// mapping the preview's suggestion is used. Exactly one column must be `phone`.
    #[serde(default)]
    #[schema(example = json!({"Mobile": "phone", "First Name": "first_name", "City": "fields.city"}))]
    pub mapping: Option<BTreeMap<String, String>>,
    /// The region of numbers in national format (ISO 3166-1 alpha-2); the plan's by default.
    #[serde(default)]
    pub default_region: Option<String>,
    /// Existing (static, active) groups every imported contact joins.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// Groups by name, which every imported contact joins: an active group of that name if
    /// the plan has one, otherwise a new group.
    #[serde(default)]
    pub group_names: Option<Vec<String>>,
    /// For contacts the plan already has (same number): `update` (default: cells with a value
    /// overwrite), `skip` (left as they are) or `replace_fields` (the row replaces names, email,
    /// gender, time zone and custom fields).
    #[serde(default)]
    pub mode: Option<ExistingContacts>,
    /// `true`: a group with double opt-in gets pending members, each sent the group's
    /// confirmation request once, instead of members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct ImportRecord {
    pub id: ImportId,
    pub status: JobStatus,
    pub file_name: Option<String>,
    pub file_size: i64,
    pub source: ImportSource,
    pub preview: Preview,
    pub total_rows: i64,
    /// The commit request of the latest attempt.
    pub settings: Option<ImportSettings>,
    pub attempt: i64,
    /// Until when the running attempt's claim holds; a running import past it was interrupted.
    pub lease_until: Option<Timestamp>,
    pub rows_read: i64,
    pub report: Option<ImportReport>,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

impl ImportRecord {
    /// Running, but the instance running it stopped renewing its claim (it was killed).
    pub fn interrupted(&self, now: Timestamp) -> bool {
        self.status == JobStatus::Running && self.lease_until.is_some_and(|until| until < now)
    }
}

/// One valid row of an import.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub row: u64,
    pub phone: ParsedNumber,
    pub first_name: Option<PersonName>,
    pub last_name: Option<PersonName>,
    pub email: Option<Email>,
    pub gender: Option<Gender>,
    pub time_zone: Option<TimeZoneName>,
    /// Custom fields with a value in this row.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// `Some(true)` opts the contact out. An import never opts an opted-out contact back in.
    pub opted_out: Option<bool>,
    /// Groups named in the row (a `groups` column): found by name, created if missing.
    pub groups: Vec<GroupName>,
}

/// A row left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RejectedRow {
    pub row: u64,
    pub reason: String,
}

/// How an import's rows are written.
#[derive(Debug, Clone)]
pub struct ImportWrite {
    pub mode: ExistingContacts,
    /// Existing groups every imported contact joins.
    pub groups: Vec<GroupId>,
    /// Groups by name, which every imported contact joins: the plan's oldest active group of
    /// that name, or a new one.
    pub group_names: Vec<GroupName>,
    /// The import being committed, whose status becomes `done` with the contacts; `None` for
    /// a file imported from the command line.
    pub job: Option<(ImportId, Lease, i64)>,
    /// Who imports: the audit log records the import with the rows it wrote.
    pub by: Actor,
    /// Groups with double opt-in get confirmation requests instead of members.
    pub confirm: bool,
}

/// What the reader sends to the writer, in order: rows and rejections as they are read, then
/// `Finish` with the reader's part of the report. Anything else (the channel closing first)
/// abandons the import.
#[derive(Debug)]
pub enum ImportMessage {
    Rows(Vec<ImportRow>),
    Rejected(Vec<RejectedRow>),
    Finish(ImportReport),
}

/// A group an import added contacts to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportedGroup {
    pub id: String,
    pub name: Option<String>,
    /// Created by this import.
    pub created: bool,
    /// Memberships the import added (contacts already in the group are not counted).
    pub added: u64,
    /// With `confirm`, for a group with double opt-in: the confirmations requested instead.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requested: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Data rows read (empty rows are not counted).
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Existing contacts left as they were (mode `skip`).
    pub skipped: u64,
    /// New memberships, over all groups.
    pub added_to_groups: u64,
    /// Rows whose phone number an earlier row of the file already had (the first one counts).
    pub duplicates: u64,
    /// Rows rejected (bad phone number, email, …); each is listed with its reason.
    pub invalid: u64,
    /// Contacts the import opted out.
    pub opted_out: u64,
    /// Opted-out contacts a row would have opted back in: only the contact can do that.
    pub opt_ins_refused: u64,
    pub groups: Vec<ImportedGroup>,
    /// What the importer should know about the file and the run: numbers stored as spreadsheet
    /// numbers, a smart group named by rows, or (first) that PostgreSQL stopped the import for
    /// another write changing the same contacts and it started over.
    pub warnings: Vec<String>,
}

/// The contacts an export holds: a contact search without its page.
#[derive(Debug, Clone)]
pub struct NewExport {
    pub format: String,
    /// The selection as the client gave it, shown back with the export.
    pub selection: ExportRequest,
    /// How many contacts the selection held when the export was requested.
    pub total_rows: i64,
}

#[derive(Debug, Clone)]
pub struct ExportRecord {
    pub id: ExportId,
    pub status: JobStatus,
    pub format: String,
    pub selection: ExportRequest,
    pub lease_until: Option<Timestamp>,
    pub total_rows: Option<i64>,
    pub rows_written: i64,
    pub file_size: Option<i64>,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

impl ExportRecord {
    pub fn interrupted(&self, now: Timestamp) -> bool {
        self.status == JobStatus::Running && self.lease_until.is_some_and(|until| until < now)
    }
}

/// Which contacts to export, and how.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = ExportBody)]
pub struct ExportRequest {
    /// `csv` (default), `xlsx` or `vcf`.
    #[serde(default)]
    pub format: Option<ExportFormat>,
    /// Only the effective members of this group.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Only the contacts matching this filter expression (the contacts search's `q`).
    #[serde(default)]
    pub q: Option<String>,
    /// Only contacts whose first or last name starts with this (the contacts search's `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only numbers starting with this prefix (the contacts search's `phone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Only these contacts (at most 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_ids: Option<Vec<String>>,
}

/// A contact as exported: the record and the names of the groups it is a direct member of.
#[derive(Debug, Clone)]
pub struct ExportContact {
    pub contact: ContactRecord,
    pub groups: Vec<String>,
}

/// Uploads and exports older than this are removed when the plan starts a new one.
pub const JOB_FILES_KEPT_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// Imports and exports. Every method is scoped to one plan.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Stores an uploaded file (read from `file`) and its preview, as an import `previewed`.
    async fn create_import(
        &self,
        plan: &PlanId,
        by: &Actor,
        import: NewImport,
        file: &std::path::Path,
    ) -> StoreResult<ImportRecord>;
    async fn get_import(&self, plan: &PlanId, id: &ImportId) -> StoreResult<ImportRecord>;
    /// The plan's imports, newest first, `limit` from `offset`, and how many there are.
    async fn list_imports(
        &self,
        plan: &PlanId,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<ImportRecord>, i64)>;
    /// A new import, `previewed`, of the file `id` was uploaded with, to be committed with other
    /// settings; `JobState(FileExpired)` once the file is no longer kept.
    async fn copy_import(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &ImportId,
    ) -> StoreResult<ImportRecord>;
    /// Starts a commit: `previewed`, `failed` or interrupted → `running` under a new attempt
    /// number and `lease`. `JobState` if it is running or done.
    async fn start_import(
        &self,
        plan: &PlanId,
        id: &ImportId,
        settings: &ImportSettings,
        lease: &Lease,
    ) -> StoreResult<ImportRecord>;
    /// Copies the uploaded file into `destination`.
    async fn import_file(
        &self,
        plan: &PlanId,
        id: &ImportId,
        destination: &std::path::Path,
    ) -> StoreResult<()>;
    /// Renews the running attempt's claim and records its progress; `LeaseLost` if another
    /// attempt took over or it ended.
    async fn renew_import(
        &self,
        plan: &PlanId,
        id: &ImportId,
        lease: &Lease,
        attempt: i64,
        rows_read: i64,
    ) -> StoreResult<()>;
    /// Records why the running attempt failed (nothing of it was written).
    async fn fail_import(
        &self,
        plan: &PlanId,
        id: &ImportId,
        attempt: i64,
        error: &str,
    ) -> StoreResult<()>;
    /// Rejected rows after `after_row`, in row order.
    async fn import_errors(
        &self,
        plan: &PlanId,
        id: &ImportId,
        after_row: i64,
        limit: i64,
    ) -> StoreResult<Vec<RejectedRow>>;
    /// Writes an import's contacts and memberships in one transaction, as `messages` arrive;
    /// with a job, its status becomes `done` with the report in the same transaction. The
    /// report is the reader's, completed with what was written. A number met again later in
    /// the file is left out, counted as a duplicate and shown to `duplicates` (and stored with
    /// the job's rejected rows).
    async fn write_import(
        &self,
        plan: &PlanId,
        write: ImportWrite,
        messages: tokio::sync::mpsc::Receiver<ImportMessage>,
        duplicates: &mut (dyn for<'row> FnMut(&'row RejectedRow) + Send),
    ) -> StoreResult<ImportReport>;
}

/// Exports: a selection of contacts written out to stored file pieces.
#[async_trait]
pub trait ExportStore: Send + Sync {
    async fn create_export(
        &self,
        plan: &PlanId,
        by: &Actor,
        export: NewExport,
        lease: &Lease,
    ) -> StoreResult<ExportRecord>;
    async fn get_export(&self, plan: &PlanId, id: &ExportId) -> StoreResult<ExportRecord>;
    /// The plan's exports, newest first, `limit` from `offset`, and how many there are.
    async fn list_exports(
        &self,
        plan: &PlanId,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<ExportRecord>, i64)>;
    /// Sends the contacts `query` selects (its window is ignored), in id order, from one
    /// query, in chunks into `sink`; stops quietly if the receiver goes away.
    async fn export_contacts(
        &self,
        plan: &PlanId,
        query: &ContactQuery,
        sink: tokio::sync::mpsc::Sender<Vec<ExportContact>>,
    ) -> StoreResult<()>;
    /// Appends a piece of the export's file and records progress, renewing the claim;
    /// `LeaseLost` if the export is no longer this owner's.
    async fn append_export(
        &self,
        plan: &PlanId,
        id: &ExportId,
        lease: &Lease,
        seq: i64,
        data: &[u8],
        rows_written: i64,
    ) -> StoreResult<()>;
    /// Ends an export: `done` with its size and row count, or `failed` with the reason.
    async fn finish_export(
        &self,
        plan: &PlanId,
        id: &ExportId,
        lease: &Lease,
        outcome: Result<(i64, i64), String>,
    ) -> StoreResult<()>;
    /// One piece of a finished export's file; `None` after the last.
    async fn export_piece(
        &self,
        plan: &PlanId,
        id: &ExportId,
        seq: i64,
    ) -> StoreResult<Option<Vec<u8>>>;
}
