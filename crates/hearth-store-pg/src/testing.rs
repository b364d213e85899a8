//! A fresh, migrated Postgres database per test, dropped afterwards.
//!
//! The server to use comes from `HEARTH_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). There is no skip: a test
//! that needs Postgres fails when it is not there, and the test command
//! (`scripts/test`) makes sure it is.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step should panic

/// The driver, for tests that reach under the store on purpose (to corrupt
/// a row, say) without depending on a sqlx driver themselves.
pub use sqlx;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

use crate::PgStore;

pub fn admin_url() -> String {
    std::env::var("HEARTH_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The URL of database `name` on the test server.
pub fn database_url(name: &str) -> String {
    let admin = admin_url();
    match admin.rfind('/') {
        Some(slash) if admin[..slash].contains("://") && slash > admin.find("://").unwrap_or(0) + 2 => {
            let query = admin[slash..].find('?').map(|q| &admin[slash + q..]).unwrap_or("");
            format!("{}/{name}{query}", &admin[..slash])
        }
        _ => format!("{admin}/{name}"),
    }
}

/// Drops its database when dropped (WITH (FORCE) closes leftover connections).
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime; do the async work on a thread of its own.
        let outcome = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin_url()).await?;
                sqlx::query(&format!("drop database if exists \"{name}\" with (force)")).execute(&mut conn).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if !matches!(outcome, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}: {outcome:?}", self.name);
        }
    }
}

/// Creates an empty database with a unique name (not migrated).
pub async fn create_database() -> TestDatabase {
    let name = format!("hearth_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin_url()).await.unwrap_or_else(|e| {
        panic!("tests need PostgreSQL at {} ({e}); run scripts/test, which starts it", admin_url())
    });
    sqlx::query(&format!("create database \"{name}\"")).execute(&mut conn).await.expect("create test database");
    TestDatabase { url: database_url(&name), name }
}

/// A migrated store on a database of its own.
pub async fn fresh_store() -> (PgStore, TestDatabase) {
    let db = create_database().await;
    let pool = PgPoolOptions::new().max_connections(8).connect(&db.url).await.expect("connect to test database");
    let options = db.url.parse().expect("a test database URL");
    // Like a server's store: plain heartbeat batches on connections of
    // their own that commit asynchronously.
    let store = crate::from_pool(pool).with_liveness_pool(crate::liveness_pool(options, &Default::default()));
    store.migrate().await.expect("migrate test database");
    (store, db)
}
