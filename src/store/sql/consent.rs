//! Consent: keywords, inbound messages and the history of every opt-out, opt-in, join and leave.

use super::*;

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
    /// Appends one consent change to the history.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_consent(
        conn: &mut Conn<D>,
        plan: &PlanId,
        contact: &str,
        phone: &str,
        event: &str,
        group: Option<&str>,
        source: &str,
        message: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO consent_events (plan_id, id, contact_id, phone, event, group_id, \
                 source, message_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(plan.as_str())
        .bind(ulid::Ulid::new().to_string())
        .bind(contact)
        .bind(phone)
        .bind(event)
        .bind(group)
        .bind(source)
        .bind(message)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Records a consent change of one contact (`record_consent`) and announces it to the
    /// plan's webhooks (`consent.changed`). Bulk changes record their rows alone and announce
    /// themselves once, with counts.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn change_consent(
        conn: &mut Conn<D>,
        plan: &PlanId,
        contact: &str,
        phone: &str,
        event: &str,
        group: Option<&str>,
        source: &str,
        message: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        Self::record_consent(
            conn, plan, contact, phone, event, group, source, message, now,
        )
        .await?;
        let data = serde_json::json!({
            "contact_id": contact,
            "event": event,
            "group_id": group,
            "source": source,
            "message_id": message,
        });
        Self::emit(
            conn,
            plan,
            Event::new(EventType::ConsentChanged, contact, data),
        )
        .await
    }

    pub(crate) async fn load_consent_keywords(
        conn: &mut Conn<D>,
        plan: &PlanId,
    ) -> StoreResult<ConsentKeywords> {
        let row: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("SELECT opt_out_keywords, opt_in_keywords FROM plans WHERE id = $1")
                .bind(plan.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        let Some((Some(opt_out), Some(opt_in))) = row else {
            return Ok(ConsentKeywords::default());
        };
        let words = |json: &str| serde_json::from_str::<Vec<String>>(json).unwrap_or_default();
        // Stored words were checked when they were set; should they ever not parse, the
        // defaults keep opt-out working.
        Ok(ConsentKeywords::new(&words(&opt_out), &words(&opt_in)).unwrap_or_default())
    }

    /// Opts the contact out or back in, if that changes anything; returns whether it did.
    pub(crate) async fn set_opted_out(
        conn: &mut Conn<D>,
        plan: &PlanId,
        contact: &ContactId,
        opted_out: bool,
        reason: Option<&str>,
        now: i64,
    ) -> StoreResult<bool> {
        let changed = sqlx::query(
            "UPDATE contacts SET opted_out = $3, opted_out_at = $4, opted_out_reason = $5, \
                 modified_at = $6 \
                 WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id = $2 AND opted_out <> $3",
        )
        .bind(plan.as_str())
        .bind(id_bytes(contact))
        .bind(opted_out)
        .bind(opted_out.then_some(now))
        .bind(if opted_out { reason } else { None })
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(changed > 0)
    }

    /// Joins or leaves every group whose keywords the message carries; a join of a group with
    /// double opt-in is a confirmation request instead. Returns the request, the groups joined
    /// or left, and the groups whose confirmation was requested.
    pub(crate) async fn apply_group_requests(
        conn: &mut Conn<D>,
        plan: &PlanId,
        contact: &ContactId,
        message: &InboundMessage,
        now: i64,
    ) -> StoreResult<(Option<GroupRequest>, Vec<String>, Vec<String>)> {
        let groups: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, auto_update FROM contact_groups WHERE plan_id = $1 \
                 AND status = 'ACTIVE' AND auto_update IS NOT NULL AND rule IS NULL ORDER BY id",
        )
        .bind(plan.as_str())
        .fetch_all(&mut *conn)
        .await?;
        let mut action = None;
        let mut changed = Vec::new();
        let mut requested = Vec::new();
        for (group, auto_update) in groups {
            let Ok(auto_update) = serde_json::from_str::<AutoUpdate>(&auto_update) else {
                continue;
            };
            let Some(request) = group_request(&auto_update, &message.to, &message.body) else {
                continue;
            };
            action = Some(request);
            if let (GroupRequest::Join, Some(confirm)) = (request, &auto_update.double_opt_in) {
                let key: i64 = sqlx::query_scalar(
                    "SELECT key FROM contacts \
                         WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id = $2",
                )
                .bind(plan.as_str())
                .bind(id_bytes(contact))
                .fetch_one(&mut *conn)
                .await?;
                let group_id = GroupId::from_trusted(group.clone());
                let asked = Self::request_confirmation(
                    conn,
                    plan,
                    &group_id,
                    confirm,
                    auto_update.to.as_str(),
                    vec![key],
                    "keyword",
                    Some(&message.id),
                    now,
                )
                .await?;
                if asked > 0 {
                    requested.push(group);
                }
                continue;
            }
            let sql = match request {
                GroupRequest::Join => {
                    "INSERT INTO group_members (grp, contact) \
                         SELECT g.key, c.key FROM contact_groups g, contacts c \
                         WHERE g.plan_id = $1 AND g.id = $2 AND c.plan = (SELECT key FROM plans WHERE id = $1) AND c.id = $3 \
                         ON CONFLICT DO NOTHING"
                }
                GroupRequest::Leave => {
                    "DELETE FROM group_members \
                         WHERE grp = (SELECT key FROM contact_groups WHERE plan_id = $1 AND id = $2) \
                         AND contact = (SELECT key FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id = $3)"
                }
            };
            let affected = sqlx::query(sql)
                .bind(plan.as_str())
                .bind(&group)
                .bind(id_bytes(contact))
                .execute(&mut *conn)
                .await?
                .rows_affected() as i64;
            if affected == 0 {
                continue;
            }
            let (delta, event) = match request {
                GroupRequest::Join => (affected, "join"),
                GroupRequest::Leave => (-affected, "leave"),
            };
            let group_id = GroupId::from_trusted(group.clone());
            Self::bump_version(conn, plan, &group_id, delta, now).await?;
            Self::refresh_sizes(conn, plan, &group_id).await?;
            Self::change_consent(
                conn,
                plan,
                contact.as_str(),
                message.from.msisdn.as_str(),
                event,
                Some(&group),
                "keyword",
                Some(&message.id),
                now,
            )
            .await?;
            let how = if delta > 0 {
                "members_added"
            } else {
                "members_removed"
            };
            let data = serde_json::json!({"group_id": group, "change": how, "count": 1});
            Self::emit(
                conn,
                plan,
                Event::new(EventType::GroupChanged, &group, data),
            )
            .await?;
            changed.push(group);
        }
        Ok((action, changed, requested))
    }
}

#[async_trait]
impl<D: Dialect> ConsentStore for SqlStore<D>
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
    async fn consent_keywords(&self, plan: &PlanId) -> StoreResult<ConsentKeywords> {
        let mut conn = self.dialect.reader().acquire().await?;
        Self::load_consent_keywords(&mut conn, plan).await
    }

    async fn set_consent_keywords(
        &self,
        plan: &PlanId,
        by: &Actor,
        keywords: &ConsentKeywords,
    ) -> StoreResult<()> {
        let mut tx = self.dialect.begin_write().await?;
        sqlx::query("UPDATE plans SET opt_out_keywords = $2, opt_in_keywords = $3 WHERE id = $1")
            .bind(plan.as_str())
            .bind(serde_json::Value::from(keywords.opt_out().to_vec()).to_string())
            .bind(serde_json::Value::from(keywords.opt_in().to_vec()).to_string())
            .execute(&mut *tx)
            .await?;
        let change = Change::new("consent.keywords", [plan])
            .with("opt_out", keywords.opt_out().len())
            .with("opt_in", keywords.opt_in().len());
        Self::audit(&mut tx, plan, by, change).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn process_inbound(
        &self,
        plan: &PlanId,
        by: &Actor,
        message: InboundMessage,
    ) -> StoreResult<(InboundOutcome, bool)> {
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let message_id = message.id.clone();
        let outcome = async move {
            // An erased number: only its owner's opt-in brings it back; nothing else it sends
            // is acted on, or kept.
            let phone = message.from.msisdn.as_str();
            let returning = !Self::erased_among(conn, plan, &[phone]).await?.is_empty();
            if returning {
                let keywords = Self::load_consent_keywords(conn, plan).await?;
                if keywords.classify(&message.body) != Some(Consent::OptIn) {
                    let ignored = InboundOutcome {
                        contact_id: String::new(),
                        action: "erased".to_owned(),
                        groups: Vec::new(),
                    };
                    return Ok::<_, StoreError>((ignored, false));
                }
                Self::unerase(conn, plan, phone).await?;
            }
            // Claim the message id first: a concurrent redelivery waits on this row and
            // then finds it taken.
            let claimed = sqlx::query(
                "INSERT INTO inbound_messages (plan_id, id, sender, recipient, body, \
                     received_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT DO NOTHING",
            )
            .bind(plan.as_str())
            .bind(&message.id)
            .bind(message.from.msisdn.as_str())
            .bind(&message.to)
            .bind(&message.body)
            .bind(message.received_at.as_deref())
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if claimed == 0 {
                let stored: Option<String> = sqlx::query_scalar(
                    "SELECT outcome FROM inbound_messages WHERE plan_id = $1 AND id = $2",
                )
                .bind(plan.as_str())
                .bind(&message.id)
                .fetch_one(&mut *conn)
                .await?;
                let outcome = stored
                    .and_then(|json| serde_json::from_str(&json).ok())
                    .ok_or_else(|| {
                        StoreError::Database(sqlx::Error::Protocol(
                            "a claimed inbound message has no outcome".into(),
                        ))
                    })?;
                return Ok::<_, StoreError>((outcome, true));
            }
            // A number that was never a contact becomes one.
            D::insert_contacts(conn, plan, &[&message.from], now).await?;
            let contact = stored_contact_id(
                sqlx::query_scalar("SELECT id FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = $1) AND phone = $2")
                    .bind(plan.as_str())
                    .bind(message.from.msisdn.as_str())
                    .fetch_one(&mut *conn)
                    .await?,
            )?;
            let keywords = Self::load_consent_keywords(conn, plan).await?;
            let phone = message.from.msisdn.as_str();
            // Opt-out and opt-in words win over any group's words.
            let (action, groups) = match keywords.classify(&message.body) {
                Some(consent) => {
                    let out = consent == Consent::OptOut;
                    let reason = format!("keyword {}", normalize(&message.body));
                    // A returning number's opt-in is recorded even though its new contact was
                    // never opted out: it is the consent that brought the number back.
                    if Self::set_opted_out(conn, plan, &contact, out, Some(&reason), now).await?
                        || returning
                    {
                        let event = if out { "opt_out" } else { "opt_in" };
                        Self::change_consent(
                            conn,
                            plan,
                            contact.as_str(),
                            phone,
                            event,
                            None,
                            "keyword",
                            Some(&message.id),
                            now,
                        )
                        .await?;
                    }
                    (if out { "opted_out" } else { "opted_in" }, Vec::new())
                }
                None => {
                    // A reply that confirms an open request (double opt-in) is that; any other
                    // words may be a group's.
                    let confirmed =
                        Self::confirm_pending(conn, plan, &contact, phone, &message, now).await?;
                    if confirmed.is_empty() {
                        match Self::apply_group_requests(conn, plan, &contact, &message, now)
                            .await?
                        {
                            (Some(GroupRequest::Join), joined, requested)
                                if joined.is_empty() && !requested.is_empty() =>
                            {
                                ("confirmation_requested", requested)
                            }
                            (Some(GroupRequest::Join), groups, _) => ("joined", groups),
                            (Some(GroupRequest::Leave), groups, _) => ("left", groups),
                            (None, _, _) => ("none", Vec::new()),
                        }
                    } else {
                        ("confirmed", confirmed)
                    }
                }
            };
            let outcome = InboundOutcome {
                contact_id: contact.to_string(),
                action: action.to_owned(),
                groups,
            };
            sqlx::query("UPDATE inbound_messages SET outcome = $3 WHERE plan_id = $1 AND id = $2")
                .bind(plan.as_str())
                .bind(&message.id)
                .bind(
                    serde_json::to_string(&outcome)
                        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
                )
                .execute(&mut *conn)
                .await?;
            Ok((outcome, false))
        }
        .await?;
        // A message acted on is audited; a repeat, or one from an erased number, changed nothing.
        if let (done, false) = &outcome
            && done.action != "erased"
        {
            let objects = [done.contact_id.as_str()]
                .into_iter()
                .chain(done.groups.iter().map(String::as_str));
            let change = Change::new("inbound.process", objects)
                .with("action", done.action.as_str())
                .with("message_id", message_id);
            Self::audit(&mut tx, plan, by, change).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn consent_history(
        &self,
        plan: &PlanId,
        id: &ContactId,
    ) -> StoreResult<Vec<ConsentEvent>> {
        use sqlx::Row;
        let mut conn = self.dialect.reader().acquire().await?;
        Self::load_contact(&mut conn, plan, id).await?;
        let rows = sqlx::query(
            "SELECT id, contact_id, phone, event, group_id, source, message_id, created_at \
                 FROM consent_events WHERE plan_id = $1 AND contact_id = $2 \
                 ORDER BY created_at, id",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ConsentEvent {
                    id: row.try_get("id")?,
                    contact_id: row.try_get("contact_id")?,
                    phone: row.try_get("phone")?,
                    event: row.try_get("event")?,
                    group_id: row.try_get("group_id")?,
                    source: row.try_get("source")?,
                    message_id: row.try_get("message_id")?,
                    at: Timestamp::from_millis(row.try_get("created_at")?),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
