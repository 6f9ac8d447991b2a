//! Persistence, and nothing else: [`Store`] reads and writes rows; deciding what to write
//! (price events, prior prices, decisions) belongs to the layers above, which hand the store
//! finished values and compose writes inside one transaction ([`Tx`]).
//!
//! One implementation serves both backends, an embedded SQLite file (the default) and
//! PostgreSQL, through sqlx's `Any` driver: the SQL text is shared (`$n` parameters,
//! `ON CONFLICT ... RETURNING`, `IS NOT DISTINCT FROM` work on both), and the few places where
//! the engines differ ask [`Backend`]. Why `Any`: a store generic over `sqlx::Database` needs
//! the same dozen trait bounds (`Executor` for `&mut Connection`, `Type + Encode + Decode` per
//! Rust type) repeated on every function, since Rust does not imply non-supertrait bounds; one
//! store per backend duplicates every query; `Any` keeps plain functions and one copy of each
//! query, for the cost of converting values into `Any`'s representation (a few per cent of a
//! catalogue reprice, whose time is the database's own work). `Any` knows no booleans on
//! SQLite, so boolean columns are read through `CASE WHEN ... THEN 1 ELSE 0 END`.
//!
//! The migrations under `migrations/<backend>/` run when a store is opened.

mod bulk;
pub mod chain;
mod checkpoints;
pub mod history;
pub mod jobs;
pub mod outbox;
pub mod overrides;
mod packing;
pub mod prices;
pub mod products;
pub mod quotas;
mod rows;
pub mod rules;
pub mod safety;
pub mod signals;
mod tenants;
pub mod trials;
pub mod webhooks;
pub mod work;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::StoreSettings;
use crate::domain::{Currency, Sku};

pub use chain::{NewDecision, StoredDecision};
pub use history::{DecisionFilter, OutcomeFilter, SigningKeyRecord};
pub use prices::{CurrentPrice, PriceSource};
pub use products::{ProductFilter, Upserted};
pub use rules::{Activation, NewRuleVersion, RuleCode, RuleVersion};
pub use signals::{DemandEvent, DemandKind, DemandSummary, Observation, Signals, WrongCurrency};
pub use tenants::{Merchant, StoredKey};
pub use work::{Backlog, Intent, Sweep};

/// A write transaction: the layers above compose a change from the store's functions that
/// take one, and commit it whole. It dereferences to its connection, so `&mut **tx` runs a
/// query in it. On SQLite it also holds the process's write turn (see [`Store::begin`]).
pub struct Tx {
    inner: TxInner,
    /// Released after the transaction ends.
    turn: Option<OwnedSemaphorePermit>,
}

enum TxInner {
    /// PostgreSQL: sqlx's transaction (an aborted transaction is rolled back on drop).
    Managed(sqlx::Transaction<'static, sqlx::Any>),
    /// SQLite: `BEGIN IMMEDIATE` and `COMMIT` of our own (`None` once ended). SQLite rolls a
    /// transaction back by itself after some errors (a full disk, an I/O error), which leaves
    /// sqlx's count of open transactions wrong: its next `BEGIN` on that connection becomes a
    /// `SAVEPOINT`, whose rollback leaves a transaction open that holds the write lock and
    /// a stale snapshot, and whose "commit" commits nothing. So the transaction is ours, and
    /// one that did not commit is always ended with a plain `ROLLBACK` before its connection
    /// goes back to the pool.
    Sqlite(Option<sqlx::pool::PoolConnection<sqlx::Any>>),
}

impl Tx {
    /// The engine the transaction runs on.
    pub fn backend(&self) -> Backend {
        match self.inner {
            TxInner::Managed(_) => Backend::Postgres,
            TxInner::Sqlite(_) => Backend::Sqlite,
        }
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        match &mut self.inner {
            TxInner::Sqlite(conn) => {
                let connection = conn.as_mut().expect("an open transaction has its connection");
                sqlx::query("COMMIT").execute(&mut **connection).await?;
                // Committed: the connection goes back to the pool as it is.
                conn.take();
                Ok(())
            }
            TxInner::Managed(_) => {
                let TxInner::Managed(tx) = std::mem::replace(&mut self.inner, TxInner::Sqlite(None)) else {
                    unreachable!()
                };
                Ok(tx.commit().await?)
            }
        }
    }

    pub async fn rollback(mut self) -> Result<(), StoreError> {
        match std::mem::replace(&mut self.inner, TxInner::Sqlite(None)) {
            TxInner::Managed(tx) => Ok(tx.rollback().await?),
            TxInner::Sqlite(Some(mut conn)) => {
                end_quietly(&mut conn).await;
                Ok(())
            }
            TxInner::Sqlite(None) => Ok(()),
        }
    }
}

/// Ends whatever transaction the connection is in; "no transaction is active" (SQLite rolled
/// it back itself) is the same outcome.
async fn end_quietly(conn: &mut sqlx::pool::PoolConnection<sqlx::Any>) {
    let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
}

impl Drop for Tx {
    fn drop(&mut self) {
        let TxInner::Sqlite(conn) = &mut self.inner else { return };
        let Some(mut conn) = conn.take() else { return };
        let turn = self.turn.take();
        match tokio::runtime::Handle::try_current() {
            // The write turn passes on only once the transaction has ended.
            Ok(runtime) => {
                runtime.spawn(async move {
                    end_quietly(&mut conn).await;
                    drop(conn);
                    drop(turn);
                });
            }
            // No runtime to roll back on: the connection is closed instead (which rolls back).
            Err(_) => drop(conn.detach()),
        }
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        match &self.inner {
            TxInner::Managed(tx) => tx,
            TxInner::Sqlite(conn) => conn.as_ref().expect("an open transaction has its connection"),
        }
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        match &mut self.inner {
            TxInner::Managed(tx) => tx,
            TxInner::Sqlite(conn) => conn.as_mut().expect("an open transaction has its connection"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A deadlock, a serialization failure, a lock wait that timed out or a busy SQLite file:
    /// the transaction rolled back, and trying it again is safe.
    #[error("the database was contended; try again: {0}")]
    Contended(String),
    #[error("product {sku} is priced in {existing}; its currency cannot change")]
    CurrencyMismatch { sku: Sku, existing: Currency },
    /// A change refused by one of the merchant's quotas (checked by the write side).
    #[error("{message}")]
    OverQuota { what: &'static str, limit: u64, message: String },
    /// A batch with observations in another currency than their products', refused whole.
    #[error("{} observations are in another currency than their product", .0.len())]
    WrongCurrency(Vec<signals::WrongCurrency>),
    #[error("stored data could not be read back: {0}")]
    Corrupt(String),
    #[error("unsupported database URL `{0}`: use sqlite://path or postgres://...")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("rule version {0} does not exist")]
    UnknownRuleVersion(i64),
    #[error("there is no earlier activation to roll back to")]
    NothingToRollBack,
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(ref db) if db.code().is_some_and(|code| is_contention(&code)) => {
                StoreError::Contended(e.to_string())
            }
            sqlx::Error::Database(ref db) if db.code().is_some_and(|code| is_outage(&code)) => {
                StoreError::Unavailable(e.to_string())
            }
            other => StoreError::Database(other),
        }
    }
}

/// PostgreSQL: deadlock, serialization failure, lock not available; SQLite: busy and locked,
/// with their extended codes (the primary code is the low byte).
fn is_contention(code: &str) -> bool {
    match code {
        "40P01" | "40001" | "55P03" => true,
        sqlite => sqlite.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
    }
}

/// The database is going away or cannot take the write, for a while: PostgreSQL's connection
/// exceptions (class 08), administrator or crash shutdown, a server starting up, too many
/// connections, a full disk; SQLite's full disk and I/O errors (primary codes 13 and 10).
fn is_outage(code: &str) -> bool {
    match code {
        "57P01" | "57P02" | "57P03" | "53300" | "53100" => true,
        // SQLite's codes, extended ones included, have at most four digits.
        postgres if postgres.len() == 5 => postgres.starts_with("08"),
        sqlite => sqlite.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 10 | 13)),
    }
}

/// The database engine behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(url.split(':').next().unwrap_or_default().to_owned()))
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Everything the service keeps. Cloning shares the connection pool.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite: one write transaction at a time, taken in arrival order (see [`Store::begin`]).
    write_turns: Option<Arc<Semaphore>>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database the URL names.
    ///
    /// SQLite: WAL with `synchronous = NORMAL` keeps every committed transaction across a
    /// crash of the process (only a power loss can drop the last few commits); writers queue
    /// on the file lock for up to the acquire timeout.
    pub async fn connect(url: &str, settings: &StoreSettings) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let timeout = Duration::from_millis(settings.acquire_timeout_ms);
        let options = match backend {
            Backend::Sqlite => {
                let sqlite = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
                if let Some(folder) = sqlite.get_filename().parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(folder)
                        .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", folder.display())))?;
                }
                let separator = if url.contains('?') { '&' } else { '?' };
                let url = if url.contains("mode=") { url.to_owned() } else { format!("{url}{separator}mode=rwc") };
                AnyConnectOptions::from_str(&url)?
            }
            Backend::Postgres => AnyConnectOptions::from_str(url)?,
        };
        let busy_ms = settings.acquire_timeout_ms;
        let pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => {
                            conn.execute(sqlx::AssertSqlSafe(format!(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {busy_ms};"
                            )))
                            .await?;
                        }
                        Backend::Postgres => {
                            conn.execute("SET application_name = 'pricing'").await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("../migrations/postgres").run(&pool).await?,
        }
        let write_turns = (backend == Backend::Sqlite).then(|| Arc::new(Semaphore::new(1)));
        Ok(Self { pool, backend, write_turns })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool itself, for tools and tests that must reach past the store (an auditor's
    /// tamper test edits a row directly).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction.
    ///
    /// SQLite lets one writer in at a time, and a writer that finds the file locked sleeps and
    /// tries again (`busy_timeout`), so a steady writer such as a catalogue reprice would keep
    /// winning the lock over a product change that waits. Write transactions of this process
    /// therefore take turns first, first come, first served: each waits for at most the
    /// transactions queued before it.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let turn = match &self.write_turns {
            Some(turns) => Some(
                turns
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| StoreError::Unavailable("the store is closed".into()))?,
            ),
            None => None,
        };
        let inner = match self.backend {
            Backend::Sqlite => {
                let mut conn = self.pool.acquire().await?;
                sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
                TxInner::Sqlite(Some(conn))
            }
            Backend::Postgres => TxInner::Managed(self.pool.begin().await?),
        };
        Ok(Tx { inner, turn })
    }

    /// Makes every committed transaction durable against a power loss, not only a crash of the
    /// process. SQLite (WAL with `synchronous = NORMAL`) syncs its log only at checkpoints, so
    /// this runs one (`wal_checkpoint(FULL)`, which syncs); PostgreSQL commits are already
    /// flushed (`synchronous_commit` on).
    pub async fn make_durable(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(FULL)").execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Succeeds when the database answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Whether [`Self::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    /// Waits for in-flight work and closes every connection.
    pub async fn close(&self) {
        self.pool.close().await
    }
}

/// Opens the store the URL names (see [`Store::connect`]).
pub async fn connect(url: &str, settings: &StoreSettings) -> Result<Store, StoreError> {
    Store::connect(url, settings).await
}

/// Now, at the microsecond precision the stores keep, so what is returned equals what is read.
pub fn now() -> DateTime<Utc> {
    from_micros(Utc::now().timestamp_micros())
}

pub(crate) fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
