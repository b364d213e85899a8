//! The shared store conformance suite on PostgreSQL, one fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step should panic

hearth_store::conformance_tests!(hearth_store_pg::testing::fresh_store());
