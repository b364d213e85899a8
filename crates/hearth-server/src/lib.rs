//! The Hearth server: HTTP API, auth, sweepers and the event stream.
//!
//! Entry points: [`serve`] and [`migrate`] (called by the `hearth` binary,
//! which prints what they return: the library prints nothing),
//! [`startup::Application`] (used by tests to run the real app on
//! `127.0.0.1:0`), [`routes::router`]. The modules that only this crate
//! uses are `pub(crate)`; ARCHITECTURE.md has the map, and `module_graph.rs`
//! keeps their imports acyclic.

pub mod access;
pub(crate) mod agent_url;
pub mod auth;
pub(crate) mod buildinfo;
pub mod bus;
pub(crate) mod caches;
pub(crate) mod caller;
pub(crate) mod config;
pub(crate) mod crypto;
pub(crate) mod edge;
pub(crate) mod error;
pub(crate) mod extract;
pub mod forwarded;
pub(crate) mod grouped;
pub(crate) mod heartbeat;
pub(crate) mod lanes;
pub mod limits;
pub mod listener;
pub mod metrics;
pub(crate) mod notices;
pub(crate) mod pace;
pub(crate) mod paging;
pub(crate) mod provisioner;
pub mod retention;
pub mod routes;
pub mod secret_file;
pub mod startup;
pub mod state;
pub mod sweeper;
pub(crate) mod transitions;
pub(crate) mod ui;
pub(crate) mod uploads;

pub use config::{DockerSettings, HeartbeatAck, MassSilenceGuard, ProvisionerKind, Settings};
pub use provisioner::local_image;
pub use startup::{migrate, serve, Application, Migrated, Serving};

#[cfg(test)]
mod module_graph;
