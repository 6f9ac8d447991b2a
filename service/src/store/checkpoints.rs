//! Signed checkpoints the service made, kept as their signed JSON. The store does not judge
//! them: the audit side trusts a row only when its signature verifies with a key of its own.

use super::{Store, StoreError};
use crate::domain::MerchantId;

impl Store {
    /// Keeps a signed checkpoint (a second one at the same length is ignored: it states the
    /// same head).
    pub async fn save_checkpoint(&self, merchant: MerchantId, seq: i64, signed_json: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (merchant_id, seq, signed) VALUES ($1, $2, $3)
             ON CONFLICT (merchant_id, seq) DO NOTHING",
        )
        .bind(merchant.to_string())
        .bind(seq)
        .bind(signed_json)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` kept checkpoints at or before `seq`, newest first, as signed JSON.
    pub async fn checkpoints_at_or_before(
        &self,
        merchant: MerchantId,
        seq: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT signed FROM audit_checkpoints WHERE merchant_id = $1 AND seq <= $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(merchant.to_string())
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(signed,)| signed).collect())
    }
}
