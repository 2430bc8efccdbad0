//! Tenants: their names, host lists and settings, and which tenant a request belongs to.
//!
//! Tenants live in the metadata store; each node keeps a short-lived copy so that a setting
//! changed by `pixdrop tenant set` reaches every running server within [`REFRESH`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::config::duration_text;
use crate::meta::{MetaStore, StoreError};

/// How old the node's copy of the tenant list may get before it is read again.
pub const REFRESH: Duration = Duration::from_secs(2);

/// The tenant that matches every host not listed by another tenant.
pub const DEFAULT_TENANT: &str = "default";

/// Per-tenant settings (SPEC §3). The defaults are the spec's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantSettings {
    pub read_csrf: bool,
    pub write_csrf: bool,
    #[serde(with = "duration_text")]
    pub session_ttl: Duration,
    #[serde(with = "duration_text")]
    pub dropbox_ttl: Duration,
    pub max_upload_bytes: u64,
    pub max_side: u32,
    pub max_pixels: u64,
    pub max_live_pictures: u32,
    pub uploads_per_minute: u32,
    pub public_avatars: bool,
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            read_csrf: false,
            write_csrf: true,
            session_ttl: Duration::from_secs(30 * 60),
            dropbox_ttl: Duration::from_secs(60 * 60),
            max_upload_bytes: 4 * 1024 * 1024,
            max_side: 16384,
            max_pixels: 50_000_000,
            max_live_pictures: 50,
            uploads_per_minute: 60,
            public_avatars: false,
        }
    }
}

/// Names of the settings `pixdrop tenant set` accepts, besides `hosts`.
pub const SETTING_KEYS: &[&str] = &[
    "read_csrf",
    "write_csrf",
    "session_ttl",
    "dropbox_ttl",
    "max_upload_bytes",
    "max_side",
    "max_pixels",
    "max_live_pictures",
    "uploads_per_minute",
    "public_avatars",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingError {
    #[error("unknown tenant setting `{0}` (known: hosts, {known})", known = SETTING_KEYS.join(", "))]
    UnknownKey(String),
    #[error("bad value for `{key}`: {reason}")]
    BadValue { key: String, reason: String },
}

fn bad(key: &str, reason: impl Into<String>) -> SettingError {
    SettingError::BadValue {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, SettingError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(bad(key, format!("`{v}` is not true or false"))),
    }
}

fn parse_positive<T: std::str::FromStr + PartialOrd + Default>(
    key: &str,
    v: &str,
) -> Result<T, SettingError> {
    match v.trim().parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(bad(key, format!("`{v}` is not a positive whole number"))),
    }
}

fn parse_duration(key: &str, v: &str) -> Result<Duration, SettingError> {
    let d = duration_text::parse(v).map_err(|e| bad(key, e))?;
    if d.is_zero() {
        return Err(bad(key, "must be longer than zero"));
    }
    Ok(d)
}

impl TenantSettings {
    /// Sets one setting from its text form, as written on the command line.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<(), SettingError> {
        match key {
            "read_csrf" => self.read_csrf = parse_bool(key, value)?,
            "write_csrf" => self.write_csrf = parse_bool(key, value)?,
            "public_avatars" => self.public_avatars = parse_bool(key, value)?,
            "session_ttl" => self.session_ttl = parse_duration(key, value)?,
            "dropbox_ttl" => self.dropbox_ttl = parse_duration(key, value)?,
            "max_upload_bytes" => self.max_upload_bytes = parse_positive(key, value)?,
            "max_side" => self.max_side = parse_positive(key, value)?,
            "max_pixels" => self.max_pixels = parse_positive(key, value)?,
            "max_live_pictures" => self.max_live_pictures = parse_positive(key, value)?,
            "uploads_per_minute" => self.uploads_per_minute = parse_positive(key, value)?,
            _ => return Err(SettingError::UnknownKey(key.to_string())),
        }
        Ok(())
    }

    /// Checks values that serde accepted but that make no sense (zero limits, zero TTLs).
    pub fn validate(&self) -> Result<(), SettingError> {
        let zero = |k: &str| Err(bad(k, "must be greater than zero"));
        if self.session_ttl.is_zero() {
            return zero("session_ttl");
        }
        if self.dropbox_ttl.is_zero() {
            return zero("dropbox_ttl");
        }
        if self.max_upload_bytes == 0 {
            return zero("max_upload_bytes");
        }
        if self.max_side == 0 {
            return zero("max_side");
        }
        if self.max_pixels == 0 {
            return zero("max_pixels");
        }
        if self.max_live_pictures == 0 {
            return zero("max_live_pictures");
        }
        if self.uploads_per_minute == 0 {
            return zero("uploads_per_minute");
        }
        Ok(())
    }
}

/// A tenant as the metadata store keeps it: only the settings it overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRecord {
    pub name: String,
    pub hosts: Vec<String>,
    pub overrides: BTreeMap<String, String>,
}

/// A tenant with its effective settings.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub name: String,
    pub hosts: Vec<String>,
    pub settings: TenantSettings,
}

impl Tenant {
    pub fn session_cookie(&self) -> String {
        format!("AtmoAuthToken_{}", self.name)
    }

    pub fn csrf_cookie(&self) -> String {
        format!("Csrf-Token_{}", self.name)
    }

    pub fn csrf_header(&self) -> String {
        format!("X-Csrf-Token_{}", self.name)
    }
}

/// `[A-Za-z0-9_-]{1,64}`
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A DNS host name (letters, digits, hyphens, dots), stored lower-case.
pub fn normalize_host(host: &str) -> Option<String> {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then_some(host)
}

/// Builds the effective settings of a stored tenant over the configured defaults. A stored
/// value that no longer parses keeps the default and is logged, rather than taking the
/// tenant down.
pub fn effective(record: &TenantRecord, defaults: &TenantSettings) -> Tenant {
    let mut settings = defaults.clone();
    for (key, value) in &record.overrides {
        if let Err(e) = settings.apply(key, value) {
            tracing::warn!(tenant = %record.name, error = %e, "ignoring a stored tenant setting");
        }
    }
    Tenant {
        name: record.name.clone(),
        hosts: record.hosts.clone(),
        settings,
    }
}

type Snapshot = Arc<Vec<Arc<Tenant>>>;

/// The node's view of the tenant list, re-read from the store when older than [`REFRESH`].
pub struct TenantDirectory {
    defaults: TenantSettings,
    cached: RwLock<Option<(Instant, Snapshot)>>,
}

impl TenantDirectory {
    pub fn new(defaults: TenantSettings) -> Self {
        TenantDirectory {
            defaults,
            cached: RwLock::new(None),
        }
    }

    /// Forgets the node's copy, so the next request reads the store.
    pub async fn invalidate(&self) {
        *self.cached.write().await = None;
    }

    pub async fn all(&self, meta: &dyn MetaStore) -> Result<Snapshot, StoreError> {
        if let Some((at, list)) = self.cached.read().await.as_ref() {
            if at.elapsed() < REFRESH {
                return Ok(list.clone());
            }
        }
        let mut slot = self.cached.write().await;
        if let Some((at, list)) = slot.as_ref() {
            if at.elapsed() < REFRESH {
                return Ok(list.clone());
            }
        }
        let records = meta.list_tenants().await?;
        let list: Snapshot = Arc::new(
            records
                .iter()
                .map(|r| Arc::new(effective(r, &self.defaults)))
                .collect(),
        );
        *slot = Some((Instant::now(), list.clone()));
        Ok(list)
    }

    /// The tenant whose host list names `host` (port ignored, case-insensitive), else the
    /// tenant with no hosts, else none.
    pub async fn resolve(
        &self,
        meta: &dyn MetaStore,
        host: &str,
    ) -> Result<Option<Arc<Tenant>>, StoreError> {
        let name = strip_port(host).to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        let all = self.all(meta).await?;
        let by_host = all.iter().find(|t| t.hosts.iter().any(|h| h == name));
        let fallback = || all.iter().find(|t| t.hosts.is_empty());
        Ok(by_host.or_else(fallback).cloned())
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_from_text() {
        let mut s = TenantSettings::default();
        s.apply("session_ttl", "90s").unwrap();
        s.apply("dropbox_ttl", "2h").unwrap();
        s.apply("read_csrf", "true").unwrap();
        s.apply("max_upload_bytes", "1024").unwrap();
        assert_eq!(s.session_ttl, Duration::from_secs(90));
        assert_eq!(s.dropbox_ttl, Duration::from_secs(7200));
        assert!(s.read_csrf);
        assert_eq!(s.max_upload_bytes, 1024);
        assert!(matches!(
            s.apply("nope", "1"),
            Err(SettingError::UnknownKey(_))
        ));
        assert!(s.apply("max_side", "0").is_err());
        assert!(s.apply("max_side", "-3").is_err());
        assert!(s.apply("session_ttl", "soon").is_err());
    }

    #[test]
    fn names_and_hosts() {
        assert!(valid_name("Acme_01-x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a.b"));
        assert!(!valid_name(&"a".repeat(65)));
        assert_eq!(
            normalize_host("Portal.Example.COM.").as_deref(),
            Some("portal.example.com")
        );
        assert_eq!(normalize_host("bad host"), None);
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("example.com"), "example.com");
    }
}
