//! The API test suite: one binary, the router driven in-process, plus process-level tests
//! of `pixdrop serve` where the behaviour is about processes.

#![allow(clippy::unwrap_used)]

mod backend;
mod helpers;
mod images;

mod avatars;
mod config;
mod dropbox;
mod login;
mod openapi;
mod operations;
mod ops;
mod process;
mod resources;
mod scaleout;
mod storage;
