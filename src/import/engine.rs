//! The import itself: a reader thread turns the file's rows into contacts (or rejections) and
//! hands them in chunks to the store, which writes them in one transaction as they arrive.
//! Memory stays at a few chunks whatever the file's size.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::mapping::Mapping;
use super::read::{self, Detected, ReadError};
use super::rows::{RowOutcome, RowReader};
use crate::domain::ids::PlanId;
use crate::domain::msisdn::RegionCode;
use crate::store::{
    BusyCause, ImportMessage, ImportReport, ImportWrite, RejectedRow, Store, StoreError,
};

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

/// How many times an import that PostgreSQL stopped for another write (a deadlock with a delete
/// of the same contacts, say) starts over before it fails. It was rolled back whole, which lets
/// the other write finish, so the next pass seldom meets it again.
const START_OVER: usize = 3;

/// The pause before starting over, longer each time.
const START_OVER_PAUSE: Duration = Duration::from_millis(200);

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

/// Sees every rejected row as it is read.
pub trait RejectedRows: Send {
    fn see(&mut self, row: &RejectedRow);
    /// The import starts over from its first row, which will be seen again: forget those seen.
    fn start_over(&mut self);
}

type SeeRejected = Arc<Mutex<Option<Box<dyn RejectedRows>>>>;

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
    pub on_rejected: Option<Box<dyn RejectedRows>>,
}

/// Runs the import, starting over (up to [`START_OVER`] times) when PostgreSQL stops it for
/// another write changing the same rows: the report then says so.
pub async fn run(store: Arc<dyn Store>, job: ImportJob) -> Result<ImportReport, ImportError> {
    let on_rejected: SeeRejected = Arc::new(Mutex::new(job.on_rejected));
    let mut pass = Pass {
        plan: job.plan,
        file: job.file,
        detected: job.detected,
        sheet: job.sheet,
        mapping: job.mapping,
        region: job.region,
        write: job.write,
        progress: job.progress,
        on_rejected,
        stopped: Vec::new(),
    };
    loop {
        match pass.run(store.clone()).await {
            Err(ImportError::Store(StoreError::Busy {
                cause: BusyCause::Deadlock { sqlstate },
                ..
            })) if pass.stopped.len() < START_OVER => {
                tracing::warn!(
                    plan = %pass.plan,
                    sqlstate,
                    "PostgreSQL stopped the import for another write; starting over"
                );
                pass.stopped.push(sqlstate);
                pass.progress.store(0, Ordering::Relaxed);
                if let Some(rows) = lock(&pass.on_rejected).as_mut() {
                    rows.start_over();
                }
                tokio::time::sleep(START_OVER_PAUSE * pass.stopped.len() as u32).await;
            }
            outcome => return outcome,
        }
    }
}

/// One pass of an import through its file, in one transaction.
struct Pass {
    plan: PlanId,
    file: PathBuf,
    detected: Detected,
    sheet: Option<String>,
    mapping: Mapping,
    region: Option<RegionCode>,
    write: ImportWrite,
    progress: Arc<AtomicU64>,
    on_rejected: SeeRejected,
    /// Why the passes before this one were stopped (PostgreSQL's codes).
    stopped: Vec<&'static str>,
}

impl Pass {
    async fn run(&self, store: Arc<dyn Store>) -> Result<ImportReport, ImportError> {
        let (sender, receiver) = mpsc::channel(2);
        // Invalid rows are seen by the reader, numbers met again by the store.
        let reader = {
            let (file, detected, sheet) =
                (self.file.clone(), self.detected.clone(), self.sheet.clone());
            let (mapping, region) = (self.mapping.clone(), self.region);
            let (progress, on_rejected) = (self.progress.clone(), self.on_rejected.clone());
            let notes = self.started_over_note().into_iter().collect();
            tokio::task::spawn_blocking(move || {
                let source = Source {
                    file: &file,
                    detected: &detected,
                    sheet: sheet.as_deref(),
                };
                read_rows(
                    source,
                    mapping,
                    region,
                    notes,
                    &progress,
                    &on_rejected,
                    &sender,
                )
            })
        };
        let mut see_duplicate = |row: &RejectedRow| see(&self.on_rejected, row);
        let written = store
            .write_import(&self.plan, self.write.clone(), receiver, &mut see_duplicate)
            .await;
        // The reader's failure explains the writer's ("abandoned"); report it first.
        match reader.await {
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(ImportError::ReaderPanicked),
            Ok(Ok(())) => {}
        }
        Ok(written?)
    }

    /// The report's word on the passes stopped before this one, if any.
    fn started_over_note(&self) -> Option<String> {
        let codes = self.stopped.join(", ");
        match self.stopped.len() {
            0 => None,
            1 => Some(format!(
                "PostgreSQL stopped this import once for another write changing the same \
                 contacts at the same moment (SQLSTATE {codes}): nothing of it was kept, and it \
                 started over from the first row"
            )),
            times => Some(format!(
                "PostgreSQL stopped this import {times} times for other writes changing the same \
                 contacts at the same moment (SQLSTATE {codes}): nothing of it was kept, and it \
                 started over from the first row each time"
            )),
        }
    }
}

/// Reads every row, sending chunks of contacts and rejections, then the reader's report.
/// Returns early (without `Finish`) when the file cannot be read on, or the writer has gone.
fn read_rows(
    source: Source<'_>,
    mapping: Mapping,
    region: Option<RegionCode>,
    notes: Vec<String>,
    progress: &AtomicU64,
    on_rejected: &SeeRejected,
    sender: &mpsc::Sender<ImportMessage>,
) -> Result<(), ImportError> {
    let table = read::open(
        std::fs::File::open(source.file)?,
        source.detected,
        source.sheet,
    )?;
    let mut rows = RowReader::new(mapping, region);
    let mut report = ImportReport {
        warnings: notes,
        ..ImportReport::default()
    };
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

fn see(on_rejected: &SeeRejected, row: &RejectedRow) {
    if let Some(rows) = lock(on_rejected).as_mut() {
        rows.see(row);
    }
}

fn lock(on_rejected: &SeeRejected) -> std::sync::MutexGuard<'_, Option<Box<dyn RejectedRows>>> {
    on_rejected
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
