//! Rows read on a thread of their own. The spreadsheet readers hold an archive entry that borrows
//! the archive, so they cannot be returned inside an iterator; a thread owns both and hands rows
//! over a bounded channel, which keeps memory constant. The thread ends when the rows run out or
//! the receiver is dropped.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::ReadError;
use super::SourceRow;
use super::columns::Rows;

/// Rows a reader thread may read ahead of the consumer.
const READ_AHEAD_ROWS: usize = 256;

enum Message {
    Row(Result<SourceRow, ReadError>),
    Done,
}

/// Where a reader thread sends its rows.
pub(super) struct RowSender(SyncSender<Message>);

impl RowSender {
    /// `false` once the consumer is gone: the reader should stop.
    pub(super) fn send(&self, row: Result<SourceRow, ReadError>) -> bool {
        self.0.send(Message::Row(row)).is_ok()
    }
}

/// Runs `read` on a new thread and returns the rows it sends. Whatever way `read` ends, the rows
/// end with it; an error it returns is the last item.
pub(super) fn spawn_rows(
    name: &str,
    read: impl FnOnce(&RowSender) -> Result<(), ReadError> + Send + 'static,
) -> Result<Rows, ReadError> {
    let (sender, receiver) = sync_channel(READ_AHEAD_ROWS);
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let sender = RowSender(sender);
            if let Err(error) = read(&sender) {
                sender.send(Err(error));
            }
            let _ = sender.0.send(Message::Done);
        })?;
    Ok(Box::new(ChannelRows {
        receiver,
        done: false,
    }))
}

struct ChannelRows {
    receiver: Receiver<Message>,
    done: bool,
}

impl Iterator for ChannelRows {
    type Item = Result<SourceRow, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.receiver.recv() {
            Ok(Message::Row(row)) => {
                // After an error for the whole file, nothing more is read.
                self.done = row.as_ref().is_err_and(ReadError::is_fatal);
                Some(row)
            }
            Ok(Message::Done) => {
                self.done = true;
                None
            }
            // The reader thread died without saying it was done: a panic in the parser.
            Err(_) => {
                self.done = true;
                Some(Err(ReadError::Spreadsheet(
                    "the spreadsheet is malformed; reading stopped".to_owned(),
                )))
            }
        }
    }
}
