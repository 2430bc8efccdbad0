//! pixdrop: a picture dropbox and avatar service, wire-compatible with the Akana developer
//! portal. `main.rs` only parses the command line; everything else lives here so that tests
//! can drive it in-process.

pub mod app;
pub mod auth;
pub mod blobs;
pub mod cli;
pub mod config;
pub mod fsck;
pub mod http;
pub mod imaging;
pub mod meta;
pub mod metrics;
pub mod sweeper;
pub mod tenants;

pub use app::{App, AppState};
pub use http::router;
