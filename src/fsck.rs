//! `pixdrop fsck [--repair]`: checks that metadata and blobs agree. Every pending or live
//! picture and every avatar version must have its blob; every blob must belong to one of
//! them. `--repair` forgets records whose blob is lost (a resource whose current avatar is
//! lost falls back to its default picture) and deletes blobs that no record names.

use std::collections::HashSet;
use std::fmt;

use crate::app::AppState;
use crate::blobs::{
    avatar_master_key, avatar_version_of, picture_id_of, picture_key, AVATAR_PREFIX, DROPBOX_PREFIX,
};
use crate::http::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    PictureBlobMissing(i64),
    AvatarBlobMissing(String),
    OrphanBlob(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::PictureBlobMissing(id) => write!(f, "picture {id}: blob missing"),
            Problem::AvatarBlobMissing(v) => write!(f, "avatar version {v}: blob missing"),
            Problem::OrphanBlob(key) => write!(f, "blob {key}: no record names it"),
        }
    }
}

/// Finds every disagreement between the metadata store and the blob store.
pub async fn check(state: &AppState) -> Result<Vec<Problem>, ApiError> {
    let mut problems = Vec::new();

    let pictures: HashSet<i64> = state
        .meta
        .all_pictures_holding_blobs()
        .await?
        .into_iter()
        .collect();
    let dropbox = state.blobs.list(DROPBOX_PREFIX).await?;
    let dropbox_keys: HashSet<String> = dropbox.iter().map(|b| b.key.to_string()).collect();
    for id in &pictures {
        if !dropbox_keys.contains(picture_key(*id).as_ref()) {
            problems.push(Problem::PictureBlobMissing(*id));
        }
    }
    for blob in &dropbox {
        if !picture_id_of(&blob.key).is_some_and(|id| pictures.contains(&id)) {
            problems.push(Problem::OrphanBlob(blob.key.to_string()));
        }
    }

    let versions: HashSet<String> = state
        .meta
        .all_avatar_versions()
        .await?
        .into_iter()
        .map(|v| v.id)
        .collect();
    let avatars = state.blobs.list(AVATAR_PREFIX).await?;
    let avatar_keys: HashSet<String> = avatars.iter().map(|b| b.key.to_string()).collect();
    for v in &versions {
        if !avatar_keys.contains(avatar_master_key(v).as_ref()) {
            problems.push(Problem::AvatarBlobMissing(v.clone()));
        }
    }
    for blob in &avatars {
        if !avatar_version_of(&blob.key).is_some_and(|v| versions.contains(&v)) {
            problems.push(Problem::OrphanBlob(blob.key.to_string()));
        }
    }
    problems.sort_by_key(|p| p.to_string());
    Ok(problems)
}

/// Fixes what [`check`] found.
pub async fn repair(state: &AppState, problems: &[Problem]) -> Result<(), ApiError> {
    for p in problems {
        match p {
            Problem::PictureBlobMissing(id) => state.meta.drop_picture(*id).await?,
            Problem::AvatarBlobMissing(v) => {
                state.meta.drop_avatar_version(v).await?;
                state
                    .blobs
                    .delete_prefix(&crate::blobs::avatar_dir(v))
                    .await?;
            }
            Problem::OrphanBlob(key) => {
                state
                    .blobs
                    .delete(&crate::blobs::BlobKey::from(key.as_str()))
                    .await?
            }
        }
    }
    Ok(())
}
