//! Batches: creating and listing them, claiming due ones with a lease, resolving their
//! recipients (one query, recorded as chunk rows as it is read), and recording every chunk handed
//! to the sender before and after the hand-off. The dialect locks a batch (`LOCK_BATCH`), skips
//! batches another instance is claiming (`CLAIM_LOCK`) and sends the recipients of a batch to
//! groups alone its fastest way (`stream_groups_alone`).

use futures::{StreamExt, TryStreamExt};

use super::*;
use crate::domain::batch::EXPIRED;
use crate::domain::message::{EncodingUsed, MessagePlan, PartsTally, SkipReason};
use crate::domain::quiet::{QuietHours, ZoneFinder, ZoneSet};
use crate::domain::sending::{
    CappedNumbers, FrequencyCap, Purpose, QuietHoursSetting, RecentMessages, SendingSettings,
};
use crate::domain::sms::EncodingChoice;
use crate::domain::template::{ContactDetails, Parameters, Source};

pub(crate) const BATCH_COLUMNS: &str = "plan_id, id, status, targets, excludes, sender, body, \
     client_reference, send_at, expire_at, recipient_count, chunk_size, resolved_at, \
     sent_count, error, created_at, modified_at, completed_at, parameters, encoding, \
     encoding_used, parts_total, parts_min, parts_max, skipped_count, purpose, chunk_count, \
     held_count, held_until, series_id, occurrence";

/// What a resolution reads of each recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Columns {
    /// The number alone.
    Phone,
    /// The number, its time zone, and what its contact holds for a body's placeholders.
    Details(Wanted),
}

/// Which of a contact's details a body's placeholders use: those it does not are read as
/// NULL (the fields as `''`, which still says the number is a contact), so that a million
/// recipients do not carry strings nobody reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Wanted {
    pub first_name: bool,
    pub last_name: bool,
    pub fields: bool,
}

impl Wanted {
    pub(crate) fn of(message: &MessagePlan) -> Self {
        Wanted {
            first_name: message.uses(Source::FirstName),
            last_name: message.uses(Source::LastName),
            fields: message.needs_fields(),
        }
    }
}

impl Columns {
    /// The select list, for the contacts table as `alias`.
    pub(crate) fn of(self, alias: &str) -> String {
        match self {
            Columns::Phone => format!("{alias}.phone"),
            Columns::Details(wanted) => {
                let column = |used: bool, name: &str, otherwise: &str| {
                    if used {
                        format!("{alias}.{name}")
                    } else {
                        otherwise.to_owned()
                    }
                };
                format!(
                    "{alias}.phone, {}, {}, {}, {alias}.time_zone",
                    column(wanted.first_name, "first_name", "NULL"),
                    column(wanted.last_name, "last_name", "NULL"),
                    column(wanted.fields, "fields", "''"),
                )
            }
        }
    }
}

/// A row of [`Columns::Details`]: number, first and last name, custom fields (JSON), time zone.
pub(crate) type DetailsRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// One recipient as a resolution reads it.
pub(crate) struct Recipient {
    phone: String,
    /// What its contact holds, when the body needs it and the number is a contact.
    details: Option<ContactDetails>,
    /// Its contact's own time zone, when quiet hours need it.
    time_zone: Option<String>,
}

impl Recipient {
    fn bare(phone: String) -> Self {
        Recipient {
            phone,
            details: None,
            time_zone: None,
        }
    }

    /// A row of [`Columns::Details`]: a number that is no contact has no fields, not even
    /// `{}`. The custom fields are parsed only when the body names one.
    pub(crate) fn from_details(
        (phone, first_name, last_name, stored_fields, time_zone): DetailsRow,
        fields: bool,
    ) -> Self {
        let details = stored_fields.map(|stored| ContactDetails {
            first_name,
            last_name,
            fields: if fields {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&stored)
                    .unwrap_or_default()
            } else {
                serde_json::Map::new()
            },
        });
        Recipient {
            phone,
            details,
            time_zone,
        }
    }
}

/// Whether a failed batch's error says it expired (see `domain::batch::EXPIRED`).
fn is_expiry(error: &str) -> bool {
    error.starts_with(EXPIRED)
}

/// A finished chunk not yet written.
struct ChunkRow {
    chunk: i64,
    count: i64,
    phones: String,
    /// Comma-separated, when the batch's messages differ in parts.
    parts: Option<String>,
    /// JSON array of each recipient's placeholder values, when the body has placeholders.
    values: Option<String>,
    time_zones: Option<String>,
}

/// Recipients of one zone set gathered into the chunk they will fill.
#[derive(Default)]
struct Buffer {
    phones: Vec<String>,
    parts: Vec<i64>,
    values: Vec<Vec<String>>,
}

/// How a resolution under quiet hours sorts recipients by time zone: each zone set fills its
/// own chunks, so that a chunk is held or handed over whole.
struct Zoning {
    finder: ZoneFinder,
    /// A preview's: the window and the moment to count who it would hold, with each zone
    /// set's answer.
    held_at: Option<(QuietHours, chrono::DateTime<chrono::Utc>)>,
    quiet_now: Vec<Option<bool>>,
}

impl Zoning {
    fn new(setting: QuietHoursSetting) -> Self {
        Zoning {
            finder: ZoneFinder::new(setting.fallback_zone),
            held_at: None,
            quiet_now: Vec::new(),
        }
    }

    /// The zone set of a recipient: its contact's own zone, else its number's; `None` when
    /// neither is known.
    fn slot(&mut self, phone: &str, time_zone: Option<&str>) -> Option<usize> {
        match time_zone.and_then(|name| name.parse::<chrono_tz::Tz>().ok()) {
            Some(zone) => Some(self.finder.for_zone(zone)),
            None => self.finder.for_number(phone),
        }
    }

    /// Whether a preview's moment falls in the quiet hours of zone set `index`.
    fn held_now(&mut self, index: usize) -> bool {
        let Some((window, at)) = self.held_at else {
            return false;
        };
        if self.quiet_now.len() <= index {
            self.quiet_now.resize(index + 1, None);
        }
        *self.quiet_now[index].get_or_insert_with(|| {
            window
                .release(at, &self.finder.set(index).zones())
                .is_some()
        })
    }
}

/// A block of recipients left out for one reason, not yet written.
struct SkipRow {
    block: i64,
    reason: &'static str,
    detail: Option<String>,
    phones: Vec<String>,
}

/// Writes a batch's recipients as rows of `chunk_size` numbers, a few rows per statement,
/// working out each recipient's message on the way: who gets which text in how many parts,
/// and who is left out and why.
pub(crate) struct ChunkRecorder<'a, D> {
    dialect: std::marker::PhantomData<fn() -> D>,
    plan: &'a PlanId,
    id: &'a BatchId,
    /// The batch's key, which its rows name it by; read before the first of them is written.
    key: Option<i64>,
    size: usize,
    message: &'a MessagePlan,
    /// The chunk being filled for each zone set (index 0: recipients not sorted by zone).
    buffers: Vec<Buffer>,
    zoning: Option<Zoning>,
    held_now: i64,
    pending: Vec<ChunkRow>,
    /// Left-out numbers by reason and detail, written in blocks.
    skipped: BTreeMap<(&'static str, Option<String>), Vec<String>>,
    skip_rows: Vec<SkipRow>,
    next_block: i64,
    next_chunk: i64,
    tally: PartsTally,
    /// Left-out recipients by reason code.
    skipped_count: BTreeMap<&'static str, i64>,
    /// The numbers the plan's frequency cap leaves out.
    capped: CappedNumbers,
    scratch: String,
    /// A preview's: work everything out, write nothing, keep the first few messages.
    dry: bool,
    sample_limit: usize,
    samples: Vec<PreviewSample>,
}

/// Recipients read ahead while the frequency cap is worked out (about 100 MB at most).
const EARLY_RECIPIENTS: usize = 500_000;

/// Sample messages a preview shows.
const PREVIEW_SAMPLES: usize = 3;

/// Chunk rows per `INSERT`.
pub(crate) const CHUNK_ROWS_PER_INSERT: usize = 32;

/// What resolving a batch recorded.
pub(crate) struct Recorded {
    pub tally: PartsTally,
    /// Left out, by reason code.
    pub skipped: BTreeMap<&'static str, i64>,
    /// A preview's first messages.
    pub samples: Vec<PreviewSample>,
    /// A preview's: recipients quiet hours would hold now.
    pub held_now: i64,
    pub chunks: i64,
}

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
    for<'q> i16: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i16>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> bool: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
{
    fn new(plan: &'a PlanId, id: &'a BatchId, size: usize, message: &'a MessagePlan) -> Self {
        Self {
            dialect: std::marker::PhantomData,
            plan,
            id,
            key: None,
            size,
            message,
            buffers: vec![Buffer::default()],
            zoning: None,
            held_now: 0,
            pending: Vec::new(),
            skipped: BTreeMap::new(),
            skip_rows: Vec::new(),
            next_block: 0,
            next_chunk: 0,
            tally: PartsTally::default(),
            skipped_count: BTreeMap::new(),
            capped: CappedNumbers::default(),
            scratch: String::new(),
            dry: false,
            sample_limit: 0,
            samples: Vec::new(),
        }
    }

    /// A recorder that writes nothing and keeps the first `samples` messages.
    fn dry(
        plan: &'a PlanId,
        id: &'a BatchId,
        size: usize,
        message: &'a MessagePlan,
        samples: usize,
    ) -> Self {
        Self {
            dry: true,
            sample_limit: samples,
            ..Self::new(plan, id, size, message)
        }
    }

    /// Leaves out the numbers that already had the frequency cap's share in its period.
    fn with_capped(self, capped: CappedNumbers) -> Self {
        Self { capped, ..self }
    }

    /// Sorts the recipients by time zone, for quiet hours; a preview's counts who they would
    /// hold at `now`.
    fn with_quiet_hours(
        self,
        setting: Option<QuietHoursSetting>,
        now: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Self {
        let zoning = setting.map(|setting| Zoning {
            held_at: now.map(|now| (setting.window, now)),
            ..Zoning::new(setting)
        });
        Self { zoning, ..self }
    }

    async fn push(&mut self, conn: &mut Conn<D>, recipient: Recipient) -> StoreResult<()> {
        let Recipient {
            phone,
            details,
            time_zone,
        } = recipient;
        if self.capped.contains(&phone) {
            return self.skip(conn, phone, SkipReason::FrequencyCap).await;
        }
        let slot = match &mut self.zoning {
            Some(zoning) => zoning
                .slot(&phone, time_zone.as_deref())
                .map_or(0, |index| index + 1),
            None => 0,
        };
        self.prepare(conn, phone, details, slot).await
    }

    async fn prepare(
        &mut self,
        conn: &mut Conn<D>,
        phone: String,
        contact: Option<ContactDetails>,
        slot: usize,
    ) -> StoreResult<()> {
        match self.message.prepare(&phone, contact, &mut self.scratch) {
            Ok(prepared) => {
                self.tally.add(prepared.segments);
                if self.dry {
                    if let Some(zoning) = &mut self.zoning
                        && slot > 0
                        && zoning.held_now(slot - 1)
                    {
                        self.held_now += 1;
                    }
                    if self.samples.len() < self.sample_limit {
                        self.samples.push(PreviewSample {
                            text: self.message.text(&prepared.values),
                            to: phone,
                            segments: prepared.segments,
                        });
                    }
                    return Ok(());
                }
                if self.buffers.len() <= slot {
                    self.buffers.resize_with(slot + 1, Buffer::default);
                }
                let buffer = &mut self.buffers[slot];
                if self.message.is_personalized() {
                    buffer.parts.push(i64::from(prepared.segments.parts));
                    buffer.values.push(prepared.values);
                }
                buffer.phones.push(phone);
                if buffer.phones.len() == self.size {
                    self.close_chunk(slot)?;
                    if self.pending.len() == CHUNK_ROWS_PER_INSERT {
                        self.write(conn).await?;
                    }
                }
            }
            Err(reason) => self.skip(conn, phone, reason).await?,
        }
        Ok(())
    }

    async fn skip(
        &mut self,
        conn: &mut Conn<D>,
        phone: String,
        reason: SkipReason,
    ) -> StoreResult<()> {
        *self.skipped_count.entry(reason.code()).or_insert(0) += 1;
        if self.dry {
            return Ok(());
        }
        let key = (reason.code(), reason.detail().map(str::to_owned));
        let block = self.skipped.entry(key.clone()).or_default();
        block.push(phone);
        if block.len() == self.size {
            let phones = std::mem::take(block);
            self.close_skips(key, phones);
            if self.skip_rows.len() == CHUNK_ROWS_PER_INSERT {
                self.write(conn).await?;
            }
        }
        Ok(())
    }

    fn close_skips(
        &mut self,
        (reason, detail): (&'static str, Option<String>),
        phones: Vec<String>,
    ) {
        self.skip_rows.push(SkipRow {
            block: self.next_block,
            reason,
            detail,
            phones,
        });
        self.next_block += 1;
    }

    fn close_chunk(&mut self, slot: usize) -> StoreResult<()> {
        let buffer = std::mem::take(&mut self.buffers[slot]);
        let values = if self.message.is_personalized() {
            let json = serde_json::to_string(&buffer.values)
                .map_err(|error| StoreError::Database(sqlx::Error::Encode(Box::new(error))))?;
            Some(json)
        } else {
            None
        };
        let parts = (self.message.is_personalized() && !buffer.parts.is_empty()).then(|| {
            buffer
                .parts
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        });
        let time_zones = match (&self.zoning, slot) {
            (Some(zoning), 1..) => Some(zoning.finder.set(slot - 1).as_str().to_owned()),
            _ => None,
        };
        self.pending.push(ChunkRow {
            chunk: self.next_chunk,
            count: buffer.phones.len() as i64,
            phones: buffer.phones.join("\n"),
            parts,
            values,
            time_zones,
        });
        self.buffers[slot].phones.reserve(self.size);
        self.next_chunk += 1;
        Ok(())
    }

    async fn write(&mut self, conn: &mut Conn<D>) -> StoreResult<()> {
        if self.pending.is_empty() && self.skip_rows.is_empty() {
            return Ok(());
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let key = SqlStore::<D>::batch_key(conn, self.plan, self.id).await?;
                *self.key.insert(key)
            }
        };
        if !self.pending.is_empty() {
            let mut insert = sqlx::QueryBuilder::<D::Db>::new(
                "INSERT INTO batch_recipients \
                 (batch, chunk, count, phones, parts, placeholder_values, time_zones) ",
            );
            insert.push_values(self.pending.drain(..), |mut row, chunk| {
                row.push_bind(key)
                    .push_bind(chunk.chunk)
                    .push_bind(chunk.count)
                    .push_bind(chunk.phones)
                    .push_bind(chunk.parts)
                    .push_bind(chunk.values)
                    .push_bind(chunk.time_zones);
            });
            insert.build().execute(&mut *conn).await?;
        }
        if !self.skip_rows.is_empty() {
            let mut insert = sqlx::QueryBuilder::<D::Db>::new(
                "INSERT INTO batch_skips (batch, block, reason, detail, count, phones) ",
            );
            insert.push_values(self.skip_rows.drain(..), |mut row, block| {
                row.push_bind(key)
                    .push_bind(block.block)
                    .push_bind(block.reason)
                    .push_bind(block.detail)
                    .push_bind(block.phones.len() as i64)
                    .push_bind(block.phones.join("\n"));
            });
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Writes what is left; says how many recipients there were, in how many parts, and how
    /// many were left out.
    async fn finish(mut self, conn: &mut Conn<D>) -> StoreResult<Recorded> {
        for slot in 0..self.buffers.len() {
            if !self.buffers[slot].phones.is_empty() {
                self.close_chunk(slot)?;
            }
        }
        for (key, phones) in std::mem::take(&mut self.skipped) {
            if !phones.is_empty() {
                self.close_skips(key, phones);
            }
        }
        self.write(conn).await?;
        Ok(Recorded {
            tally: self.tally,
            skipped: self.skipped_count,
            samples: self.samples,
            held_now: self.held_now,
            chunks: self.next_chunk,
        })
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
    /// A `to` or `exclude` list stored as JSON in `column`.
    pub(crate) fn audience_from_row(
        row: &<D::Db as sqlx::Database>::Row,
        column: &str,
    ) -> Result<Audience, sqlx::Error> {
        use sqlx::Row;
        let json: String = row.try_get(column)?;
        let entries: Vec<String> =
            serde_json::from_str(&json).map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        Ok(Audience::from_stored(&entries))
    }

    /// The `parameters` column: Sinch's JSON shape, or none.
    pub(crate) fn parameters_from_row(
        row: &<D::Db as sqlx::Database>::Row,
    ) -> Result<Parameters, sqlx::Error> {
        use sqlx::Row;
        Ok(match row.try_get::<Option<String>, _>("parameters")? {
            Some(json) => Parameters::from_stored(
                &serde_json::from_str(&json)
                    .map_err(|error| sqlx::Error::Decode(Box::new(error)))?,
            ),
            None => Parameters::default(),
        })
    }

    pub(crate) fn batch_from_row(
        row: &<D::Db as sqlx::Database>::Row,
    ) -> Result<BatchRecord, sqlx::Error> {
        use sqlx::Row;
        let audience = |column: &str| Self::audience_from_row(row, column);
        let status: String = row.try_get("status")?;
        let parameters = Self::parameters_from_row(row)?;
        let encoding: String = row.try_get("encoding")?;
        let purpose: String = row.try_get("purpose")?;
        let encoding_used: Option<String> = row.try_get("encoding_used")?;
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
            parameters,
            encoding: EncodingChoice::parse(&encoding).unwrap_or_default(),
            purpose: Purpose::parse(&purpose).unwrap_or_default(),
            recipient_count: row.try_get("recipient_count")?,
            skipped_count: row.try_get("skipped_count")?,
            encoding_used: encoding_used.as_deref().and_then(EncodingUsed::parse),
            parts_total: row.try_get("parts_total")?,
            parts_min: row.try_get("parts_min")?,
            parts_max: row.try_get("parts_max")?,
            chunk_size: row.try_get("chunk_size")?,
            chunk_count: row.try_get("chunk_count")?,
            held_count: row.try_get("held_count")?,
            held_until: time("held_until")?,
            resolved_at: time("resolved_at")?,
            series_id: row
                .try_get::<Option<String>, _>("series_id")?
                .map(SeriesId::from_trusted),
            occurrence: row.try_get("occurrence")?,
            sent_count: row.try_get("sent_count")?,
            error: row.try_get("error")?,
            created_at: Timestamp::from_millis(row.try_get("created_at")?),
            modified_at: Timestamp::from_millis(row.try_get("modified_at")?),
            completed_at: time("completed_at")?,
        })
    }

    /// The distinct recipients of a batch, read by a task of their own (on a pooled
    /// connection, or the backend's own way for groups alone), so that memory holds a few
    /// chunks whatever the batch's size.
    /// With `zoned`, each recipient comes with its contact's own time zone, if any contact of
    /// the plan has one.
    pub(crate) async fn recipient_stream(
        &self,
        plan: &PlanId,
        batch: &BatchRecord,
        message: &MessagePlan,
        zoned: bool,
    ) -> StoreResult<BoxStream<'static, StoreResult<Recipient>>> {
        let mut reader = self.dialect.reader().acquire().await?;
        let include = Self::audience_tree(&mut reader, plan, &batch.to).await?;
        let exclude = Self::audience_tree(&mut reader, plan, &batch.exclude).await?;
        let own_zones = zoned && Self::has_own_time_zones(&mut reader, plan).await?;
        let store = self.clone();
        let (plan, batch) = (plan.clone(), batch.clone());
        if message.needs_contact() || own_zones {
            let wanted = Wanted::of(message);
            return Ok(spawn_numbers(move |sender| async move {
                if Self::groups_alone(&include, &exclude, &batch) {
                    let keys = (Self::tree_keys(&include), Self::tree_keys(&exclude));
                    return store
                        .dialect
                        .stream_details_alone(reader, (&keys.0, &keys.1), wanted, sender)
                        .await;
                }
                let mut reader = reader;
                let trees = (include.as_slice(), exclude.as_slice());
                Self::send_details(&mut reader, &plan, trees, &batch, wanted, &sender).await
            }));
        }
        let phones = spawn_numbers(move |sender| async move {
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
        Ok(phones.map_ok(Recipient::bare).boxed())
    }

    /// Whether any contact of the plan has a time zone of its own (the partial index
    /// `contacts_with_time_zone` answers at once).
    async fn has_own_time_zones(conn: &mut Conn<D>, plan: &PlanId) -> StoreResult<bool> {
        let mut select = sqlx::QueryBuilder::<D::Db>::new(
            "SELECT 1 FROM contacts WHERE time_zone IS NOT NULL AND plan = ",
        );
        push_plan_key(&mut select, plan);
        select.push(" LIMIT 1");
        let found: Option<i32> = select
            .build_query_scalar()
            .fetch_optional(&mut *conn)
            .await?;
        Ok(found.is_some())
    }

    pub(crate) async fn load_sending_settings(
        conn: &mut Conn<D>,
        plan: &PlanId,
    ) -> StoreResult<SendingSettings> {
        type Row = (
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<String>,
        );
        let (messages, days, quiet_start, quiet_end, fallback): Row = sqlx::query_as(
            "SELECT frequency_cap_messages, frequency_cap_days, quiet_start, quiet_end, \
                 quiet_fallback_zone FROM plans WHERE id = $1",
        )
        .bind(plan.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound(Entity::Plan))?;
        let quiet_hours = match (quiet_start, quiet_end) {
            (Some(start), Some(end)) => QuietHours::new(
                u32::try_from(start).unwrap_or(u32::MAX),
                u32::try_from(end).unwrap_or(u32::MAX),
            )
            .ok()
            .map(|window| QuietHoursSetting {
                window,
                fallback_zone: fallback.and_then(|name| name.parse().ok()),
            }),
            _ => None,
        };
        let frequency_cap = match (messages, days) {
            (Some(messages), Some(days)) => FrequencyCap::new(
                u32::try_from(messages).unwrap_or(u32::MAX),
                u32::try_from(days).unwrap_or(u32::MAX),
            )
            .ok(),
            _ => None,
        };
        Ok(SendingSettings {
            frequency_cap,
            quiet_hours,
        })
    }

    /// The numbers the plan's frequency cap leaves out of `batch`: those that had the cap's
    /// share of the plan's other marketing batches resolved in its period, as far as they were
    /// sent (or are still being sent).
    pub(crate) async fn frequency_capped(
        conn: &mut Conn<D>,
        plan: &PlanId,
        batch: &BatchRecord,
    ) -> StoreResult<CappedNumbers> {
        if batch.purpose != Purpose::Marketing {
            return Ok(CappedNumbers::default());
        }
        let Some(cap) = Self::load_sending_settings(conn, plan).await?.frequency_cap else {
            return Ok(CappedNumbers::default());
        };
        const COUNTED: &str = "FROM batches b JOIN batch_recipients r ON r.batch = b.key \
                 WHERE b.plan_id = $1 AND b.resolved_at >= $2 AND b.id <> $3 \
                   AND b.purpose = 'marketing' \
                   AND (b.status IN ('sending', 'sent') OR EXISTS ( \
                       SELECT 1 FROM batch_chunks c \
                           WHERE c.batch = r.batch AND c.chunk = r.chunk))";
        let since = Timestamp::now().millis() - cap.period_millis();
        // A batch gives each number one message at most: with fewer batches counted than the
        // cap allows, nobody is left out, and the millions of numbers need not be read.
        let batches: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(DISTINCT b.id) {COUNTED}"
        )))
        .bind(plan.as_str())
        .bind(since)
        .bind(batch.id.as_str())
        .fetch_one(&mut *conn)
        .await?;
        if batches < i64::from(cap.messages()) {
            return Ok(CappedNumbers::default());
        }
        let chunks: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT r.phones {COUNTED}")))
                .bind(plan.as_str())
                .bind(since)
                .bind(batch.id.as_str())
                .fetch_all(&mut *conn)
                .await?;
        // Sorting millions of numbers is work for a core: off the async threads, so that the
        // resolution's reading goes on meanwhile (see `resolve_batch`).
        tokio::task::spawn_blocking(move || {
            let messages = chunks.iter().map(|phones| phones.split('\n').count()).sum();
            let mut recent = RecentMessages::with_capacity(messages);
            for phones in &chunks {
                phones.split('\n').for_each(|phone| recent.count(phone));
            }
            recent.capped(cap)
        })
        .await
        .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))
    }

    /// Refuses a batch naming groups that are not active in the plan.
    pub(crate) async fn check_groups(
        conn: &mut Conn<D>,
        plan: &PlanId,
        batch: &NewBatch,
    ) -> StoreResult<()> {
        let mut unknown = Vec::new();
        for group in batch.to.groups.iter().chain(&batch.exclude.groups) {
            let found: Option<String> = sqlx::query_scalar(
                "SELECT id FROM contact_groups \
                     WHERE plan_id = $1 AND id = $2 AND status = 'ACTIVE'",
            )
            .bind(plan.as_str())
            .bind(group.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            if found.is_none() {
                unknown.push(group.clone());
            }
        }
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(StoreError::UnknownGroups(unknown))
        }
    }

    /// The batch's integer key, which the rows kept per batch name it by (migration 27).
    pub(crate) async fn batch_key(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &BatchId,
    ) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT key FROM batches WHERE plan_id = $1 AND id = $2")
            .bind(plan.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound(Entity::Batch))
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
    /// may rely on; with `opted_in`, without the contacts who opted out.
    pub(crate) fn push_resolution(
        builder: &mut sqlx::QueryBuilder<D::Db>,
        plan: &PlanId,
        include: &[TreeGroup],
        exclude: &[TreeGroup],
        batch: &BatchRecord,
        opted_in: bool,
        columns: Columns,
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
                opted_in,
                columns,
            );
            excluded_numbers(builder, "c.phone");
            branches += 1;
        } else if !include.is_empty() {
            builder
                .push("SELECT ")
                .push(columns.of("c"))
                .push(" FROM contacts c WHERE c.plan = ");
            push_plan_key(builder, plan);
            builder.push(if opted_in {
                " AND NOT c.opted_out AND "
            } else {
                " AND "
            });
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
            builder.push("SELECT n.phone");
            if matches!(columns, Columns::Details(_)) {
                builder.push(", d.first_name, d.last_name, d.fields, d.time_zone");
            }
            builder.push(" FROM ");
            D::push_phone_table(builder, batch.to.numbers.iter().map(String::as_str));
            if matches!(columns, Columns::Details(_)) {
                builder.push(" n LEFT JOIN contacts d ON d.plan = ");
                push_plan_key(builder, plan);
                builder.push(" AND d.phone = n.phone");
            } else {
                builder.push(" n");
            }
            builder
                .push(
                    " WHERE NOT EXISTS (SELECT 1 FROM contacts c \
                         WHERE c.plan = (SELECT key FROM plans WHERE id = ",
                )
                .push_bind(plan.as_str().to_owned())
                .push(") AND c.phone = n.phone AND (")
                .push(if opted_in { "c.opted_out" } else { "FALSE" });
            if !exclude.is_empty() {
                builder.push(" OR ");
                Self::push_membership(builder, exclude, Scan::Set);
            }
            builder.push("))");
            excluded_numbers(builder, "n.phone");
            branches += 1;
        }
        if branches == 0 {
            builder.push(match columns {
                Columns::Phone => "SELECT CAST(NULL AS TEXT) AS phone WHERE FALSE",
                Columns::Details(_) => {
                    "SELECT CAST(NULL AS TEXT) AS phone, CAST(NULL AS TEXT) AS first_name, \
                     CAST(NULL AS TEXT) AS last_name, CAST(NULL AS TEXT) AS fields, \
                     CAST(NULL AS TEXT) AS time_zone WHERE FALSE"
                }
            });
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
        Self::push_resolution(
            &mut select,
            plan,
            include,
            exclude,
            batch,
            true,
            Columns::Phone,
        );
        let rows = select.build_query_scalar::<String>().fetch(&mut *conn);
        forward_rows(rows, sender).await
    }

    /// As [`Self::send_resolution`], with what each recipient's contact holds for the body's
    /// placeholders (its custom fields read only when `fields`).
    pub(crate) async fn send_details(
        conn: &mut Conn<D>,
        plan: &PlanId,
        (include, exclude): (&[TreeGroup], &[TreeGroup]),
        batch: &BatchRecord,
        wanted: Wanted,
        sender: &Chunks<Recipient>,
    ) -> StoreResult<()> {
        let mut select = sqlx::QueryBuilder::<D::Db>::new("");
        Self::push_resolution(
            &mut select,
            plan,
            include,
            exclude,
            batch,
            true,
            Columns::Details(wanted),
        );
        Self::forward_details(conn, select, wanted.fields, sender).await
    }

    /// Runs a query of [`Columns::Details`] on `conn` and sends its recipients.
    async fn forward_details(
        conn: &mut Conn<D>,
        mut select: sqlx::QueryBuilder<D::Db>,
        fields: bool,
        sender: &Chunks<Recipient>,
    ) -> StoreResult<()> {
        let rows = select
            .build_query_as::<DetailsRow>()
            .fetch(&mut *conn)
            .map_ok(move |row| Recipient::from_details(row, fields));
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
    for<'q> i16: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i16>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> bool: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
{
    async fn create_batch(
        &self,
        plan: &PlanId,
        by: &Actor,
        batch: NewBatch,
    ) -> StoreResult<BatchRecord> {
        let mut tx = self.dialect.begin_write().await?;
        Self::check_groups(&mut tx, plan, &batch).await?;
        let id = BatchId::generate();
        let now = Timestamp::now().millis();
        let entries = |audience: &Audience| {
            serde_json::to_string(&audience.entries())
                .map_err(|error| sqlx::Error::Encode(Box::new(error)))
        };
        sqlx::query(
            "INSERT INTO batches (plan_id, id, status, targets, excludes, sender, body, \
                 client_reference, send_at, expire_at, created_at, modified_at, parameters, \
                 encoding, purpose) \
                 VALUES ($1, $2, 'scheduled', $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13)",
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
        .bind((!batch.parameters.is_empty()).then(|| batch.parameters.to_json().to_string()))
        .bind(batch.encoding.as_str())
        .bind(batch.purpose.as_str())
        .execute(&mut *tx)
        .await?;
        let record = Self::load_batch(&mut tx, plan, id.as_str()).await?;
        let change = Change::new("batch.create", [&id]).with("purpose", batch.purpose.as_str());
        Self::audit(&mut tx, plan, by, change).await?;
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
            if let Some(series) = &query.series_id {
                builder
                    .push(" AND series_id = ")
                    .push_bind(series.as_str().to_owned());
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

    async fn cancel_batch(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &BatchId,
    ) -> StoreResult<BatchRecord> {
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
                 lease_until = NULL, modified_at = $1, completed_at = $1, held_count = 0, \
                 held_until = NULL WHERE plan_id = $2 AND id = $3",
        )
        .bind(now)
        .bind(plan.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        let record = Self::load_batch(&mut tx, plan, id.as_str()).await?;
        Self::audit(&mut tx, plan, by, Change::new("batch.cancel", [id])).await?;
        tx.commit().await?;
        Ok(record)
    }

    fn batch_recipients(
        &self,
        plan: PlanId,
        id: BatchId,
    ) -> BoxStream<'static, StoreResult<RecipientOutcome>> {
        let store = self.clone();
        spawn_number_stream(move |sender| async move {
            let mut conn = store.dialect.reader().acquire().await?;
            let batch = Self::load_batch(&mut conn, &plan, id.as_str()).await?;
            if batch.recipient_count.is_none() {
                return Err(StoreError::NotResolved);
            }
            let unsent = match batch.status {
                BatchStatus::Canceled => RecipientState::Canceled,
                BatchStatus::Failed if batch.error.as_deref().is_some_and(is_expiry) => {
                    RecipientState::Expired
                }
                BatchStatus::Failed => RecipientState::Failed,
                _ => RecipientState::Queued,
            };
            let same_parts = batch
                .parts_min
                .filter(|_| batch.parts_min == batch.parts_max);
            // Reports are read a chunk at a time, on a connection of their own (the chunks
            // stream on this one).
            let mut reports = if Self::has_reports(&mut conn, &plan, &id).await? {
                Some(store.dialect.reader().acquire().await?)
            } else {
                None
            };
            {
                type Row = (String, Option<String>, Option<String>, Option<i64>);
                let mut rows = sqlx::query_as::<_, Row>(
                    "SELECT r.phones, r.parts, c.state, r.held_until FROM batch_recipients r \
                         LEFT JOIN batch_chunks c ON c.batch = r.batch AND c.chunk = r.chunk \
                         WHERE r.batch = (SELECT key FROM batches WHERE plan_id = $1 AND id = $2) \
                         ORDER BY r.chunk",
                )
                .bind(plan.as_str())
                .bind(id.as_str())
                .fetch(&mut *conn);
                while let Some((phones, parts, state, held_until)) =
                    futures::TryStreamExt::try_next(&mut rows).await?
                {
                    let state = match (state.as_deref(), held_until) {
                        (Some("done"), _) => RecipientState::Sent,
                        (Some(_), _) => RecipientState::Sending,
                        (None, Some(until)) if !batch.status.is_final() => {
                            RecipientState::Held(Timestamp::from_millis(until))
                        }
                        (None, _) => unsent.clone(),
                    };
                    let mut parts = parts.as_deref().unwrap_or("").split(',');
                    let numbers: Vec<&str> = phones.split('\n').collect();
                    let mut states = match reports.as_mut() {
                        Some(reports) => Self::report_states(reports, &plan, &id, &numbers).await?,
                        None => Default::default(),
                    };
                    let chunk = numbers
                        .into_iter()
                        .map(|phone| RecipientOutcome {
                            phone: phone.to_owned(),
                            state: state.clone(),
                            parts: same_parts
                                .or_else(|| parts.next().and_then(|parts| parts.parse().ok())),
                            delivery: states.remove(phone),
                        })
                        .collect();
                    if sender.send(Ok(chunk)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            let mut rows = sqlx::query_as::<_, (String, Option<String>, String)>(
                "SELECT reason, detail, phones FROM batch_skips \
                     WHERE batch = (SELECT key FROM batches WHERE plan_id = $1 AND id = $2) \
                     ORDER BY block",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .fetch(&mut *conn);
            while let Some((reason, detail, phones)) =
                futures::TryStreamExt::try_next(&mut rows).await?
            {
                let Some(reason) = SkipReason::from_stored(&reason, detail) else {
                    continue;
                };
                let chunk = phones
                    .split('\n')
                    .map(|phone| RecipientOutcome {
                        phone: phone.to_owned(),
                        state: RecipientState::Skipped(reason.clone()),
                        parts: None,
                        delivery: None,
                    })
                    .collect();
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
        let size = usize::try_from(chunk_size.max(1)).unwrap_or(1000);
        let message = MessagePlan::new(&batch.body, batch.parameters.clone(), batch.encoding);
        let quiet = Self::load_sending_settings(&mut tx, plan)
            .await?
            .quiet_hours_for(batch.purpose);
        let mut rows = self
            .recipient_stream(plan, &batch, &message, quiet.is_some())
            .await?;
        // The cap's count of the period's numbers (millions, read and sorted) overlaps the
        // reading of the first recipients, which wait for it here.
        let (mut early, mut ended) = (Vec::new(), false);
        let capped = {
            let capping = Self::frequency_capped(&mut tx, plan, &batch);
            tokio::pin!(capping);
            loop {
                tokio::select! {
                    capped = &mut capping => break capped?,
                    next = rows.try_next(), if !ended && early.len() < EARLY_RECIPIENTS => {
                        match next? {
                            Some(recipient) => early.push(recipient),
                            None => ended = true,
                        }
                    }
                }
            }
        };
        let mut recorder = ChunkRecorder::<D>::new(plan, id, size, &message)
            .with_capped(capped)
            .with_quiet_hours(quiet, None);
        for recipient in early {
            recorder.push(&mut tx, recipient).await?;
        }
        while !ended && let Some(recipient) = rows.try_next().await? {
            recorder.push(&mut tx, recipient).await?;
        }
        let Recorded {
            tally,
            skipped,
            chunks,
            ..
        } = recorder.finish(&mut tx).await?;
        let skipped: i64 = skipped.values().sum();
        let now = Timestamp::now().millis();
        sqlx::query(
            "UPDATE batches SET recipient_count = $1, chunk_size = $2, resolved_at = $3, \
                 modified_at = $3, skipped_count = $6, encoding_used = $7, parts_total = $8, \
                 parts_min = $9, parts_max = $10, chunk_count = $11 \
                 WHERE plan_id = $4 AND id = $5",
        )
        .bind(tally.messages)
        .bind(chunk_size)
        .bind(now)
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(skipped)
        .bind(tally.encoding().map(EncodingUsed::as_str))
        .bind(tally.parts)
        .bind(tally.min)
        .bind(tally.max)
        .bind(chunks)
        .execute(&mut *tx)
        .await?;
        let batch = Self::load_batch(&mut tx, plan, id.as_str()).await?;
        tx.commit().await?;
        Ok(batch)
    }

    async fn sending_settings(&self, plan: &PlanId) -> StoreResult<SendingSettings> {
        let mut conn = self.dialect.reader().acquire().await?;
        Self::load_sending_settings(&mut conn, plan).await
    }

    async fn set_sending_settings(
        &self,
        plan: &PlanId,
        by: &Actor,
        settings: &SendingSettings,
    ) -> StoreResult<()> {
        let mut tx = self.dialect.begin_write().await?;
        let cap = settings.frequency_cap;
        let quiet = settings.quiet_hours;
        sqlx::query(
            "UPDATE plans SET frequency_cap_messages = $2, frequency_cap_days = $3, \
                 quiet_start = $4, quiet_end = $5, quiet_fallback_zone = $6 WHERE id = $1",
        )
        .bind(plan.as_str())
        .bind(cap.map(|cap| i64::from(cap.messages())))
        .bind(cap.map(|cap| i64::from(cap.days())))
        .bind(quiet.map(|quiet| i64::from(quiet.window.start())))
        .bind(quiet.map(|quiet| i64::from(quiet.window.end())))
        .bind(quiet.and_then(|quiet| quiet.fallback_zone.map(|zone| zone.name().to_owned())))
        .execute(&mut *tx)
        .await?;
        let change = Change::new("settings.sending", [plan])
            .with("frequency_cap", cap.is_some())
            .with("quiet_hours", quiet.is_some());
        Self::audit(&mut tx, plan, by, change).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn preview_batch(&self, plan: &PlanId, batch: NewBatch) -> StoreResult<BatchPreview> {
        let mut conn = self.dialect.reader().acquire().await?;
        Self::check_groups(&mut conn, plan, &batch).await?;
        let now = Timestamp::now();
        let batch = BatchRecord {
            plan_id: plan.clone(),
            id: BatchId::generate(),
            status: BatchStatus::Scheduled,
            to: batch.to,
            exclude: batch.exclude,
            from: batch.from,
            body: batch.body,
            client_reference: batch.client_reference,
            send_at: batch.send_at,
            expire_at: batch.expire_at,
            parameters: batch.parameters,
            encoding: batch.encoding,
            purpose: batch.purpose,
            recipient_count: None,
            skipped_count: None,
            encoding_used: None,
            parts_total: None,
            parts_min: None,
            parts_max: None,
            chunk_size: None,
            chunk_count: None,
            held_count: 0,
            held_until: None,
            resolved_at: None,
            series_id: None,
            occurrence: None,
            sent_count: 0,
            error: None,
            created_at: now,
            modified_at: now,
            completed_at: None,
        };
        // Who the batch reaches before anyone is left out, and once excluded groups and
        // numbers are: the differences are the counts left out for each reason.
        let include = Self::audience_tree(&mut conn, plan, &batch.to).await?;
        let exclude = Self::audience_tree(&mut conn, plan, &batch.exclude).await?;
        let unexcluded = BatchRecord {
            exclude: Audience::default(),
            ..batch.clone()
        };
        let count = |exclude: &[TreeGroup], batch: &BatchRecord| {
            let mut select = sqlx::QueryBuilder::<D::Db>::new("SELECT COUNT(*) FROM (");
            Self::push_resolution(
                &mut select,
                plan,
                &include,
                exclude,
                batch,
                false,
                Columns::Phone,
            );
            select.push(") AS r");
            select
        };
        let everyone: i64 = count(&[], &unexcluded)
            .build_query_scalar()
            .fetch_one(&mut *conn)
            .await?;
        let kept: i64 = count(&exclude, &batch)
            .build_query_scalar()
            .fetch_one(&mut *conn)
            .await?;
        let message = MessagePlan::new(&batch.body, batch.parameters.clone(), batch.encoding);
        let quiet = Self::load_sending_settings(&mut conn, plan)
            .await?
            .quiet_hours_for(batch.purpose);
        let mut rows = self
            .recipient_stream(plan, &batch, &message, quiet.is_some())
            .await?;
        let capped = Self::frequency_capped(&mut conn, plan, &batch).await?;
        let mut recorder =
            ChunkRecorder::<D>::dry(plan, &batch.id, 1000, &message, PREVIEW_SAMPLES)
                .with_capped(capped)
                .with_quiet_hours(quiet, Some(chrono::Utc::now()));
        let mut opted_in = 0;
        while let Some(recipient) = futures::TryStreamExt::try_next(&mut rows).await? {
            opted_in += 1;
            recorder.push(&mut conn, recipient).await?;
        }
        let Recorded {
            tally,
            skipped,
            samples,
            held_now,
            ..
        } = recorder.finish(&mut conn).await?;
        Ok(BatchPreview {
            recipients: tally.messages,
            excluded: everyone - kept,
            opted_out: kept - opted_in,
            missing_parameter: skipped.get("missing_parameter").copied().unwrap_or(0),
            frequency_cap: skipped.get("frequency_cap").copied().unwrap_or(0),
            held_now,
            tally,
            samples,
        })
    }

    async fn batch_chunks(&self, plan: &PlanId, id: &BatchId) -> StoreResult<Vec<ChunkRecord>> {
        let mut conn = self.dialect.reader().acquire().await?;
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT chunk, state, sender_state, handed_at FROM batch_chunks \
                 WHERE batch = (SELECT key FROM batches WHERE plan_id = $1 AND id = $2) \
                 ORDER BY chunk",
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
    ) -> StoreResult<ChunkRecipients> {
        let mut conn = self.dialect.reader().acquire().await?;
        let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT phones, placeholder_values, time_zones FROM batch_recipients \
                 WHERE batch = (SELECT key FROM batches WHERE plan_id = $1 AND id = $2) \
                 AND chunk = $3",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(chunk)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((phones, values, time_zones)) = row else {
            return Ok(ChunkRecipients::default());
        };
        let values = values
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|error| StoreError::Database(sqlx::Error::Decode(Box::new(error))))?;
        Ok(ChunkRecipients {
            phones: phones.split('\n').map(str::to_owned).collect(),
            values,
            time_zones: time_zones.as_deref().map(ZoneSet::from_stored),
        })
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
            "INSERT INTO batch_chunks (batch, chunk, state, sender_state, handed_at) \
                 VALUES ((SELECT key FROM batches WHERE plan_id = $1 AND id = $2), $3, \
                 'handing', $4, $5) ON CONFLICT DO NOTHING",
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
                 WHERE batch = (SELECT key FROM batches WHERE plan_id = $2 AND id = $3) \
                 AND chunk = $4 AND state = 'handing'",
        )
        .bind(Timestamp::now().millis())
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(chunk)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // A held chunk handed over is held no more.
        let released: Option<i64> = if marked == 1 {
            sqlx::query_scalar(
                "UPDATE batch_recipients SET held_until = NULL \
                     WHERE batch = (SELECT key FROM batches WHERE plan_id = $1 AND id = $2) \
                     AND chunk = $3 AND held_until IS NOT NULL RETURNING count",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .bind(chunk)
            .fetch_optional(&mut *tx)
            .await?
        } else {
            None
        };
        if let Some(released) = released {
            sqlx::query(
                "UPDATE batches SET held_count = held_count - $1 WHERE plan_id = $2 AND id = $3",
            )
            .bind(released)
            .bind(plan.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        }
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

    async fn hold_batch(
        &self,
        lease: &Lease,
        plan: &PlanId,
        id: &BatchId,
        held: &[(i64, Timestamp)],
        wake: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.dialect.begin_write().await?;
        Self::hold_lease(&mut tx, lease, plan, id, 0).await?;
        for (chunk, until) in held {
            sqlx::query(
                "UPDATE batch_recipients SET held_until = $1 \
                     WHERE batch = (SELECT key FROM batches WHERE plan_id = $2 AND id = $3) \
                     AND chunk = $4",
            )
            .bind(until.millis())
            .bind(plan.as_str())
            .bind(id.as_str())
            .bind(*chunk)
            .execute(&mut *tx)
            .await?;
        }
        // The claim ends until `wake`: a batch whose lease has run out is claimed again.
        sqlx::query(
            "UPDATE batches SET held_count = (SELECT COALESCE(SUM(count), 0) \
                 FROM batch_recipients WHERE batch = batches.key AND held_until IS NOT NULL), \
                 held_until = (SELECT MIN(held_until) FROM batch_recipients \
                 WHERE batch = batches.key), \
                 lease_owner = NULL, lease_until = $3, modified_at = $4 \
                 WHERE plan_id = $1 AND id = $2",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(wake.millis())
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
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
                 lease_until = NULL, modified_at = $3, completed_at = $3, held_count = 0, \
                 held_until = NULL WHERE plan_id = $4 AND id = $5",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(now)
        .bind(plan.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        let kind = match status {
            BatchStatus::Sent => Some(EventType::BatchSent),
            BatchStatus::Failed => Some(EventType::BatchFailed),
            _ => None,
        };
        if let Some(kind) = kind {
            let data = serde_json::json!({"batch_id": id.as_str(), "status": status.as_str(), "error": error});
            Self::emit(&mut tx, plan, Event::new(kind, id, data)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_delivery_reports(
        &self,
        plan: &PlanId,
        by: &Actor,
        reports: &[DeliveryReport],
        opt_out: &OptOutCodes,
    ) -> StoreResult<ReportOutcome> {
        self.write_delivery_reports(plan, by, reports, opt_out)
            .await
    }

    async fn report_groups(
        &self,
        plan: &PlanId,
        id: &BatchId,
        with_recipients: bool,
    ) -> StoreResult<Vec<ReportGroup>> {
        self.read_report_groups(plan, id, with_recipients).await
    }

    async fn recipient_report(
        &self,
        plan: &PlanId,
        id: &BatchId,
        phone: &str,
    ) -> StoreResult<Option<ReportState>> {
        let mut conn = self.dialect.reader().acquire().await?;
        Ok(Self::report_states(&mut conn, plan, id, &[phone])
            .await?
            .remove(phone))
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
