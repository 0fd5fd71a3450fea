//! An import committed through the API: run in the background under a claim that is renewed
//! while it runs, with its progress visible to this instance at once and to others through
//! the database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::engine::{self, ImportJob};
use crate::domain::ids::{ImportId, PlanId};
use crate::store::{Lease, Store, StoreError};

/// How long a claim on a running job holds without renewal, unless configured.
pub const DEFAULT_JOB_LEASE: Duration = Duration::from_secs(60);
/// How often a running job renews its claim (a lease must be longer).
pub const RENEW_EVERY: Duration = Duration::from_millis(500);

/// The jobs this instance is running, with their rows read so far.
#[derive(Default)]
pub struct Progress {
    running: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl Progress {
    pub fn rows_read(&self, id: &str) -> Option<u64> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.get(id).map(|rows| rows.load(Ordering::Relaxed))
    }

    pub fn start(&self, id: &str) -> Arc<AtomicU64> {
        let rows = Arc::new(AtomicU64::new(0));
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(id.to_owned(), rows.clone());
        rows
    }

    pub fn finish(&self, id: &str) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.remove(id);
    }
}

/// Runs a started import to its end: `done` with its report, or `failed` with the reason
/// (and nothing written).
pub fn spawn(
    store: Arc<dyn Store>,
    progress: Arc<Progress>,
    mut job: ImportJob,
    id: ImportId,
    attempt: i64,
    lease: Lease,
) {
    let rows = progress.start(id.as_str());
    job.progress = rows.clone();
    tokio::spawn(async move {
        let plan = job.plan.clone();
        let spool = match tempfile::NamedTempFile::new() {
            Ok(file) => file,
            Err(error) => {
                fail(
                    &*store,
                    &plan,
                    &id,
                    attempt,
                    &format!("no temporary file: {error}"),
                )
                .await;
                progress.finish(id.as_str());
                return;
            }
        };
        let outcome = async {
            store.import_file(&plan, &id, spool.path()).await?;
            job.file = PathBuf::from(spool.path());
            let heartbeat = renew_while_running(
                store.clone(),
                plan.clone(),
                id.clone(),
                lease,
                attempt,
                rows,
            );
            tokio::select! {
                outcome = engine::run(store.clone(), job) => outcome,
                lost = heartbeat => Err(lost.into()),
            }
        }
        .await;
        if let Err(error) = outcome {
            tracing::warn!(import = %id, %error, "import failed");
            fail(&*store, &plan, &id, attempt, &error.to_string()).await;
        }
        progress.finish(id.as_str());
    });
}

/// Renews the claim until it is lost (another attempt took over); never returns otherwise.
async fn renew_while_running(
    store: Arc<dyn Store>,
    plan: PlanId,
    id: ImportId,
    lease: Lease,
    attempt: i64,
    rows: Arc<AtomicU64>,
) -> StoreError {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let read = rows.load(Ordering::Relaxed) as i64;
        match store.renew_import(&plan, &id, &lease, attempt, read).await {
            Err(StoreError::LeaseLost) => return StoreError::LeaseLost,
            // On SQLite the import's own transaction holds the writer: the renewal waits, and
            // may time out, while the claim (a minute) outlasts it.
            Err(error) => tracing::debug!(import = %id, %error, "claim not renewed this time"),
            Ok(()) => {}
        }
    }
}

async fn fail(store: &dyn Store, plan: &PlanId, id: &ImportId, attempt: i64, reason: &str) {
    if let Err(error) = store.fail_import(plan, id, attempt, reason).await {
        tracing::error!(import = %id, %error, "could not record the import's failure");
    }
}
