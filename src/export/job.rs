//! An export requested through the API: contacts read from one query, staged, rendered, and
//! stored in pieces that any instance can stream back; the claim is renewed while it runs.

use std::io::{Read, Seek};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::{ExportError, ExportFormat, Stager};
use crate::domain::ids::{ExportId, PlanId};
use crate::import::job::{Progress, RENEW_EVERY};
use crate::store::{ContactQuery, Lease, Store, StoreError};

const PIECE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the export's writer stopped unexpectedly")]
    WriterPanicked,
}

pub fn spawn(
    store: Arc<dyn Store>,
    progress: Arc<Progress>,
    plan: PlanId,
    id: ExportId,
    query: ContactQuery,
    format: ExportFormat,
    lease: Lease,
) {
    let rows = progress.start(id.as_str());
    tokio::spawn(async move {
        let outcome = run(&store, &plan, &id, &query, format, &lease, rows).await;
        let finish = match outcome {
            Ok(done) => store.finish_export(&plan, &id, &lease, Ok(done)).await,
            Err(error) => {
                tracing::warn!(export = %id, %error, "export failed");
                store
                    .finish_export(&plan, &id, &lease, Err(error.to_string()))
                    .await
            }
        };
        if let Err(error) = finish {
            tracing::error!(export = %id, %error, "could not record the export's end");
        }
        progress.finish(id.as_str());
    });
}

/// Returns the rows written and the file's size.
async fn run(
    store: &Arc<dyn Store>,
    plan: &PlanId,
    id: &ExportId,
    query: &ContactQuery,
    format: ExportFormat,
    lease: &Lease,
    rows: Arc<AtomicU64>,
) -> Result<(i64, i64), JobError> {
    let (sender, mut receiver) = mpsc::channel(4);
    let counted = rows.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<_, ExportError> {
        let mut stager = Stager::new()?;
        while let Some(chunk) = receiver.blocking_recv() {
            for contact in chunk {
                stager.push(contact)?;
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let count = stager.count();
        let mut file = tempfile::tempfile()?;
        stager.render(format, &mut file)?;
        let size = file.seek(std::io::SeekFrom::End(0))?;
        file.rewind()?;
        Ok((file, count, size))
    });
    let produce = store.export_contacts(plan, query, sender);
    let heartbeat = async {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let written = rows.load(Ordering::Relaxed) as i64;
            if let Err(error) = store.append_export(plan, id, lease, 0, &[], written).await {
                return error;
            }
        }
    };
    let work = async {
        produce.await?;
        writer
            .await
            .map_err(|_| JobError::WriterPanicked)?
            .map_err(JobError::from)
    };
    let (mut file, count, size) = tokio::select! {
        done = work => done?,
        lost = heartbeat => return Err(lost.into()),
    };
    let mut seq = 0i64;
    loop {
        let (piece, rest) = tokio::task::spawn_blocking(move || {
            let mut piece = Vec::with_capacity(PIECE_BYTES);
            (&mut file)
                .take(PIECE_BYTES as u64)
                .read_to_end(&mut piece)?;
            Ok::<_, std::io::Error>((piece, file))
        })
        .await
        .map_err(|_| JobError::WriterPanicked)?
        .map_err(ExportError::from)?;
        file = rest;
        if piece.is_empty() {
            break;
        }
        store
            .append_export(plan, id, lease, seq, &piece, count as i64)
            .await?;
        seq += 1;
    }
    Ok((count as i64, size as i64))
}
