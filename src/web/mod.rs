//! The web page for operators: groups, contacts, sending, the import wizard and exports, rendered on the
//! server (maud) with a little JavaScript for drag and drop and progress bars.
//!
//! Every action goes through the native API inside this process ([`dispatch::Api`]): the page
//! validates, authorises and fails exactly as the API does, and shows the API's problem details
//! next to the fields they name. A browser signs in with an API token and then holds a session
//! cookie; every form carries the session's CSRF token.

mod assets;
mod bulk;
mod contacts;
mod dispatch;
mod exports;
mod form;
mod groups;
mod history;
mod ids;
mod imports;
mod layout;
mod listing;
mod sending;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::store::Store;
use session::Session;

/// What the page's handlers reach: the API to act through, the store for sessions, and the
/// key that signs sign-in forms (read from the store once).
#[derive(Clone)]
pub struct WebState {
    api: dispatch::Api,
    store: Arc<dyn Store>,
    sign_in_key: Arc<tokio::sync::OnceCell<Vec<u8>>>,
}

/// The page's routes, acting through `api` (the application's API router).
pub fn router(api: Router, store: Arc<dyn Store>) -> Router {
    let state = WebState {
        api: dispatch::Api::new(api),
        store,
        sign_in_key: Arc::default(),
    };
    Router::new()
        .route("/", get(home))
        .route("/signin", get(session::sign_in_page).post(session::sign_in))
        .route("/signout", post(session::sign_out))
        .route("/assets/app.css", get(assets::stylesheet))
        .route("/assets/app.js", get(assets::script))
        .route("/assets/icon.svg", get(assets::icon))
        .route("/favicon.ico", get(assets::icon))
        .route("/groups", get(groups::list).post(groups::create))
        .route("/groups/rule", post(groups::check_rule))
        .route("/groups/{id}", get(groups::show).post(groups::act))
        .route("/contacts", get(contacts::list).post(contacts::create))
        .route("/contacts/bulk", post(bulk::act))
        .route("/contacts/{id}", get(contacts::show).post(contacts::act))
        .route("/send", get(sending::start).post(sending::submit))
        .route("/send/summary", post(sending::summary))
        .route("/batches", get(sending::list))
        .route("/batches/{id}", get(sending::show))
        .route("/batches/{id}/cancel", post(sending::cancel))
        .route("/batches/{id}/status", get(sending::status))
        .route("/batches/{id}/recipients.csv", get(sending::recipients_csv))
        .route("/imports", get(imports::start).post(imports::upload))
        .route("/imports/templates/{file}", get(imports::template))
        .route("/imports/{id}", get(imports::show).post(imports::commit))
        .route("/imports/{id}/again", post(imports::again))
        .route("/imports/{id}/status", get(imports::status))
        .route("/imports/{id}/errors.csv", get(imports::errors_csv))
        .route("/exports", get(exports::start).post(exports::create))
        .route("/exports/{id}", get(exports::show))
        .route("/exports/{id}/status", get(exports::status))
        .route("/exports/{id}/download", get(exports::download))
        .layer(middleware::from_fn(same_origin_writes))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

async fn home(session: Option<Session>) -> Redirect {
    match session {
        Some(_) => Redirect::to("/groups"),
        None => Redirect::to("/signin"),
    }
}

/// A browser asking for an address that is no page and no API route gets the page's own 404,
/// not the API's JSON problem (the API's clients, which do not ask for HTML, still get that).
pub async fn html_not_found(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let api = [
        "/api",
        "/xms",
        "/docs",
        "/openapi.json",
        "/healthz",
        "/readyz",
    ]
    .iter()
    .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")));
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let response = next.run(request).await;
    if response.status() == StatusCode::NOT_FOUND && wants_html && !api {
        return layout::WebError::NotFound.into_response();
    }
    response
}

/// A second line of defence behind the CSRF token: a browser names the site a form was sent
/// from (`Sec-Fetch-Site`, `Origin`); writes from another site are refused outright. So are
/// writes from an opaque origin (`Origin: null`: a sandboxed frame, a `data:` or `file:` page):
/// the page's own forms always name it, as its `Referrer-Policy: same-origin` keeps the origin on
/// same-origin requests.
async fn same_origin_writes(request: Request, next: Next) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return next.run(request).await;
    }
    let headers = request.headers();
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok());
    let cross_site = matches!(fetch_site, Some(site) if site != "same-origin" && site != "none");
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    let foreign_origin = headers.get(header::ORIGIN).is_some_and(|value| {
        let Ok(origin) = value.to_str() else {
            return true;
        };
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        authority.is_none() || authority != host
    });
    if cross_site || foreign_origin {
        return (
            StatusCode::FORBIDDEN,
            "Refused: this form was sent from another site.",
        )
            .into_response();
    }
    next.run(request).await
}

/// Pages are never framed, run only their own scripts and styles, and leak no URL (the upload
/// form's address carries the CSRF token) to other sites.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
