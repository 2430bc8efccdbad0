//! Blob storage: the one place that talks to object storage, through the object_store crate
//! (local files, in-memory for tests). Keys are built here from typed values, never from
//! anything a client sent.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as Key;
use object_store::ObjectStore;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found")]
    NotFound,
    /// The store cannot be reached or refused the operation: the client may retry (503).
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
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
}

impl Blobs {
    /// Opens `file://PATH` (created if missing) or `memory://`.
    pub fn open(url: &str) -> anyhow::Result<Blobs> {
        let store: Arc<dyn ObjectStore> = if let Some(path) = url.strip_prefix("file://") {
            std::fs::create_dir_all(path)?;
            Arc::new(LocalFileSystem::new_with_prefix(path)?)
        } else if url == "memory://" {
            Arc::new(InMemory::new())
        } else if url.starts_with("s3://") {
            anyhow::bail!("storage_url: S3 is not supported by this build yet")
        } else {
            anyhow::bail!("storage_url must start with file://, s3:// or memory://")
        };
        Ok(Blobs { store })
    }

    /// Round trip to the store, for readiness probes: a missing probe key is an answer too.
    pub async fn ping(&self) -> Result<(), BlobError> {
        match self.store.head(&Key::from("readyz-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
