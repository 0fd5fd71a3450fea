//! Recurring series: stored with what each occurrence sends, and turned into one batch per
//! occurrence by whichever instance first finds it due. Making an occurrence moves the series'
//! `next_at` on in the transaction that inserts its batch, and only if `next_at` is still the
//! occurrence being made, so that instances racing for it make it once.

use super::*;
use crate::domain::recurrence::SeriesStatus;
use crate::domain::sending::Purpose;
use crate::domain::sms::EncodingChoice;

const SERIES_COLUMNS: &str = "plan_id, id, status, rule, time_zone, starts_at, ends_at, targets, \
     excludes, sender, body, client_reference, parameters, encoding, purpose, expire_after, \
     occurrences, last_at, next_at, created_at, modified_at";

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
    fn series_from_row(row: &<D::Db as sqlx::Database>::Row) -> Result<SeriesRecord, sqlx::Error> {
        use sqlx::Row;
        let audience = |column: &str| Self::audience_from_row(row, column);
        let time = |column: &str| -> Result<Option<Timestamp>, sqlx::Error> {
            Ok(row
                .try_get::<Option<i64>, _>(column)?
                .map(Timestamp::from_millis))
        };
        let parameters = Self::parameters_from_row(row)?;
        let status: String = row.try_get("status")?;
        let encoding: String = row.try_get("encoding")?;
        let purpose: String = row.try_get("purpose")?;
        let starts_at = Timestamp::from_millis(row.try_get("starts_at")?);
        let expire_after_millis: Option<i64> = row.try_get("expire_after")?;
        Ok(SeriesRecord {
            plan_id: PlanId::from_trusted(row.try_get("plan_id")?),
            id: SeriesId::from_trusted(row.try_get("id")?),
            status: SeriesStatus::parse(&status).unwrap_or(SeriesStatus::Canceled),
            rule: row.try_get("rule")?,
            time_zone: row.try_get("time_zone")?,
            starts_at,
            ends_at: time("ends_at")?,
            batch: NewBatch {
                to: audience("targets")?,
                exclude: audience("excludes")?,
                from: row.try_get("sender")?,
                body: row.try_get("body")?,
                client_reference: row.try_get("client_reference")?,
                send_at: starts_at,
                expire_at: expire_after_millis.map(|after| starts_at.plus_millis(after)),
                parameters,
                encoding: EncodingChoice::parse(&encoding).unwrap_or_default(),
                purpose: Purpose::parse(&purpose).unwrap_or_default(),
            },
            expire_after_millis,
            occurrences: row.try_get("occurrences")?,
            last_at: time("last_at")?,
            next_at: time("next_at")?,
            created_at: Timestamp::from_millis(row.try_get("created_at")?),
            modified_at: Timestamp::from_millis(row.try_get("modified_at")?),
        })
    }

    async fn load_series(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &SeriesId,
    ) -> StoreResult<SeriesRecord> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SERIES_COLUMNS} FROM batch_series WHERE plan_id = $1 AND id = $2"
        )))
        .bind(plan.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound(Entity::Series))?;
        Ok(Self::series_from_row(&row)?)
    }
}

#[async_trait]
impl<D: Dialect> SeriesStore for SqlStore<D>
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
    async fn create_series(
        &self,
        plan: &PlanId,
        by: &Actor,
        series: NewSeries,
    ) -> StoreResult<SeriesRecord> {
        let mut tx = self.dialect.begin_write().await?;
        Self::check_groups(&mut tx, plan, &series.batch).await?;
        let id = SeriesId::generate();
        let now = Timestamp::now().millis();
        let batch = &series.batch;
        let entries = |audience: &Audience| {
            serde_json::to_string(&audience.entries())
                .map_err(|error| sqlx::Error::Encode(Box::new(error)))
        };
        sqlx::query(
            "INSERT INTO batch_series (plan_id, id, status, rule, time_zone, starts_at, ends_at, \
                 targets, excludes, sender, body, client_reference, parameters, encoding, \
                 purpose, expire_after, next_at, created_at, modified_at) \
                 VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                 $15, $16, $17, $17)",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(&series.rule)
        .bind(&series.time_zone)
        .bind(batch.send_at.millis())
        .bind(series.ends_at.map(Timestamp::millis))
        .bind(entries(&batch.to)?)
        .bind(entries(&batch.exclude)?)
        .bind(batch.from.as_deref())
        .bind(&batch.body)
        .bind(batch.client_reference.as_deref())
        .bind((!batch.parameters.is_empty()).then(|| batch.parameters.to_json().to_string()))
        .bind(batch.encoding.as_str())
        .bind(batch.purpose.as_str())
        .bind(
            batch
                .expire_at
                .map(|expire| expire.millis() - batch.send_at.millis()),
        )
        .bind(series.first_at.millis())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let record = Self::load_series(&mut tx, plan, &id).await?;
        Self::audit(&mut tx, plan, by, Change::new("series.create", [&id])).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn get_series(&self, plan: &PlanId, id: &SeriesId) -> StoreResult<SeriesRecord> {
        let mut conn = self.dialect.reader().acquire().await?;
        Self::load_series(&mut conn, plan, id).await
    }

    async fn list_series(
        &self,
        plan: &PlanId,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<SeriesRecord>, i64)> {
        let table = ("batch_series", SERIES_COLUMNS);
        self.newest_first(plan, table, (offset, limit), Self::series_from_row)
            .await
    }

    async fn set_series_status(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &SeriesId,
        status: SeriesStatus,
        next_at: Option<Timestamp>,
    ) -> StoreResult<SeriesRecord> {
        let mut tx = self.dialect.begin_write().await?;
        let current = Self::load_series(&mut tx, plan, id).await?;
        let allowed = match status {
            SeriesStatus::Paused => current.status == SeriesStatus::Active,
            SeriesStatus::Active => current.status == SeriesStatus::Paused,
            SeriesStatus::Canceled => !current.status.is_final(),
            SeriesStatus::Finished => false,
        };
        if !allowed {
            return Err(StoreError::SeriesState(current.status));
        }
        let (status, next_at) = match status {
            SeriesStatus::Active if next_at.is_none() => (SeriesStatus::Finished, None),
            SeriesStatus::Active => (status, next_at),
            SeriesStatus::Paused => (status, current.next_at),
            _ => (status, None),
        };
        sqlx::query(
            "UPDATE batch_series SET status = $1, next_at = $2, modified_at = $3 \
                 WHERE plan_id = $4 AND id = $5",
        )
        .bind(status.as_str())
        .bind(next_at.map(Timestamp::millis))
        .bind(Timestamp::now().millis())
        .bind(plan.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        let record = Self::load_series(&mut tx, plan, id).await?;
        let change = Change::new("series.status", [id]).with("status", status.as_str());
        Self::audit(&mut tx, plan, by, change).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn due_series(&self, now: Timestamp, limit: i64) -> StoreResult<Vec<SeriesRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SERIES_COLUMNS} FROM batch_series \
                 WHERE status = 'active' AND next_at <= $1 ORDER BY next_at LIMIT $2"
        )))
        .bind(now.millis())
        .bind(limit)
        .fetch_all(self.dialect.reader())
        .await?;
        Ok(rows
            .iter()
            .map(Self::series_from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn make_occurrence(
        &self,
        plan: &PlanId,
        id: &SeriesId,
        at: Timestamp,
        next: Option<Timestamp>,
    ) -> StoreResult<Option<BatchRecord>> {
        let mut tx = self.dialect.begin_write().await?;
        let now = Timestamp::now().millis();
        let status = if next.is_some() {
            SeriesStatus::Active
        } else {
            SeriesStatus::Finished
        };
        let made: Option<i64> = sqlx::query_scalar(
            "UPDATE batch_series SET occurrences = occurrences + 1, last_at = $1, \
                 next_at = $2, status = $3, modified_at = $4 \
                 WHERE plan_id = $5 AND id = $6 AND status = 'active' AND next_at = $1 \
                 RETURNING occurrences",
        )
        .bind(at.millis())
        .bind(next.map(Timestamp::millis))
        .bind(status.as_str())
        .bind(now)
        .bind(plan.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(occurrence) = made else {
            tx.commit().await?;
            return Ok(None);
        };
        // Copied from the series as it is now; groups deleted since count as empty when the
        // batch is resolved, as for any batch.
        let batch_id = BatchId::generate();
        sqlx::query(
            "INSERT INTO batches (plan_id, id, status, targets, excludes, sender, body, \
                 client_reference, send_at, expire_at, created_at, modified_at, parameters, \
                 encoding, purpose, series_id, occurrence) \
                 SELECT plan_id, $1, 'scheduled', targets, excludes, sender, body, \
                 client_reference, $2, $2 + expire_after, $3, $3, parameters, encoding, purpose, \
                 id, $4 FROM batch_series WHERE plan_id = $5 AND id = $6",
        )
        .bind(batch_id.as_str())
        .bind(at.millis())
        .bind(now)
        .bind(occurrence)
        .bind(plan.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        let record = Self::load_batch(&mut tx, plan, batch_id.as_str()).await?;
        tx.commit().await?;
        Ok(Some(record))
    }
}
