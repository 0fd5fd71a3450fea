//! Contacts and bulk memberships. Lists of ids travel as one parameter (the dialect's
//! `push_list`), and `LOCK_CONTACT` reads a contact locking its row where the backend can.

use super::*;

/// How many matches make a filter value common enough for the planner's own choice of index
/// (`value_indexes`): sorting fewer is cheaper than testing a plan's contacts one by one.
const RARE_VALUE_PROBE: i64 = 2_000;

/// How a statement over contacts uses the partial indexes of gender and number type.
#[derive(Clone, Copy)]
pub(crate) enum ValueIndexes {
    /// As the planner chooses: counts, which read every match whatever the order, and
    /// backends whose planner knows how common a value is.
    Free,
    /// Through this one (`Dialect::INDEXED_BY`): its value is rare.
    Through(&'static str),
    /// Neither: their values are common, so the page walks its order's index and stops early.
    /// The terms are written `+c.gender = …`, SQLite's no-op that keeps a term from an index.
    Avoid,
}

/// `(0, 1)`: the codes of the number types that take an SMS, which nearly every contact has.
/// The number-type index leaves them out (migrations 14 and 26), holding only the rare types it
/// is worth reading for; a statement that says `number_type NOT IN` this list may use it.
static SMS_NUMBER_TYPES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let codes: Vec<String> = NumberType::SMS_CAPABLE
        .iter()
        .map(|kind| kind.code().to_string())
        .collect();
    format!("({})", codes.join(", "))
});

/// A value whose index `value_indexes` probes: a gender's name, or a number type's code.
enum ProbedValue {
    Text(String),
    Code(i16),
}

/// A stored number-type code as the type's name, which is what the API shows and filters on.
pub(crate) fn number_type_name(code: Option<i16>) -> Option<String> {
    code.and_then(NumberType::from_code)
        .map(|kind| kind.as_str().to_owned())
}

/// The code a searched-for type name is stored as; `None` for a name no type has, which no
/// contact matches.
fn number_type_code(name: &str) -> Option<i16> {
    NumberType::parse(name).map(NumberType::code)
}

pub(crate) const CONTACT_COLUMNS: &str = "c.id, c.phone, c.first_name, c.last_name, c.email, \
    c.gender, c.time_zone, c.fields, c.number_type, c.country, c.opted_out, c.opted_out_at, \
    c.opted_out_reason, c.created_at, c.modified_at";

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
    pub(crate) fn contact_from_row(
        row: &<D::Db as sqlx::Database>::Row,
    ) -> Result<ContactRecord, sqlx::Error> {
        use sqlx::Row;
        let fields: String = row.try_get("fields")?;
        let fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&fields).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(ContactRecord {
            id: stored_contact_id(row.try_get("id")?)?,
            phone: row.try_get("phone")?,
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
            email: row.try_get("email")?,
            gender: row.try_get("gender")?,
            time_zone: row.try_get("time_zone")?,
            fields: CustomFields::from_trusted(fields),
            number_type: number_type_name(row.try_get("number_type")?),
            country: row.try_get("country")?,
            opted_out: row.try_get("opted_out")?,
            opted_out_at: row
                .try_get::<Option<i64>, _>("opted_out_at")?
                .map(Timestamp::from_millis),
            opted_out_reason: row.try_get("opted_out_reason")?,
            created_at: Timestamp::from_millis(row.try_get("created_at")?),
            modified_at: Timestamp::from_millis(row.try_get("modified_at")?),
        })
    }

    pub(crate) async fn load_contact(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &ContactId,
    ) -> StoreResult<ContactRecord> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = $1) AND c.id = $2"
        )))
        .bind(plan.as_str())
        .bind(id_bytes(id))
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound(Entity::Contact))?;
        Ok(Self::contact_from_row(&row)?)
    }

    /// Fails if another contact of the plan has `phone`.
    pub(crate) async fn require_free_phone(
        conn: &mut Conn<D>,
        plan: &PlanId,
        phone: &str,
        except: Option<&ContactId>,
    ) -> StoreResult<()> {
        let existing: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT id FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = $1) AND phone = $2")
                .bind(plan.as_str())
                .bind(phone)
                .fetch_optional(&mut *conn)
                .await?;
        match existing.map(stored_contact_id).transpose()? {
            Some(id) if except != Some(&id) => Err(StoreError::DuplicatePhone(id)),
            _ => Ok(()),
        }
    }

    /// The contact's row after a write of `contact`, given what it was before (`None` for a
    /// new contact): opting out stamps the time, opting back in clears time and reason.
    pub(crate) async fn write_contact(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &ContactId,
        contact: &ContactDefinition,
        before: Option<&ContactRecord>,
        source: ChangeSource,
        now: i64,
    ) -> StoreResult<()> {
        let (sort_name, sort_name_last) = stored_sort_names(
            contact.first_name.as_ref().map(PersonName::as_str),
            contact.last_name.as_ref().map(PersonName::as_str),
        );
        let opted_out_at = match (contact.opted_out, before) {
            (false, _) => None,
            (true, Some(before)) if before.opted_out => before.opted_out_at.map(Timestamp::millis),
            (true, _) => Some(now),
        };
        let reason = if contact.opted_out {
            contact.opted_out_reason.as_ref().map(OptOutReason::as_str)
        } else {
            None
        };
        let fields = serde_json::Value::Object(contact.fields.as_map().clone()).to_string();
        let sql = if before.is_some() {
            "UPDATE contacts SET phone = $3, first_name = $4, last_name = $5, email = $6, \
                 gender = $7, fields = $8, number_type = $9, country = $10, opted_out = $11, \
                 opted_out_at = $12, opted_out_reason = $13, sort_name = $14, \
                 sort_name_last = $15, modified_at = $16, time_zone = $17 \
                 WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id = $2"
        } else {
            "INSERT INTO contacts (plan, id, phone, first_name, last_name, email, gender, \
                 fields, number_type, country, opted_out, opted_out_at, opted_out_reason, \
                 sort_name, sort_name_last, created_at, modified_at, time_zone) \
                 VALUES ((SELECT key FROM plans WHERE id = $1), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                 $12, $13, $14, $15, $16, $16, $17)"
        };
        sqlx::query(sql)
            .bind(plan.as_str())
            .bind(id_bytes(id))
            .bind(contact.phone.msisdn.as_str())
            .bind(contact.first_name.as_ref().map(PersonName::as_str))
            .bind(contact.last_name.as_ref().map(PersonName::as_str))
            .bind(contact.email.as_ref().map(Email::as_str))
            .bind(contact.gender.as_ref().map(Gender::as_str))
            .bind(fields)
            .bind(contact.phone.number_type.code())
            .bind(contact.phone.country.as_deref())
            .bind(contact.opted_out)
            .bind(opted_out_at)
            .bind(reason)
            .bind(sort_name)
            .bind(sort_name_last)
            .bind(now)
            .bind(contact.time_zone.as_ref().map(TimeZoneName::as_str))
            .execute(&mut *conn)
            .await?;
        if contact.opted_out != before.is_some_and(|b| b.opted_out) {
            let event = if contact.opted_out {
                "opt_out"
            } else {
                "opt_in"
            };
            Self::change_consent(
                conn,
                plan,
                id.as_str(),
                contact.phone.msisdn.as_str(),
                event,
                None,
                source.as_str(),
                None,
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// The stored contact as a definition, so that a patch can be laid over it.
    pub(crate) fn definition_of(record: &ContactRecord) -> ContactDefinition {
        let text =
            |value: &Option<String>| value.as_deref().and_then(|v| PersonName::parse(v).ok());
        ContactDefinition {
            phone: ParsedNumber {
                msisdn: Msisdn::from_trusted(record.phone.clone()),
                number_type: NumberType::parse(record.number_type.as_deref().unwrap_or(""))
                    .unwrap_or(NumberType::Unknown),
                country: record.country.clone(),
            },
            first_name: text(&record.first_name),
            last_name: text(&record.last_name),
            email: record.email.as_deref().and_then(|v| Email::parse(v).ok()),
            gender: record.gender.as_deref().and_then(|v| Gender::parse(v).ok()),
            time_zone: record
                .time_zone
                .as_deref()
                .and_then(|v| TimeZoneName::parse(v).ok()),
            fields: record.fields.clone(),
            opted_out: record.opted_out,
            opted_out_reason: record
                .opted_out_reason
                .as_deref()
                .and_then(|v| OptOutReason::parse(v).ok()),
        }
    }

    pub(crate) fn apply_patch(
        mut contact: ContactDefinition,
        patch: ContactPatch,
    ) -> ContactDefinition {
        if let Some(phone) = patch.phone {
            contact.phone = phone;
        }
        if let Some(value) = patch.first_name {
            contact.first_name = value;
        }
        if let Some(value) = patch.last_name {
            contact.last_name = value;
        }
        if let Some(value) = patch.email {
            contact.email = value;
        }
        if let Some(value) = patch.gender {
            contact.gender = value;
        }
        if let Some(value) = patch.time_zone {
            contact.time_zone = value;
        }
        if let Some(value) = patch.fields {
            contact.fields = value;
        }
        if let Some(value) = patch.opted_out {
            contact.opted_out = value;
        }
        if let Some(value) = patch.opted_out_reason {
            contact.opted_out_reason = value;
        }
        contact
    }

    /// Which of `ids` exist in the plan.
    pub(crate) async fn existing_contacts(
        conn: &mut Conn<D>,
        plan: &PlanId,
        ids: &[ContactId],
    ) -> StoreResult<BTreeSet<ContactId>> {
        let mut query =
            sqlx::QueryBuilder::<D::Db>::new("SELECT c.id FROM contacts c WHERE c.plan = ");
        push_plan_key(&mut query, plan);
        query.push(" AND c.id IN ");
        D::push_id_list(&mut query, ids);
        let found: Vec<Vec<u8>> = query.build_query_scalar().fetch_all(&mut *conn).await?;
        Ok(found
            .into_iter()
            .map(stored_contact_id)
            .collect::<Result<_, _>>()?)
    }

    pub(crate) async fn require_contacts(
        conn: &mut Conn<D>,
        plan: &PlanId,
        ids: &[ContactId],
    ) -> StoreResult<()> {
        let found = Self::existing_contacts(conn, plan, ids).await?;
        let missing: Vec<ContactId> = ids
            .iter()
            .filter(|id| !found.contains(id))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(StoreError::UnknownContacts(missing))
        }
    }

    /// Locks each group (in id order, so that concurrent bulk changes cannot deadlock) and
    /// checks that every one is an active static group.
    pub(crate) async fn lock_static_groups(
        conn: &mut Conn<D>,
        plan: &PlanId,
        groups: &[GroupId],
    ) -> StoreResult<Vec<GroupId>> {
        let ordered: BTreeSet<GroupId> = groups.iter().cloned().collect();
        Self::lock_group_trees(conn, plan, &ordered.iter().collect::<Vec<_>>()).await?;
        let mut unknown = Vec::new();
        for group in &ordered {
            match Self::lock_group(conn, plan, group, None).await {
                Ok(locked) if locked.status == GroupStatus::Deleted => unknown.push(group.clone()),
                Ok(locked) if locked.smart => {
                    return Err(StoreError::SmartGroup(GroupRef::Id(group.clone())));
                }
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => unknown.push(group.clone()),
                Err(other) => return Err(other),
            }
        }
        if unknown.is_empty() {
            Ok(ordered.into_iter().collect())
        } else {
            Err(StoreError::UnknownGroups(unknown))
        }
    }

    pub(crate) fn push_contact_filters(
        builder: &mut sqlx::QueryBuilder<D::Db>,
        plan: &PlanId,
        query: &ContactQuery,
        tree: Option<&[TreeGroup]>,
        values: ValueIndexes,
    ) {
        if let ValueIndexes::Through(index) = values
            && let Some(indexed_by) = D::INDEXED_BY
        {
            builder.push(indexed_by).push(index);
        }
        let value_column = |column: &str| match values {
            ValueIndexes::Avoid => format!(" AND +c.{column} = "),
            _ => format!(" AND c.{column} = "),
        };
        builder.push(" WHERE c.plan = ");
        push_plan_key(builder, plan);
        // U+10FFFF sorts after every character, so [p, p + U+10FFFF) is "starts with p".
        let upper = |prefix: &str| format!("{prefix}\u{10FFFF}");
        if let Some(prefix) = &query.name_prefix {
            let prefix = prefix.to_lowercase();
            builder
                .push(format!(" AND (({} >= ", D::SORT_NAME))
                .push_bind(prefix.clone())
                .push(format!(" AND {} < ", D::SORT_NAME))
                .push_bind(upper(&prefix))
                .push(format!(") OR ({} >= ", D::SORT_NAME_LAST))
                .push_bind(prefix.clone())
                .push(format!(" AND {} < ", D::SORT_NAME_LAST))
                .push_bind(upper(&prefix))
                .push("))");
        }
        if let Some(text) = &query.name_contains {
            let escaped = text
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            builder
                .push(format!(" AND {} LIKE ", D::SORT_NAME))
                .push_bind(format!("%{escaped}%"))
                .push(" ESCAPE '\\'");
        }
        if let Some(prefix) = &query.phone_prefix {
            builder
                .push(" AND c.phone >= ")
                .push_bind(prefix.clone())
                .push(" AND c.phone < ")
                .push_bind(upper(prefix));
        }
        if let Some(email) = &query.email {
            D::push_email_is(builder, plan, email);
        }
        if let Some(gender) = &query.gender {
            builder
                .push(value_column("gender"))
                .push_bind(gender.clone());
        }
        match query.valid {
            Some(true) => {
                builder.push(" AND c.number_type IS NOT NULL");
            }
            Some(false) => {
                builder.push(" AND c.number_type IS NULL");
            }
            None => {}
        }
        if let Some(number_type) = &query.number_type {
            match number_type_code(number_type) {
                Some(code) => {
                    if !NumberType::sms_capable(number_type) {
                        builder.push(format!(" AND c.number_type NOT IN {}", *SMS_NUMBER_TYPES));
                    }
                    builder.push(value_column("number_type")).push_bind(code);
                }
                None => {
                    builder.push(" AND 1 = 0");
                }
            }
        }
        match query.sms_capable {
            Some(true) => {
                builder.push(format!(" AND c.number_type IN {}", *SMS_NUMBER_TYPES));
            }
            Some(false) => {
                builder.push(format!(
                    " AND NOT COALESCE(c.number_type IN {}, FALSE)",
                    *SMS_NUMBER_TYPES
                ));
            }
            None => {}
        }
        if let Some(opted_out) = query.opted_out {
            // Written as a literal: a partial index serves a condition only when the statement
            // itself implies the index's condition, which a bound value does not.
            builder.push(if opted_out {
                " AND c.opted_out"
            } else {
                " AND NOT c.opted_out"
            });
        }
        for (name, value) in &query.custom {
            builder.push(" AND ");
            D::push_custom_compare(builder, name, "=", &FilterValue::Text(value.clone()));
        }
        if let Some(filter) = &query.filter {
            builder.push(" AND ");
            Self::push_filter(builder, filter.root());
        }
        match query.ids.as_deref() {
            Some([]) => {
                builder.push(" AND 1 = 0");
            }
            Some(ids) => {
                builder.push(" AND c.id IN ");
                D::push_id_list(builder, ids);
            }
            None => {}
        }
        if let Some(tree) = tree {
            builder.push(" AND ");
            // As for a group's members page: SQLite counts a contact in two of the tree's
            // groups twice against OFFSET when it probes.
            let scan = match query.window {
                Window::Offset { offset, .. } if offset > 0 => Scan::Set,
                _ => Scan::Probe,
            };
            Self::push_membership(builder, tree, scan);
        }
    }

    /// How a page of `query` should use the partial indexes of gender and number type, where
    /// the dialect's planner must be told (`Dialect::INDEXED_BY`). Not knowing how common a
    /// value is, SQLite either walks the order's index testing every contact — reading the whole
    /// plan when few or none match — or reads every match through the value's index and sorts
    /// them all, a quarter of the plan for a common gender. A count on the value's own index,
    /// stopped at `RARE_VALUE_PROBE`, tells which of the two is cheap.
    async fn value_indexes(
        conn: &mut Conn<D>,
        plan: &PlanId,
        query: &ContactQuery,
        indexed_by: &str,
    ) -> StoreResult<ValueIndexes> {
        let mut rarest: Option<(&'static str, i64)> = None;
        let asked = query.gender.is_some() || query.number_type.is_some();
        // A type that takes an SMS is not in its index: as common as a value gets.
        let rare_type = query
            .number_type
            .as_deref()
            .filter(|kind| !NumberType::sms_capable(kind))
            .and_then(number_type_code);
        let in_rare_types = format!(" AND number_type NOT IN {}", *SMS_NUMBER_TYPES);
        let gender = query.gender.clone().map(ProbedValue::Text);
        for (index, column, value, condition) in [
            ("contacts_by_gender", "gender", gender, ""),
            (
                "contacts_by_number_type",
                "number_type",
                rare_type.map(ProbedValue::Code),
                in_rare_types.as_str(),
            ),
        ] {
            let Some(value) = value else { continue };
            let mut probe = sqlx::QueryBuilder::<D::Db>::new(format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM contacts{indexed_by}{index} WHERE plan = "
            ));
            push_plan_key(&mut probe, plan);
            probe.push(condition).push(format!(" AND {column} = "));
            match value {
                ProbedValue::Text(text) => probe.push_bind(text),
                ProbedValue::Code(code) => probe.push_bind(code),
            };
            probe
                .push(" LIMIT ")
                .push_bind(RARE_VALUE_PROBE)
                .push(") probe");
            let found: i64 = probe.build_query_scalar().fetch_one(&mut *conn).await?;
            if found < RARE_VALUE_PROBE && rarest.is_none_or(|(_, fewest)| found < fewest) {
                rarest = Some((index, found));
            }
        }
        Ok(match rarest {
            Some((index, _)) => ValueIndexes::Through(index),
            None if asked => ValueIndexes::Avoid,
            None => ValueIndexes::Free,
        })
    }

    /// Orders a page of contacts and starts it after its cursor. Every order ends with the
    /// contact's key, which is also the creation order (keys rise as contacts are created), so
    /// that each order is one walk of one index. Cursors carry their last contact's key, sealed;
    /// those issued before it was (which name the contact by its public id) are resolved here to
    /// its key, or when that contact has since been deleted, to the key next to where its id
    /// stood — which assumes ids and keys rise together, as they do but around PostgreSQL
    /// imports and same-instant creates on two instances.
    fn push_contact_window(
        builder: &mut sqlx::QueryBuilder<D::Db>,
        plan: &PlanId,
        query: &ContactQuery,
        seal: &CursorSeal,
    ) -> StoreResult<i64> {
        let sort = match query.order {
            ContactOrder::Name => Some(D::SORT_NAME),
            ContactOrder::CreatedAt => None,
            ContactOrder::ModifiedAt => Some("c.modified_at"),
        };
        let direction = if query.descending { "DESC" } else { "ASC" };
        let (limit, offset) = match &query.window {
            Window::After { after, limit } => {
                if let Some(cursor) = after {
                    let comparison = if query.descending { "<" } else { ">" };
                    match sort {
                        Some(sort) => {
                            // SQLite reads no range of an index on an expression from the row
                            // comparison alone; this term on the sort key gives it one.
                            let bound = if query.descending { "<=" } else { ">=" };
                            builder.push(format!(" AND {sort} {bound} "));
                            push_cursor_key(builder, &cursor.key);
                            builder.push(format!(" AND ({sort}, c.key) {comparison} ("));
                            push_cursor_key(builder, &cursor.key);
                            builder.push(", ");
                        }
                        None => {
                            builder.push(format!(" AND c.key {comparison} ("));
                        }
                    }
                    match &cursor.tie {
                        CursorTie::Sealed(sealed) => {
                            let key = seal.open(plan, sealed).ok_or(StoreError::ForeignCursor)?;
                            builder.push_bind(key).push(")");
                        }
                        CursorTie::Id(id) => {
                            Self::push_key_of_cursor_id(builder, plan, id, query.descending)
                        }
                    }
                }
                (*limit, 0)
            }
            Window::Offset { offset, limit } => (*limit, *offset),
        };
        builder.push(" ORDER BY ");
        if let Some(sort) = sort {
            builder.push(format!("{sort} {direction}, "));
        }
        builder
            .push(format!("c.key {direction} LIMIT "))
            .push_bind(limit + 1)
            .push(" OFFSET ")
            .push_bind(offset);
        Ok(limit)
    }

    /// The key of a cursor's contact named by id, or beside where that id stood if the contact
    /// was deleted, and the bracket closing the window's comparison.
    fn push_key_of_cursor_id(
        builder: &mut sqlx::QueryBuilder<D::Db>,
        plan: &PlanId,
        id: &str,
        descending: bool,
    ) {
        let (neighbour, step, order) = if descending {
            ("<", "+", "DESC")
        } else {
            (">", "-", "ASC")
        };
        // The cursor's id was checked to be a ULID when the cursor was read.
        let id = ContactId::parse(id).map_or_else(Vec::new, |id| id_bytes(&id));
        builder.push("COALESCE((SELECT key FROM contacts WHERE plan = ");
        push_plan_key(builder, plan);
        builder
            .push(" AND id = ")
            .push_bind(id.clone())
            .push("), (SELECT key ")
            .push(step)
            .push(" 1 FROM contacts WHERE plan = ");
        push_plan_key(builder, plan);
        builder
            .push(format!(" AND id {neighbour} "))
            .push_bind(id)
            .push(format!(" ORDER BY id {order} LIMIT 1), "))
            .push(if descending {
                "-1))"
            } else {
                "9223372036854775807))"
            });
    }

    fn contact_cursor(
        order: ContactOrder,
        contact: &ContactRecord,
        sealed_key: [u8; 16],
    ) -> Cursor {
        let key = match order {
            ContactOrder::Name => CursorKey::Text(
                sort_names(contact.first_name.as_deref(), contact.last_name.as_deref()).0,
            ),
            ContactOrder::CreatedAt => CursorKey::Number(contact.created_at.millis()),
            ContactOrder::ModifiedAt => CursorKey::Number(contact.modified_at.millis()),
        };
        Cursor {
            key,
            tie: CursorTie::Sealed(sealed_key),
        }
    }

    /// The seal of contact cursors, made from the instance's secret when first needed.
    pub(super) async fn cursor_seal(&self) -> StoreResult<&CursorSeal> {
        self.cursor_seal
            .get_or_try_init(|| async {
                let secret = self
                    .server_secret(CURSOR_SECRET, &crate::domain::secret::random_secret())
                    .await?;
                Ok(CursorSeal::new(secret.as_bytes()))
            })
            .await
    }

    /// Takes `count` memberships away from each group and brings sizes up to date.
    pub(crate) async fn memberships_removed(
        conn: &mut Conn<D>,
        plan: &PlanId,
        removed: &[(String, i64)],
        now: i64,
    ) -> StoreResult<()> {
        for (group, count) in removed {
            let group = GroupId::from_trusted(group.clone());
            Self::bump_version(conn, plan, &group, -count, now).await?;
            Self::refresh_sizes(conn, plan, &group).await?;
        }
        Ok(())
    }

    /// Adds existing contacts, by id, as direct members; returns how many memberships are
    /// new.
    pub(crate) async fn insert_members_by_id(
        conn: &mut Conn<D>,
        plan: &PlanId,
        group: &GroupId,
        contacts: &[ContactId],
    ) -> StoreResult<u64> {
        if contacts.is_empty() {
            return Ok(0);
        }
        let mut insert =
            sqlx::QueryBuilder::<D::Db>::new("INSERT INTO group_members (grp, contact) SELECT ");
        push_group_key(&mut insert, plan, group.as_str());
        insert.push(", c.key FROM contacts c WHERE c.plan = ");
        push_plan_key(&mut insert, plan);
        insert.push(" AND c.id IN ");
        D::push_id_list(&mut insert, contacts);
        insert.push(" ON CONFLICT DO NOTHING");
        Ok(insert.build().execute(&mut *conn).await?.rows_affected())
    }

    /// Puts every contact into (`add`) or takes it out of every group, in one
    /// transaction; returns how many memberships began or ended.
    pub(crate) async fn change_memberships(
        &self,
        plan: &PlanId,
        by: &Actor,
        contacts: &[ContactId],
        groups: &[GroupId],
        add: bool,
    ) -> StoreResult<u64> {
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let outcome = async move {
            let groups = Self::lock_static_groups(conn, plan, groups).await?;
            Self::require_contacts(conn, plan, contacts).await?;
            let mut changed_groups = Vec::new();
            for group in &groups {
                let changed = if add {
                    Self::insert_members_by_id(conn, plan, group, contacts).await?
                } else {
                    let mut delete =
                        sqlx::QueryBuilder::<D::Db>::new("DELETE FROM group_members WHERE grp = ");
                    push_group_key(&mut delete, plan, group.as_str());
                    delete.push(" AND contact IN (SELECT key FROM contacts WHERE plan = ");
                    push_plan_key(&mut delete, plan);
                    delete.push(" AND id IN ");
                    D::push_id_list(&mut delete, contacts);
                    delete.push(")");
                    delete.build().execute(&mut *conn).await?.rows_affected()
                };
                let delta = if add {
                    changed as i64
                } else {
                    -(changed as i64)
                };
                Self::bump_version(conn, plan, group, delta, now).await?;
                Self::refresh_sizes(conn, plan, group).await?;
                changed_groups.push((group.clone(), changed));
            }
            Ok::<_, StoreError>(changed_groups)
        }
        .await?;
        let total: u64 = outcome.iter().map(|(_, changed)| changed).sum();
        for (group, changed) in outcome.iter().filter(|(_, changed)| *changed > 0) {
            let how = if add {
                "members_added"
            } else {
                "members_removed"
            };
            let data =
                serde_json::json!({"group_id": group.as_str(), "change": how, "count": changed});
            Self::emit(
                &mut tx,
                plan,
                Event::new(EventType::GroupChanged, group, data),
            )
            .await?;
        }
        let ids = groups.iter().map(GroupId::as_str);
        let change = Change::new(
            if add {
                "membership.add"
            } else {
                "membership.remove"
            },
            ids.chain(contacts.iter().map(ContactId::as_str)),
        )
        .with("groups", groups.len())
        .with("contacts", contacts.len())
        .with("changed", total);
        Self::audit(&mut tx, plan, by, change).await?;
        tx.commit().await?;
        Ok(total)
    }

    /// The names of the fields of a contact that a change changed.
    fn changed_fields(before: &ContactRecord, after: &ContactRecord) -> Vec<&'static str> {
        [
            ("phone", before.phone != after.phone),
            ("first_name", before.first_name != after.first_name),
            ("last_name", before.last_name != after.last_name),
            ("email", before.email != after.email),
            ("gender", before.gender != after.gender),
            ("time_zone", before.time_zone != after.time_zone),
            ("fields", before.fields != after.fields),
            ("opted_out", before.opted_out != after.opted_out),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }

    /// How many memberships of the contacts each group has, by group id.
    async fn memberships_by_group(
        conn: &mut Conn<D>,
        plan: &PlanId,
        ids: &[ContactId],
    ) -> StoreResult<Vec<(String, i64)>> {
        let mut affected = sqlx::QueryBuilder::<D::Db>::new(
            "SELECT g.id, COUNT(*) FROM group_members m \
                 JOIN contact_groups g ON g.key = m.grp \
                 JOIN contacts c ON c.key = m.contact WHERE c.plan = ",
        );
        push_plan_key(&mut affected, plan);
        affected.push(" AND c.id IN ");
        D::push_id_list(&mut affected, ids);
        affected.push(format!(" GROUP BY g.id ORDER BY g.id{}", D::TEXT_COLLATE));
        Ok(affected.build_query_as().fetch_all(&mut *conn).await?)
    }

    /// Locks the plan's contacts with these ids (`lock`: the dialect's `LOCK_ROWS` or
    /// `LOCK_ROWS_KEPT`) in key order, the order every writer of many contacts takes them in.
    async fn lock_contacts_by_key(
        conn: &mut Conn<D>,
        plan: &PlanId,
        ids: &[ContactId],
        lock: &str,
    ) -> StoreResult<()> {
        let mut contacts =
            sqlx::QueryBuilder::<D::Db>::new("SELECT key FROM contacts WHERE plan = ");
        push_plan_key(&mut contacts, plan);
        contacts.push(" AND id IN ");
        D::push_id_list(&mut contacts, ids);
        contacts.push(" ORDER BY key").push(lock);
        contacts.build().execute(&mut *conn).await?;
        Ok(())
    }

    /// Deletes the contacts (their memberships with them, the groups' sizes brought up to
    /// date); returns how many there were.
    pub(crate) async fn remove_contacts(
        conn: &mut Conn<D>,
        plan: &PlanId,
        ids: &[ContactId],
        now: i64,
    ) -> StoreResult<u64> {
        if let Some(lock) = D::LOCK_ROWS {
            // Locks in the order additions take them: first the groups, with every group
            // above them (whose sizes change too), by id (`lock_group_trees`), then the
            // contacts, by key (as an addition's look-up). Deleting first would lock the
            // contacts in the delete's own order, then the groups while updating their sizes:
            // the reverse, and a deadlock with an addition. Locked before the counts below
            // are read, so that they cannot change under us.
            let groups: Vec<GroupId> = Self::memberships_by_group(conn, plan, ids)
                .await?
                .into_iter()
                .map(|(group, _)| GroupId::from_trusted(group))
                .collect();
            Self::lock_group_trees(conn, plan, &groups.iter().collect::<Vec<_>>()).await?;
            Self::lock_contacts_by_key(conn, plan, ids, lock).await?;
        }
        let removed = Self::memberships_by_group(conn, plan, ids).await?;
        let mut delete = sqlx::QueryBuilder::<D::Db>::new("DELETE FROM contacts WHERE plan = ");
        push_plan_key(&mut delete, plan);
        delete.push(" AND id IN ");
        D::push_id_list(&mut delete, ids);
        let deleted = delete.build().execute(&mut *conn).await?.rows_affected();
        Self::memberships_removed(conn, plan, &removed, now).await?;
        Ok(deleted)
    }

    /// A concurrent writer may take a number between our check and our write; the
    /// unique index then refuses it, and that is the same conflict as the check's.
    pub(crate) async fn explain_duplicate<T>(
        &self,
        plan: &PlanId,
        phone: &str,
        outcome: StoreResult<T>,
    ) -> StoreResult<T> {
        match outcome {
            Err(StoreError::Database(error))
                if error
                    .as_database_error()
                    .is_some_and(|e| e.is_unique_violation()) =>
            {
                let mut conn = self.dialect.reader().acquire().await?;
                Self::require_free_phone(&mut conn, plan, phone, None).await?;
                Err(StoreError::Database(error))
            }
            other => other,
        }
    }

    /// Replaces a contact by what `change` makes of its current state, under its lock.
    pub(crate) async fn update_contact_with(
        &self,
        plan: &PlanId,
        id: &ContactId,
        by: &Actor,
        change: impl FnOnce(&ContactRecord) -> ContactDefinition + Send,
    ) -> StoreResult<ContactRecord> {
        let now = Timestamp::now().millis();
        let mut attempted_phone = String::new();
        let phone_slot = &mut attempted_phone;
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let outcome = async move {
            sqlx::query(D::LOCK_CONTACT)
                .bind(plan.as_str())
                .bind(id_bytes(id))
                .fetch_optional(&mut *conn)
                .await?
                .ok_or(StoreError::NotFound(Entity::Contact))?;
            let before = Self::load_contact(conn, plan, id).await?;
            let after = change(&before);
            phone_slot.push_str(after.phone.msisdn.as_str());
            if after.phone.msisdn.as_str() != before.phone {
                Self::require_free_phone(conn, plan, after.phone.msisdn.as_str(), Some(id)).await?;
                Self::require_not_erased(conn, plan, after.phone.msisdn.as_str()).await?;
            }
            Self::write_contact(conn, plan, id, &after, Some(&before), by.source(), now).await?;
            let record = Self::load_contact(conn, plan, id).await?;
            Ok((Self::changed_fields(&before, &record), record))
        }
        .await;
        let (fields, outcome) = self
            .explain_duplicate(plan, &attempted_phone, outcome)
            .await?;
        let mut change = Change::new("contact.update", [id]);
        if !fields.is_empty() {
            change = change.with("fields", fields.clone());
            let data = serde_json::json!({"contact_id": id.as_str(), "fields": fields});
            Self::emit(
                &mut tx,
                plan,
                Event::new(EventType::ContactUpdated, id, data),
            )
            .await?;
        }
        Self::audit(&mut tx, plan, by, change).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

#[async_trait]
impl<D: Dialect> ContactStore for SqlStore<D>
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
    async fn create_contact(
        &self,
        plan: &PlanId,
        by: &Actor,
        contact: ContactDefinition,
    ) -> StoreResult<ContactRecord> {
        let id = ContactId::generate();
        let now = Timestamp::now().millis();
        let phone = contact.phone.msisdn.as_str().to_owned();
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let outcome = async move {
            Self::require_free_phone(conn, plan, contact.phone.msisdn.as_str(), None).await?;
            Self::require_not_erased(conn, plan, contact.phone.msisdn.as_str()).await?;
            Self::write_contact(conn, plan, &id, &contact, None, by.source(), now).await?;
            Self::load_contact(conn, plan, &id).await
        }
        .await;
        let outcome = self.explain_duplicate(plan, &phone, outcome).await?;
        Self::audit(
            &mut tx,
            plan,
            by,
            Change::new("contact.create", [&outcome.id]),
        )
        .await?;
        let data = serde_json::json!({"contact_id": outcome.id.as_str()});
        Self::emit(
            &mut tx,
            plan,
            Event::new(EventType::ContactCreated, &outcome.id, data),
        )
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn get_contact(&self, plan: &PlanId, id: &ContactId) -> StoreResult<ContactRecord> {
        let mut conn = self.dialect.reader().acquire().await?;
        Self::load_contact(&mut conn, plan, id).await
    }

    async fn replace_contact(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &ContactId,
        contact: ContactDefinition,
    ) -> StoreResult<ContactRecord> {
        self.update_contact_with(plan, id, by, move |_| contact)
            .await
    }

    async fn update_contact(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &ContactId,
        patch: ContactPatch,
    ) -> StoreResult<ContactRecord> {
        self.update_contact_with(plan, id, by, move |before| {
            Self::apply_patch(Self::definition_of(before), patch)
        })
        .await
    }

    async fn delete_contacts(
        &self,
        plan: &PlanId,
        by: &Actor,
        ids: &[ContactId],
    ) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let outcome = Self::remove_contacts(conn, plan, ids, now).await?;
        let change = Change::new("contact.delete", ids).with("deleted", outcome);
        Self::audit(&mut tx, plan, by, change).await?;
        if outcome > 0 {
            let data = serde_json::json!({
                "contact_ids": ids.iter().take(AUDIT_OBJECTS).map(ContactId::as_str).collect::<Vec<_>>(),
                "count": outcome,
            });
            Self::emit(
                &mut tx,
                plan,
                Event::new(
                    EventType::ContactDeleted,
                    one_or_plan(ids.iter().map(ContactId::as_str), plan),
                    data,
                ),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn opt_out_contacts(
        &self,
        plan: &PlanId,
        by: &Actor,
        ids: &[ContactId],
        reason: Option<&OptOutReason>,
    ) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let outcome = async move {
            if let Some(lock) = D::LOCK_ROWS_KEPT {
                // In key order, as a delete locks them (`remove_contacts`): the update would
                // lock them in id order, and ids need not follow keys (contacts made by two
                // instances at once, or moved from the first schema).
                Self::lock_contacts_by_key(conn, plan, ids, lock).await?;
            }
            // The consent rows are written for exactly the contacts the update changed, as it
            // returns them: a concurrent opt-out or change of number cannot slip in between.
            let mut update = sqlx::QueryBuilder::<D::Db>::new("UPDATE contacts SET opted_out = ");
            update
                .push_bind(true)
                .push(", opted_out_at = ")
                .push_bind(now)
                .push(", opted_out_reason = ")
                .push_bind(reason.map(|reason| reason.as_str().to_owned()))
                .push(", modified_at = ")
                .push_bind(now)
                .push(" WHERE plan = ");
            push_plan_key(&mut update, plan);
            update.push(" AND NOT opted_out AND id IN ");
            D::push_id_list(&mut update, ids);
            update.push(" RETURNING id, phone");
            let changed = stored_id_phones(update.build_query_as().fetch_all(&mut *conn).await?)?;
            for (id, phone) in &changed {
                Self::record_consent(
                    conn,
                    plan,
                    id.as_str(),
                    phone,
                    "opt_out",
                    None,
                    by.source().as_str(),
                    None,
                    now,
                )
                .await?;
            }
            Ok::<_, StoreError>(changed)
        }
        .await?;
        let count = outcome.len() as u64;
        let change = Change::new("contact.opt_out", ids).with("opted_out", count);
        Self::audit(&mut tx, plan, by, change).await?;
        if count > 0 {
            let data = serde_json::json!({
                "event": "opt_out",
                "source": by.source().as_str(),
                "contact_ids": outcome.iter().take(AUDIT_OBJECTS).map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
                "count": count,
            });
            let object = one_or_plan(outcome.iter().map(|(id, _)| id.as_str()), plan);
            Self::emit(
                &mut tx,
                plan,
                Event::new(EventType::ConsentChanged, object, data),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(count)
    }

    async fn list_contacts(&self, plan: &PlanId, query: &ContactQuery) -> StoreResult<ContactPage> {
        let mut conn = self.dialect.reader().acquire().await?;
        let tree = match &query.group {
            Some(group) => Some(Self::load_tree(&mut conn, plan, group.as_str()).await?),
            None => None,
        };
        let total = if query.with_total {
            let mut count = sqlx::QueryBuilder::<D::Db>::new("SELECT COUNT(*) FROM contacts c");
            Self::push_contact_filters(
                &mut count,
                plan,
                query,
                tree.as_deref(),
                ValueIndexes::Free,
            );
            Some(count.build_query_scalar().fetch_one(&mut *conn).await?)
        } else {
            None
        };
        let mut page = sqlx::QueryBuilder::<D::Db>::new(format!(
            "SELECT {CONTACT_COLUMNS}, c.key FROM contacts c"
        ));
        let values = match D::INDEXED_BY {
            Some(indexed_by) => Self::value_indexes(&mut conn, plan, query, indexed_by).await?,
            None => ValueIndexes::Free,
        };
        Self::push_contact_filters(&mut page, plan, query, tree.as_deref(), values);
        let seal = self.cursor_seal().await?;
        let limit = Self::push_contact_window(&mut page, plan, query, seal)?;
        let mut rows = page.build().fetch_all(&mut *conn).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        let contacts = rows
            .iter()
            .map(Self::contact_from_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let next = match (&query.window, more, contacts.last(), rows.last()) {
            (Window::After { .. }, true, Some(last), Some(row)) => {
                let key: i64 = sqlx::Row::try_get(row, "key")?;
                Some(Self::contact_cursor(
                    query.order,
                    last,
                    seal.seal(plan, key),
                ))
            }
            _ => None,
        };
        Ok(ContactPage {
            contacts,
            total,
            next,
        })
    }

    async fn request_to_join(
        &self,
        plan: &PlanId,
        by: &Actor,
        group: &GroupId,
        contacts: &[ContactId],
        numbers: &BTreeSet<ParsedNumber>,
    ) -> StoreResult<u64> {
        self.ask_to_join(plan, by, group, contacts, numbers).await
    }

    async fn erase_contacts(
        &self,
        plan: &PlanId,
        by: &Actor,
        ids: &[ContactId],
    ) -> StoreResult<u64> {
        self.erase(plan, by, ids).await
    }

    async fn person_messages(&self, plan: &PlanId, phone: &str) -> StoreResult<PersonMessages> {
        self.read_person_messages(plan, phone).await
    }

    async fn contact_groups(
        &self,
        plan: &PlanId,
        id: &ContactId,
    ) -> StoreResult<Vec<GroupMembership>> {
        let mut conn = self.dialect.reader().acquire().await?;
        Self::load_contact(&mut conn, plan, id).await?;
        let groups: Vec<(String, Option<String>, String)> = sqlx::query_as(
            "SELECT g.id, g.name, g.status FROM group_members m \
                 JOIN contact_groups g ON g.key = m.grp \
                 WHERE m.contact = (SELECT key FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id = $2) \
                 ORDER BY g.id",
        )
        .bind(plan.as_str())
        .bind(id_bytes(id))
        .fetch_all(&mut *conn)
        .await?;
        Ok(groups
            .into_iter()
            .map(|(id, name, status)| GroupMembership {
                id: GroupId::from_trusted(id),
                name,
                status: GroupStatus::parse(&status).unwrap_or(GroupStatus::Deleted),
            })
            .collect())
    }

    async fn add_memberships(
        &self,
        plan: &PlanId,
        by: &Actor,
        contacts: &[ContactId],
        groups: &[GroupId],
    ) -> StoreResult<u64> {
        self.change_memberships(plan, by, contacts, groups, true)
            .await
    }

    async fn remove_memberships(
        &self,
        plan: &PlanId,
        by: &Actor,
        contacts: &[ContactId],
        groups: &[GroupId],
    ) -> StoreResult<u64> {
        self.change_memberships(plan, by, contacts, groups, false)
            .await
    }

    async fn add_to_group(
        &self,
        plan: &PlanId,
        by: &Actor,
        group: &GroupId,
        contacts: &[ContactId],
        numbers: &BTreeSet<ParsedNumber>,
    ) -> StoreResult<u64> {
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let outcome = async move {
            let locked = Self::lock_group(conn, plan, group, None).await?;
            if locked.status == GroupStatus::Deleted {
                return Err(StoreError::GroupDeleted);
            }
            if locked.smart {
                return Err(StoreError::SmartGroup(GroupRef::Addressed));
            }
            Self::require_contacts(conn, plan, contacts).await?;
            // By id first: a number of a contact just added is then a duplicate, not a
            // second membership.
            let mut added = Self::insert_members_by_id(conn, plan, group, contacts).await?;
            let numbers: Vec<&ParsedNumber> = numbers.iter().collect();
            added += Self::insert_members(conn, plan, group, &numbers, now).await?;
            Self::bump_version(conn, plan, group, added as i64, now).await?;
            Self::refresh_sizes(conn, plan, group).await?;
            Ok::<_, StoreError>(added)
        }
        .await?;
        let change = Change::new(
            "membership.add",
            [group.as_str()]
                .into_iter()
                .chain(contacts.iter().map(ContactId::as_str)),
        )
        .with("groups", 1)
        .with("contacts", contacts.len())
        .with("numbers", numbers.len())
        .with("changed", outcome);
        Self::audit(&mut tx, plan, by, change).await?;
        if outcome > 0 {
            let data = serde_json::json!({"group_id": group.as_str(), "change": "members_added", "count": outcome});
            Self::emit(
                &mut tx,
                plan,
                Event::new(EventType::GroupChanged, group, data),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }
}

/// What orders an event about `ids`: the one contact, or the plan for several.
pub(super) fn one_or_plan<'a>(
    mut ids: impl ExactSizeIterator<Item = &'a str>,
    plan: &'a PlanId,
) -> &'a str {
    match (ids.len(), ids.next()) {
        (1, Some(id)) => id,
        _ => plan.as_str(),
    }
}
