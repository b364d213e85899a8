//! A fresh, migrated SQLite database file per test, deleted afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step should panic

/// The driver, for tests that reach under the store on purpose (to corrupt
/// a row, say) without depending on a sqlx driver themselves.
pub use sqlx;

use std::path::PathBuf;

use crate::SqliteStore;

/// Removes its directory (database, WAL and SHM files) when dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub dir: PathBuf,
    pub url: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("warning: could not remove test database {}: {e}", self.dir.display());
        }
    }
}

/// A new empty directory and the URL of a database file inside it.
pub fn create_database() -> TestDatabase {
    let dir = std::env::temp_dir().join(format!("hearth-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create test database directory");
    let url = format!("sqlite://{}", dir.join("hearth.db").display());
    TestDatabase { dir, url }
}

/// A migrated store on a database file of its own.
pub async fn fresh_store() -> (SqliteStore, TestDatabase) {
    let db = create_database();
    let store = crate::connect(&db.url).await.expect("open test database");
    store.migrate().await.expect("migrate test database");
    (store, db)
}
