//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations: the
//! router is built from the same registrations (`api_routes`), so a routed operation is a
//! documented one. The schemas here describe bodies that handlers build as JSON.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The document as served, rendered once when the router is built.
#[derive(Clone)]
pub struct Document(pub Arc<String>);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pixdrop",
        description = "Picture dropbox and avatar service, wire-compatible with the Akana \
                       developer portal. State-changing calls carry the CSRF header \
                       `X-Csrf-Token_{tenant}`; the session is the cookie `AtmoAuthToken_{tenant}`. \
                       Errors are a text line, JSON `{code, message}` when `Accept` prefers JSON, \
                       or the HTML wrapper for `wrapInHTML=true` uploads."
    ),
    tags(
        (name = "login", description = "Sessions and CSRF"),
        (name = "resources", description = "Users, apps, APIs, groups, businesses"),
        (name = "dropbox", description = "Temporary pictures"),
        (name = "avatars", description = "Resource pictures"),
        (name = "operations", description = "Probes, metrics, this document")
    )
)]
pub struct ApiDoc;

/// `POST /api/login` answer (also `renewToken`).
#[derive(Serialize, ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct LoginState {
    userName: String,
    /// The UserID, `{uuid}.{tenant}`.
    userFDN: String,
    #[schema(example = "LoggedIn")]
    loginState: String,
    #[schema(example = "success")]
    status: String,
    avatarURL: String,
    /// Milliseconds since the epoch.
    authTokenValidUntil: i64,
}

/// A user, app, API, group or business.
#[derive(Serialize, ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct ResourceDoc {
    ID: String,
    Name: String,
    Admins: Vec<String>,
    HasPicture: bool,
    AvatarVersionID: Option<String>,
    /// `/api/{kind}/{id}/avatars/{AvatarVersionID}.png` while it has a picture, else
    /// `/api/{kind}/{id}/avatar`.
    AvatarURL: String,
}

/// `POST /api/users` answer.
#[derive(Serialize, ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct UserCreated {
    UserID: String,
    Email: String,
    Name: String,
    SiteAdmin: bool,
}

/// The multipart upload: the image is the `Profile` part, else the first file part. For
/// hidden-iframe posts the CSRF token may come as a field `X-Csrf-Token_{tenant}` before it.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct UploadForm {
    #[schema(format = Binary, value_type = String)]
    Profile: Vec<u8>,
}

/// A crop rectangle in the master's pixel space.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CropForm {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

/// The crop answer.
#[derive(Serialize, ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct CropDoc {
    PictureID: i64,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

/// Error body when `Accept` prefers JSON.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ErrorDoc {
    #[schema(example = "too_many_pixels")]
    code: String,
    message: String,
}

/// `GET /api/openapi.json`
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json")))]
pub async fn document(Extension(doc): Extension<Document>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_string(),
    )
        .into_response()
}
