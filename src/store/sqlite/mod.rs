//! SQLite: one file in WAL mode. Reads go through a pool of connections; writes go through a
//! single connection, so that writers queue in the process instead of failing with
//! `SQLITE_BUSY`, and each write transaction starts with `BEGIN IMMEDIATE` so that another process
//! (the CLI beside a running server) waits for the lock rather than failing mid-transaction.

mod inline;

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlitePool, Transaction};

use super::dialect::{Conn, Dialect};
use super::sql::ContactValues;
use super::sql::{Columns, Recipient, SqlStore, TreeGroup, Wanted};
use super::*;
use crate::domain::filter::Value as FilterValue;
use crate::domain::ids::{ContactId, GroupId, ImportId, PlanId};
use crate::domain::msisdn::ParsedNumber;
use inline::InlineReader;

/// An import's chunk of new contacts, bound, with keys from `first` on.
pub(crate) struct NewContacts {
    first: i64,
    insert: sqlx::QueryBuilder<sqlx::Sqlite>,
}

#[derive(Clone)]
pub(crate) struct Sqlite {
    read: SqlitePool,
    write: SqlitePool,
    /// The hottest reads, on the calling thread.
    inline: Arc<InlineReader>,
    /// How long a write waits for the writer.
    write_wait: Duration,
    /// Imports holding the writer: a write that waits in vain says why.
    importing: Arc<std::sync::atomic::AtomicUsize>,
    /// Set while the writer's connection may have an import's settings ([`IMPORT_CACHE_KIB`],
    /// [`IMPORT_BEGIN`]), which its release then puts back.
    import_settings: Arc<std::sync::atomic::AtomicBool>,
    /// Imports wait here for their turn at the writer, without a connection, for as long as
    /// the one before them runs (up to [`IMPORT_QUEUE_WAIT`]) rather than the write wait.
    import_queue: Arc<tokio::sync::Mutex<()>>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Every connection's page cache, in KiB.
const CACHE_KIB: i64 = 16_384;

/// The writer's page cache while an import holds it, in KiB: the import's inserts land all over
/// the indexes of numbers, names and addresses, and pages the cache cannot hold are written out
/// and read back before the commit writes them again. With 48 MiB a scattered file of 1,000,000
/// rows took 0.84–0.86× the time of 16 MiB, a file in number order (whose inserts stay on a few
/// pages) 1.05× (docs/BENCHMARKS.md, step 14); 64 MiB was no faster. The writer's connection gets
/// its usual cache back as it is released, so the memory is held only while an import runs.
const IMPORT_CACHE_KIB: i64 = 49_152;

/// How an import's transaction begins: with its statement journals in memory. Each multi-row
/// insert of a write transaction keeps a statement journal (the pages it changes, as they were,
/// in case it fails halfway); past 64 KiB SQLite writes it to a temporary file, and an import of
/// 1,000,000 rows wrote 1.7 GB there in number order and 6.5 GB scattered, rewriting the same
/// pages statement after statement. In memory, one statement's journal is at most its own pages
/// (3.5 MiB in number order, 16 MiB scattered) and is freed as the statement ends. SQLite fixes
/// where a transaction's statement journals go as the transaction begins, so `temp_store` is
/// put back at once: the import's temporary table of merged numbers stays on disk, however
/// large it grows. (SQLite's own setting for the journals' spill size, `SQLITE_STMTJRNL_SPILL`,
/// cannot be raised past 128 KiB: a larger journal fails as it spills.)
const IMPORT_BEGIN: &str =
    "PRAGMA temp_store = MEMORY; BEGIN IMMEDIATE; PRAGMA temp_store = DEFAULT";

/// The pause between an import's tries for the file's write lock while another process holds
/// it (see `begin_import`).
const OTHER_PROCESS_PAUSE: Duration = Duration::from_millis(100);

/// More groups than this are read as one term with a temporary index for `DISTINCT`: SQLite
/// allows 500 terms in a compound select, and each term adds a step to every row's merge.
const MAX_MERGED_GROUPS: usize = 64;

/// The numbers of the direct members of `include` not in `exclude` (opted-in ones alone, with
/// `opted_in`): the SQL text of `push_static_numbers`, for the inline reader. It binds nothing:
/// `push_group_contacts` writes the groups' keys into the text.
fn static_numbers_statement(include: &[i64], exclude: &[i64], opted_in: bool) -> String {
    let mut builder = sqlx::QueryBuilder::<sqlx::Sqlite>::new("");
    SqlStore::<Sqlite>::push_static_numbers(
        &mut builder,
        include,
        exclude,
        opted_in,
        Columns::Phone,
    );
    builder.into_string()
}

/// JSON holds no bytes: the id travels as its hex.
fn contact_json(contact: &ContactValues) -> serde_json::Value {
    serde_json::json!([
        hex::encode(contact.id.to_bytes()),
        contact.phone,
        contact.first_name,
        contact.last_name,
        contact.email,
        contact.gender,
        contact.fields,
        contact.number_type,
        contact.country,
        contact.sort_name,
        contact.sort_name_last,
        contact.opted_out,
        contact.opted_out_at,
        contact.opted_out_reason,
        contact.time_zone,
    ])
}

impl Sqlite {
    pub async fn connect(url: &str, store_options: StoreOptions) -> StoreResult<Self> {
        let write_wait = store_options.write_wait;
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses no committed transaction on a process crash, only
            // possibly the last ones on a power cut, and spares an fsync per commit.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Another process's write: as long as a write of this one would wait.
            .busy_timeout(write_wait)
            // Reads go through the OS page cache by memory map instead of a copy per page, and
            // each connection keeps 16 MiB of pages of its own: scans of a million-member group
            // run at memory speed.
            .pragma("mmap_size", "1073741824")
            .pragma("cache_size", format!("-{CACHE_KIB}"))
            // SQLite keeps no statistics of its own accord; without them a join may scan a
            // whole plan where an index would do.
            .optimize_on_close(true, None);
        let import_settings = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let raised = import_settings.clone();
        // sqlx's pool pings a connection as it hands it out, which for SQLite is one more
        // round trip to the connection's thread; a local file has no link to lose.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(write_wait)
            .test_before_acquire(false)
            .after_release(move |conn, _| {
                let raised = raised.clone();
                Box::pin(async move {
                    if raised.swap(false, std::sync::atomic::Ordering::Relaxed) {
                        // A failure here closes the connection, which drops its settings too.
                        // `temp_store` is back already unless the import's `BEGIN` failed.
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "PRAGMA cache_size = -{CACHE_KIB}; PRAGMA temp_store = DEFAULT"
                        )))
                        .execute(conn)
                        .await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.clone().read_only(true))
            .await?;
        let inline = Arc::new(InlineReader::new(options.get_filename()));
        Ok(Self {
            read,
            write,
            inline,
            write_wait,
            importing: Arc::default(),
            import_settings,
            import_queue: Arc::default(),
        })
    }

    /// The writer's transaction, begun by `begin` (which ends with `BEGIN IMMEDIATE`).
    async fn begin_writing(
        &self,
        begin: &'static str,
    ) -> StoreResult<Transaction<'static, sqlx::Sqlite>> {
        self.write.begin_with(begin).await.map_err(|error| {
            let cause = match &error {
                // This process's single writer stayed taken.
                sqlx::Error::PoolTimedOut => {
                    if self.importing.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                        BusyCause::Import
                    } else {
                        BusyCause::Write
                    }
                }
                // SQLITE_BUSY: another process held the file's lock past the busy timeout.
                sqlx::Error::Database(database) if database.code().as_deref() == Some("5") => {
                    BusyCause::OtherProcess
                }
                _ => return StoreError::Database(error),
            };
            StoreError::Busy {
                cause,
                waited: self.write_wait,
            }
        })
    }

    /// Sends the numbers a statement without parameters returns, read on a blocking thread of
    /// its own.
    async fn stream_inline(&self, sql: String, sender: NumberChunks) -> StoreResult<()> {
        let inline = self.inline.clone();
        tokio::task::spawn_blocking(move || inline.stream_phones(&sql, [], &sender))
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }
}

impl Dialect for Sqlite {
    type Db = sqlx::Sqlite;
    type Done = sqlx::sqlite::SqliteQueryResult;
    type List = String;
    type NewContacts = NewContacts;

    fn reader(&self) -> &SqlitePool {
        &self.read
    }

    /// Runs on the calling thread, as does `member_page_json` (see `inline`).
    async fn group_row(&self, plan: &PlanId, id: &GroupId) -> StoreResult<GroupRow> {
        self.inline
            .group_row(Self::GROUP_ROW, plan.as_str(), id.as_str())
    }

    async fn member_page_json(
        &self,
        plan: &PlanId,
        id: &GroupId,
        after: &[u8],
        limit: i64,
        offset: i64,
    ) -> StoreResult<Option<String>> {
        self.inline.json_page(
            Self::MEMBER_PAGE,
            plan.as_str(),
            id.as_str(),
            after,
            limit,
            offset,
        )
    }

    /// Sends the phones of a tree's members. A tree without rules is read on a blocking thread
    /// of its own: through sqlx every row was a hand-off from the connection's thread, which
    /// cost more than the query. Trees with rules keep the pooled connection that read them.
    async fn stream_tree(
        &self,
        mut conn: PoolConnection<sqlx::Sqlite>,
        plan: PlanId,
        tree: Vec<TreeGroup>,
        sender: NumberChunks,
    ) -> StoreResult<()> {
        if tree.is_empty() || !SqlStore::<Sqlite>::is_static(&tree) {
            return SqlStore::<Sqlite>::stream_tree_numbers(&mut conn, &plan, &tree, &sender).await;
        }
        drop(conn);
        let keys = SqlStore::<Sqlite>::tree_keys(&tree);
        self.stream_inline(static_numbers_statement(&keys, &[], false), sender)
            .await
    }

    /// Sends the recipients of a batch to groups alone (`groups_alone`), read on a blocking
    /// thread of its own, as streams are.
    async fn stream_groups_alone(
        &self,
        conn: PoolConnection<sqlx::Sqlite>,
        (include, exclude): (&[i64], &[i64]),
        sender: NumberChunks,
    ) -> StoreResult<()> {
        drop(conn);
        self.stream_inline(static_numbers_statement(include, exclude, true), sender)
            .await
    }

    /// Read on a blocking thread of its own, as `stream_groups_alone`.
    async fn stream_details_alone(
        &self,
        conn: PoolConnection<sqlx::Sqlite>,
        (include, exclude): (&[i64], &[i64]),
        wanted: Wanted,
        sender: Chunks<Recipient>,
    ) -> StoreResult<()> {
        drop(conn);
        let mut builder = sqlx::QueryBuilder::<sqlx::Sqlite>::new("");
        SqlStore::<Sqlite>::push_static_numbers(
            &mut builder,
            include,
            exclude,
            true,
            Columns::Details(wanted),
        );
        let sql = builder.into_string();
        let inline = self.inline.clone();
        tokio::task::spawn_blocking(move || inline.stream_details(&sql, wanted.fields, &sender))
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, sqlx::Sqlite>> {
        self.begin_writing("BEGIN IMMEDIATE").await
    }

    /// The write transaction of an import, counted while it is open. It holds the single
    /// writer, so imports take turns in the import queue first: a second one waits for the
    /// first to finish, however long it runs, instead of failing after the write wait as
    /// other writes do. The file's write lock held by another process (an import from the
    /// command line beside a server, or the server's import beside the command line) is
    /// waited for the same way, a write wait at a time, up to [`IMPORT_QUEUE_WAIT`] in all.
    async fn begin_import(
        &self,
        _plan: &PlanId,
    ) -> StoreResult<(Transaction<'static, sqlx::Sqlite>, Importing)> {
        let queued = std::time::Instant::now();
        let turn = tokio::time::timeout(IMPORT_QUEUE_WAIT, self.import_queue.clone().lock_owned())
            .await
            .map_err(|_| StoreError::Busy {
                cause: BusyCause::ImportQueue,
                waited: IMPORT_QUEUE_WAIT,
            })?;
        loop {
            // Set before (a failed `BEGIN` leaves `temp_store` changed) and after (a write
            // released in between may have cleared it).
            self.import_settings
                .store(true, std::sync::atomic::Ordering::Relaxed);
            match self.begin_writing(IMPORT_BEGIN).await {
                Ok(mut tx) => {
                    self.import_settings
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "PRAGMA cache_size = -{IMPORT_CACHE_KIB}"
                    )))
                    .execute(&mut *tx)
                    .await?;
                    return Ok((tx, Importing::start(Some(&self.importing), Some(turn))));
                }
                Err(StoreError::Busy {
                    cause: BusyCause::OtherProcess,
                    ..
                }) => {
                    let waited = queued.elapsed();
                    if waited >= IMPORT_QUEUE_WAIT {
                        return Err(StoreError::Busy {
                            cause: BusyCause::OtherProcess,
                            waited,
                        });
                    }
                    // Each try waited the write wait in SQLite's busy handler; this pause only
                    // keeps a write wait of zero from spinning.
                    tokio::time::sleep(OTHER_PROCESS_PAUSE).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Writers are serialised, so a plain read is as good as a lock.
    const LOCK_GROUP: &'static str = "SELECT version, status, rule, member_count FROM contact_groups \
         WHERE plan_id = $1 AND id = $2";

    const LOCK_PLAN: &'static str = "SELECT id FROM plans WHERE id = $1";

    const LOCK_CONTACT: &'static str =
        "SELECT id FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id = $2";

    /// A group's row and its child ids (comma-separated, in id order), in the column order
    /// [`GroupRow`] is read in.
    const GROUP_ROW: &'static str = "SELECT id, name, description, status, size, auto_update, rule, version, \
         created_at, modified_at, \
         (SELECT group_concat(id, ',') FROM (SELECT child.id FROM group_children gc \
          JOIN contact_groups child ON child.key = gc.child \
          WHERE gc.parent = g.key ORDER BY child.id)) AS child_ids \
         FROM contact_groups g WHERE g.plan_id = $1 AND g.id = $2";

    /// SQLite's default collation already compares byte by byte.
    const TEXT_COLLATE: &'static str = "";

    /// A page of a group without children or rule, as one row: a JSON array of
    /// `[id, phone, first_name, last_name, opted_out]` (the id in hex), the shape
    /// `members_from_json` reads.
    const MEMBER_PAGE: &'static str = "SELECT json_group_array(json_array(hex(id), phone, first_name, last_name, \
         json(CASE WHEN opted_out THEN 'true' ELSE 'false' END)) ORDER BY key) \
         FROM (SELECT c.key, c.id, c.phone, c.first_name, c.last_name, c.opted_out \
         FROM group_members m JOIN contacts c ON c.key = m.contact \
         WHERE m.grp = (SELECT key FROM contact_groups WHERE plan_id = $1 AND id = $2) \
         AND m.contact > CASE WHEN length($3) = 0 THEN 0 ELSE COALESCE( \
             (SELECT key FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id = $3), \
             (SELECT key - 1 FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id > $3 ORDER BY id LIMIT 1), \
             9223372036854775807) END \
         ORDER BY m.contact LIMIT $4 OFFSET $5)";

    /// Names sort byte by byte, as on the other backend.
    const NAME_SORT_KEY: &'static str = "COALESCE(name, '')";

    /// SQLite's `lower()` changes ASCII letters only.
    const SORT_NAME: &'static str = "coalesce(c.sort_name, \
         lower(coalesce(c.first_name || ' ' || c.last_name, c.first_name, c.last_name, '')))";

    const SORT_NAME_LAST: &'static str = "coalesce(c.sort_name_last, \
         lower(coalesce(c.last_name || ' ' || c.first_name, c.last_name, c.first_name, '')))";

    const DELETE_MEMBERS_BY_PHONE: &'static str = "DELETE FROM group_members \
         WHERE grp = (SELECT key FROM contact_groups WHERE plan_id = $1 AND id = $2) \
         AND contact IN (SELECT key FROM contacts \
             WHERE plan = (SELECT key FROM plans WHERE id = $1) AND phone IN (SELECT value FROM json_each($3)))";

    /// Ends a compound select of contact keys: in order, so that its terms are merged.
    const MERGE_ORDER: &'static str = " ORDER BY 1";

    const LOCK_BATCH: &'static str = "SELECT status FROM batches WHERE plan_id = $1 AND id = $2";

    /// Only an `INTEGER PRIMARY KEY` numbers itself, and `key` was added beside the id; writers
    /// take turns, so the next number is free.
    const NEW_PLAN_KEY: &'static str = "(SELECT COALESCE(MAX(key), 0) + 1 FROM plans)";

    /// SQLite keeps no statistics of single values (without STAT4 and ANALYZE), so it reads a
    /// page of a rare gender in creation order by testing every contact.
    const INDEXED_BY: Option<&'static str> = Some(" INDEXED BY ");

    const LOCK_ROWS: Option<&'static str> = None;

    const LOCK_ROWS_KEPT: Option<&'static str> = None;

    /// Writers are serialised: a plain read is as good as a lock, and no two instances claim at once.
    const CLAIM_LOCK: &'static str = "";

    /// A contact's direct groups' names (an unnamed group by its id), as a JSON array.
    const EXPORT_GROUPS: &'static str = "(SELECT json_group_array(COALESCE(g.name, g.id)) \
         FROM group_members gm JOIN contact_groups g ON g.key = gm.grp \
         WHERE gm.contact = c.key AND g.status = 'ACTIVE')";

    fn phone_list(phones: &[&str]) -> String {
        serde_json::Value::from(phones.to_vec()).to_string()
    }

    /// Creates a contact for every number the plan has none for; returns the keys of the
    /// contacts with these numbers, read back in one row (rows returned by the insert would
    /// cross to the async side one at a time).
    async fn insert_contacts(
        conn: &mut Conn<Self>,
        plan: &PlanId,
        numbers: &[&ParsedNumber],
        now: i64,
    ) -> StoreResult<Vec<i64>> {
        let rows: Vec<serde_json::Value> = numbers
            .iter()
            .map(|number| {
                serde_json::json!([
                    hex::encode(ContactId::generate().to_bytes()),
                    number.msisdn.as_str(),
                    number.number_type.code(),
                    number.country,
                ])
            })
            .collect();
        sqlx::query(
            "INSERT INTO contacts (plan, id, phone, number_type, country, created_at, modified_at) \
             SELECT (SELECT key FROM plans WHERE id = $1), unhex(value ->> 0), value ->> 1, value ->> 2, value ->> 3, $2, $2 \
             FROM json_each($3) WHERE true \
             ON CONFLICT (plan, phone) DO NOTHING",
        )
        .bind(plan.as_str())
        .bind(now)
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(&mut *conn)
        .await?;
        let phones: Vec<&str> = numbers.iter().map(|n| n.msisdn.as_str()).collect();
        let keys: String = sqlx::query_scalar(
            "SELECT json_group_array(c.key) FROM json_each($2) p CROSS JOIN contacts c \
             WHERE c.plan = (SELECT key FROM plans WHERE id = $1) AND c.phone = p.value",
        )
        .bind(plan.as_str())
        .bind(Self::phone_list(&phones))
        .fetch_one(&mut *conn)
        .await?;
        Ok(serde_json::from_str(&keys).map_err(|error| sqlx::Error::Decode(Box::new(error)))?)
    }

    /// One pass over the numbers, in the order given, brought back as one row of two JSON
    /// arrays: row by row, a hundred thousand keys would cost more than the writes that follow,
    /// since each row crosses from SQLite's thread to the async side on its own.
    async fn contact_keys(
        conn: &mut Conn<Self>,
        plan: &PlanId,
        phones: &[&str],
    ) -> StoreResult<(Vec<i64>, Vec<String>)> {
        let (keys, missing): (String, String) = sqlx::query_as(
            "SELECT json_group_array(c.key) FILTER (WHERE c.key IS NOT NULL), \
                    json_group_array(p.value) FILTER (WHERE c.key IS NULL) \
             FROM json_each($2) p LEFT JOIN contacts c \
                 ON c.plan = (SELECT key FROM plans WHERE id = $1) AND c.phone = p.value",
        )
        .bind(plan.as_str())
        .bind(Self::phone_list(phones))
        .fetch_one(&mut *conn)
        .await?;
        let decode = |error| sqlx::Error::Decode(Box::new(error));
        Ok((
            serde_json::from_str(&keys).map_err(decode)?,
            serde_json::from_str(&missing).map_err(decode)?,
        ))
    }

    /// `(SELECT value FROM json_each(?))`: a list as one JSON parameter, for `x IN …`.
    fn push_list<'a>(
        builder: &mut sqlx::QueryBuilder<sqlx::Sqlite>,
        items: impl Iterator<Item = &'a str>,
    ) {
        let items: Vec<&str> = items.collect();
        builder
            .push("(SELECT value FROM json_each(")
            .push_bind(serde_json::Value::from(items).to_string())
            .push("))");
    }

    /// `(SELECT unhex(value) FROM json_each(?))`: JSON holds no bytes, so each id travels as
    /// its hex.
    fn push_id_list(builder: &mut sqlx::QueryBuilder<sqlx::Sqlite>, ids: &[ContactId]) {
        let ids: Vec<String> = ids.iter().map(|id| hex::encode(id.to_bytes())).collect();
        builder
            .push("(SELECT unhex(value) FROM json_each(")
            .push_bind(serde_json::Value::from(ids).to_string())
            .push("))");
    }

    /// `(SELECT value FROM json_each(?))`: integers as one JSON parameter.
    fn push_key_list(builder: &mut sqlx::QueryBuilder<sqlx::Sqlite>, keys: Vec<i64>) {
        builder
            .push("(SELECT value FROM json_each(")
            .push_bind(serde_json::Value::from(keys).to_string())
            .push("))");
    }

    /// The contact keys of the direct members of `keys`, as terms of a compound select joined by
    /// `UNION` (or by `EXCEPT` when they are taken out of what precedes). Each term is one range
    /// of `group_members`' primary key, in key order, so that with `Self::MERGE_ORDER` at its end
    /// SQLite merges the ranges instead of building a temporary index of the keys. The keys are
    /// written into the text (they are integers the database gave), so that the inline reader
    /// has nothing to bind.
    /// The key is the rowid.
    fn push_member_contact(builder: &mut sqlx::QueryBuilder<sqlx::Sqlite>, _: &[i64]) {
        builder.push("c.key = u.contact");
    }

    fn push_group_contacts(
        builder: &mut sqlx::QueryBuilder<sqlx::Sqlite>,
        keys: &[i64],
        term: GroupsTerm,
    ) {
        if keys.len() > MAX_MERGED_GROUPS {
            let list: Vec<String> = keys.iter().map(i64::to_string).collect();
            builder.push(format!(
                "SELECT DISTINCT contact FROM group_members WHERE grp IN ({})",
                list.join(", ")
            ));
            return;
        }
        for (index, key) in keys.iter().enumerate() {
            if index > 0 {
                builder.push(match term {
                    GroupsTerm::Kept => " UNION ",
                    GroupsTerm::LeftOut => " EXCEPT ",
                });
            }
            builder.push(format!(
                "SELECT contact FROM group_members WHERE grp = {key}"
            ));
        }
    }

    /// A custom field compared with a value of the same JSON type; any other type, or no field,
    /// makes the comparison false.
    fn push_custom_compare(
        builder: &mut sqlx::QueryBuilder<sqlx::Sqlite>,
        name: &str,
        op: &str,
        value: &FilterValue,
    ) {
        let path = format!("$.\"{name}\"");
        let types = match value {
            FilterValue::Text(_) => "('text')",
            FilterValue::Number(_) => "('integer', 'real')",
            FilterValue::Bool(_) => "('true', 'false')",
        };
        builder
            .push("COALESCE(json_type(c.fields, ")
            .push_bind(path.clone())
            .push(format!(") IN {types} AND json_extract(c.fields, "))
            .push_bind(path)
            .push(format!(") {op} "));
        match value {
            FilterValue::Text(text) => builder.push_bind(text.clone()),
            FilterValue::Number(number) => builder.push_bind(*number),
            // json_extract reads JSON true and false as 1 and 0.
            FilterValue::Bool(flag) => builder.push_bind(i64::from(*flag)),
        };
        builder.push(", FALSE)");
    }

    fn push_custom_is_null(builder: &mut sqlx::QueryBuilder<sqlx::Sqlite>, name: &str) {
        builder
            .push("COALESCE(json_type(c.fields, ")
            .push_bind(format!("$.\"{name}\""))
            .push(") = 'null', TRUE)");
    }

    /// The partial index of `(plan, lower(email))` serves it, with the plan's condition the
    /// search has already.
    fn push_email_is(builder: &mut sqlx::QueryBuilder<sqlx::Sqlite>, _plan: &PlanId, email: &str) {
        builder
            .push(" AND c.email IS NOT NULL AND lower(c.email) = lower(")
            .push_bind(email.to_owned())
            .push(")");
    }

    /// A list as a one-column table `phone`, from one parameter.
    fn push_phone_table<'a>(
        builder: &mut sqlx::QueryBuilder<sqlx::Sqlite>,
        items: impl Iterator<Item = &'a str>,
    ) {
        let items: Vec<&str> = items.collect();
        builder
            .push("(SELECT value AS phone FROM json_each(")
            .push_bind(serde_json::Value::from(items).to_string())
            .push("))");
    }

    /// An import holds the only writer from its first chunk to its commit, and inserts
    /// contacts in no other way meanwhile, so that it can give the keys itself, past the
    /// largest. (Should anything else insert a contact within the import, the key it takes
    /// would fail the import's next insert, not be shared.)
    async fn next_contact_key(conn: &mut Conn<Self>) -> StoreResult<Option<i64>> {
        let next: i64 = sqlx::query_scalar("SELECT coalesce(max(key), 0) + 1 FROM contacts")
            .fetch_one(&mut *conn)
            .await?;
        Ok(Some(next))
    }

    /// Multi-row `VALUES` (binding is cheaper than unpacking JSON), with each row's key: the
    /// rows inserted are then known from the count of changes, where a `RETURNING` row for each
    /// contact cost a fifth of the import's time. SQLite binds at most 32,766 parameters a
    /// statement and a contact takes 16, so a chunk takes several statements: sent as one
    /// query, which sqlx runs statement after statement, so that the writer's connection does
    /// not wait for a round trip between them.
    fn bind_import_contacts(
        plan: i64,
        contacts: &[ContactValues],
        first_key: Option<i64>,
        now: i64,
    ) -> Self::NewContacts {
        // `next_contact_key` always gives the first.
        let first = first_key.unwrap_or(1);
        // The plan's key and the time are integers of the database's and the clock's: written
        // into the text, so that each row binds only its own values.
        let constants = format!(", {plan}, {now}, {now}");
        let mut key = first;
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new("");
        for (index, part) in contacts.chunks(2000).enumerate() {
            if index > 0 {
                insert.push("; ");
            }
            insert.push(
                "INSERT INTO contacts (key, id, phone, first_name, last_name, email, gender, \
                 fields, number_type, country, sort_name, sort_name_last, opted_out, \
                 opted_out_at, opted_out_reason, time_zone, plan, created_at, modified_at) ",
            );
            insert.push_values(part, |mut row, c| {
                row.push_bind(key)
                    .push_bind(c.id.to_bytes().to_vec())
                    .push_bind(c.phone.as_str())
                    .push_bind(c.first_name.as_deref())
                    .push_bind(c.last_name.as_deref())
                    .push_bind(c.email.as_deref())
                    .push_bind(c.gender.as_deref())
                    .push_bind(c.fields.as_str())
                    .push_bind(c.number_type)
                    .push_bind(c.country.as_deref())
                    .push_bind(c.sort_name.as_deref())
                    .push_bind(c.sort_name_last.as_deref())
                    .push_bind(c.opted_out)
                    .push_bind(c.opted_out_at)
                    .push_bind(c.opted_out_reason.as_deref())
                    .push_bind(c.time_zone.as_deref())
                    .push_unseparated(&constants);
                key += 1;
            });
            insert.push(" ON CONFLICT (plan, phone) DO NOTHING");
        }
        NewContacts { first, insert }
    }

    /// `contacts` are those `bound` was made of. Where fewer rows went in than were bound (some
    /// numbers were there), the keys present in the chunk's range say which.
    async fn insert_import_contacts(
        conn: &mut Conn<Self>,
        bound: Self::NewContacts,
        contacts: &[ContactValues],
    ) -> StoreResult<Vec<Option<i64>>> {
        let NewContacts { first, mut insert } = bound;
        let rows = contacts.len();
        if rows == 0 {
            return Ok(Vec::new());
        }
        let added = insert.build().execute(&mut *conn).await?.rows_affected();
        let last = first + rows as i64 - 1;
        if added == rows as u64 {
            return Ok((first..=last).map(Some).collect());
        }
        let present: std::collections::HashSet<i64> =
            sqlx::query_scalar("SELECT key FROM contacts WHERE key BETWEEN $1 AND $2")
                .bind(first)
                .bind(last)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect();
        Ok((first..=last)
            .map(|key| present.contains(&key).then_some(key))
            .collect())
    }

    /// `c.phone IN (…)` for a list of numbers.
    fn push_phone_in(builder: &mut sqlx::QueryBuilder<sqlx::Sqlite>, phones: &[&str]) {
        builder.push("c.phone IN ");
        Self::push_list(builder, phones.iter().copied());
    }

    /// Rewrites the contacts an import changed (all but the phone number).
    async fn update_import_contacts(
        conn: &mut Conn<Self>,
        plan: &PlanId,
        contacts: &[ContactValues],
        now: i64,
    ) -> StoreResult<()> {
        if contacts.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = contacts.iter().map(contact_json).collect();
        sqlx::query(
            "UPDATE contacts SET first_name = u.value ->> 2, last_name = u.value ->> 3, \
             email = u.value ->> 4, gender = u.value ->> 5, fields = u.value ->> 6, \
             sort_name = u.value ->> 9, sort_name_last = u.value ->> 10, \
             opted_out = u.value ->> 11, opted_out_at = u.value ->> 12, \
             opted_out_reason = u.value ->> 13, time_zone = u.value ->> 14, modified_at = $2 \
             FROM json_each($3) AS u \
             WHERE contacts.plan = (SELECT key FROM plans WHERE id = $1) \
                 AND contacts.id = unhex(u.value ->> 0)",
        )
        .bind(plan.as_str())
        .bind(now)
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn insert_import_errors(
        conn: &mut Conn<Self>,
        plan: &PlanId,
        import: &ImportId,
        rows: &[RejectedRow],
    ) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|row| serde_json::json!([row.row, row.reason]))
            .collect();
        sqlx::query(
            "INSERT INTO import_errors (import, row_number, reason) \
             SELECT (SELECT key FROM imports WHERE plan_id = $1 AND id = $2), value ->> 0, \
             value ->> 1 FROM json_each($3) WHERE true \
             ON CONFLICT DO NOTHING",
        )
        .bind(plan.as_str())
        .bind(import.as_str())
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn cache_kib(conn: &mut sqlx::SqliteConnection) -> i64 {
        let size: i64 = sqlx::query_scalar("PRAGMA cache_size")
            .fetch_one(conn)
            .await
            .expect("cache_size");
        -size
    }

    async fn temp_store(conn: &mut sqlx::SqliteConnection) -> i64 {
        sqlx::query_scalar("PRAGMA temp_store")
            .fetch_one(conn)
            .await
            .expect("temp_store")
    }

    /// The import's cache is the writer's only while the import holds it, whether the import
    /// commits or fails; its temporary tables stay on disk (`temp_store` is the default, 0,
    /// once its transaction has begun).
    #[tokio::test]
    async fn an_import_has_its_larger_cache_only_while_it_holds_the_writer() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("cache.db").display());
        let store = Sqlite::connect(&url, StoreOptions::default())
            .await
            .expect("connect");
        let plan = PlanId::generate();
        for commit in [true, false] {
            let (mut tx, importing) = store.begin_import(&plan).await.expect("import begins");
            assert_eq!(cache_kib(&mut tx).await, IMPORT_CACHE_KIB);
            assert_eq!(temp_store(&mut tx).await, 0);
            if commit {
                tx.commit().await.expect("commit");
            } else {
                drop(tx);
            }
            drop(importing);
            let mut tx = store.begin_write().await.expect("write begins");
            assert_eq!(
                cache_kib(&mut tx).await,
                CACHE_KIB,
                "after commit: {commit}"
            );
            assert_eq!(temp_store(&mut tx).await, 0);
            tx.rollback().await.expect("rollback");
        }
    }
}
