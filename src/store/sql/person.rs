//! What the plan holds about one person beyond their contact: the batches that reached their
//! number and the messages they sent, for their export.

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
    pub(crate) async fn read_person_messages(
        &self,
        plan: &PlanId,
        phone: &str,
    ) -> StoreResult<PersonMessages> {
        type SentRow = (
            String,
            String,
            String,
            i64,
            Option<i64>,
            Option<String>,
            Option<i64>,
            Option<i64>,
        );
        let mut conn = self.dialect.reader().acquire().await?;
        // A chunk's recipients are its numbers, one per line: the number is found between two
        // line ends (numbers hold no LIKE wildcard).
        let sent: Vec<SentRow> = sqlx::query_as(
            "SELECT b.id, b.body, b.status, b.created_at, b.resolved_at, \
                 d.status, d.code, d.at FROM batches b \
                 LEFT JOIN delivery_reports d ON d.batch = b.key AND d.phone = $2 \
                 WHERE b.plan_id = $1 AND EXISTS (SELECT 1 FROM batch_recipients r \
                     WHERE r.batch = b.key AND ($3 || r.phones || $3) LIKE $4) \
                 ORDER BY b.created_at, b.id",
        )
        .bind(plan.as_str())
        .bind(phone)
        .bind("\n")
        .bind(format!("%\n{phone}\n%"))
        .fetch_all(&mut *conn)
        .await?;
        let received: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT id, recipient, body, created_at FROM inbound_messages \
                 WHERE plan_id = $1 AND sender = $2 ORDER BY created_at, id",
        )
        .bind(plan.as_str())
        .bind(phone)
        .fetch_all(&mut *conn)
        .await?;
        Ok(PersonMessages {
            sent: sent
                .into_iter()
                .map(
                    |(id, body, status, created, resolved, report, code, at)| SentMessage {
                        batch_id: BatchId::from_trusted(id),
                        body,
                        status: BatchStatus::parse(&status).unwrap_or(BatchStatus::Failed),
                        created_at: Timestamp::from_millis(created),
                        resolved_at: resolved.map(Timestamp::from_millis),
                        delivery: report.zip(at).map(|(status, at)| ReportState {
                            status,
                            code,
                            at: Timestamp::from_millis(at),
                        }),
                    },
                )
                .collect(),
            received: received
                .into_iter()
                .map(|(id, to, body, at)| ReceivedMessage {
                    id,
                    to,
                    body,
                    at: Timestamp::from_millis(at),
                })
                .collect(),
        })
    }
}
