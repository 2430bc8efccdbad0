//! The embedded metadata store: one SQLite file in WAL mode, `synchronous=FULL` so that a
//! committed row survives a crash, versioned migrations applied at open.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::rows::{self, admins_json, email_key};
use super::{
    new_id, now_ms, Attach, AvatarVersion, FailureCounts, Kind, MetaStore, NewPicture, NewUser,
    PictureRecord, Reservation, Resource, SessionRecord, StoreError, SweepCounts, User,
    RATE_WINDOW_MS,
};
use crate::imaging::geometry::Rect;
use crate::tenants::{TenantRecord, DEFAULT_TENANT};

/// Versioned schema changes, applied in order, each once, inside one write transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_init.sql")),
    (2, include_str!("migrations/sqlite/0002_pictures.sql")),
    (3, include_str!("migrations/sqlite/0003_avatars.sql")),
];

/// Reads go through `pool`; every write goes through `writer`, a single connection, so
/// that writers queue in order instead of spinning in SQLite's busy handler, and the upload
/// hot path's writes are batched by a group-commit task.
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    jobs: mpsc::Sender<Job>,
}

fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        sqlx::Error::Database(db) => {
            // SQLITE_BUSY / SQLITE_LOCKED after the busy timeout, disk I/O errors, a
            // read-only or full disk: the store cannot serve right now.
            let code = db.code().unwrap_or_default();
            let primary = code.parse::<i64>().map(|c| c & 0xff).unwrap_or(0);
            if matches!(primary, 5 | 6 | 8 | 10 | 13 | 14) {
                StoreError::Unavailable(db.message().to_string())
            } else {
                StoreError::Internal(db.message().to_string())
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        other => StoreError::Internal(other.to_string()),
    }
}

impl SqliteStore {
    pub async fn open(path: &str) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        let (jobs, queue) = mpsc::channel(1024);
        tokio::spawn(group_commit(writer.clone(), queue));
        let store = SqliteStore { pool, writer, jobs };
        store.migrate().await?;
        Ok(store)
    }

    /// Hands a job to the group-commit task and waits for its result.
    async fn group_commit<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let gone = || StoreError::Unavailable("the write queue is closed".into());
        self.jobs.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await?;
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
                .bind(version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl MetaStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    async fn bootstrap(&self, admin_email: &str, admin_hash: &str) -> Result<bool, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        if tenants > 0 {
            return Ok(false);
        }
        let now = now_ms();
        sqlx::query("INSERT INTO tenants (name, created_at) VALUES (?, ?)")
            .bind(DEFAULT_TENANT)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let id = new_id(DEFAULT_TENANT);
        insert_user(
            &mut tx,
            &id,
            &NewUser {
                tenant: DEFAULT_TENANT.to_string(),
                email: admin_email.to_string(),
                name: "Site Administrator".to_string(),
                password_hash: admin_hash.to_string(),
                site_admin: true,
            },
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let hosts = sqlx::query("SELECT tenant, host FROM tenant_hosts ORDER BY host")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let settings = sqlx::query("SELECT tenant, key, value FROM tenant_settings")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let mut out: Vec<TenantRecord> = names
            .into_iter()
            .map(|name| TenantRecord {
                name,
                hosts: Vec::new(),
                overrides: BTreeMap::new(),
            })
            .collect();
        for row in hosts {
            let tenant: String = row.get("tenant");
            if let Some(t) = out.iter_mut().find(|t| t.name == tenant) {
                t.hosts.push(row.get("host"));
            }
        }
        for row in settings {
            let tenant: String = row.get("tenant");
            if let Some(t) = out.iter_mut().find(|t| t.name == tenant) {
                t.overrides.insert(row.get("key"), row.get("value"));
            }
        }
        Ok(out)
    }

    async fn add_tenant(&self, name: &str, hosts: &[String]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        sqlx::query("INSERT INTO tenants (name, created_at) VALUES (?, ?)")
            .bind(name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(|e| match map_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("tenant {name} exists")),
                other => other,
            })?;
        insert_hosts(&mut tx, name, hosts).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn set_tenant_hosts(&self, name: &str, hosts: &[String]) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let exists: Option<String> = sqlx::query_scalar("SELECT name FROM tenants WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM tenant_hosts WHERE tenant = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_hosts(&mut tx, name, hosts).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn set_tenant_setting(
        &self,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO tenant_settings (tenant, key, value) \
             SELECT name, ?, ? FROM tenants WHERE name = ? \
             ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .bind(name)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        let id = new_id(&user.tenant);
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        insert_user(&mut tx, &id, &user).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(User {
            id,
            tenant: user.tenant,
            email: user.email,
            name: user.name,
            password_hash: user.password_hash,
            site_admin: user.site_admin,
        })
    }

    async fn user_by_email(&self, tenant: &str, email: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE tenant = ? AND email_key = ?")
            .bind(tenant)
            .bind(email_key(email))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn user_by_id(&self, tenant: &str, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE tenant = ? AND id = ?")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn set_password(&self, tenant: &str, email: &str, hash: &str) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let done =
            sqlx::query("UPDATE users SET password_hash = ? WHERE tenant = ? AND email_key = ?")
                .bind(hash)
                .bind(tenant)
                .bind(email_key(email))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // A new password ends every session of the user.
        sqlx::query(
            "DELETE FROM sessions WHERE user_id IN \
             (SELECT id FROM users WHERE tenant = ? AND email_key = ?)",
        )
        .bind(tenant)
        .bind(email_key(email))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, tenant, user_id, csrf_hash, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&s.token_hash)
        .bind(&s.tenant)
        .bind(&s.user_id)
        .bind(&s.csrf_hash)
        .bind(s.expires_at)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.map(|r| SessionRecord {
            token_hash: r.get("token_hash"),
            tenant: r.get("tenant"),
            user_id: r.get("user_id"),
            csrf_hash: r.get("csrf_hash"),
            expires_at: r.get("expires_at"),
        }))
    }

    async fn extend_session(&self, token_hash: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET expires_at = ? WHERE token_hash = ?")
            .bind(expires_at)
            .bind(token_hash)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn record_login_failure(
        &self,
        tenant: &str,
        email: &str,
        address: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO login_failures (tenant, email_key, address, at) VALUES (?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(email_key(email))
        .bind(address)
        .bind(at)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn login_failures(
        &self,
        tenant: &str,
        email: &str,
        address: &str,
        since: i64,
    ) -> Result<FailureCounts, StoreError> {
        let by_email = sqlx::query(
            "SELECT count(*) AS n, min(at) AS oldest FROM login_failures \
             WHERE tenant = ? AND email_key = ? AND at >= ?",
        )
        .bind(tenant)
        .bind(email_key(email))
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let by_address = sqlx::query(
            "SELECT count(*) AS n, min(at) AS oldest FROM login_failures \
             WHERE address = ? AND at >= ?",
        )
        .bind(address)
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let count = |r: &sqlx::sqlite::SqliteRow| u32::try_from(r.get::<i64, _>("n")).unwrap_or(0);
        Ok(FailureCounts {
            email: count(&by_email),
            email_oldest: by_email.get("oldest"),
            address: count(&by_address),
            address_oldest: by_address.get("oldest"),
        })
    }

    async fn clear_login_failures(&self, tenant: &str, email: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE tenant = ? AND email_key = ?")
            .bind(tenant)
            .bind(email_key(email))
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn create_resource(
        &self,
        tenant: &str,
        kind: Kind,
        name: &str,
        admins: &[String],
    ) -> Result<Resource, StoreError> {
        let id = new_id(tenant);
        sqlx::query(
            "INSERT INTO resources (id, tenant, kind, name, admins, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(kind.as_str())
        .bind(name)
        .bind(admins_json(admins))
        .bind(now_ms())
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(Resource {
            id,
            tenant: tenant.to_string(),
            kind,
            name: name.to_string(),
            admins: admins.to_vec(),
            avatar_version: None,
        })
    }

    async fn resource(
        &self,
        tenant: &str,
        kind: Kind,
        id: &str,
    ) -> Result<Option<Resource>, StoreError> {
        let row = sqlx::query("SELECT * FROM resources WHERE tenant = ? AND kind = ? AND id = ?")
            .bind(tenant)
            .bind(kind.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|r| rows::resource(&r, kind)).transpose()
    }

    async fn update_resource(
        &self,
        tenant: &str,
        kind: Kind,
        id: &str,
        name: Option<&str>,
        admins: Option<&[String]>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE resources SET name = coalesce(?, name), admins = coalesce(?, admins) \
             WHERE tenant = ? AND kind = ? AND id = ?",
        )
        .bind(name)
        .bind(admins.map(admins_json))
        .bind(tenant)
        .bind(kind.as_str())
        .bind(id)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn reserve_picture(&self, new: &NewPicture<'_>) -> Result<Reservation, StoreError> {
        let (done, answer) = oneshot::channel();
        let job = Job::Reserve(OwnedNewPicture::from(new), done);
        self.group_commit(job, answer).await
    }

    async fn commit_picture(&self, id: i64, width: u32, height: u32) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        let job = Job::Commit {
            id,
            width,
            height,
            done,
        };
        self.group_commit(job, answer).await
    }

    async fn abandon_picture(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM pictures WHERE id = ? AND state = 'pending'")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn picture(&self, tenant: &str, id: i64) -> Result<Option<PictureRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM pictures WHERE tenant = ? AND id = ?")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::picture).transpose()
    }

    async fn set_crop(&self, id: i64, crop: Rect, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE pictures SET crop_x = ?, crop_y = ?, crop_w = ?, crop_h = ? \
             WHERE id = ? AND state = 'live' AND expires_at > ?",
        )
        .bind(i64::from(crop.x))
        .bind(i64::from(crop.y))
        .bind(i64::from(crop.w))
        .bind(i64::from(crop.h))
        .bind(id)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn expire_pictures(
        &self,
        now: i64,
        stale_pending_before: i64,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar(
            "UPDATE pictures SET state = 'gone' WHERE id IN \
             (SELECT id FROM pictures WHERE (state IN ('pending', 'live') AND expires_at <= ?) \
              OR (state = 'pending' AND created_at <= ?) LIMIT ?) \
             RETURNING id",
        )
        .bind(now)
        .bind(stale_pending_before)
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await
        .map_err(map_err)
    }

    async fn purge_pictures(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM pictures WHERE state IN ('consumed', 'gone') AND created_at < ?",
        )
        .bind(before)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn pictures_holding_blobs(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        let mut held = Vec::new();
        for chunk in ids.chunks(500) {
            let list = serde_json::to_string(chunk).unwrap_or_else(|_| "[]".into());
            let mut found: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM pictures WHERE state IN ('pending', 'live') \
                 AND id IN (SELECT value FROM json_each(?))",
            )
            .bind(list)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
            held.append(&mut found);
        }
        Ok(held)
    }

    async fn count_live_pictures(&self, now: i64) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pictures WHERE state = 'live' AND expires_at > ?",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn attach_avatar(&self, a: &Attach<'_>) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let consumed = sqlx::query(
            "UPDATE pictures SET state = 'consumed' WHERE id = ?1 AND tenant = ?2 \
             AND state = 'live' AND expires_at > ?3 AND (?4 IS NULL OR owner = ?4)",
        )
        .bind(a.picture_id)
        .bind(a.tenant)
        .bind(a.now)
        .bind(a.owner)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if consumed.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO avatar_versions (id, tenant, kind, resource_id, side, picture_id, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(a.version_id)
        .bind(a.tenant)
        .bind(a.kind.as_str())
        .bind(a.resource_id)
        .bind(i64::from(a.side))
        .bind(a.picture_id)
        .bind(a.now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let updated = sqlx::query(
            "UPDATE resources SET avatar_version = ? WHERE tenant = ? AND kind = ? AND id = ?",
        )
        .bind(a.version_id)
        .bind(a.tenant)
        .bind(a.kind.as_str())
        .bind(a.resource_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn avatar_version(
        &self,
        tenant: &str,
        kind: Kind,
        resource_id: &str,
        version_id: &str,
    ) -> Result<Option<AvatarVersion>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM avatar_versions WHERE id = ? AND tenant = ? AND kind = ? AND resource_id = ?",
        )
        .bind(version_id)
        .bind(tenant)
        .bind(kind.as_str())
        .bind(resource_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(rows::avatar_version).transpose()
    }

    async fn clear_avatar(
        &self,
        tenant: &str,
        kind: Kind,
        resource_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE resources SET avatar_version = NULL WHERE tenant = ? AND kind = ? AND id = ?",
        )
        .bind(tenant)
        .bind(kind.as_str())
        .bind(resource_id)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn prune_avatar_versions(
        &self,
        keep: u32,
        limit: u32,
    ) -> Result<Vec<AvatarVersion>, StoreError> {
        let found = sqlx::query(
            "DELETE FROM avatar_versions WHERE id IN ( \
               SELECT id FROM ( \
                 SELECT id, row_number() OVER ( \
                   PARTITION BY tenant, kind, resource_id ORDER BY created_at DESC, rowid DESC) AS rn \
                 FROM avatar_versions) \
               WHERE rn > ? \
                 AND id NOT IN (SELECT avatar_version FROM resources WHERE avatar_version IS NOT NULL) \
               LIMIT ?) \
             RETURNING *",
        )
        .bind(i64::from(keep))
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await
        .map_err(map_err)?;
        found.iter().map(rows::avatar_version).collect()
    }

    async fn known_avatar_versions(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut known = Vec::new();
        for chunk in ids.chunks(500) {
            let list = serde_json::to_string(chunk).unwrap_or_else(|_| "[]".into());
            let mut found: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM avatar_versions WHERE id IN (SELECT value FROM json_each(?))",
            )
            .bind(list)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
            known.append(&mut found);
        }
        Ok(known)
    }

    async fn all_avatar_versions(&self) -> Result<Vec<AvatarVersion>, StoreError> {
        let found = sqlx::query("SELECT * FROM avatar_versions")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        found.iter().map(rows::avatar_version).collect()
    }

    async fn all_pictures_holding_blobs(&self) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar("SELECT id FROM pictures WHERE state IN ('pending', 'live')")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn drop_avatar_version(&self, version_id: &str) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        sqlx::query("UPDATE resources SET avatar_version = NULL WHERE avatar_version = ?")
            .bind(version_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("DELETE FROM avatar_versions WHERE id = ?")
            .bind(version_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn drop_picture(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE pictures SET state = 'gone' WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn sweep_expired(
        &self,
        now: i64,
        failures_before: i64,
    ) -> Result<SweepCounts, StoreError> {
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(map_err)?
            .rows_affected();
        let login_failures = sqlx::query("DELETE FROM login_failures WHERE at < ?")
            .bind(failures_before)
            .execute(&self.writer)
            .await
            .map_err(map_err)?
            .rows_affected();
        Ok(SweepCounts {
            sessions,
            login_failures,
            ..SweepCounts::default()
        })
    }
}

async fn insert_hosts(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    tenant: &str,
    hosts: &[String],
) -> Result<(), StoreError> {
    for host in hosts {
        sqlx::query("INSERT INTO tenant_hosts (host, tenant) VALUES (?, ?)")
            .bind(host)
            .bind(tenant)
            .execute(&mut **tx)
            .await
            .map_err(|e| match map_err(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("host {host} belongs to another tenant"))
                }
                other => other,
            })?;
    }
    Ok(())
}

async fn insert_user(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &str,
    user: &NewUser,
) -> Result<(), StoreError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO users (id, tenant, email, email_key, name, password_hash, site_admin, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(&user.tenant)
    .bind(user.email.trim())
    .bind(email_key(&user.email))
    .bind(&user.name)
    .bind(&user.password_hash)
    .bind(i64::from(user.site_admin))
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| match map_err(e) {
        StoreError::Conflict(_) => StoreError::Conflict("email already used".to_string()),
        other => other,
    })?;
    sqlx::query(
        "INSERT INTO resources (id, tenant, kind, name, admins, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(&user.tenant)
    .bind(Kind::Users.as_str())
    .bind(&user.name)
    .bind(admins_json(&[id.to_string()]))
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// An upload's reservation, owned so that it can travel to the group-commit task.
struct OwnedNewPicture {
    tenant: String,
    owner: String,
    now: i64,
    expires_at: i64,
    max_live: u32,
    per_minute: u32,
}

impl From<&NewPicture<'_>> for OwnedNewPicture {
    fn from(n: &NewPicture<'_>) -> Self {
        OwnedNewPicture {
            tenant: n.tenant.to_string(),
            owner: n.owner.to_string(),
            now: n.now,
            expires_at: n.expires_at,
            max_live: n.max_live,
            per_minute: n.per_minute,
        }
    }
}

/// The writes of the upload hot path, batched by [`group_commit`].
enum Job {
    Reserve(
        OwnedNewPicture,
        oneshot::Sender<Result<Reservation, StoreError>>,
    ),
    Commit {
        id: i64,
        width: u32,
        height: u32,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// Most jobs one transaction takes.
const MAX_BATCH: usize = 128;

/// Group commit: the reservations and commits of concurrent uploads that are waiting
/// together run in one transaction, so that they share one WAL fsync instead of paying one
/// each. Each job keeps its own result; a failed commit fails the whole batch.
async fn group_commit(writer: SqlitePool, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&writer, batch).await;
    }
}

enum Outcome {
    Reserve(Result<Reservation, StoreError>),
    Commit(Result<(), StoreError>),
}

async fn run_batch(writer: &SqlitePool, batch: Vec<Job>) {
    let mut outcomes = Vec::with_capacity(batch.len());
    let committed = async {
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        for job in &batch {
            outcomes.push(match job {
                Job::Reserve(new, _) => Outcome::Reserve(reserve_in(&mut tx, new).await),
                Job::Commit {
                    id, width, height, ..
                } => Outcome::Commit(commit_in(&mut tx, *id, *width, *height).await),
            });
        }
        tx.commit().await.map_err(map_err)
    }
    .await;
    let mut outcomes = outcomes.into_iter();
    for job in batch {
        let outcome = outcomes.next();
        match (job, outcome, &committed) {
            (Job::Reserve(_, done), Some(Outcome::Reserve(r)), Ok(())) => {
                let _ = done.send(r);
            }
            (Job::Commit { done, .. }, Some(Outcome::Commit(r)), Ok(())) => {
                let _ = done.send(r);
            }
            (Job::Reserve(_, done), _, result) => {
                let _ = done.send(Err(batch_error(result)));
            }
            (Job::Commit { done, .. }, _, result) => {
                let _ = done.send(Err(batch_error(result)));
            }
        }
    }
}

fn batch_error(result: &Result<(), StoreError>) -> StoreError {
    match result {
        Err(e) => e.clone(),
        Ok(()) => StoreError::Internal("group commit lost a job's result".into()),
    }
}

/// Reserves a PictureID if the owner's quotas allow it. Inside the write transaction, so
/// the counts and the insert are atomic across connections and processes.
async fn reserve_in(
    conn: &mut sqlx::SqliteConnection,
    new: &OwnedNewPicture,
) -> Result<Reservation, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO pictures (tenant, owner, state, created_at, expires_at) \
         SELECT ?1, ?2, 'pending', ?3, ?4 \
         WHERE (SELECT count(*) FROM pictures WHERE tenant = ?1 AND owner = ?2 \
                AND state IN ('pending', 'live') AND expires_at > ?3) < ?5 \
           AND (SELECT count(*) FROM pictures WHERE tenant = ?1 AND owner = ?2 \
                AND created_at > ?3 - ?7) < ?6 \
         RETURNING id",
    )
    .bind(&new.tenant)
    .bind(&new.owner)
    .bind(new.now)
    .bind(new.expires_at)
    .bind(i64::from(new.max_live))
    .bind(i64::from(new.per_minute))
    .bind(RATE_WINDOW_MS)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    if let Some(id) = id {
        return Ok(Reservation::Granted(id));
    }
    let live = sqlx::query(
        "SELECT count(*) AS n, min(expires_at) AS first FROM pictures \
         WHERE tenant = ?1 AND owner = ?2 AND state IN ('pending', 'live') AND expires_at > ?3",
    )
    .bind(&new.tenant)
    .bind(&new.owner)
    .bind(new.now)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)?;
    if live.get::<i64, _>("n") >= i64::from(new.max_live) {
        let until: Option<i64> = live.get("first");
        return Ok(Reservation::TooManyLive {
            until: until.unwrap_or(new.now + 1000),
        });
    }
    // The k-th newest upload in the window leaves it first when the window is full.
    let recent: Vec<i64> = sqlx::query_scalar(
        "SELECT created_at FROM pictures WHERE tenant = ?1 AND owner = ?2 \
         AND created_at > ?3 - ?4 ORDER BY created_at DESC LIMIT ?5",
    )
    .bind(&new.tenant)
    .bind(&new.owner)
    .bind(new.now)
    .bind(RATE_WINDOW_MS)
    .bind(i64::from(new.per_minute))
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    let until = recent.last().map_or(new.now + 1000, |t| t + RATE_WINDOW_MS);
    Ok(Reservation::TooFast { until })
}

async fn commit_in(
    conn: &mut sqlx::SqliteConnection,
    id: i64,
    width: u32,
    height: u32,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE pictures SET state = 'live', width = ?, height = ? \
         WHERE id = ? AND state = 'pending'",
    )
    .bind(i64::from(width))
    .bind(i64::from(height))
    .bind(id)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
