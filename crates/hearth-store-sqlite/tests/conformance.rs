//! The shared store conformance suite, and rule 2 (every statement prepares
//! against the migrated schema), on SQLite, one fresh database file per test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step should panic

hearth_store::conformance_tests!(hearth_store_sqlite::testing::fresh_store());
hearth_store_sql::statement_tests!(hearth_store_sqlite::testing::fresh_store(), hearth_store_sqlite::Sqlite);
