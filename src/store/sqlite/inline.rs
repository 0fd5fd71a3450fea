//! SQLite reads that bypass sqlx. sqlx drives every SQLite connection from a thread of its own,
//! so each statement costs two thread hand-offs and each row of a result another; the profile of
//! `GET /api/contactgroups/{id}` under load was half kernel thread switching, and streaming a
//! million members spent more on hand-offs than on the query. The hottest reads (a group, a page
//! of a lone group's members) run here on the calling thread: one indexed statement each (tens
//! of microseconds), short enough for an async worker, and in WAL mode a reader never waits for
//! the writer. Streams of a group's members run here on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::sql::Recipient;
use super::{Chunks, Entity, GroupRow, NumberChunks, STREAM_CHUNK, StoreError, StoreResult};

/// Connections kept open between reads; more are opened when more reads run at once, and
/// dropped when they finish.
const IDLE_CONNECTIONS: usize = 8;

pub(super) struct InlineReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl InlineReader {
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The group's row and child ids (`sql` is the backend's one-statement group read).
    pub(super) fn group_row(&self, sql: &str, plan: &str, id: &str) -> StoreResult<GroupRow> {
        self.read(|conn| {
            conn.prepare_cached(sql)?
                .query_row((plan, id), |row| {
                    Ok(GroupRow {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        description: row.get(2)?,
                        status: row.get(3)?,
                        size: row.get(4)?,
                        auto_update: row.get(5)?,
                        rule: row.get(6)?,
                        version: row.get(7)?,
                        created_at: row.get(8)?,
                        modified_at: row.get(9)?,
                        child_ids: row.get(10)?,
                    })
                })
                .optional()
        })?
        .ok_or(StoreError::NotFound(Entity::Group))
    }

    /// One text column of at most one row: a page of members as JSON.
    pub(super) fn json_page(
        &self,
        sql: &str,
        plan: &str,
        id: &str,
        after: &[u8],
        limit: i64,
        offset: i64,
    ) -> StoreResult<Option<String>> {
        self.read(|conn| {
            conn.prepare_cached(sql)?
                .query_row((plan, id, after, limit, offset), |row| row.get(0))
        })
    }

    /// Sends the phones a one-column query returns, in chunks, until they end or the reader
    /// goes away. Runs on a blocking thread: it holds the connection for the whole read.
    pub(super) fn stream_phones(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        sender: &NumberChunks,
    ) -> StoreResult<()> {
        self.stream_rows(sql, params, |row| row.get(0), sender)
    }

    /// Sends the recipients a query of [`Columns::Details`] returns, as `stream_phones` does.
    ///
    /// [`Columns::Details`]: super::sql::Columns::Details
    pub(super) fn stream_details(
        &self,
        sql: &str,
        fields: bool,
        sender: &Chunks<Recipient>,
    ) -> StoreResult<()> {
        self.stream_rows(
            sql,
            [],
            |row| {
                let columns = (
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                );
                Ok(Recipient::from_details(columns, fields))
            },
            sender,
        )
    }

    /// Sends each row of a query as `item` makes it, in chunks, until they end or the reader
    /// goes away.
    fn stream_rows<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        mut item: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
        sender: &Chunks<T>,
    ) -> StoreResult<()> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(sql)?;
            let mut rows = statement.query(params)?;
            let mut chunk = Vec::with_capacity(STREAM_CHUNK);
            while let Some(row) = rows.next()? {
                chunk.push(item(row)?);
                if chunk.len() == STREAM_CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(STREAM_CHUNK));
                    if sender.blocking_send(Ok(full)).is_err() {
                        return Ok(());
                    }
                }
            }
            if !chunk.is_empty() {
                // The reader may have gone: nothing is left to tell it.
                let _ = sender.blocking_send(Ok(chunk));
            }
            Ok(())
        })
    }

    fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let conn = match self.idle_connection() {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = read(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE_CONNECTIONS
        {
            idle.push(conn);
        }
        Ok(result?)
    }

    fn idle_connection(&self) -> Option<Connection> {
        self.idle.lock().ok()?.pop()
    }

    fn open(&self) -> StoreResult<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // As the pooled readers: wait out a writer's checkpoint instead of failing, and read
        // pages through the memory map.
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "mmap_size", 1_073_741_824_i64)?;
        conn.pragma_update(None, "cache_size", -super::CACHE_KIB)?;
        // Without the query planner stability guarantee SQLite re-plans a statement whenever a
        // parameter it peeked at (a `LIMIT $n`, say) is bound again: a fifth of a members
        // page's time went into re-preparing it.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        Ok(conn)
    }
}
