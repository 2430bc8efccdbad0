//! Server configuration: built-in defaults, then an optional TOML file, then `PIXDROP_*`
//! environment variables (nested keys joined by `__`), then command-line flags.
//!
//! Every layer is checked against one schema: an unknown key or a malformed value is a
//! start-up error that names the key and where it came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::tenants::TenantSettings;

/// The one environment variable with the `PIXDROP_` prefix that is not a configuration key:
/// it is read only when a new store is created (see [`crate::app::App::open`]).
pub const ADMIN_PASSWORD_VAR: &str = "PIXDROP_ADMIN_PASSWORD";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: String,
    /// Where the embedded store keeps its files.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; default: `sqlite://{data_dir}/pixdrop.db`.
    pub database_url: Option<String>,
    /// `file://PATH`, `memory://` or `s3://BUCKET/PREFIX`; default: `file://{data_dir}/blobs`.
    pub storage_url: Option<String>,
    /// Uploaded pictures are fitted within `master_size`² before they are stored.
    pub master_size: u32,
    /// Add `Secure` to the session and CSRF cookies (turn on behind TLS).
    pub cookie_secure: bool,
    /// How many images may be decoded at once; 0 means one per CPU core.
    pub max_concurrent_decodes: usize,
    /// How often the background sweeper runs.
    #[serde(with = "duration_text")]
    pub sweep_interval: Duration,
    /// A blob that no record names is deleted only once it is older than this.
    #[serde(with = "duration_text")]
    pub orphan_grace: Duration,
    /// Avatar versions kept per resource (the current one included).
    pub keep_avatar_versions: u32,
    /// How long in-flight requests may run after SIGTERM/SIGINT.
    #[serde(with = "duration_text")]
    pub shutdown_timeout: Duration,
    /// `text` (human-readable) or `json`.
    pub log_format: LogFormat,
    /// Log filter, e.g. `info`, `warn`, `pixdrop=debug,info` (`PIXDROP_LOG` sets it too).
    pub log: Option<String>,
    /// Settings of a tenant that has not overridden them (`pixdrop tenant set`).
    pub tenant_defaults: TenantSettings,
    /// S3 connection settings, used when `storage_url` is `s3://…`.
    pub s3: S3Config,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: Option<bool>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".to_string(),
            data_dir: PathBuf::from("./pixdrop-data"),
            database_url: None,
            storage_url: None,
            master_size: 512,
            cookie_secure: false,
            max_concurrent_decodes: 0,
            sweep_interval: Duration::from_secs(60),
            orphan_grace: Duration::from_secs(3600),
            keep_avatar_versions: 3,
            shutdown_timeout: Duration::from_secs(30),
            log_format: LogFormat::Text,
            log: None,
            tenant_defaults: TenantSettings::default(),
            s3: S3Config::default(),
        }
    }
}

/// Values given as command-line flags; `None` leaves the lower layers in force.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads the layered configuration from the process environment.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        let env = Env::prefixed("PIXDROP_")
            .split("__")
            .filter(|key| !key.as_str().eq_ignore_ascii_case("admin_password"));
        let config: Config = figment
            .merge(env)
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|e| ConfigError(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.master_size == 0 || self.master_size > 4096 {
            return Err(ConfigError(
                "master_size must be between 1 and 4096".to_string(),
            ));
        }
        if self.keep_avatar_versions == 0 {
            return Err(ConfigError(
                "keep_avatar_versions must be at least 1".to_string(),
            ));
        }
        self.tenant_defaults
            .validate()
            .map_err(|e| ConfigError(format!("tenant_defaults: {e}")))?;
        Ok(())
    }

    /// The configuration with secrets replaced by `<redacted>`, for display.
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        c.database_url = c.database_url.as_deref().map(redact_url_password);
        if c.s3.secret_access_key.is_some() {
            c.s3.secret_access_key = Some(REDACTED.to_string());
        }
        c
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("pixdrop.db").display()))
    }

    pub fn storage_url(&self) -> String {
        self.storage_url
            .clone()
            .unwrap_or_else(|| format!("file://{}", self.data_dir.join("blobs").display()))
    }

    pub fn decode_permits(&self) -> usize {
        if self.max_concurrent_decodes > 0 {
            self.max_concurrent_decodes
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}

const REDACTED: &str = "<redacted>";

/// `scheme://user:password@host/…` → `scheme://user:<redacted>@host/…`; a `password=`
/// query parameter is redacted too.
fn redact_url_password(url: &str) -> String {
    let mut out = url.to_string();
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                out = format!("{scheme}://{user}:{REDACTED}@{host}");
            }
        }
    }
    if let Some(i) = out.find("password=") {
        let end = out[i..].find('&').map_or(out.len(), |e| i + e);
        out.replace_range(i + "password=".len()..end, REDACTED);
    }
    out
}

/// Figment errors name the key and the source (file path or environment variable); the
/// first line of each is enough for an operator.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!(" (key `{}`)", e.path.join("."))
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" in {}", m.name))
                .unwrap_or_default();
            format!("{}{key}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact_url_password("postgres://pixdrop:s3cret@db:5432/pixdrop"),
            "postgres://pixdrop:<redacted>@db:5432/pixdrop"
        );
        assert_eq!(
            redact_url_password("postgres://db/pixdrop?user=a&password=s3cret&x=1"),
            "postgres://db/pixdrop?user=a&password=<redacted>&x=1"
        );
        assert_eq!(redact_url_password("sqlite://./x.db"), "sqlite://./x.db");
    }
}

/// Durations are written like `90s`, `30m`, `2h` (or a bare number of seconds).
pub mod duration_text {
    use std::time::Duration;

    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        if let Ok(secs) = text.parse::<u64>() {
            return Ok(Duration::from_secs(secs));
        }
        humantime::parse_duration(text)
            .map_err(|_| format!("`{text}` is not a duration such as 90s, 30m or 2h"))
    }

    pub fn format(d: &Duration) -> String {
        humantime::format_duration(*d).to_string()
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(d))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => parse(&t).map_err(de::Error::custom),
        }
    }
}
