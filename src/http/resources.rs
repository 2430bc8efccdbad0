//! Users, apps, APIs, groups and businesses (SPEC §5): create, read, update.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::Json;
use super::openapi::{ErrorDoc, ResourceDoc, UserCreated};
use crate::app::AppState;
use crate::auth::extract::load_resource;
use crate::auth::{Manager, Session, SiteAdmin};
use crate::meta::{Kind, NewUser, Resource, StoreError};

const MAX_NAME: usize = 200;
const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 1024;

/// The URL of a resource's avatar: versioned (immutable) while it has one.
pub fn avatar_url(r: &Resource) -> String {
    match &r.avatar_version {
        Some(v) => format!("/api/{}/{}/avatars/{v}.png", r.kind, r.id),
        None => format!("/api/{}/{}/avatar", r.kind, r.id),
    }
}

pub fn resource_json(r: &Resource) -> Value {
    json!({
        "ID": r.id,
        "Name": r.name,
        "Admins": r.admins,
        "HasPicture": r.avatar_version.is_some(),
        "AvatarVersionID": r.avatar_version,
        "AvatarURL": avatar_url(r),
    })
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(ApiError::BadRequest(
            "bad_name",
            format!("Name must be 1 to {MAX_NAME} characters"),
        ));
    }
    Ok(name.to_string())
}

pub fn check_password(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(ApiError::BadRequest(
            "bad_password",
            format!("Password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

pub fn check_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(ApiError::BadRequest(
            "bad_email",
            "Email is not an email address".into(),
        ));
    }
    Ok(email.to_string())
}

/// Every admin must be a user of the tenant.
async fn check_admins(state: &AppState, tenant: &str, admins: &[String]) -> Result<(), ApiError> {
    for admin in admins {
        if state.meta.user_by_id(tenant, admin).await?.is_none() {
            return Err(ApiError::BadRequest(
                "unknown_admin",
                format!("Admins: {admin} is not a user of this tenant"),
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct NewUserBody {
    email: String,
    password: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    site_admin: bool,
}

/// `POST /api/users` (site admin).
#[utoipa::path(post, path = "/api/users", tag = "resources", request_body = NewUserBody, responses((status = 201, description = "Created", body = UserCreated), (status = 400, description = "Bad email, password, name or JSON", body = ErrorDoc), (status = 401, description = "Not logged in or CSRF"), (status = 403, description = "Not a site admin"), (status = 409, description = "Email already used in the tenant", body = ErrorDoc), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn create_user(
    State(state): State<AppState>,
    SiteAdmin(session): SiteAdmin,
    Json(body): Json<NewUserBody>,
) -> Result<Response, ApiError> {
    let email = check_email(&body.email)?;
    check_password(&body.password)?;
    let name = check_name(body.name.as_deref().unwrap_or(&email))?;
    let password_hash = state.passwords.hash(body.password).await?;
    let user = state
        .meta
        .create_user(NewUser {
            tenant: session.tenant.name.clone(),
            email,
            name,
            password_hash,
            site_admin: body.site_admin,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::Conflict(
                "email_taken",
                "an account with this email already exists in this tenant".into(),
            ),
            other => other.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "UserID": user.id,
            "Email": user.email,
            "Name": user.name,
            "SiteAdmin": user.site_admin,
        })),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct NewResourceBody {
    name: String,
    #[serde(default)]
    admins: Vec<String>,
}

async fn create(
    state: &AppState,
    session: &Session,
    kind: Kind,
    body: NewResourceBody,
    creator_is_admin: bool,
) -> Result<Response, ApiError> {
    let name = check_name(&body.name)?;
    let mut admins = body.admins;
    if creator_is_admin && !admins.contains(&session.user.id) {
        admins.insert(0, session.user.id.clone());
    }
    admins.dedup();
    check_admins(state, &session.tenant.name, &admins).await?;
    let r = state
        .meta
        .create_resource(&session.tenant.name, kind, &name, &admins)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(resource_json(&r))).into_response())
}

/// `POST /api/apps` (any user, who becomes an admin of the app).
#[utoipa::path(post, path = "/api/apps", tag = "resources", request_body = NewResourceBody, responses((status = 201, description = "Created; the caller is an admin", body = ResourceDoc), (status = 400, description = "Bad name, admins or JSON", body = ErrorDoc), (status = 401, description = "Not logged in or CSRF"), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn create_app(
    State(state): State<AppState>,
    session: Session,
    Json(body): Json<NewResourceBody>,
) -> Result<Response, ApiError> {
    create(&state, &session, Kind::Apps, body, true).await
}

const ADMIN_CREATED: &str = "Created";

/// `POST /api/apis` (site admin).
#[utoipa::path(post, path = "/api/apis", tag = "resources", request_body = NewResourceBody,
    responses((status = 201, description = ADMIN_CREATED, body = ResourceDoc),
        (status = 400, description = "Bad name, admins or JSON"), (status = 401, description = "Not logged in or CSRF"),
        (status = 403, description = "Not a site admin"), (status = 503, description = "Store unavailable")))]
pub async fn create_api(
    State(state): State<AppState>,
    SiteAdmin(session): SiteAdmin,
    Json(body): Json<NewResourceBody>,
) -> Result<Response, ApiError> {
    create(&state, &session, Kind::Apis, body, false).await
}

/// `POST /api/groups` (site admin).
#[utoipa::path(post, path = "/api/groups", tag = "resources", request_body = NewResourceBody,
    responses((status = 201, description = ADMIN_CREATED, body = ResourceDoc),
        (status = 400, description = "Bad name, admins or JSON"), (status = 401, description = "Not logged in or CSRF"),
        (status = 403, description = "Not a site admin"), (status = 503, description = "Store unavailable")))]
pub async fn create_group(
    State(state): State<AppState>,
    SiteAdmin(session): SiteAdmin,
    Json(body): Json<NewResourceBody>,
) -> Result<Response, ApiError> {
    create(&state, &session, Kind::Groups, body, false).await
}

/// `POST /api/businesses` (site admin).
#[utoipa::path(post, path = "/api/businesses", tag = "resources", request_body = NewResourceBody,
    responses((status = 201, description = ADMIN_CREATED, body = ResourceDoc),
        (status = 400, description = "Bad name, admins or JSON"), (status = 401, description = "Not logged in or CSRF"),
        (status = 403, description = "Not a site admin"), (status = 503, description = "Store unavailable")))]
pub async fn create_business(
    State(state): State<AppState>,
    SiteAdmin(session): SiteAdmin,
    Json(body): Json<NewResourceBody>,
) -> Result<Response, ApiError> {
    create(&state, &session, Kind::Businesses, body, false).await
}

/// `GET /api/{kind}/{id}` (any user of the tenant).
#[utoipa::path(get, path = "/api/{kind}/{id}", tag = "resources", params(("kind" = String, Path, description = "users, apps, apis, groups or businesses"), ("id" = String, Path, description = "{uuid}.{tenant}")), responses((status = 200, description = "The resource", body = ResourceDoc), (status = 400, description = "Malformed id"), (status = 401, description = "Not logged in"), (status = 404, description = "Unknown, or another tenant's"), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn get(
    State(state): State<AppState>,
    session: Session,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let r = load_resource(&state, &session.tenant, &kind, &id).await?;
    Ok(axum::Json(resource_json(&r)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    admins: Option<Vec<String>>,
    /// A dropbox PictureID to attach, as a number or a decimal string; `""` or null: none.
    #[serde(default, rename = "PictureID")]
    #[schema(value_type = Option<i64>)]
    picture_id: Option<Value>,
}

/// `PictureID` as a number or a decimal string; `""` and `null` mean no change.
pub fn picture_id(value: Option<&Value>) -> Result<Option<i64>, ApiError> {
    let bad = || {
        ApiError::BadRequest(
            "bad_picture_id",
            "PictureID must be a positive integer".into(),
        )
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(bad),
        Some(Value::Number(n)) => n.as_i64().filter(|n| *n > 0).map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// `PUT /api/{kind}/{id}` (manager): `Name`, `Admins` (site admin only), `PictureID`.
#[utoipa::path(put, path = "/api/{kind}/{id}", tag = "resources", params(("kind" = String, Path, description = "users, apps, apis, groups or businesses"), ("id" = String, Path, description = "{uuid}.{tenant}")), request_body = UpdateBody, responses((status = 200, description = "Updated (and the picture attached)", body = ResourceDoc), (status = 400, description = "Bad name, admins, PictureID or JSON"), (status = 401, description = "Not logged in or CSRF"), (status = 403, description = "Not a manager, or Admins by a non-site-admin"), (status = 404, description = "Unknown resource, or a PictureID that is not the caller's live picture"), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn update(
    State(state): State<AppState>,
    Manager { session, resource }: Manager,
    Json(body): Json<UpdateBody>,
) -> Result<Response, ApiError> {
    let name = body.name.as_deref().map(check_name).transpose()?;
    if let Some(admins) = &body.admins {
        if !session.user.site_admin {
            return Err(ApiError::Forbidden(
                "only a site admin may change Admins".into(),
            ));
        }
        check_admins(&state, &session.tenant.name, admins).await?;
    }
    let picture = picture_id(body.picture_id.as_ref())?;
    // The attach goes first: if the picture is refused, nothing else changes either.
    if let Some(picture) = picture {
        super::avatars::attach(&state, &session, &resource, picture).await?;
    }
    if name.is_some() || body.admins.is_some() {
        state
            .meta
            .update_resource(
                &session.tenant.name,
                resource.kind,
                &resource.id,
                name.as_deref(),
                body.admins.as_deref(),
            )
            .await?;
    }
    let r = state
        .meta
        .resource(&session.tenant.name, resource.kind, &resource.id)
        .await?
        .ok_or_else(|| ApiError::not_found("resource"))?;
    Ok(axum::Json(resource_json(&r)).into_response())
}
