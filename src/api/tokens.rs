//! A plan's API tokens, managed by its admins: each with a name and scopes. A token is shown
//! once, when it is made; afterwards only its id (the start of its hash) names it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Authenticated, generate_token, hash_token};
use super::error::{ApiError, FieldError, Problem};
use super::extract::JsonBody;
use super::validate::Validator;
use crate::domain::scope::{Scope, Scopes, token_name};
use crate::store::{StoreError, TokenGrant, TokenRecord};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

const TAG: &str = "Tokens";

/// A token as listed.
#[derive(Serialize, ToSchema)]
pub struct Token {
    /// The first 12 characters of the token's SHA-256 (hex): what names it here.
    pub id: String,
    pub name: Option<String>,
    /// Any of `read`, `write` (includes read), `send` (includes read) and `admin` (everything).
    pub scopes: Vec<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<TokenRecord> for Token {
    fn from(record: TokenRecord) -> Self {
        Self {
            id: record.id,
            name: record.name,
            scopes: scope_names(record.scopes),
            created_at: record.created_at.to_rfc3339(),
            revoked_at: record.revoked_at.map(|at| at.to_rfc3339()),
        }
    }
}

fn scope_names(scopes: Scopes) -> Vec<String> {
    scopes
        .list()
        .into_iter()
        .map(|scope| scope.as_str().to_owned())
        .collect()
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    /// Oldest first, revoked ones included.
    pub tokens: Vec<Token>,
}

/// A token to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// What the token is for (1 to 100 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// What it may do: `read`, `write`, `send`, `admin`; at least one.
    pub scopes: Vec<String>,
}

/// A new token: the only time the token itself is shown.
#[derive(Serialize, ToSchema)]
pub struct NewToken {
    #[serde(flatten)]
    pub listed: Token,
    /// The token, to send as `Authorization: Bearer …`; it is not kept and cannot be shown
    /// again.
    pub token: String,
}

/// List tokens
///
/// The plan's tokens with their names and scopes (never the tokens themselves). Needs `admin`.
#[utoipa::path(
    get, path = "/api/tokens", tag = TAG,
    responses(
        (status = 200, description = "The plan's tokens", body = TokenList),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token does not have the scope admin", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_tokens(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = state.store.list_tokens(&plan.id).await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(Token::from).collect(),
    }))
}

/// Create a token
///
/// A new token of this plan with a name and scopes; the token is in the answer and nowhere
/// else. Needs `admin`.
#[utoipa::path(
    post, path = "/api/tokens", tag = TAG,
    request_body = TokenBody,
    responses(
        (status = 201, description = "The token, shown this once", body = NewToken),
        (status = 400, description = "A bad name or scope (the field is named)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token does not have the scope admin", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn create_token(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<TokenBody>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    let mut check = Validator::new();
    let name = body
        .name
        .as_deref()
        .and_then(|name| check.text("name", name, token_name));
    let mut scopes = Vec::new();
    for (index, text) in body.scopes.iter().enumerate() {
        match Scope::parse(text) {
            Some(scope) => scopes.push(scope),
            None => check.push(FieldError::constraint(
                format!("scopes[{index}]"),
                format!("{text:?} is not a scope: use read, write, send or admin"),
            )),
        }
    }
    if body.scopes.is_empty() {
        check.push(FieldError::constraint("scopes", "name at least one scope"));
    }
    check.finish()?;
    let token = generate_token();
    let grant = TokenGrant {
        name,
        scopes: Scopes::of(scopes),
    };
    let record = state
        .store
        .add_token(&plan.id, &by, &hash_token(&token), &grant)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewToken {
            listed: record.into(),
            token,
        }),
    ))
}

/// Revoke a token
///
/// The token is refused from then on (within the token cache's few seconds on other
/// instances), and the web sessions signed in with it end. Needs `admin`.
#[utoipa::path(
    delete, path = "/api/tokens/{id}", tag = TAG,
    params(("id" = String, Path, description = "The token's id (12 characters of its hash)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token does not have the scope admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No active token of this plan has this id", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn revoke_token(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    match state.store.revoke_plan_token(&plan.id, &by, &id).await {
        Ok(()) => {
            if let Some(cache) = &state.tokens {
                cache.forget(&id.to_ascii_lowercase());
            }
            Ok(StatusCode::NO_CONTENT)
        }
        Err(StoreError::NotFound(_)) => Err(ApiError::NotFound("token")),
        Err(other) => Err(other.into()),
    }
}
