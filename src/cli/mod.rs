//! The command line: `pixdrop serve` and the admin subcommands. Every subcommand opens the
//! same store as the server (creating and migrating it if new) and may run beside it.

mod serve;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};

use crate::app::{App, AppState, ADMIN_EMAIL};
use crate::config::{Config, LogFormat, Overrides, ADMIN_PASSWORD_VAR};
use crate::http::resources::{check_email, check_password};
use crate::meta::{NewUser, StoreError};
use crate::tenants::{normalize_host, valid_name, TenantSettings};

#[derive(Debug, Parser)]
#[command(
    name = "pixdrop",
    version,
    about = "Picture dropbox and avatar service"
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides `listen`).
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Data directory of the embedded store (overrides `data_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://…` (overrides `database_url`).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// `file://PATH` or `s3://BUCKET/PREFIX` (overrides `storage_url`).
    #[arg(long, global = true, value_name = "URL")]
    pub storage_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Run one sweep of expired records now.
    Gc,
    /// Print the effective configuration (file, environment, flags), secrets redacted.
    Config,
    /// Copy every blob to another store, verifying each copy; safe to re-run.
    MigrateStorage {
        /// The destination: `file://PATH` or `s3://BUCKET/PREFIX` (same `s3.*` settings).
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Check that metadata and blobs agree; exits non-zero when they do not.
    Fsck {
        /// Forget records whose blob is lost and delete blobs no record names.
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant, optionally with the host names it answers.
    Add {
        name: String,
        #[arg(long = "host", value_name = "H")]
        hosts: Vec<String>,
    },
    /// Set one setting of a tenant (`hosts` takes a comma-separated list).
    Set {
        name: String,
        key: String,
        value: String,
    },
    /// List tenants with their hosts and the settings they override.
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints the new UserID alone on standard output.
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        site_admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Change a user's password (ends the user's sessions).
    Passwd {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// Parses the command line and runs it; errors are printed on standard error.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pixdrop: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn init_tracing(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let overrides = Overrides {
        listen: cli.listen.clone(),
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        storage_url: cli.storage_url.clone(),
    };
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    if matches!(cli.command, Command::Config) {
        print!("{}", toml::to_string(&config.redacted())?);
        return Ok(());
    }
    let serving = matches!(cli.command, Command::Serve);
    let mut failed = false;
    let filter = config
        .log
        .clone()
        .unwrap_or_else(|| if serving { "info" } else { "warn" }.to_string());
    init_tracing(config.log_format, &filter);

    let admin_password = std::env::var(ADMIN_PASSWORD_VAR).ok();
    let (app, opened) = App::open(config, admin_password)
        .await
        .context("opening the store")?;
    if let Some(password) = &opened.generated_admin_password {
        eprintln!(
            "pixdrop: created a new store; site admin {ADMIN_EMAIL} has password: {password}"
        );
    }
    let state = AppState(std::sync::Arc::new(app));
    let result = match cli.command {
        Command::Serve => serve::serve(state.clone()).await,
        Command::Tenant(cmd) => tenant(&state, cmd).await,
        Command::User(cmd) => user(&state, cmd).await,
        Command::Config => Ok(()),
        Command::Gc => {
            let counts = crate::sweeper::sweep_once(&state)
                .await
                .map_err(|e| anyhow!("sweep failed: {e}"))?;
            println!(
                "swept: {} sessions, {} login failures, {} expired pictures, {} picture rows, {} avatar versions, {} orphan blobs",
                counts.sessions,
                counts.login_failures,
                counts.pictures_expired,
                counts.picture_rows_purged,
                counts.avatar_versions_pruned,
                counts.orphan_blobs
            );
            Ok(())
        }
        Command::MigrateStorage { to } => {
            let dest = crate::blobs::Blobs::open(&to, &state.config.s3)
                .context("opening the destination store")?;
            let report = state.blobs.copy_all_to(&dest).await?;
            println!(
                "copied {} blobs ({} bytes), {} already there; every copy verified by size and SHA-256",
                report.copied, report.bytes, report.already_there
            );
            Ok(())
        }
        Command::Fsck { repair } => {
            let problems = crate::fsck::check(&state)
                .await
                .map_err(|e| anyhow!("fsck failed: {e}"))?;
            for p in &problems {
                println!("{p}");
            }
            if repair && !problems.is_empty() {
                crate::fsck::repair(&state, &problems)
                    .await
                    .map_err(|e| anyhow!("repair failed: {e}"))?;
                let left = crate::fsck::check(&state)
                    .await
                    .map_err(|e| anyhow!("fsck failed: {e}"))?;
                println!("repaired {} problems; {} left", problems.len(), left.len());
                failed = !left.is_empty();
            } else {
                println!("{} problems", problems.len());
                failed = !problems.is_empty();
            }
            Ok(())
        }
    };
    state.meta.close().await;
    result?;
    if failed {
        bail!("the store has problems (see above)");
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line)
        .to_string();
    check_password(&password).map_err(|e| anyhow!("{e}"))?;
    Ok(password)
}

fn parse_hosts(list: &[String]) -> anyhow::Result<Vec<String>> {
    list.iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| normalize_host(h).ok_or_else(|| anyhow!("`{h}` is not a host name")))
        .collect()
}

async fn tenant_exists(state: &AppState, name: &str) -> anyhow::Result<()> {
    let tenants = state.meta.list_tenants().await?;
    if !tenants.iter().any(|t| t.name == name) {
        bail!("no tenant named {name}");
    }
    Ok(())
}

async fn tenant(state: &AppState, cmd: TenantCommand) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::Add { name, hosts } => {
            if !valid_name(&name) {
                bail!("tenant name must match [A-Za-z0-9_-]{{1,64}}");
            }
            let hosts = parse_hosts(&hosts)?;
            state.meta.add_tenant(&name, &hosts).await?;
            println!("{name}");
        }
        TenantCommand::Set { name, key, value } => {
            let result = if key == "hosts" {
                let hosts = parse_hosts(std::slice::from_ref(&value))?;
                state.meta.set_tenant_hosts(&name, &hosts).await
            } else {
                TenantSettings::default().apply(&key, &value)?;
                state
                    .meta
                    .set_tenant_setting(&name, &key, value.trim())
                    .await
            };
            match result {
                Err(StoreError::NotFound) => bail!("no tenant named {name}"),
                other => other?,
            }
        }
        TenantCommand::List => {
            for t in state.meta.list_tenants().await? {
                let hosts = if t.hosts.is_empty() {
                    "*".to_string()
                } else {
                    t.hosts.join(",")
                };
                let settings: Vec<String> = t
                    .overrides
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                println!("{}\t{hosts}\t{}", t.name, settings.join(" "));
            }
        }
    }
    Ok(())
}

async fn user(state: &AppState, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            tenant,
            email,
            name,
            site_admin,
            password_stdin: _,
        } => {
            let email = check_email(&email).map_err(|e| anyhow!("{e}"))?;
            tenant_exists(state, &tenant).await?;
            let password = read_password()?;
            let password_hash = state.passwords.hash(password).await?;
            let user = state
                .meta
                .create_user(NewUser {
                    tenant,
                    name: name.unwrap_or_else(|| email.clone()),
                    email,
                    password_hash,
                    site_admin,
                })
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(_) => anyhow!("that email is already used in the tenant"),
                    other => other.into(),
                })?;
            println!("{}", user.id);
        }
        UserCommand::Passwd {
            tenant,
            email,
            password_stdin: _,
        } => {
            let password = read_password()?;
            let hash = state.passwords.hash(password).await?;
            match state.meta.set_password(&tenant, &email, &hash).await {
                Err(StoreError::NotFound) => bail!("no user {email} in tenant {tenant}"),
                other => other?,
            }
        }
    }
    Ok(())
}
