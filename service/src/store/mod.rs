//! Persistence behind one trait, [`Store`], with one implementation per backend: an embedded
//! SQLite file (the default) and PostgreSQL. Both share their SQL text (`$n` parameters,
//! `ON CONFLICT ... RETURNING`, `IS NOT DISTINCT FROM` work on both); the
//! migrations under `migrations/<backend>/` run when a store is opened. The trait is the sum
//! of one trait per concern (`tenants`, `catalog`, `rules`, `decisions`, `history`, `signals`), each in its own file beside the
//! SQL that implements it for both backends.

mod catalog;
pub mod decisions;
pub mod history;
mod postgres;
mod rows;
mod rules;
pub mod signals;
mod sqlite;
mod tenants;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::StoreSettings;
use crate::domain::{Currency, Sku};

pub use catalog::{CatalogStore, CurrentPrice, Upserted};
pub use decisions::{DecisionStore, NewDecision, StoredDecision};
pub use history::{DecisionFilter, HistoryStore, OutcomeFilter, SigningKeyRecord};
pub use postgres::PostgresStore;
pub use rules::{Activation, NewRuleVersion, RuleCode, RuleStore, RuleVersion};
pub use signals::{DemandEvent, DemandKind, DemandSummary, Observation, SignalStore, Signals};
pub use sqlite::SqliteStore;
pub use tenants::{Merchant, StoredKey, TenantStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("product {sku} is priced in {existing}; its currency cannot change")]
    CurrencyMismatch { sku: Sku, existing: Currency },
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
            other => StoreError::Database(other),
        }
    }
}

/// Everything the service keeps, behind one trait with one implementation per backend.
#[async_trait]
pub trait Store: TenantStore + CatalogStore + RuleStore + DecisionStore + HistoryStore + SignalStore + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Succeeds when the database answers a query.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Waits for in-flight work and closes every connection.
    async fn close(&self);
}

/// Implements [`Store`] and its parts for a backend's store type (which has a `pool`).
macro_rules! impl_store {
    ($store:ty, $backend:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await
            }
        }
        $crate::store::tenants::impl_tenant_store!($store);
        $crate::store::catalog::impl_catalog_store!($store);
        $crate::store::rules::impl_rule_store!($store);
        $crate::store::decisions::impl_decision_store!($store);
        $crate::store::history::impl_history_store!($store);
        $crate::store::signals::impl_signal_store!($store);
    };
}

pub(crate) use impl_store;

/// Opens (creating if needed) and migrates the database the URL names.
pub async fn connect(url: &str, settings: &StoreSettings) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, settings).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::connect(url, settings).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.split(':').next().unwrap_or_default().to_owned()))
    }
}

/// Now, at the microsecond precision the stores keep, so what is returned equals what is read.
pub fn now() -> DateTime<Utc> {
    from_micros(Utc::now().timestamp_micros())
}

pub(crate) fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
