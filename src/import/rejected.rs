//! An import's rejected rows as its file had them: the row number and the reason, then the row's
//! own cells under the file's own headers, so that the rows can be corrected and uploaded again.

use std::io::Write;
use std::sync::Arc;

use axum::body::Bytes;
use futures::Stream;
use tokio::sync::mpsc;

use super::read::{self, Table};
use crate::domain::ids::{ImportId, PlanId};
use crate::store::{ImportSource, RejectedRow, Store, StoreError};

/// Rejected rows read from the store at a time.
const PAGE: i64 = 5000;

/// The uploaded file (a copy of it), opened as the import read it; `None` if it cannot be read
/// (the caller then lists numbers and reasons only).
pub async fn open(file: tempfile::NamedTempFile, source: ImportSource) -> Option<OpenFile> {
    tokio::task::spawn_blocking(move || {
        let opened = std::fs::File::open(file.path()).ok()?;
        match read::open(opened, &source.detected, source.sheet.as_deref()) {
            Ok(table) => Some(OpenFile { table, _file: file }),
            Err(error) => {
                tracing::warn!(%error, "an import's kept file no longer reads");
                None
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// An uploaded file being read, kept on disk while it is.
pub struct OpenFile {
    table: Table,
    _file: tempfile::NamedTempFile,
}

/// The CSV of a done import's rejected rows with their cells, read from `file` on a blocking
/// thread as the stream is read. A failure part-way ends the stream with an error, so that the
/// download is seen to be cut short.
pub fn stream(
    store: Arc<dyn Store>,
    plan: PlanId,
    id: ImportId,
    file: OpenFile,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let (sender, receiver) = mpsc::channel(8);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut failure: Option<StoreError> = None;
        let mut after = 0i64;
        let mut page = Vec::new().into_iter();
        let rejected = std::iter::from_fn(|| {
            if let Some(row) = page.next() {
                return Some(row);
            }
            if failure.is_some() || after < 0 {
                return None;
            }
            match runtime.block_on(store.import_errors(&plan, &id, after, PAGE)) {
                Ok(rows) => {
                    // A short page is the last one.
                    after = match rows.last() {
                        Some(last) if rows.len() as i64 == PAGE => last.row as i64,
                        _ => -1,
                    };
                    page = rows.into_iter();
                    page.next()
                }
                Err(error) => {
                    failure = Some(error);
                    None
                }
            }
        });
        let out = ChannelWriter {
            sender: sender.clone(),
            buffer: Vec::with_capacity(CHUNK_BYTES),
        };
        let OpenFile { table, _file } = file;
        let written = write_rejected(table, rejected, out);
        let problem = match (written, failure) {
            (_, Some(error)) => Some(error.to_string()),
            // The client went away: nothing to report.
            (Err(_), None) if sender.is_closed() => None,
            (Err(error), None) => Some(error.to_string()),
            (Ok(()), None) => None,
        };
        if let Some(problem) = problem {
            tracing::error!(import = %id, %problem, "the rejected rows could not be written");
            let _ = sender.blocking_send(Err(std::io::Error::other(problem)));
        }
    });
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

/// Bytes sent on in chunks of about this size.
const CHUNK_BYTES: usize = 64 * 1024;

/// A writer into the response's channel; fails once the client has gone.
struct ChannelWriter {
    sender: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

/// The columns put before the file's own. A file that carries them (one downloaded here,
/// corrected and uploaded again) has them ignored by the suggested mapping.
pub const REPORT_COLUMNS: [&str; 2] = ["Rejected row", "Rejected because"];

/// Writes each rejected row (in row order) with its cells from `table`; a row the reader could
/// not read has its number and reason only.
pub fn write_rejected(
    table: Table,
    rejected: impl Iterator<Item = RejectedRow>,
    out: impl Write,
) -> csv::Result<()> {
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(out);
    writer.write_record(
        REPORT_COLUMNS
            .iter()
            .copied()
            .chain(table.headers.iter().map(String::as_str)),
    )?;
    let mut rows = table.rows.filter_map(Result::ok).peekable();
    for reject in rejected {
        while rows.next_if(|row| row.number < reject.row).is_some() {}
        let number = reject.row.to_string();
        let mut record = vec![number.as_str(), reject.reason.as_str()];
        let cells: Vec<String> = match rows.peek().filter(|row| row.number == reject.row) {
            // A cell a spreadsheet would run as a formula is defused, as in an export (an
            // import drops the apostrophe again).
            Some(row) => row
                .cells
                .iter()
                .map(|cell| crate::export::defuse(cell.text.clone()))
                .collect(),
            None => Vec::new(),
        };
        record.extend(cells.iter().map(String::as_str));
        writer.write_record(&record)?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::read;

    #[test]
    fn rejected_rows_keep_their_cells() {
        let file = "Mobile;Name\n+14155550100;Ada\nnope;Bo\n+14155550100;Cy\n\n0;=HYPERLINK(1)\n";
        let mut cursor = std::io::Cursor::new(file.as_bytes().to_vec());
        let detected = read::detect(&mut cursor, Some("rows.csv")).unwrap();
        let table = read::open(
            std::io::Cursor::new(file.as_bytes().to_vec()),
            &detected,
            None,
        )
        .unwrap();
        let rejected = [
            RejectedRow {
                row: 3,
                reason: "not a phone number".into(),
            },
            RejectedRow {
                row: 4,
                reason: "the number of row 2".into(),
            },
            RejectedRow {
                row: 6,
                reason: "too short".into(),
            },
            RejectedRow {
                row: 9,
                reason: "unreadable".into(),
            },
        ];
        let mut out = Vec::new();
        write_rejected(table, rejected.into_iter(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Rejected row,Rejected because,Mobile,Name\n\
             3,not a phone number,nope,Bo\n\
             4,the number of row 2,+14155550100,Cy\n\
             6,too short,0,'=HYPERLINK(1)\n\
             9,unreadable\n"
        );
    }
}
