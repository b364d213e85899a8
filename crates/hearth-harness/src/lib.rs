//! The harnesses behind three `hearth` commands, as a library: the binary
//! parses the command line, calls in here and prints what comes back.
//!
//! - [`e2e`]: `hearth e2e template-delivery`, the acceptance scenario of
//!   PRODUCT.md (steps A–E) against any live server.
//! - [`bench`]: `hearth bench heartbeat`, heartbeat ingest of an in-process
//!   server against a same-run HTTP echo baseline, then a durability audit.
//! - [`propagation`]: `hearth bench propagation`, how long an event written
//!   through one replica takes to reach another replica's event stream (two
//!   in-process servers on one Postgres database).
//! - [`examples`]: the example template and plugin of the repository's
//!   `examples/` directory, embedded (also what `hearth up` loads).
//!
//! Nothing here writes to the terminal or sets up logging: progress goes to
//! a callback, results come back as values (serializable as the commands'
//! `--json` documents).

pub mod bench;
pub mod e2e;
pub mod examples;
pub mod propagation;
