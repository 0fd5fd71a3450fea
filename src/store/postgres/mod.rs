//! PostgreSQL: several stateless instances may share one database. Writers lock the rows they
//! change (`FOR UPDATE`), so concurrent updates of one group queue instead of losing each other.

mod direct;
mod merge;

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Transaction};

use super::dialect::{Conn, Dialect};
use super::sql::ContactValues;
use super::sql::{Recipient, SqlStore, TreeGroup, Wanted, push_plan_key};
use super::*;
use crate::domain::filter::Value as FilterValue;
use crate::domain::ids::{ContactId, GroupId, ImportId, PlanId};
use crate::domain::msisdn::ParsedNumber;
use direct::DirectReader;

#[derive(Clone)]
pub(crate) struct Postgres {
    pool: PgPool,
    /// The hottest reads, without the pool's pings.
    direct: Arc<DirectReader>,
    /// How long a write waits for a connection.
    write_wait: Duration,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A chunk of contacts as one array per column, for `unnest`.
struct ContactColumns {
    ids: Vec<Vec<u8>>,
    phones: Vec<String>,
    first_names: Vec<Option<String>>,
    last_names: Vec<Option<String>>,
    emails: Vec<Option<String>>,
    genders: Vec<Option<String>>,
    time_zones: Vec<Option<String>>,
    fields: Vec<String>,
    number_types: Vec<Option<i16>>,
    countries: Vec<Option<String>>,
    sort_names: Vec<Option<String>>,
    sort_names_last: Vec<Option<String>>,
    opted_out: Vec<bool>,
    opted_out_at: Vec<Option<i64>>,
    opted_out_reasons: Vec<Option<String>>,
}

impl ContactColumns {
    fn of(contacts: &[ContactValues]) -> Self {
        let text =
            |f: fn(&ContactValues) -> &String| contacts.iter().map(|c| f(c).clone()).collect();
        let optional = |f: fn(&ContactValues) -> &Option<String>| {
            contacts.iter().map(|c| f(c).clone()).collect()
        };
        Self {
            ids: contacts.iter().map(|c| c.id.to_bytes().to_vec()).collect(),
            phones: text(|c| &c.phone),
            first_names: optional(|c| &c.first_name),
            last_names: optional(|c| &c.last_name),
            emails: optional(|c| &c.email),
            genders: optional(|c| &c.gender),
            time_zones: optional(|c| &c.time_zone),
            fields: text(|c| &c.fields),
            number_types: contacts.iter().map(|c| c.number_type).collect(),
            countries: optional(|c| &c.country),
            sort_names: optional(|c| &c.sort_name),
            sort_names_last: optional(|c| &c.sort_name_last),
            opted_out: contacts.iter().map(|c| c.opted_out).collect(),
            opted_out_at: contacts.iter().map(|c| c.opted_out_at).collect(),
            opted_out_reasons: optional(|c| &c.opted_out_reason),
        }
    }
}

impl Postgres {
    pub async fn connect(url: &str, store_options: StoreOptions) -> StoreResult<Self> {
        // Our statements are short or set-based; JIT compilation cost more than it saved in
        // every plan measured (200 ms to resolve a 100,000-member batch).
        let options = PgConnectOptions::from_str(url)?.options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(store_options.write_wait)
            .connect_with(options.clone())
            .await?;
        // Several instances may start at once; the migrator takes an advisory lock.
        MIGRATOR.run(&pool).await?;
        let direct = Arc::new(DirectReader::new(options));
        Ok(Self {
            pool,
            direct,
            write_wait: store_options.write_wait,
        })
    }

    /// One statement over arrays: a contact for each number the plan does not have; returns
    /// the numbers written and their keys.
    async fn insert_new_contacts(
        conn: &mut Conn<Self>,
        plan: &PlanId,
        numbers: &[&ParsedNumber],
        now: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        let ids: Vec<Vec<u8>> = numbers
            .iter()
            .map(|_| ContactId::generate().to_bytes().to_vec())
            .collect();
        let phones: Vec<&str> = numbers.iter().map(|n| n.msisdn.as_str()).collect();
        let types: Vec<i16> = numbers.iter().map(|n| n.number_type.code()).collect();
        let countries: Vec<Option<&str>> = numbers.iter().map(|n| n.country.as_deref()).collect();
        let added: String = sqlx::query_scalar(
            "WITH added AS (\
                 INSERT INTO contacts (plan, id, phone, number_type, country, created_at, modified_at) \
                 SELECT (SELECT key FROM plans WHERE id = $1), t.id, t.phone, t.number_type, t.country, $2, $2 \
                 FROM unnest($3::bytea[], $4::text[], $5::smallint[], $6::text[]) \
                     AS t(id, phone, number_type, country) \
                 ON CONFLICT (plan, phone) DO NOTHING RETURNING phone, key) \
             SELECT COALESCE(json_agg(json_build_array(phone, key)), '[]')::text FROM added",
        )
        .bind(plan.as_str())
        .bind(now)
        .bind(ids)
        .bind(&phones)
        .bind(types)
        .bind(countries)
        .fetch_one(&mut *conn)
        .await?;
        Ok(serde_json::from_str(&added).map_err(|error| sqlx::Error::Decode(Box::new(error)))?)
    }
}

/// The first integer of the advisory locks that queue one plan's imports.
const IMPORT_LOCKS: i32 = 0x526f_7374; // "Rost"

/// A queued import's pauses between tries for its plan's turn: short at first, as most imports
/// are small, then once a second.
const IMPORT_QUEUE_FIRST_PAUSE: Duration = Duration::from_millis(20);
const IMPORT_QUEUE_LAST_PAUSE: Duration = Duration::from_secs(1);

impl Dialect for Postgres {
    type Db = sqlx::Postgres;
    type Done = sqlx::postgres::PgQueryResult;
    type List = Vec<String>;
    type NewContacts = sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>;

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    async fn group_row(&self, plan: &PlanId, id: &GroupId) -> StoreResult<GroupRow> {
        self.direct
            .read(|conn| {
                Box::pin(
                    sqlx::query_as(Self::GROUP_ROW)
                        .bind(plan.as_str().to_owned())
                        .bind(id.as_str().to_owned())
                        .fetch_optional(conn),
                )
            })
            .await?
            .ok_or(StoreError::NotFound(Entity::Group))
    }

    async fn member_page_json(
        &self,
        plan: &PlanId,
        id: &GroupId,
        after: &[u8],
        limit: i64,
        offset: i64,
    ) -> StoreResult<Option<String>> {
        self.direct
            .read(|conn| {
                Box::pin(
                    sqlx::query_scalar(Self::MEMBER_PAGE)
                        .bind(plan.as_str().to_owned())
                        .bind(id.as_str().to_owned())
                        .bind(after.to_vec())
                        .bind(limit)
                        .bind(offset)
                        .fetch_one(conn),
                )
            })
            .await
    }

    /// Sends the phones of a tree's members, on the connection that read the tree (and, to merge
    /// several groups, a second connection of the pool for the numbers if one is free).
    async fn stream_tree(
        &self,
        mut conn: PoolConnection<sqlx::Postgres>,
        plan: PlanId,
        tree: Vec<TreeGroup>,
        sender: NumberChunks,
    ) -> StoreResult<()> {
        if tree.len() < 2 || !SqlStore::<Postgres>::is_static(&tree) {
            return SqlStore::<Postgres>::stream_tree_numbers(&mut conn, &plan, &tree, &sender)
                .await;
        }
        let keys = SqlStore::<Postgres>::tree_keys(&tree);
        let mut lookup = self.pool.try_acquire();
        let lookup = lookup.as_deref_mut();
        let how = merge::Look {
            skip_opted_out: false,
            wanted: Wanted::default(),
        };
        merge::send_merged(&mut conn, lookup, (&keys, &[]), how, &sender).await
    }

    /// Sends the recipients of a batch to groups alone (`groups_alone`), merged here (with a
    /// second connection of the pool for the numbers if one is free).
    async fn stream_groups_alone(
        &self,
        mut conn: PoolConnection<sqlx::Postgres>,
        (include, exclude): (&[i64], &[i64]),
        sender: NumberChunks,
    ) -> StoreResult<()> {
        let mut lookup = self.pool.try_acquire();
        let lookup = lookup.as_deref_mut();
        let how = merge::Look {
            skip_opted_out: true,
            wanted: Wanted::default(),
        };
        merge::send_merged(&mut conn, lookup, (include, exclude), how, &sender).await
    }

    /// As `stream_groups_alone`, each recipient with what its contact holds.
    async fn stream_details_alone(
        &self,
        mut conn: PoolConnection<sqlx::Postgres>,
        (include, exclude): (&[i64], &[i64]),
        wanted: Wanted,
        sender: Chunks<Recipient>,
    ) -> StoreResult<()> {
        let mut lookup = self.pool.try_acquire();
        let lookup = lookup.as_deref_mut();
        let how = merge::Look {
            skip_opted_out: true,
            wanted,
        };
        merge::send_merged(&mut conn, lookup, (include, exclude), how, &sender).await
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(|error| match error {
            sqlx::Error::PoolTimedOut => StoreError::Busy {
                cause: BusyCause::Connections,
                waited: self.write_wait,
            },
            other => StoreError::Database(other),
        })
    }

    /// A plan's imports run one at a time: each is one transaction over many chunks, and two
    /// of them writing the same new numbers in turn each came to wait for a number the other
    /// had written and not yet committed (a deadlock, and one failed import). Other writes do
    /// not wait for an import. The turn is a transaction-level advisory lock on the plan's key,
    /// in a key space of its own (the two-integer form; the migrator uses the one-integer
    /// form), taken with `pg_try_advisory_xact_lock`: a queued import gives its connection
    /// back between tries, so that imports queued on one plan cannot take the pool from other
    /// writes, reads and the imports' own lease renewals, and it gives up after
    /// [`IMPORT_QUEUE_WAIT`].
    async fn begin_import(
        &self,
        plan: &PlanId,
    ) -> StoreResult<(Transaction<'static, sqlx::Postgres>, Importing)> {
        let queued = std::time::Instant::now();
        let mut pause = IMPORT_QUEUE_FIRST_PAUSE;
        loop {
            let mut tx = self.begin_write().await?;
            let turn: Option<bool> = sqlx::query_scalar(
                "SELECT pg_try_advisory_xact_lock($2, (key & 2147483647)::int) FROM plans WHERE id = $1",
            )
            .bind(plan.as_str())
            .bind(IMPORT_LOCKS)
            .fetch_optional(&mut *tx)
            .await?;
            // No plan: the import's first statement says so.
            if turn != Some(false) {
                return Ok((tx, Importing::start(None, None)));
            }
            tx.rollback().await?;
            if queued.elapsed() >= IMPORT_QUEUE_WAIT {
                return Err(StoreError::Busy {
                    cause: BusyCause::ImportQueue,
                    waited: IMPORT_QUEUE_WAIT,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(IMPORT_QUEUE_LAST_PAUSE);
        }
    }

    const LOCK_GROUP: &'static str = "SELECT version, status, rule, member_count FROM contact_groups \
         WHERE plan_id = $1 AND id = $2 FOR UPDATE";

    const LOCK_PLAN: &'static str = "SELECT id FROM plans WHERE id = $1 FOR UPDATE";

    const LOCK_CONTACT: &'static str = "SELECT id FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id = $2 FOR UPDATE";

    /// A group's row and its child ids (comma-separated, in id order).
    const GROUP_ROW: &'static str = "SELECT id, name, description, status, size, auto_update, rule, version, \
         created_at, modified_at, \
         (SELECT string_agg(child.id, ',' ORDER BY child.id COLLATE \"C\") \
          FROM group_children gc JOIN contact_groups child ON child.key = gc.child \
          WHERE gc.parent = g.key) AS child_ids \
         FROM contact_groups g WHERE g.plan_id = $1 AND g.id = $2";

    /// Text compares byte by byte, as on SQLite, whatever the database's locale.
    const TEXT_COLLATE: &'static str = " COLLATE \"C\"";

    /// A page of a group without children or rule, as one row: a JSON array of
    /// `[id, phone, first_name, last_name, opted_out]` (the id in hex), the shape
    /// `members_from_json` reads.
    const MEMBER_PAGE: &'static str = "SELECT json_agg(json_build_array(encode(id, 'hex'), phone, first_name, last_name, \
         opted_out) ORDER BY key)::text \
         FROM (SELECT c.key, c.id, c.phone, c.first_name, c.last_name, c.opted_out \
         FROM group_members m JOIN contacts c \
             ON c.plan = (SELECT key FROM plans WHERE id = $1) AND c.key = m.contact \
         WHERE m.grp = (SELECT key FROM contact_groups WHERE plan_id = $1 AND id = $2) \
         AND m.contact > CASE WHEN length($3) = 0 THEN 0 ELSE COALESCE( \
             (SELECT key FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id = $3), \
             (SELECT key - 1 FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id > $3 ORDER BY id LIMIT 1), \
             9223372036854775807) END \
         ORDER BY m.contact LIMIT $4 OFFSET $5) page";

    /// Names sort byte by byte, as on the other backend, not by the database's locale.
    const NAME_SORT_KEY: &'static str = "COALESCE(name, '') COLLATE \"C\"";

    /// `lower()` in the "C" collation changes ASCII letters only, as SQLite's does.
    const SORT_NAME: &'static str = "coalesce(c.sort_name, \
         lower(coalesce(c.first_name || ' ' || c.last_name, c.first_name, c.last_name, '') COLLATE \"C\"))";

    const SORT_NAME_LAST: &'static str = "coalesce(c.sort_name_last, \
         lower(coalesce(c.last_name || ' ' || c.first_name, c.last_name, c.first_name, '') COLLATE \"C\"))";

    const DELETE_MEMBERS_BY_PHONE: &'static str = "DELETE FROM group_members \
         WHERE grp = (SELECT key FROM contact_groups WHERE plan_id = $1 AND id = $2) \
         AND contact IN (SELECT key FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = $1) AND phone = ANY($3::text[]))";

    /// PostgreSQL orders (or hashes) set operations itself: no order is asked for.
    const MERGE_ORDER: &'static str = "";

    /// The identity column's next value.
    const NEW_PLAN_KEY: &'static str = "DEFAULT";

    /// Autovacuum's statistics hold the common values of each column: a rare one is known.
    const INDEXED_BY: Option<&'static str> = None;

    const LOCK_ROWS: Option<&'static str> = Some(" FOR UPDATE");

    const LOCK_ROWS_KEPT: Option<&'static str> = Some(" FOR NO KEY UPDATE");

    const LOCK_BATCH: &'static str =
        "SELECT status FROM batches WHERE plan_id = $1 AND id = $2 FOR UPDATE";

    /// A claim skips batches another instance is claiming, instead of waiting for it.
    const CLAIM_LOCK: &'static str = " FOR UPDATE SKIP LOCKED";

    /// A contact's direct groups' names (an unnamed group by its id), as a JSON array.
    const EXPORT_GROUPS: &'static str = "(SELECT COALESCE(json_agg(COALESCE(g.name, g.id) ORDER BY g.id)::text, '[]') \
         FROM group_members gm JOIN contact_groups g ON g.key = gm.grp \
         WHERE gm.contact = c.key AND g.status = 'ACTIVE')";

    fn phone_list(phones: &[&str]) -> Vec<String> {
        phones.iter().map(|phone| (*phone).to_owned()).collect()
    }

    /// Creates a contact for every number the plan has none for, in one statement over arrays;
    /// returns the keys of the contacts with these numbers: those it wrote, and those another
    /// instance wrote first. Another writer's contact is locked as `contact_keys` locks the
    /// contacts it finds; if a delete removed it before the lock, its number is missing again
    /// and is written in the next round.
    async fn insert_contacts(
        conn: &mut Conn<Self>,
        plan: &PlanId,
        numbers: &[&ParsedNumber],
        now: i64,
    ) -> StoreResult<Vec<i64>> {
        // Each round needs another writer to insert a number and a third to delete it between
        // our two statements: more than a few in a row is not contention but a fault.
        const ROUNDS: usize = 8;
        let mut keys = Vec::with_capacity(numbers.len());
        let mut pending: Vec<&ParsedNumber> = numbers.to_vec();
        for _ in 0..ROUNDS {
            if pending.is_empty() {
                break;
            }
            let added = Self::insert_new_contacts(conn, plan, &pending, now).await?;
            keys.extend(added.iter().map(|(_, key)| *key));
            let written: std::collections::HashSet<&str> =
                added.iter().map(|(phone, _)| phone.as_str()).collect();
            let raced: Vec<&str> = pending
                .iter()
                .map(|n| n.msisdn.as_str())
                .filter(|phone| !written.contains(phone))
                .collect();
            if raced.is_empty() {
                return Ok(keys);
            }
            let (found, missing) = Self::contact_keys(conn, plan, &raced).await?;
            keys.extend(found);
            let missing: std::collections::HashSet<String> = missing.into_iter().collect();
            pending.retain(|n| missing.contains(n.msisdn.as_str()));
        }
        if pending.is_empty() {
            Ok(keys)
        } else {
            Err(sqlx::Error::Protocol(format!(
                "{} numbers were taken and deleted again by other writers {ROUNDS} times over",
                pending.len()
            ))
            .into())
        }
    }

    /// One index scan for the whole array (`= ANY`), which reads the index in order. The
    /// contacts found are locked as the memberships' check will lock them (`FOR KEY SHARE`), so
    /// that one deleted meanwhile by another transaction is waited for and then counts as
    /// missing (a new contact is made for its number) instead of failing that check. The locks
    /// are taken in key order (the sort runs below the locking), the order a bulk delete of
    /// contacts locks them in (`remove_contacts`), so that the two wait for each other instead
    /// of deadlocking.
    async fn contact_keys(
        conn: &mut Conn<Self>,
        plan: &PlanId,
        phones: &[&str],
    ) -> StoreResult<(Vec<i64>, Vec<String>)> {
        let found: Vec<(String, i64)> = sqlx::query_as(
            "SELECT phone, key FROM contacts \
             WHERE plan = (SELECT key FROM plans WHERE id = $1) AND phone = ANY($2::text[]) \
             ORDER BY key FOR KEY SHARE",
        )
        .bind(plan.as_str())
        .bind(phones)
        .fetch_all(&mut *conn)
        .await?;
        let known: std::collections::HashSet<&str> =
            found.iter().map(|(phone, _)| phone.as_str()).collect();
        let missing = phones
            .iter()
            .filter(|phone| !known.contains(**phone))
            .map(|phone| (*phone).to_owned())
            .collect();
        Ok((found.iter().map(|(_, key)| *key).collect(), missing))
    }

    /// `(SELECT unnest(?::text[]))`: a list as one array parameter, for `x IN …`.
    fn push_list<'a>(
        builder: &mut sqlx::QueryBuilder<sqlx::Postgres>,
        items: impl Iterator<Item = &'a str>,
    ) {
        let items: Vec<String> = items.map(str::to_owned).collect();
        builder
            .push("(SELECT unnest(")
            .push_bind(items)
            .push("::text[]))");
    }

    /// `(SELECT unnest(?::bytea[]))`: contact ids as one array parameter.
    fn push_id_list(builder: &mut sqlx::QueryBuilder<sqlx::Postgres>, ids: &[ContactId]) {
        let ids: Vec<Vec<u8>> = ids.iter().map(|id| id.to_bytes().to_vec()).collect();
        builder
            .push("(SELECT unnest(")
            .push_bind(ids)
            .push("::bytea[]))");
    }

    /// `(SELECT unnest(…) AS value)`: integers as one array parameter.
    fn push_key_list(builder: &mut sqlx::QueryBuilder<sqlx::Postgres>, keys: Vec<i64>) {
        builder
            .push("(SELECT unnest(")
            .push_bind(keys)
            .push("::bigint[]) AS value)");
    }

    /// The primary key is (plan, key): the plan is the groups'.
    fn push_member_contact(builder: &mut sqlx::QueryBuilder<sqlx::Postgres>, groups: &[i64]) {
        builder
            .push(
                "c.plan = (SELECT p.key FROM contact_groups g JOIN plans p ON p.id = g.plan_id \
                 WHERE g.key = ANY(",
            )
            .push_bind(groups.to_vec())
            .push(") LIMIT 1) AND c.key = u.contact");
    }

    /// The contact keys of the direct members of `keys` as one term of a compound select, kept or
    /// left out alike: ranges of `group_members`' primary key, made distinct when there are
    /// several (streams of several groups are merged by `merge` instead).
    fn push_group_contacts(
        builder: &mut sqlx::QueryBuilder<sqlx::Postgres>,
        keys: &[i64],
        _: GroupsTerm,
    ) {
        builder
            .push(if keys.len() > 1 {
                "SELECT DISTINCT contact FROM group_members WHERE grp = ANY("
            } else {
                "SELECT contact FROM group_members WHERE grp = ANY("
            })
            .push_bind(keys.to_vec())
            .push(")");
    }

    /// A custom field compared with a value of the same JSON type; any other type, or no field,
    /// makes the comparison false. `CASE` guarantees the cast only sees values of the right type.
    fn push_custom_compare(
        builder: &mut sqlx::QueryBuilder<sqlx::Postgres>,
        name: &str,
        op: &str,
        value: &FilterValue,
    ) {
        let (json_type, cast) = match value {
            FilterValue::Text(_) => ("string", " COLLATE \"C\""),
            FilterValue::Number(_) => ("number", "::double precision"),
            FilterValue::Bool(_) => ("boolean", "::boolean"),
        };
        builder
            .push("COALESCE(CASE WHEN jsonb_typeof(c.fields::jsonb -> ")
            .push_bind(name.to_owned())
            .push(format!(
                "::text) = '{json_type}' THEN (c.fields::jsonb ->> "
            ))
            .push_bind(name.to_owned())
            .push(format!("::text){cast} {op} "));
        match value {
            FilterValue::Text(text) => builder.push_bind(text.clone()),
            FilterValue::Number(number) => builder.push_bind(*number),
            FilterValue::Bool(flag) => builder.push_bind(*flag),
        };
        builder.push(" END, FALSE)");
    }

    fn push_custom_is_null(builder: &mut sqlx::QueryBuilder<sqlx::Postgres>, name: &str) {
        builder
            .push("COALESCE(jsonb_typeof(c.fields::jsonb -> ")
            .push_bind(name.to_owned())
            .push("::text) = 'null', TRUE)");
    }

    /// The hash index of the email key (migration 31) serves it: the key names the plan, so
    /// that an address many contacts of other plans share is neither read nor counted in the
    /// statistics of this plan's search.
    fn push_email_is(builder: &mut sqlx::QueryBuilder<sqlx::Postgres>, plan: &PlanId, email: &str) {
        builder.push(" AND (c.plan::text || ' ' || lower(c.email)) = (");
        push_plan_key(builder, plan);
        builder
            .push("::text || ' ' || lower(")
            .push_bind(email.to_owned())
            .push("))");
    }

    /// A list as a one-column table `phone`, from one parameter.
    fn push_phone_table<'a>(
        builder: &mut sqlx::QueryBuilder<sqlx::Postgres>,
        items: impl Iterator<Item = &'a str>,
    ) {
        let items: Vec<&str> = items.collect();
        let items: Vec<String> = items.iter().map(|item| (*item).to_owned()).collect();
        builder
            .push("(SELECT unnest(")
            .push_bind(items)
            .push("::text[]) AS phone)");
    }

    /// The sequence of `contacts.key` draws them.
    async fn next_contact_key(_: &mut Conn<Self>) -> StoreResult<Option<i64>> {
        Ok(None)
    }

    /// One statement over arrays.
    fn bind_import_contacts(
        plan: i64,
        contacts: &[ContactValues],
        _: Option<i64>,
        now: i64,
    ) -> Self::NewContacts {
        let c = ContactColumns::of(contacts);
        sqlx::query(
            "INSERT INTO contacts (plan, id, phone, first_name, last_name, email, gender, fields, \
             number_type, country, sort_name, sort_name_last, opted_out, opted_out_at, \
             opted_out_reason, time_zone, created_at, modified_at) \
             SELECT $1, t.*, $2, $2 FROM unnest($3::bytea[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[], $10::smallint[], $11::text[], $12::text[], \
             $13::text[], $14::boolean[], $15::bigint[], $16::text[], $17::text[]) AS t \
             ON CONFLICT (plan, phone) DO NOTHING RETURNING phone, key",
        )
        .bind(plan)
        .bind(now)
        .bind(c.ids)
        .bind(c.phones)
        .bind(c.first_names)
        .bind(c.last_names)
        .bind(c.emails)
        .bind(c.genders)
        .bind(c.fields)
        .bind(c.number_types)
        .bind(c.countries)
        .bind(c.sort_names)
        .bind(c.sort_names_last)
        .bind(c.opted_out)
        .bind(c.opted_out_at)
        .bind(c.opted_out_reasons)
        .bind(c.time_zones)
    }

    async fn insert_import_contacts(
        conn: &mut Conn<Self>,
        bound: Self::NewContacts,
        contacts: &[ContactValues],
    ) -> StoreResult<Vec<Option<i64>>> {
        if contacts.is_empty() {
            return Ok(Vec::new());
        }
        let inserted: std::collections::HashMap<String, i64> = bound
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((sqlx::Row::try_get(row, 0)?, sqlx::Row::try_get(row, 1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(contacts
            .iter()
            .map(|contact| inserted.get(&contact.phone).copied())
            .collect())
    }

    /// `c.phone = ANY(…)`: an array the planner probes the unique index with, whatever it believes
    /// of the table's size in the middle of a large import.
    fn push_phone_in(builder: &mut sqlx::QueryBuilder<sqlx::Postgres>, phones: &[&str]) {
        let phones: Vec<String> = phones.iter().map(|phone| (*phone).to_owned()).collect();
        builder
            .push("c.phone = ANY(")
            .push_bind(phones)
            .push("::text[])");
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
        let c = ContactColumns::of(contacts);
        sqlx::query(
            "UPDATE contacts SET first_name = u.first_name, last_name = u.last_name, \
             email = u.email, gender = u.gender, fields = u.fields, sort_name = u.sort_name, \
             sort_name_last = u.sort_name_last, opted_out = u.opted_out, \
             opted_out_at = u.opted_out_at, opted_out_reason = u.opted_out_reason, \
             time_zone = u.time_zone, modified_at = $2 \
             FROM unnest($3::bytea[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
             $9::text[], $10::text[], $11::boolean[], $12::bigint[], $13::text[], $14::text[]) \
             AS u(id, first_name, last_name, email, gender, fields, sort_name, sort_name_last, \
             opted_out, opted_out_at, opted_out_reason, time_zone) \
             WHERE contacts.plan = (SELECT key FROM plans WHERE id = $1) AND contacts.id = u.id",
        )
        .bind(plan.as_str())
        .bind(now)
        .bind(c.ids)
        .bind(c.first_names)
        .bind(c.last_names)
        .bind(c.emails)
        .bind(c.genders)
        .bind(c.fields)
        .bind(c.sort_names)
        .bind(c.sort_names_last)
        .bind(c.opted_out)
        .bind(c.opted_out_at)
        .bind(c.opted_out_reasons)
        .bind(c.time_zones)
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
        let numbers: Vec<i64> = rows.iter().map(|row| row.row as i64).collect();
        let reasons: Vec<String> = rows.iter().map(|row| row.reason.clone()).collect();
        sqlx::query(
            "INSERT INTO import_errors (import, row_number, reason) \
             SELECT (SELECT key FROM imports WHERE plan_id = $1 AND id = $2), t.row_number, \
             t.reason FROM unnest($3::bigint[], $4::text[]) \
             AS t(row_number, reason) ON CONFLICT DO NOTHING",
        )
        .bind(plan.as_str())
        .bind(import.as_str())
        .bind(numbers)
        .bind(reasons)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
