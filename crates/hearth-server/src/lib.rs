//! The Hearth server: HTTP API, auth, sweepers and the event stream.
//!
//! Entry points: [`serve`] and [`migrate`] (called by the `hearth` binary,
//! which prints what they return: the library prints nothing),
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

/// `hearth serve`, ready: migrations have run and the socket is bound. The
/// binary announces [`Serving::url`], then calls [`Serving::run`].
pub struct Serving {
    app: Application,
    addr: std::net::SocketAddr,
}

impl Serving {
    /// `http://ADDR`, or `https://ADDR` with native TLS: what `hearth serve`
    /// prints as `hearth listening on URL`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.app.scheme(), self.addr)
    }

    /// Serves until SIGTERM/SIGINT, then drains (see [`Application::run_until`]).
    pub async fn run(self) -> anyhow::Result<()> {
        self.app.run_until(startup::shutdown_signal()).await
    }
}

/// Prepares `hearth serve`: connects and migrates the store, loads the
/// credentials and binds the socket. Prints nothing; the binary says where
/// it listens ([`Serving::url`]) and then runs it.
pub async fn serve(settings: Settings) -> anyhow::Result<Serving> {
    let app = Application::build(settings).await?;
    let addr = app.local_addr()?;
    tracing::info!(%addr, database = app.state().store.engine().as_str(), "hearth listening");
    Ok(Serving { app, addr })
}

/// What `hearth migrate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub engine: hearth_store::Engine,
    /// The newest migration now applied.
    pub schema_version: i64,
}

/// Runs `hearth migrate`: applies pending migrations and says where the
/// schema now is (the binary prints it).
pub async fn migrate(settings: Settings) -> anyhow::Result<Migrated> {
    let store = startup::connect_store(&settings).await?;
    let schema_version = store.schema_version().await?;
    Ok(Migrated { engine: store.engine(), schema_version })
}
