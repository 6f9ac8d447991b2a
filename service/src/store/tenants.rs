//! Tenants and their keys: merchants, and the API keys of merchants and of the operator.

use chrono::{DateTime, Utc};

use super::rows::{KeyRow, MerchantRow, convert_all};
use super::{Store, StoreError, now};
use crate::domain::{KeyId, MerchantId, Roles};

#[derive(Debug, Clone, PartialEq)]
pub struct Merchant {
    pub id: MerchantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Whether checkout lookups carry the prior price (the lowest in the 30 days before the
    /// current price took effect), as EU price-indication rules ask of price reductions.
    pub show_prior_price: bool,
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

impl Store {
    pub async fn create_merchant(&self, name: &str) -> Result<Merchant, StoreError> {
        let merchant =
            Merchant { id: MerchantId::generate(), name: name.to_owned(), created_at: now(), show_prior_price: false };
        sqlx::query("INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(merchant.id.to_string())
            .bind(&merchant.name)
            .bind(merchant.created_at.timestamp_micros())
            .execute(&self.pool)
            .await?;
        Ok(merchant)
    }

    pub async fn merchant(&self, id: MerchantId) -> Result<Option<Merchant>, StoreError> {
        sqlx::query_as::<_, MerchantRow>(
            "SELECT id, name, created_at, CASE WHEN show_prior_price THEN 1 ELSE 0 END AS show_prior_price
                 FROM merchants WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(Merchant::try_from)
        .transpose()
    }

    pub async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, merchant_id, roles, secret_sha256, label, created_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(key.id.to_string())
        .bind(key.merchant.map(|m| m.to_string()))
        .bind(key.roles.to_text())
        .bind(hex::encode(key.secret_sha256))
        .bind(key.label.as_deref())
        .bind(key.created_at.timestamp_micros())
        .bind(key.revoked_at.map(|t| t.timestamp_micros()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn key(&self, id: KeyId) -> Result<Option<StoredKey>, StoreError> {
        sqlx::query_as::<_, KeyRow>(
            "SELECT id, merchant_id, roles, secret_sha256, label, created_at, revoked_at
                 FROM api_keys WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(StoredKey::try_from)
        .transpose()
    }

    pub async fn keys(&self, merchant: Option<MerchantId>) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query_as::<_, KeyRow>(
            "SELECT id, merchant_id, roles, secret_sha256, label, created_at, revoked_at
                 FROM api_keys WHERE merchant_id IS NOT DISTINCT FROM $1 ORDER BY id DESC",
        )
        .bind(merchant.map(|m| m.to_string()))
        .fetch_all(&self.pool)
        .await?;
        convert_all(rows)
    }

    pub async fn revoke_key(&self, merchant: Option<MerchantId>, id: KeyId) -> Result<Option<StoredKey>, StoreError> {
        let row = sqlx::query_as::<_, KeyRow>(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3)
                 WHERE id = $1 AND merchant_id IS NOT DISTINCT FROM $2
                 RETURNING id, merchant_id, roles, secret_sha256, label, created_at, revoked_at",
        )
        .bind(id.to_string())
        .bind(merchant.map(|m| m.to_string()))
        .bind(now().timestamp_micros())
        .fetch_optional(&self.pool)
        .await?;
        row.map(StoredKey::try_from).transpose()
    }

    pub async fn count_active_admin_keys(&self) -> Result<i64, StoreError> {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM api_keys WHERE merchant_id IS NULL AND revoked_at IS NULL")
                .fetch_one(&self.pool)
                .await?;
        Ok(count)
    }
}
