//! The one HTTP error type, its status mapping, and how error bodies are written.
//!
//! Handlers return [`ApiError`]; its `IntoResponse` sets the status and attaches an
//! [`ErrorInfo`]. The [`render_errors`] middleware then writes the body in the form the
//! request asked for: a text line, JSON `{code, message}`, or the HTML wrapper of the
//! hidden-iframe upload. Responses that axum itself produced (unknown route, wrong method,
//! rejected extractor) get the same treatment with a generic message.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::blobs::BlobError;
use crate::meta::StoreError;

use super::wrapper;

/// Seconds a client should wait before retrying after a 503.
const UNAVAILABLE_RETRY_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("{1}")]
    Unauthorized(&'static str, String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{1}")]
    Unprocessable(&'static str, String),
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after: u64,
    },
    /// A metadata store failure; the status depends on its kind.
    #[error("{0}")]
    Store(StoreError),
    /// A blob store failure.
    #[error("{0}")]
    Blob(BlobError),
    /// The cause is logged, never shown.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The cause is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the renderer needs to write an error body.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest("bad_request", message.into())
    }

    pub fn not_logged_in() -> Self {
        ApiError::Unauthorized("not_logged_in", "not logged in".into())
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn forbidden() -> Self {
        ApiError::Forbidden("not allowed".into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(..) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(..) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(..) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(StoreError::NotFound) => StatusCode::NOT_FOUND,
            ApiError::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
            ApiError::Store(StoreError::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Blob(BlobError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Blob(BlobError::NotFound | BlobError::Mismatch(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Which backing store failed, for the store-error metric.
    pub fn backend(&self) -> Option<&'static str> {
        match self {
            ApiError::Store(StoreError::Unavailable(_) | StoreError::Internal(_)) => {
                Some("metadata")
            }
            ApiError::Blob(_) => Some("blobs"),
            _ => None,
        }
    }

    fn info(&self) -> ErrorInfo {
        let (code, message) = match self {
            ApiError::BadRequest(c, m)
            | ApiError::Unauthorized(c, m)
            | ApiError::Conflict(c, m)
            | ApiError::Unprocessable(c, m) => (*c, m.clone()),
            ApiError::Forbidden(m) => ("forbidden", m.clone()),
            ApiError::NotFound(m) => ("not_found", m.clone()),
            ApiError::PayloadTooLarge(m) => ("too_large", m.clone()),
            ApiError::UnsupportedMediaType(m) => ("unsupported_format", m.clone()),
            ApiError::TooManyRequests { code, message, .. } => (*code, message.clone()),
            ApiError::Store(StoreError::NotFound) => ("not_found", "record not found".into()),
            ApiError::Store(StoreError::Conflict(m)) => ("conflict", m.clone()),
            ApiError::Store(StoreError::Internal(_))
            | ApiError::Blob(BlobError::NotFound | BlobError::Mismatch(_)) => {
                ("internal", "internal server error".to_string())
            }
            ApiError::Store(StoreError::Unavailable(_))
            | ApiError::Blob(BlobError::Unavailable(_))
            | ApiError::Unavailable(_) => (
                "unavailable",
                "service temporarily unavailable, retry later".to_string(),
            ),
            ApiError::Internal(_) => ("internal", "internal server error".to_string()),
        };
        ErrorInfo { code, message }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        ApiError::Blob(e)
    }
}

/// Marks a response whose cause was a failure of a backing store.
#[derive(Debug, Clone, Copy)]
pub struct StoreFault(pub &'static str);

impl From<crate::auth::password::HashError> for ApiError {
    fn from(e: crate::auth::password::HashError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(cause = %self, "backing store unavailable");
        } else if status.is_server_error() {
            tracing::error!(cause = %self, "request failed");
        }
        let mut response = status.into_response();
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(UNAVAILABLE_RETRY_SECS),
            _ => None,
        };
        if let Some(store) = self.backend() {
            response.extensions_mut().insert(StoreFault(store));
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response.extensions_mut().insert(self.info());
        response
    }
}

/// The forms an answer can take.
#[derive(Debug, Clone, PartialEq)]
enum Form {
    Text,
    Json,
    /// The hidden-iframe wrapper (SPEC §6.4), with the requested `document.domain`.
    Html(Option<String>),
}

fn form_of(method: &Method, uri: &axum::http::Uri, headers: &HeaderMap) -> Form {
    if let Some(domain) = wrapper::requested(method, uri) {
        return Form::Html(domain);
    }
    if prefers_json(headers) {
        Form::Json
    } else {
        Form::Text
    }
}

/// Whether `Accept` ranks `application/json` at least as high as any text type it names.
fn prefers_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut json_q: f32 = 0.0;
    let mut text_q: f32 = 0.0;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/json" => json_q = json_q.max(q),
            "text/plain" | "text/*" | "text/html" => text_q = text_q.max(q),
            _ => {}
        }
    }
    json_q > 0.0 && json_q >= text_q
}

/// Generic text for responses that did not come from an [`ApiError`].
fn generic(status: StatusCode) -> ErrorInfo {
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    ErrorInfo { code, message }
}

/// Writes every error body, and wraps the upload's answers in HTML when asked to.
pub async fn render_errors(req: Request, next: Next) -> Response {
    let form = form_of(req.method(), req.uri(), req.headers());
    let response = next.run(req).await;
    let status = response.status();
    let info = response.extensions().get::<ErrorInfo>().cloned();
    let info = match info {
        Some(info) => info,
        None if status.is_client_error() || status.is_server_error() => generic(status),
        None => {
            return match form {
                Form::Html(domain) => wrap_success(response, domain.as_deref()).await,
                _ => response,
            }
        }
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let (content_type, body) = match form {
        Form::Text => ("text/plain; charset=utf-8", format!("{}\n", info.message)),
        Form::Json => (
            "application/json",
            serde_json::json!({"code": info.code, "message": info.message}).to_string(),
        ),
        Form::Html(domain) => (
            wrapper::CONTENT_TYPE,
            wrapper::document(status, &info.message, domain.as_deref()),
        ),
    };
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Response::from_parts(parts, Body::from(body))
}

async fn wrap_success(response: Response, domain: Option<&str>) -> Response {
    let (mut parts, body) = response.into_parts();
    // The upload's success body is a PictureID: a few bytes.
    let text = match to_bytes(body, 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => return ApiError::Internal("unwrappable body".into()).into_response(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(wrapper::CONTENT_TYPE),
    );
    let document = wrapper::document(parts.status, &text, domain);
    Response::from_parts(parts, Body::from(document))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn json_is_chosen_only_when_preferred() {
        assert!(prefers_json(&accept("application/json")));
        assert!(prefers_json(&accept(
            "application/json, text/javascript, */*; q=0.01"
        )));
        assert!(!prefers_json(&accept("*/*")));
        assert!(!prefers_json(&accept("text/plain, application/json;q=0.5")));
        assert!(!prefers_json(&HeaderMap::new()));
    }
}
