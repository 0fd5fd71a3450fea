//! Delivers the outbox's events to webhooks: claims due deliveries (a lease in the database, so
//! that instances share the work and one that dies leaves its claims to the others), posts each
//! event signed, and records how each attempt went. Delivery is at least once: an instance that
//! dies between the receiver's answer and recording it leaves the delivery to be sent again, with
//! the same `webhook-id`, which is how a receiver recognises a repeat.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::Rng;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::watch;

use crate::domain::time::Timestamp;
use crate::domain::webhook::{check_url, is_public, retry_delay_millis, signature};
use crate::store::{AttemptOutcome, ClaimedDelivery, Lease, Store};

/// Longest part of an error or of a receiver's answer kept in the delivery log.
const MAX_ERROR_TEXT: usize = 300;

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Deliveries attempted at once by this instance.
    pub concurrency: usize,
    /// Deliveries claimed at a time.
    pub claim: i64,
    /// How long the receiver has to answer.
    pub timeout: Duration,
    /// How often to look for due deliveries when there were none.
    pub poll: Duration,
    /// A webhook whose attempts have all failed for this long (and at least 20 of them) is
    /// disabled.
    pub disable_after: Duration,
    /// Whether webhooks may point at private, loopback and link-local addresses.
    pub allow_private: bool,
    /// The wait after a first failed attempt, doubled after each failure up to `last_retry`.
    pub first_retry: Duration,
    pub last_retry: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            claim: 256,
            timeout: Duration::from_secs(10),
            poll: Duration::from_millis(250),
            disable_after: Duration::from_secs(3 * 24 * 60 * 60),
            allow_private: false,
            first_retry: Duration::from_secs(5),
            last_retry: Duration::from_secs(60 * 60),
        }
    }
}

pub struct Deliverer {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    config: DeliveryConfig,
    lease: Lease,
}

impl Deliverer {
    pub fn new(store: Arc<dyn Store>, config: DeliveryConfig) -> anyhow::Result<Self> {
        let mut client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A redirect could lead anywhere, private addresses included: it counts as a failure.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would resolve names itself, past the check below.
            .no_proxy()
            .user_agent(concat!("Roster-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !config.allow_private {
            client = client.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self {
            store,
            client: client.build()?,
            // Long enough for every attempt of a claim: the claimed deliveries go out in waves of
            // `concurrency`, each within the timeout.
            lease: Lease {
                owner: ulid::Ulid::new().to_string(),
                millis: millis(config.timeout)
                    .saturating_mul(waves(config.claim, config.concurrency))
                    .saturating_add(5_000),
            },
            config,
        })
    }

    /// Delivers until `shutdown` turns true (the attempts in hand are finished and recorded).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let delivered = match self.round().await {
                Ok(count) => count,
                Err(error) => {
                    tracing::warn!(%error, "webhook deliveries could not be claimed or recorded");
                    0
                }
            };
            if delivered == 0 {
                tokio::select! {
                    () = tokio::time::sleep(self.config.poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// Claims due deliveries, attempts them and records the outcomes; returns how many.
    async fn round(&self) -> Result<usize, crate::store::StoreError> {
        let claimed = self
            .store
            .claim_deliveries(&self.lease, self.config.claim)
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let outcomes: Vec<AttemptOutcome> = futures::stream::iter(claimed)
            .map(|delivery| self.attempt(delivery))
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        self.store
            .record_attempts(&self.lease, &outcomes, millis(self.config.disable_after))
            .await?;
        Ok(outcomes.len())
    }

    async fn attempt(&self, delivery: ClaimedDelivery) -> AttemptOutcome {
        let started = Instant::now();
        let result = self.post(&delivery).await;
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (response_status, error) = match result {
            Ok(status) if (200..300).contains(&status) => (Some(status), None),
            Ok(status) => (
                Some(status),
                Some(format!("the receiver answered {status}")),
            ),
            Err(error) => (None, Some(error)),
        };
        let retry_at = error.as_ref().and_then(|_| {
            let attempts = u32::try_from(delivery.attempts + 1).unwrap_or(u32::MAX);
            let delay = retry_delay_millis(
                attempts,
                rand::rng().random::<f64>(),
                millis(self.config.first_retry),
                millis(self.config.last_retry),
            );
            let at = Timestamp::now().plus_millis(delay);
            (at < delivery.expires_at).then_some(at)
        });
        AttemptOutcome {
            key: delivery.key,
            webhook: delivery.webhook,
            response_status,
            error,
            latency_ms,
            retry_at,
        }
    }

    /// Posts the event; the receiver's status, or why there was none.
    async fn post(&self, delivery: &ClaimedDelivery) -> Result<i64, String> {
        // Checked at each attempt: the setting may have changed since the webhook was made.
        let url = check_url(&delivery.url, self.config.allow_private)
            .map_err(|error| format!("the URL {error}"))?;
        let timestamp = Timestamp::now().millis() / 1000;
        let signed = signature(
            &delivery.secret,
            &delivery.event_id,
            timestamp,
            delivery.body.as_bytes(),
        );
        let response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signed)
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|error| clip(&describe(&error)))?;
        Ok(i64::from(response.status().as_u16()))
    }
}

/// A transport error with its causes (reqwest's own text names only the outermost).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How many rounds of `concurrency` attempts `claimed` deliveries take.
fn waves(claimed: i64, concurrency: usize) -> i64 {
    let concurrency = i64::try_from(concurrency.max(1)).unwrap_or(i64::MAX);
    (claimed.max(1) + concurrency - 1) / concurrency
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_ERROR_TEXT).collect()
}

/// Resolves host names to their public addresses only, so that a webhook cannot reach private,
/// loopback or link-local services through a name (checked at connection time, so a name that
/// changes its answer after the webhook was made is caught too).
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found
                .into_iter()
                .filter(|address| is_public(address.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves only to private, loopback or link-local addresses, which \
                     webhooks may not reach (ROSTER_WEBHOOK_ALLOW_PRIVATE allows them)"
                )
                .into());
            }
            let addresses: Addrs = Box::new(public.into_iter());
            Ok(addresses)
        })
    }
}
