//! The distinct numbers of several groups on PostgreSQL, merged here. Each group's numbers are
//! one range of `group_members_by_phone`, read in order a page at a time (after the last number
//! read); merging the ranges gives them distinct and in order without the database sorting or
//! hashing a million numbers (PostgreSQL 15 does not merge the branches of a `UNION` itself).
//! Numbers to leave out (excluded groups, opted-out contacts) are ranges read the same way and
//! skipped as the merge passes them. Every page is read in one repeatable-read transaction, so
//! the result is one consistent view of the groups.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use sqlx::postgres::PgConnection;
use sqlx::{Acquire, Connection};

use super::{NumberChunks, STREAM_CHUNK, StoreResult};
use crate::domain::ids::PlanId;

/// Sends the numbers of the members of `include` that are neither members of `exclude` nor,
/// with `skip_opted_out`, opted out: distinct, in byte order, in chunks.
pub(super) async fn send_merged(
    conn: &mut PgConnection,
    plan: &PlanId,
    include: &[&str],
    exclude: &[&str],
    skip_opted_out: bool,
    sender: &NumberChunks,
) -> StoreResult<()> {
    let mut tx = conn
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let conn = tx.acquire().await?;
    let sources = include.len() + exclude.len() + usize::from(skip_opted_out);
    let page_rows = (MERGE_ROWS / sources.max(1)).clamp(256, 8192) as i64;
    let range = |group: &&str| Range::new(Source::Group((*group).to_owned()), page_rows);
    let kept = include.iter().map(range).collect();
    let mut left_out: Vec<Range> = exclude.iter().map(range).collect();
    if skip_opted_out {
        left_out.push(Range::new(Source::OptedOut, page_rows));
    }
    let mut kept = Union::new(kept);
    let mut left_out = Union::new(left_out);
    let mut skip = left_out.next(conn, plan).await?;
    let mut chunk = Vec::with_capacity(STREAM_CHUNK);
    while let Some(phone) = kept.next(conn, plan).await? {
        while skip.as_ref().is_some_and(|skipped| *skipped < phone) {
            skip = left_out.next(conn, plan).await?;
        }
        if skip.as_ref() == Some(&phone) {
            continue;
        }
        chunk.push(phone);
        if chunk.len() == STREAM_CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(STREAM_CHUNK));
            if sender.send(Ok(full)).await.is_err() {
                return Ok(());
            }
        }
    }
    if !chunk.is_empty() {
        // The reader may have gone: nothing is left to tell it.
        let _ = sender.send(Ok(chunk)).await;
    }
    tx.commit().await?;
    Ok(())
}

/// Numbers held in memory for a merge at most, shared among its ranges.
const MERGE_ROWS: usize = 65_536;

/// The next page of a group's numbers after `$3`, as one text of numbers, one per line: a page
/// is one row, so that the driver's cost per row is paid once per page. The aggregate keeps the
/// sorted subquery's order in practice, though SQL does not promise it (an `ORDER BY` inside it
/// doubled the database's work); `Range::load` sorts a page that came otherwise.
const GROUP_PAGE: &str = "SELECT string_agg(phone, E'\\n') FROM ( \
     SELECT phone FROM group_members WHERE plan_id = $1 AND group_id = $2 AND phone > $3 \
     ORDER BY phone LIMIT $4) page";
/// The same for the plan's opted-out numbers (`$2` the last number read, `$3` the page's size).
const OPTED_OUT_PAGE: &str = "SELECT string_agg(phone, E'\\n') FROM ( \
     SELECT phone FROM contacts WHERE plan_id = $1 AND opted_out AND phone > $2 \
     ORDER BY phone LIMIT $3) page";

/// Whose numbers a range holds.
enum Source {
    Group(String),
    OptedOut,
}

/// One ordered range of numbers, read a page at a time after the last number read.
struct Range {
    source: Source,
    page_rows: i64,
    after: String,
    rows: std::vec::IntoIter<String>,
    done: bool,
}

impl Range {
    fn new(source: Source, page_rows: i64) -> Self {
        Self {
            source,
            page_rows,
            after: String::new(),
            rows: Vec::new().into_iter(),
            done: false,
        }
    }

    /// Reads the next page into the buffer.
    async fn load(&mut self, conn: &mut PgConnection, plan: &PlanId) -> StoreResult<()> {
        let query = match &self.source {
            Source::Group(group) => sqlx::query_scalar(GROUP_PAGE)
                .bind(plan.as_str())
                .bind(group.as_str()),
            Source::OptedOut => sqlx::query_scalar(OPTED_OUT_PAGE).bind(plan.as_str()),
        };
        let page: Option<String> = query
            .bind(&self.after)
            .bind(self.page_rows)
            .fetch_one(&mut *conn)
            .await?;
        let mut rows: Vec<String> = page
            .as_deref()
            .unwrap_or("")
            .split_terminator('\n')
            .map(str::to_owned)
            .collect();
        if !rows.is_sorted() {
            rows.sort_unstable();
        }
        self.done = (rows.len() as i64) < self.page_rows;
        if let Some(last) = rows.last() {
            self.after.clone_from(last);
        }
        self.rows = rows.into_iter();
        Ok(())
    }
}

/// What a merge does next.
enum Step {
    Number(String),
    /// A range's buffer ran dry: its next page must be read before the merge goes on.
    Load(usize),
    Done,
}

/// The distinct numbers of several ranges (each distinct in itself), in order. The merge itself
/// is synchronous; it stops only to have a page read.
struct Union {
    ranges: Vec<Range>,
    /// Each range's next number, smallest first, for every range whose buffer holds one.
    heads: BinaryHeap<Reverse<(String, usize)>>,
    /// Ranges whose next number is still to be read.
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

    /// The next number, once every range has its next number at hand (so that none equal to
    /// it is still unread).
    fn step(&mut self) -> Step {
        if let Some(&index) = self.dry.last() {
            return Step::Load(index);
        }
        let Some(Reverse((phone, index))) = self.heads.pop() else {
            return Step::Done;
        };
        self.advance(index);
        while let Some(Reverse((_, index))) = self
            .heads
            .peek_mut()
            .filter(|head| head.0.0 == phone)
            .map(std::collections::binary_heap::PeekMut::pop)
        {
            self.advance(index);
        }
        Step::Number(phone)
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
    async fn load(
        &mut self,
        index: usize,
        conn: &mut PgConnection,
        plan: &PlanId,
    ) -> StoreResult<()> {
        self.dry.retain(|&dry| dry != index);
        let range = &mut self.ranges[index];
        if !range.done {
            range.load(conn, plan).await?;
        }
        self.advance(index);
        Ok(())
    }

    async fn next(
        &mut self,
        conn: &mut PgConnection,
        plan: &PlanId,
    ) -> StoreResult<Option<String>> {
        loop {
            match self.step() {
                Step::Number(phone) => return Ok(Some(phone)),
                // Boxed: the page read's future is large, and `next` runs once per number.
                Step::Load(index) => Box::pin(self.load(index, conn, plan)).await?,
                Step::Done => return Ok(None),
            }
        }
    }
}
