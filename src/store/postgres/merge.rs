//! The distinct numbers of several groups on PostgreSQL, merged here. Each group's members are
//! one range of `group_members`' primary key in contact key order, read a page at a time (after
//! the last key read); merging the ranges gives the keys distinct and in order without the
//! database sorting or hashing a million of them (PostgreSQL 15 does not merge the branches of a
//! `UNION` itself, and its plan for the same `DISTINCT` in SQL sorts on disk). Excluded groups
//! are ranges read the same way and skipped as the merge passes them. The numbers of the merged
//! keys are looked up a chunk at a time on a second connection while the merge goes on (or, when
//! the pool has none to spare, on the same one between pages: streams waiting for each other's
//! connections could otherwise wait until the pool's timeout), leaving out opted-out contacts
//! where asked; with what each contact holds for a personalized body when the caller wants
//! [`Recipient`]s rather than numbers. Both connections read one repeatable-read snapshot (the first exports it, the
//! second takes it), so the result is one consistent view of the groups.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;

use sqlx::postgres::PgConnection;
use sqlx::{Acquire, Connection};
use tokio::sync::mpsc;

use super::{Chunks, Recipient, STREAM_CHUNK, StoreResult, Wanted};
use crate::store::sql::DetailsRow;

/// How the merged contacts are read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Look {
    /// Leave out the contacts who opted out.
    pub skip_opted_out: bool,
    /// Which details to read (for [`Recipient`]s): the others come as NULL.
    pub wanted: Wanted,
}

/// What the merge sends of each contact it keeps: its number, or a [`Recipient`].
pub(super) trait Looked: Sized + Send {
    /// The rows of the contacts `keys` (in order) of the plan `plan` (its key), opted-out ones
    /// left out as `how` says.
    fn look_up(
        conn: &mut PgConnection,
        plan: i64,
        keys: &[i64],
        how: Look,
    ) -> impl Future<Output = StoreResult<Vec<Self>>> + Send;
}

impl Looked for String {
    async fn look_up(
        conn: &mut PgConnection,
        plan: i64,
        keys: &[i64],
        how: Look,
    ) -> StoreResult<Vec<Self>> {
        numbers_of(conn, plan, keys, how.skip_opted_out).await
    }
}

impl Looked for Recipient {
    async fn look_up(
        conn: &mut PgConnection,
        plan: i64,
        keys: &[i64],
        how: Look,
    ) -> StoreResult<Vec<Self>> {
        details_of(conn, plan, keys, how).await
    }
}

/// Sends the members of the groups `include` that are neither members of `exclude` nor, with
/// `how.skip_opted_out`, opted out: distinct, in contact key order, in chunks. `conn` merges
/// the keys; `lookup`, when the pool had a connection to spare, reads their rows meanwhile,
/// else `conn` reads them between pages.
pub(super) async fn send_merged<T: Looked>(
    conn: &mut PgConnection,
    lookup: Option<&mut PgConnection>,
    (include, exclude): (&[i64], &[i64]),
    how: Look,
    sender: &Chunks<T>,
) -> StoreResult<()> {
    const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    let mut tx = conn.begin_with(BEGIN).await?;
    let conn = tx.acquire().await?;
    // Contacts are found by plan and key (the primary key): the plan is the groups'.
    let plan: Option<i64> = sqlx::query_scalar(PLAN_OF_GROUPS)
        .bind(include)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(plan) = plan else {
        // No group to send is left: no member either.
        tx.commit().await?;
        return Ok(());
    };
    let Some(lookup) = lookup else {
        let sink = Sink::Direct { plan, how, sender };
        merge_keys(conn, include, exclude, &sink).await?;
        tx.commit().await?;
        return Ok(());
    };
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut *conn)
        .await?;
    let mut lookup_tx = lookup.begin_with(BEGIN).await?;
    let lookup = lookup_tx.acquire().await?;
    // The snapshot's id is the database's own text, not the client's.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET TRANSACTION SNAPSHOT '{}'",
        snapshot.replace('\'', "''")
    )))
    .execute(&mut *lookup)
    .await?;

    let (chunks, mut merged) = mpsc::channel::<Vec<i64>>(2);
    let merging =
        async move { merge_keys(conn, include, exclude, &Sink::<T>::Channel(chunks)).await };
    let looking_up = async {
        while let Some(keys) = merged.recv().await {
            let rows = T::look_up(lookup, plan, &keys, how).await?;
            if !rows.is_empty() && sender.send(Ok(rows)).await.is_err() {
                // The reader has gone: stop the merge too.
                merged.close();
                break;
            }
        }
        StoreResult::Ok(())
    };
    let (merged, looked_up) = tokio::join!(merging, looking_up);
    merged?;
    looked_up?;
    tx.commit().await?;
    lookup_tx.commit().await?;
    Ok(())
}

/// Where merged keys go: to the connection looking their rows up, or looked up on the merging
/// connection itself and sent on.
enum Sink<'a, T> {
    Channel(mpsc::Sender<Vec<i64>>),
    Direct {
        plan: i64,
        how: Look,
        sender: &'a Chunks<T>,
    },
}

impl<T: Looked> Sink<'_, T> {
    /// Passes a chunk of keys on; false when nobody receives them any more.
    async fn take(&self, conn: &mut PgConnection, keys: Vec<i64>) -> StoreResult<bool> {
        match self {
            Self::Channel(chunks) => Ok(chunks.send(keys).await.is_ok()),
            Self::Direct { plan, how, sender } => {
                let rows = T::look_up(conn, *plan, &keys, *how).await?;
                Ok(rows.is_empty() || sender.send(Ok(rows)).await.is_ok())
            }
        }
    }
}

/// Passes the merged keys on in chunks; stops early when nobody receives them any more.
async fn merge_keys<T: Looked>(
    conn: &mut PgConnection,
    include: &[i64],
    exclude: &[i64],
    sink: &Sink<'_, T>,
) -> StoreResult<()> {
    let sources = include.len() + exclude.len();
    let page_rows = (MERGE_ROWS / sources.max(1)).clamp(256, 8192) as i64;
    let range = |group: &i64| Range::new(*group, page_rows);
    let mut kept = Union::new(include.iter().map(range).collect());
    let mut left_out = Union::new(exclude.iter().map(range).collect());
    let mut skip = left_out.next(conn).await?;
    let mut keys = Vec::with_capacity(STREAM_CHUNK);
    while let Some(key) = kept.next(conn).await? {
        while skip.is_some_and(|skipped| skipped < key) {
            skip = left_out.next(conn).await?;
        }
        if skip == Some(key) {
            continue;
        }
        keys.push(key);
        if keys.len() == STREAM_CHUNK {
            let full = std::mem::replace(&mut keys, Vec::with_capacity(STREAM_CHUNK));
            if !sink.take(conn, full).await? {
                return Ok(());
            }
        }
    }
    if !keys.is_empty() {
        // The receiver may have gone: nothing is left to tell it.
        sink.take(conn, keys).await?;
    }
    Ok(())
}

/// Keys held in memory for a merge at most, shared among its ranges.
const MERGE_ROWS: usize = 65_536;

/// The next page of a group's members after the key `$2`, as one array: a page is one row, so
/// that the driver's cost per row is paid once per page. The aggregate keeps the sorted
/// subquery's order in practice, though SQL does not promise it; `Range::load` sorts a page
/// that came otherwise.
const GROUP_PAGE: &str = "SELECT array_agg(contact) FROM ( \
     SELECT contact FROM group_members WHERE grp = $1 AND contact > $2 \
     ORDER BY contact LIMIT $3) page";

/// The key of the plan of the groups `$1` (all of one plan).
const PLAN_OF_GROUPS: &str = "SELECT p.key FROM contact_groups g JOIN plans p ON p.id = g.plan_id \
     WHERE g.key = ANY($1) LIMIT 1";

/// The numbers of the contacts `$1` of the plan `$3`, in key order, opted-out ones left out when
/// `$2`: one probe of the primary key per contact.
const NUMBERS_OF_KEYS: &str = "SELECT array_agg(phone ORDER BY key) FROM contacts \
     WHERE plan = $3 AND key = ANY($1) AND NOT (opted_out AND $2)";

/// The keys and numbers of every contact of the plan `$4` with a key from `$1` to `$2`, in key
/// order, opted-out ones left out when `$3`: one range of the primary key.
const NUMBERS_IN_RANGE: &str = "SELECT array_agg(key), array_agg(phone) FROM ( \
     SELECT key, phone FROM contacts \
     WHERE plan = $4 AND key BETWEEN $1 AND $2 AND NOT (opted_out AND $3) \
     ORDER BY key) range";

/// A chunk whose keys fill at least this share of the range they span is read as the range
/// (and the keys outside the chunk dropped here): reading a range of the table in order costs
/// about a quarter of probing it key by key (2 ms against 5–8 ms for 4,096 keys).
const DENSE: usize = 4;

/// The numbers of the contacts `keys` (in order), opted-out ones left out with `skip_opted_out`.
async fn numbers_of(
    conn: &mut PgConnection,
    plan: i64,
    keys: &[i64],
    skip_opted_out: bool,
) -> StoreResult<Vec<String>> {
    let (Some(&first), Some(&last)) = (keys.first(), keys.last()) else {
        return Ok(Vec::new());
    };
    let span = usize::try_from(last - first).unwrap_or(usize::MAX);
    if span >= keys.len().saturating_mul(DENSE) {
        let numbers: Option<Vec<String>> = sqlx::query_scalar(NUMBERS_OF_KEYS)
            .bind(keys)
            .bind(skip_opted_out)
            .bind(plan)
            .fetch_one(&mut *conn)
            .await?;
        return Ok(numbers.unwrap_or_default());
    }
    let (found, numbers): (Option<Vec<i64>>, Option<Vec<String>>) =
        sqlx::query_as(NUMBERS_IN_RANGE)
            .bind(first)
            .bind(last)
            .bind(skip_opted_out)
            .bind(plan)
            .fetch_one(&mut *conn)
            .await?;
    // Both aggregates read the rows in one order, so the arrays pair up; that order is the
    // subquery's in practice, and sorted here if it was not.
    let range = found
        .unwrap_or_default()
        .into_iter()
        .zip(numbers.unwrap_or_default())
        .collect();
    Ok(wanted_of(keys, range))
}

/// Of the rows of a range of keys, those of `keys` (both in key order, the range sorted here
/// if it came otherwise).
fn wanted_of<T>(keys: &[i64], mut range: Vec<(i64, T)>) -> Vec<T> {
    if !range.is_sorted_by_key(|(key, _)| *key) {
        range.sort_unstable_by_key(|(key, _)| *key);
    }
    let mut wanted = keys.iter().peekable();
    let mut kept = Vec::with_capacity(keys.len());
    for (key, row) in range {
        while wanted.next_if(|&&next| next < key).is_some() {}
        if wanted.next_if_eq(&&key).is_some() {
            kept.push(row);
        }
    }
    kept
}

/// As `NUMBERS_OF_KEYS` (`of_keys`) or `NUMBERS_IN_RANGE`, with what each contact holds for a
/// personalized body as far as `wanted` (the rest as NULL, the fields as `''`), one array per
/// column (keys too, to pair them up).
fn details_query(of_keys: bool, wanted: Wanted) -> String {
    let column = |used: bool, name: &str, otherwise: &str| {
        if used {
            name.to_owned()
        } else {
            format!("{otherwise}::text AS {name}")
        }
    };
    let columns = format!(
        "key, phone, {}, {}, {}, time_zone",
        column(wanted.first_name, "first_name", "NULL"),
        column(wanted.last_name, "last_name", "NULL"),
        column(wanted.fields, "fields", "''"),
    );
    let arrays = "array_agg(key), array_agg(phone), array_agg(first_name), \
                  array_agg(last_name), array_agg(fields), array_agg(time_zone)";
    let rows = if of_keys {
        "plan = $3 AND key = ANY($1) AND NOT (opted_out AND $2)"
    } else {
        "plan = $4 AND key BETWEEN $1 AND $2 AND NOT (opted_out AND $3)"
    };
    format!("SELECT {arrays} FROM (SELECT {columns} FROM contacts WHERE {rows} ORDER BY key) range")
}

/// One array per column of `DETAILS_OF_KEYS` and `DETAILS_IN_RANGE`.
type DetailArrays = (
    Option<Vec<i64>>,
    Option<Vec<String>>,
    Option<Vec<Option<String>>>,
    Option<Vec<Option<String>>>,
    Option<Vec<String>>,
    Option<Vec<Option<String>>>,
);

/// The recipients of the contacts `keys` (in order), with their details, read as `numbers_of`
/// reads numbers: key by key, or as their range when the keys fill it densely.
async fn details_of(
    conn: &mut PgConnection,
    plan: i64,
    keys: &[i64],
    how: Look,
) -> StoreResult<Vec<Recipient>> {
    let (Some(&first), Some(&last)) = (keys.first(), keys.last()) else {
        return Ok(Vec::new());
    };
    let span = usize::try_from(last - first).unwrap_or(usize::MAX);
    let arrays: DetailArrays = if span >= keys.len().saturating_mul(DENSE) {
        sqlx::query_as(sqlx::AssertSqlSafe(details_query(true, how.wanted)))
            .bind(keys)
            .bind(how.skip_opted_out)
            .bind(plan)
            .fetch_one(&mut *conn)
            .await?
    } else {
        sqlx::query_as(sqlx::AssertSqlSafe(details_query(false, how.wanted)))
            .bind(first)
            .bind(last)
            .bind(how.skip_opted_out)
            .bind(plan)
            .fetch_one(&mut *conn)
            .await?
    };
    let (found, phones, first_names, last_names, fields, time_zones) = arrays;
    let mut first_names = first_names.unwrap_or_default().into_iter();
    let mut last_names = last_names.unwrap_or_default().into_iter();
    let mut fields = fields.unwrap_or_default().into_iter();
    let mut time_zones = time_zones.unwrap_or_default().into_iter();
    let range: Vec<(i64, DetailsRow)> = found
        .unwrap_or_default()
        .into_iter()
        .zip(phones.unwrap_or_default())
        .map(|(key, phone)| {
            let row: DetailsRow = (
                phone,
                first_names.next().flatten(),
                last_names.next().flatten(),
                fields.next(),
                time_zones.next().flatten(),
            );
            (key, row)
        })
        .collect();
    Ok(wanted_of(keys, range)
        .into_iter()
        .map(|row| Recipient::from_details(row, how.wanted.fields))
        .collect())
}

/// One group's members in key order, read a page at a time after the last key read.
struct Range {
    group: i64,
    page_rows: i64,
    after: i64,
    rows: std::vec::IntoIter<i64>,
    done: bool,
}

impl Range {
    fn new(group: i64, page_rows: i64) -> Self {
        Self {
            group,
            page_rows,
            after: 0,
            rows: Vec::new().into_iter(),
            done: false,
        }
    }

    /// Reads the next page into the buffer.
    async fn load(&mut self, conn: &mut PgConnection) -> StoreResult<()> {
        let page: Option<Vec<i64>> = sqlx::query_scalar(GROUP_PAGE)
            .bind(self.group)
            .bind(self.after)
            .bind(self.page_rows)
            .fetch_one(&mut *conn)
            .await?;
        let mut rows = page.unwrap_or_default();
        if !rows.is_sorted() {
            rows.sort_unstable();
        }
        self.done = (rows.len() as i64) < self.page_rows;
        if let Some(&last) = rows.last() {
            self.after = last;
        }
        self.rows = rows.into_iter();
        Ok(())
    }
}

/// What a merge does next.
enum Step {
    Key(i64),
    /// A range's buffer ran dry: its next page must be read before the merge goes on.
    Load(usize),
    Done,
}

/// The distinct keys of several ranges (each distinct in itself), in order. The merge itself
/// is synchronous; it stops only to have a page read.
struct Union {
    ranges: Vec<Range>,
    /// Each range's next key, smallest first, for every range whose buffer holds one.
    heads: BinaryHeap<Reverse<(i64, usize)>>,
    /// Ranges whose next key is still to be read.
    dry: Vec<usize>,
}

impl Union {
    fn new(ranges: Vec<Range>) -> Self {
        Self {
            dry: (0..ranges.len()).collect(),
            heads: BinaryHeap::with_capacity(ranges.len()),
            ranges,
        }
    }

    /// The next key, once every range has its next key at hand (so that none equal to it is
    /// still unread).
    fn step(&mut self) -> Step {
        if let Some(&index) = self.dry.last() {
            return Step::Load(index);
        }
        let Some(Reverse((key, index))) = self.heads.pop() else {
            return Step::Done;
        };
        self.advance(index);
        while let Some(Reverse((_, index))) = self
            .heads
            .peek_mut()
            .filter(|head| head.0.0 == key)
            .map(std::collections::binary_heap::PeekMut::pop)
        {
            self.advance(index);
        }
        Step::Key(key)
    }

    fn advance(&mut self, index: usize) {
        let range = &mut self.ranges[index];
        match range.rows.next() {
            Some(following) => self.heads.push(Reverse((following, index))),
            None if !range.done => self.dry.push(index),
            None => {}
        }
    }

    /// Reads the page `step` asked for.
    async fn load(&mut self, index: usize, conn: &mut PgConnection) -> StoreResult<()> {
        self.dry.retain(|&dry| dry != index);
        let range = &mut self.ranges[index];
        if !range.done {
            range.load(conn).await?;
        }
        self.advance(index);
        Ok(())
    }

    async fn next(&mut self, conn: &mut PgConnection) -> StoreResult<Option<i64>> {
        loop {
            match self.step() {
                Step::Key(key) => return Ok(Some(key)),
                // Boxed: the page read's future is large, and `next` runs once per key.
                Step::Load(index) => Box::pin(self.load(index, conn)).await?,
                Step::Done => return Ok(None),
            }
        }
    }
}
