//! The scale-out metadata store: PostgreSQL, shared by every node. PictureIDs come from a
//! sequence; quota checks take a per-user advisory lock so that concurrent uploads on any
//! node cannot exceed them; sweeps claim rows with `FOR UPDATE SKIP LOCKED` so that several
//! nodes sweeping at once neither double-delete nor block each other.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Row};

use super::rows::{self, admins_json, email_key};
use super::{
    new_id, now_ms, Attach, AvatarVersion, FailureCounts, Kind, MetaStore, NewPicture, NewUser,
    PictureRecord, Reservation, Resource, SessionRecord, StoreError, SweepCounts, User,
    RATE_WINDOW_MS,
};
use crate::imaging::geometry::Rect;
use crate::tenants::{TenantRecord, DEFAULT_TENANT};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres/0001_init.sql")),
    (2, include_str!("migrations/postgres/0002_pictures.sql")),
    (3, include_str!("migrations/postgres/0003_avatars.sql")),
];

/// Advisory lock keys (arbitrary constants, namespaced by their use).
const MIGRATION_LOCK: i64 = 0x7069_7864_0001;
const BOOTSTRAP_LOCK: i64 = 0x7069_7864_0002;

pub struct PgStore {
    pool: PgPool,
}

fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default().to_string();
            // 08: connection exception; 53: insufficient resources; 57P0x: shutting down,
            // cannot connect now; 40001/40P01: serialization failure or deadlock (retryable).
            if code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
            {
                StoreError::Unavailable(db.message().to_string())
            } else {
                StoreError::Internal(db.message().to_string())
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        other => StoreError::Internal(other.to_string()),
    }
}

impl PgStore {
    pub async fn open(url: &str) -> anyhow::Result<PgStore> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await?;
        let store = PgStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        // Nodes starting together migrate one at a time.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
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
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_user(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    id: &str,
    user: &NewUser,
) -> Result<(), StoreError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO users (id, tenant, email, email_key, name, password_hash, site_admin, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(&user.tenant)
    .bind(user.email.trim())
    .bind(email_key(&user.email))
    .bind(&user.name)
    .bind(&user.password_hash)
    .bind(user.site_admin)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| match map_err(e) {
        StoreError::Conflict(_) => StoreError::Conflict("email already used".to_string()),
        other => other,
    })?;
    sqlx::query(
        "INSERT INTO resources (id, tenant, kind, name, admins, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
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

async fn insert_hosts(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    tenant: &str,
    hosts: &[String],
) -> Result<(), StoreError> {
    for host in hosts {
        sqlx::query("INSERT INTO tenant_hosts (host, tenant) VALUES ($1, $2)")
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

#[async_trait]
impl MetaStore for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn bootstrap(&self, admin_email: &str, admin_hash: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        if tenants > 0 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO tenants (name, created_at) VALUES ($1, $2)")
            .bind(DEFAULT_TENANT)
            .bind(now_ms())
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("INSERT INTO tenants (name, created_at) VALUES ($1, $2)")
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT name FROM tenants WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM tenant_hosts WHERE tenant = $1")
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
             SELECT name, $1, $2 FROM tenants WHERE name = $3 \
             ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        let id = new_id(&user.tenant);
        let mut tx = self.pool.begin().await.map_err(map_err)?;
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
        let row = sqlx::query("SELECT * FROM users WHERE tenant = $1 AND email_key = $2")
            .bind(tenant)
            .bind(email_key(email))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn user_by_id(&self, tenant: &str, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn set_password(&self, tenant: &str, email: &str, hash: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let id: Option<String> = sqlx::query_scalar(
            "UPDATE users SET password_hash = $1 WHERE tenant = $2 AND email_key = $3 RETURNING id",
        )
        .bind(hash)
        .bind(tenant)
        .bind(email_key(email))
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(id) = id else {
            return Err(StoreError::NotFound);
        };
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, tenant, user_id, csrf_hash, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.token_hash)
        .bind(&s.tenant)
        .bind(&s.user_id)
        .bind(&s.csrf_hash)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM sessions WHERE token_hash = $1")
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
        sqlx::query("UPDATE sessions SET expires_at = $1 WHERE token_hash = $2")
            .bind(expires_at)
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
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
            "INSERT INTO login_failures (tenant, email_key, address, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant)
        .bind(email_key(email))
        .bind(address)
        .bind(at)
        .execute(&self.pool)
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
             WHERE tenant = $1 AND email_key = $2 AND at >= $3",
        )
        .bind(tenant)
        .bind(email_key(email))
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let by_address = sqlx::query(
            "SELECT count(*) AS n, min(at) AS oldest FROM login_failures \
             WHERE address = $1 AND at >= $2",
        )
        .bind(address)
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let count = |r: &sqlx::postgres::PgRow| u32::try_from(r.get::<i64, _>("n")).unwrap_or(0);
        Ok(FailureCounts {
            email: count(&by_email),
            email_oldest: by_email.get("oldest"),
            address: count(&by_address),
            address_oldest: by_address.get("oldest"),
        })
    }

    async fn clear_login_failures(&self, tenant: &str, email: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE tenant = $1 AND email_key = $2")
            .bind(tenant)
            .bind(email_key(email))
            .execute(&self.pool)
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
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(kind.as_str())
        .bind(name)
        .bind(admins_json(admins))
        .bind(now_ms())
        .execute(&self.pool)
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
        let row =
            sqlx::query("SELECT * FROM resources WHERE tenant = $1 AND kind = $2 AND id = $3")
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
            "UPDATE resources SET name = coalesce($1, name), admins = coalesce($2, admins) \
             WHERE tenant = $3 AND kind = $4 AND id = $5",
        )
        .bind(name)
        .bind(admins.map(admins_json))
        .bind(tenant)
        .bind(kind.as_str())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn reserve_picture(&self, new: &NewPicture<'_>) -> Result<Reservation, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Uploads of one user, on any node, check and insert one at a time.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(format!("{}/{}", new.tenant, new.owner))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let live = sqlx::query(
            "SELECT count(*) AS n, min(expires_at) AS first FROM pictures \
             WHERE tenant = $1 AND owner = $2 AND state IN ('pending', 'live') AND expires_at > $3",
        )
        .bind(new.tenant)
        .bind(new.owner)
        .bind(new.now)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        if live.get::<i64, _>("n") >= i64::from(new.max_live) {
            let until: Option<i64> = live.get("first");
            return Ok(Reservation::TooManyLive {
                until: until.unwrap_or(new.now + 1000),
            });
        }
        let recent: Vec<i64> = sqlx::query_scalar(
            "SELECT created_at FROM pictures WHERE tenant = $1 AND owner = $2 \
             AND created_at > $3 - $4 ORDER BY created_at DESC LIMIT $5",
        )
        .bind(new.tenant)
        .bind(new.owner)
        .bind(new.now)
        .bind(RATE_WINDOW_MS)
        .bind(i64::from(new.per_minute))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        if recent.len() >= new.per_minute as usize {
            let until = recent.last().map_or(new.now + 1000, |t| t + RATE_WINDOW_MS);
            return Ok(Reservation::TooFast { until });
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO pictures (tenant, owner, state, created_at, expires_at) \
             VALUES ($1, $2, 'pending', $3, $4) RETURNING id",
        )
        .bind(new.tenant)
        .bind(new.owner)
        .bind(new.now)
        .bind(new.expires_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Reservation::Granted(id))
    }

    async fn commit_picture(&self, id: i64, width: u32, height: u32) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE pictures SET state = 'live', width = $1, height = $2 \
             WHERE id = $3 AND state = 'pending'",
        )
        .bind(i64::from(width))
        .bind(i64::from(height))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn abandon_picture(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM pictures WHERE id = $1 AND state = 'pending'")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn picture(&self, tenant: &str, id: i64) -> Result<Option<PictureRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM pictures WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::picture).transpose()
    }

    async fn set_crop(&self, id: i64, crop: Rect, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE pictures SET crop_x = $1, crop_y = $2, crop_w = $3, crop_h = $4 \
             WHERE id = $5 AND state = 'live' AND expires_at > $6",
        )
        .bind(i64::from(crop.x))
        .bind(i64::from(crop.y))
        .bind(i64::from(crop.w))
        .bind(i64::from(crop.h))
        .bind(id)
        .bind(now)
        .execute(&self.pool)
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
             (SELECT id FROM pictures WHERE (state IN ('pending', 'live') AND expires_at <= $1) \
              OR (state = 'pending' AND created_at <= $2) \
              LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id",
        )
        .bind(now)
        .bind(stale_pending_before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn purge_pictures(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM pictures WHERE state IN ('consumed', 'gone') AND created_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn pictures_holding_blobs(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT id FROM pictures WHERE state IN ('pending', 'live') AND id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn count_live_pictures(&self, now: i64) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pictures WHERE state = 'live' AND expires_at > $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn attach_avatar(&self, a: &Attach<'_>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // The row lock of this UPDATE makes a concurrent attach of the same picture wait,
        // then find the state no longer 'live'.
        let consumed = sqlx::query(
            "UPDATE pictures SET state = 'consumed' WHERE id = $1 AND tenant = $2 \
             AND state = 'live' AND expires_at > $3 AND ($4::text IS NULL OR owner = $4)",
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
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
            "UPDATE resources SET avatar_version = $1 WHERE tenant = $2 AND kind = $3 AND id = $4",
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
            "SELECT * FROM avatar_versions WHERE id = $1 AND tenant = $2 AND kind = $3 AND resource_id = $4",
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
            "UPDATE resources SET avatar_version = NULL WHERE tenant = $1 AND kind = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(kind.as_str())
        .bind(resource_id)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn prune_avatar_versions(
        &self,
        keep: u32,
        limit: u32,
    ) -> Result<Vec<AvatarVersion>, StoreError> {
        // Only the rows this statement deletes come back: a sweeper on another node that
        // picked the same candidates gets none of them.
        let found = sqlx::query(
            "DELETE FROM avatar_versions WHERE id IN ( \
               SELECT id FROM ( \
                 SELECT id, row_number() OVER ( \
                   PARTITION BY tenant, kind, resource_id ORDER BY created_at DESC, seq DESC) AS rn \
                 FROM avatar_versions) ranked \
               WHERE rn > $1 \
                 AND id NOT IN (SELECT avatar_version FROM resources WHERE avatar_version IS NOT NULL) \
               LIMIT $2) \
             RETURNING *",
        )
        .bind(i64::from(keep))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        found.iter().map(rows::avatar_version).collect()
    }

    async fn known_avatar_versions(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT id FROM avatar_versions WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("UPDATE resources SET avatar_version = NULL WHERE avatar_version = $1")
            .bind(version_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("DELETE FROM avatar_versions WHERE id = $1")
            .bind(version_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn drop_picture(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE pictures SET state = 'gone' WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn sweep_expired(
        &self,
        now: i64,
        failures_before: i64,
    ) -> Result<SweepCounts, StoreError> {
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
        let login_failures = sqlx::query("DELETE FROM login_failures WHERE at < $1")
            .bind(failures_before)
            .execute(&self.pool)
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
