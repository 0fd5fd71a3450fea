//! The baseline of the HTTP benchmarks: a bare axum "hello" handler, built from the same
//! dependency versions and served the same way as `roster serve` (hyper with the same
//! connection settings), so that `bench/load.py` can report Roster's figures as a ratio of it.
//!
//!     cargo run --release --example hello -- 127.0.0.1:8081

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use roster::api::Timeouts;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address: SocketAddr = std::env::args()
        .nth(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8081)));
    let listener = tokio::net::TcpListener::bind(address).await?;
    let app = Router::new().route("/hello", get(|| async { "hello" }));
    roster::api::serve_router(
        listener,
        app,
        Timeouts::default(),
        None,
        std::future::pending(),
    )
    .await
}
