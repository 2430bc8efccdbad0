//! The metadata store: tenants, users, sessions, login throttling, resources and pictures.
//!
//! Handlers see only the [`MetaStore`] trait; [`open`] picks the implementation from the
//! `database_url` scheme. Every id, counter and expiry lives in the store, never in process
//! memory, so that any number of nodes can share one store.

mod postgres;
mod rows;
mod sqlite;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::imaging::geometry::Rect;
use crate::tenants::TenantRecord;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Why a store operation failed. Only the HTTP error mapping decides what a client sees.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is shutting down: the client may retry (503).
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was broken (an email already used in the tenant, a tenant name).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("metadata store fault: {0}")]
    Internal(String),
}

/// Milliseconds since the Unix epoch: the one time unit the store keeps.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub tenant: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub site_admin: bool,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub tenant: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub site_admin: bool,
}

/// A login session; the token itself is never stored, only its SHA-256.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub token_hash: String,
    pub tenant: String,
    pub user_id: String,
    pub csrf_hash: String,
    pub expires_at: i64,
}

/// The kinds of resource that carry an avatar (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Users,
    Apps,
    Apis,
    Groups,
    Businesses,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Users,
        Kind::Apps,
        Kind::Apis,
        Kind::Groups,
        Kind::Businesses,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Users => "users",
            Kind::Apps => "apps",
            Kind::Apis => "apis",
            Kind::Groups => "groups",
            Kind::Businesses => "businesses",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub id: String,
    pub tenant: String,
    pub kind: Kind,
    pub name: String,
    pub admins: Vec<String>,
    pub avatar_version: Option<String>,
}

/// Failed logins inside the throttling window, per email of a tenant and per client address.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailureCounts {
    pub email: u32,
    pub email_oldest: Option<i64>,
    pub address: u32,
    pub address_oldest: Option<i64>,
}

/// Where a dropbox picture is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PictureState {
    /// The id is reserved and the blob is being written.
    Pending,
    Live,
    /// Attached to a resource; its master blob is no longer needed.
    Consumed,
    /// Expired; its blob has been deleted.
    Gone,
}

impl PictureState {
    pub fn as_str(self) -> &'static str {
        match self {
            PictureState::Pending => "pending",
            PictureState::Live => "live",
            PictureState::Consumed => "consumed",
            PictureState::Gone => "gone",
        }
    }

    pub fn parse(s: &str) -> Option<PictureState> {
        [
            PictureState::Pending,
            PictureState::Live,
            PictureState::Consumed,
            PictureState::Gone,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct PictureRecord {
    pub id: i64,
    pub tenant: String,
    pub owner: String,
    pub state: PictureState,
    pub width: u32,
    pub height: u32,
    pub crop: Option<Rect>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl PictureRecord {
    /// Live and not expired at `now`: the only pictures clients can see.
    pub fn is_live(&self, now: i64) -> bool {
        self.state == PictureState::Live && self.expires_at > now
    }
}

/// A request to reserve a PictureID for an upload, with the quotas it must respect.
#[derive(Debug, Clone)]
pub struct NewPicture<'a> {
    pub tenant: &'a str,
    pub owner: &'a str,
    pub now: i64,
    pub expires_at: i64,
    pub max_live: u32,
    pub per_minute: u32,
}

/// The answer to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    Granted(i64),
    /// `max_live_pictures` reached; the earliest live picture expires at this time.
    TooManyLive {
        until: i64,
    },
    /// `uploads_per_minute` reached; the window has room again at this time.
    TooFast {
        until: i64,
    },
}

/// The length of the upload-rate window.
pub const RATE_WINDOW_MS: i64 = 60_000;

/// One rendered avatar of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvatarVersion {
    pub id: String,
    pub tenant: String,
    pub kind: Kind,
    pub resource_id: String,
    /// The stored avatar's side in pixels.
    pub side: u32,
    pub created_at: i64,
}

/// An attach: the picture to consume and the version that replaces the current avatar.
#[derive(Debug, Clone)]
pub struct Attach<'a> {
    pub tenant: &'a str,
    pub kind: Kind,
    pub resource_id: &'a str,
    pub picture_id: i64,
    /// `Some(user)`: the picture must have been uploaded by this user; `None` (site admin):
    /// any picture of the tenant.
    pub owner: Option<&'a str>,
    pub version_id: &'a str,
    pub side: u32,
    pub now: i64,
}

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepCounts {
    pub sessions: u64,
    pub login_failures: u64,
    pub pictures_expired: u64,
    pub picture_rows_purged: u64,
    pub orphan_blobs: u64,
    pub avatar_versions_pruned: u64,
}

#[async_trait]
pub trait MetaStore: Send + Sync {
    /// Cheap round trip, for readiness probes.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Stops using the database; later calls fail with [`StoreError::Unavailable`].
    async fn close(&self);

    /// Creates tenant `default` and the site admin `admin_email` when the store has no
    /// tenant yet. Returns true when this call created them; safe to race.
    async fn bootstrap(&self, admin_email: &str, admin_hash: &str) -> Result<bool, StoreError>;

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;
    async fn add_tenant(&self, name: &str, hosts: &[String]) -> Result<(), StoreError>;
    async fn set_tenant_hosts(&self, name: &str, hosts: &[String]) -> Result<(), StoreError>;
    async fn set_tenant_setting(
        &self,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError>;

    /// Creates the user and its profile resource in one transaction.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;
    async fn user_by_email(&self, tenant: &str, email: &str) -> Result<Option<User>, StoreError>;
    async fn user_by_id(&self, tenant: &str, id: &str) -> Result<Option<User>, StoreError>;
    async fn set_password(&self, tenant: &str, email: &str, hash: &str) -> Result<(), StoreError>;

    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    async fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError>;
    async fn extend_session(&self, token_hash: &str, expires_at: i64) -> Result<(), StoreError>;
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;

    async fn record_login_failure(
        &self,
        tenant: &str,
        email: &str,
        address: &str,
        at: i64,
    ) -> Result<(), StoreError>;
    async fn login_failures(
        &self,
        tenant: &str,
        email: &str,
        address: &str,
        since: i64,
    ) -> Result<FailureCounts, StoreError>;
    async fn clear_login_failures(&self, tenant: &str, email: &str) -> Result<(), StoreError>;

    async fn create_resource(
        &self,
        tenant: &str,
        kind: Kind,
        name: &str,
        admins: &[String],
    ) -> Result<Resource, StoreError>;
    async fn resource(
        &self,
        tenant: &str,
        kind: Kind,
        id: &str,
    ) -> Result<Option<Resource>, StoreError>;
    async fn update_resource(
        &self,
        tenant: &str,
        kind: Kind,
        id: &str,
        name: Option<&str>,
        admins: Option<&[String]>,
    ) -> Result<(), StoreError>;

    /// Reserves a PictureID (state pending) if the owner's quotas allow it, atomically with
    /// the quota check so that concurrent uploads on any node cannot exceed them.
    async fn reserve_picture(&self, new: &NewPicture<'_>) -> Result<Reservation, StoreError>;
    /// Makes a pending picture live once its blob is durable.
    async fn commit_picture(&self, id: i64, width: u32, height: u32) -> Result<(), StoreError>;
    /// Forgets a reservation whose upload failed.
    async fn abandon_picture(&self, id: i64) -> Result<(), StoreError>;
    async fn picture(&self, tenant: &str, id: i64) -> Result<Option<PictureRecord>, StoreError>;
    /// Stores the crop of a live picture; false when it is not live at `now`.
    async fn set_crop(&self, id: i64, crop: Rect, now: i64) -> Result<bool, StoreError>;
    /// Marks up to `limit` pictures as gone and returns their ids, for the caller to delete
    /// their blobs: pending or live ones expired at `now`, and pending ones reserved before
    /// `stale_pending_before` (an upload that died between its reservation and its commit).
    async fn expire_pictures(
        &self,
        now: i64,
        stale_pending_before: i64,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError>;
    /// Deletes rows of consumed and gone pictures created before `before`.
    async fn purge_pictures(&self, before: i64) -> Result<u64, StoreError>;
    /// Which of `ids` name a pending or live picture (whose blob must be kept).
    async fn pictures_holding_blobs(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError>;
    /// Live pictures, all tenants (a gauge for operators).
    async fn count_live_pictures(&self, now: i64) -> Result<u64, StoreError>;

    /// In one transaction: consume the live picture (state live → consumed, only if it is
    /// still live, of the tenant, and the owner's when `owner` is set), record the version,
    /// make it the resource's current avatar. False (and no change) when the picture was
    /// not there to consume: of two concurrent attaches of one picture exactly one wins.
    async fn attach_avatar(&self, attach: &Attach<'_>) -> Result<bool, StoreError>;
    async fn avatar_version(
        &self,
        tenant: &str,
        kind: Kind,
        resource_id: &str,
        version_id: &str,
    ) -> Result<Option<AvatarVersion>, StoreError>;
    /// The resource falls back to its default picture (its versions stay until pruned).
    async fn clear_avatar(
        &self,
        tenant: &str,
        kind: Kind,
        resource_id: &str,
    ) -> Result<(), StoreError>;
    /// Deletes the records of versions beyond the newest `keep` of each resource (never
    /// the current one) and returns them, for the caller to delete their blobs.
    async fn prune_avatar_versions(
        &self,
        keep: u32,
        limit: u32,
    ) -> Result<Vec<AvatarVersion>, StoreError>;
    /// Which of `ids` name a recorded avatar version.
    async fn known_avatar_versions(&self, ids: &[String]) -> Result<Vec<String>, StoreError>;
    /// Every recorded avatar version (for fsck).
    async fn all_avatar_versions(&self) -> Result<Vec<AvatarVersion>, StoreError>;
    /// Ids of every pending or live picture (for fsck).
    async fn all_pictures_holding_blobs(&self) -> Result<Vec<i64>, StoreError>;
    /// Repair: forget a version whose blob is lost; a resource whose current avatar it was
    /// falls back to its default picture.
    async fn drop_avatar_version(&self, version_id: &str) -> Result<(), StoreError>;
    /// Repair: mark a picture whose blob is lost as gone.
    async fn drop_picture(&self, id: i64) -> Result<(), StoreError>;

    /// Deletes expired sessions and login failures older than `failures_before`.
    async fn sweep_expired(
        &self,
        now: i64,
        failures_before: i64,
    ) -> Result<SweepCounts, StoreError>;
}

/// Opens the store named by `url`, creating and migrating it if needed.
pub async fn open(url: &str) -> anyhow::Result<Arc<dyn MetaStore>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(Arc::new(SqliteStore::open(path).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PgStore::open(url).await?));
    }
    anyhow::bail!("database_url must start with sqlite:// or postgres://")
}

/// `{uuid}.{tenant}`, the id format of users and resources.
pub fn new_id(tenant: &str) -> String {
    format!("{}.{}", uuid::Uuid::new_v4(), tenant)
}

/// Splits `{uuid}.{tenant}`; `None` when the id is not of that form.
pub fn parse_id(id: &str) -> Option<(uuid::Uuid, &str)> {
    let (uuid, tenant) = id.split_once('.')?;
    let uuid = uuid::Uuid::parse_str(uuid).ok()?;
    crate::tenants::valid_name(tenant).then_some((uuid, tenant))
}
