//! The shared store conformance suite on PostgreSQL, one fresh database per test.

hearth_store::conformance_tests!(hearth_store_pg::testing::fresh_store());
