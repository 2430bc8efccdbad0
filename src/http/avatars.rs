//! Avatars (SPEC §7, compat): attach a dropbox picture to a resource, serve the current
//! avatar and immutable versions at any size, fall back to a default picture, delete a
//! user's picture.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::error::ApiError;
use super::extract::{CurrentTenant, Query};
use super::images::{image_work, png_response, render};
use crate::app::AppState;
use crate::auth::extract::load_resource;
use crate::auth::Session;
use crate::blobs::{avatar_master_key, avatar_rendition_key, picture_key, BlobError};
use crate::imaging::avatar::{default_picture, square_avatar};
use crate::imaging::{self, ImageError};
use crate::meta::{now_ms, Attach, Kind, Resource};
use crate::tenants::Tenant;

/// Largest `size` a client may ask for.
pub const MAX_SIZE: u32 = 1024;

/// Sizes whose renditions are kept in the blob store (portals show 25, 75 and 512); any
/// other size is rendered on demand, so each version holds at most this many renditions.
pub const CACHED_SIZES: &[u32] = &[16, 24, 25, 32, 48, 50, 64, 75, 96, 100, 128, 150, 200, 256];

const CURRENT_CACHE: &str = "no-cache";
const VERSION_CACHE_PRIVATE: &str = "private, max-age=31536000, immutable";
const VERSION_CACHE_PUBLIC: &str = "public, max-age=31536000, immutable";

fn new_version_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Attaches dropbox picture `picture_id` to `resource` (SPEC §7): the caller already
/// manages it. Renders the square avatar, stores it as a new version, makes it current and
/// consumes the picture, or answers 404 and changes nothing.
pub async fn attach(
    state: &AppState,
    session: &Session,
    resource: &Resource,
    picture_id: i64,
) -> Result<(), ApiError> {
    let tenant = &session.tenant.name;
    let not_found = || ApiError::not_found("picture");
    let picture = state
        .meta
        .picture(tenant, picture_id)
        .await?
        .filter(|p| p.is_live(now_ms()))
        .ok_or_else(not_found)?;
    let owner = (!session.user.site_admin).then_some(session.user.id.as_str());
    if owner.is_some_and(|o| o != picture.owner) {
        return Err(not_found());
    }
    let master = state.blobs.get(&picture_key(picture_id)).await?;
    let crop = picture.crop;
    let (png, side) = image_work(state, move || {
        let image = image::load_from_memory_with_format(&master, image::ImageFormat::Png)
            .map_err(|_| ImageError::Undecodable)?;
        let avatar = square_avatar(&image, crop);
        Ok((imaging::encode_png(&avatar)?, avatar.width()))
    })
    .await?
    .map_err(|e| ApiError::Internal(format!("stored picture: {e}")))?;

    let version = new_version_id();
    let key = avatar_master_key(&version);
    state.blobs.put_durable(&key, Bytes::from(png)).await?;
    let attached = state
        .meta
        .attach_avatar(&Attach {
            tenant,
            kind: resource.kind,
            resource_id: &resource.id,
            picture_id,
            owner,
            version_id: &version,
            side,
            now: now_ms(),
        })
        .await;
    match attached {
        Ok(true) => {
            // The dropbox master is no longer needed; the orphan sweep catches a failure.
            if let Err(e) = state.blobs.delete(&picture_key(picture_id)).await {
                tracing::warn!(picture_id, error = %e, "could not delete a consumed picture's blob");
            }
            tracing::info!(picture_id, version = %version, kind = %resource.kind, "avatar attached");
            Ok(())
        }
        other => {
            // Lost the race for the picture, or the store failed: this version never became
            // visible, so its blob goes.
            if let Err(e) = state.blobs.delete(&key).await {
                tracing::warn!(error = %e, "could not delete an unused avatar blob");
            }
            match other {
                Ok(_) => Err(not_found()),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Whoever may read avatars of the request's tenant: anyone when `public_avatars` is on,
/// else a logged-in user of the tenant.
pub struct AvatarReader {
    pub tenant: std::sync::Arc<Tenant>,
}

impl FromRequestParts<AppState> for AvatarReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let CurrentTenant(tenant) = CurrentTenant::from_request_parts(parts, state).await?;
        if !tenant.settings.public_avatars {
            Session::from_request_parts(parts, state).await?;
        }
        Ok(AvatarReader { tenant })
    }
}

/// `size` for avatars: 1 ≤ N ≤ 1024 (cache busters `cache`, `time`, `s` are ignored).
fn avatar_size(query: &HashMap<String, String>) -> Result<Option<u32>, ApiError> {
    match query.get("size") {
        None => Ok(None),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_SIZE).contains(n))
            .map(Some)
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "bad_size",
                    format!("size must be an integer from 1 to {MAX_SIZE}"),
                )
            }),
    }
}

/// The PNG of version `version` (stored side `side`) at `size`: the stored avatar, a cached
/// rendition, or one rendered now (and cached when `size` is a common one).
async fn version_png(
    state: &AppState,
    version: &str,
    side: u32,
    size: u32,
) -> Result<Bytes, ApiError> {
    let master_key = avatar_master_key(version);
    if size == side {
        return Ok(state.blobs.get(&master_key).await?);
    }
    let cached = CACHED_SIZES.contains(&size);
    let rendition_key = avatar_rendition_key(version, size);
    if cached {
        match state.blobs.get(&rendition_key).await {
            Ok(bytes) => return Ok(bytes),
            Err(BlobError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let master = state.blobs.get(&master_key).await?;
    let png = render(state, master, move |img| {
        imaging::resize_exact(&img, size, size)
    })
    .await?;
    if cached {
        // A cache: losing it costs a render, so no fsync; failing to write it is logged.
        if let Err(e) = state.blobs.put(&rendition_key, png.clone()).await {
            tracing::warn!(error = %e, "could not cache an avatar rendition");
        }
    }
    Ok(png)
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        })
}

fn with_etag(mut response: Response, etag: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

fn not_modified(etag: &str, cache_control: &'static str) -> Response {
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    with_etag(r, etag)
}

/// `GET /api/{kind}/{id}/avatar[?size=N]`: the current avatar, or the kind's default.
#[utoipa::path(get, path = "/api/{kind}/{id}/avatar", tag = "avatars", params(("kind" = String, Path, description = "users, apps, apis, groups or businesses"), ("id" = String, Path, description = "{uuid}.{tenant}"), ("size" = Option<u32>, Query, description = "1 to 1024: exactly size×size")), responses((status = 200, description = "PNG; Cache-Control no-cache with ETag; the kind's default picture when there is none", content_type = "image/png"), (status = 304, description = "If-None-Match matched"), (status = 400, description = "Bad size"), (status = 401, description = "Not logged in (unless public_avatars)"), (status = 404, description = "Unknown resource"), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn current(
    State(state): State<AppState>,
    reader: AvatarReader,
    Path((kind, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let size = avatar_size(&query)?;
    let resource = load_resource(&state, &reader.tenant, &kind, &id).await?;
    let Some(version) = &resource.avatar_version else {
        let size = size.unwrap_or(imaging::avatar::MAX_AVATAR_SIDE);
        let etag = format!("\"default-{}-{size}\"", resource.kind);
        if etag_matches(&headers, &etag) {
            return Ok(not_modified(&etag, CURRENT_CACHE));
        }
        let kind = resource.kind;
        let png = default_png(&state, kind, size).await?;
        return Ok(with_etag(png_response(png, CURRENT_CACHE), &etag));
    };
    let record = state
        .meta
        .avatar_version(&reader.tenant.name, resource.kind, &resource.id, version)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(format!("current avatar version {version} has no record"))
        })?;
    let size = size.unwrap_or(record.side);
    let etag = format!("\"{version}-{size}\"");
    if etag_matches(&headers, &etag) {
        return Ok(not_modified(&etag, CURRENT_CACHE));
    }
    let png = version_png(&state, version, record.side, size).await?;
    Ok(with_etag(png_response(png, CURRENT_CACHE), &etag))
}

async fn default_png(state: &AppState, kind: Kind, size: u32) -> Result<Bytes, ApiError> {
    let png = image_work(state, move || {
        imaging::encode_png(&default_picture(kind, size))
    })
    .await??;
    Ok(Bytes::from(png))
}

/// `GET /api/{kind}/{id}/avatars/{version}.png[?size=N]`: one version, immutable.
#[utoipa::path(get, path = "/api/{kind}/{id}/avatars/{file}", tag = "avatars", params(("kind" = String, Path, description = "users, apps, apis, groups or businesses"), ("id" = String, Path, description = "{uuid}.{tenant}"), ("file" = String, Path, description = "{AvatarVersionID}.png"), ("size" = Option<u32>, Query, description = "1 to 1024: exactly size×size")), responses((status = 200, description = "PNG, immutable (max-age one year)", content_type = "image/png"), (status = 304, description = "If-None-Match matched"), (status = 400, description = "Bad size"), (status = 401, description = "Not logged in (unless public_avatars)"), (status = 404, description = "Unknown version"), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn version(
    State(state): State<AppState>,
    reader: AvatarReader,
    Path((kind, id, file)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let size = avatar_size(&query)?;
    let resource = load_resource(&state, &reader.tenant, &kind, &id).await?;
    let version = file
        .strip_suffix(".png")
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ApiError::not_found("avatar version"))?;
    let record = state
        .meta
        .avatar_version(&reader.tenant.name, resource.kind, &resource.id, version)
        .await?
        .ok_or_else(|| ApiError::not_found("avatar version"))?;
    let cache = if reader.tenant.settings.public_avatars {
        VERSION_CACHE_PUBLIC
    } else {
        VERSION_CACHE_PRIVATE
    };
    let size = size.unwrap_or(record.side);
    let etag = format!("\"{version}-{size}\"");
    if etag_matches(&headers, &etag) {
        return Ok(not_modified(&etag, cache));
    }
    let png = version_png(&state, version, record.side, size).await?;
    Ok(with_etag(png_response(png, cache), &etag))
}

/// `DELETE /api/users/{UserID}/picture` (the user or a site admin): back to the default
/// picture. Other kinds can only replace their picture (405).
#[utoipa::path(delete, path = "/api/{kind}/{id}/picture", tag = "avatars", params(("kind" = String, Path, description = "users, apps, apis, groups or businesses"), ("id" = String, Path, description = "{uuid}.{tenant}")), responses((status = 200, description = "Users only: back to the default picture", content_type = "text/plain"), (status = 401, description = "Not logged in or CSRF"), (status = 403, description = "Not the user or a site admin"), (status = 405, description = "Other kinds can only replace their picture"), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn delete_picture(
    State(state): State<AppState>,
    session: Session,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if kind != Kind::Users.as_str() {
        return Ok(method_not_allowed(""));
    }
    let resource = load_resource(&state, &session.tenant, &kind, &id).await?;
    if !session.can_manage(&resource) {
        return Err(ApiError::forbidden());
    }
    state
        .meta
        .clear_avatar(&session.tenant.name, resource.kind, &resource.id)
        .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], "deleted").into_response())
}

/// 405 with the methods the path does allow.
fn method_not_allowed(allow: &'static str) -> Response {
    let mut r = StatusCode::METHOD_NOT_ALLOWED.into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}
