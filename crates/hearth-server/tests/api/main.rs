//! API integration tests: the real application on `127.0.0.1:0`, driven
//! through the real `hearth-client` (and raw HTTP where a test must send
//! what no well-behaved client would), on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step should panic

mod harness;

mod auth;
mod bad_input;
mod bootstrap;
mod dashboard;
mod delivery;
mod events;
mod fast;
mod lifecycle;
mod limits;
mod misc;
mod orgs;
mod outages;
mod peers;
mod plugin_access;
mod quotas;
mod removed;
mod retention;
mod roles;
mod schema;
mod unavailable;
