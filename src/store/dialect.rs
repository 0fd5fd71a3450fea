//! The seam between the SQL both backends share (`sql/`) and what each does its own way
//! (`sqlite/`, `postgres/`). The dialects agree on `$n` placeholders, `ON CONFLICT … DO NOTHING`,
//! recursive CTEs and row-value comparison, so one text of each statement serves both; a
//! [`Dialect`] supplies the rest:
//!
//! - its state and transactions: [`Dialect::reader`], [`Dialect::begin_write`] and
//!   [`Dialect::begin_import`];
//! - the hottest reads, run its fastest way rather than through the pool
//!   ([`Dialect::group_row`], [`Dialect::member_page_json`]), and streams of member numbers
//!   ([`Dialect::stream_tree`], [`Dialect::stream_groups_alone`]);
//! - statements that lock where the backend has row locks (SQLite serialises writers instead);
//! - how a list of values travels as one parameter, and how custom fields are read from JSON;
//! - the set-based writes of an import.
//!
//! The generic code names the Rust types it binds and reads in one where-clause, repeated on each
//! of its `impl` blocks: Rust does not carry bounds such as `i64: Encode<'q, D::Db>` from a trait
//! to its users (only bounds on `Self` and its associated types), so no trait can state them once.

use std::future::Future;

use sqlx::pool::PoolConnection;
use sqlx::{Database, Encode, Pool, QueryBuilder, Transaction, Type};

use super::sql::ContactValues;
use super::sql::TreeGroup;
use super::sql::{Recipient, Wanted};
use super::{Chunks, GroupRow, GroupsTerm, Importing, NumberChunks, RejectedRow, StoreResult};
use crate::domain::filter::Value as FilterValue;
use crate::domain::ids::{ContactId, GroupId, ImportId, PlanId};
use crate::domain::msisdn::ParsedNumber;

/// A backend's connection, as the generic code holds it inside a transaction.
pub(crate) type Conn<D> = <<D as Dialect>::Db as Database>::Connection;

pub(crate) trait Dialect: Clone + Send + Sync + Sized + 'static {
    type Db: Database<QueryResult = Self::Done>;
    /// What a statement reports: how many rows it changed.
    type Done: RowsAffected;
    /// A list of values as one parameter (`phone_list`).
    type List: for<'q> Encode<'q, Self::Db> + Type<Self::Db> + Send + 'static;
    /// An import's new contacts bound into the statements that insert them: bound on the
    /// import's preparing thread (`import_prepare`), so that the writer only runs them.
    type NewContacts: Send + 'static;

    /// The pool that serves reads.
    fn reader(&self) -> &Pool<Self::Db>;
    /// A write transaction; a write that waits too long for it is `StoreError::Busy`.
    fn begin_write(
        &self,
    ) -> impl Future<Output = StoreResult<Transaction<'static, Self::Db>>> + Send;
    /// The write transaction of an import into `plan`, once the imports before it have
    /// finished (waiting up to `IMPORT_QUEUE_WAIT`, without a connection).
    fn begin_import(
        &self,
        plan: &PlanId,
    ) -> impl Future<Output = StoreResult<(Transaction<'static, Self::Db>, Importing)>> + Send;
    /// `GROUP_ROW` for one group.
    fn group_row(
        &self,
        plan: &PlanId,
        id: &GroupId,
    ) -> impl Future<Output = StoreResult<GroupRow>> + Send;
    /// `MEMBER_PAGE` for one group.
    fn member_page_json(
        &self,
        plan: &PlanId,
        id: &GroupId,
        after: &[u8],
        limit: i64,
        offset: i64,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;
    /// Sends the numbers of a tree's members, on the connection that read the tree or its own.
    fn stream_tree(
        &self,
        conn: PoolConnection<Self::Db>,
        plan: PlanId,
        tree: Vec<TreeGroup>,
        sender: NumberChunks,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Sends the recipients of a batch to groups alone (`groups_alone`).
    fn stream_groups_alone(
        &self,
        conn: PoolConnection<Self::Db>,
        groups: (&[i64], &[i64]),
        sender: NumberChunks,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// As `stream_groups_alone`, with what each recipient's contact holds for a personalized
    /// body (as far as `wanted`).
    fn stream_details_alone(
        &self,
        conn: PoolConnection<Self::Db>,
        groups: (&[i64], &[i64]),
        wanted: Wanted,
        sender: Chunks<Recipient>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Reads a group's `version, status, rule, member_count`, locking its row.
    const LOCK_GROUP: &'static str;
    /// Reads a plan's id, locking its row.
    const LOCK_PLAN: &'static str;
    /// Reads a contact's id, locking its row.
    const LOCK_CONTACT: &'static str;
    /// Reads a batch's status, locking its row.
    const LOCK_BATCH: &'static str;
    /// Ends the claim of due batches: skip those another instance is claiming.
    const CLAIM_LOCK: &'static str;
    /// A group's row and its child ids (comma-separated, in id order), as [`GroupRow`] reads it.
    const GROUP_ROW: &'static str;
    /// A page of a group without children or rule, as one JSON array of
    /// `[id, phone, first_name, last_name, opted_out]`.
    const MEMBER_PAGE: &'static str;
    /// Makes text compare byte by byte whatever the database's locale.
    const TEXT_COLLATE: &'static str;
    /// Group names in byte order.
    const NAME_SORT_KEY: &'static str;
    /// A contact `c`'s lower-cased "first last", which contacts are ordered and searched by:
    /// the stored form where there is one (`stored_sort_names`), else the names with their
    /// ASCII letters lower-cased. Written exactly as the index on it (migration 29), so that
    /// the planner reads that index.
    const SORT_NAME: &'static str;
    /// The same for "last first".
    const SORT_NAME_LAST: &'static str;
    /// Removes the members with the numbers of `$3` (a [`Dialect::List`]) from group `$2`.
    const DELETE_MEMBERS_BY_PHONE: &'static str;
    /// Ends a compound select of contact keys so that its terms are merged.
    const MERGE_ORDER: &'static str;
    /// A contact `c`'s direct active groups' names, as a JSON array.
    const EXPORT_GROUPS: &'static str;
    /// The value of a new plan's `key`: the next one.
    const NEW_PLAN_KEY: &'static str;
    /// How a statement names the index a table is read through (`contacts INDEXED BY …`), where
    /// the planner must be told how common a value is (such a dialect also keeps a term
    /// `+c.column = …` from every index); `None` where the planner knows from statistics.
    const INDEXED_BY: Option<&'static str>;
    /// Ends a select whose rows the transaction will change, locking them (PostgreSQL's
    /// `FOR UPDATE`); `None` where a writer holds the whole database.
    const LOCK_ROWS: Option<&'static str>;
    /// The same for rows the transaction will change but neither delete nor re-key
    /// (PostgreSQL's `FOR NO KEY UPDATE`), so that additions of those contacts to groups,
    /// which only need them to stay, do not wait.
    const LOCK_ROWS_KEPT: Option<&'static str>;

    /// Numbers as one parameter.
    fn phone_list(phones: &[&str]) -> Self::List;
    /// `(…)`: a list as one parameter, for `x IN …`.
    fn push_list<'a>(builder: &mut QueryBuilder<Self::Db>, items: impl Iterator<Item = &'a str>);
    /// `(…)`: contact ids, as contacts store them (16 bytes), as one parameter, for `id IN …`.
    fn push_id_list(builder: &mut QueryBuilder<Self::Db>, ids: &[ContactId]);
    /// `(SELECT … AS value …)`: integers as one parameter, a select of one column `value`.
    fn push_key_list(builder: &mut QueryBuilder<Self::Db>, keys: Vec<i64>);
    /// `c.phone IN (…)`, or what the backend probes its index with best.
    fn push_phone_in(builder: &mut QueryBuilder<Self::Db>, phones: &[&str]);
    /// A list as a one-column table `phone`.
    fn push_phone_table<'a>(
        builder: &mut QueryBuilder<Self::Db>,
        items: impl Iterator<Item = &'a str>,
    );
    /// The distinct contact keys of the direct members of the groups `keys`, as a compound
    /// select of one column `contact`.
    fn push_group_contacts(builder: &mut QueryBuilder<Self::Db>, keys: &[i64], term: GroupsTerm);
    /// The condition joining contacts `c` to the keys `u.contact` that `push_group_contacts`
    /// read from the groups `groups`: the key alone where it is an index of its own, the plan
    /// too where the primary key is (plan, key).
    fn push_member_contact(builder: &mut QueryBuilder<Self::Db>, groups: &[i64]);
    /// A custom field compared with a value of the same JSON type; false for any other.
    fn push_custom_compare(
        builder: &mut QueryBuilder<Self::Db>,
        name: &str,
        op: &str,
        value: &FilterValue,
    );
    /// A custom field that is absent or JSON null.
    fn push_custom_is_null(builder: &mut QueryBuilder<Self::Db>, name: &str);
    /// ` AND ` the contact's email is `email`, whatever the case of either, spelled so that
    /// the backend's email index serves it.
    fn push_email_is(builder: &mut QueryBuilder<Self::Db>, plan: &PlanId, email: &str);

    /// The keys of the plan's contacts with these numbers, and the numbers no contact has.
    fn contact_keys(
        conn: &mut Conn<Self>,
        plan: &PlanId,
        phones: &[&str],
    ) -> impl Future<Output = StoreResult<(Vec<i64>, Vec<String>)>> + Send;
    /// Creates a contact for every number the plan has none for; returns the keys of the
    /// plan's contacts with these numbers.
    fn insert_contacts(
        conn: &mut Conn<Self>,
        plan: &PlanId,
        numbers: &[&ParsedNumber],
        now: i64,
    ) -> impl Future<Output = StoreResult<Vec<i64>>> + Send;
    /// The key the next contact inserted will have, where the dialect gives contacts' keys
    /// itself (SQLite, whose import holds the only writer); `None` where the database draws
    /// them.
    fn next_contact_key(
        conn: &mut Conn<Self>,
    ) -> impl Future<Output = StoreResult<Option<i64>>> + Send;
    /// Binds `contacts` of the plan with key `plan` for `insert_import_contacts`, their keys
    /// counted from `first_key` where the dialect gives keys.
    fn bind_import_contacts(
        plan: i64,
        contacts: &[ContactValues],
        first_key: Option<i64>,
        now: i64,
    ) -> Self::NewContacts;
    /// Inserts `contacts`, as `bound`, where the plan does not have their numbers yet;
    /// returns, for each contact in order, its key if it was inserted and `None` if the number
    /// was there.
    fn insert_import_contacts(
        conn: &mut Conn<Self>,
        bound: Self::NewContacts,
        contacts: &[ContactValues],
    ) -> impl Future<Output = StoreResult<Vec<Option<i64>>>> + Send;
    /// Rewrites the contacts an import changed (all but the number).
    fn update_import_contacts(
        conn: &mut Conn<Self>,
        plan: &PlanId,
        contacts: &[ContactValues],
        now: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Records an import's rejected rows.
    fn insert_import_errors(
        conn: &mut Conn<Self>,
        plan: &PlanId,
        import: &ImportId,
        rows: &[RejectedRow],
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// How many rows a statement changed; sqlx names this on each backend's result alone.
pub(crate) trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}
