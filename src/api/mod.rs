//! The HTTP front end: the native API under `/api`, the Sinch-compatible surface under `/xms/v1`,
//! health checks, and the OpenAPI document with its explorer at `/docs`.

mod audit;
pub mod auth;
mod batches;
mod connection;
mod contacts;
mod delivery_reports;
pub mod error;
mod exports;
mod extract;
mod framework;
mod groups;
mod health;
mod imports;
mod inbound;
pub mod limits;
pub mod paging;
mod person;
pub mod rate_limit;
pub mod retention;
mod series;
mod settings;
mod sinch;
mod sinch_batches;
mod text;
mod token_cache;
mod tokens;
mod validate;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderName, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::store::Store;
use error::{ApiError, Surface};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Requests per second per token; `None` when unlimited.
    pub rate_limit: Option<Arc<rate_limit::RateLimiter>>,
    /// Wakes the dispatcher when a batch is created, so that one due now is sent at once.
    pub wake: Arc<tokio::sync::Notify>,
    /// Recently verified tokens; `None` when every request asks the database.
    pub tokens: Option<Arc<token_cache::TokenCache>>,
    /// This instance, as the owner of the imports and exports it runs.
    pub owner: String,
    /// The imports and exports this instance is running, with their progress.
    pub jobs: Arc<crate::import::job::Progress>,
    /// How long a claim on a running import or export holds without renewal: how soon one
    /// interrupted by a crash shows as failed (and an import may be committed again).
    pub job_lease: Duration,
    /// Whether webhooks may point at private, loopback and link-local addresses.
    pub webhook_allow_private: bool,
    /// Delivery report codes that opt the recipient out.
    pub opt_out_codes: crate::domain::delivery::OptOutCodes,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, requests_per_second: u32) -> Self {
        Self {
            store,
            rate_limit: (requests_per_second > 0)
                .then(|| Arc::new(rate_limit::RateLimiter::new(requests_per_second))),
            wake: Arc::new(tokio::sync::Notify::new()),
            tokens: None,
            owner: ulid::Ulid::new().to_string(),
            jobs: Arc::default(),
            job_lease: crate::import::job::DEFAULT_JOB_LEASE,
            webhook_allow_private: false,
            opt_out_codes: crate::domain::delivery::OptOutCodes::default(),
        }
    }

    /// The delivery report codes that opt the recipient out.
    pub fn with_opt_out_codes(mut self, codes: crate::domain::delivery::OptOutCodes) -> Self {
        self.opt_out_codes = codes;
        self
    }

    /// Lets webhooks point at private, loopback and link-local addresses.
    pub fn with_private_webhooks(mut self, allow: bool) -> Self {
        self.webhook_allow_private = allow;
        self
    }

    pub fn with_job_lease(mut self, lease: Duration) -> Self {
        self.job_lease = lease;
        self
    }

    /// The claim this instance's imports and exports hold.
    pub fn job_lease(&self) -> crate::store::Lease {
        crate::store::Lease {
            owner: self.owner.clone(),
            millis: self.job_lease.as_millis() as i64,
        }
    }

    /// Remembers verified tokens for `ttl` (a revoked token keeps working for at most that
    /// long); a zero `ttl` verifies every request against the database.
    pub fn with_token_cache(mut self, ttl: Duration) -> Self {
        self.tokens = (!ttl.is_zero()).then(|| Arc::new(token_cache::TokenCache::new(ttl)));
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Roster",
        description = "Contacts and contact groups for SMS, resolved to phone numbers at send time.\n\n\
            Authenticate with `Authorization: Bearer <token>` (create one with `roster plans create`). \
            A token holds scopes — `read`, `write` (includes read), `send` (includes read) and `admin` (everything); each operation \
            names the one it needs in its `security`, and a token without it is answered 403 naming it.\n\n\
            Limits: request bodies up to 32 MiB (uploads to /api/imports up to 256 MiB); request targets (path and query) up to 65,534 bytes (414); \
            request heads up to 100 headers and 417,792 bytes (431); up to 100,000 numbers per request on the native API \
            and 10,000 on the Sinch-compatible surface; pages of up to 1000 (native) or 100 (Sinch).\n\n\
            Every error, including those made before a handler runs (an unknown route, a method not allowed with its `Allow` header, \
            a path or query that does not decode, a limit, a timeout), is `application/problem+json` on the native API and \
            Sinch's `{\"code\", \"text\"}` under /xms/v1.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "Contact Groups", description = "Groups of contacts, with child groups, keywords and members; smart groups defined by a filter"),
        (name = "Contacts", description = "The address book: contacts, their numbers, custom fields and opt-out state"),
        (name = "Sinch-compatible Groups", description = "Sinch's Groups API, field for field"),
        (name = "Batches", description = "Messages to groups and numbers, resolved to recipients at the moment they are sent"),
        (name = "Recurring batches", description = "A batch sent at every occurrence of an RFC 5545 rule, each occurrence its own batch"),
        (name = "Sending settings", description = "A plan's rules for sending: the frequency cap on marketing messages and quiet hours"),
        (name = "Sinch-compatible Batches", description = "Sinch's batch sending, for the fields that concern groups"),
        (name = "Inbound and consent", description = "Inbound SMS keywords (opt-out, opt-in, joining and leaving groups) and consent history"),
        (name = "Imports and exports", description = "Contacts from CSV, XLSX, XLS, ODS and vCard files, previewed, mapped and imported whole or not at all; exports as CSV, XLSX or vCard"),
        (name = "Tokens", description = "A plan's API tokens, each with a name and scopes (read, write, send, admin)"),
        (name = "Webhooks", description = "Events posted to the plan's own URLs as they happen, signed (Standard Webhooks), retried for 24 hours, in order per object"),
        (name = "Audit", description = "Every change made through the API, the web page or the command line: who, when, from where, what"),
        (name = "Operations", description = "Health checks"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// States in the document the scope each operation needs (OpenAPI lets a non-OAuth scheme list
/// the roles an operation requires), from the same rule the server enforces.
fn with_scopes(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::SecurityRequirement;
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            ("GET", &mut item.get),
            ("PUT", &mut item.put),
            ("POST", &mut item.post),
            ("DELETE", &mut item.delete),
            ("PATCH", &mut item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            if operation
                .security
                .as_ref()
                .is_some_and(|security| !security.is_empty())
            {
                let scope = crate::domain::scope::Scope::required(method, path);
                operation.security =
                    Some(vec![SecurityRequirement::new("bearer", [scope.as_str()])]);
            }
        }
    }
    openapi
}

/// The whole application: every route, and the OpenAPI document generated from them.
pub fn router(state: AppState) -> Router {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(groups::router())
        .merge(contacts::router())
        .merge(inbound::router())
        .merge(batches::router())
        .merge(series::router())
        .merge(settings::router())
        .merge(imports::router())
        .merge(exports::router())
        .merge(sinch_batches::router())
        .merge(sinch::router())
        .merge(tokens::router())
        .merge(audit::router())
        .merge(webhooks::router())
        .merge(delivery_reports::router())
        .merge(person::router())
        .merge(health::router())
        .split_for_parts();
    let openapi = with_scopes(openapi);
    let api = router
        .merge(
            SwaggerUi::new("/docs")
                .url("/openapi.json", openapi)
                // The default validator badge would fetch from swagger.io; /docs stays offline.
                .config(Config::new(["/openapi.json"]).validator_url("none")),
        )
        .fallback(
            |uri: Uri| async move { Surface::of(uri.path()).render(ApiError::NotFound("route")) },
        )
        .layer(axum::middleware::from_fn(text::refuse_nul_in_query))
        .layer(DefaultBodyLimit::max(limits::MAX_BODY_BYTES))
        .with_state(state);
    // Around the whole router rather than its routes: axum adds the `Allow` header of a 405
    // outside the layers of a route, and the rewritten 405 must name the allowed methods.
    Router::new()
        .fallback_service(api)
        .layer(axum::middleware::map_response(framework::framework_errors))
}

/// How long the server waits for slow clients and slow handlers.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a request's headers to arrive, from the first byte (slow-loris connections are
    /// closed after it).
    pub header: Duration,
    /// Between two parts of a request body (a stalled upload gets 408).
    pub body: Duration,
    /// For a handler to produce its response's headers (503 after it, in the surface's shape; a
    /// streamed response body may take longer).
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(10),
            body: Duration::from_secs(30),
            request: Duration::from_secs(120),
        }
    }
}

/// Serves `app` until `shutdown` completes, then stops accepting and lets the requests in
/// flight finish. Connections are served by hyper directly (not `axum::serve`) so that a client
/// sending its headers slowly is cut off, and so that hyper's own refusals of a head it cannot
/// parse are answered in the surface's shape ([`connection`]). The benchmarks' baseline is
/// served the same way.
///
/// Each request carries its client's address ([`auth::ClientAddress`]): the peer's, or, with
/// `client_header`, the last address of that header (the one the nearest proxy appended).
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    timeouts: Timeouts,
    client_header: Option<HeaderName>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let request_limit = timeouts.request;
    let app = app
        .layer(RequestBodyTimeoutLayer::new(timeouts.body))
        .layer(axum::middleware::from_fn(move |request, next| {
            framework::request_timeout(request_limit, request, next)
        }));
    let mut builder = ConnectionBuilder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .max_buf_size(limits::MAX_HEAD_BYTES);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let peer = remote.ip().to_string();
        let header = client_header.clone();
        let app = app.clone();
        let service = TowerToHyperService::new(tower::service_fn(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                let address = header
                    .as_ref()
                    .and_then(|name| last_address(request.headers(), name))
                    .unwrap_or_else(|| peer.clone());
                request
                    .extensions_mut()
                    .insert(auth::ClientAddress(address));
                app.clone().oneshot(request)
            },
        ));
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(connection::ShapedConnection::new(stream)),
                service,
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The last address a proxy header lists (`X-Forwarded-For: client, proxy`), if it is one.
fn last_address(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let last = value.rsplit(',').next()?.trim();
    last.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_string())
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_the_last_a_proxy_header_lists() {
        let name = HeaderName::from_static("x-forwarded-for");
        let mut headers = HeaderMap::new();
        assert_eq!(last_address(&headers, &name), None);
        headers.append(&name, "203.0.113.9, 10.0.0.2".parse().unwrap());
        assert_eq!(last_address(&headers, &name).as_deref(), Some("10.0.0.2"));
        headers.append(&name, " 2001:db8::1 ".parse().unwrap());
        assert_eq!(
            last_address(&headers, &name).as_deref(),
            Some("2001:db8::1")
        );
        headers.insert(&name, "unknown".parse().unwrap());
        assert_eq!(last_address(&headers, &name), None);
    }
}
