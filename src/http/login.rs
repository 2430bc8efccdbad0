//! `POST /api/login`, `POST /api/login/renewToken`, `POST /api/logout` (SPEC §4, compat).

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::{ClientAddress, CurrentTenant, Json};
use super::openapi::{ErrorDoc, LoginState};
use super::resources::avatar_url;
use crate::app::AppState;
use crate::auth::tokens::{new_token, token_hash};
use crate::auth::{throttle, Session};
use crate::meta::{now_ms, Kind, SessionRecord, User};
use crate::tenants::Tenant;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    email: String,
    password: String,
}

fn cookie(name: &str, value: &str, http_only: bool, secure: bool, clear: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; SameSite=Lax");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    if clear {
        c.push_str("; Max-Age=0");
    }
    // Names are `[A-Za-z0-9_-]`-based and values base64url: always a valid header value.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The login JSON, also answered by renewToken.
async fn login_state(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    expires_at: i64,
) -> Result<serde_json::Value, ApiError> {
    let profile = state
        .meta
        .resource(&tenant.name, Kind::Users, &user.id)
        .await?;
    let avatar = profile
        .as_ref()
        .map(avatar_url)
        .unwrap_or_else(|| format!("/api/users/{}/avatar", user.id));
    Ok(json!({
        "userName": user.name,
        "userFDN": user.id,
        "loginState": "LoggedIn",
        "status": "success",
        "avatarURL": avatar,
        "authTokenValidUntil": expires_at,
    }))
}

fn ttl_ms(tenant: &Tenant) -> i64 {
    i64::try_from(tenant.settings.session_ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

#[utoipa::path(post, path = "/api/login", tag = "login", request_body = LoginBody, responses((status = 200, description = "Logged in; sets AtmoAuthToken_{tenant} (HttpOnly) and Csrf-Token_{tenant}", body = LoginState), (status = 400, description = "Malformed JSON", body = ErrorDoc), (status = 401, description = "Wrong email or password", body = ErrorDoc), (status = 404, description = "No tenant for this host"), (status = 429, description = "Too many failed logins (Retry-After)", body = ErrorDoc), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn login(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ClientAddress(address): ClientAddress,
    Json(body): Json<LoginBody>,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let email = body.email.trim();
    if let Some(retry_after) =
        throttle::retry_after(state.meta.as_ref(), &tenant.name, email, &address, now).await?
    {
        return Err(ApiError::TooManyRequests {
            code: "too_many_failed_logins",
            message: format!(
                "too many failed logins (limit {} per email, {} per address, in {} minutes); retry in {retry_after} s",
                throttle::EMAIL_LIMIT,
                throttle::ADDRESS_LIMIT,
                throttle::WINDOW.as_secs() / 60
            ),
            retry_after,
        });
    }
    let user = state.meta.user_by_email(&tenant.name, email).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = state.passwords.verify(body.password, hash).await?;
    let user = match user {
        Some(user) if ok => user,
        _ => {
            state
                .meta
                .record_login_failure(&tenant.name, email, &address, now)
                .await?;
            return Err(ApiError::Unauthorized(
                "bad_credentials",
                "wrong email or password".into(),
            ));
        }
    };
    state.meta.clear_login_failures(&tenant.name, email).await?;

    let token = new_token();
    let csrf = new_token();
    let expires_at = now + ttl_ms(&tenant);
    state
        .meta
        .create_session(&SessionRecord {
            token_hash: token_hash(&token),
            tenant: tenant.name.clone(),
            user_id: user.id.clone(),
            csrf_hash: token_hash(&csrf),
            expires_at,
        })
        .await?;
    let body = login_state(&state, &tenant, &user, expires_at).await?;
    let secure = state.config.cookie_secure;
    let mut response = axum::Json(body).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        cookie(&tenant.session_cookie(), &token, true, secure, false),
    );
    if tenant.settings.read_csrf || tenant.settings.write_csrf {
        headers.append(
            header::SET_COOKIE,
            cookie(&tenant.csrf_cookie(), &csrf, false, secure, false),
        );
    }
    Ok(response)
}

#[utoipa::path(post, path = "/api/login/renewToken", tag = "login", responses((status = 200, description = "Session extended", body = LoginState), (status = 401, description = "Not logged in, expired, or CSRF token missing or wrong"), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn renew(State(state): State<AppState>, session: Session) -> Result<Response, ApiError> {
    let expires_at = now_ms() + ttl_ms(&session.tenant);
    state
        .meta
        .extend_session(&session.record.token_hash, expires_at)
        .await?;
    let body = login_state(&state, &session.tenant, &session.user, expires_at).await?;
    Ok(axum::Json(body).into_response())
}

#[utoipa::path(post, path = "/api/logout", tag = "login", responses((status = 200, description = "Session ended; both cookies cleared"), (status = 401, description = "Not logged in or CSRF token wrong"), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn logout(State(state): State<AppState>, session: Session) -> Result<Response, ApiError> {
    state
        .meta
        .delete_session(&session.record.token_hash)
        .await?;
    let secure = state.config.cookie_secure;
    let tenant = &session.tenant;
    let mut response =
        axum::Json(json!({"loginState": "LoggedOut", "status": "success"})).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        cookie(&tenant.session_cookie(), "", true, secure, true),
    );
    headers.append(
        header::SET_COOKIE,
        cookie(&tenant.csrf_cookie(), "", false, secure, true),
    );
    Ok(response)
}
