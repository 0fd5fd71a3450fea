//! The import itself: a reader thread turns the file's rows into contacts (or rejections) and
//! hands them in chunks to the store, which writes them in one transaction as they arrive.
//! Memory stays at a few chunks whatever the file's size.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::mapping::Mapping;
use super::read::{self, Detected, ReadError};
use super::rows::{RowOutcome, RowReader};
use crate::domain::ids::PlanId;
use crate::domain::msisdn::RegionCode;
use crate::store::{ImportMessage, ImportReport, ImportWrite, RejectedRow, Store, StoreError};

/// The file being read.
struct Source<'a> {
    file: &'a std::path::Path,
    detected: &'a Detected,
    sheet: Option<&'a str>,
}

/// Rows per chunk handed to the store: large enough for set-based statements to pay off,
/// small enough that a chunk's values are a few hundred kilobytes.
const CHUNK_ROWS: usize = 5000;

/// Warnings listed in a report before the rest are only counted.
const MAX_WARNINGS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("the file could not be opened: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the reader stopped unexpectedly")]
    ReaderPanicked,
}

/// Called with every rejected row as it is read.
pub type SeeRejected = Box<dyn FnMut(&RejectedRow) + Send>;

/// What to import and how.
pub struct ImportJob {
    pub plan: PlanId,
    pub file: PathBuf,
    pub detected: Detected,
    pub sheet: Option<String>,
    pub mapping: Mapping,
    pub region: Option<RegionCode>,
    pub write: ImportWrite,
    /// Data rows read so far, for progress reports.
    pub progress: Arc<AtomicU64>,
    /// Sees every rejected row as it is read (the command line lists them; the API's are
    /// stored with the import).
    pub on_rejected: Option<SeeRejected>,
}

pub async fn run(store: Arc<dyn Store>, job: ImportJob) -> Result<ImportReport, ImportError> {
    let (sender, receiver) = mpsc::channel(2);
    let ImportJob {
        plan,
        file,
        detected,
        sheet,
        mapping,
        region,
        write,
        progress,
        on_rejected,
    } = job;
    // Invalid rows are seen by the reader, numbers met again by the store.
    let on_rejected = Arc::new(Mutex::new(on_rejected));
    let see_invalid = on_rejected.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let source = Source {
            file: &file,
            detected: &detected,
            sheet: sheet.as_deref(),
        };
        read_rows(source, mapping, region, &progress, &see_invalid, &sender)
    });
    let mut see_duplicate = |row: &RejectedRow| see(&on_rejected, row);
    let written = store
        .write_import(&plan, write, receiver, &mut see_duplicate)
        .await;
    // The reader's failure explains the writer's ("abandoned"); report it first.
    match reader.await {
        Ok(Err(error)) => return Err(error),
        Err(_) => return Err(ImportError::ReaderPanicked),
        Ok(Ok(())) => {}
    }
    Ok(written?)
}

/// Reads every row, sending chunks of contacts and rejections, then the reader's report.
/// Returns early (without `Finish`) when the file cannot be read on, or the writer has gone.
fn read_rows(
    source: Source<'_>,
    mapping: Mapping,
    region: Option<RegionCode>,
    progress: &AtomicU64,
    on_rejected: &Mutex<Option<SeeRejected>>,
    sender: &mpsc::Sender<ImportMessage>,
) -> Result<(), ImportError> {
    let table = read::open(
        std::fs::File::open(source.file)?,
        source.detected,
        source.sheet,
    )?;
    let mut rows = RowReader::new(mapping, region);
    let mut report = ImportReport::default();
    let mut contacts = Vec::with_capacity(CHUNK_ROWS);
    let mut rejected = Vec::new();
    for item in table.rows {
        let outcome = match item {
            Ok(source) => rows.read(source),
            Err(error) => match error.row() {
                // A row the reader could not make sense of is rejected like an invalid one.
                Some(row) => RowOutcome::Invalid(RejectedRow {
                    row,
                    reason: error.to_string(),
                }),
                None => return Err(error.into()),
            },
        };
        report.rows += 1;
        progress.store(report.rows, Ordering::Relaxed);
        match outcome {
            RowOutcome::Contact(contact) => contacts.push(contact),
            RowOutcome::Invalid(row) => {
                see(on_rejected, &row);
                report.invalid += 1;
                rejected.push(row);
            }
        }
        if contacts.len() == CHUNK_ROWS {
            let chunk = std::mem::replace(&mut contacts, Vec::with_capacity(CHUNK_ROWS));
            if sender.blocking_send(ImportMessage::Rows(chunk)).is_err() {
                return Ok(());
            }
        }
        if rejected.len() == CHUNK_ROWS {
            let chunk = std::mem::take(&mut rejected);
            if sender
                .blocking_send(ImportMessage::Rejected(chunk))
                .is_err()
            {
                return Ok(());
            }
        }
    }
    if rows.numeric_phones > 0 {
        report.warnings.push(format!(
            "{} phone numbers were stored in the spreadsheet as numbers, not text: a leading 0 or + \
             may have been lost (format the phone column as text to be sure)",
            rows.numeric_phones
        ));
    }
    report.warnings.truncate(MAX_WARNINGS);
    for message in [
        ImportMessage::Rows(contacts),
        ImportMessage::Rejected(rejected),
        ImportMessage::Finish(report),
    ] {
        if sender.blocking_send(message).is_err() {
            break;
        }
    }
    Ok(())
}

fn see(on_rejected: &Mutex<Option<SeeRejected>>, row: &RejectedRow) {
    if let Some(see) = on_rejected
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_mut()
    {
        see(row);
    }
}
