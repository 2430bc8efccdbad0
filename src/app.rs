//! The application state, built once and handed to every handler through [`AppState`].

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::auth::password::Passwords;
use crate::blobs::Blobs;
use crate::config::Config;
use crate::meta::{self, MetaStore};
use crate::metrics::Metrics;
use crate::tenants::TenantDirectory;

/// The site admin every new store gets.
pub const ADMIN_EMAIL: &str = "admin@localhost";

pub struct App {
    pub config: Config,
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Blobs,
    pub tenants: TenantDirectory,
    pub passwords: Passwords,
    pub metrics: Metrics,
    /// Caps concurrent image decodes and renders (each holds a full frame in memory).
    pub decode_permits: Arc<Semaphore>,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// What opening the store did besides opening it.
#[derive(Debug, Default)]
pub struct Opened {
    /// Set when this call created the store with a generated admin password: the caller
    /// shows it once.
    pub generated_admin_password: Option<String>,
    pub created: bool,
}

impl App {
    /// Opens (creating and migrating if new) the configured stores. A new store gets tenant
    /// `default` and the site admin [`ADMIN_EMAIL`] with `admin_password`, or a random one.
    pub async fn open(
        config: Config,
        admin_password: Option<String>,
    ) -> anyhow::Result<(App, Opened)> {
        let meta = meta::open(&config.database_url()).await?;
        let blobs = Blobs::open(&config.storage_url(), &config.s3)?;
        let passwords = Passwords::new().await?;
        let mut opened = Opened::default();
        // Hash only for a store that looks new; bootstrap re-checks inside its transaction.
        if meta.list_tenants().await?.is_empty() {
            let given = admin_password.filter(|p| !p.is_empty());
            let password = match &given {
                Some(p) => p.clone(),
                None => crate::auth::tokens::random_token(18),
            };
            let hash = passwords.hash(password.clone()).await?;
            if meta.bootstrap(ADMIN_EMAIL, &hash).await? {
                opened.created = true;
                if given.is_none() {
                    opened.generated_admin_password = Some(password);
                }
            }
        }
        let tenants = TenantDirectory::new(config.tenant_defaults.clone());
        let decode_permits = Arc::new(Semaphore::new(config.decode_permits()));
        Ok((
            App {
                config,
                meta,
                blobs,
                tenants,
                passwords,
                decode_permits,
                metrics: Metrics::new()?,
            },
            opened,
        ))
    }
}
