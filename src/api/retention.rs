//! Removes audit rows past their retention and webhook deliveries past their week, and ends
//! confirmation requests (double opt-in) past their time, hourly, on every instance (the deletes are idempotent, so instances sharing a database need no
//! coordination).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::domain::time::Timestamp;
use crate::store::Store;

const EVERY: Duration = Duration::from_secs(60 * 60);
const DAY_MILLIS: i64 = 24 * 60 * 60 * 1000;
/// Finished webhook deliveries are listed for this long.
const DELIVERY_LOG_DAYS: i64 = 7;

/// Runs until `shutdown` turns true: prunes now, then every hour.
pub async fn prune_logs(store: Arc<dyn Store>, days: u64, mut shutdown: watch::Receiver<bool>) {
    loop {
        let before = Timestamp::from_millis(Timestamp::now().millis() - days as i64 * DAY_MILLIS);
        match store.prune_audit(before).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, days, "removed audit rows past their retention"),
            Err(error) => tracing::warn!(%error, "could not remove old audit rows"),
        }
        let before =
            Timestamp::from_millis(Timestamp::now().millis() - DELIVERY_LOG_DAYS * DAY_MILLIS);
        if let Err(error) = store.prune_deliveries(before).await {
            tracing::warn!(%error, "could not remove old webhook deliveries");
        }
        match store.expire_confirmations(Timestamp::now()).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "ended confirmation requests past their time"),
            Err(error) => tracing::warn!(%error, "could not end old confirmation requests"),
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
