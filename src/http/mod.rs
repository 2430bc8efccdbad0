//! The HTTP layer: the router, one file of handlers per area, the error type and the
//! extractors.

pub mod avatars;
pub mod dropbox;
pub mod error;
pub mod extract;
pub mod login;
pub mod ops;
pub mod resources;
pub mod wrapper;

use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::app::AppState;
use crate::meta::Kind;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP API. Tests drive it in-process; `pixdrop serve` binds it to a socket.
pub fn router(state: AppState) -> Router {
    let admin_kind = |kind: Kind| {
        post(
            move |axum::extract::State(state): axum::extract::State<AppState>, admin, body| {
                resources::create_by_admin(kind, state, admin, body)
            },
        )
    };
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/login", post(login::login))
        .route("/api/login/renewToken", post(login::renew))
        .route("/api/logout", post(login::logout))
        .route("/api/users", post(resources::create_user))
        .route("/api/apps", post(resources::create_app))
        .route("/api/apis", admin_kind(Kind::Apis))
        .route("/api/groups", admin_kind(Kind::Groups))
        .route("/api/businesses", admin_kind(Kind::Businesses))
        .route(wrapper::UPLOAD_PATH, post(dropbox::upload))
        .route(
            "/api/dropbox/pictures/{id}",
            get(dropbox::get).put(dropbox::crop),
        )
        .route(
            "/api/{kind}/{id}",
            get(resources::get).put(resources::update),
        )
        .route("/api/{kind}/{id}/avatar", get(avatars::current))
        .route("/api/{kind}/{id}/avatars/{file}", get(avatars::version))
        .route("/api/{kind}/{id}/picture", delete(avatars::delete_picture))
        .route_layer(axum::middleware::from_fn(ops::mark_route))
        .layer(axum::middleware::from_fn(error::render_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::track,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get(&X_REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        request_id = %id,
                        method = %req.method(),
                        path = %req.uri().path(),
                        route = tracing::field::Empty,
                        tenant = tracing::field::Empty,
                        user = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(|res: &Response<_>, latency: Duration, _: &Span| {
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        "answered"
                    );
                }),
        )
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(
            X_REQUEST_ID.clone(),
            MakeRequestUuid,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state)
}
