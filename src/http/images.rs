//! Image responses and image work shared by the dropbox and the avatars: the restrictive
//! headers of every image, and the cap on concurrent decodes.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::error::ApiError;
use crate::app::AppState;
use crate::imaging::{self, ImageError};

/// The headers every image response carries: no script may run in or from it.
pub const IMAGE_CSP: &str = "default-src 'none'; sandbox";

/// An `image/png` response with the restrictive headers every image gets.
pub fn png_response(bytes: Bytes, cache_control: &'static str) -> Response {
    let mut response = (StatusCode::OK, Body::from(bytes)).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(IMAGE_CSP),
    );
    response
}

/// Runs image work off the async workers, at most `decode_permits` at a time (each holds
/// a whole frame in memory).
pub async fn image_work<T, F>(state: &AppState, f: F) -> Result<Result<T, ImageError>, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ImageError> + Send + 'static,
{
    let _permit = state
        .decode_permits
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("image task: {e}")))
}

/// Decodes a stored PNG, transforms it and encodes the result. A stored picture that does
/// not decode is a fault of ours (500), not of the client.
pub async fn render<F>(state: &AppState, png: Bytes, f: F) -> Result<Bytes, ApiError>
where
    F: FnOnce(image::DynamicImage) -> image::DynamicImage + Send + 'static,
{
    image_work(state, move || {
        let image = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
            .map_err(|_| ImageError::Undecodable)?;
        Ok(Bytes::from(imaging::encode_png(&f(image))?))
    })
    .await?
    .map_err(|e| ApiError::Internal(format!("stored picture: {e}")))
}
