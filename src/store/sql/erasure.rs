//! Erasure: a contact removed with everything that names its number — consent rows (one
//! anonymous row stays), recorded recipients, delivery reports, inbound messages, numbers given
//! to batches — and the number kept only as a keyed hash, which later writes check.

use std::collections::{HashMap, HashSet};

use super::*;
use crate::domain::erasure::{ERASURE_SECRET, number_hash};

/// What stands in for an erased number where a list keeps its place (a chunk's recipients line
/// up with their parts).
const ERASED: &str = "erased";

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
    /// Which of `phones` the plan erased. A plan that never erased a number is answered by one
    /// indexed read.
    pub(crate) async fn erased_among(
        conn: &mut Conn<D>,
        plan: &PlanId,
        phones: &[&str],
    ) -> StoreResult<HashSet<String>> {
        if phones.is_empty() {
            return Ok(HashSet::new());
        }
        let any: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM erased_numbers WHERE plan_id = $1 LIMIT 1")
                .bind(plan.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        if any.is_none() {
            return Ok(HashSet::new());
        }
        let key: Option<String> =
            sqlx::query_scalar("SELECT secret FROM server_secrets WHERE name = $1")
                .bind(ERASURE_SECRET)
                .fetch_optional(&mut *conn)
                .await?;
        let Some(key) = key else {
            return Ok(HashSet::new());
        };
        let hashes: HashMap<String, &str> = phones
            .iter()
            .map(|phone| (number_hash(key.as_bytes(), plan.as_str(), phone), *phone))
            .collect();
        let mut query =
            sqlx::QueryBuilder::<D::Db>::new("SELECT hash FROM erased_numbers WHERE plan_id = ");
        query
            .push_bind(plan.as_str().to_owned())
            .push(" AND hash IN ");
        D::push_list(&mut query, hashes.keys().map(String::as_str));
        let found: Vec<String> = query.build_query_scalar().fetch_all(&mut *conn).await?;
        Ok(found
            .iter()
            .filter_map(|hash| hashes.get(hash).map(|phone| (*phone).to_owned()))
            .collect())
    }

    /// Refuses a number its owner had erased.
    pub(crate) async fn require_not_erased(
        conn: &mut Conn<D>,
        plan: &PlanId,
        phone: &str,
    ) -> StoreResult<()> {
        if Self::erased_among(conn, plan, &[phone]).await?.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Erased)
        }
    }

    /// Forgets that a number was erased: its owner opted in again.
    pub(crate) async fn unerase(conn: &mut Conn<D>, plan: &PlanId, phone: &str) -> StoreResult<()> {
        if Self::erased_among(conn, plan, &[phone]).await?.is_empty() {
            return Ok(());
        }
        let key: String = sqlx::query_scalar("SELECT secret FROM server_secrets WHERE name = $1")
            .bind(ERASURE_SECRET)
            .fetch_one(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM erased_numbers WHERE plan_id = $1 AND hash = $2")
            .bind(plan.as_str())
            .bind(number_hash(key.as_bytes(), plan.as_str(), phone))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Replaces each of `phones` by [`ERASED`] in the packed number lists of `table` (one
    /// number per line). A few numbers are looked for by the database, line by line in each
    /// list; more are looked for in one pass over the plan's lists.
    async fn scrub_lists(
        conn: &mut Conn<D>,
        plan: &PlanId,
        table: &str,
        position: &str,
        phones: &HashSet<String>,
    ) -> StoreResult<()> {
        const FEW: usize = 8;
        let lists: Vec<(i64, i64, String)> = if phones.len() <= FEW {
            let mut found = Vec::new();
            for phone in phones {
                let holding: Vec<(i64, i64, String)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT batch, {position}, phones FROM {table} \
                             WHERE batch IN (SELECT key FROM batches WHERE plan_id = $1) \
                             AND ($2 || phones || $2) LIKE $3"
                    )))
                    .bind(plan.as_str())
                    .bind("\n")
                    .bind(format!("%\n{phone}\n%"))
                    .fetch_all(&mut *conn)
                    .await?;
                found.extend(holding);
            }
            found
        } else {
            let mut holding = Vec::new();
            let mut rows = sqlx::query_as::<_, (i64, i64, String)>(sqlx::AssertSqlSafe(format!(
                "SELECT batch, {position}, phones FROM {table} \
                     WHERE batch IN (SELECT key FROM batches WHERE plan_id = $1)"
            )))
            .bind(plan.as_str())
            .fetch(&mut *conn);
            while let Some(row) = futures::TryStreamExt::try_next(&mut rows).await? {
                if row.2.split('\n').any(|number| phones.contains(number)) {
                    holding.push(row);
                }
            }
            holding
        };
        let mut scrubbed: HashMap<(i64, i64), String> = HashMap::new();
        for (batch, at, packed) in lists {
            let current = scrubbed.remove(&(batch, at)).unwrap_or(packed);
            let clean: Vec<&str> = current
                .split('\n')
                .map(|number| {
                    if phones.contains(number) {
                        ERASED
                    } else {
                        number
                    }
                })
                .collect();
            let clean = clean.join("\n");
            scrubbed.insert((batch, at), clean);
        }
        for ((batch, at), packed) in scrubbed {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET phones = $3 WHERE batch = $1 AND {position} = $2"
            )))
            .bind(batch)
            .bind(at)
            .bind(packed)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Removes everything that names one number, but the hash that refuses it from now on.
    async fn erase_number(
        conn: &mut Conn<D>,
        plan: &PlanId,
        key: &[u8],
        contact: &str,
        phone: &str,
        source: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO erased_numbers (plan_id, hash, erased_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
        )
        .bind(plan.as_str())
        .bind(number_hash(key, plan.as_str(), phone))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        // Consent rows name the number: they go, and one row without it says the person was
        // erased (and when, and through what).
        sqlx::query(
            "DELETE FROM consent_events WHERE plan_id = $1 AND (contact_id = $2 OR phone = $3)",
        )
        .bind(plan.as_str())
        .bind(contact)
        .bind(phone)
        .execute(&mut *conn)
        .await?;
        Self::record_consent(conn, plan, contact, "", "erase", None, source, None, now).await?;
        sqlx::query(
            "DELETE FROM delivery_reports \
                 WHERE batch IN (SELECT key FROM batches WHERE plan_id = $1) AND phone = $2",
        )
        .bind(plan.as_str())
        .bind(phone)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM inbound_messages WHERE plan_id = $1 AND sender = $2")
            .bind(plan.as_str())
            .bind(phone)
            .execute(&mut *conn)
            .await?;
        // A number given to a batch or a recurring batch directly, as JSON text.
        for table in ["batches", "batch_series"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET targets = replace(targets, $2, $3), \
                     excludes = replace(excludes, $2, $3) \
                     WHERE plan_id = $1 AND (targets LIKE $4 OR excludes LIKE $4)"
            )))
            .bind(plan.as_str())
            .bind(format!("\"{phone}\""))
            .bind(format!("\"{ERASED}\""))
            .bind(format!("%\"{phone}\"%"))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn erase(
        &self,
        plan: &PlanId,
        by: &Actor,
        ids: &[ContactId],
    ) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let key = self
            .server_secret(ERASURE_SECRET, &crate::domain::secret::random_secret())
            .await?;
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let mut lookup =
            sqlx::QueryBuilder::<D::Db>::new("SELECT id, phone FROM contacts WHERE plan = ");
        push_plan_key(&mut lookup, plan);
        lookup.push(" AND id IN ");
        D::push_id_list(&mut lookup, ids);
        let found = stored_id_phones(lookup.build_query_as().fetch_all(&mut *conn).await?)?;
        for (contact, phone) in &found {
            let source = by.source().as_str();
            Self::erase_number(
                conn,
                plan,
                key.as_bytes(),
                contact.as_str(),
                phone,
                source,
                now,
            )
            .await?;
        }
        let phones: HashSet<String> = found.iter().map(|(_, phone)| phone.clone()).collect();
        if !phones.is_empty() {
            Self::scrub_lists(conn, plan, "batch_recipients", "chunk", &phones).await?;
            Self::scrub_lists(conn, plan, "batch_skips", "block", &phones).await?;
        }
        let erased: Vec<ContactId> = found.into_iter().map(|(id, _)| id).collect();
        let count = Self::remove_contacts(conn, plan, &erased, now).await?;
        let change = Change::new("contact.erase", &erased).with("erased", count);
        Self::audit(conn, plan, by, change).await?;
        if count > 0 {
            let data = serde_json::json!({
                "contact_ids": erased.iter().take(AUDIT_OBJECTS).map(ContactId::as_str).collect::<Vec<_>>(),
                "count": count,
                "erased": true,
            });
            let object = super::contacts::one_or_plan(erased.iter().map(ContactId::as_str), plan);
            Self::emit(
                conn,
                plan,
                Event::new(EventType::ContactDeleted, object, data),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(count)
    }
}
