//! The HTTP layer: the router, one file of handlers per area, the error type and the
//! extractors.

pub mod avatars;
pub mod dropbox;
pub mod error;
pub mod extract;
pub mod images;
pub mod login;
pub mod openapi;
pub mod ops;
pub mod resources;
pub mod wrapper;

use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Response};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every operation, registered together with its OpenAPI description.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(openapi::document))
        .routes(routes!(login::login))
        .routes(routes!(login::renew))
        .routes(routes!(login::logout))
        .routes(routes!(resources::create_user))
        .routes(routes!(resources::create_app))
        .routes(routes!(resources::create_api))
        .routes(routes!(resources::create_group))
        .routes(routes!(resources::create_business))
        .routes(routes!(dropbox::upload))
        .routes(routes!(dropbox::get, dropbox::crop))
        .routes(routes!(resources::get, resources::update))
        .routes(routes!(avatars::current))
        .routes(routes!(avatars::version))
        .routes(routes!(avatars::delete_picture))
}

/// The whole HTTP API. Tests drive it in-process; `pixdrop serve` binds it to a socket.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = api_routes().split_for_parts();
    let doc = openapi::Document(std::sync::Arc::new(
        doc.to_pretty_json().unwrap_or_else(|_| "{}".to_string()),
    ));
    routes
        .route_layer(axum::middleware::from_fn(ops::mark_route))
        .layer(axum::Extension(doc))
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
