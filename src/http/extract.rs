//! Request extractors of the HTTP layer: the tenant of the request, the client address, and
//! wrappers of axum's stock extractors whose rejections use our error format.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::AppState;
use crate::tenants::Tenant;

/// The tenant the `Host` header names (SPEC §3); 404 when none matches.
#[derive(Clone)]
pub struct CurrentTenant(pub Arc<Tenant>);

impl FromRequestParts<AppState> for CurrentTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(t) = parts.extensions.get::<CurrentTenant>() {
            return Ok(t.clone());
        }
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| parts.uri.host().map(str::to_string))
            .unwrap_or_default();
        let tenant = state
            .tenants
            .resolve(state.meta.as_ref(), &host)
            .await?
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        tracing::Span::current().record("tenant", tenant.name.as_str());
        let current = CurrentTenant(tenant);
        parts.extensions.insert(current.clone());
        Ok(current)
    }
}

/// The peer address of the connection (not a forwarded header, which clients can forge).
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        Ok(ClientAddress(address))
    }
}

/// `axum::Json` whose rejections are 400s in our format.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(ApiError::BadRequest("bad_json", rejection.body_text())),
        }
    }
}

/// `axum::Form` whose rejections are 400s in our format.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(Form(v)),
            Err(rejection) => Err(ApiError::BadRequest("bad_form", rejection.body_text())),
        }
    }
}

/// `axum::extract::Query` whose rejections are 400s in our format.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(rejection) => Err(ApiError::BadRequest("bad_query", rejection.body_text())),
        }
    }
}
