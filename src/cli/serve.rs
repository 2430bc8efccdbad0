//! `pixdrop serve`: bind, run the router and the sweeper, stop cleanly on SIGTERM/SIGINT.

use std::future::IntoFuture;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::AppState;

pub async fn serve(state: AppState) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&state.config.listen).await?;
    let address = listener.local_addr()?;
    // Plain line on stderr whatever the log format: scripts and tests wait for it.
    eprintln!("pixdrop listening on http://{address}");
    tracing::info!(%address, "listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let sweeper = tokio::spawn(crate::sweeper::run(
        state.clone(),
        state.config.sweep_interval,
        stop_rx.clone(),
    ));

    let app = crate::http::router(state.clone());
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let _ = stop_tx.send(true);
    });

    let deadline = state.config.shutdown_timeout;
    let mut stopping = stop_rx.clone();
    tokio::select! {
        result = server.into_future() => result?,
        _ = async {
            let _ = stopping.wait_for(|stop| *stop).await;
            tokio::time::sleep(deadline).await;
        } => tracing::warn!(?deadline, "shutdown deadline passed; dropping open connections"),
    }
    let _ = sweeper.await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
