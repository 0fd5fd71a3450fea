//! Answers that axum and tower make by themselves, before or instead of a handler, turned into
//! [`ApiError`]s and rendered in the surface's shape like every handler's error.
//!
//! One middleware over the whole API rather than a custom extractor per parameter: it also
//! catches what no extractor sees (an unknown method on a known path answers 405 from axum's
//! router with an empty body), and whatever rejection a future handler's extractor makes.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error::{ApiError, Surface};
use super::limits::MAX_BODY_BYTES;

/// The longest rejection text read back from a framework answer (axum's are one line).
const MAX_REJECTION_TEXT: usize = 4096;

/// Rewrites an error response the framework made into the surface's shape. Ours always carry a
/// JSON content type; axum's rejections are `text/plain`, and its router's 405 and tower's
/// timeouts have no content type at all.
pub async fn framework_errors(method: Method, uri: Uri, response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || !made_by_framework(&response) {
        return response;
    }
    let allow = response
        .headers()
        .get(header::ALLOW)
        .and_then(|value| value.to_str().ok())
        .map(|allow| allow.replace(',', ", "));
    let text = match axum::body::to_bytes(response.into_body(), MAX_REJECTION_TEXT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::NotFound("route"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed {
            method: method.to_string(),
            allow: allow.unwrap_or_default(),
        },
        StatusCode::REQUEST_TIMEOUT => ApiError::BodyTimeout,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        },
        status if status.is_server_error() => {
            tracing::error!(%status, %uri, text, "the framework failed a request");
            ApiError::Internal
        }
        status => ApiError::Rejected {
            status,
            detail: if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("bad request")
                    .to_owned()
            } else {
                text
            },
        },
    };
    Surface::of(uri.path()).render(error)
}

fn made_by_framework(response: &Response) -> bool {
    match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => value.as_bytes().starts_with(b"text/plain"),
    }
}

/// Answers 503 in the surface's shape when a handler has not produced its response's headers
/// within `limit` (a streamed body may take longer once begun). Dropping the handler's future
/// rolls back its transaction.
pub async fn request_timeout(limit: Duration, request: Request, next: Next) -> Response {
    let surface = Surface::of(request.uri().path());
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => surface.render(ApiError::Timeout {
            seconds: limit.as_secs(),
        }),
    }
}
