//! Webhooks, their outbox and deliveries. `emit` is called by the other entities' writes inside
//! their transactions; it writes nothing when no enabled webhook of the plan wants the event.

use serde_json::{Value, json};

use super::*;
use crate::domain::ids::{EventId, WebhookId};
use crate::domain::webhook::EventType;
use crate::store::webhooks::{
    AttemptOutcome, ClaimedDelivery, DeliveryPage, DeliveryQuery, DeliveryRecord, DeliveryStatus,
    NewWebhook, WebhookRecord, WebhookStore, WebhookUpdate,
};

/// Retries of a delivery stop this long after its event (or after a redelivery).
pub(crate) const RETRY_WINDOW_MILLIS: i64 = 24 * 60 * 60 * 1000;
/// Deliveries removed by one statement of the weekly sweep, so that it never holds the writer
/// long.
const PRUNE_BATCH: i64 = 5_000;
/// Failed attempts in a row, at least, before a webhook failing for long is disabled.
const DISABLE_AFTER_FAILURES: i64 = 20;

/// The deliveries `d` an instance may claim at `$1`: pending and due, not claimed by another,
/// of an enabled webhook, and the oldest pending of their object (so that an object's events
/// arrive in order).
const CLAIMABLE: &str = "d.status = 'pending' AND d.next_at <= $1 \
     AND (d.lease_until IS NULL OR d.lease_until < $1) \
     AND d.webhook IN (SELECT key FROM webhooks WHERE enabled) \
     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o \
         WHERE o.webhook = d.webhook AND o.object = d.object \
         AND o.status = 'pending' AND o.key < d.key)";

const WEBHOOK_COLUMNS: &str = "id, url, events, description, enabled, disabled_reason, \
     failing_since, created_at, modified_at";
const DELIVERY_COLUMNS: &str = "d.event_id, d.type, d.status, d.attempts, d.response_status, \
     d.error, d.latency_ms, d.created_at, d.next_at, d.delivered_at";

type WebhookRow = (
    String,
    String,
    i64,
    Option<String>,
    bool,
    Option<String>,
    Option<i64>,
    i64,
    i64,
);
type DeliveryRow = (
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
);

/// An event to send to the plan's webhooks that want its type. `object` orders it: each
/// webhook receives the events of one object in the order they were written.
pub(crate) struct Event {
    pub(crate) kind: EventType,
    pub(crate) object: String,
    pub(crate) data: Value,
}

impl Event {
    pub(crate) fn new(kind: EventType, object: impl AsRef<str>, data: Value) -> Self {
        Self {
            kind,
            object: object.as_ref().to_owned(),
            data,
        }
    }
}

fn webhook_from_row(row: WebhookRow) -> WebhookRecord {
    let (id, url, events, description, enabled, disabled_reason, failing_since, created, modified) =
        row;
    WebhookRecord {
        id: WebhookId::from_trusted(id),
        url,
        events: EventType::from_bits(events),
        description,
        enabled,
        disabled_reason,
        failing_since: failing_since.map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(created),
        modified_at: Timestamp::from_millis(modified),
    }
}

fn delivery_from_row(row: DeliveryRow) -> Result<DeliveryRecord, sqlx::Error> {
    let (event, kind, status, attempts, response, error, latency, created, next, delivered) = row;
    let status = DeliveryStatus::parse(&status)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown delivery status {status:?}").into()))?;
    Ok(DeliveryRecord {
        event_id: EventId::from_trusted(event),
        event_type: kind,
        status,
        attempts,
        response_status: response,
        error,
        latency_ms: latency,
        created_at: Timestamp::from_millis(created),
        next_at: (status == DeliveryStatus::Pending).then(|| Timestamp::from_millis(next)),
        delivered_at: delivered.map(Timestamp::from_millis),
    })
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
    /// Writes `event` to the outbox, a delivery for each enabled webhook of the plan that wants
    /// it, on the changing transaction's connection; nothing when none wants it.
    pub(crate) async fn emit(conn: &mut Conn<D>, plan: &PlanId, event: Event) -> StoreResult<()> {
        // Most plans have no webhook: a read says so for less than a write that writes nothing
        // (which SQLite prepares as a write all the same).
        let wanted: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM webhooks WHERE plan = (SELECT key FROM plans WHERE id = $1) \
                 AND enabled AND (events & $2) <> 0 LIMIT 1",
        )
        .bind(plan.as_str())
        .bind(event.kind.bit())
        .fetch_optional(&mut *conn)
        .await?;
        if wanted.is_none() {
            return Ok(());
        }
        let now = Timestamp::now();
        let id = EventId::generate();
        let body = json!({
            "id": id.as_str(),
            "type": event.kind.as_str(),
            "created_at": now.to_rfc3339(),
            "plan_id": plan.as_str(),
            "data": event.data,
        })
        .to_string();
        sqlx::query(
            "INSERT INTO webhook_deliveries (webhook, event_id, type, object, body, status, \
                 next_at, expires_at, created_at) \
                 SELECT w.key, $2, $3, $4, $5, 'pending', $6, $7, $6 FROM webhooks w \
                 WHERE w.plan = (SELECT key FROM plans WHERE id = $1) AND w.enabled \
                 AND (w.events & $8) <> 0",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(event.kind.as_str())
        .bind(&event.object)
        .bind(body)
        .bind(now.millis())
        .bind(now.millis() + RETRY_WINDOW_MILLIS)
        .bind(event.kind.bit())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Fails the pending deliveries whose retries ran out (but those an instance is attempting:
    /// their outcome decides).
    async fn expire_deliveries(conn: &mut Conn<D>, now: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', \
                 error = COALESCE(error, 'not attempted before its retries ran out') \
                 WHERE status = 'pending' AND expires_at <= $1 \
                 AND (lease_until IS NULL OR lease_until < $1)",
        )
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn load_webhook(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &WebhookId,
    ) -> StoreResult<WebhookRecord> {
        let row: Option<WebhookRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks \
                 WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id = $2"
        )))
        .bind(plan.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        row.map(webhook_from_row)
            .ok_or(StoreError::NotFound(Entity::Webhook))
    }

    async fn load_delivery(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &WebhookId,
        event: &EventId,
    ) -> StoreResult<DeliveryRecord> {
        let row: Option<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d \
                 JOIN webhooks w ON w.key = d.webhook \
                 WHERE w.plan = (SELECT key FROM plans WHERE id = $1) AND w.id = $2 \
                 AND d.event_id = $3"
        )))
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(event.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        let row = row.ok_or(StoreError::NotFound(Entity::Delivery))?;
        Ok(delivery_from_row(row)?)
    }
}

#[async_trait]
impl<D: Dialect> WebhookStore for SqlStore<D>
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
    async fn create_webhook(
        &self,
        plan: &PlanId,
        by: &Actor,
        webhook: NewWebhook,
    ) -> StoreResult<WebhookRecord> {
        let id = WebhookId::generate();
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        sqlx::query(
            "INSERT INTO webhooks (plan, id, url, events, description, secret, created_at, \
                 modified_at) SELECT key, $2, $3, $4, $5, $6, $7, $7 FROM plans WHERE id = $1",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(&webhook.url)
        .bind(EventType::bits(&webhook.events))
        .bind(webhook.description.as_deref())
        .bind(&webhook.secret)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let record = Self::load_webhook(&mut tx, plan, &id).await?;
        let change = Change::new("webhook.create", [&id]).with("events", webhook.events.len());
        Self::audit(&mut tx, plan, by, change).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn list_webhooks(&self, plan: &PlanId) -> StoreResult<Vec<WebhookRecord>> {
        let rows: Vec<WebhookRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks \
                 WHERE plan = (SELECT key FROM plans WHERE id = $1) ORDER BY key"
        )))
        .bind(plan.as_str())
        .fetch_all(self.dialect.reader())
        .await?;
        Ok(rows.into_iter().map(webhook_from_row).collect())
    }

    async fn get_webhook(&self, plan: &PlanId, id: &WebhookId) -> StoreResult<WebhookRecord> {
        let mut conn = self.dialect.reader().acquire().await?;
        Self::load_webhook(&mut conn, plan, id).await
    }

    async fn update_webhook(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &WebhookId,
        update: WebhookUpdate,
    ) -> StoreResult<WebhookRecord> {
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        Self::load_webhook(&mut tx, plan, id).await?;
        let mut set = sqlx::QueryBuilder::<D::Db>::new("UPDATE webhooks SET modified_at = ");
        set.push_bind(now);
        if let Some(url) = &update.url {
            set.push(", url = ").push_bind(url.clone());
        }
        if let Some(events) = &update.events {
            set.push(", events = ").push_bind(EventType::bits(events));
        }
        if let Some(description) = &update.description {
            set.push(", description = ").push_bind(description.clone());
        }
        if let Some(secret) = &update.secret {
            set.push(", secret = ").push_bind(secret.clone());
        }
        if let Some(enabled) = update.enabled {
            set.push(", enabled = ").push_bind(enabled);
            // Enabled again: a fresh start, with no streak behind it.
            set.push(", disabled_reason = NULL, failures = 0, failing_since = NULL");
        }
        set.push(" WHERE plan = ");
        push_plan_key(&mut set, plan);
        set.push(" AND id = ").push_bind(id.as_str().to_owned());
        set.build().execute(&mut *tx).await?;
        let record = Self::load_webhook(&mut tx, plan, id).await?;
        let change = Change::new("webhook.update", [id]).fields(&[
            ("url", update.url.is_some()),
            ("events", update.events.is_some()),
            ("description", update.description.is_some()),
            ("enabled", update.enabled.is_some()),
            ("secret", update.secret.is_some()),
        ]);
        Self::audit(&mut tx, plan, by, change).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn delete_webhook(&self, plan: &PlanId, by: &Actor, id: &WebhookId) -> StoreResult<()> {
        let mut tx = self.dialect.begin_write().await?;
        let deleted = sqlx::query(
            "DELETE FROM webhooks WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id = $2",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound(Entity::Webhook));
        }
        Self::audit(&mut tx, plan, by, Change::new("webhook.delete", [id])).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn webhook_deliveries(
        &self,
        plan: &PlanId,
        id: &WebhookId,
        query: &DeliveryQuery,
    ) -> StoreResult<DeliveryPage> {
        let mut conn = self.dialect.reader().acquire().await?;
        Self::load_webhook(&mut conn, plan, id).await?;
        let mut page = sqlx::QueryBuilder::<D::Db>::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d \
                 WHERE d.webhook = (SELECT w.key FROM webhooks w \
                 WHERE w.plan = (SELECT key FROM plans WHERE id = "
        ));
        page.push_bind(plan.as_str().to_owned())
            .push(") AND w.id = ")
            .push_bind(id.as_str().to_owned())
            .push(")");
        // Event ids are ULIDs, in the order of the events: the cursor is the last one listed.
        if let Some(after) = &query.after {
            let after = EventId::parse(after).ok_or(StoreError::ForeignCursor)?;
            page.push(" AND d.event_id < ")
                .push_bind(after.as_str().to_owned());
        }
        if let Some(status) = query.status {
            page.push(" AND d.status = ")
                .push_bind(status.as_str().to_owned());
        }
        page.push(format!(
            " ORDER BY d.event_id{} DESC LIMIT ",
            D::TEXT_COLLATE
        ))
        .push_bind(query.limit + 1);
        let rows: Vec<DeliveryRow> = page.build_query_as().fetch_all(&mut *conn).await?;
        let more = rows.len() as i64 > query.limit;
        let mut deliveries = rows
            .into_iter()
            .map(delivery_from_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        deliveries.truncate(query.limit.max(0) as usize);
        let next = match (more, deliveries.last()) {
            (true, Some(last)) => Some(last.event_id.to_string()),
            _ => None,
        };
        Ok(DeliveryPage { deliveries, next })
    }

    async fn redeliver(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &WebhookId,
        event: &EventId,
    ) -> StoreResult<DeliveryRecord> {
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        Self::load_delivery(&mut tx, plan, id, event).await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_at = $3, expires_at = $4, \
                 lease_owner = NULL, lease_until = NULL, delivered_at = NULL \
                 WHERE webhook = (SELECT key FROM webhooks \
                     WHERE plan = (SELECT key FROM plans WHERE id = $1) AND id = $2) \
                 AND event_id = $5",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(now)
        .bind(now + RETRY_WINDOW_MILLIS)
        .bind(event.as_str())
        .execute(&mut *tx)
        .await?;
        let record = Self::load_delivery(&mut tx, plan, id, event).await?;
        Self::audit(
            &mut tx,
            plan,
            by,
            Change::new("webhook.redeliver", [id.as_str(), event.as_str()]),
        )
        .await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn claim_deliveries(
        &self,
        lease: &Lease,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let now = Timestamp::now().millis();
        // Idle instances poll; a read first keeps them from taking the writer when nothing is
        // due.
        let due: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT d.key FROM webhook_deliveries d WHERE {CLAIMABLE} LIMIT 1"
        )))
        .bind(now)
        .fetch_optional(self.dialect.reader())
        .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.dialect.begin_write().await?;
        Self::expire_deliveries(&mut tx, now).await?;
        let keys: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "UPDATE webhook_deliveries SET lease_owner = $3, lease_until = $4 \
                 WHERE key IN ( \
                     SELECT d.key FROM webhook_deliveries d WHERE {CLAIMABLE} \
                     ORDER BY d.next_at, d.key LIMIT $2{claim_lock}) \
                 RETURNING key",
            claim_lock = D::CLAIM_LOCK
        )))
        .bind(now)
        .bind(limit)
        .bind(&lease.owner)
        .bind(now + lease.millis)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        type ClaimRow = (i64, i64, String, String, String, String, i64, i64);
        let mut details = sqlx::QueryBuilder::<D::Db>::new(
            "SELECT d.key, d.webhook, w.url, w.secret, d.event_id, d.body, d.attempts, \
                 d.expires_at FROM webhook_deliveries d JOIN webhooks w ON w.key = d.webhook \
                 WHERE d.key IN ",
        );
        D::push_key_list(&mut details, keys);
        details.push(" ORDER BY d.key");
        let rows: Vec<ClaimRow> = details
            .build_query_as()
            .fetch_all(self.dialect.reader())
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(key, webhook, url, secret, event_id, body, attempts, expires_at)| {
                    ClaimedDelivery {
                        key,
                        webhook,
                        url,
                        secret,
                        event_id,
                        body,
                        attempts,
                        expires_at: Timestamp::from_millis(expires_at),
                    }
                },
            )
            .collect())
    }

    async fn record_attempts(
        &self,
        lease: &Lease,
        outcomes: &[AttemptOutcome],
        disable_after_millis: i64,
    ) -> StoreResult<()> {
        let now = Timestamp::now().millis();
        // Rows locked in one order by every instance (webhook, then delivery), so that two
        // recording at once cannot deadlock on PostgreSQL.
        let mut outcomes: Vec<&AttemptOutcome> = outcomes.iter().collect();
        outcomes.sort_by_key(|outcome| (outcome.webhook, outcome.key));
        let mut tx = self.dialect.begin_write().await?;
        for outcome in outcomes {
            let (status, next_at, delivered_at) = match (&outcome.error, outcome.retry_at) {
                (None, _) => ("delivered", now, Some(now)),
                (Some(_), Some(retry)) => ("pending", retry.millis(), None),
                (Some(_), None) => ("failed", now, None),
            };
            let recorded = sqlx::query(
                "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, \
                     next_at = $4, response_status = $5, error = $6, latency_ms = $7, \
                     delivered_at = $8, lease_owner = NULL, lease_until = NULL \
                     WHERE key = $1 AND lease_owner = $2 AND status = 'pending'",
            )
            .bind(outcome.key)
            .bind(&lease.owner)
            .bind(status)
            .bind(next_at)
            .bind(outcome.response_status)
            .bind(outcome.error.as_deref())
            .bind(outcome.latency_ms)
            .bind(delivered_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if recorded == 0 {
                // Another instance took the delivery over (or it was redelivered meanwhile).
                continue;
            }
            if outcome.error.is_none() {
                sqlx::query(
                    "UPDATE webhooks SET failures = 0, failing_since = NULL \
                         WHERE key = $1 AND failures > 0",
                )
                .bind(outcome.webhook)
                .execute(&mut *tx)
                .await?;
                continue;
            }
            sqlx::query(
                "UPDATE webhooks SET failures = failures + 1, \
                     failing_since = COALESCE(failing_since, $2) WHERE key = $1",
            )
            .bind(outcome.webhook)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let (failures, since): (i64, Option<i64>) =
                sqlx::query_as("SELECT failures, failing_since FROM webhooks WHERE key = $1")
                    .bind(outcome.webhook)
                    .fetch_one(&mut *tx)
                    .await?;
            let since = since.unwrap_or(now);
            if failures >= DISABLE_AFTER_FAILURES && since <= now - disable_after_millis {
                let reason = format!(
                    "every attempt since {} failed ({failures} in a row); \
                         PATCH {{\"enabled\": true}} enables it again",
                    Timestamp::from_millis(since).to_rfc3339()
                );
                sqlx::query(
                    "UPDATE webhooks SET enabled = $2, disabled_reason = $3, modified_at = $4 \
                         WHERE key = $1 AND enabled",
                )
                .bind(outcome.webhook)
                .bind(false)
                .bind(reason)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn prune_deliveries(&self, before: Timestamp) -> StoreResult<u64> {
        // Deliveries no instance claims (a disabled webhook's) run out here too.
        let mut tx = self.dialect.begin_write().await?;
        Self::expire_deliveries(&mut tx, Timestamp::now().millis()).await?;
        tx.commit().await?;
        let mut removed = 0;
        loop {
            let mut tx = self.dialect.begin_write().await?;
            let done = sqlx::query(
                "DELETE FROM webhook_deliveries WHERE key IN (SELECT key FROM webhook_deliveries \
                     WHERE status <> 'pending' AND created_at < $1 LIMIT $2)",
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
