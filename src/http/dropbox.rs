//! The dropbox (SPEC §6, compat): upload, preview, crop.
//!
//! The upload runs in explicit stages: body limit → CSRF (header, or a form field before the
//! file part) → quota reservation → the file part streamed with a bound → sniff, header
//! limits, decode, orient, fit, encode (`imaging::ingest`, capped by a semaphore, off the
//! async workers) → durable blob → commit. A [`PendingUpload`] guard removes the reservation
//! and any written blob unless the commit succeeded, also when the client goes away.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use super::error::ApiError;
use super::extract::{Form, Query};
use super::images::{image_work, png_response, render};
use super::openapi::{CropDoc, CropForm, ErrorDoc, UploadForm};
use crate::app::AppState;
use crate::auth::{LoggedIn, Session};
use crate::blobs::{picture_key, BlobKey};
use crate::imaging::geometry::Rect;
use crate::imaging::{self, ImageError, Limits};
use crate::meta::{now_ms, NewPicture, PictureRecord, Reservation};

/// A body may exceed `max_upload_bytes` by this much (multipart framing, small fields)
/// before it is refused unread.
pub const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// The form field that carries the image, preferred over other file parts.
const PREFERRED_PART: &str = "Profile";

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Unsupported => ApiError::UnsupportedMediaType(e.to_string()),
            ImageError::SideTooLong { .. } => {
                ApiError::Unprocessable("side_too_long", e.to_string())
            }
            ImageError::TooManyPixels { .. } => {
                ApiError::Unprocessable("too_many_pixels", e.to_string())
            }
            ImageError::Undecodable => ApiError::Unprocessable("undecodable", e.to_string()),
            ImageError::Encode(_) => ApiError::Internal(e.to_string()),
        }
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!("upload exceeds max_upload_bytes ({limit} bytes)"))
}

fn multipart_error(e: multer::Error, limit: u64) -> ApiError {
    match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            too_large(limit)
        }
        _ => ApiError::BadRequest("bad_multipart", "malformed multipart body".into()),
    }
}

fn retry_secs(until: i64, now: i64) -> u64 {
    u64::try_from((until - now + 999) / 1000)
        .unwrap_or(1)
        .max(1)
}

/// Removes a reservation and its blob unless [`PendingUpload::committed`] was called.
struct PendingUpload {
    state: AppState,
    id: i64,
    blob: Option<BlobKey>,
    committed: bool,
}

impl PendingUpload {
    fn committed(mut self) -> i64 {
        self.committed = true;
        self.id
    }
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let state = self.state.clone();
        let id = self.id;
        let blob = self.blob.take();
        // Drop cannot wait; the clean-up runs on its own. Should it fail (store down), the
        // sweeper removes the expired reservation and the orphan blob later.
        tokio::spawn(async move {
            if let Some(key) = blob {
                if let Err(e) = state.blobs.delete(&key).await {
                    tracing::warn!(id, error = %e, "could not remove the blob of a failed upload");
                }
            }
            if let Err(e) = state.meta.abandon_picture(id).await {
                tracing::warn!(id, error = %e, "could not remove the reservation of a failed upload");
            }
        });
    }
}

async fn reserve(state: &AppState, session: &Session) -> Result<PendingUpload, ApiError> {
    let settings = &session.tenant.settings;
    let now = now_ms();
    let ttl = i64::try_from(settings.dropbox_ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let reservation = state
        .meta
        .reserve_picture(&NewPicture {
            tenant: &session.tenant.name,
            owner: &session.user.id,
            now,
            expires_at: now + ttl,
            max_live: settings.max_live_pictures,
            per_minute: settings.uploads_per_minute,
        })
        .await?;
    match reservation {
        Reservation::Granted(id) => Ok(PendingUpload {
            state: state.clone(),
            id,
            blob: None,
            committed: false,
        }),
        Reservation::TooManyLive { until } => Err(ApiError::TooManyRequests {
            code: "too_many_live_pictures",
            message: format!(
                "too many pictures in the dropbox; max_live_pictures is {}",
                settings.max_live_pictures
            ),
            retry_after: retry_secs(until, now),
        }),
        Reservation::TooFast { until } => Err(ApiError::TooManyRequests {
            code: "upload_rate_exceeded",
            message: format!(
                "too many uploads; uploads_per_minute is {}",
                settings.uploads_per_minute
            ),
            retry_after: retry_secs(until, now),
        }),
    }
}

/// What the upload checks while the parts stream by: the CSRF token of a form field, and,
/// before the first file byte is read, the CSRF decision and the quota reservation.
#[async_trait::async_trait]
pub trait PartGate: Send {
    /// A part that is not a file.
    async fn text_part(&mut self, name: &str, field: multer::Field<'_>) -> Result<(), ApiError>;
    /// Called before each file part that will be read.
    async fn before_file(&mut self) -> Result<(), ApiError>;
}

/// Lets everything through (for the fuzzer and tools).
pub struct OpenGate;

#[async_trait::async_trait]
impl PartGate for OpenGate {
    async fn text_part(&mut self, _: &str, _: multer::Field<'_>) -> Result<(), ApiError> {
        Ok(())
    }
    async fn before_file(&mut self) -> Result<(), ApiError> {
        Ok(())
    }
}

struct UploadGate<'a> {
    state: &'a AppState,
    session: &'a Session,
    csrf_field: String,
    csrf_ok: bool,
    limit: u64,
    pending: Option<PendingUpload>,
}

#[async_trait::async_trait]
impl PartGate for UploadGate<'_> {
    async fn text_part(&mut self, name: &str, field: multer::Field<'_>) -> Result<(), ApiError> {
        if !self.csrf_ok && name.eq_ignore_ascii_case(&self.csrf_field) {
            let token = read_part(field, self.limit).await?;
            let token = String::from_utf8_lossy(&token);
            self.session.check_csrf_token(Some(token.trim()))?;
            self.csrf_ok = true;
        }
        Ok(())
    }

    async fn before_file(&mut self) -> Result<(), ApiError> {
        if !self.csrf_ok {
            self.session.check_csrf_token(None)?;
        }
        if self.pending.is_none() {
            self.pending = Some(reserve(self.state, self.session).await?);
        }
        Ok(())
    }
}

/// The image of a multipart body: the `Profile` file part, else the first file part.
/// Reading stops at the `Profile` part; parts after it are never read.
pub async fn pick_image_part(
    multipart: &mut multer::Multipart<'_>,
) -> Result<Option<Bytes>, ApiError> {
    pick_image_part_gated(multipart, u64::MAX, &mut OpenGate).await
}

async fn pick_image_part_gated(
    multipart: &mut multer::Multipart<'_>,
    limit: u64,
    gate: &mut impl PartGate,
) -> Result<Option<Bytes>, ApiError> {
    let mut first: Option<Bytes> = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        let name = field.name().unwrap_or("").to_string();
        if field.file_name().is_none() {
            gate.text_part(&name, field).await?;
            continue;
        }
        let preferred = name == PREFERRED_PART;
        if first.is_some() && !preferred {
            continue;
        }
        gate.before_file().await?;
        let bytes = read_part(field, limit).await?;
        if preferred {
            return Ok(Some(bytes));
        }
        first = Some(bytes);
    }
    Ok(first)
}

/// Reads one part whole; multer stops it at the per-part limit.
async fn read_part(mut field: multer::Field<'_>, limit: u64) -> Result<Bytes, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// `POST /api/dropbox/pictures`
#[utoipa::path(post, path = "/api/dropbox/pictures", tag = "dropbox", params(("wrapInHTML" = Option<bool>, Query, description = "Answer with the HTML wrapper"), ("document.domain" = Option<String>, Query, description = "Domain for the wrapper's script")), request_body(content = UploadForm, content_type = "multipart/form-data"), responses((status = 200, description = "The PictureID (text/plain), or the HTML wrapper", content_type = "text/plain", body = String), (status = 400, description = "Bad multipart or no file part"), (status = 401, description = "Not logged in or CSRF"), (status = 413, description = "Over max_upload_bytes"), (status = 415, description = "Not JPEG, PNG, GIF, BMP or WebP"), (status = 422, description = "Over max_side or max_pixels, or undecodable", body = ErrorDoc), (status = 429, description = "max_live_pictures or uploads_per_minute (Retry-After)"), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn upload(
    State(state): State<AppState>,
    LoggedIn(session): LoggedIn,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = session.tenant.settings.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(too_large(limit));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::BadRequest(
            "bad_multipart",
            "expected a multipart/form-data body".into(),
        )
    })?;

    // CSRF: the header, or (for hidden-iframe posts) a form field before the file part.
    let csrf_field = session.tenant.csrf_header();
    let mut csrf_ok = !session.csrf_required(&Method::POST);
    if !csrf_ok {
        if let Some(token) = session.csrf_from_headers(&headers) {
            session.check_csrf_token(Some(token))?;
            csrf_ok = true;
        }
    }

    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(limit.saturating_add(MULTIPART_OVERHEAD))
            .per_field(limit)
            .for_field(csrf_field.clone(), 1024),
    );
    let mut multipart =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut gate = UploadGate {
        state: &state,
        session: &session,
        csrf_field,
        csrf_ok,
        limit,
        pending: None,
    };
    let bytes = pick_image_part_gated(&mut multipart, limit, &mut gate).await?;
    let (Some(mut pending), Some(bytes)) = (gate.pending.take(), bytes) else {
        return Err(ApiError::BadRequest(
            "no_file_part",
            "the request has no file part".into(),
        ));
    };

    let settings = &session.tenant.settings;
    let limits = Limits {
        max_side: settings.max_side,
        max_pixels: settings.max_pixels,
    };
    let master_size = state.config.master_size;
    state.metrics.upload_bytes.inc_by(bytes.len() as u64);
    let master = image_work(&state, move || imaging::ingest(&bytes, limits, master_size)).await??;
    state
        .metrics
        .decode_seconds
        .observe(master.decode_time.as_secs_f64());
    state
        .metrics
        .encode_seconds
        .observe(master.encode_time.as_secs_f64());

    let key = picture_key(pending.id);
    pending.blob = Some(key.clone());
    state
        .blobs
        .put_durable(&key, Bytes::from(master.png))
        .await?;
    state
        .meta
        .commit_picture(pending.id, master.width, master.height)
        .await?;
    let id = pending.committed();
    tracing::info!(
        picture = id,
        width = master.width,
        height = master.height,
        "picture uploaded"
    );
    Ok(([(header::CONTENT_TYPE, "text/plain")], id.to_string()).into_response())
}

fn parse_picture_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::BadRequest("bad_id", "PictureID must be a positive integer".into())
        })
}

/// A live picture of the caller's tenant, or 404.
async fn live_picture(
    state: &AppState,
    session: &Session,
    id: i64,
) -> Result<PictureRecord, ApiError> {
    state
        .meta
        .picture(&session.tenant.name, id)
        .await?
        .filter(|p| p.is_live(now_ms()))
        .ok_or_else(|| ApiError::not_found("picture"))
}

/// `size=N` must be a positive integer when present.
pub fn size_param(query: &HashMap<String, String>) -> Result<Option<u32>, ApiError> {
    match query.get("size") {
        None => Ok(None),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::BadRequest("bad_size", "size must be a positive integer".into())
            }),
    }
}

/// `GET /api/dropbox/pictures/{id}[?size=N]`
#[utoipa::path(get, path = "/api/dropbox/pictures/{id}", tag = "dropbox", params(("id" = i64, Path, description = "PictureID"), ("size" = Option<u32>, Query, description = "Fit within size×size, never upscaled")), responses((status = 200, description = "PNG", content_type = "image/png"), (status = 400, description = "Bad id or size"), (status = 401, description = "Not logged in"), (status = 404, description = "Unknown, expired, attached, or another tenant's"), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn get(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let id = parse_picture_id(&id)?;
    let size = size_param(&query)?;
    let picture = live_picture(&state, &session, id).await?;
    let png = state.blobs.get(&picture_key(id)).await?;
    let png = match size {
        Some(n) if n < picture.width.max(picture.height) => {
            render(&state, png, move |img| imaging::resize_to_fit(img, n)).await?
        }
        _ => png,
    };
    Ok(png_response(png, "private, no-cache"))
}

/// `PUT /api/dropbox/pictures/{id}` with form fields `x`, `y`, `w`, `h`.
#[utoipa::path(put, path = "/api/dropbox/pictures/{id}", tag = "dropbox", params(("id" = i64, Path, description = "PictureID")), request_body(content = CropForm, content_type = "application/x-www-form-urlencoded"), responses((status = 200, description = "Crop stored", body = CropDoc), (status = 400, description = "Not integers, empty, or outside the master"), (status = 401, description = "Not logged in or CSRF"), (status = 404, description = "Unknown, expired, or not the caller's"), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn crop(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let id = parse_picture_id(&id)?;
    let picture = live_picture(&state, &session, id).await?;
    if picture.owner != session.user.id && !session.user.site_admin {
        return Err(ApiError::not_found("picture"));
    }
    let field = |name: &str| -> Result<u32, ApiError> {
        form.get(name)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .ok_or_else(|| {
                ApiError::BadRequest("bad_crop", format!("{name} must be a non-negative integer"))
            })
    };
    let rect = Rect {
        x: field("x")?,
        y: field("y")?,
        w: field("w")?,
        h: field("h")?,
    };
    if !rect.fits_in(picture.width, picture.height) {
        return Err(ApiError::BadRequest(
            "bad_crop",
            format!(
                "the crop must be a non-empty rectangle inside the {}×{} picture",
                picture.width, picture.height
            ),
        ));
    }
    if !state.meta.set_crop(id, rect, now_ms()).await? {
        return Err(ApiError::not_found("picture"));
    }
    Ok(axum::Json(json!({
        "PictureID": id,
        "x": rect.x,
        "y": rect.y,
        "w": rect.w,
        "h": rect.h,
    }))
    .into_response())
}
