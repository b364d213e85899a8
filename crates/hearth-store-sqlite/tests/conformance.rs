//! The shared store conformance suite on SQLite, one fresh database file per test.

hearth_store::conformance_tests!(hearth_store_sqlite::testing::fresh_store());
