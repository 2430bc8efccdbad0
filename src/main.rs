//! The `pixdrop` binary: everything is in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    pixdrop::cli::main().await
}
