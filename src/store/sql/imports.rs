//! Imports. An import is written in one transaction: rows arrive in chunks from the
//! reader, are made ready on a thread of their own (`import_prepare`), and each chunk is written
//! with a few set-based statements (the dialect's `insert_import_contacts` of every row as a new
//! contact; a lookup, `update_import_contacts` and merge only for numbers the plan had;
//! `insert_import_errors`; one insert of memberships per group); the import's status becomes
//! `done` in the same transaction, guarded by its attempt number, so that an import is whole or
//! absent and never applied twice.

use super::*;
use crate::domain::auto_update::DoubleOptIn;
use crate::domain::import::{self, TargetRefusal};

/// A contact's values as an import writes them.
pub(crate) struct ContactValues {
    pub id: ContactId,
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub gender: Option<String>,
    pub time_zone: Option<String>,
    pub fields: String,
    /// Its code (`NumberType::code`); `None` for a number that is not valid.
    pub number_type: Option<i16>,
    pub country: Option<String>,
    /// Only where the names alone cannot give it (`stored_sort_names`).
    pub sort_name: Option<String>,
    pub sort_name_last: Option<String>,
    pub opted_out: bool,
    pub opted_out_at: Option<i64>,
    pub opted_out_reason: Option<String>,
}

/// Stored pieces of uploaded and exported files.
pub(crate) const FILE_PIECE_BYTES: usize = 1024 * 1024;

/// The reason recorded on contacts an import opts out.
pub(crate) const IMPORT_OPT_OUT_REASON: &str = "opted out in an imported file";

pub(crate) const IMPORT_COLUMNS: &str = "id, status, file_name, file_size, detected, preview, \
     total_rows, settings, attempt, lease_until, rows_read, report, error, created_at, \
     modified_at, completed_at";

/// The groups an import writes to, in the order they were first named.
pub(crate) struct ImportGroups<D> {
    dialect: std::marker::PhantomData<fn() -> D>,
    groups: Vec<ImportedGroup>,
    /// Group names from rows → index in `groups`, or `None` for a smart group.
    by_name: std::collections::HashMap<String, Option<usize>>,
    /// Indexes of the groups every contact joins.
    targets: Vec<usize>,
    /// Whether groups with double opt-in get confirmation requests instead of members.
    confirm: bool,
    /// Each group's double opt-in (and the number it is sent from), once looked up.
    confirmation: std::collections::HashMap<usize, Option<(String, DoubleOptIn)>>,
}

impl<D: Dialect> ImportGroups<D>
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
    fn new() -> Self {
        Self {
            dialect: std::marker::PhantomData,
            groups: Vec::new(),
            by_name: std::collections::HashMap::new(),
            targets: Vec::new(),
            confirm: false,
            confirmation: std::collections::HashMap::new(),
        }
    }

    async fn create(
        conn: &mut Conn<D>,
        plan: &PlanId,
        name: &GroupName,
        now: i64,
    ) -> StoreResult<ImportedGroup> {
        let id = GroupId::generate();
        sqlx::query(
            "INSERT INTO contact_groups (plan_id, id, name, status, created_at, \
             modified_at) VALUES ($1, $2, $3, 'ACTIVE', $4, $4)",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(name.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(ImportedGroup {
            id: id.as_str().to_owned(),
            name: Some(name.as_str().to_owned()),
            created: true,
            added: 0,
            requested: 0,
        })
    }

    /// The group a row names: the plan's oldest active group of that name, or a new one.
    async fn named(
        &mut self,
        conn: &mut Conn<D>,
        plan: &PlanId,
        name: &GroupName,
        now: i64,
        warnings: &mut Vec<String>,
    ) -> StoreResult<Option<usize>> {
        if let Some(found) = self.by_name.get(name.as_str()) {
            return Ok(*found);
        }
        let existing: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT id, rule FROM contact_groups WHERE plan_id = $1 AND name = $2 \
             AND status = 'ACTIVE' ORDER BY created_at, id LIMIT 1",
        )
        .bind(plan.as_str())
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        let found = match existing {
            Some((_, Some(_))) => {
                warnings.push(format!(
                    "group {:?} is a smart group: its members follow its rule, so rows \
                     naming it were not added to it",
                    name.as_str()
                ));
                None
            }
            Some((id, None)) => match self.groups.iter().position(|g| g.id == id) {
                Some(index) => Some(index),
                None => {
                    self.groups.push(ImportedGroup {
                        id,
                        name: Some(name.as_str().to_owned()),
                        created: false,
                        added: 0,
                        requested: 0,
                    });
                    Some(self.groups.len() - 1)
                }
            },
            None => {
                self.groups.push(Self::create(conn, plan, name, now).await?);
                Some(self.groups.len() - 1)
            }
        };
        self.by_name.insert(name.as_str().to_owned(), found);
        Ok(found)
    }
}

/// What an import has met so far, to leave out a number met again later in the file:
/// contacts it created are known by their ids, existing contacts it has already merged
/// are kept in a temporary table (created when first needed, dropped before commit),
/// so memory stays at a chunk whatever the file's size.
pub(crate) struct ImportSeen<D> {
    dialect: std::marker::PhantomData<fn() -> D>,
    ids: ImportedIds,
    merged_table: bool,
}

impl<D: Dialect> ImportSeen<D>
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
    fn new() -> Self {
        Self {
            dialect: std::marker::PhantomData,
            ids: ImportedIds::new(),
            merged_table: false,
        }
    }

    /// Of `phones` (existing contacts' numbers), those not merged before in this import.
    async fn first_merges(
        &mut self,
        conn: &mut Conn<D>,
        phones: &[&str],
    ) -> StoreResult<std::collections::HashSet<String>> {
        if phones.is_empty() {
            return Ok(Default::default());
        }
        if !self.merged_table {
            sqlx::query("CREATE TEMPORARY TABLE import_merged (phone TEXT PRIMARY KEY)")
                .execute(&mut *conn)
                .await?;
            self.merged_table = true;
        }
        let mut insert = sqlx::QueryBuilder::<D::Db>::new(
            "INSERT INTO import_merged (phone) SELECT t.phone FROM ",
        );
        D::push_phone_table(&mut insert, phones.iter().copied());
        insert.push(" AS t WHERE true ON CONFLICT DO NOTHING RETURNING phone");
        let first: Vec<String> = insert.build_query_scalar().fetch_all(&mut *conn).await?;
        Ok(first.into_iter().collect())
    }

    /// Before commit: a temporary table would outlive the transaction on its connection.
    async fn finish(self, conn: &mut Conn<D>) -> StoreResult<()> {
        if self.merged_table {
            sqlx::query("DROP TABLE import_merged")
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
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
    for<'q> i16: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i16>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> bool: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
{
    pub(crate) fn import_from_row(
        row: &<D::Db as sqlx::Database>::Row,
    ) -> Result<ImportRecord, sqlx::Error> {
        use sqlx::Row;
        let status: String = row.try_get("status")?;
        let time = |column: &str| -> Result<Option<Timestamp>, sqlx::Error> {
            Ok(row
                .try_get::<Option<i64>, _>(column)?
                .map(Timestamp::from_millis))
        };
        Ok(ImportRecord {
            id: ImportId::from_trusted(row.try_get("id")?),
            status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
            file_name: row.try_get("file_name")?,
            file_size: row.try_get("file_size")?,
            source: from_json(&row.try_get::<String, _>("detected")?)?,
            preview: from_json(&row.try_get::<String, _>("preview")?)?,
            total_rows: row.try_get("total_rows")?,
            settings: row
                .try_get::<Option<String>, _>("settings")?
                .as_deref()
                .map(from_json)
                .transpose()?,
            attempt: row.try_get("attempt")?,
            lease_until: time("lease_until")?,
            rows_read: row.try_get("rows_read")?,
            report: row
                .try_get::<Option<String>, _>("report")?
                .as_deref()
                .map(from_json)
                .transpose()?,
            error: row.try_get("error")?,
            created_at: Timestamp::from_millis(row.try_get("created_at")?),
            modified_at: Timestamp::from_millis(row.try_get("modified_at")?),
            completed_at: time("completed_at")?,
        })
    }

    pub(crate) async fn load_import(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &ImportId,
    ) -> StoreResult<ImportRecord> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE plan_id = $1 AND id = $2"
        )))
        .bind(plan.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound(Entity::Import))?;
        Ok(Self::import_from_row(&row)?)
    }

    /// A page of the plan's rows of `table` (imports, exports, series), newest first, decoded by
    /// `decode`, and how many rows the plan has there.
    pub(crate) async fn newest_first<T>(
        &self,
        plan: &PlanId,
        (table, columns): (&'static str, &'static str),
        (offset, limit): (i64, i64),
        decode: fn(&Row<D>) -> Result<T, sqlx::Error>,
    ) -> StoreResult<(Vec<T>, i64)> {
        let mut conn = self.dialect.reader().acquire().await?;
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {table} WHERE plan_id = $1"
        )))
        .bind(plan.as_str())
        .fetch_one(&mut *conn)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {columns} FROM {table} WHERE plan_id = $1 \
                 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        )))
        .bind(plan.as_str())
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
        let records = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        Ok((records, total))
    }

    /// Removes the plan's uploads and exports that are older than a day and not running.
    pub(crate) async fn sweep_job_files(
        conn: &mut Conn<D>,
        plan: &PlanId,
        now: i64,
    ) -> StoreResult<()> {
        let before = now - crate::store::jobs::JOB_FILES_KEPT_MILLIS;
        sqlx::query(
            "DELETE FROM import_files WHERE import IN ( \
                     SELECT key FROM imports WHERE plan_id = $1 AND created_at < $2 \
                     AND status <> 'running')",
        )
        .bind(plan.as_str())
        .bind(before)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "DELETE FROM exports WHERE plan_id = $1 AND created_at < $2 \
                 AND status <> 'running'",
        )
        .bind(plan.as_str())
        .bind(before)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Fills `groups` with the import's target groups: existing ones must be active and
    /// static; new ones are created.
    pub(crate) async fn import_targets(
        conn: &mut Conn<D>,
        plan: &PlanId,
        write: &ImportWrite,
        now: i64,
    ) -> StoreResult<ImportGroups<D>> {
        let mut groups = ImportGroups::<D>::new();
        groups.confirm = write.confirm;
        for id in &write.groups {
            let locked = Self::lock_group(conn, plan, id, None).await?;
            match import::check_target(locked.status, locked.smart) {
                Ok(()) => {}
                Err(TargetRefusal::Deleted) => {
                    return Err(StoreError::UnknownGroups(vec![id.clone()]));
                }
                Err(TargetRefusal::Smart) => {
                    return Err(StoreError::SmartGroup(GroupRef::Id(id.clone())));
                }
            }
            let name: Option<String> = sqlx::query_scalar(
                "SELECT name FROM contact_groups WHERE plan_id = $1 AND id = $2",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .fetch_one(&mut *conn)
            .await?;
            groups.groups.push(ImportedGroup {
                id: id.as_str().to_owned(),
                name,
                created: false,
                added: 0,
                requested: 0,
            });
            groups.targets.push(groups.groups.len() - 1);
        }
        for name in &write.group_names {
            let mut warnings = Vec::new();
            match groups.named(conn, plan, name, now, &mut warnings).await? {
                Some(index) => groups.targets.push(index),
                None => {
                    return Err(StoreError::SmartGroup(GroupRef::Name(
                        name.as_str().to_owned(),
                    )));
                }
            }
        }
        Ok(groups)
    }

    /// The contact `row` makes of `existing` under `mode` (see [`import::merge`]), or `None` if
    /// it stays as it is.
    pub(crate) fn merge_contact(
        existing: &ContactRecord,
        row: &ImportRow,
        mode: ExistingContacts,
        now: i64,
    ) -> Option<ContactValues> {
        let own = import::Attributes {
            first_name: existing.first_name.clone(),
            last_name: existing.last_name.clone(),
            email: existing.email.clone(),
            gender: existing.gender.clone(),
            time_zone: existing.time_zone.clone(),
            fields: existing.fields.as_map().clone(),
        };
        let text = |value: Option<&str>| value.map(str::to_owned);
        let cells = import::Attributes {
            first_name: text(row.first_name.as_ref().map(PersonName::as_str)),
            last_name: text(row.last_name.as_ref().map(PersonName::as_str)),
            email: text(row.email.as_ref().map(Email::as_str)),
            gender: text(row.gender.as_ref().map(Gender::as_str)),
            time_zone: text(row.time_zone.as_ref().map(TimeZoneName::as_str)),
            fields: row.fields.clone(),
        };
        let import::Merged {
            attributes,
            opts_out,
        } = import::merge(&own, existing.opted_out, &cells, row.opted_out, mode)?;
        let (sort_name, sort_name_last) = stored_sort_names(
            attributes.first_name.as_deref(),
            attributes.last_name.as_deref(),
        );
        Some(ContactValues {
            id: existing.id.clone(),
            phone: existing.phone.clone(),
            first_name: attributes.first_name,
            last_name: attributes.last_name,
            email: attributes.email,
            gender: attributes.gender,
            time_zone: attributes.time_zone,
            fields: serde_json::Value::Object(attributes.fields).to_string(),
            number_type: existing
                .number_type
                .as_deref()
                .and_then(NumberType::parse)
                .map(NumberType::code),
            country: existing.country.clone(),
            sort_name,
            sort_name_last,
            opted_out: existing.opted_out || opts_out,
            opted_out_at: if opts_out {
                Some(now)
            } else {
                existing.opted_out_at.map(Timestamp::millis)
            },
            opted_out_reason: if opts_out {
                Some(IMPORT_OPT_OUT_REASON.to_owned())
            } else {
                existing.opted_out_reason.clone()
            },
        })
    }

    /// Writes one chunk of rows: new contacts, changed contacts, opt-outs and memberships.
    /// Returns the rows left out because their number came earlier in the file or was erased.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_import_rows(
        conn: &mut Conn<D>,
        plan: &PlanId,
        mode: ExistingContacts,
        groups: &mut ImportGroups<D>,
        seen: &mut ImportSeen<D>,
        report: &mut ImportReport,
        chunk: PreparedRows<D>,
        now: i64,
    ) -> StoreResult<Vec<RejectedRow>> {
        let PreparedRows {
            rows,
            mut duplicates,
            fresh,
            mut insert,
            first_key,
            plan: plan_key,
            ids,
        } = chunk;
        seen.ids = ids;
        // A number erased at its owner's request is left out, with the reason.
        let phones: Vec<&str> = rows.iter().map(|row| row.phone.msisdn.as_str()).collect();
        let erased = Self::erased_among(conn, plan, &phones).await?;
        let mut left_out = Vec::new();
        let (rows, fresh): (Vec<ImportRow>, Vec<ContactValues>) = if erased.is_empty() {
            (rows, fresh)
        } else {
            let kept: (Vec<ImportRow>, Vec<ContactValues>) = rows
                .into_iter()
                .zip(fresh)
                .filter(|(row, _)| {
                    let kept = !erased.contains(row.phone.msisdn.as_str());
                    if !kept {
                        report.invalid += 1;
                        left_out.push(RejectedRow {
                            row: row.row,
                            reason: format!("phone: {}", crate::domain::erasure::ERASED_REASON),
                        });
                    }
                    kept
                })
                .unzip();
            insert = D::bind_import_contacts(plan_key, &kept.1, first_key, now);
            kept
        };
        // Most rows of most imports are new: insert every row as a new contact first, and
        // look up (and merge into) only those whose number the plan already had.
        let inserted = D::insert_import_contacts(conn, insert, &fresh).await?;
        let taken: Vec<&str> = rows
            .iter()
            .zip(&inserted)
            .filter(|(_, key)| key.is_none())
            .map(|(row, _)| row.phone.msisdn.as_str())
            .collect();
        let mut existing: std::collections::HashMap<String, (ContactRecord, i64)> =
            if taken.is_empty() {
                Default::default()
            } else {
                let mut lookup = sqlx::QueryBuilder::<D::Db>::new(format!(
                    "SELECT {CONTACT_COLUMNS}, c.key FROM contacts c WHERE c.plan = "
                ));
                push_plan_key(&mut lookup, plan);
                lookup.push(" AND ");
                D::push_phone_in(&mut lookup, &taken);
                if let Some(lock) = D::LOCK_ROWS_KEPT {
                    // Until the import commits: what is merged below is what it overwrites
                    // (an opt-out by keyword between this read and the rewrite would be
                    // undone otherwise), and in key order, as other writers lock contacts.
                    lookup.push(" ORDER BY c.key").push(lock);
                }
                lookup
                    .build()
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|row| {
                        let contact = Self::contact_from_row(row)?;
                        Ok((
                            contact.phone.clone(),
                            (contact, sqlx::Row::try_get(row, "key")?),
                        ))
                    })
                    .collect::<Result<_, sqlx::Error>>()?
            };
        let older: Vec<&str> = existing
            .values()
            .filter(|(contact, _)| !seen.ids.created(contact.id.as_str()))
            .map(|(contact, _)| contact.phone.as_str())
            .collect();
        let first_merges = seen.first_merges(conn, &older).await?;

        let mut changed = Vec::new();
        let mut opted_out: Vec<(ContactId, String)> = Vec::new();
        // Each row's contact key.
        let mut keys: Vec<i64> = Vec::with_capacity(rows.len());
        let mut by_group: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for ((row, values), inserted) in rows.iter().zip(&fresh).zip(inserted) {
            let key = if let Some(key) = inserted {
                if values.opted_out {
                    opted_out.push((values.id.clone(), values.phone.clone()));
                }
                report.created += 1;
                key
            } else {
                let (contact, key) =
                    existing.remove(row.phone.msisdn.as_str()).ok_or_else(|| {
                        StoreError::JobState(JobConflict::ContactChanged(
                            row.phone.msisdn.as_str().to_owned(),
                        ))
                    })?;
                if !first_merges.contains(&contact.phone) {
                    duplicates.push(duplicate_row(row));
                    continue;
                }
                if row.opted_out == Some(false) && contact.opted_out {
                    report.opt_ins_refused += 1;
                }
                match Self::merge_contact(&contact, row, mode, now) {
                    Some(values) => {
                        if values.opted_out && !contact.opted_out {
                            opted_out.push((values.id.clone(), values.phone.clone()));
                        }
                        changed.push(values);
                        if mode == ExistingContacts::Skip {
                            report.skipped += 1;
                        } else {
                            report.updated += 1;
                        }
                    }
                    None if mode == ExistingContacts::Skip => report.skipped += 1,
                    None => report.unchanged += 1,
                }
                key
            };
            let index = keys.len();
            keys.push(key);
            for name in &row.groups {
                if let Some(group) = groups
                    .named(conn, plan, name, now, &mut report.warnings)
                    .await?
                {
                    by_group.entry(group).or_default().push(index);
                }
            }
        }
        // Freeing a chunk's rows and values (some 100,000 allocations) is left to another
        // thread: done here, the connection would wait for it before the chunk's last writes.
        tokio::task::spawn_blocking(move || drop((rows, fresh)));
        report.duplicates += duplicates.len() as u64;
        duplicates.extend(left_out);
        report.opted_out += opted_out.len() as u64;
        D::update_import_contacts(conn, plan, &changed, now).await?;
        for (id, phone) in &opted_out {
            let id = id.as_str();
            Self::record_consent(conn, plan, id, phone, "opt_out", None, "import", None, now)
                .await?;
        }
        for group in groups.targets.clone() {
            by_group.remove(&group);
            Self::join_group(conn, plan, groups, group, keys.clone(), now).await?;
        }
        for (group, members) in by_group {
            let members = members.iter().map(|&index| keys[index]).collect();
            Self::join_group(conn, plan, groups, group, members, now).await?;
        }
        duplicates.sort_by_key(|row| row.row);
        Ok(duplicates)
    }

    /// Adds an import's contacts to one of its groups, or, with `confirm` and a group with
    /// double opt-in, asks them to confirm.
    async fn join_group(
        conn: &mut Conn<D>,
        plan: &PlanId,
        groups: &mut ImportGroups<D>,
        index: usize,
        keys: Vec<i64>,
        now: i64,
    ) -> StoreResult<()> {
        let id = groups.groups[index].id.clone();
        if groups.confirm && !groups.confirmation.contains_key(&index) {
            let stored: Option<Option<String>> = sqlx::query_scalar(
                "SELECT auto_update FROM contact_groups WHERE plan_id = $1 AND id = $2",
            )
            .bind(plan.as_str())
            .bind(&id)
            .fetch_optional(&mut *conn)
            .await?;
            let confirmation = stored
                .flatten()
                .and_then(|json| serde_json::from_str::<AutoUpdate>(&json).ok())
                .and_then(|auto| {
                    auto.double_opt_in
                        .map(|confirm| (auto.to.as_str().to_owned(), confirm))
                });
            groups.confirmation.insert(index, confirmation);
        }
        match groups.confirmation.get(&index).cloned().flatten() {
            Some((from, confirm)) => {
                let group = GroupId::from_trusted(id);
                let asked = Self::request_confirmation(
                    conn, plan, &group, &confirm, &from, keys, "import", None, now,
                )
                .await?;
                groups.groups[index].requested += asked;
            }
            None => {
                let added = Self::add_members_by_key(conn, plan, &id, keys).await?;
                groups.groups[index].added += added;
            }
        }
        Ok(())
    }

    /// Adds contacts, by key (which the caller has just written or read), to a group.
    pub(crate) async fn add_members_by_key(
        conn: &mut Conn<D>,
        plan: &PlanId,
        group: &str,
        contacts: Vec<i64>,
    ) -> StoreResult<u64> {
        let mut insert =
            sqlx::QueryBuilder::<D::Db>::new("INSERT INTO group_members (grp, contact) SELECT ");
        push_group_key(&mut insert, plan, group);
        insert.push(", k.value FROM ");
        D::push_key_list(&mut insert, contacts);
        insert.push(" AS k WHERE true ON CONFLICT DO NOTHING");
        Ok(insert.build().execute(&mut *conn).await?.rows_affected())
    }
}

#[async_trait]
impl<D: Dialect> ImportStore for SqlStore<D>
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
    async fn create_import(
        &self,
        plan: &PlanId,
        by: &Actor,
        import: NewImport,
        file: &std::path::Path,
    ) -> StoreResult<ImportRecord> {
        use tokio::io::AsyncReadExt;
        let id = ImportId::generate();
        let now = Timestamp::now().millis();
        let mut source = tokio::fs::File::open(file)
            .await
            .map_err(|error| StoreError::File(error.to_string()))?;
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        Self::sweep_job_files(conn, plan, now).await?;
        sqlx::query(
            "INSERT INTO imports (plan_id, id, status, file_name, file_size, detected, \
                 preview, total_rows, created_at, modified_at) \
                 VALUES ($1, $2, 'previewed', $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(import.file_name.as_deref())
        .bind(import.file_size)
        .bind(to_json(&import.source)?)
        .bind(to_json(&import.preview)?)
        .bind(import.total_rows)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let mut seq = 0i64;
        loop {
            let mut piece = Vec::with_capacity(FILE_PIECE_BYTES);
            (&mut source)
                .take(FILE_PIECE_BYTES as u64)
                .read_to_end(&mut piece)
                .await
                .map_err(|error| StoreError::File(error.to_string()))?;
            if piece.is_empty() {
                break;
            }
            sqlx::query(
                "INSERT INTO import_files (import, seq, data) \
                     VALUES ((SELECT key FROM imports WHERE plan_id = $1 AND id = $2), $3, $4)",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .bind(seq)
            .bind(piece)
            .execute(&mut *conn)
            .await?;
            seq += 1;
        }
        let record = Self::load_import(conn, plan, &id).await?;
        let change = Change::new("import.create", [&id]).with("bytes", import.file_size);
        Self::audit(conn, plan, by, change).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn get_import(&self, plan: &PlanId, id: &ImportId) -> StoreResult<ImportRecord> {
        let mut conn = self.dialect.reader().acquire().await?;
        Self::load_import(&mut conn, plan, id).await
    }

    async fn list_imports(
        &self,
        plan: &PlanId,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<ImportRecord>, i64)> {
        let table = ("imports", IMPORT_COLUMNS);
        self.newest_first(plan, table, (offset, limit), Self::import_from_row)
            .await
    }

    async fn copy_import(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &ImportId,
    ) -> StoreResult<ImportRecord> {
        let copy = ImportId::generate();
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let original = Self::load_import(conn, plan, id).await?;
        // The import first: its file's pieces refer to it.
        sqlx::query(
            "INSERT INTO imports (plan_id, id, status, file_name, file_size, detected, \
                 preview, total_rows, created_at, modified_at) \
                 SELECT plan_id, $3, 'previewed', file_name, file_size, detected, preview, \
                 total_rows, $4, $4 FROM imports WHERE plan_id = $1 AND id = $2",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(copy.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let copied = sqlx::query(
            "INSERT INTO import_files (import, seq, data) \
                 SELECT (SELECT key FROM imports WHERE plan_id = $1 AND id = $3), seq, data \
                 FROM import_files \
                 WHERE import = (SELECT key FROM imports WHERE plan_id = $1 AND id = $2)",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(copy.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if copied == 0 && original.file_size > 0 {
            return Err(StoreError::JobState(JobConflict::FileExpired));
        }
        let record = Self::load_import(conn, plan, &copy).await?;
        Self::audit(conn, plan, by, Change::new("import.copy", [&copy, id])).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn start_import(
        &self,
        plan: &PlanId,
        id: &ImportId,
        settings: &ImportSettings,
        lease: &Lease,
    ) -> StoreResult<ImportRecord> {
        let now = Timestamp::now();
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let record = Self::load_import(conn, plan, id).await?;
        match record.status {
            JobStatus::Done => {
                return Err(StoreError::JobState(JobConflict::Committed));
            }
            JobStatus::Running if !record.interrupted(now) => {
                return Err(StoreError::JobState(JobConflict::Committing));
            }
            _ => {}
        }
        let pieces: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM import_files WHERE import = (SELECT key FROM imports WHERE plan_id = $1 AND id = $2)",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .fetch_one(&mut *conn)
        .await?;
        if pieces == 0 && record.file_size > 0 {
            return Err(StoreError::JobState(JobConflict::FileExpired));
        }
        sqlx::query(
            "UPDATE imports SET status = 'running', settings = $3, attempt = attempt + 1, \
                 lease_owner = $4, lease_until = $5, rows_read = 0, error = NULL, \
                 report = NULL, modified_at = $6 WHERE plan_id = $1 AND id = $2",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(to_json(settings)?)
        .bind(&lease.owner)
        .bind(now.millis() + lease.millis)
        .bind(now.millis())
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM import_errors WHERE import = (SELECT key FROM imports WHERE plan_id = $1 AND id = $2)")
            .bind(plan.as_str())
            .bind(id.as_str())
            .execute(&mut *conn)
            .await?;
        let record = Self::load_import(conn, plan, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn import_file(
        &self,
        plan: &PlanId,
        id: &ImportId,
        destination: &std::path::Path,
    ) -> StoreResult<()> {
        use tokio::io::AsyncWriteExt;
        let mut conn = self.dialect.reader().acquire().await?;
        let mut file = tokio::fs::File::create(destination)
            .await
            .map_err(|error| StoreError::File(error.to_string()))?;
        let mut seq = 0i64;
        loop {
            let piece: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT data FROM import_files WHERE import = (SELECT key FROM imports WHERE plan_id = $1 AND id = $2) AND seq = $3",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .bind(seq)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(piece) = piece else { break };
            file.write_all(&piece)
                .await
                .map_err(|error| StoreError::File(error.to_string()))?;
            seq += 1;
        }
        file.flush()
            .await
            .map_err(|error| StoreError::File(error.to_string()))?;
        Ok(())
    }

    async fn renew_import(
        &self,
        plan: &PlanId,
        id: &ImportId,
        lease: &Lease,
        attempt: i64,
        rows_read: i64,
    ) -> StoreResult<()> {
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE imports SET lease_until = $3, rows_read = $4 \
                 WHERE plan_id = $1 AND id = $2 AND status = 'running' AND attempt = $5",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(now + lease.millis)
        .bind(rows_read)
        .bind(attempt)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if updated == 0 {
            return Err(StoreError::LeaseLost);
        }
        Ok(())
    }

    async fn fail_import(
        &self,
        plan: &PlanId,
        id: &ImportId,
        attempt: i64,
        error: &str,
    ) -> StoreResult<()> {
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        let failed = sqlx::query(
            "UPDATE imports SET status = 'failed', error = $3, lease_owner = NULL, \
                 lease_until = NULL, modified_at = $4, completed_at = $4 \
                 WHERE plan_id = $1 AND id = $2 AND status = 'running' AND attempt = $5",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(error)
        .bind(now)
        .bind(attempt)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if failed > 0 {
            let data =
                serde_json::json!({"import_id": id.as_str(), "status": "failed", "error": error});
            Self::emit(
                &mut tx,
                plan,
                Event::new(EventType::ImportFinished, id, data),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn import_errors(
        &self,
        plan: &PlanId,
        id: &ImportId,
        after_row: i64,
        limit: i64,
    ) -> StoreResult<Vec<RejectedRow>> {
        let mut conn = self.dialect.reader().acquire().await?;
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT row_number, reason FROM import_errors \
                 WHERE import = (SELECT key FROM imports WHERE plan_id = $1 AND id = $2) AND row_number > $3 \
                 ORDER BY row_number LIMIT $4",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(after_row)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(row, reason)| RejectedRow {
                row: row.max(0) as u64,
                reason,
            })
            .collect())
    }

    async fn write_import(
        &self,
        plan: &PlanId,
        write: ImportWrite,
        mut messages: tokio::sync::mpsc::Receiver<ImportMessage>,
        duplicates: &mut (dyn for<'row> FnMut(&'row RejectedRow) + Send),
    ) -> StoreResult<ImportReport> {
        // The writer is taken once the first rows are read, not while the file opens.
        let abandoned = || StoreError::JobState(JobConflict::Abandoned);
        let first = messages.recv().await.ok_or_else(abandoned)?;
        let (mut tx, _importing) = self.dialect.begin_import(plan).await?;
        let started = std::time::Instant::now();
        // After the wait for the import's turn: its rows are not older than those of the
        // import before it.
        let now = Timestamp::now().millis();
        let conn: &mut Conn<D> = &mut tx;
        let mut groups = Self::import_targets(conn, plan, &write, now).await?;
        let plan_key: i64 = sqlx::query_scalar("SELECT key FROM plans WHERE id = $1")
            .bind(plan.as_str())
            .fetch_one(&mut *conn)
            .await?;
        let next_key = D::next_contact_key(conn).await?;
        let mut prepared = ImportPreparer::new(plan_key, next_key, now).start::<D>(first, messages);
        let mut seen = ImportSeen::<D>::new();
        let mut written = ImportReport::default();
        let mut finished = None;
        while let Some(message) = prepared.recv().await {
            match message {
                Prepared::Rows(chunk) => {
                    let again = Self::write_import_rows(
                        conn,
                        plan,
                        write.mode,
                        &mut groups,
                        &mut seen,
                        &mut written,
                        chunk,
                        now,
                    )
                    .await?;
                    for row in &again {
                        duplicates(row);
                    }
                    if let (Some((id, _, _)), false) = (&write.job, again.is_empty()) {
                        D::insert_import_errors(conn, plan, id, &again).await?;
                    }
                }
                Prepared::Rejected(rows) => {
                    if let Some((id, _, _)) = &write.job {
                        D::insert_import_errors(conn, plan, id, &rows).await?;
                    }
                }
                Prepared::Finish(report) => {
                    finished = Some(report);
                    break;
                }
            }
        }
        // The reader stopped without finishing: nothing of the import is kept.
        let mut report = finished.ok_or_else(abandoned)?;
        seen.finish(conn).await?;
        for group in &groups.groups {
            let id = GroupId::from_trusted(group.id.clone());
            Self::bump_version(conn, plan, &id, group.added as i64, now).await?;
            Self::refresh_sizes(conn, plan, &id).await?;
        }
        report.created = written.created;
        report.updated = written.updated;
        report.unchanged = written.unchanged;
        report.skipped = written.skipped;
        report.duplicates += written.duplicates;
        report.invalid += written.invalid;
        report.opted_out = written.opted_out;
        report.opt_ins_refused = written.opt_ins_refused;
        report.added_to_groups = groups.groups.iter().map(|g| g.added).sum();
        report.warnings.extend(written.warnings);
        report.groups = groups.groups;
        if let Some((id, lease, attempt)) = &write.job {
            let json = to_json(&report)?;
            let finished = sqlx::query(
                "UPDATE imports SET status = 'done', report = $3, rows_read = $4, \
                     lease_owner = NULL, lease_until = NULL, modified_at = $5, \
                     completed_at = $5 \
                     WHERE plan_id = $1 AND id = $2 AND status = 'running' AND attempt = $6 \
                     AND lease_owner = $7",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .bind(json)
            .bind(report.rows as i64)
            .bind(now)
            .bind(*attempt)
            .bind(&lease.owner)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if finished == 0 {
                // Another attempt took the import over: this one must leave no trace.
                return Err(StoreError::LeaseLost);
            }
            // The file stays for its day (`sweep_job_files`): its rejected rows are read from
            // it, and it can be imported again with other settings.
        }
        let job = write.job.as_ref().map(|(id, _, _)| id.as_str());
        let groups = report.groups.iter().map(|group| group.id.as_str());
        let change = Change::new("import.commit", job.into_iter().chain(groups))
            .with("rows", report.rows)
            .with("created", report.created)
            .with("updated", report.updated)
            .with("added_to_groups", report.added_to_groups)
            .with("opted_out", report.opted_out);
        Self::audit(conn, plan, &write.by, change).await?;
        let data = serde_json::json!({
            "import_id": job,
            "status": "done",
            "rows": report.rows,
            "created": report.created,
            "updated": report.updated,
            "opted_out": report.opted_out,
            "invalid": report.invalid,
            "duplicates": report.duplicates,
            "groups": report.groups.iter()
                .map(|group| serde_json::json!({"group_id": group.id, "added": group.added}))
                .collect::<Vec<_>>(),
        });
        let object = job.map_or_else(|| plan.as_str().to_owned(), str::to_owned);
        Self::emit(
            conn,
            plan,
            Event::new(EventType::ImportFinished, object, data),
        )
        .await?;
        tx.commit().await?;
        // On SQLite every other write waited this long: docs/operations.md.
        tracing::info!(
            rows = report.rows,
            transaction_seconds = started.elapsed().as_secs_f64(),
            "import committed"
        );
        Ok(report)
    }
}
