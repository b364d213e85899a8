//! The baseline: a minimal axum app that parses a heartbeat-shaped JSON
//! body and answers `{"status":"ok"}`, driven like the real thing.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use hearth_api::HeartbeatRequest;
use tokio::sync::oneshot;

use super::load;
use super::workspaces::Target;
use super::Progress;

pub(super) async fn run(
    targets: &[Target],
    concurrency: usize,
    duration: Duration,
    progress: &dyn Progress,
) -> anyhow::Result<load::Run> {
    async fn echo(axum::Json(_): axum::Json<HeartbeatRequest>) -> axum::Json<serde_json::Value> {
        axum::Json(serde_json::json!({"status": "ok"}))
    }
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("cannot listen for the baseline")?;
    let url = format!("http://{}/echo", listener.local_addr()?);
    let router = axum::Router::new().route("/echo", axum::routing::post(echo));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                // Told to stop, or the sender is gone: stop either way.
                stopped.await.unwrap_or_default();
            })
            .await
            .context("baseline server error")
    });
    let measured = load::drive(&url, targets, concurrency, load::Until::Elapsed(duration), progress).await;
    // The server may have ended on its own already; `finish` says how.
    stop.send(()).unwrap_or_default();
    let stopped = super::finish("the baseline server", server).await;
    let measured = measured?;
    stopped?;
    Ok(measured)
}
