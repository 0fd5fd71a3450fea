//! The audit log's rows: written inside the changing transaction, read newest first.

use serde_json::Value;

use super::*;
use crate::store::audit::{AuditEntry, AuditPage, AuditQuery, AuditStore, Change, Channel};

/// Rows removed by one statement of the retention sweep, so that it never holds the writer long.
const PRUNE_BATCH: i64 = 5_000;

type AuditRow = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut Conn<D>: Executor<'c, Database = D::Db>,
    Args<D>: IntoArguments<D::Db>,
    usize: ColumnIndex<Row<D>>,
    for<'n> &'n str: ColumnIndex<Row<D>>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> String: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i32: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i16: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i16>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> bool: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
{
    /// Writes the audit row of `change`, made by `by` in plan `plan`, on the changing
    /// transaction's connection.
    pub(crate) async fn audit(
        conn: &mut Conn<D>,
        plan: &PlanId,
        by: &Actor,
        change: Change,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (plan, at, channel, token_id, token_name, address, \
                 operation, objects, summary) \
                 SELECT key, $2, $3, $4, $5, $6, $7, $8, $9 FROM plans WHERE id = $1",
        )
        .bind(plan.as_str())
        .bind(Timestamp::now().millis())
        .bind(by.channel.as_str())
        .bind(by.token_id.as_deref())
        .bind(by.token_name.as_deref())
        .bind(by.address.as_deref())
        .bind(change.operation)
        .bind(change.objects.join(" "))
        .bind(Value::Object(change.summary).to_string())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    fn audit_entry(row: AuditRow) -> Result<AuditEntry, sqlx::Error> {
        let (_, at, channel, token_id, token_name, address, operation, objects, summary) = row;
        Ok(AuditEntry {
            at: Timestamp::from_millis(at),
            channel: Channel::parse(&channel).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown audit channel {channel:?}").into())
            })?,
            token_id,
            token_name,
            address,
            operation,
            objects: objects.split_whitespace().map(str::to_owned).collect(),
            summary: from_json(&summary)?,
        })
    }
}

#[async_trait]
impl<D: Dialect> AuditStore for SqlStore<D>
where
    for<'c> &'c mut Conn<D>: Executor<'c, Database = D::Db>,
    Args<D>: IntoArguments<D::Db>,
    usize: ColumnIndex<Row<D>>,
    for<'n> &'n str: ColumnIndex<Row<D>>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> String: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i32: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i16: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i16>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> bool: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
{
    async fn audit_log(&self, plan: &PlanId, query: &AuditQuery) -> StoreResult<AuditPage> {
        let seal = self.cursor_seal().await?;
        let mut page = sqlx::QueryBuilder::<D::Db>::new(
            "SELECT key, at, channel, token_id, token_name, address, operation, objects, summary \
                 FROM audit_log WHERE plan = ",
        );
        push_plan_key(&mut page, plan);
        if let Some(after) = &query.after {
            let key = open_cursor(seal, plan, after).ok_or(StoreError::ForeignCursor)?;
            page.push(" AND key < ").push_bind(key);
        }
        match query.operation.as_deref() {
            Some(operation) if operation.contains('.') => {
                page.push(" AND operation = ")
                    .push_bind(operation.to_owned());
            }
            Some(kind) => {
                let prefix = format!("{kind}.");
                // The length is written out: PostgreSQL's substr takes no bigint parameter.
                page.push(format!(" AND substr(operation, 1, {}) = ", prefix.len()))
                    .push_bind(prefix);
            }
            None => {}
        }
        if let Some(object) = &query.object {
            // Ids are letters and digits (the API checks), so none is a LIKE wildcard.
            page.push(" AND ' ' || objects || ' ' LIKE ")
                .push_bind(format!("% {object} %"));
        }
        if let Some(token) = &query.token {
            page.push(" AND (token_name = ")
                .push_bind(token.clone())
                .push(" OR token_id = ")
                .push_bind(token.clone())
                .push(")");
        }
        if let Some(channel) = query.channel {
            page.push(" AND channel = ")
                .push_bind(channel.as_str().to_owned());
        }
        if let Some(since) = query.since {
            page.push(" AND at >= ").push_bind(since.millis());
        }
        if let Some(until) = query.until {
            page.push(" AND at < ").push_bind(until.millis());
        }
        page.push(" ORDER BY key DESC LIMIT ")
            .push_bind(query.limit + 1);
        let mut rows: Vec<AuditRow> = page
            .build_query_as()
            .fetch_all(self.dialect.reader())
            .await?;
        let more = rows.len() as i64 > query.limit;
        rows.truncate(query.limit.max(0) as usize);
        let next = match (more, rows.last()) {
            (true, Some(last)) => Some(hex::encode(seal.seal(plan, last.0))),
            _ => None,
        };
        let entries = rows
            .into_iter()
            .map(Self::audit_entry)
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(AuditPage { entries, next })
    }

    async fn prune_audit(&self, before: Timestamp) -> StoreResult<u64> {
        let mut removed = 0;
        loop {
            let mut tx = self.dialect.begin_write().await?;
            // The oldest rows by key are the oldest by time: a batch of them not all old enough
            // is the last.
            let done = sqlx::query(
                "DELETE FROM audit_log WHERE at < $1 AND key IN \
                     (SELECT key FROM audit_log ORDER BY key LIMIT $2)",
            )
            .bind(before.millis())
            .bind(PRUNE_BATCH)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            removed += done;
            if done < PRUNE_BATCH as u64 {
                return Ok(removed);
            }
        }
    }
}

/// The key a `next` cursor of this plan holds.
fn open_cursor(seal: &CursorSeal, plan: &PlanId, cursor: &str) -> Option<i64> {
    let bytes: [u8; 16] = hex::decode(cursor).ok()?.try_into().ok()?;
    seal.open(plan, &bytes)
}
