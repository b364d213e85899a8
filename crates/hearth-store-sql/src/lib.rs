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
pub use error::{map_err, map_write_err, redact, Violations};
pub use store::SqlStore;

/// Rule 2 for an engine: one test that prepares every statement the engine
/// runs (shared and dialect) against a freshly migrated database. `$make` is
/// an async expression returning `(SqlStore<D>, guard)`; `$dialect` is `D`.
#[macro_export]
macro_rules! statement_tests {
    ($make:expr, $dialect:ty) => {
        #[tokio::test]
        async fn every_statement_prepares_against_the_migrated_schema() {
            let (store, _guard) = $make.await;
            let failures = store.unpreparable_statements().await;
            assert!(failures.is_empty(), "statements that do not fit the schema:\n{}", failures.join("\n"));
            let count = $crate::sql::all_statements::<$dialect>().len();
            assert!(count >= 40, "the registry lists every statement ({count})");
        }

        /// Issue 23, item 6 (ROADMAP: sharding by org): every statement
        /// names a key that determines its org, or is listed, with why, in
        /// `sql::ACROSS_ORGS`, so a new query that reads across orgs is a
        /// decision, not an accident.
        #[test]
        fn every_statement_names_its_org_or_is_known_to_read_across_orgs() {
            let unscoped = $crate::sql::unscoped_statements::<$dialect>();
            assert!(unscoped.is_empty(), "statements scoped by no org key and not in sql::ACROSS_ORGS: {unscoped:#?}");
        }
    };
}
