//! Operational endpoints: liveness and readiness probes.

use axum::extract::State;
use axum::response::IntoResponse;

use super::error::ApiError;
use crate::app::AppState;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the metadata store and the blob store both answer; else 503.
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.meta.ping().await?;
    state.blobs.ping().await?;
    Ok("ready\n")
}
