//! The background sweeper: deletes what has expired. Every node runs one; the deletes are
//! idempotent, so sweepers of several nodes may overlap.

use std::time::Duration;

use tokio::sync::watch;

use crate::app::AppState;
use crate::auth::throttle;
use crate::meta::{now_ms, StoreError, SweepCounts};

/// One sweep: expired sessions, and login failures older than the throttling window.
pub async fn sweep_once(state: &AppState) -> Result<SweepCounts, StoreError> {
    let now = now_ms();
    let window = i64::try_from(throttle::WINDOW.as_millis()).unwrap_or(i64::MAX);
    let counts = state.meta.sweep_expired(now, now - window).await?;
    Ok(counts)
}

/// Sweeps every `interval` until `stop` turns true.
pub async fn run(state: AppState, interval: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        match sweep_once(&state).await {
            Ok(counts) => tracing::debug!(?counts, "sweep done"),
            Err(e) => tracing::warn!(error = %e, "sweep failed; will retry"),
        }
    }
}
