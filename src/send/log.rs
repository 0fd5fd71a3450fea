//! The `log` sender: every message as one JSON line appended to a file. The default, for
//! development and for platforms that pick the file up themselves.
//!
//! Each chunk is one `write` to a file opened for appending, followed by `fdatasync`, so that
//! chunks of several workers or instances sharing the file never interleave. After a crash the
//! lines written since the offset recorded before the hand-off tell which recipients are there.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Chunk, SendError, Sender};
use crate::domain::time::Timestamp;

pub struct LogSender {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

/// One message, as a line of the file.
#[derive(Serialize, Deserialize)]
pub struct LogLine {
    pub plan_id: String,
    pub batch_id: String,
    pub chunk: i64,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_reference: Option<String>,
    pub logged_at: String,
}

#[derive(Serialize, Deserialize)]
struct Location {
    file: PathBuf,
    offset: u64,
}

impl LogSender {
    /// Opens (or creates) the file. A line cut short by a crash is ended first, so that the next
    /// line starts on a line of its own.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        let length = file.metadata()?.len();
        if length > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(length - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        let path = std::path::absolute(path)?;
        Ok(Self {
            path,
            file: Arc::new(Mutex::new(file)),
        })
    }

    fn lines(chunk: &Chunk<'_>) -> Result<Vec<u8>, SendError> {
        let batch = chunk.batch;
        let logged_at = Timestamp::now().to_rfc3339();
        let mut buffer =
            Vec::with_capacity(chunk.recipients.len() * (chunk.bodies.get(0).len() + 160));
        for (index, to) in chunk.recipients.iter().enumerate() {
            let line = LogLine {
                plan_id: batch.plan_id.to_string(),
                batch_id: batch.id.to_string(),
                chunk: chunk.index,
                to: to.clone(),
                from: batch.from.clone(),
                body: chunk.bodies.get(index).to_owned(),
                client_reference: batch.client_reference.clone(),
                logged_at: logged_at.clone(),
            };
            serde_json::to_writer(&mut buffer, &line)
                .map_err(|error| SendError::permanent(format!("cannot encode a line: {error}")))?;
            buffer.push(b'\n');
        }
        Ok(buffer)
    }
}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> SendError {
    SendError::retryable(format!("{what} {}: {error}", path.display()))
}

#[async_trait]
impl Sender for LogSender {
    async fn locate(&self, _chunk: &Chunk<'_>) -> Result<String, SendError> {
        let file = self.file.clone();
        let offset = tokio::task::spawn_blocking(move || {
            let file = file
                .lock()
                .map_err(|_| std::io::Error::other("log lock poisoned"))?;
            file.metadata().map(|metadata| metadata.len())
        })
        .await
        .map_err(|error| SendError::retryable(error.to_string()))?
        .map_err(|error| io_error("cannot read the size of", &self.path, error))?;
        serde_json::to_string(&Location {
            file: self.path.clone(),
            offset,
        })
        .map_err(|error| SendError::permanent(error.to_string()))
    }

    async fn deliver(&self, chunk: &Chunk<'_>) -> Result<(), SendError> {
        let buffer = Self::lines(chunk)?;
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = file
                .lock()
                .map_err(|_| std::io::Error::other("log lock poisoned"))?;
            file.write_all(&buffer)?;
            file.sync_data()
        })
        .await
        .map_err(|error| SendError::retryable(error.to_string()))?
        .map_err(|error| io_error("cannot write to", &self.path, error))
    }

    async fn missing(
        &self,
        chunk: &Chunk<'_>,
        located: &str,
        _handed_at: Timestamp,
    ) -> Result<Vec<String>, SendError> {
        let location: Location = serde_json::from_str(located)
            .map_err(|error| SendError::permanent(format!("unreadable chunk record: {error}")))?;
        let batch_id = chunk.batch.id.to_string();
        let index = chunk.index;
        let recipients = chunk.recipients.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut file = match File::open(&location.file) {
                Ok(file) => file,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(recipients);
                }
                Err(error) => return Err(io_error("cannot open", &location.file, error)),
            };
            file.seek(SeekFrom::Start(location.offset))
                .map_err(|error| io_error("cannot read", &location.file, error))?;
            let mut logged = std::collections::HashSet::new();
            for line in BufReader::new(file).split(b'\n') {
                let line = line.map_err(|error| io_error("cannot read", &location.file, error))?;
                // A line cut short by a crash does not parse: its message counts as not sent.
                if let Ok(line) = serde_json::from_slice::<LogLine>(&line)
                    && line.batch_id == batch_id
                    && line.chunk == index
                {
                    logged.insert(line.to);
                }
            }
            Ok(recipients
                .into_iter()
                .filter(|to| !logged.contains(to))
                .collect())
        })
        .await
        .map_err(|error| SendError::retryable(error.to_string()))?
    }
}
