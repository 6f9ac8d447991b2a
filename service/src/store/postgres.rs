//! PostgreSQL, for production and for several replicas sharing one truth.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{StoreError, impl_store};
use crate::config::StoreSettings;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &str, settings: &StoreSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("pricing");
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl_store!(PostgresStore, "postgres");
