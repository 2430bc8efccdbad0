//! Operational endpoints and middleware: liveness and readiness probes, Prometheus
//! metrics, and the per-request accounting behind them.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::StoreFault;
use super::wrapper::UPLOAD_PATH;
use crate::meta::now_ms;
use crate::metrics::status_class;

use super::error::ApiError;
use crate::app::AppState;

/// `GET /healthz`: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the metadata store and the blob store both answer; else 503.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Database and blob store reachable", content_type = "text/plain"), (status = 503, description = "Database or blob store unavailable (Retry-After)")))]
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.meta.ping().await?;
    state.blobs.ping().await?;
    Ok("ready\n")
}

/// `GET /metrics`: this node's metrics in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.meta.count_live_pictures(now_ms()).await {
        Ok(n) => state
            .metrics
            .live_pictures
            .set(i64::try_from(n).unwrap_or(i64::MAX)),
        Err(e) => {
            state
                .metrics
                .store_errors
                .with_label_values(&["metadata"])
                .inc();
            tracing::warn!(error = %e, "metrics: cannot count live pictures");
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The route template a request matched, carried on its response for [`track`].
#[derive(Clone)]
pub struct RouteTemplate(pub MatchedPath);

/// Route layer: records the matched route template in the request's span and response.
pub async fn mark_route(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    if let Some(m) = &matched {
        tracing::Span::current().record("route", m.as_str());
    }
    let mut response = next.run(req).await;
    if let Some(m) = matched {
        response.extensions_mut().insert(RouteTemplate(m));
    }
    response
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The refusal reasons an upload can have: the statuses the upload answers.
fn refusal_reason(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        503 => "503",
        s if s >= 500 => "5xx",
        _ => "other",
    }
}

/// Counts every request by route template, method and status class, times it, and counts
/// upload outcomes and backing-store faults.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let upload = req.method() == Method::POST && req.uri().path() == UPLOAD_PATH;
    let start = Instant::now();
    let response = next.run(req).await;
    let m = &state.metrics;
    let route = response
        .extensions()
        .get::<RouteTemplate>()
        .map_or("unmatched", |r| r.0.as_str());
    let status = response.status();
    m.requests
        .with_label_values(&[route, method, status_class(status.as_u16())])
        .inc();
    m.latency
        .with_label_values(&[route, method])
        .observe(start.elapsed().as_secs_f64());
    if upload {
        if status == StatusCode::OK {
            m.pictures_accepted.inc();
        } else {
            m.pictures_refused
                .with_label_values(&[refusal_reason(status)])
                .inc();
        }
    }
    if let Some(StoreFault(store)) = response.extensions().get::<StoreFault>() {
        m.store_errors.with_label_values(&[store]).inc();
    }
    response
}
