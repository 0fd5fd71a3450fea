//! Batches: creating and listing them, claiming due ones with a lease, resolving their
//! recipients (one query, recorded as chunk rows as it is read), and recording every chunk handed
//! to the sender before and after the hand-off. The dialect locks a batch (`LOCK_BATCH`), skips
//! batches another instance is claiming (`CLAIM_LOCK`) and sends the recipients of a batch to
//! groups alone its fastest way (`stream_groups_alone`).

use super::*;

pub(crate) const BATCH_COLUMNS: &str = "plan_id, id, status, targets, excludes, sender, body, \
     client_reference, send_at, expire_at, recipient_count, chunk_size, resolved_at, \
     sent_count, error, created_at, modified_at, completed_at";

/// Writes a batch's recipients as rows of `chunk_size` numbers, a few rows per statement.
pub(crate) struct ChunkRecorder<'a, D> {
    dialect: std::marker::PhantomData<fn() -> D>,
    plan: &'a PlanId,
    id: &'a BatchId,
    size: usize,
    current: Vec<String>,
    /// Finished chunks not yet written: (chunk, count, phones).
    pending: Vec<(i64, i64, String)>,
    next_chunk: i64,
    total: i64,
}

/// Chunk rows per `INSERT`.
pub(crate) const CHUNK_ROWS_PER_INSERT: usize = 32;

impl<'a, D: Dialect> ChunkRecorder<'a, D>
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
    for<'q> bool: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
{
    fn new(plan: &'a PlanId, id: &'a BatchId, size: usize) -> Self {
        Self {
            dialect: std::marker::PhantomData,
            plan,
            id,
            size,
            current: Vec::with_capacity(size),
            pending: Vec::new(),
            next_chunk: 0,
            total: 0,
        }
    }

    async fn push(&mut self, conn: &mut Conn<D>, phone: String) -> StoreResult<()> {
        self.current.push(phone);
        self.total += 1;
        if self.current.len() == self.size {
            self.close_chunk();
            if self.pending.len() == CHUNK_ROWS_PER_INSERT {
                self.write(conn).await?;
            }
        }
        Ok(())
    }

    fn close_chunk(&mut self) {
        let phones = self.current.join("\n");
        self.pending
            .push((self.next_chunk, self.current.len() as i64, phones));
        self.current.clear();
        self.next_chunk += 1;
    }

    async fn write(&mut self, conn: &mut Conn<D>) -> StoreResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut insert = sqlx::QueryBuilder::<D::Db>::new(
            "INSERT INTO batch_recipients (plan_id, batch_id, chunk, count, phones) ",
        );
        insert.push_values(self.pending.drain(..), |mut row, (chunk, count, phones)| {
            row.push_bind(self.plan.as_str().to_owned())
                .push_bind(self.id.as_str().to_owned())
                .push_bind(chunk)
                .push_bind(count)
                .push_bind(phones);
        });
        insert.build().execute(&mut *conn).await?;
        Ok(())
    }

    /// Writes what is left; returns how many recipients there were.
    async fn finish(mut self, conn: &mut Conn<D>) -> StoreResult<i64> {
        if !self.current.is_empty() {
            self.close_chunk();
        }
        self.write(conn).await?;
        Ok(self.total)
    }
}

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
    for<'q> bool: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
{
    pub(crate) fn batch_from_row(
        row: &<D::Db as sqlx::Database>::Row,
    ) -> Result<BatchRecord, sqlx::Error> {
        use sqlx::Row;
        let audience = |column: &str| -> Result<Audience, sqlx::Error> {
            let json: String = row.try_get(column)?;
            let entries: Vec<String> = serde_json::from_str(&json)
                .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
            Ok(Audience::from_stored(&entries))
        };
        let status: String = row.try_get("status")?;
        let time = |column: &str| -> Result<Option<Timestamp>, sqlx::Error> {
            Ok(row
                .try_get::<Option<i64>, _>(column)?
                .map(Timestamp::from_millis))
        };
        Ok(BatchRecord {
            plan_id: PlanId::from_trusted(row.try_get("plan_id")?),
            id: BatchId::from_trusted(row.try_get("id")?),
            status: BatchStatus::parse(&status).unwrap_or(BatchStatus::Failed),
            to: audience("targets")?,
            exclude: audience("excludes")?,
            from: row.try_get("sender")?,
            body: row.try_get("body")?,
            client_reference: row.try_get("client_reference")?,
            send_at: Timestamp::from_millis(row.try_get("send_at")?),
            expire_at: time("expire_at")?,
            recipient_count: row.try_get("recipient_count")?,
            chunk_size: row.try_get("chunk_size")?,
            resolved_at: time("resolved_at")?,
            sent_count: row.try_get("sent_count")?,
            error: row.try_get("error")?,
            created_at: Timestamp::from_millis(row.try_get("created_at")?),
            modified_at: Timestamp::from_millis(row.try_get("modified_at")?),
            completed_at: time("completed_at")?,
        })
    }

    pub(crate) async fn load_batch(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &str,
    ) -> StoreResult<BatchRecord> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE plan_id = $1 AND id = $2"
        )))
        .bind(plan.as_str())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound(Entity::Batch))?;
        Ok(Self::batch_from_row(&row)?)
    }

    /// Renews the claim on a batch being sent; `LeaseLost` if it is no longer this owner's
    /// (expired and taken over, or canceled).
    pub(crate) async fn hold_lease(
        conn: &mut Conn<D>,
        lease: &Lease,
        plan: &PlanId,
        id: &BatchId,
        sent: i64,
    ) -> StoreResult<()> {
        let now = Timestamp::now().millis();
        let updated = sqlx::query(
            "UPDATE batches SET lease_until = $1, sent_count = sent_count + $2 \
                 WHERE plan_id = $3 AND id = $4 AND status = 'sending' AND lease_owner = $5",
        )
        .bind(now + lease.millis)
        .bind(sent)
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(&lease.owner)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if updated == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost)
        }
    }

    /// The groups of an audience as one tree: each group that is still active, with its
    /// active children. A group deleted since the batch was created counts as empty.
    pub(crate) async fn audience_tree(
        conn: &mut Conn<D>,
        plan: &PlanId,
        audience: &Audience,
    ) -> StoreResult<Vec<TreeGroup>> {
        let mut tree: Vec<TreeGroup> = Vec::new();
        for group in &audience.groups {
            let active: Option<String> = sqlx::query_scalar(
                "SELECT id FROM contact_groups \
                     WHERE plan_id = $1 AND id = $2 AND status = 'ACTIVE'",
            )
            .bind(plan.as_str())
            .bind(group.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            if active.is_none() {
                continue;
            }
            for member in Self::load_tree(conn, plan, group.as_str()).await? {
                if !tree.iter().any(|known| known.id == member.id) {
                    tree.push(member);
                }
            }
        }
        Ok(tree)
    }

    /// `SELECT phone FROM …`: the distinct recipients of a batch, in no order the caller
    /// may rely on.
    pub(crate) fn push_resolution(
        builder: &mut sqlx::QueryBuilder<D::Db>,
        plan: &PlanId,
        include: &[TreeGroup],
        exclude: &[TreeGroup],
        batch: &BatchRecord,
    ) {
        let excluded_numbers = |builder: &mut sqlx::QueryBuilder<D::Db>, column: &str| {
            if !batch.exclude.numbers.is_empty() {
                builder.push(format!(" AND {column} NOT IN "));
                D::push_list(builder, batch.exclude.numbers.iter().map(String::as_str));
            }
        };
        let mut branches = 0;
        // Groups without rules are ranges of their members' keys: merged (or hashed) as sets
        // before each member's number is looked up.
        let merged = !include.is_empty() && Self::is_static(include) && Self::is_static(exclude);
        if merged {
            Self::push_static_numbers(
                builder,
                &Self::tree_keys(include),
                &Self::tree_keys(exclude),
                true,
            );
            excluded_numbers(builder, "c.phone");
            branches += 1;
        } else if !include.is_empty() {
            builder.push("SELECT c.phone AS phone FROM contacts c WHERE c.plan = ");
            push_plan_key(builder, plan);
            builder.push(" AND NOT c.opted_out AND ");
            Self::push_membership(builder, include, Scan::Set);
            if !exclude.is_empty() {
                builder.push(" AND NOT ");
                Self::push_membership(builder, exclude, Scan::Set);
            }
            excluded_numbers(builder, "c.phone");
            branches += 1;
        }
        if !batch.to.numbers.is_empty() {
            if branches > 0 {
                builder.push(" UNION ");
            }
            // A loose number is left out when its contact opted out or is in an excluded
            // group; a number that is no contact is sent to.
            builder.push("SELECT n.phone AS phone FROM ");
            D::push_phone_table(builder, batch.to.numbers.iter().map(String::as_str));
            builder
                .push(
                    " n WHERE NOT EXISTS (SELECT 1 FROM contacts c \
                         WHERE c.plan = (SELECT key FROM plans WHERE id = ",
                )
                .push_bind(plan.as_str().to_owned())
                .push(") AND c.phone = n.phone AND (c.opted_out");
            if !exclude.is_empty() {
                builder.push(" OR ");
                Self::push_membership(builder, exclude, Scan::Set);
            }
            builder.push("))");
            excluded_numbers(builder, "n.phone");
            branches += 1;
        }
        if branches == 0 {
            builder.push("SELECT CAST(NULL AS TEXT) AS phone WHERE FALSE");
        }
    }

    /// Whether a batch's recipients are its groups' numbers alone (groups without rules,
    /// no loose numbers to add or leave out): the case each backend reads its fastest way.
    pub(crate) fn groups_alone(
        include: &[TreeGroup],
        exclude: &[TreeGroup],
        batch: &BatchRecord,
    ) -> bool {
        !include.is_empty()
            && Self::is_static(include)
            && Self::is_static(exclude)
            && batch.to.numbers.is_empty()
            && batch.exclude.numbers.is_empty()
    }

    /// Sends the distinct recipients of a batch in chunks, read on `conn`.
    pub(crate) async fn send_resolution(
        conn: &mut Conn<D>,
        plan: &PlanId,
        (include, exclude): (&[TreeGroup], &[TreeGroup]),
        batch: &BatchRecord,
        sender: &NumberChunks,
    ) -> StoreResult<()> {
        let mut select = sqlx::QueryBuilder::<D::Db>::new("");
        Self::push_resolution(&mut select, plan, include, exclude, batch);
        let rows = select.build_query_scalar::<String>().fetch(&mut *conn);
        forward_rows(rows, sender).await
    }
}

#[async_trait]
impl<D: Dialect> BatchStore for SqlStore<D>
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
    for<'q> bool: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
{
    async fn create_batch(&self, plan: &PlanId, batch: NewBatch) -> StoreResult<BatchRecord> {
        let mut tx = self.dialect.begin_write().await?;
        let mut unknown = Vec::new();
        for group in batch.to.groups.iter().chain(&batch.exclude.groups) {
            let found: Option<String> = sqlx::query_scalar(
                "SELECT id FROM contact_groups \
                     WHERE plan_id = $1 AND id = $2 AND status = 'ACTIVE'",
            )
            .bind(plan.as_str())
            .bind(group.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if found.is_none() {
                unknown.push(group.clone());
            }
        }
        if !unknown.is_empty() {
            return Err(StoreError::UnknownGroups(unknown));
        }
        let id = BatchId::generate();
        let now = Timestamp::now().millis();
        let entries = |audience: &Audience| {
            serde_json::to_string(&audience.entries())
                .map_err(|error| sqlx::Error::Encode(Box::new(error)))
        };
        sqlx::query(
            "INSERT INTO batches (plan_id, id, status, targets, excludes, sender, body, \
                 client_reference, send_at, expire_at, created_at, modified_at) \
                 VALUES ($1, $2, 'scheduled', $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(entries(&batch.to)?)
        .bind(entries(&batch.exclude)?)
        .bind(batch.from.as_deref())
        .bind(&batch.body)
        .bind(batch.client_reference.as_deref())
        .bind(batch.send_at.millis())
        .bind(batch.expire_at.map(Timestamp::millis))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let record = Self::load_batch(&mut tx, plan, id.as_str()).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn get_batch(&self, plan: &PlanId, id: &BatchId) -> StoreResult<BatchRecord> {
        let mut conn = self.dialect.reader().acquire().await?;
        Self::load_batch(&mut conn, plan, id.as_str()).await
    }

    async fn list_batches(
        &self,
        plan: &PlanId,
        query: &BatchQuery,
    ) -> StoreResult<(Vec<BatchRecord>, i64)> {
        let mut conn = self.dialect.reader().acquire().await?;
        let filters = |builder: &mut sqlx::QueryBuilder<D::Db>| {
            builder
                .push(" FROM batches WHERE plan_id = ")
                .push_bind(plan.as_str().to_owned());
            if let Some(status) = query.status {
                builder.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(reference) = &query.client_reference {
                builder
                    .push(" AND client_reference = ")
                    .push_bind(reference.clone());
            }
            if let Some(from) = &query.from {
                builder.push(" AND sender = ").push_bind(from.clone());
            }
            if let Some(at) = query.created_from {
                builder.push(" AND created_at >= ").push_bind(at.millis());
            }
            if let Some(at) = query.created_before {
                builder.push(" AND created_at < ").push_bind(at.millis());
            }
        };
        let mut count = sqlx::QueryBuilder::<D::Db>::new("SELECT COUNT(*)");
        filters(&mut count);
        let total: i64 = count.build_query_scalar().fetch_one(&mut *conn).await?;
        let mut page = sqlx::QueryBuilder::<D::Db>::new(format!("SELECT {BATCH_COLUMNS}"));
        filters(&mut page);
        page.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(query.limit)
            .push(" OFFSET ")
            .push_bind(query.offset);
        let rows = page.build().fetch_all(&mut *conn).await?;
        let batches = rows
            .iter()
            .map(Self::batch_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((batches, total))
    }

    async fn cancel_batch(&self, plan: &PlanId, id: &BatchId) -> StoreResult<BatchRecord> {
        let mut tx = self.dialect.begin_write().await?;
        let status: String = sqlx::query_scalar(D::LOCK_BATCH)
            .bind(plan.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound(Entity::Batch))?;
        let status = BatchStatus::parse(&status).unwrap_or(BatchStatus::Failed);
        if status.is_final() {
            return Err(StoreError::BatchFinished(status));
        }
        let now = Timestamp::now().millis();
        sqlx::query(
            "UPDATE batches SET status = 'canceled', lease_owner = NULL, \
                 lease_until = NULL, modified_at = $1, completed_at = $1 \
                 WHERE plan_id = $2 AND id = $3",
        )
        .bind(now)
        .bind(plan.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        let record = Self::load_batch(&mut tx, plan, id.as_str()).await?;
        tx.commit().await?;
        Ok(record)
    }

    fn batch_recipients(
        &self,
        plan: PlanId,
        id: BatchId,
    ) -> BoxStream<'static, StoreResult<String>> {
        let store = self.clone();
        spawn_number_stream(move |sender| async move {
            let mut conn = store.dialect.reader().acquire().await?;
            let batch = Self::load_batch(&mut conn, &plan, id.as_str()).await?;
            if batch.recipient_count.is_none() {
                return Err(StoreError::NotResolved);
            }
            let mut rows = sqlx::query_scalar::<_, String>(
                "SELECT phones FROM batch_recipients \
                     WHERE plan_id = $1 AND batch_id = $2 ORDER BY chunk",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .fetch(&mut *conn);
            while let Some(phones) = futures::TryStreamExt::try_next(&mut rows).await? {
                let chunk = phones.split('\n').map(str::to_owned).collect();
                if sender.send(Ok(chunk)).await.is_err() {
                    break;
                }
            }
            Ok(())
        })
    }

    async fn claim_batch(&self, lease: &Lease) -> StoreResult<Option<BatchRecord>> {
        // Idle instances poll; a read first keeps them from taking the write lock (the
        // only writer connection, on SQLite) when nothing is due.
        let now = Timestamp::now().millis();
        let due: Option<String> = sqlx::query_scalar(
            "SELECT id FROM batches \
                 WHERE (status = 'scheduled' AND send_at <= $1) \
                    OR (status = 'sending' AND lease_until < $1) LIMIT 1",
        )
        .bind(now)
        .fetch_optional(self.dialect.reader())
        .await?;
        if due.is_none() {
            return Ok(None);
        }
        let mut tx = self.dialect.begin_write().await?;
        let claimed: Option<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE batches SET status = 'sending', lease_owner = $1, lease_until = $2, \
                 modified_at = $3 \
                 WHERE (plan_id, id) IN ( \
                     SELECT plan_id, id FROM batches \
                     WHERE (status = 'scheduled' AND send_at <= $3) \
                        OR (status = 'sending' AND lease_until < $3) \
                     ORDER BY send_at, id LIMIT 1{claim_lock}) \
                 RETURNING plan_id, id",
            claim_lock = D::CLAIM_LOCK
        )))
        .bind(&lease.owner)
        .bind(now + lease.millis)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((plan, id)) = claimed else {
            tx.commit().await?;
            return Ok(None);
        };
        let record = Self::load_batch(&mut tx, &PlanId::from_trusted(plan), &id).await?;
        tx.commit().await?;
        Ok(Some(record))
    }

    async fn resolve_batch(
        &self,
        lease: &Lease,
        plan: &PlanId,
        id: &BatchId,
        chunk_size: i64,
    ) -> StoreResult<BatchRecord> {
        let mut tx = self.dialect.begin_write().await?;
        Self::hold_lease(&mut tx, lease, plan, id, 0).await?;
        let batch = Self::load_batch(&mut tx, plan, id.as_str()).await?;
        if batch.recipient_count.is_some() {
            tx.commit().await?;
            return Ok(batch);
        }
        // The recipients are read by a task of their own (on a pooled connection, or
        // the backend's own way for groups alone) and written in chunks beside it, so
        // that memory holds a few chunks whatever the batch's size.
        let mut reader = self.dialect.reader().acquire().await?;
        let include = Self::audience_tree(&mut reader, plan, &batch.to).await?;
        let exclude = Self::audience_tree(&mut reader, plan, &batch.exclude).await?;
        let store = self.clone();
        let (owned_plan, owned_batch) = (plan.clone(), batch.clone());
        let mut rows = spawn_numbers(move |sender| async move {
            let (plan, batch) = (owned_plan, owned_batch);
            if Self::groups_alone(&include, &exclude, &batch) {
                let keys = (Self::tree_keys(&include), Self::tree_keys(&exclude));
                store
                    .dialect
                    .stream_groups_alone(reader, (&keys.0, &keys.1), sender)
                    .await
            } else {
                let mut reader = reader;
                let trees = (include.as_slice(), exclude.as_slice());
                Self::send_resolution(&mut reader, &plan, trees, &batch, &sender).await
            }
        });
        let size = usize::try_from(chunk_size.max(1)).unwrap_or(1000);
        let mut recorder = ChunkRecorder::<D>::new(plan, id, size);
        while let Some(phone) = futures::TryStreamExt::try_next(&mut rows).await? {
            recorder.push(&mut tx, phone).await?;
        }
        let count = recorder.finish(&mut tx).await?;
        let now = Timestamp::now().millis();
        sqlx::query(
            "UPDATE batches SET recipient_count = $1, chunk_size = $2, resolved_at = $3, \
                 modified_at = $3 WHERE plan_id = $4 AND id = $5",
        )
        .bind(count)
        .bind(chunk_size)
        .bind(now)
        .bind(plan.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        let batch = Self::load_batch(&mut tx, plan, id.as_str()).await?;
        tx.commit().await?;
        Ok(batch)
    }

    async fn batch_chunks(&self, plan: &PlanId, id: &BatchId) -> StoreResult<Vec<ChunkRecord>> {
        let mut conn = self.dialect.reader().acquire().await?;
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT chunk, state, sender_state, handed_at FROM batch_chunks \
                 WHERE plan_id = $1 AND batch_id = $2 ORDER BY chunk",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(chunk, state, sender_state, handed_at)| ChunkRecord {
                chunk,
                done: state == "done",
                sender_state,
                handed_at: Timestamp::from_millis(handed_at),
            })
            .collect())
    }

    async fn chunk_recipients(
        &self,
        plan: &PlanId,
        id: &BatchId,
        chunk: i64,
    ) -> StoreResult<Vec<String>> {
        let mut conn = self.dialect.reader().acquire().await?;
        let phones: Option<String> = sqlx::query_scalar(
            "SELECT phones FROM batch_recipients \
                 WHERE plan_id = $1 AND batch_id = $2 AND chunk = $3",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(chunk)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(phones
            .map(|phones| phones.split('\n').map(str::to_owned).collect())
            .unwrap_or_default())
    }

    async fn begin_chunk(
        &self,
        lease: &Lease,
        plan: &PlanId,
        id: &BatchId,
        chunk: i64,
        sender_state: &str,
    ) -> StoreResult<()> {
        let mut tx = self.dialect.begin_write().await?;
        Self::hold_lease(&mut tx, lease, plan, id, 0).await?;
        sqlx::query(
            "INSERT INTO batch_chunks (plan_id, batch_id, chunk, state, sender_state, \
                 handed_at) VALUES ($1, $2, $3, 'handing', $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(chunk)
        .bind(sender_state)
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_chunk(
        &self,
        lease: &Lease,
        plan: &PlanId,
        id: &BatchId,
        chunk: i64,
        recipients: i64,
    ) -> StoreResult<()> {
        let mut tx = self.dialect.begin_write().await?;
        let marked = sqlx::query(
            "UPDATE batch_chunks SET state = 'done', done_at = $1 \
                 WHERE plan_id = $2 AND batch_id = $3 AND chunk = $4 AND state = 'handing'",
        )
        .bind(Timestamp::now().millis())
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(chunk)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // The count moves with the chunk's state, so it counts every chunk once.
        Self::hold_lease(
            &mut tx,
            lease,
            plan,
            id,
            if marked == 1 { recipients } else { 0 },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn renew_lease(&self, lease: &Lease, plan: &PlanId, id: &BatchId) -> StoreResult<()> {
        let mut tx = self.dialect.begin_write().await?;
        Self::hold_lease(&mut tx, lease, plan, id, 0).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_batch(
        &self,
        lease: &Lease,
        plan: &PlanId,
        id: &BatchId,
        status: BatchStatus,
        error: Option<&str>,
    ) -> StoreResult<()> {
        let mut tx = self.dialect.begin_write().await?;
        Self::hold_lease(&mut tx, lease, plan, id, 0).await?;
        let now = Timestamp::now().millis();
        sqlx::query(
            "UPDATE batches SET status = $1, error = $2, lease_owner = NULL, \
                 lease_until = NULL, modified_at = $3, completed_at = $3 \
                 WHERE plan_id = $4 AND id = $5",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(now)
        .bind(plan.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<()> {
        let mut tx = self.dialect.begin_write().await?;
        sqlx::query(
            "UPDATE batches SET lease_until = 0 \
                 WHERE status = 'sending' AND lease_owner = $1",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
