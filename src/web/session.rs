//! Signing in with an API token, the session cookie, and the CSRF token every form carries.

use axum::extract::{FromRequestParts, OptionalFromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, KeyInit, Mac};
use maud::html;
use rand::RngCore;
use serde::Deserialize;
use sha2::Sha256;

use super::WebState;
use super::form::{Errors, error_id};
use super::layout::{WebError, page_signed_out, respond};
use crate::api::auth::{Address, client_address, hash_token};
use crate::domain::scope::Scopes;
use crate::domain::secret::random_secret;
use crate::domain::time::Timestamp;
use crate::store::{Actor, Channel, NewSession, Plan};

const SESSION_COOKIE: &str = "roster_session";
/// Holds the sign-in form's CSRF token until the browser has a session.
const SIGN_IN_COOKIE: &str = "roster_sign_in";
/// The server secret that signs sign-in forms, shared by every instance on the database.
const SIGN_IN_SECRET: &str = "web_sign_in";
/// How long a sign-in form can be sent back.
const SIGN_IN_FORM_SECONDS: i64 = 60 * 60;
/// A session ends this long after signing in, or when its token is revoked.
const SESSION_MILLIS: i64 = 12 * 60 * 60 * 1000;

/// A signed-in browser. As an extractor it sends a browser without a session to sign in.
pub struct Session {
    pub plan: Plan,
    pub token_hash: String,
    /// What the session's token may do; the API holds the page to it.
    pub scopes: Scopes,
    /// The operator, as the audit log records them.
    pub actor: Actor,
    csrf: String,
}

impl Session {
    /// The value every form of this session carries.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Refuses a form that does not carry this session's CSRF token.
    pub fn check_csrf(&self, provided: &str) -> Result<(), WebError> {
        if same_secret(&self.csrf, provided) {
            Ok(())
        } else {
            Err(WebError::Forbidden)
        }
    }
}

impl FromRequestParts<WebState> for Session {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let id = cookie(&parts.headers, SESSION_COOKIE).ok_or(WebError::SignIn)?;
        let session = state
            .store
            .session(&hash_token(id))
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot look up a web session");
                WebError::Internal
            })?
            .ok_or(WebError::SignIn)?;
        let actor = Actor::token(
            Channel::Page,
            &session.token_hash,
            session.token_name,
            client_address(parts),
        );
        Ok(Session {
            plan: session.plan,
            token_hash: session.token_hash,
            scopes: session.scopes,
            actor,
            csrf: session.csrf,
        })
    }
}

impl OptionalFromRequestParts<WebState> for Session {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Option<Self>, Self::Rejection> {
        match <Session as FromRequestParts<WebState>>::from_request_parts(parts, state).await {
            Ok(session) => Ok(Some(session)),
            Err(WebError::SignIn) => Ok(None),
            Err(other) => Err(other),
        }
    }
}

pub async fn sign_in_page(
    State(state): State<WebState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let csrf = sign_in_token(sign_in_key(&state).await?, now_seconds());
    let cookie = sign_in_cookie(&csrf, &headers);
    let mut response = respond(StatusCode::OK, sign_in_form(&csrf, &Errors::default()));
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

pub async fn sign_in(
    State(state): State<WebState>,
    Address(address): Address,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SignInForm>,
) -> Result<Response, WebError> {
    // The form's token must be the cookie's (a page of this browser sent it) and signed by
    // this server within the hour (a cookie set by someone else cannot be made up).
    let expected = cookie(&headers, SIGN_IN_COOKIE).ok_or(WebError::Forbidden)?;
    let key = sign_in_key(&state).await?;
    if !same_secret(expected, &form.csrf) || !valid_sign_in_token(key, &form.csrf, now_seconds()) {
        return Err(WebError::Forbidden);
    }
    let token = form.token.trim();
    let token_hash = hash_token(token);
    let plan = if token.is_empty() {
        None
    } else {
        state
            .store
            .plan_for_token(&token_hash)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot look up a token");
                WebError::Internal
            })?
    };
    let Some((plan, grant)) = plan else {
        let reason = if token.is_empty() {
            "Enter an API token."
        } else {
            "This token is not valid, or it was revoked."
        };
        let errors = Errors::one("token", reason);
        return Ok(respond(
            StatusCode::UNAUTHORIZED,
            sign_in_form(&form.csrf, &errors),
        ));
    };
    let id = random_secret();
    let by = Actor::token(Channel::Page, &token_hash, grant.name, address);
    state
        .store
        .create_session(
            &NewSession {
                plan: plan.id,
                id_hash: hash_token(&id),
                token_hash,
                csrf: random_secret(),
                expires_at: Timestamp::now().plus_millis(SESSION_MILLIS),
            },
            &by,
        )
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot record a web session");
            WebError::Internal
        })?;
    let mut response = Redirect::to("/groups").into_response();
    let secure = secure_attribute(&headers);
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        header_value(format!(
            "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}"
        )),
    );
    cookies.append(
        header::SET_COOKIE,
        header_value(format!(
            "{SIGN_IN_COOKIE}=; Path=/signin; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
        )),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(state): State<WebState>,
    session: Session,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&form.csrf)?;
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        state
            .store
            .delete_session(&hash_token(id))
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot end a web session");
                WebError::Internal
            })?;
    }
    let mut response = Redirect::to("/signin").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        header_value(format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            secure_attribute(&headers)
        )),
    );
    Ok(response)
}

fn sign_in_form(csrf: &str, errors: &Errors) -> maud::Markup {
    page_signed_out(
        "Sign in",
        html! {
            h1 { "Sign in to Roster" }
            p { "Use one of your plan's API tokens (" code { "roster plans create" } " or "
                code { "roster tokens create" } " prints one)." }
            (errors.summary())
            form method="post" action="/signin" class="stack" {
                input type="hidden" name="csrf" value=(csrf);
                div.field {
                    label for="token" { "API token" }
                    // The page's one field: typing starts there.
                    input id="token" name="token" type="password" autofocus
                        aria-invalid=[errors.has("token").then_some("true")]
                        aria-describedby=[errors.has("token").then(|| error_id("token"))];
                    (errors.message("token"))
                }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

fn sign_in_cookie(csrf: &str, headers: &HeaderMap) -> HeaderValue {
    header_value(format!(
        "{SIGN_IN_COOKIE}={csrf}; Path=/signin; HttpOnly; SameSite=Strict{}",
        secure_attribute(headers)
    ))
}

/// Roster speaks plain HTTP; behind a TLS-terminating proxy that says so, cookies are `Secure`.
fn secure_attribute(headers: &HeaderMap) -> &'static str {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    if forwarded_https { "; Secure" } else { "" }
}

fn header_value(text: String) -> HeaderValue {
    // Only hex secrets and fixed text are put in cookies.
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn sign_in_key(state: &WebState) -> Result<&[u8], WebError> {
    state
        .sign_in_key
        .get_or_try_init(|| async {
            let secret = state
                .store
                .server_secret(SIGN_IN_SECRET, &random_secret())
                .await?;
            Ok::<_, crate::store::StoreError>(secret.into_bytes())
        })
        .await
        .map(Vec::as_slice)
        .map_err(|error| {
            tracing::error!(%error, "cannot read the sign-in secret");
            WebError::Internal
        })
}

fn now_seconds() -> i64 {
    Timestamp::now().millis() / 1000
}

/// `nonce.expiry.signature`: random, expiring, and signed with the server's secret.
fn sign_in_token(key: &[u8], now: i64) -> String {
    let mut nonce = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    let payload = format!("{}.{}", hex::encode(nonce), now + SIGN_IN_FORM_SECONDS);
    let signature = hex::encode(sign_in_mac(key, &payload).finalize().into_bytes());
    format!("{payload}.{signature}")
}

fn valid_sign_in_token(key: &[u8], token: &str, now: i64) -> bool {
    let Some((payload, signature)) = token.rsplit_once('.') else {
        return false;
    };
    let fresh = payload
        .split_once('.')
        .and_then(|(_, expires)| expires.parse::<i64>().ok())
        .is_some_and(|expires| now < expires);
    let Ok(signature) = hex::decode(signature) else {
        return false;
    };
    // Checked in constant time.
    fresh && sign_in_mac(key, payload).verify_slice(&signature).is_ok()
}

fn sign_in_mac(key: &[u8], payload: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(b"roster sign-in form\0");
    mac.update(payload.as_bytes());
    mac
}

/// Compares two secrets in time that does not depend on where they first differ.
fn same_secret(expected: &str, provided: &str) -> bool {
    expected.len() == provided.len()
        && expected
            .bytes()
            .zip(provided.bytes())
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; roster_session=abc"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn sign_in_tokens_are_signed_and_expire() {
        let key = b"the server's secret";
        let token = sign_in_token(key, 1000);
        assert!(valid_sign_in_token(key, &token, 1000));
        assert!(valid_sign_in_token(
            key,
            &token,
            1000 + SIGN_IN_FORM_SECONDS - 1
        ));
        assert!(!valid_sign_in_token(
            key,
            &token,
            1000 + SIGN_IN_FORM_SECONDS
        ));
        assert!(!valid_sign_in_token(b"another secret", &token, 1000));
        let (payload, _) = token.rsplit_once('.').unwrap();
        let (nonce, _) = payload.split_once('.').unwrap();
        let extended = format!("{nonce}.{}", 1000 + 10 * SIGN_IN_FORM_SECONDS);
        let forged = format!("{extended}.{}", token.rsplit_once('.').unwrap().1);
        assert!(!valid_sign_in_token(key, &forged, 2000));
        assert!(!valid_sign_in_token(key, &"0".repeat(64), 1000));
        assert!(!valid_sign_in_token(key, "", 1000));
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret("abcd", "abcd"));
        assert!(!same_secret("abcd", "abce"));
        assert!(!same_secret("abcd", "abc"));
        assert!(!same_secret("abcd", ""));
    }
}
