//! The embedded default: one SQLite file (WAL mode), created with its folder on first start.
//!
//! `synchronous = NORMAL` under WAL keeps every committed transaction across a crash of the
//! process; only a power loss can drop the last few commits. Writers queue on the file lock
//! for up to the store's acquire timeout.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::{StoreError, impl_store};
use crate::config::StoreSettings;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str, settings: &StoreSettings) -> Result<Self, StoreError> {
        let timeout = Duration::from_millis(settings.acquire_timeout_ms);
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(timeout)
            .foreign_keys(true);
        if let Some(folder) = options.get_filename().parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", folder.display())))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(timeout)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    /// The pool itself, for tools and tests that must reach past the trait (an auditor's
    /// tamper test edits a row directly).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl_store!(SqliteStore, "sqlite");
