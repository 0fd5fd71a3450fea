//! Calls into the native API from inside the process, on behalf of a signed-in session.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use tower::ServiceExt;

use super::layout::WebError;
use super::session::Session;
use crate::api::auth::SignedIn;

/// The largest JSON answer the page reads into memory (pages of 1000 contacts fit easily).
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct Api {
    router: Router,
}

/// The API's answer: its status and its JSON body (`null` when it had none).
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The answer when it succeeded; a page that only reads treats anything else as its error.
    pub fn into_ok(self) -> Result<Value, WebError> {
        if self.ok() {
            Ok(self.body)
        } else {
            Err(WebError::Api(self))
        }
    }

    /// Reads an API response whole.
    pub async fn read(response: Response) -> Result<Self, WebError> {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_REPLY_BYTES)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot read the API's answer");
                WebError::Internal
            })?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|error| {
                tracing::error!(%error, %status, "the API answered with something that is not JSON");
                WebError::Internal
            })?
        };
        Ok(Reply { status, body })
    }
}

impl Api {
    pub fn new(router: Router) -> Self {
        Self { router }
    }

    pub async fn get(&self, session: &Session, uri: &str) -> Result<Reply, WebError> {
        self.json(session, Method::GET, uri, None::<&()>).await
    }

    /// `path` with the non-empty `query` parameters appended.
    pub async fn get_with(
        &self,
        session: &Session,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Reply, WebError> {
        let present: Vec<_> = query
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .collect();
        let query = serde_urlencoded::to_string(present).map_err(|error| {
            tracing::error!(%error, "cannot encode a query for the API");
            WebError::Internal
        })?;
        let uri = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        self.get(session, &uri).await
    }

    pub async fn json<B: Serialize>(
        &self,
        session: &Session,
        method: Method,
        uri: &str,
        body: Option<&B>,
    ) -> Result<Reply, WebError> {
        let (content_type, body) = match body {
            Some(body) => {
                let bytes = serde_json::to_vec(body).map_err(|error| {
                    tracing::error!(%error, "cannot encode a body for the API");
                    WebError::Internal
                })?;
                (
                    Some(HeaderValue::from_static("application/json")),
                    Body::from(bytes),
                )
            }
            None => (None, Body::empty()),
        };
        let response = self
            .forward(session, method, uri, content_type, body)
            .await?;
        Reply::read(response).await
    }

    /// The API's answer to a GET handed to the browser as it is (a file, streamed).
    pub async fn pass_through(&self, session: &Session, uri: &str) -> Result<Response, WebError> {
        self.forward(session, Method::GET, uri, None, Body::empty())
            .await
    }

    /// A running job's progress for the page's script: its status, and `done_key` of its
    /// `progress` against `total_rows`.
    pub async fn job_progress(
        &self,
        session: &Session,
        uri: &str,
        done_key: &str,
    ) -> Result<Response, WebError> {
        let job = self.get(session, uri).await?.into_ok()?;
        Ok(axum::Json(serde_json::json!({
            "status": job["status"],
            "done": job["progress"][done_key],
            "total": job["progress"]["total_rows"],
        }))
        .into_response())
    }

    /// A GET asking for `accept` (a file in another format than JSON), handed back as it is.
    pub async fn forward_accepting(
        &self,
        session: &Session,
        uri: &str,
        accept: HeaderValue,
    ) -> Result<Response, WebError> {
        let mut request = self.request(session, Method::GET, uri, None, Body::empty())?;
        request.headers_mut().insert(header::ACCEPT, accept);
        self.send(request).await
    }

    /// Sends a request through the API and hands back its response as it is (streamed), for
    /// uploads and downloads.
    pub async fn forward(
        &self,
        session: &Session,
        method: Method,
        uri: &str,
        content_type: Option<HeaderValue>,
        body: Body,
    ) -> Result<Response, WebError> {
        let request = self.request(session, method, uri, content_type, body)?;
        self.send(request).await
    }

    fn request(
        &self,
        session: &Session,
        method: Method,
        uri: &str,
        content_type: Option<HeaderValue>,
        body: Body,
    ) -> Result<Request, WebError> {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .extension(SignedIn {
                plan: session.plan.clone(),
                token_hash: session.token_hash.clone(),
                scopes: session.scopes,
                actor: session.actor.clone(),
            });
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        request.body(body).map_err(|error| {
            tracing::error!(%error, uri, "cannot build a request for the API");
            WebError::Internal
        })
    }

    async fn send(&self, request: Request) -> Result<Response, WebError> {
        match self.router.clone().oneshot(request).await {
            Ok(response) => Ok(response),
            Err(never) => match never {},
        }
    }
}
