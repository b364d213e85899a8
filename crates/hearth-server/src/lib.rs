//! The Hearth server: HTTP API, auth, sweepers and the event stream.
//!
//! Entry points: [`serve`] and [`migrate`] (called by the `hearth` binary),
//! [`startup::Application`] (used by tests to run the real app on
//! `127.0.0.1:0`), [`routes::router`].

pub mod agent_url;
pub mod auth;
pub mod buildinfo;
pub mod bus;
pub mod caches;
pub mod config;
pub mod crypto;
pub mod desired;
pub mod edge;
pub mod error;
pub mod extract;
pub mod fast;
pub mod forwarded;
pub mod lifecycle;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod notices;
pub mod pace;
pub mod paging;
pub mod provisioner;
pub mod retention;
pub mod routes;
pub mod startup;
pub mod state;
pub mod sweeper;
pub mod ui;
pub mod uploads;
pub mod writers;

pub use config::{ProvisionerKind, Settings};
pub use fast::HeartbeatAck;
pub use startup::Application;

/// Runs `hearth serve` until SIGTERM/SIGINT. Prints
/// `hearth listening on http://ADDR` (`https://` with native TLS) to stdout
/// once the socket is bound and migrations have run.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let addr = app.local_addr()?;
    tracing::info!(%addr, database = app.state().store.engine().as_str(), "hearth listening");
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "hearth listening on {}://{addr}", app.scheme())?;
        stdout.flush()?;
    }
    app.run_until(startup::shutdown_signal()).await
}

/// Runs `hearth migrate`: applies pending migrations and exits.
pub async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let store = startup::connect_store(&settings).await?;
    let version = store.schema_version().await?;
    println!("database migrated ({}, schema version {version})", store.engine().as_str());
    Ok(())
}
