//! The agent against the real server, in-process, on a temporary SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod delivery;
mod harness;
mod lifecycle;
mod program;
