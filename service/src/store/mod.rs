//! Persistence behind one trait, [`Store`], with one implementation per backend: an embedded
//! SQLite file (the default) and PostgreSQL. Both share their SQL text (see `sql.rs`); the
//! migrations under `migrations/<backend>/` run when a store is opened.

mod postgres;
mod rows;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::Roles;
use crate::config::StoreSettings;
use crate::domain::{Currency, KeyId, MerchantId, Money, Product, ProductDraft, Sku};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

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

#[derive(Debug, Clone, PartialEq)]
pub struct Merchant {
    pub id: MerchantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// An API key as stored: its public id, what it may do, and the hash of its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    pub id: KeyId,
    /// `None` for operator (admin) keys.
    pub merchant: Option<MerchantId>,
    pub roles: Roles,
    pub secret_sha256: [u8; 32],
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    /// The stored product already had exactly these values; nothing was written.
    Unchanged,
}

/// The price in force for a product.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentPrice {
    pub sku: Sku,
    pub price: Money,
    /// Incremented on every change of the price; starts at 1.
    pub version: i64,
    pub effective_at: DateTime<Utc>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Succeeds when the database answers a query.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Waits for in-flight work and closes every connection.
    async fn close(&self);

    async fn create_merchant(&self, name: &str) -> Result<Merchant, StoreError>;
    async fn merchant(&self, id: MerchantId) -> Result<Option<Merchant>, StoreError>;

    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    async fn key(&self, id: KeyId) -> Result<Option<StoredKey>, StoreError>;
    /// Keys of one merchant, `None` for the operator's own keys; newest first.
    async fn keys(&self, merchant: Option<MerchantId>) -> Result<Vec<StoredKey>, StoreError>;
    /// Marks a key revoked (idempotently) and returns it; `None` when the merchant has no such key.
    async fn revoke_key(&self, merchant: Option<MerchantId>, id: KeyId) -> Result<Option<StoredKey>, StoreError>;
    async fn count_active_admin_keys(&self) -> Result<i64, StoreError>;

    /// Creates or replaces a product, and keeps its base price in force until a rule sets one.
    async fn upsert_product(
        &self,
        merchant: MerchantId,
        draft: &ProductDraft,
    ) -> Result<(Product, Upserted), StoreError>;
    async fn product(&self, merchant: MerchantId, sku: &Sku) -> Result<Option<Product>, StoreError>;
    /// Up to `limit` products with a SKU after `after`, in SKU byte order.
    async fn products(&self, merchant: MerchantId, after: Option<&Sku>, limit: u32)
    -> Result<Vec<Product>, StoreError>;
    /// Deletes a product and its current price; its decision history stays. False when absent.
    async fn delete_product(&self, merchant: MerchantId, sku: &Sku) -> Result<bool, StoreError>;

    async fn current_price(&self, merchant: MerchantId, sku: &Sku) -> Result<Option<CurrentPrice>, StoreError>;
}

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

fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
