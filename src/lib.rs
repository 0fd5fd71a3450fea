//! Roster keeps the contacts and contact groups of an SMS business and resolves a group into the
//! list of phone numbers to message at the moment a batch is sent.
//!
//! Dependencies point one way: `web` acts through `api`; `api` and `cli` use `domain` and
//! `store`; `domain` does no I/O.

pub mod api;
pub mod cli;
pub mod domain;
pub mod export;
pub mod import;
pub mod send;
pub mod store;
pub mod web;
pub mod webhooks;

/// Everything `roster serve` serves: the API, its documents, and the web page.
pub fn app(state: api::AppState) -> axum::Router {
    let store = state.store.clone();
    let api = api::router(state);
    api.clone()
        .merge(web::router(api, store))
        .layer(axum::middleware::from_fn(web::html_not_found))
}
