//! Delivery reports: each recipient's last reported state, kept beside the batch's packed
//! recipients; carrier opt-outs; and the states read back with the recipients and counted.

use std::collections::{HashMap, HashSet};

use super::*;
use crate::domain::delivery::OptOutCodes;

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
    /// The numbers a batch sent to: of one chunk, or of all of them.
    async fn batch_numbers(
        conn: &mut Conn<D>,
        plan: &PlanId,
        batch: &BatchId,
        chunk: Option<i64>,
    ) -> StoreResult<HashSet<String>> {
        let mut query =
            sqlx::QueryBuilder::<D::Db>::new("SELECT phones FROM batch_recipients WHERE batch = ");
        push_batch_key(&mut query, plan, batch);
        if let Some(chunk) = chunk {
            query.push(" AND chunk = ").push_bind(chunk);
        }
        let packed: Vec<String> = query.build_query_scalar().fetch_all(&mut *conn).await?;
        Ok(packed
            .iter()
            .flat_map(|phones| phones.split('\n'))
            .filter(|phone| !phone.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Opts out the contact with this number, if it is not already, as its carrier reported;
    /// returns whether it did.
    async fn carrier_opt_out(
        conn: &mut Conn<D>,
        plan: &PlanId,
        contact: &ContactId,
        report: &DeliveryReport,
        code: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let reason = format!("carrier: code {code} ({})", report.status);
        if !Self::set_opted_out(conn, plan, contact, true, Some(&reason), now).await? {
            return Ok(false);
        }
        Self::change_consent(
            conn,
            plan,
            contact.as_str(),
            &report.phone,
            "opt_out",
            None,
            "carrier",
            report.reference.as_deref(),
            now,
        )
        .await?;
        Ok(true)
    }

    pub(crate) async fn write_delivery_reports(
        &self,
        plan: &PlanId,
        by: &Actor,
        reports: &[DeliveryReport],
        opt_out: &OptOutCodes,
    ) -> StoreResult<ReportOutcome> {
        let now = Timestamp::now().millis();
        let mut outcome = ReportOutcome::default();
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        // Each batch's key, or `None` for a batch the plan does not have.
        let mut batches: HashMap<&str, Option<i64>> = HashMap::new();
        let mut numbers: HashMap<(&str, Option<i64>), HashSet<String>> = HashMap::new();
        let mut recorded_batches = BTreeSet::new();
        for report in reports {
            let batch = report.batch.as_str();
            if !batches.contains_key(batch) {
                let found: Option<i64> =
                    sqlx::query_scalar("SELECT key FROM batches WHERE plan_id = $1 AND id = $2")
                        .bind(plan.as_str())
                        .bind(batch)
                        .fetch_optional(&mut *conn)
                        .await?;
                batches.insert(batch, found);
            }
            let Some(&Some(key)) = batches.get(batch) else {
                outcome.unknown_batch += 1;
                continue;
            };
            let sent = match numbers.entry((batch, report.chunk)) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(unread) => unread
                    .insert(Self::batch_numbers(conn, plan, &report.batch, report.chunk).await?),
            };
            if !sent.contains(&report.phone) {
                outcome.not_recipient += 1;
                continue;
            }
            // A final state is not replaced by a report of the message in transit, whenever
            // that arrives; otherwise the latest report wins.
            let changed = sqlx::query(
                "INSERT INTO delivery_reports (batch, phone, status, code, final, at, \
                     received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (batch, phone) DO UPDATE SET status = excluded.status, \
                     code = excluded.code, final = excluded.final, at = excluded.at, \
                     received_at = excluded.received_at \
                     WHERE (excluded.final AND NOT delivery_reports.final) \
                        OR (excluded.final = delivery_reports.final \
                            AND excluded.at >= delivery_reports.at)",
            )
            .bind(key)
            .bind(&report.phone)
            .bind(report.status.as_str())
            .bind(report.code)
            .bind(report.status.is_final())
            .bind(report.at.millis())
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if changed == 0 {
                continue;
            }
            outcome.recorded += 1;
            recorded_batches.insert(batch);
            let contact: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT id FROM contacts \
                     WHERE plan = (SELECT key FROM plans WHERE id = $1) AND phone = $2",
            )
            .bind(plan.as_str())
            .bind(&report.phone)
            .fetch_optional(&mut *conn)
            .await?;
            let contact = contact.map(stored_contact_id).transpose()?;
            if let (Some(contact), Some(code)) = (&contact, report.code)
                && opt_out.contains(code)
                && Self::carrier_opt_out(conn, plan, contact, report, code, now).await?
            {
                outcome.opted_out += 1;
            }
            let data = serde_json::json!({
                "batch_id": batch,
                "contact_id": contact.as_ref().map(ContactId::as_str),
                "status": report.status.as_str(),
                "code": report.code,
                "at": report.at.to_rfc3339(),
            });
            Self::emit(
                conn,
                plan,
                // In order per recipient of the batch: one queue per batch would give a webhook
                // a large batch's reports one round at a time.
                Event::new(
                    EventType::DeliveryUpdated,
                    format!("{batch}/{}", report.phone),
                    data,
                ),
            )
            .await?;
        }
        let change = Change::new("delivery.report", recorded_batches)
            .with("recorded", outcome.recorded)
            .with("opted_out", outcome.opted_out);
        if outcome.recorded > 0 {
            Self::audit(conn, plan, by, change).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// The last reports of these numbers of a batch.
    pub(crate) async fn report_states(
        conn: &mut Conn<D>,
        plan: &PlanId,
        batch: &BatchId,
        phones: &[&str],
    ) -> StoreResult<HashMap<String, ReportState>> {
        let mut query = sqlx::QueryBuilder::<D::Db>::new(
            "SELECT phone, status, code, at FROM delivery_reports WHERE batch = ",
        );
        push_batch_key(&mut query, plan, batch);
        query.push(" AND phone IN ");
        D::push_list(&mut query, phones.iter().copied());
        let rows: Vec<(String, String, Option<i64>, i64)> =
            query.build_query_as().fetch_all(&mut *conn).await?;
        Ok(rows
            .into_iter()
            .map(|(phone, status, code, at)| {
                let state = ReportState {
                    status,
                    code,
                    at: Timestamp::from_millis(at),
                };
                (phone, state)
            })
            .collect())
    }

    /// Whether any recipient of the batch has a report.
    pub(crate) async fn has_reports(
        conn: &mut Conn<D>,
        plan: &PlanId,
        batch: &BatchId,
    ) -> StoreResult<bool> {
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM delivery_reports \
                 WHERE batch = (SELECT key FROM batches WHERE plan_id = $1 AND id = $2) LIMIT 1",
        )
        .bind(plan.as_str())
        .bind(batch.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        Ok(found.is_some())
    }

    pub(crate) async fn read_report_groups(
        &self,
        plan: &PlanId,
        batch: &BatchId,
        with_recipients: bool,
    ) -> StoreResult<Vec<ReportGroup>> {
        let mut conn = self.dialect.reader().acquire().await?;
        let counts: Vec<(String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT status, code, COUNT(*) FROM delivery_reports \
                 WHERE batch = (SELECT key FROM batches WHERE plan_id = $1 AND id = $2) \
                 GROUP BY status, code ORDER BY status, code",
        )
        .bind(plan.as_str())
        .bind(batch.as_str())
        .fetch_all(&mut *conn)
        .await?;
        let mut groups: Vec<ReportGroup> = counts
            .into_iter()
            .map(|(status, code, count)| ReportGroup {
                status,
                code,
                count,
                recipients: Vec::new(),
            })
            .collect();
        if with_recipients {
            let rows: Vec<(String, Option<i64>, String)> = sqlx::query_as(
                "SELECT status, code, phone FROM delivery_reports \
                     WHERE batch = (SELECT key FROM batches WHERE plan_id = $1 AND id = $2)",
            )
            .bind(plan.as_str())
            .bind(batch.as_str())
            .fetch_all(&mut *conn)
            .await?;
            for (status, code, phone) in rows {
                if let Some(group) = groups
                    .iter_mut()
                    .find(|group| group.status == status && group.code == code)
                {
                    group.recipients.push(phone);
                }
            }
            for group in &mut groups {
                group.recipients.sort();
            }
        }
        Ok(groups)
    }
}
