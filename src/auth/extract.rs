//! Authentication and permission as extractors, so that a handler's signature says who may
//! call it: [`LoggedIn`] (a live session, CSRF not yet checked), [`Session`] (CSRF checked
//! per the tenant's settings), [`SiteAdmin`], and [`Manager`] of a resource.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::{header, request::Parts, HeaderMap, Method};

use super::tokens::{token_hash, token_matches};
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::CurrentTenant;
use crate::meta::{now_ms, Kind, Resource, SessionRecord, User};
use crate::tenants::Tenant;

/// A logged-in caller of the request's tenant.
#[derive(Clone)]
pub struct Session {
    pub tenant: Arc<Tenant>,
    pub user: User,
    pub record: SessionRecord,
}

impl Session {
    /// Whether this request must carry the CSRF token (SPEC §4).
    pub fn csrf_required(&self, method: &Method) -> bool {
        let s = &self.tenant.settings;
        if method == Method::GET || method == Method::HEAD {
            s.read_csrf
        } else if method == Method::OPTIONS {
            false
        } else {
            s.write_csrf
        }
    }

    /// Checks a CSRF token given by the client against this session's, in constant time.
    pub fn check_csrf_token(&self, token: Option<&str>) -> Result<(), ApiError> {
        match token {
            Some(t) if token_matches(t, &self.record.csrf_hash) => Ok(()),
            Some(_) => Err(ApiError::Unauthorized(
                "csrf_token_invalid",
                "CSRF token is wrong".into(),
            )),
            None => Err(ApiError::Unauthorized(
                "csrf_token_missing",
                format!("CSRF header {} is missing", self.tenant.csrf_header()),
            )),
        }
    }

    /// The CSRF token from the request header, if any.
    pub fn csrf_from_headers<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        headers
            .get(self.tenant.csrf_header())
            .and_then(|v| v.to_str().ok())
    }

    pub fn can_manage(&self, resource: &Resource) -> bool {
        self.user.site_admin || resource.admins.contains(&self.user.id)
    }
}

/// Reads one cookie from the `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// A live session of the request's tenant; the CSRF token is not checked, for the routes
/// that accept it elsewhere (the upload's form field) or not at all.
pub struct LoggedIn(pub Session);

impl FromRequestParts<AppState> for LoggedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(s) = parts.extensions.get::<Session>() {
            return Ok(LoggedIn(s.clone()));
        }
        let CurrentTenant(tenant) = CurrentTenant::from_request_parts(parts, state).await?;
        let token =
            cookie(&parts.headers, &tenant.session_cookie()).ok_or_else(ApiError::not_logged_in)?;
        let record = state
            .meta
            .session(&token_hash(token))
            .await?
            .filter(|r| r.tenant == tenant.name && r.expires_at > now_ms())
            .ok_or_else(|| {
                ApiError::Unauthorized("session_expired", "session expired or unknown".into())
            })?;
        let user = state
            .meta
            .user_by_id(&tenant.name, &record.user_id)
            .await?
            .ok_or_else(ApiError::not_logged_in)?;
        tracing::Span::current().record("user", user.id.as_str());
        let session = Session {
            tenant,
            user,
            record,
        };
        parts.extensions.insert(session.clone());
        Ok(LoggedIn(session))
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let LoggedIn(session) = LoggedIn::from_request_parts(parts, state).await?;
        if session.csrf_required(&parts.method) {
            session.check_csrf_token(session.csrf_from_headers(&parts.headers))?;
        }
        Ok(session)
    }
}

/// A site admin of the request's tenant (403 for other users).
pub struct SiteAdmin(pub Session);

impl FromRequestParts<AppState> for SiteAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let session = Session::from_request_parts(parts, state).await?;
        if !session.user.site_admin {
            return Err(ApiError::Forbidden("site admins only".into()));
        }
        Ok(SiteAdmin(session))
    }
}

/// Parses the `{kind}/{id}` of a resource path: unknown kind → 404, malformed id → 400,
/// another tenant's id or an unknown one → 404.
pub async fn load_resource(
    state: &AppState,
    tenant: &Tenant,
    kind: &str,
    id: &str,
) -> Result<Resource, ApiError> {
    let kind: Kind = kind
        .parse()
        .map_err(|_| ApiError::not_found("resource kind"))?;
    let (_, id_tenant) =
        crate::meta::parse_id(id).ok_or_else(|| ApiError::bad_request("malformed id"))?;
    if id_tenant != tenant.name {
        return Err(ApiError::not_found(kind.as_str().trim_end_matches('s')));
    }
    state
        .meta
        .resource(&tenant.name, kind, id)
        .await?
        .ok_or_else(|| ApiError::not_found(kind.as_str().trim_end_matches('s')))
}

/// A caller who manages the resource of the path `/api/{kind}/{id}…`: the user themself,
/// an admin of the resource, or a site admin (403 for anyone else).
pub struct Manager {
    pub session: Session,
    pub resource: Resource,
}

impl FromRequestParts<AppState> for Manager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let session = Session::from_request_parts(parts, state).await?;
        let Path((kind, id)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("malformed resource path"))?;
        let resource = load_resource(state, &session.tenant, &kind, &id).await?;
        if !session.can_manage(&resource) {
            return Err(ApiError::forbidden());
        }
        Ok(Manager { session, resource })
    }
}
