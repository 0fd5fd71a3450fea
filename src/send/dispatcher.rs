//! The dispatcher: workers that claim due batches (a lease in the database, so that instances
//! sharing it never send one batch twice), resolve them at that moment, and hand the recipients
//! over chunk by chunk:
//!
//! 1. record the chunk as `handing`, with where the sender will be able to find it;
//! 2. hand it to the sender (retrying with backoff; before each retry, ask the sender what it
//!    already has);
//! 3. record it as `done`.
//!
//! A crash between 1 and 3 leaves a `handing` chunk; whoever resumes the batch asks the sender
//! which of its recipients are missing and sends only those.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::{Bodies, Chunk, SendError, Sender};
use crate::domain::batch::{BatchStatus, EXPIRED};
use crate::domain::message::MessagePlan;
use crate::domain::recurrence::Recurrence;
use crate::domain::time::Timestamp;
use crate::store::{BatchRecord, ChunkRecipients, Lease, Store, StoreError};

#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Recipients per hand-over (Sinch takes at most 1000 per batch).
    pub chunk_size: i64,
    /// How long a claim lasts without renewal; a crashed instance's batches are taken over
    /// after this.
    pub lease: Duration,
    /// Batches sent at once by this instance.
    pub workers: usize,
    /// How often to look for due batches when nothing wakes the dispatcher.
    pub poll: Duration,
    /// Delay before the first retry of a chunk; doubled each time up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Tries per chunk before the batch fails.
    pub max_attempts: u32,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            chunk_size: 1000,
            lease: Duration::from_secs(30),
            workers: 2,
            poll: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_attempts: 8,
        }
    }
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    sender: Arc<dyn Sender>,
    config: DispatchConfig,
    lease: Lease,
    wake: Arc<Notify>,
}

/// Why sending a batch stopped before its end.
enum Stop {
    /// The instance is shutting down; the batch is left for a restart or another instance.
    Shutdown,
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(error: StoreError) -> Self {
        Stop::Store(error)
    }
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        sender: Arc<dyn Sender>,
        config: DispatchConfig,
        wake: Arc<Notify>,
    ) -> Self {
        let lease = Lease {
            owner: ulid::Ulid::new().to_string(),
            millis: i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX),
        };
        Self {
            store,
            sender,
            config,
            lease,
            wake,
        }
    }

    /// Runs the workers until `shutdown` turns true; then lets each finish the chunk in hand and
    /// gives up this instance's claims so that a restart resumes at once.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut workers = JoinSet::new();
        for _ in 0..this.config.workers.max(1) {
            workers.spawn(this.clone().worker(shutdown.clone()));
        }
        workers.spawn(this.clone().series(shutdown.clone()));
        while workers.join_next().await.is_some() {}
        if let Err(error) = this.store.release_leases(&this.lease.owner).await {
            tracing::warn!(%error, "could not release the claims on batches");
        }
    }

    async fn worker(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            match self.store.claim_batch(&self.lease).await {
                Ok(Some(batch)) => {
                    let id = batch.id.clone();
                    match self.send(batch, &shutdown).await {
                        Ok(()) | Err(Stop::Shutdown) => {}
                        Err(Stop::Store(StoreError::LeaseLost)) => {
                            tracing::info!(batch = %id, "batch canceled or taken over; stopped sending it");
                        }
                        Err(Stop::Store(error)) => {
                            // The claim lapses and the batch is taken up again after the lease.
                            tracing::error!(batch = %id, %error, "sending interrupted");
                            self.pause(&mut shutdown, self.config.poll).await;
                        }
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.config.poll) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "cannot claim batches");
                    self.pause(&mut shutdown, self.config.poll).await;
                }
            }
        }
    }

    /// Makes each due occurrence of the plans' recurring series into a batch, which the
    /// workers then send like any other.
    async fn series(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            match self.make_due_occurrences().await {
                Ok(0) => self.pause(&mut shutdown, self.config.poll).await,
                Ok(_) => self.wake.notify_waiters(),
                Err(error) => {
                    tracing::error!(%error, "cannot make the occurrences of recurring series");
                    self.pause(&mut shutdown, self.config.poll).await;
                }
            }
        }
    }

    /// Makes the occurrences due now; says how many it made.
    async fn make_due_occurrences(&self) -> Result<usize, StoreError> {
        let now = Timestamp::now();
        let mut made = 0;
        for series in self.store.due_series(now, 50).await? {
            let Some(at) = series.next_at else { continue };
            let next = match Recurrence::new(
                &series.rule,
                &series.time_zone,
                series.ends_at.map(Timestamp::to_utc),
            ) {
                // Occurrences missed while no instance ran are skipped: the next one is the
                // first still to come.
                Ok(rule) => rule
                    .next(
                        at.to_utc(),
                        u32::try_from(series.occurrences + 1).unwrap_or(u32::MAX),
                        now.to_utc(),
                    )
                    .map(Timestamp::from_utc),
                Err(error) => {
                    tracing::error!(series = %series.id, %error, "unreadable rule; the series ends");
                    None
                }
            };
            if let Some(batch) = self
                .store
                .make_occurrence(&series.plan_id, &series.id, at, next)
                .await?
            {
                tracing::info!(series = %series.id, batch = %batch.id, occurrence = batch.occurrence, "occurrence made");
                made += 1;
            }
        }
        Ok(made)
    }

    async fn pause(&self, shutdown: &mut watch::Receiver<bool>, delay: Duration) {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => {}
        }
    }

    async fn send(&self, batch: BatchRecord, shutdown: &watch::Receiver<bool>) -> Result<(), Stop> {
        let (plan, id) = (batch.plan_id.clone(), batch.id.clone());
        if let Some(reason) = expired(&batch, batch.sent_count) {
            self.store
                .finish_batch(&self.lease, &plan, &id, BatchStatus::Failed, Some(&reason))
                .await?;
            return Ok(());
        }
        let started = std::time::Instant::now();
        let batch = self
            .store
            .resolve_batch(&self.lease, &plan, &id, self.config.chunk_size)
            .await?;
        let total = batch.recipient_count.unwrap_or(0);
        let chunk_size = batch.chunk_size.unwrap_or(self.config.chunk_size).max(1);
        tracing::info!(batch = %id, recipients = total, elapsed_ms = started.elapsed().as_millis() as u64, "resolved");
        let recorded: BTreeMap<i64, _> = self
            .store
            .batch_chunks(&plan, &id)
            .await?
            .into_iter()
            .map(|chunk| (chunk.chunk, chunk))
            .collect();
        let chunks = batch
            .chunk_count
            .unwrap_or((total + chunk_size - 1) / chunk_size);
        // Quiet hours are read now, not when the batch was resolved: a chunk waits if its
        // recipients' night has come since, and goes if the setting was turned off.
        let quiet = self
            .store
            .sending_settings(&plan)
            .await?
            .quiet_hours_for(batch.purpose);
        let mut held: Vec<(i64, Timestamp)> = Vec::new();
        let mut sent = batch.sent_count;
        let message = MessagePlan::new(&batch.body, batch.parameters.clone(), batch.encoding);
        // A body with placeholders resolved before this version recorded no values: it is
        // sent as it was written, as it was then.
        let same_text = if message.is_personalized() {
            batch.body.clone()
        } else {
            message.text(&[])
        };
        for index in 0..chunks {
            if *shutdown.borrow() {
                return Err(Stop::Shutdown);
            }
            let earlier = recorded.get(&index);
            if earlier.is_some_and(|chunk| chunk.done) {
                continue;
            }
            if let Some(reason) = expired(&batch, sent) {
                self.store
                    .finish_batch(&self.lease, &plan, &id, BatchStatus::Failed, Some(&reason))
                    .await?;
                return Ok(());
            }
            let ChunkRecipients {
                phones: recipients,
                values,
                time_zones,
            } = self.store.chunk_recipients(&plan, &id, index).await?;
            // A chunk already being handed over is finished whatever the hour: part of it may
            // be with the sender.
            if earlier.is_none()
                && let (Some(quiet), Some(zones)) = (quiet, &time_zones)
                && let Some(release) = quiet.window.release(chrono::Utc::now(), &zones.zones())
            {
                held.push((index, Timestamp::from_utc(release)));
                continue;
            }
            let texts: Option<Vec<String>> =
                values.map(|values| values.iter().map(|values| message.text(values)).collect());
            let chunk = Chunk {
                batch: &batch,
                index,
                recipients: &recipients,
                bodies: match &texts {
                    Some(texts) => Bodies::Each(texts),
                    None => Bodies::Same(&same_text),
                },
            };
            let outcome = match earlier {
                Some(record) => {
                    tracing::info!(batch = %id, chunk = index, "resuming a chunk handed over before a crash");
                    self.hand_over(&chunk, &record.sender_state, record.handed_at, true)
                        .await
                }
                None => match self.sender.locate(&chunk).await {
                    Ok(located) => {
                        self.store
                            .begin_chunk(&self.lease, &plan, &id, index, &located)
                            .await?;
                        self.hand_over(&chunk, &located, Timestamp::now(), false)
                            .await
                    }
                    Err(error) => Err(error),
                },
            };
            match outcome {
                Ok(()) => {
                    self.store
                        .finish_chunk(&self.lease, &plan, &id, index, recipients.len() as i64)
                        .await?;
                    sent += recipients.len() as i64;
                }
                Err(error) => {
                    let reason = format!(
                        "chunk {index} ({} recipients) not sent: {error}",
                        recipients.len()
                    );
                    tracing::error!(batch = %id, %reason, "batch failed");
                    self.store
                        .finish_batch(&self.lease, &plan, &id, BatchStatus::Failed, Some(&reason))
                        .await?;
                    return Ok(());
                }
            }
        }
        if let Some(release) = held.iter().map(|(_, until)| *until).min() {
            // Woken at the first release, or when the batch expires, whichever comes first.
            let wake = batch
                .expire_at
                .map_or(release, |expire| expire.min(release));
            self.store
                .hold_batch(&self.lease, &plan, &id, &held, wake)
                .await?;
            tracing::info!(batch = %id, chunks = held.len(), until = %release.to_rfc3339(), "held for quiet hours");
            return Ok(());
        }
        self.store
            .finish_batch(&self.lease, &plan, &id, BatchStatus::Sent, None)
            .await?;
        tracing::info!(batch = %id, recipients = total, elapsed_ms = started.elapsed().as_millis() as u64, "sent");
        Ok(())
    }

    /// Hands a chunk over, retrying with backoff. `uncertain` says the sender may already hold
    /// some of it (a resumed chunk), so it is asked first.
    async fn hand_over(
        &self,
        chunk: &Chunk<'_>,
        located: &str,
        handed_at: Timestamp,
        uncertain: bool,
    ) -> Result<(), SendError> {
        let mut pending = if uncertain {
            None
        } else {
            Some(chunk.recipients.to_vec())
        };
        // Where each recipient stands in the chunk, to find its text when only some of the
        // chunk is handed over again.
        let mut positions: Option<HashMap<&str, usize>> = None;
        let mut backoff = self.config.initial_backoff;
        let mut attempts = 0;
        loop {
            let outcome = match pending.take() {
                Some(pending) => {
                    if pending.is_empty() {
                        return Ok(());
                    }
                    let texts: Vec<String>;
                    let bodies = match chunk.bodies {
                        Bodies::Each(_) if pending.len() != chunk.recipients.len() => {
                            let positions = positions.get_or_insert_with(|| {
                                chunk
                                    .recipients
                                    .iter()
                                    .enumerate()
                                    .map(|(index, to)| (to.as_str(), index))
                                    .collect()
                            });
                            texts = pending
                                .iter()
                                .map(|to| {
                                    let index = positions.get(to.as_str()).copied();
                                    index.map_or("", |index| chunk.bodies.get(index)).to_owned()
                                })
                                .collect();
                            Bodies::Each(&texts)
                        }
                        bodies => bodies,
                    };
                    let part = Chunk {
                        batch: chunk.batch,
                        index: chunk.index,
                        recipients: &pending,
                        bodies,
                    };
                    self.sender.deliver(&part).await
                }
                None => match self.sender.missing(chunk, located, handed_at).await {
                    Ok(missing) => {
                        pending = Some(missing);
                        continue;
                    }
                    Err(error) => Err(error),
                },
            };
            let error = match outcome {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            attempts += 1;
            if !error.retryable || attempts >= self.config.max_attempts {
                return Err(SendError {
                    message: format!("{} (after {attempts} attempts)", error.message),
                    retryable: false,
                });
            }
            tracing::warn!(batch = %chunk.batch.id, chunk = chunk.index, attempts, %error, "retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.max_backoff);
            // The wait may have outlasted part of the claim.
            if let Err(error) = self
                .store
                .renew_lease(&self.lease, &chunk.batch.plan_id, &chunk.batch.id)
                .await
            {
                return Err(SendError::permanent(format!(
                    "claim lost while retrying: {error}"
                )));
            }
            // Whether the failed attempt got through is unknown: ask before sending again.
            pending = None;
        }
    }
}

/// Why a batch may no longer be sent, if its `expire_at` has passed.
fn expired(batch: &BatchRecord, sent: i64) -> Option<String> {
    let expire_at = batch.expire_at?;
    (Timestamp::now() >= expire_at).then(|| {
        format!(
            "{EXPIRED} {} with {} of {} recipients sent",
            expire_at.to_rfc3339(),
            sent,
            batch
                .recipient_count
                .map_or_else(|| "unknown".to_owned(), |count| count.to_string())
        )
    })
}
