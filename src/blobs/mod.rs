//! Blob storage: the one place that talks to object storage, through the object_store crate
//! (local files, in-memory for tests). Keys are built here from typed values, never from
//! anything a client sent.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as Key;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload};

use crate::config::S3Config;

pub use object_store::path::Path as BlobKey;

/// Where dropbox masters live: `dropbox/{id mod 256, hex}/{id}.png`, spread over 256
/// directories so that a local store never grows one huge directory.
pub const DROPBOX_PREFIX: &str = "dropbox";

pub fn picture_key(id: i64) -> Key {
    let shard = id.rem_euclid(256);
    Key::from(format!("{DROPBOX_PREFIX}/{shard:02x}/{id}.png"))
}

/// The PictureID a dropbox key names, if it is one.
pub fn picture_id_of(key: &Key) -> Option<i64> {
    let mut parts = key.parts();
    if parts.next()?.as_ref() != DROPBOX_PREFIX {
        return None;
    }
    let _shard = parts.next()?;
    let file = parts.next()?;
    file.as_ref().strip_suffix(".png")?.parse().ok()
}

/// Where avatar versions live: `avatars/{first two hex digits}/{version}/master.png` and
/// cached renditions `…/{version}/{size}.png` beside it.
pub const AVATAR_PREFIX: &str = "avatars";

pub fn avatar_dir(version: &str) -> String {
    let shard = version.get(..2).unwrap_or("00");
    format!("{AVATAR_PREFIX}/{shard}/{version}")
}

pub fn avatar_master_key(version: &str) -> Key {
    Key::from(format!("{}/master.png", avatar_dir(version)))
}

pub fn avatar_rendition_key(version: &str, size: u32) -> Key {
    Key::from(format!("{}/{size}.png", avatar_dir(version)))
}

/// The avatar version an avatar key belongs to, if it is one.
pub fn avatar_version_of(key: &Key) -> Option<String> {
    let mut parts = key.parts();
    if parts.next()?.as_ref() != AVATAR_PREFIX {
        return None;
    }
    let _shard = parts.next()?;
    Some(parts.next()?.as_ref().to_string())
}

/// A listed blob: its key and when it was written (ms since the epoch).
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: Key,
    pub modified_ms: i64,
    pub size: u64,
}

fn open_s3(bucket_and_prefix: &str, s3: &S3Config) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let (bucket, prefix) = bucket_and_prefix
        .split_once('/')
        .unwrap_or((bucket_and_prefix, ""));
    if bucket.is_empty() {
        anyhow::bail!("storage_url: s3:// needs a bucket name");
    }
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &s3.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &s3.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    // Fail fast, so that an unreachable store turns into 503s rather than hung requests.
    builder = builder.with_retry(object_store::RetryConfig {
        max_retries: 2,
        retry_timeout: std::time::Duration::from_secs(5),
        ..Default::default()
    });
    // Client options replace the builder's, so `allow_http` (from s3.allow_http or
    // AWS_ALLOW_HTTP) is carried into them.
    let allow_http = s3.allow_http.unwrap_or_else(|| {
        std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
    });
    builder = builder.with_client_options(
        object_store::ClientOptions::new()
            .with_allow_http(allow_http)
            .with_connect_timeout(std::time::Duration::from_secs(3))
            .with_timeout(std::time::Duration::from_secs(30)),
    );
    let store = builder.build()?;
    let prefix = prefix.trim_matches('/');
    Ok(if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found")]
    NotFound,
    /// The store cannot be reached or refused the operation: the client may retry (503).
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
    /// A copy read back differs from its source.
    #[error("copy of {0} does not match its source")]
    Mismatch(String),
}

/// What [`Blobs::copy_all_to`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub copied: u64,
    pub already_there: u64,
    pub bytes: u64,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => BlobError::NotFound,
            other => BlobError::Unavailable(other.to_string()),
        }
    }
}

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// Set for `file://` stores, whose writes are fsynced here (object_store does not).
    local_root: Option<PathBuf>,
}

impl Blobs {
    /// Opens `file://PATH` (created if missing), `s3://BUCKET[/PREFIX]` (endpoint, region
    /// and credentials from `s3`, else from the standard `AWS_*` variables) or `memory://`.
    pub fn open(url: &str, s3: &S3Config) -> anyhow::Result<Blobs> {
        let mut local_root = None;
        let store: Arc<dyn ObjectStore> = if let Some(path) = url.strip_prefix("file://") {
            std::fs::create_dir_all(path)?;
            let root = std::fs::canonicalize(path)?;
            local_root = Some(root.clone());
            Arc::new(LocalFileSystem::new_with_prefix(root)?)
        } else if url == "memory://" {
            Arc::new(InMemory::new())
        } else if let Some(rest) = url.strip_prefix("s3://") {
            open_s3(rest, s3)?
        } else {
            anyhow::bail!("storage_url must start with file://, s3:// or memory://")
        };
        Ok(Blobs { store, local_root })
    }

    /// Writes a blob and returns once it is durable: for local files, the file and its
    /// directory are fsynced (object_store's rename alone survives a process crash, not a
    /// power loss); object stores acknowledge only durable writes.
    pub async fn put_durable(&self, key: &Key, bytes: Bytes) -> Result<(), BlobError> {
        self.store.put(key, PutPayload::from(bytes)).await?;
        if let Some(root) = &self.local_root {
            let file = root.join(key.as_ref());
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                std::fs::File::open(&file)?.sync_all()?;
                if let Some(dir) = file.parent() {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                Ok(())
            })
            .await
            .map_err(|e| BlobError::Unavailable(e.to_string()))?
            .map_err(|e| BlobError::Unavailable(e.to_string()))?;
        }
        Ok(())
    }

    /// Writes a blob that can be rebuilt (a cached rendition): no fsync.
    pub async fn put(&self, key: &Key, bytes: Bytes) -> Result<(), BlobError> {
        self.store.put(key, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Deletes every blob under `prefix`; returns how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, BlobError> {
        let mut n = 0;
        for blob in self.list(prefix).await? {
            self.delete(&blob.key).await?;
            n += 1;
        }
        Ok(n)
    }

    pub async fn get(&self, key: &Key) -> Result<Bytes, BlobError> {
        Ok(self.store.get(key).await?.bytes().await?)
    }

    /// Deletes a blob; one that is already gone is not an error (sweepers may overlap).
    pub async fn delete(&self, key: &Key) -> Result<(), BlobError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes half-written files that a crash left in a local store (object_store stages a
    /// write as `NAME#N` and renames it; listings never show those). Other stores have no
    /// such leftovers visible to pixdrop (S3 multipart uploads are expired by the bucket's
    /// lifecycle rules).
    pub async fn remove_stale_staging(
        &self,
        prefix: &str,
        older_than_ms: i64,
    ) -> Result<u64, BlobError> {
        let Some(root) = self.local_root.clone() else {
            return Ok(0);
        };
        let dir = root.join(prefix);
        tokio::task::spawn_blocking(move || remove_staging_files(&dir, older_than_ms))
            .await
            .map_err(|e| BlobError::Unavailable(e.to_string()))?
            .map_err(|e| BlobError::Unavailable(e.to_string()))
    }

    /// Copies every pixdrop blob to `dest`, reading each copy back to verify its size and
    /// SHA-256. Blobs already in `dest` with the same content are skipped, so an interrupted
    /// run can simply be run again.
    pub async fn copy_all_to(&self, dest: &Blobs) -> Result<CopyReport, BlobError> {
        let mut report = CopyReport::default();
        for prefix in [DROPBOX_PREFIX, AVATAR_PREFIX] {
            for blob in self.list(prefix).await? {
                let source = self.get(&blob.key).await?;
                let want = digest(&source);
                match dest.get(&blob.key).await {
                    Ok(existing) if existing.len() == source.len() && digest(&existing) == want => {
                        report.already_there += 1;
                        continue;
                    }
                    Ok(_) | Err(BlobError::NotFound) => {}
                    Err(e) => return Err(e),
                }
                dest.put_durable(&blob.key, source.clone()).await?;
                let back = dest.get(&blob.key).await?;
                if back.len() != source.len() || digest(&back) != want {
                    return Err(BlobError::Mismatch(blob.key.to_string()));
                }
                report.copied += 1;
                report.bytes += source.len() as u64;
            }
        }
        Ok(report)
    }

    /// Every blob under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, BlobError> {
        let prefix = Key::from(prefix);
        let listed: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&prefix)).try_collect().await?;
        Ok(listed
            .into_iter()
            .map(|m| Listed {
                key: m.location,
                modified_ms: m.last_modified.timestamp_millis(),
                size: m.size,
            })
            .collect())
    }

    /// Round trip to the store, for readiness probes: a missing probe key is an answer too.
    pub async fn ping(&self) -> Result<(), BlobError> {
        match self.store.head(&Key::from("readyz-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn remove_staging_files(dir: &std::path::Path, older_than_ms: i64) -> std::io::Result<u64> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            removed += remove_staging_files(&entry.path(), older_than_ms)?;
            continue;
        }
        if !is_staging_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let modified = entry
            .metadata()?
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        if modified <= older_than_ms {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sharded_and_parse_back() {
        let k = picture_key(1001);
        assert_eq!(k.as_ref(), "dropbox/e9/1001.png");
        assert_eq!(picture_id_of(&k), Some(1001));
        assert_eq!(picture_id_of(&Key::from("dropbox/e9/x.png")), None);
        assert_eq!(picture_id_of(&Key::from("avatars/e9/1001.png")), None);
        let v = "ab12cd";
        assert_eq!(
            avatar_master_key(v).as_ref(),
            "avatars/ab/ab12cd/master.png"
        );
        assert_eq!(
            avatar_rendition_key(v, 75).as_ref(),
            "avatars/ab/ab12cd/75.png"
        );
        assert_eq!(
            avatar_version_of(&avatar_rendition_key(v, 75)).as_deref(),
            Some(v)
        );
        assert_eq!(avatar_version_of(&picture_key(5)), None);
    }

    #[test]
    fn staging_names() {
        assert!(is_staging_name("1001.png#1"));
        assert!(is_staging_name("1001.png#23"));
        assert!(!is_staging_name("1001.png"));
        assert!(!is_staging_name("a#b"));
    }
}
