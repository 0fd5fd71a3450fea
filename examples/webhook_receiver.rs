//! The receiver of the webhook benchmark (`bench/webhooks.py`): takes every POST to `/hook`,
//! checks its Standard Webhooks signature against the secret given to `PUT /secret`, answers 204,
//! and counts what it took (`GET /count`: `{"received": n, "bad_signatures": n, "ids": n}`, ids
//! being the distinct `webhook-id`s).
//!
//!     cargo run --release --example webhook_receiver -- 127.0.0.1:8082

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use roster::api::Timeouts;

#[derive(Default)]
struct Counts {
    secret: String,
    received: u64,
    bad: u64,
    ids: HashSet<String>,
}

type Shared = Arc<Mutex<Counts>>;

async fn hook(State(counts): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signed) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let Ok(mut counts) = counts.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    let expected = timestamp
        .parse::<i64>()
        .map(|at| roster::domain::webhook::signature(&counts.secret, &id, at, body.as_bytes()));
    counts.received += 1;
    if expected.ok() != Some(signed) {
        counts.bad += 1;
    }
    counts.ids.insert(id);
    StatusCode::NO_CONTENT
}

async fn set_secret(State(counts): State<Shared>, secret: String) -> StatusCode {
    match counts.lock() {
        Ok(mut counts) => {
            counts.secret = secret.trim().to_owned();
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn count(State(counts): State<Shared>) -> String {
    match counts.lock() {
        Ok(counts) => format!(
            "{{\"received\": {}, \"bad_signatures\": {}, \"ids\": {}}}",
            counts.received,
            counts.bad,
            counts.ids.len()
        ),
        Err(_) => "{}".to_owned(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address: SocketAddr = std::env::args()
        .nth(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8082)));
    let listener = tokio::net::TcpListener::bind(address).await?;
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/secret", put(set_secret))
        .route("/count", get(count))
        .with_state(Shared::default());
    roster::api::serve_router(
        listener,
        app,
        Timeouts::default(),
        None,
        std::future::pending(),
    )
    .await
}
