//! The one SQL implementation of `hearth_store::Store`, generic over a
//! per-engine [`Dialect`] (kine's shape: one implementation, a small
//! dialect per database).
//!
//! Every line that runs a query is here, once. An engine crate
//! (`hearth-store-pg`, `hearth-store-sqlite`) supplies its migrations, its
//! dialect (database type, how a write transaction begins, the statements it
//! spells its own way, the status type, what its error codes mean) and its
//! connection setup, and nothing else.
//!
//! Invariant: this crate enables no sqlx driver; the engine crates do.

mod dialect;
mod error;
pub mod rows;
pub mod sql;
mod store;

pub use dialect::{Dialect, Failure};
pub use error::{map_err, redact};
pub use store::SqlStore;
