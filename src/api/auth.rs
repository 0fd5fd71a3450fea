//! Bearer-token authentication. Tokens are random; only their SHA-256 is stored, so a stolen
//! database does not yield usable tokens, and looking a token up by its hash compares no secret
//! byte by byte in our code.

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::domain::scope::{Scope, Scopes};
use crate::store::{Actor, Channel, Plan};

/// A new API token: `rst_` and 32 random bytes in hex.
pub fn generate_token() -> String {
    format!("rst_{}", crate::domain::secret::random_secret())
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The plan whose token authorised the request, and who acts: the audit log records them with
/// every change the request makes.
pub struct Authenticated(pub Plan, pub Actor);

/// The client's address, attached to each request by the server (`serve_router`): the peer's,
/// or the trusted header's when one is configured.
#[derive(Debug, Clone)]
pub struct ClientAddress(pub String);

/// The address of the request's client, when the server attached one.
pub fn client_address(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ClientAddress>()
        .map(|address| address.0.clone())
}

/// The client's address, for a handler that records it itself.
pub struct Address(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Address {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Address(client_address(parts)))
    }
}

/// A request the web page makes on behalf of a signed-in session: it carries the plan the
/// session's token was verified for. Only code in this process can attach an extension, so a
/// client cannot forge one.
#[derive(Clone)]
pub struct SignedIn {
    pub plan: Plan,
    /// The session's token, by hash: the rate limit counts the page's requests against it.
    pub token_hash: String,
    /// The session's token's scopes: the page may do no more than its token.
    pub scopes: Scopes,
    /// The operator, as the audit log records them.
    pub actor: Actor,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let needed = needed_scope(parts);
        if let Some(session) = parts.extensions.get::<SignedIn>() {
            check_scope(session.scopes, needed)?;
            check_rate(state, &session.token_hash)?;
            return Ok(Authenticated(session.plan.clone(), session.actor.clone()));
        }
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let (scheme, token) = header.split_once(' ').ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(ApiError::Unauthorized);
        }
        let hash = hash_token(token.trim());
        let now = std::time::Instant::now();
        let cached = state
            .tokens
            .as_ref()
            .and_then(|cache| cache.get(&hash, now));
        let (plan, grant) = match cached {
            Some(found) => found,
            None => {
                let (plan, grant) = state
                    .store
                    .plan_for_token(&hash)
                    .await?
                    .ok_or(ApiError::Unauthorized)?;
                if let Some(cache) = &state.tokens {
                    cache.insert(&hash, &plan, &grant, now);
                }
                (plan, grant)
            }
        };
        check_scope(grant.scopes, needed)?;
        check_rate(state, &hash)?;
        let actor = Actor::token(Channel::Api, &hash, grant.name, client_address(parts));
        Ok(Authenticated(plan, actor))
    }
}

/// The scope the request's route needs (`Scope::required`); a request outside any route (never
/// the case for a handler) needs the most.
fn needed_scope(parts: &Parts) -> Scope {
    match parts.extensions.get::<MatchedPath>() {
        Some(path) => Scope::required(parts.method.as_str(), path.as_str()),
        None => Scope::Admin,
    }
}

fn check_scope(held: Scopes, needed: Scope) -> Result<(), ApiError> {
    if held.allow(needed) {
        Ok(())
    } else {
        Err(ApiError::MissingScope(needed))
    }
}

fn check_rate(state: &AppState, token_hash: &str) -> Result<(), ApiError> {
    match &state.rate_limit {
        Some(limiter) => limiter
            .check(token_hash)
            .map_err(|retry_after| ApiError::TooManyRequests { retry_after }),
        None => Ok(()),
    }
}
