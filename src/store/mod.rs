//! Storage: one [`Store`] trait, implemented over SQLite (one instance, the default) and over
//! PostgreSQL (several instances sharing a database). All SQL lives under this module.
//!
//! `sql/` holds the SQL and logic both backends share, written once over a [`dialect::Dialect`];
//! `sqlite/` and `postgres/` hold only what the dialects disagree on: connecting, locking, the
//! hottest reads, and passing a list of values as one parameter.

pub mod audit;
mod dialect;
pub mod jobs;
mod postgres;
mod sql;
mod sqlite;
pub mod webhooks;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::domain::algebra::MembershipChange;
use crate::domain::auto_update::AutoUpdate;
use crate::domain::batch::{Audience, BatchStatus};
use crate::domain::contact::{CustomFields, Email, Gender, OptOutReason, PersonName, TimeZoneName};
use crate::domain::delivery::{OptOutCodes, ReportStatus};
use crate::domain::filter::FilterExpr;
use crate::domain::group::{ChildGroupsError, Description, GroupName, GroupStatus};
use crate::domain::ids::{BatchId, ContactId, GroupId, PlanId, SeriesId};
use crate::domain::keywords::ConsentKeywords;
use crate::domain::message::{EncodingUsed, PartsTally, SkipReason};
use crate::domain::msisdn::ParsedNumber;
use crate::domain::quiet::ZoneSet;
use crate::domain::recurrence::SeriesStatus;
use crate::domain::scope::Scopes;
use crate::domain::sending::{Purpose, SendingSettings};
use crate::domain::sms::{EncodingChoice, Segments};
use crate::domain::template::Parameters;
use crate::domain::time::Timestamp;

pub use audit::{AUDIT_OBJECTS, Actor, AuditEntry, AuditPage, AuditQuery, AuditStore, Channel};
pub use jobs::*;
use sql::SqlStore;
pub use webhooks::{
    AttemptOutcome, ClaimedDelivery, DeliveryPage, DeliveryQuery, DeliveryRecord, DeliveryStatus,
    NewWebhook, WebhookRecord, WebhookStore, WebhookUpdate,
};

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The group (or plan) addressed does not exist in this plan.
    /// The entity addressed does not exist in this plan.
    #[error("{} not found", .0.name())]
    NotFound(Entity),
    /// Groups named in a request body (child groups, add/remove from group) that do not exist.
    #[error("unknown groups: {0:?}")]
    UnknownGroups(Vec<GroupId>),
    /// With the names of the groups on the path, to name them in the message.
    #[error("invalid child groups: {0:?}")]
    ChildGroups(
        ChildGroupsError,
        std::collections::BTreeMap<GroupId, String>,
    ),
    /// A cursor the store did not issue for this list of this plan.
    #[error("not a cursor of this list")]
    ForeignCursor,
    /// `If-Match` named a version other than the current one.
    #[error("the group changed since it was read (now version {current})")]
    VersionMismatch { current: i64 },
    /// The group is deleted; only restoring it (status ACTIVE) or purging it is allowed.
    #[error("the group is deleted")]
    GroupDeleted,
    /// A smart group's members follow its rule; they cannot be changed directly.
    #[error("smart group {0:?}")]
    SmartGroup(GroupRef),
    /// A rule was given by a partial update to a group that has static members.
    #[error("the group has static members")]
    RuleOverMembers,
    /// Confirmation was asked for a group without double opt-in.
    #[error("the group has no double opt-in")]
    NoDoubleOptIn,
    /// The number was erased at its owner's request; it comes back only by their own opt-in.
    #[error("the number was erased")]
    Erased,
    /// Another contact of the plan already has this phone number.
    #[error("contact {0} already has this phone number")]
    DuplicatePhone(ContactId),
    /// Contacts named in a request that do not exist in the plan.
    #[error("unknown contacts: {0:?}")]
    UnknownContacts(Vec<ContactId>),
    /// The batch has reached an end (sent, failed or canceled) and cannot change.
    #[error("the batch is already {}", .0.as_str())]
    BatchFinished(BatchStatus),
    /// The series is canceled or finished, or not in the state the change needs.
    #[error("the series is {}", .0.as_str())]
    SeriesState(SeriesStatus),
    /// The batch has no recorded recipients yet: they are resolved when it is sent.
    #[error("the batch's recipients are resolved when it is sent")]
    NotResolved,
    /// This instance's claim on a batch ended (it expired and another instance took the batch
    /// over, or the batch was canceled): it must stop sending it.
    #[error("the claim on the batch was lost")]
    LeaseLost,
    /// The import is not in a state that allows the operation.
    #[error("import conflict: {0:?}")]
    JobState(JobConflict),
    /// A file of the job could not be read or written.
    #[error("file error: {0}")]
    File(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// No write could start within the write wait ([`StoreOptions::write_wait`]).
    #[error("the database is busy: {cause}; waited {waited:?}")]
    Busy { cause: BusyCause, waited: Duration },
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A read run on the calling thread (SQLite's hottest reads) failed.
    #[error("database error: {0}")]
    InlineRead(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// What a [`StoreError::NotFound`] did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Plan,
    Token,
    Group,
    Contact,
    Batch,
    Series,
    Import,
    Export,
    Webhook,
    Delivery,
}

impl Entity {
    pub fn name(self) -> &'static str {
        match self {
            Entity::Plan => "plan",
            Entity::Token => "token",
            Entity::Group => "group",
            Entity::Contact => "contact",
            Entity::Batch => "batch",
            Entity::Series => "series",
            Entity::Import => "import",
            Entity::Export => "export",
            Entity::Webhook => "webhook",
            Entity::Delivery => "delivery",
        }
    }
}

/// How the request named a smart group it tried to change the members of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    /// The group the request addresses.
    Addressed,
    /// One of several groups, by id.
    Id(GroupId),
    /// A group an imported row names.
    Name(String),
}

/// Why an import cannot be committed or go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobConflict {
    /// It is already committed.
    Committed,
    /// Another commit of it is running.
    Committing,
    /// Its uploaded file is no longer kept.
    FileExpired,
    /// Its reader stopped before the end of the file.
    Abandoned,
    /// A contact it matched changed number while it ran.
    ContactChanged(String),
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub id: PlanId,
    pub name: String,
    pub default_region: Option<String>,
    pub created_at: Timestamp,
}

/// Who changed a contact, as its consent history records an opt-out or opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSource {
    /// A client of the API.
    Api,
    /// An operator on the web page.
    Page,
}

impl ChangeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Page => "page",
        }
    }
}

/// A browser signing in to the web page with a plan's token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub plan: PlanId,
    pub id_hash: String,
    pub token_hash: String,
    pub csrf: String,
    pub expires_at: Timestamp,
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub plan: Plan,
    pub token_hash: String,
    pub token_name: Option<String>,
    /// What the session's token may do: the page may do no more.
    pub scopes: Scopes,
    pub csrf: String,
}

/// What a new token is called and may do.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub name: Option<String>,
    pub scopes: Scopes,
}

impl TokenGrant {
    /// A token with every right, as tokens were before scopes.
    pub fn full() -> Self {
        Self {
            name: None,
            scopes: Scopes::FULL,
        }
    }
}

/// A token as listed: never the token itself, which only its creator saw.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// The first 12 characters of the token's SHA-256 in hex.
    pub id: String,
    pub name: Option<String>,
    pub scopes: Scopes,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// Characters of a token's hash that name it.
pub const TOKEN_ID_CHARS: usize = 12;

/// A group as stored, with its size (distinct effective members) and child groups.
#[derive(Debug, Clone)]
pub struct GroupRecord {
    pub id: GroupId,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: GroupStatus,
    pub size: i64,
    pub child_groups: Vec<GroupId>,
    pub auto_update: Option<AutoUpdate>,
    /// A smart group's rule (filter language source); its members are the contacts matching it.
    pub rule: Option<String>,
    /// Incremented on every change to the group's definition or direct members; the `ETag`.
    pub version: i64,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
}

/// Everything a group is defined by: used to create one, and to replace one (PUT).
#[derive(Debug, Clone, Default)]
pub struct GroupDefinition {
    pub name: Option<GroupName>,
    pub description: Option<Description>,
    pub members: BTreeSet<ParsedNumber>,
    pub child_groups: BTreeSet<GroupId>,
    pub auto_update: Option<AutoUpdate>,
    /// Makes the group smart: members are computed, `members` must be empty.
    pub rule: Option<FilterExpr>,
}

/// A partial update (PATCH, or Sinch's POST update). `None` leaves a field as it is;
/// `Some(None)` clears it.
#[derive(Debug, Clone)]
pub struct GroupUpdate {
    pub name: Option<Option<GroupName>>,
    pub description: Option<Option<Description>>,
    pub auto_update: Option<Option<AutoUpdate>>,
    pub child_groups: Option<BTreeSet<GroupId>>,
    /// Changes a smart group's rule; `Some(None)` makes it a static group with no members.
    pub rule: Option<Option<FilterExpr>>,
    /// `Some(Active)` restores a soft-deleted group.
    pub status: Option<GroupStatus>,
    pub members: MembershipChange<ParsedNumber>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Active,
    Deleted,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOrder {
    CreatedAt,
    Name,
    Size,
}

/// The position after the last row of a page, for keyset pagination: the sort key of that row
/// and what breaks ties between equal keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: CursorKey,
    pub tie: CursorTie,
}

/// What orders rows with equal sort keys: a group's public id, or a contact's key, sealed by
/// the store (contact cursors issued before the key was sealed in hold the contact's id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorTie {
    Id(String),
    Sealed([u8; 16]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorKey {
    Text(String),
    Number(i64),
}

/// Which page of a list to read. Lists ordered by more than their id page by a [`Cursor`];
/// a group's members, ordered by contact id, page after a contact id.
#[derive(Debug, Clone)]
pub enum Window<C = Cursor> {
    /// Keyset pagination: `limit` rows after `after` (or from the start).
    After { after: Option<C>, limit: i64 },
    /// Offset pagination, for simple clients and the Sinch surface.
    Offset { offset: i64, limit: i64 },
}

#[derive(Debug, Clone)]
pub struct GroupQuery {
    pub status: StatusFilter,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    /// Only the child groups of this group.
    pub child_of: Option<GroupId>,
    pub order: GroupOrder,
    pub descending: bool,
    pub window: Window,
}

#[derive(Debug, Clone)]
pub struct GroupPage {
    pub groups: Vec<GroupRecord>,
    /// How many groups match the filters, over all pages.
    pub total: i64,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
}

/// A member of a group, as the members page shows it.
#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub contact_id: ContactId,
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub opted_out: bool,
}

/// A group a contact is a direct member of, named with its status: a deleted group keeps its
/// members (for its restore) but resolves to no one.
#[derive(Debug, Clone)]
pub struct GroupMembership {
    pub id: GroupId,
    pub name: Option<String>,
    pub status: GroupStatus,
}

/// A join waiting for its number's confirmation (double opt-in).
#[derive(Debug, Clone)]
pub struct PendingMember {
    pub contact_id: ContactId,
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub opted_out: bool,
    pub requested_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A batch that sent to a person's number, with what the provider reported of it.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub batch_id: BatchId,
    /// The batch's body, placeholders and all (a personalized text is not kept).
    pub body: String,
    pub status: BatchStatus,
    pub created_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub delivery: Option<ReportState>,
}

/// A message a person sent to the plan (an inbound message from their number).
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub id: String,
    pub to: String,
    pub body: String,
    pub at: Timestamp,
}

/// The messages between the plan and one number.
#[derive(Debug, Clone, Default)]
pub struct PersonMessages {
    pub sent: Vec<SentMessage>,
    pub received: Vec<ReceivedMessage>,
}

/// A contact as stored.
#[derive(Debug, Clone)]
pub struct ContactRecord {
    pub id: ContactId,
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub gender: Option<String>,
    /// An IANA time zone name, as [`TimeZoneName`] spells it.
    pub time_zone: Option<String>,
    pub fields: CustomFields,
    /// libphonenumber's type (`mobile`, `fixed_line`, …); absent if the number was not valid.
    pub number_type: Option<String>,
    pub country: Option<String>,
    pub opted_out: bool,
    pub opted_out_at: Option<Timestamp>,
    pub opted_out_reason: Option<String>,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
}

/// Everything a contact is defined by: used to create one, and to replace one (PUT).
#[derive(Debug, Clone)]
pub struct ContactDefinition {
    pub phone: ParsedNumber,
    pub first_name: Option<PersonName>,
    pub last_name: Option<PersonName>,
    pub email: Option<Email>,
    pub gender: Option<Gender>,
    pub time_zone: Option<TimeZoneName>,
    pub fields: CustomFields,
    pub opted_out: bool,
    pub opted_out_reason: Option<OptOutReason>,
}

/// A partial update of a contact: `None` leaves a field, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ContactPatch {
    pub phone: Option<ParsedNumber>,
    pub first_name: Option<Option<PersonName>>,
    pub last_name: Option<Option<PersonName>>,
    pub email: Option<Option<Email>>,
    pub gender: Option<Option<Gender>>,
    pub time_zone: Option<Option<TimeZoneName>>,
    /// Replaces all custom fields.
    pub fields: Option<CustomFields>,
    pub opted_out: Option<bool>,
    pub opted_out_reason: Option<Option<OptOutReason>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactOrder {
    Name,
    CreatedAt,
    ModifiedAt,
}

/// Search and filter of a plan's contacts. Every condition present must hold.
#[derive(Debug, Clone)]
pub struct ContactQuery {
    /// Case-insensitive prefix of "first last" or "last first".
    pub name_prefix: Option<String>,
    /// Case-insensitive substring of the full name (not indexed: scans the plan).
    pub name_contains: Option<String>,
    /// Prefix of the E.164 number.
    pub phone_prefix: Option<String>,
    /// Case-insensitive equality.
    pub email: Option<String>,
    pub gender: Option<String>,
    pub valid: Option<bool>,
    pub number_type: Option<String>,
    /// Valid mobile numbers (sms-capable), or not.
    pub sms_capable: Option<bool>,
    /// Effective members of this group.
    pub group: Option<GroupId>,
    pub opted_out: Option<bool>,
    /// `fields.NAME = "value"` conditions.
    pub custom: Vec<(String, String)>,
    /// A filter-language expression (`q`).
    pub filter: Option<FilterExpr>,
    /// Only these contacts.
    pub ids: Option<Vec<ContactId>>,
    pub order: ContactOrder,
    pub descending: bool,
    pub window: Window,
    /// Count the matches over all pages (costs a second query).
    pub with_total: bool,
}

impl ContactQuery {
    /// Every contact of the plan, or only a group's effective members, or only those matching
    /// a filter (or both), oldest first: what an export holds.
    pub fn selection(group: Option<GroupId>, filter: Option<FilterExpr>) -> Self {
        Self {
            name_prefix: None,
            name_contains: None,
            phone_prefix: None,
            email: None,
            gender: None,
            valid: None,
            number_type: None,
            sms_capable: None,
            group,
            opted_out: None,
            custom: Vec::new(),
            filter,
            ids: None,
            order: ContactOrder::CreatedAt,
            descending: false,
            window: Window::Offset {
                offset: 0,
                limit: 0,
            },
            with_total: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ContactPage {
    pub contacts: Vec<ContactRecord>,
    pub total: Option<i64>,
    pub next: Option<Cursor>,
}

/// An inbound SMS (MO), as the SMS platform delivers it.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    /// The platform's id for the message; a redelivery carries the same id.
    pub id: String,
    pub from: ParsedNumber,
    /// The short code or number the message was sent to.
    pub to: String,
    pub body: String,
    pub received_at: Option<String>,
}

/// What an inbound message did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InboundOutcome {
    pub contact_id: String,
    /// `opted_out`, `opted_in`, `joined`, `left`, `none`, or `erased` (the number was erased and the
    /// message is not an opt-in: nothing was done or kept).
    pub action: String,
    /// The groups joined or left.
    pub groups: Vec<String>,
}

/// One consent change.
#[derive(Debug, Clone)]
pub struct ConsentEvent {
    pub id: String,
    pub contact_id: String,
    pub phone: String,
    /// `opt_out`, `opt_in`, `join` or `leave`.
    pub event: String,
    pub group_id: Option<String>,
    /// `keyword`, `api`, `import` or `page`.
    pub source: String,
    pub message_id: Option<String>,
    pub at: Timestamp,
}

/// A group's row and its child ids, as the one-statement group read returns them (through sqlx
/// or, for SQLite's hot path, on the calling thread).
#[derive(sqlx::FromRow)]
pub(crate) struct GroupRow {
    id: String,
    name: Option<String>,
    description: Option<String>,
    status: String,
    size: i64,
    auto_update: Option<String>,
    rule: Option<String>,
    version: i64,
    created_at: i64,
    modified_at: i64,
    /// Comma-separated, in id order (ULIDs hold no commas).
    child_ids: Option<String>,
}

impl GroupRow {
    fn into_record(self) -> StoreResult<GroupRecord> {
        let auto_update = self
            .auto_update
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        Ok(GroupRecord {
            id: GroupId::from_trusted(self.id),
            name: self.name,
            description: self.description,
            status: GroupStatus::parse(&self.status).unwrap_or(GroupStatus::Deleted),
            size: self.size,
            child_groups: self
                .child_ids
                .iter()
                .flat_map(|ids| ids.split(','))
                .map(|id| GroupId::from_trusted(id.to_owned()))
                .collect(),
            auto_update,
            rule: self.rule,
            version: self.version,
            created_at: Timestamp::from_millis(self.created_at),
            modified_at: Timestamp::from_millis(self.modified_at),
        })
    }
}

/// A page of members as the backends' `MEMBER_PAGE` statement returns it: one JSON array of
/// `[id, phone, first_name, last_name, opted_out]`, the id in hex (NULL when the page is empty).
fn members_from_json(page: Option<String>) -> StoreResult<Vec<MemberRecord>> {
    type Row = (String, String, Option<String>, Option<String>, bool);
    let rows: Vec<Row> = match page {
        Some(json) => {
            serde_json::from_str(&json).map_err(|error| sqlx::Error::Decode(Box::new(error)))?
        }
        None => Vec::new(),
    };
    rows.into_iter()
        .map(|(id, phone, first_name, last_name, opted_out)| {
            let contact_id = hex::decode(&id)
                .ok()
                .and_then(|bytes| ContactId::from_bytes(&bytes))
                .ok_or_else(|| sqlx::Error::Decode(format!("a member id {id:?}").into()))?;
            Ok(MemberRecord {
                contact_id,
                phone,
                first_name,
                last_name,
                opted_out,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Where the numbers of a list of groups stand in a compound select.
#[derive(Clone, Copy)]
pub(crate) enum GroupsTerm {
    /// The numbers kept: the select's first terms.
    Kept,
    /// After the caller's `EXCEPT`: taken out of what precedes.
    LeftOut,
}

#[derive(Debug, Clone)]
pub struct MemberPage {
    pub members: Vec<MemberRecord>,
    pub next: Option<ContactId>,
}

/// The storage operations every front end uses. Every method is scoped to one plan: ids from
/// another plan behave exactly as ids that do not exist.
pub trait Store:
    PlanStore
    + GroupStore
    + ContactStore
    + ConsentStore
    + BatchStore
    + SeriesStore
    + ImportStore
    + ExportStore
    + AuditStore
    + WebhookStore
{
}

impl<S> Store for S where
    S: PlanStore
        + GroupStore
        + ContactStore
        + ConsentStore
        + BatchStore
        + SeriesStore
        + ImportStore
        + ExportStore
        + AuditStore
        + WebhookStore
{
}

/// Plans, their tokens, the web page's sessions and the secrets every instance shares.
#[async_trait]
pub trait PlanStore: Send + Sync {
    async fn ping(&self) -> StoreResult<()>;

    async fn create_plan(
        &self,
        name: &str,
        default_region: Option<&str>,
        by: &Actor,
    ) -> StoreResult<Plan>;
    /// Stores the hash of a new token for an existing plan, with its name and scopes.
    async fn add_token(
        &self,
        plan: &PlanId,
        by: &Actor,
        token_hash: &str,
        grant: &TokenGrant,
    ) -> StoreResult<TokenRecord>;
    /// The plan of an active token, and the token's name and scopes.
    async fn plan_for_token(&self, token_hash: &str) -> StoreResult<Option<(Plan, TokenGrant)>>;
    async fn get_plan(&self, plan: &PlanId) -> StoreResult<Plan>;
    /// Revokes the token with this hash; `NotFound` if there is no such active token.
    async fn revoke_token(&self, token_hash: &str, by: &Actor) -> StoreResult<PlanId>;
    /// The plan's tokens, revoked ones included, oldest first.
    async fn list_tokens(&self, plan: &PlanId) -> StoreResult<Vec<TokenRecord>>;
    /// Revokes the plan's token with this id (the start of its hash); `NotFound` if the plan
    /// has no such active token.
    async fn revoke_plan_token(&self, plan: &PlanId, by: &Actor, id: &str) -> StoreResult<()>;

    /// Records a signed-in browser; sessions past their expiry are removed on the way.
    async fn create_session(&self, session: &NewSession, by: &Actor) -> StoreResult<()>;
    /// The session with this id hash, if it has not expired and its token is not revoked.
    async fn session(&self, id_hash: &str) -> StoreResult<Option<WebSession>>;
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// The secret named `name`, shared by every instance on this database: `candidate` is
    /// stored when there is none yet, and the first one stored is the one every instance gets.
    async fn server_secret(&self, name: &str, candidate: &str) -> StoreResult<String>;
}

/// Groups, their child groups and static members, and what they resolve to.
#[async_trait]
pub trait GroupStore: Send + Sync {
    async fn create_group(
        &self,
        plan: &PlanId,
        by: &Actor,
        group: GroupDefinition,
    ) -> StoreResult<GroupRecord>;
    /// A group in any status; callers decide whether a deleted one is visible.
    async fn get_group(&self, plan: &PlanId, id: &GroupId) -> StoreResult<GroupRecord>;
    async fn list_groups(&self, plan: &PlanId, query: &GroupQuery) -> StoreResult<GroupPage>;
    async fn replace_group(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &GroupId,
        expected_version: Option<i64>,
        group: GroupDefinition,
    ) -> StoreResult<GroupRecord>;
    async fn update_group(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &GroupId,
        expected_version: Option<i64>,
        update: GroupUpdate,
    ) -> StoreResult<GroupRecord>;
    /// Soft delete (status DELETED), or with `purge` remove the group and its memberships.
    async fn delete_group(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &GroupId,
        expected_version: Option<i64>,
        purge: bool,
    ) -> StoreResult<()>;
    /// A page of the group's distinct effective members (its own and its child groups'),
    /// ordered by contact id. `group` is the group as just read: a group without children or
    /// rule is paged in one statement.
    async fn member_page(
        &self,
        plan: &PlanId,
        group: &GroupRecord,
        window: &Window<ContactId>,
    ) -> StoreResult<MemberPage>;
    /// The group's pending members (double opt-in), oldest request first, and how many there
    /// are.
    async fn pending_members(
        &self,
        plan: &PlanId,
        group: &GroupId,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<PendingMember>, i64)>;
    /// Ends every plan's confirmation requests open past `now`, each with a consent row;
    /// returns how many.
    async fn expire_confirmations(&self, now: Timestamp) -> StoreResult<u64>;
    /// Every distinct effective member's number (in no particular order), streamed from one
    /// query so that memory stays constant whatever the group's size. The group must exist
    /// (check with `get_group` first).
    fn member_numbers(&self, plan: PlanId, id: GroupId) -> BoxStream<'static, StoreResult<String>>;
}

/// Contacts, and memberships of many contacts in many groups at once. Every method is scoped
/// to one plan.
#[async_trait]
pub trait ContactStore: Send + Sync {
    async fn create_contact(
        &self,
        plan: &PlanId,
        by: &Actor,
        contact: ContactDefinition,
    ) -> StoreResult<ContactRecord>;
    async fn get_contact(&self, plan: &PlanId, id: &ContactId) -> StoreResult<ContactRecord>;
    async fn replace_contact(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &ContactId,
        contact: ContactDefinition,
    ) -> StoreResult<ContactRecord>;
    async fn update_contact(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &ContactId,
        patch: ContactPatch,
    ) -> StoreResult<ContactRecord>;
    /// Erases the contacts that exist: deletes them and everything that names their numbers,
    /// keeping an anonymous consent row each and a keyed hash of each number, which refuses the
    /// number from then on; returns how many there were.
    async fn erase_contacts(
        &self,
        plan: &PlanId,
        by: &Actor,
        ids: &[ContactId],
    ) -> StoreResult<u64>;
    /// Deletes the contacts (and their memberships) that exist; returns how many did.
    async fn delete_contacts(
        &self,
        plan: &PlanId,
        by: &Actor,
        ids: &[ContactId],
    ) -> StoreResult<u64>;
    /// Opts out the contacts that exist and are not opted out, each with a consent row, in one
    /// transaction; returns how many it opted out.
    async fn opt_out_contacts(
        &self,
        plan: &PlanId,
        by: &Actor,
        ids: &[ContactId],
        reason: Option<&OptOutReason>,
    ) -> StoreResult<u64>;
    async fn list_contacts(&self, plan: &PlanId, query: &ContactQuery) -> StoreResult<ContactPage>;
    /// The batches that sent to this number and the messages it sent, oldest first. Reads every
    /// recorded recipient of the plan: for a person's export, not for a hot path.
    async fn person_messages(&self, plan: &PlanId, phone: &str) -> StoreResult<PersonMessages>;
    /// The groups the contact is a direct member of, deleted ones included, in id order.
    async fn contact_groups(
        &self,
        plan: &PlanId,
        id: &ContactId,
    ) -> StoreResult<Vec<GroupMembership>>;
    /// Adds every contact to every group, atomically; returns how many memberships are new.
    async fn add_memberships(
        &self,
        plan: &PlanId,
        by: &Actor,
        contacts: &[ContactId],
        groups: &[GroupId],
    ) -> StoreResult<u64>;
    /// Adds contacts (every one must exist) and numbers (a number no contact has becomes a new
    /// contact) to one active static group, atomically; returns how many memberships are new.
    async fn add_to_group(
        &self,
        plan: &PlanId,
        by: &Actor,
        group: &GroupId,
        contacts: &[ContactId],
        numbers: &BTreeSet<ParsedNumber>,
    ) -> StoreResult<u64>;
    /// Asks contacts and numbers to confirm joining a group with double opt-in: each not yet a
    /// member becomes a pending member and is sent the group's confirmation request, once;
    /// returns how many requests are new.
    async fn request_to_join(
        &self,
        plan: &PlanId,
        by: &Actor,
        group: &GroupId,
        contacts: &[ContactId],
        numbers: &BTreeSet<ParsedNumber>,
    ) -> StoreResult<u64>;
    /// Removes every contact from every group, atomically; returns how many memberships ended.
    async fn remove_memberships(
        &self,
        plan: &PlanId,
        by: &Actor,
        contacts: &[ContactId],
        groups: &[GroupId],
    ) -> StoreResult<u64>;
}

/// Consent: keywords, inbound messages and the history of consent changes.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    async fn consent_keywords(&self, plan: &PlanId) -> StoreResult<ConsentKeywords>;
    async fn set_consent_keywords(
        &self,
        plan: &PlanId,
        by: &Actor,
        keywords: &ConsentKeywords,
    ) -> StoreResult<()>;
    /// Acts on an inbound message once: opt-out or opt-in by keyword, or joining or leaving the
    /// groups whose `auto_update` words it carries. A message id seen before is not acted on
    /// again; the first outcome is returned, with `true`.
    async fn process_inbound(
        &self,
        plan: &PlanId,
        by: &Actor,
        message: InboundMessage,
    ) -> StoreResult<(InboundOutcome, bool)>;
    /// A contact's consent changes, oldest first.
    async fn consent_history(
        &self,
        plan: &PlanId,
        id: &ContactId,
    ) -> StoreResult<Vec<ConsentEvent>>;
}

/// A batch to create.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub to: Audience,
    pub exclude: Audience,
    pub from: Option<String>,
    pub body: String,
    pub client_reference: Option<String>,
    pub send_at: Timestamp,
    pub expire_at: Option<Timestamp>,
    /// Values for the body's placeholders, Sinch's way.
    pub parameters: Parameters,
    pub encoding: EncodingChoice,
    pub purpose: Purpose,
}

/// A batch as stored.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub plan_id: PlanId,
    pub id: BatchId,
    pub status: BatchStatus,
    pub to: Audience,
    pub exclude: Audience,
    pub from: Option<String>,
    pub body: String,
    pub client_reference: Option<String>,
    pub send_at: Timestamp,
    pub expire_at: Option<Timestamp>,
    pub parameters: Parameters,
    pub encoding: EncodingChoice,
    pub purpose: Purpose,
    /// How many recipients it resolved to; `None` until it is sent.
    pub recipient_count: Option<i64>,
    /// Recipients left out when it was resolved (a placeholder without a value, the frequency
    /// cap).
    pub skipped_count: Option<i64>,
    /// The encoding of its messages and their parts, once resolved.
    pub encoding_used: Option<EncodingUsed>,
    pub parts_total: Option<i64>,
    pub parts_min: Option<i64>,
    pub parts_max: Option<i64>,
    /// Recipients per chunk handed to the sender, fixed when the batch is resolved.
    pub chunk_size: Option<i64>,
    /// How many chunks it was resolved to (recipients of each zone set fill their own).
    pub chunk_count: Option<i64>,
    /// Recipients waiting for quiet hours to end, and the first moment one of them may go.
    pub held_count: i64,
    pub held_until: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    /// The series that made it, and which of its occurrences it is (from 1).
    pub series_id: Option<SeriesId>,
    pub occurrence: Option<i64>,
    /// Recipients handed to the sender so far.
    pub sent_count: i64,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

/// A batch worked out without being sent.
#[derive(Debug, Clone)]
pub struct BatchPreview {
    /// Who would get a message.
    pub recipients: i64,
    /// Left out by the batch's `exclude`.
    pub excluded: i64,
    /// Left out because their contact opted out.
    pub opted_out: i64,
    /// Left out because a placeholder had no value for them.
    pub missing_parameter: i64,
    /// Left out by the plan's frequency cap.
    pub frequency_cap: i64,
    /// Of `recipients`, those whose quiet hours hold their message if it were sent now.
    pub held_now: i64,
    pub tally: PartsTally,
    pub samples: Vec<PreviewSample>,
}

/// One message of a preview.
#[derive(Debug, Clone)]
pub struct PreviewSample {
    pub to: String,
    pub text: String,
    pub segments: Segments,
}

/// The recipients of one chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkRecipients {
    pub phones: Vec<String>,
    /// Per recipient, its placeholders' values, when the body has placeholders.
    pub values: Option<Vec<Vec<String>>>,
    /// The recipients' time zones, when the batch was resolved under quiet hours.
    pub time_zones: Option<ZoneSet>,
}

/// Where one recipient of a resolved batch stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientOutcome {
    pub phone: String,
    pub state: RecipientState,
    /// Its message's parts (none for a recipient left out).
    pub parts: Option<i64>,
    /// What the provider last reported of its message.
    pub delivery: Option<ReportState>,
}

/// The last delivery report of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportState {
    pub status: String,
    pub code: Option<i64>,
    /// When the provider says it happened.
    pub at: Timestamp,
}

/// The recipients of a batch last reported with one status and code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportGroup {
    pub status: String,
    pub code: Option<i64>,
    pub count: i64,
    /// Empty unless asked for.
    pub recipients: Vec<String>,
}

/// A provider's report of one recipient's message.
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    pub batch: BatchId,
    /// The chunk the message went in, when the report names it (the `http` sender's
    /// `client_reference`).
    pub chunk: Option<i64>,
    /// E.164, with its `+`.
    pub phone: String,
    pub status: ReportStatus,
    pub code: Option<i64>,
    pub at: Timestamp,
    /// The provider's id of what it sent (its batch id): the evidence of a carrier opt-out.
    pub reference: Option<String>,
}

/// What became of a request's delivery reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportOutcome {
    /// Recorded (a report older than the one kept, or in transit after a final one, is not).
    pub recorded: u64,
    /// Of batches this plan does not have.
    pub unknown_batch: u64,
    /// Of numbers the batch did not send to.
    pub not_recipient: u64,
    /// Contacts opted out by a report's code.
    pub opted_out: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientState {
    /// Handed to the sender.
    Sent,
    /// Waiting for its chunk's turn.
    Queued,
    /// Waiting for quiet hours to end where the recipient is, until the moment given.
    Held(Timestamp),
    /// Its chunk was being handed over (what the sender has is checked before anything is
    /// sent again).
    Sending,
    /// Not sent: the batch expired first.
    Expired,
    /// Not sent: the sender refused the batch.
    Failed,
    /// Not sent: the batch was canceled first.
    Canceled,
    /// Left out when the batch was resolved.
    Skipped(SkipReason),
}

impl RecipientState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Queued => "queued",
            Self::Held(_) => "held",
            Self::Sending => "sending",
            Self::Expired => "expired",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Skipped(_) => "skipped",
        }
    }
}

/// Filters of a batch list; newest first, by numbered page.
#[derive(Debug, Clone, Default)]
pub struct BatchQuery {
    pub status: Option<BatchStatus>,
    pub client_reference: Option<String>,
    pub from: Option<String>,
    /// Created at or after.
    pub created_from: Option<Timestamp>,
    /// Created before.
    pub created_before: Option<Timestamp>,
    /// Made by this series.
    pub series_id: Option<SeriesId>,
    pub offset: i64,
    pub limit: i64,
}

/// A new recurring series: what each occurrence sends (`batch.send_at` is the series' start,
/// `batch.expire_at` gives each occurrence the same time to expire), its rule, and its first
/// occurrence.
#[derive(Debug, Clone)]
pub struct NewSeries {
    pub batch: NewBatch,
    pub rule: String,
    pub time_zone: String,
    pub ends_at: Option<Timestamp>,
    pub first_at: Timestamp,
}

/// A series as stored.
#[derive(Debug, Clone)]
pub struct SeriesRecord {
    pub plan_id: PlanId,
    pub id: SeriesId,
    pub status: SeriesStatus,
    pub rule: String,
    pub time_zone: String,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    /// What every occurrence sends; its `send_at` is the series' start.
    pub batch: NewBatch,
    /// Each occurrence's `expire_at`, after its send time.
    pub expire_after_millis: Option<i64>,
    /// Batches made so far, the last one's send time, and the next one's.
    pub occurrences: i64,
    pub last_at: Option<Timestamp>,
    pub next_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
}

/// An instance's claim on the batches it sends: who it is and how long a claim lasts without
/// renewal.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub millis: i64,
}

/// What was recorded of a chunk handed to the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecord {
    pub chunk: i64,
    /// Handed over and acknowledged (`true`), or handed over with no acknowledgement recorded.
    pub done: bool,
    /// What the sender said would find the chunk again (its own JSON).
    pub sender_state: String,
    pub handed_at: Timestamp,
}

/// Recurring series: each makes a batch at every occurrence of its rule, once, whichever
/// instance gets there first.
#[async_trait]
pub trait SeriesStore: Send + Sync {
    /// Creates a series; its groups must exist now, as for a batch.
    async fn create_series(
        &self,
        plan: &PlanId,
        by: &Actor,
        series: NewSeries,
    ) -> StoreResult<SeriesRecord>;
    async fn get_series(&self, plan: &PlanId, id: &SeriesId) -> StoreResult<SeriesRecord>;
    /// A page of the plan's series, newest first, and how many there are.
    async fn list_series(
        &self,
        plan: &PlanId,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<SeriesRecord>, i64)>;
    /// Moves a series to `status`: `Paused` from active, `Active` from paused (with the next
    /// occurrence to make, `None` finishing it), `Canceled` from either.
    async fn set_series_status(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &SeriesId,
        status: SeriesStatus,
        next_at: Option<Timestamp>,
    ) -> StoreResult<SeriesRecord>;
    /// Active series whose next occurrence is due at `now`, the most overdue first.
    async fn due_series(&self, now: Timestamp, limit: i64) -> StoreResult<Vec<SeriesRecord>>;
    /// Makes the occurrence due at `at` into a batch and moves the series on to `next`
    /// (finished when `None`), if no one did so first: the batch made, else `None`.
    async fn make_occurrence(
        &self,
        plan: &PlanId,
        id: &SeriesId,
        at: Timestamp,
        next: Option<Timestamp>,
    ) -> StoreResult<Option<BatchRecord>>;
}

/// Batches: created by clients, claimed and sent by the dispatcher of some instance.
#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Creates a batch. Its groups must exist in the plan and be active now; whether they still
    /// do when it is sent is decided then (a deleted group counts as empty).
    async fn create_batch(
        &self,
        plan: &PlanId,
        by: &Actor,
        batch: NewBatch,
    ) -> StoreResult<BatchRecord>;
    async fn get_batch(&self, plan: &PlanId, id: &BatchId) -> StoreResult<BatchRecord>;
    /// A page of batches and how many match over all pages.
    async fn list_batches(
        &self,
        plan: &PlanId,
        query: &BatchQuery,
    ) -> StoreResult<(Vec<BatchRecord>, i64)>;
    /// The plan's sending rules.
    async fn sending_settings(&self, plan: &PlanId) -> StoreResult<SendingSettings>;
    async fn set_sending_settings(
        &self,
        plan: &PlanId,
        by: &Actor,
        settings: &SendingSettings,
    ) -> StoreResult<()>;
    /// What sending `batch` now would do, without doing anything: who it reaches, who is left
    /// out and why, its parts and a few of its messages. Its groups must be active in the plan.
    async fn preview_batch(&self, plan: &PlanId, batch: NewBatch) -> StoreResult<BatchPreview>;
    /// Cancels a batch that is scheduled or being sent (chunks already handed over stay sent).
    async fn cancel_batch(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &BatchId,
    ) -> StoreResult<BatchRecord>;
    /// What became of each recipient: those recorded, in sending order, then those left out,
    /// streamed so that memory stays constant. `NotResolved` (as the stream's only item) until
    /// the batch has been resolved.
    fn batch_recipients(
        &self,
        plan: PlanId,
        id: BatchId,
    ) -> BoxStream<'static, StoreResult<RecipientOutcome>>;

    /// Claims the batch that has been due longest — scheduled and due, or being sent by an
    /// instance whose claim expired — for `lease`. Instances sharing a database never claim
    /// the same batch at once.
    async fn claim_batch(&self, lease: &Lease) -> StoreResult<Option<BatchRecord>>;
    /// Resolves the batch's recipients and records them, once: union of its groups (with child
    /// groups and smart groups) and numbers, minus excluded groups and numbers, minus opted-out
    /// contacts, de-duplicated. A resolved batch is returned as it is.
    async fn resolve_batch(
        &self,
        lease: &Lease,
        plan: &PlanId,
        id: &BatchId,
        chunk_size: i64,
    ) -> StoreResult<BatchRecord>;
    /// The chunks recorded so far, in order.
    async fn batch_chunks(&self, plan: &PlanId, id: &BatchId) -> StoreResult<Vec<ChunkRecord>>;
    /// The recipients of one chunk, in sending order, with their placeholders' values.
    async fn chunk_recipients(
        &self,
        plan: &PlanId,
        id: &BatchId,
        chunk: i64,
    ) -> StoreResult<ChunkRecipients>;
    /// Records that a chunk is about to be handed over, renewing the lease; `LeaseLost` if the
    /// claim ended. Recording it again (a retry) keeps the first record.
    async fn begin_chunk(
        &self,
        lease: &Lease,
        plan: &PlanId,
        id: &BatchId,
        chunk: i64,
        sender_state: &str,
    ) -> StoreResult<()>;
    /// Records that the sender took a chunk of `recipients`, renewing the lease.
    async fn finish_chunk(
        &self,
        lease: &Lease,
        plan: &PlanId,
        id: &BatchId,
        chunk: i64,
        recipients: i64,
    ) -> StoreResult<()>;
    /// Leaves the batch's `held` chunks (with the moment each may go) for later and gives up
    /// the claim until `wake`, when whoever claims it first sends what is due.
    async fn hold_batch(
        &self,
        lease: &Lease,
        plan: &PlanId,
        id: &BatchId,
        held: &[(i64, Timestamp)],
        wake: Timestamp,
    ) -> StoreResult<()>;
    /// Renews the lease; `LeaseLost` if the claim ended.
    async fn renew_lease(&self, lease: &Lease, plan: &PlanId, id: &BatchId) -> StoreResult<()>;
    /// Ends a batch being sent: `Sent`, or `Failed` with the reason.
    async fn finish_batch(
        &self,
        lease: &Lease,
        plan: &PlanId,
        id: &BatchId,
        status: BatchStatus,
        error: Option<&str>,
    ) -> StoreResult<()>;
    /// Gives up this owner's claims (at shutdown), so that another instance or a restart takes
    /// the batches over at once.
    async fn release_leases(&self, owner: &str) -> StoreResult<()>;
    /// Records providers' delivery reports of the plan's batches, in one transaction; a report
    /// whose code is one of `opt_out` opts its recipient's contact out (source `carrier`).
    async fn record_delivery_reports(
        &self,
        plan: &PlanId,
        by: &Actor,
        reports: &[DeliveryReport],
        opt_out: &OptOutCodes,
    ) -> StoreResult<ReportOutcome>;
    /// The batch's recipients by their last reported status and code, with the numbers when
    /// `with_recipients`; in status and code order.
    async fn report_groups(
        &self,
        plan: &PlanId,
        id: &BatchId,
        with_recipients: bool,
    ) -> StoreResult<Vec<ReportGroup>>;
    /// The last report of one recipient of the batch.
    async fn recipient_report(
        &self,
        plan: &PlanId,
        id: &BatchId,
        phone: &str,
    ) -> StoreResult<Option<ReportState>>;
}

/// What kept a write from starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusyCause {
    /// An import in this process holds SQLite's single writer for its whole transaction.
    Import,
    /// Another write in this process holds SQLite's single writer.
    Write,
    /// Another process (`roster import` from the command line, another `roster serve`) holds
    /// the SQLite file's write lock.
    OtherProcess,
    /// Every connection of the pool is in use (PostgreSQL).
    Connections,
    /// The write and another one each waited for rows the other had locked, and PostgreSQL
    /// stopped this one (a deadlock, or a serialization failure): it was rolled back whole.
    Deadlock {
        /// PostgreSQL's code for it (SQLSTATE).
        sqlstate: &'static str,
    },
    /// An import waited [`IMPORT_QUEUE_WAIT`] for the import before it (on SQLite any import,
    /// on PostgreSQL one of the same plan) to finish.
    ImportQueue,
}

/// The words an import's failure and the command line show; the API words its answers itself.
impl std::fmt::Display for BusyCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusyCause::Import => f.write_str("an import holds SQLite's single writer"),
            BusyCause::Write => f.write_str("another write holds SQLite's single writer"),
            BusyCause::OtherProcess => {
                f.write_str("another process holds the SQLite file's write lock")
            }
            BusyCause::Connections => f.write_str("every database connection is in use"),
            BusyCause::Deadlock { sqlstate } => write!(
                f,
                "PostgreSQL rolled the write back for another one changing the same rows \
                 (SQLSTATE {sqlstate})"
            ),
            BusyCause::ImportQueue => f.write_str("the import before this one did not finish"),
        }
    }
}

/// How long an import waits for the one before it to finish. Imports run one at a time (on
/// SQLite because they hold the single writer, on PostgreSQL per plan, see
/// `Dialect::begin_import`); a queued import holds no connection while it waits.
pub(crate) const IMPORT_QUEUE_WAIT: Duration = Duration::from_secs(30 * 60);

/// PostgreSQL's codes for a transaction it rolled back because of another one: deadlock
/// detected, and serialization failure.
const ROLLED_BACK_FOR_ANOTHER: [&str; 2] = ["40P01", "40001"];

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(database) => {
                let code = database.code();
                match ROLLED_BACK_FOR_ANOTHER
                    .into_iter()
                    .find(|known| code.as_deref() == Some(*known))
                {
                    Some(sqlstate) => StoreError::Busy {
                        cause: BusyCause::Deadlock { sqlstate },
                        waited: Duration::from_secs(1),
                    },
                    None => StoreError::Database(error),
                }
            }
            _ => StoreError::Database(error),
        }
    }
}

/// How the store uses its database.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// How long a write waits to start (for SQLite's single writer, or for a connection)
    /// before it fails with [`StoreError::Busy`].
    pub write_wait: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            write_wait: Duration::from_secs(10),
        }
    }
}

/// Opens the database named by `url` (`sqlite://PATH` or `postgres://…`) and brings its schema
/// up to date.
pub async fn connect(url: &str) -> StoreResult<Arc<dyn Store>> {
    connect_with(url, StoreOptions::default()).await
}

pub async fn connect_with(url: &str, options: StoreOptions) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqlStore::new(
            sqlite::Sqlite::connect(url, options).await?,
        )))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(SqlStore::new(
            postgres::Postgres::connect(url, options).await?,
        )))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// An import's turn, while it is alive: on SQLite it holds the import queue and counts the
/// imports that hold the writer.
pub(crate) struct Importing {
    count: Option<Arc<std::sync::atomic::AtomicUsize>>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Importing {
    fn start(
        count: Option<&Arc<std::sync::atomic::AtomicUsize>>,
        turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    ) -> Self {
        if let Some(count) = count {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Self {
            count: count.cloned(),
            _turn: turn,
        }
    }
}

impl Drop for Importing {
    fn drop(&mut self) {
        if let Some(count) = &self.count {
            count.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// How many numbers travel together from a streaming query to its reader.
const STREAM_CHUNK: usize = 4096;

/// Streams open at once in this process. Each holds a database connection while its client
/// reads, so that a few slow readers cannot take every connection from the writers.
static OPEN_STREAMS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

type Chunks<T> = tokio::sync::mpsc::Sender<StoreResult<Vec<T>>>;
type NumberChunks = Chunks<String>;

/// Runs `produce` in a task of its own, which sends chunks of items (numbers, mostly) into a
/// small channel; the stream returned yields them one by one. Memory stays at a few chunks
/// whatever the total, a client that stops reading pauses the producer, and one that goes away
/// ends it.
fn spawn_number_stream<T, F, Fut>(produce: F) -> BoxStream<'static, StoreResult<T>>
where
    T: Send + 'static,
    F: FnOnce(Chunks<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = StoreResult<()>> + Send + 'static,
{
    spawn_numbers(|sender| async move {
        let Ok(_permit) = OPEN_STREAMS.acquire().await else {
            return Ok(());
        };
        produce(sender).await
    })
}

/// As [`spawn_number_stream`], for the server's own reads (a batch's resolution), which do not
/// wait for a stream's place behind slow clients.
fn spawn_numbers<T, F, Fut>(produce: F) -> BoxStream<'static, StoreResult<T>>
where
    T: Send + 'static,
    F: FnOnce(Chunks<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = StoreResult<()>> + Send + 'static,
{
    use futures::StreamExt;
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        if let Err(error) = produce(sender.clone()).await {
            let _ = sender.send(Err(error)).await;
        }
    });
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
    .flat_map(|item| match item {
        Ok(chunk) => futures::stream::iter(chunk.into_iter().map(Ok)).left_stream(),
        Err(error) => futures::stream::once(async { Err(error) }).right_stream(),
    })
    .boxed()
}

/// Sends a query's rows in chunks; stops quietly when the reader has gone.
async fn forward_rows<T>(
    rows: impl futures::Stream<Item = Result<T, sqlx::Error>>,
    sender: &Chunks<T>,
) -> StoreResult<()> {
    use futures::{StreamExt, TryStreamExt};
    let mut rows = std::pin::pin!(rows.try_chunks(STREAM_CHUNK));
    while let Some(chunk) = rows
        .next()
        .await
        .transpose()
        .map_err(|futures::stream::TryChunksError(_, error)| StoreError::from(error))?
    {
        if sender.send(Ok(chunk)).await.is_err() {
            break;
        }
    }
    Ok(())
}
