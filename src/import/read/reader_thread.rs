//! Rows read on a thread of their own. The spreadsheet readers hold an archive entry that borrows
//! the archive, so they cannot be returned inside an iterator; a thread owns both and hands rows
//! over a bounded channel, which keeps memory constant. The thread ends when the rows run out or
//! the receiver is dropped.
//!
//! Rows travel in batches: handed over one at a time, waking the other thread for each row cost
//! more than reading it (a profile of a million-row XLSX preview: most of its time in futex calls).

use std::cell::RefCell;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::ReadError;
use super::SourceRow;
use super::columns::Rows;

/// Batches a reader thread may read ahead of the consumer.
const READ_AHEAD_BATCHES: usize = 4;
/// A batch is handed over at this many rows or this many bytes of text, whichever comes first:
/// memory in flight stays at a few megabytes even when every row is as long as a row may be.
const BATCH_ROWS: usize = 256;
const BATCH_BYTES: usize = 1024 * 1024;

type Batch = Vec<Result<SourceRow, ReadError>>;

enum Message {
    Rows(Batch),
    Done,
}

/// Where a reader thread sends its rows.
pub(super) struct RowSender {
    channel: SyncSender<Message>,
    batch: RefCell<(Batch, usize)>,
}

impl RowSender {
    /// `false` once the consumer is gone: the reader should stop.
    pub(super) fn send(&self, row: Result<SourceRow, ReadError>) -> bool {
        let full = {
            let mut batch = self.batch.borrow_mut();
            let bytes = row.as_ref().map_or(0, |row| {
                row.cells.iter().map(|cell| cell.text.len()).sum::<usize>()
            });
            batch.1 += bytes;
            batch.0.push(row);
            batch.0.len() >= BATCH_ROWS || batch.1 >= BATCH_BYTES
        };
        !full || self.flush()
    }

    fn flush(&self) -> bool {
        let batch = std::mem::take(&mut *self.batch.borrow_mut()).0;
        batch.is_empty() || self.channel.send(Message::Rows(batch)).is_ok()
    }
}

/// Runs `read` on a new thread and returns the rows it sends. Whatever way `read` ends, the rows
/// end with it; an error it returns is the last item.
pub(super) fn spawn_rows(
    name: &str,
    read: impl FnOnce(&RowSender) -> Result<(), ReadError> + Send + 'static,
) -> Result<Rows, ReadError> {
    let (channel, receiver) = sync_channel(READ_AHEAD_BATCHES);
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let sender = RowSender {
                channel,
                batch: RefCell::default(),
            };
            if let Err(error) = read(&sender) {
                sender.send(Err(error));
            }
            if sender.flush() {
                let _ = sender.channel.send(Message::Done);
            }
        })?;
    Ok(Box::new(ChannelRows {
        receiver,
        batch: Vec::new().into_iter(),
        done: false,
    }))
}

struct ChannelRows {
    receiver: Receiver<Message>,
    batch: std::vec::IntoIter<Result<SourceRow, ReadError>>,
    done: bool,
}

impl Iterator for ChannelRows {
    type Item = Result<SourceRow, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if let Some(row) = self.batch.next() {
                // After an error for the whole file, nothing more is read.
                self.done = row.as_ref().is_err_and(ReadError::is_fatal);
                return Some(row);
            }
            match self.receiver.recv() {
                Ok(Message::Rows(batch)) => self.batch = batch.into_iter(),
                Ok(Message::Done) => self.done = true,
                // The reader thread died without saying it was done: a panic in the parser.
                Err(_) => {
                    self.done = true;
                    return Some(Err(ReadError::Spreadsheet(
                        "the spreadsheet is malformed; reading stopped".to_owned(),
                    )));
                }
            }
        }
    }
}
