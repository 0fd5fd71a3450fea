//! An import's rows made ready off the writer's thread. What a chunk needs no database for —
//! setting aside a number met again within the chunk, making each new contact's values and
//! binding them into the statement that inserts them — runs on a thread of its own, one chunk
//! ahead of the writer, so that the writer's connection is busy with SQL rather than waiting
//! for it (docs/BENCHMARKS.md, storage v2 step 13).

use super::*;

/// Chunks made ready before the writer takes them: one is written while the next is made
/// (more ahead held memory, not time: the writer is the slowest stage).
const PREPARED_AHEAD: usize = 1;

/// The ids of the contacts one import creates: consecutive ULIDs from a random start, so that a
/// number met again later in the file is known to be this import's own by its contact's id,
/// without keeping the file's numbers in memory.
#[derive(Clone)]
pub(crate) struct ImportedIds {
    first: ulid::Ulid,
    next: ulid::Ulid,
}

impl ImportedIds {
    pub fn new() -> Self {
        let start = ulid::Ulid::new();
        // The top random bit cleared leaves 2^79 ids to count through before the random part
        // would overflow into the timestamp.
        let random = start.random() & ((1u128 << 79) - 1);
        let first = ulid::Ulid::from_parts(start.timestamp_ms(), random);
        Self { first, next: first }
    }

    pub fn generate(&mut self) -> ContactId {
        let id = self.next;
        self.next = ulid::Ulid(id.0 + 1);
        ContactId::from_trusted(id.to_string())
    }

    /// Whether this import created the contact with `id`. Another writer would have to draw
    /// the same millisecond and an 80-bit random part within this import's range.
    pub fn created(&self, id: &str) -> bool {
        ulid::Ulid::from_string(id).is_ok_and(|id| self.first <= id && id < self.next)
    }
}

/// A chunk of an import's rows, ready for the writer.
pub(crate) struct PreparedRows<D: Dialect> {
    /// The chunk's rows, each number once.
    pub rows: Vec<ImportRow>,
    /// Rows whose number came earlier in the same chunk.
    pub duplicates: Vec<RejectedRow>,
    /// Each row as a new contact, in the order of `rows`.
    pub fresh: Vec<ContactValues>,
    /// `fresh` bound for `Dialect::insert_import_contacts`.
    pub insert: D::NewContacts,
    /// The key of `fresh`'s first contact, where the dialect gives keys.
    pub first_key: Option<i64>,
    /// The plan's key, to bind `fresh` again if the writer leaves some out.
    pub plan: i64,
    /// The ids given so far, this chunk's included.
    pub ids: ImportedIds,
}

/// What the writer receives: the reader's messages, with chunks of rows made ready.
pub(crate) enum Prepared<D: Dialect> {
    Rows(PreparedRows<D>),
    Rejected(Vec<RejectedRow>),
    Finish(ImportReport),
}

/// Makes an import's chunks ready, in the file's order.
pub(crate) struct ImportPreparer {
    plan: i64,
    ids: ImportedIds,
    next_key: Option<i64>,
    now: i64,
}

impl ImportPreparer {
    /// `next_key` is the key of the first contact the import would insert, where the dialect
    /// gives keys (`Dialect::next_contact_key`).
    pub fn new(plan: i64, next_key: Option<i64>, now: i64) -> Self {
        Self {
            plan,
            ids: ImportedIds::new(),
            next_key,
            now,
        }
    }

    /// Starts making ready `first` and what follows it in `messages` on a thread of its own.
    /// It stops at the end of the messages or when the writer stops taking them.
    pub fn start<D: Dialect>(
        mut self,
        first: ImportMessage,
        mut messages: tokio::sync::mpsc::Receiver<ImportMessage>,
    ) -> tokio::sync::mpsc::Receiver<Prepared<D>> {
        let (sender, prepared) = tokio::sync::mpsc::channel(PREPARED_AHEAD);
        tokio::task::spawn_blocking(move || {
            let mut next = Some(first);
            while let Some(message) = next.take().or_else(|| messages.blocking_recv()) {
                let ready = match message {
                    ImportMessage::Rows(rows) => Prepared::Rows(self.prepare::<D>(rows)),
                    ImportMessage::Rejected(rows) => Prepared::Rejected(rows),
                    ImportMessage::Finish(report) => Prepared::Finish(report),
                };
                if sender.blocking_send(ready).is_err() {
                    return;
                }
            }
        });
        prepared
    }

    fn prepare<D: Dialect>(&mut self, rows: Vec<ImportRow>) -> PreparedRows<D> {
        let mut duplicates = Vec::new();
        let mut in_chunk = std::collections::HashSet::with_capacity(rows.len());
        let rows: Vec<ImportRow> = rows
            .into_iter()
            .filter(|row| {
                let first = in_chunk.insert(row.phone.msisdn.as_str().to_owned());
                if !first {
                    duplicates.push(duplicate_row(row));
                }
                first
            })
            .collect();
        let fresh: Vec<ContactValues> = rows
            .iter()
            .map(|row| new_contact(row, self.ids.generate(), self.now))
            .collect();
        let first_key = self.next_key;
        if let Some(next) = &mut self.next_key {
            *next += fresh.len() as i64;
        }
        let insert = D::bind_import_contacts(self.plan, &fresh, first_key, self.now);
        PreparedRows {
            rows,
            duplicates,
            fresh,
            insert,
            first_key,
            plan: self.plan,
            ids: self.ids.clone(),
        }
    }
}

/// A row as a new contact of the import.
pub(crate) fn new_contact(row: &ImportRow, id: ContactId, now: i64) -> ContactValues {
    let first_name = row.first_name.as_ref().map(|n| n.as_str().to_owned());
    let last_name = row.last_name.as_ref().map(|n| n.as_str().to_owned());
    let (sort_name, sort_name_last) =
        stored_sort_names(first_name.as_deref(), last_name.as_deref());
    let opted_out = row.opted_out == Some(true);
    ContactValues {
        id,
        phone: row.phone.msisdn.as_str().to_owned(),
        first_name,
        last_name,
        email: row.email.as_ref().map(|e| e.as_str().to_owned()),
        gender: row.gender.as_ref().map(|g| g.as_str().to_owned()),
        time_zone: row.time_zone.as_ref().map(|z| z.as_str().to_owned()),
        fields: serde_json::Value::Object(row.fields.clone()).to_string(),
        number_type: Some(row.phone.number_type.code()),
        country: row.phone.country.clone(),
        sort_name,
        sort_name_last,
        opted_out,
        opted_out_at: opted_out.then_some(now),
        opted_out_reason: opted_out.then(|| IMPORT_OPT_OUT_REASON.to_owned()),
    }
}

/// A row left out because its number came in an earlier row.
pub(crate) fn duplicate_row(row: &ImportRow) -> RejectedRow {
    RejectedRow {
        row: row.row,
        reason: format!(
            "phone: {} is already in an earlier row of the file (only the first is imported)",
            row.phone.msisdn.as_str()
        ),
    }
}
