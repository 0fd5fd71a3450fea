//! Double opt-in: joins waiting for their number's confirmation (`pending_members`), the
//! confirmation requests sent as batches in the same transaction (so each is sent once), the
//! replies that confirm, and the requests that expire.

use crate::domain::auto_update::DoubleOptIn;

use super::*;

/// Numbers per confirmation batch (an upstream batch holds at most 1000).
const REQUEST_BATCH: usize = 1_000;

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
    /// Makes the contacts `keys` that are not members of `group` pending members, and sends
    /// each new request `confirm.text` from `from`, as transactional batches written in this
    /// transaction; returns how many requests are new. `source` and `message` go on each
    /// request's consent row (announced to webhooks one by one unless it is an import's).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn request_confirmation(
        conn: &mut Conn<D>,
        plan: &PlanId,
        group: &GroupId,
        confirm: &DoubleOptIn,
        from: &str,
        keys: Vec<i64>,
        source: &str,
        message: Option<&str>,
        now: i64,
    ) -> StoreResult<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut insert = sqlx::QueryBuilder::<D::Db>::new(
            "INSERT INTO pending_members (grp, contact, requested_at, expires_at) SELECT ",
        );
        push_group_key(&mut insert, plan, group.as_str());
        insert
            .push(", k.value, ")
            .push_bind(now)
            .push(", ")
            .push_bind(now + confirm.window_millis())
            .push(" FROM ");
        D::push_key_list(&mut insert, keys);
        insert.push(" AS k WHERE NOT EXISTS (SELECT 1 FROM group_members m WHERE m.grp = ");
        push_group_key(&mut insert, plan, group.as_str());
        insert.push(" AND m.contact = k.value) ON CONFLICT DO NOTHING RETURNING contact");
        let requested: Vec<i64> = insert.build_query_scalar().fetch_all(&mut *conn).await?;
        if requested.is_empty() {
            return Ok(0);
        }
        let mut lookup =
            sqlx::QueryBuilder::<D::Db>::new("SELECT id, phone FROM contacts WHERE plan = ");
        push_plan_key(&mut lookup, plan);
        lookup.push(" AND key IN ");
        D::push_key_list(&mut lookup, requested);
        lookup.push(" ORDER BY phone");
        let contacts = stored_id_phones(lookup.build_query_as().fetch_all(&mut *conn).await?)?;
        for (id, phone) in &contacts {
            let id = id.as_str();
            let event = "confirm_request";
            let group = Some(group.as_str());
            if source == "import" {
                Self::record_consent(conn, plan, id, phone, event, group, source, message, now)
                    .await?;
            } else {
                Self::change_consent(conn, plan, id, phone, event, group, source, message, now)
                    .await?;
            }
        }
        let phones: Vec<&str> = contacts.iter().map(|(_, phone)| phone.as_str()).collect();
        for numbers in phones.chunks(REQUEST_BATCH) {
            Self::insert_request_batch(conn, plan, from, &confirm.text, numbers, now).await?;
        }
        Ok(contacts.len() as u64)
    }

    /// A transactional batch of `text` to `numbers`, due now: the dispatcher sends it once.
    async fn insert_request_batch(
        conn: &mut Conn<D>,
        plan: &PlanId,
        from: &str,
        text: &str,
        numbers: &[&str],
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO batches (plan_id, id, status, targets, excludes, sender, body, \
                 client_reference, send_at, created_at, modified_at, encoding, purpose) \
                 VALUES ($1, $2, 'scheduled', $3, '[]', $4, $5, 'roster:confirm', $6, $6, $6, \
                 'auto', 'transactional')",
        )
        .bind(plan.as_str())
        .bind(BatchId::generate().as_str())
        .bind(to_json(&numbers)?)
        .bind(from)
        .bind(text)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Confirms the contact's open requests whose words `body` is; returns the groups joined.
    pub(crate) async fn confirm_pending(
        conn: &mut Conn<D>,
        plan: &PlanId,
        contact: &ContactId,
        phone: &str,
        message: &InboundMessage,
        now: i64,
    ) -> StoreResult<Vec<String>> {
        let open: Vec<(i64, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT p.grp, p.contact, g.id, g.auto_update FROM pending_members p \
                 JOIN contact_groups g ON g.key = p.grp \
                 WHERE p.contact = (SELECT key FROM contacts \
                     WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id = $2) \
                 AND p.expires_at > $3 AND g.status = 'ACTIVE' ORDER BY g.id",
        )
        .bind(plan.as_str())
        .bind(id_bytes(contact))
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        let mut joined = Vec::new();
        for (group_key, contact_key, group, auto_update) in open {
            let confirms = auto_update
                .as_deref()
                .and_then(|json| serde_json::from_str::<AutoUpdate>(json).ok())
                .and_then(|auto| auto.double_opt_in)
                .is_some_and(|confirm| confirm.confirms(&message.body));
            if !confirms {
                continue;
            }
            sqlx::query("DELETE FROM pending_members WHERE grp = $1 AND contact = $2")
                .bind(group_key)
                .bind(contact_key)
                .execute(&mut *conn)
                .await?;
            let added = sqlx::query(
                "INSERT INTO group_members (grp, contact) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(group_key)
            .bind(contact_key)
            .execute(&mut *conn)
            .await?
            .rows_affected() as i64;
            let group_id = GroupId::from_trusted(group.clone());
            Self::bump_version(conn, plan, &group_id, added, now).await?;
            Self::refresh_sizes(conn, plan, &group_id).await?;
            Self::change_consent(
                conn,
                plan,
                contact.as_str(),
                phone,
                "confirm",
                Some(&group),
                "keyword",
                Some(&message.id),
                now,
            )
            .await?;
            if added > 0 {
                let data = serde_json::json!(
                    {"group_id": group, "change": "members_added", "count": added}
                );
                Self::emit(
                    conn,
                    plan,
                    Event::new(EventType::GroupChanged, &group, data),
                )
                .await?;
            }
            joined.push(group);
        }
        Ok(joined)
    }

    /// Asks contacts (by id) and numbers (a contact made for a new one) to confirm joining
    /// `group`, which must have double opt-in; returns how many requests are new.
    pub(crate) async fn ask_to_join(
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
        let locked = Self::lock_group(conn, plan, group, None).await?;
        if locked.status == GroupStatus::Deleted {
            return Err(StoreError::GroupDeleted);
        }
        if locked.smart {
            return Err(StoreError::SmartGroup(GroupRef::Addressed));
        }
        let auto_update = Self::load_group(conn, plan, group).await?.auto_update;
        let Some((from, confirm)) =
            auto_update.and_then(|auto| auto.double_opt_in.map(|confirm| (auto.to, confirm)))
        else {
            return Err(StoreError::NoDoubleOptIn);
        };
        Self::require_contacts(conn, plan, contacts).await?;
        let mut by_id = sqlx::QueryBuilder::<D::Db>::new("SELECT key FROM contacts WHERE plan = ");
        push_plan_key(&mut by_id, plan);
        by_id.push(" AND id IN ");
        D::push_id_list(&mut by_id, contacts);
        let mut keys: Vec<i64> = if contacts.is_empty() {
            Vec::new()
        } else {
            by_id.build_query_scalar().fetch_all(&mut *conn).await?
        };
        let numbers: Vec<&ParsedNumber> = numbers.iter().collect();
        keys.extend(Self::contacts_of_numbers(conn, plan, &numbers, now).await?);
        keys.sort_unstable();
        keys.dedup();
        let source = by.source().as_str();
        let asked = Self::request_confirmation(
            conn,
            plan,
            group,
            &confirm,
            from.as_str(),
            keys,
            source,
            None,
            now,
        )
        .await?;
        let change = Change::new(
            "membership.request",
            [group.as_str()]
                .into_iter()
                .chain(contacts.iter().map(ContactId::as_str)),
        )
        .with("contacts", contacts.len())
        .with("numbers", numbers.len())
        .with("requested", asked);
        Self::audit(conn, plan, by, change).await?;
        tx.commit().await?;
        Ok(asked)
    }

    pub(crate) async fn expire_requests(&self, now: Timestamp) -> StoreResult<u64> {
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let expired: Vec<(i64, i64, String, String, Vec<u8>, String)> = sqlx::query_as(
            "SELECT p.grp, p.contact, pl.id, g.id, c.id, c.phone FROM pending_members p \
                 JOIN contact_groups g ON g.key = p.grp \
                 JOIN plans pl ON pl.id = g.plan_id \
                 JOIN contacts c ON c.plan = pl.key AND c.key = p.contact \
                 WHERE p.expires_at <= $1",
        )
        .bind(now.millis())
        .fetch_all(&mut *conn)
        .await?;
        for (group_key, contact_key, plan, group, contact, phone) in &expired {
            sqlx::query("DELETE FROM pending_members WHERE grp = $1 AND contact = $2")
                .bind(group_key)
                .bind(contact_key)
                .execute(&mut *conn)
                .await?;
            let plan = PlanId::from_trusted(plan.clone());
            let contact = stored_contact_id(contact.clone())?;
            Self::change_consent(
                conn,
                &plan,
                contact.as_str(),
                phone,
                "confirm_expire",
                Some(group),
                "system",
                None,
                now.millis(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(expired.len() as u64)
    }

    pub(crate) async fn read_pending(
        &self,
        plan: &PlanId,
        group: &GroupId,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<PendingMember>, i64)> {
        let mut conn = self.dialect.reader().acquire().await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pending_members WHERE grp = \
                 (SELECT key FROM contact_groups WHERE plan_id = $1 AND id = $2)",
        )
        .bind(plan.as_str())
        .bind(group.as_str())
        .fetch_one(&mut *conn)
        .await?;
        type PendingRow = (
            Vec<u8>,
            String,
            Option<String>,
            Option<String>,
            bool,
            i64,
            i64,
        );
        let rows: Vec<PendingRow> = sqlx::query_as(
            "SELECT c.id, c.phone, c.first_name, c.last_name, c.opted_out, p.requested_at, \
                 p.expires_at FROM pending_members p \
                 JOIN contacts c \
                     ON c.plan = (SELECT key FROM plans WHERE id = $1) AND c.key = p.contact \
                 WHERE p.grp = (SELECT key FROM contact_groups WHERE plan_id = $1 AND id = $2) \
                 ORDER BY p.requested_at, c.id LIMIT $3 OFFSET $4",
        )
        .bind(plan.as_str())
        .bind(group.as_str())
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
        let pending = rows
            .into_iter()
            .map(
                |(id, phone, first_name, last_name, opted_out, requested, expires)| {
                    Ok(PendingMember {
                        contact_id: stored_contact_id(id)?,
                        phone,
                        first_name,
                        last_name,
                        opted_out,
                        requested_at: Timestamp::from_millis(requested),
                        expires_at: Timestamp::from_millis(expires),
                    })
                },
            )
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok((pending, total))
    }
}
