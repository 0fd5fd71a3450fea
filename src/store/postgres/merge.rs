//! The distinct numbers of several groups on PostgreSQL, merged here. Each group's members are
//! one range of `group_members`' primary key in contact key order, read a page at a time (after
//! the last key read); merging the ranges gives the keys distinct and in order without the
//! database sorting or hashing a million of them (PostgreSQL 15 does not merge the branches of a
//! `UNION` itself). Excluded groups are ranges read the same way and skipped as the merge passes
//! them. The numbers of the merged keys are then looked up a chunk at a time, leaving out
//! opted-out contacts where asked. Every read is in one repeatable-read transaction, so the
//! result is one consistent view of the groups.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use sqlx::postgres::PgConnection;
use sqlx::{Acquire, Connection};

use super::{NumberChunks, STREAM_CHUNK, StoreResult};

/// Sends the numbers of the members of the groups `include` that are neither members of
/// `exclude` nor, with `skip_opted_out`, opted out: distinct, in contact key order, in chunks.
pub(super) async fn send_merged(
    conn: &mut PgConnection,
    include: &[i64],
    exclude: &[i64],
    skip_opted_out: bool,
    sender: &NumberChunks,
) -> StoreResult<()> {
    let mut tx = conn
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let conn = tx.acquire().await?;
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
            let chunk = numbers_of(conn, &keys, skip_opted_out).await?;
            keys.clear();
            if !chunk.is_empty() && sender.send(Ok(chunk)).await.is_err() {
                return Ok(());
            }
        }
    }
    if !keys.is_empty() {
        let chunk = numbers_of(conn, &keys, skip_opted_out).await?;
        if !chunk.is_empty() {
            // The reader may have gone: nothing is left to tell it.
            let _ = sender.send(Ok(chunk)).await;
        }
    }
    tx.commit().await?;
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

/// The numbers of the contacts `$1`, in key order, opted-out ones left out when `$2`.
const NUMBERS: &str = "SELECT array_agg(phone ORDER BY key) FROM contacts \
     WHERE key = ANY($1) AND NOT (opted_out AND $2)";

async fn numbers_of(
    conn: &mut PgConnection,
    keys: &[i64],
    skip_opted_out: bool,
) -> StoreResult<Vec<String>> {
    let numbers: Option<Vec<String>> = sqlx::query_scalar(NUMBERS)
        .bind(keys)
        .bind(skip_opted_out)
        .fetch_one(&mut *conn)
        .await?;
    Ok(numbers.unwrap_or_default())
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
