//! Which backend pair the suite runs against: SQLite + local files by default, PostgreSQL +
//! S3 when `scripts/test.sh` exports the servers it started (`PXTEST_PG`,
//! `PXTEST_S3_ENDPOINT`, `PXTEST_S3_BUCKET`).

use pixdrop::config::{Config, S3Config};

pub struct ScaleOut {
    pub pg_admin_url: String,
    pub s3_endpoint: String,
    pub bucket: String,
}

pub fn scale_out() -> Option<ScaleOut> {
    Some(ScaleOut {
        pg_admin_url: std::env::var("PXTEST_PG").ok()?,
        s3_endpoint: std::env::var("PXTEST_S3_ENDPOINT").ok()?,
        bucket: std::env::var("PXTEST_S3_BUCKET").ok()?,
    })
}

/// The scale-out pair, or a panic that says how to get it: tests that need it are ignored
/// by a plain `cargo test` and run by `scripts/test.sh`.
pub fn require_scale_out() -> ScaleOut {
    scale_out().expect("needs PostgreSQL and S3: run scripts/test.sh")
}

pub fn s3_config(endpoint: &str) -> S3Config {
    S3Config {
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        allow_http: Some(true),
    }
}

impl ScaleOut {
    /// A fresh, empty database on the shared server; returns its URL.
    pub async fn new_database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&self.pg_admin_url)
            .await
            .expect("admin connection");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        let base = self
            .pg_admin_url
            .rsplit_once('/')
            .expect("url with a database")
            .0;
        format!("{base}/{name}")
    }

    /// A fresh prefix in the shared bucket.
    pub fn new_storage_url(&self) -> String {
        format!("s3://{}/{}", self.bucket, uuid::Uuid::new_v4().simple())
    }

    /// Points `config` at a fresh database and bucket prefix.
    pub async fn configure(&self, config: &mut Config) {
        config.database_url = Some(self.new_database().await);
        config.storage_url = Some(self.new_storage_url());
        config.s3 = s3_config(&self.s3_endpoint);
    }

    /// The same, as environment variables for a `pixdrop` process.
    pub fn env(&self, database_url: &str, storage_url: &str) -> Vec<(String, String)> {
        vec![
            ("PIXDROP_DATABASE_URL".into(), database_url.into()),
            ("PIXDROP_STORAGE_URL".into(), storage_url.into()),
            ("PIXDROP_S3__ENDPOINT".into(), self.s3_endpoint.clone()),
            ("PIXDROP_S3__REGION".into(), "us-east-1".into()),
            ("PIXDROP_S3__ACCESS_KEY_ID".into(), "test".into()),
            ("PIXDROP_S3__SECRET_ACCESS_KEY".into(), "test".into()),
            ("PIXDROP_S3__ALLOW_HTTP".into(), "true".into()),
        ]
    }
}
