//! Exports: a selection of contacts written out in chunks to stored file pieces, under a lease
//! that a crashed writer's successor can see has lapsed.

use super::*;

/// Contacts per chunk an export's query hands to its writer.
pub(crate) const EXPORT_CHUNK: usize = 1000;

pub(crate) const EXPORT_COLUMNS: &str = "id, status, format, selection, lease_until, total_rows, \
     rows_written, file_size, error, created_at, modified_at, completed_at";

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
    pub(crate) fn export_from_row(
        row: &<D::Db as sqlx::Database>::Row,
    ) -> Result<ExportRecord, sqlx::Error> {
        use sqlx::Row;
        let status: String = row.try_get("status")?;
        let time = |column: &str| -> Result<Option<Timestamp>, sqlx::Error> {
            Ok(row
                .try_get::<Option<i64>, _>(column)?
                .map(Timestamp::from_millis))
        };
        Ok(ExportRecord {
            id: ExportId::from_trusted(row.try_get("id")?),
            status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
            format: row.try_get("format")?,
            selection: from_json(&row.try_get::<String, _>("selection")?)?,
            lease_until: time("lease_until")?,
            total_rows: row.try_get("total_rows")?,
            rows_written: row.try_get("rows_written")?,
            file_size: row.try_get("file_size")?,
            error: row.try_get("error")?,
            created_at: Timestamp::from_millis(row.try_get("created_at")?),
            modified_at: Timestamp::from_millis(row.try_get("modified_at")?),
            completed_at: time("completed_at")?,
        })
    }

    pub(crate) async fn load_export(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &ExportId,
    ) -> StoreResult<ExportRecord> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EXPORT_COLUMNS} FROM exports WHERE plan_id = $1 AND id = $2"
        )))
        .bind(plan.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound(Entity::Export))?;
        Ok(Self::export_from_row(&row)?)
    }
}

#[async_trait]
impl<D: Dialect> ExportStore for SqlStore<D>
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
    async fn create_export(
        &self,
        plan: &PlanId,
        by: &Actor,
        export: NewExport,
        lease: &Lease,
    ) -> StoreResult<ExportRecord> {
        let id = ExportId::generate();
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        Self::sweep_job_files(conn, plan, now).await?;
        sqlx::query(
            "INSERT INTO exports (plan_id, id, status, format, selection, total_rows, \
                 lease_owner, lease_until, created_at, modified_at) \
                 VALUES ($1, $2, 'running', $3, $4, $8, $5, $6, $7, $7)",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(&export.format)
        .bind(to_json(&export.selection)?)
        .bind(&lease.owner)
        .bind(now + lease.millis)
        .bind(now)
        .bind(export.total_rows)
        .execute(&mut *conn)
        .await?;
        let record = Self::load_export(conn, plan, &id).await?;
        let change = Change::new("export.create", [&id])
            .with("format", export.format.as_str())
            .with("rows", export.total_rows);
        Self::audit(conn, plan, by, change).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn get_export(&self, plan: &PlanId, id: &ExportId) -> StoreResult<ExportRecord> {
        let mut conn = self.dialect.reader().acquire().await?;
        Self::load_export(&mut conn, plan, id).await
    }

    async fn list_exports(
        &self,
        plan: &PlanId,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<ExportRecord>, i64)> {
        let table = ("exports", EXPORT_COLUMNS);
        self.newest_first(plan, table, (offset, limit), Self::export_from_row)
            .await
    }

    async fn export_contacts(
        &self,
        plan: &PlanId,
        query: &ContactQuery,
        sink: tokio::sync::mpsc::Sender<Vec<ExportContact>>,
    ) -> StoreResult<()> {
        use futures::TryStreamExt;
        use sqlx::Row;
        let mut conn = self.dialect.reader().acquire().await?;
        let tree = match &query.group {
            Some(group) => Some(Self::load_tree(&mut conn, plan, group.as_str()).await?),
            None => None,
        };
        let mut select = sqlx::QueryBuilder::<D::Db>::new(format!(
            "SELECT {CONTACT_COLUMNS}, {export_groups} AS group_names FROM contacts c",
            export_groups = D::EXPORT_GROUPS
        ));
        Self::push_contact_filters(
            &mut select,
            plan,
            query,
            tree.as_deref(),
            ValueIndexes::Free,
        );
        select.push(" ORDER BY c.id");
        let mut rows = select.build().fetch(&mut *conn);
        let mut chunk = Vec::with_capacity(EXPORT_CHUNK);
        while let Some(row) = rows.try_next().await? {
            let names: String = row.try_get("group_names")?;
            let groups: Vec<String> = serde_json::from_str(&names)
                .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
            chunk.push(ExportContact {
                contact: Self::contact_from_row(&row)?,
                groups,
            });
            if chunk.len() == EXPORT_CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(EXPORT_CHUNK));
                if sink.send(full).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !chunk.is_empty() {
            let _ = sink.send(chunk).await;
        }
        Ok(())
    }

    async fn append_export(
        &self,
        plan: &PlanId,
        id: &ExportId,
        lease: &Lease,
        seq: i64,
        data: &[u8],
        rows_written: i64,
    ) -> StoreResult<()> {
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let held = sqlx::query(
            "UPDATE exports SET lease_until = $3, rows_written = $4, modified_at = $5 \
                 WHERE plan_id = $1 AND id = $2 AND status = 'running' AND lease_owner = $6",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(now + lease.millis)
        .bind(rows_written)
        .bind(now)
        .bind(&lease.owner)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if held == 0 {
            return Err(StoreError::LeaseLost);
        }
        if !data.is_empty() {
            sqlx::query(
                "INSERT INTO export_files (export, seq, data) \
                     VALUES ((SELECT key FROM exports WHERE plan_id = $1 AND id = $2), $3, $4)",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .bind(seq)
            .bind(data)
            .execute(&mut *conn)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn finish_export(
        &self,
        plan: &PlanId,
        id: &ExportId,
        lease: &Lease,
        outcome: Result<(i64, i64), String>,
    ) -> StoreResult<()> {
        let now = Timestamp::now().millis();
        let (status, rows, size, error) = match outcome {
            Ok((rows, size)) => ("done", Some(rows), Some(size), None),
            Err(error) => ("failed", None, None, Some(error)),
        };
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let held = sqlx::query(
            "UPDATE exports SET status = $3, total_rows = COALESCE($4, total_rows), \
                 rows_written = COALESCE($4, rows_written), file_size = $5, error = $6, \
                 lease_owner = NULL, lease_until = NULL, modified_at = $7, completed_at = $7 \
                 WHERE plan_id = $1 AND id = $2 AND status = 'running' AND lease_owner = $8",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(status)
        .bind(rows)
        .bind(size)
        .bind(error.as_deref())
        .bind(now)
        .bind(&lease.owner)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if held == 0 {
            return Err(StoreError::LeaseLost);
        }
        if status == "failed" {
            sqlx::query("DELETE FROM export_files WHERE export = (SELECT key FROM exports WHERE plan_id = $1 AND id = $2)")
                .bind(plan.as_str())
                .bind(id.as_str())
                .execute(&mut *conn)
                .await?;
        }
        let data = serde_json::json!({"export_id": id.as_str(), "status": status, "rows": rows, "error": error});
        Self::emit(conn, plan, Event::new(EventType::ExportFinished, id, data)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn export_piece(
        &self,
        plan: &PlanId,
        id: &ExportId,
        seq: i64,
    ) -> StoreResult<Option<Vec<u8>>> {
        let mut conn = self.dialect.reader().acquire().await?;
        Ok(sqlx::query_scalar(
            "SELECT data FROM export_files WHERE export = (SELECT key FROM exports WHERE plan_id = $1 AND id = $2) AND seq = $3",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(seq)
        .fetch_optional(&mut *conn)
        .await?)
    }
}
