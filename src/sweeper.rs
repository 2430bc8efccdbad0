//! The background sweeper: deletes what has expired, and blobs that no record names. Every
//! node runs one; each step is idempotent (rows are claimed by an UPDATE before their blobs
//! are deleted, a missing blob is not an error), so sweepers of several nodes may overlap.

use std::time::Duration;

use tokio::sync::watch;

use crate::app::AppState;
use crate::auth::throttle;
use crate::blobs::{
    avatar_dir, avatar_version_of, picture_id_of, picture_key, AVATAR_PREFIX, DROPBOX_PREFIX,
};
use crate::http::error::ApiError;
use crate::meta::{now_ms, SweepCounts, RATE_WINDOW_MS};

/// Pictures expired per batch; the sweep loops until a batch comes back short.
const BATCH: u32 = 500;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// One sweep: expired sessions and login failures, expired dropbox pictures and their
/// blobs, uploads reserved longer ago than the orphan grace and never committed, old rows of
/// consumed and expired pictures, and orphan blobs older than the grace.
pub async fn sweep_once(state: &AppState) -> Result<SweepCounts, ApiError> {
    sweep(state, &|| false).await
}

/// One sweep that stops between batches once `stopping()` turns true.
async fn sweep(
    state: &AppState,
    stopping: &(dyn Fn() -> bool + Sync),
) -> Result<SweepCounts, ApiError> {
    let now = now_ms();
    let mut counts = state
        .meta
        .sweep_expired(now, now - ms(throttle::WINDOW))
        .await?;

    let grace_start = now - ms(state.config.orphan_grace);
    loop {
        let expired = state.meta.expire_pictures(now, grace_start, BATCH).await?;
        for id in &expired {
            state.blobs.delete(&picture_key(*id)).await?;
        }
        counts.pictures_expired += expired.len() as u64;
        if expired.len() < BATCH as usize || stopping() {
            break;
        }
    }
    // Rows are kept for the upload-rate window, then dropped.
    counts.picture_rows_purged = state.meta.purge_pictures(now - RATE_WINDOW_MS).await?;

    loop {
        let pruned = state
            .meta
            .prune_avatar_versions(state.config.keep_avatar_versions, BATCH)
            .await?;
        for version in &pruned {
            state.blobs.delete_prefix(&avatar_dir(&version.id)).await?;
        }
        counts.avatar_versions_pruned += pruned.len() as u64;
        if pruned.len() < BATCH as usize || stopping() {
            break;
        }
    }

    let orphans = remove_orphans(state, grace_start).await?
        + remove_avatar_orphans(state, grace_start).await?
        + state
            .blobs
            .remove_stale_staging(DROPBOX_PREFIX, grace_start)
            .await?
        + state
            .blobs
            .remove_stale_staging(AVATAR_PREFIX, grace_start)
            .await?;
    counts.orphan_blobs = orphans;
    state.metrics.record_sweep(&counts);
    Ok(counts)
}

/// Deletes dropbox blobs written before `older_than` that no pending or live picture names
/// (left by a crash between the blob write and the commit, or by a failed clean-up).
async fn remove_orphans(state: &AppState, older_than: i64) -> Result<u64, ApiError> {
    let listed = state.blobs.list(DROPBOX_PREFIX).await?;
    let candidates: Vec<(crate::blobs::BlobKey, Option<i64>)> = listed
        .into_iter()
        .filter(|b| b.modified_ms <= older_than)
        .map(|b| {
            let id = picture_id_of(&b.key);
            (b.key, id)
        })
        .collect();
    let ids: Vec<i64> = candidates.iter().filter_map(|(_, id)| *id).collect();
    let held = state.meta.pictures_holding_blobs(&ids).await?;
    let mut removed = 0;
    for (key, id) in candidates {
        if id.is_some_and(|id| held.contains(&id)) {
            continue;
        }
        state.blobs.delete(&key).await?;
        removed += 1;
    }
    Ok(removed)
}

/// Deletes avatar blobs written before `older_than` whose version has no record (an attach
/// that crashed before its commit, or a prune interrupted between record and blobs).
async fn remove_avatar_orphans(state: &AppState, older_than: i64) -> Result<u64, ApiError> {
    let listed = state.blobs.list(AVATAR_PREFIX).await?;
    let old: Vec<(crate::blobs::BlobKey, Option<String>)> = listed
        .into_iter()
        .filter(|b| b.modified_ms <= older_than)
        .map(|b| {
            let v = avatar_version_of(&b.key);
            (b.key, v)
        })
        .collect();
    let mut ids: Vec<String> = old.iter().filter_map(|(_, v)| v.clone()).collect();
    ids.sort();
    ids.dedup();
    let known = state.meta.known_avatar_versions(&ids).await?;
    let mut removed = 0;
    for (key, version) in old {
        if version.is_some_and(|v| known.contains(&v)) {
            continue;
        }
        state.blobs.delete(&key).await?;
        removed += 1;
    }
    Ok(removed)
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
        let stopping = || *stop.borrow();
        match sweep(&state, &stopping).await {
            Ok(counts) => tracing::debug!(?counts, "sweep done"),
            Err(e) => {
                if let Some(store) = e.backend() {
                    state.metrics.store_errors.with_label_values(&[store]).inc();
                }
                tracing::warn!(error = %e, "sweep failed; will retry");
            }
        }
    }
}
