//! The decision history: append-only, hash-chained per merchant. Appending a decision and
//! moving the price in force happen in one transaction, so the history and the price never
//! disagree. Each record holds the hash of the one before; editing, deleting or reordering a
//! record breaks the chain at that record.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{CurrentPrice, StoreError};
use crate::domain::{MerchantId, Sku};

/// The hash before a merchant's first decision.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A decision to append: the searchable columns, and the full record as canonical JSON.
pub struct NewDecision<'a> {
    pub sku: &'a Sku,
    pub trigger: &'a str,
    /// `changed`, `kept` or `failed`.
    pub outcome: &'a str,
    pub currency: &'a str,
    pub old_price_minor: i64,
    /// The price in force after the decision (the old one unless it changed).
    pub new_price_minor: i64,
    pub rule_version: Option<i64>,
    pub rule_sha256: Option<&'a str>,
    /// Builds the record's JSON once the sequence number and time are known.
    pub record: Box<dyn Fn(i64, DateTime<Utc>) -> String + Send + Sync + 'a>,
}

/// A stored decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredDecision {
    pub seq: i64,
    pub sku: String,
    pub trigger: String,
    pub outcome: String,
    pub currency: String,
    pub old_price_minor: Option<i64>,
    pub new_price_minor: Option<i64>,
    pub rule_version: Option<i64>,
    pub rule_sha256: Option<String>,
    /// The canonical JSON the hash covers.
    pub record: String,
    pub created_at: DateTime<Utc>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of a record: SHA-256 over the previous hash, a newline, and the record's JSON.
pub fn chain_hash(prev_hash: &str, record: &str) -> String {
    let mut bytes = Vec::with_capacity(prev_hash.len() + 1 + record.len());
    bytes.extend_from_slice(prev_hash.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(record.as_bytes());
    hex::encode(crate::auth::sha256(&bytes))
}

#[async_trait]
pub trait DecisionStore: Send + Sync {
    /// Appends decisions, in order, to the merchant's chain and moves each price that changed,
    /// all in one transaction; returns each decision with its new price (if it moved).
    async fn append_decisions(
        &self,
        merchant: MerchantId,
        decisions: &[NewDecision<'_>],
    ) -> Result<Vec<(StoredDecision, Option<CurrentPrice>)>, StoreError>;
    /// Decisions newest first, before `before_seq`, optionally for one SKU.
    async fn decisions(
        &self,
        merchant: MerchantId,
        sku: Option<&Sku>,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredDecision>, StoreError>;
    /// The chain in order, after `after_seq`.
    async fn chain(&self, merchant: MerchantId, after_seq: i64, limit: u32) -> Result<Vec<StoredDecision>, StoreError>;
    /// The chain's head: its last sequence number and hash (`None` before any decision).
    async fn chain_head(&self, merchant: MerchantId) -> Result<Option<(i64, String)>, StoreError>;
}

/// Implements [`DecisionStore`] for a backend's store type with the SQL both backends accept.
macro_rules! impl_decision_store {
    ($store:ty) => {
        const _: () = {
            use $crate::domain::{MerchantId, Sku};
            use $crate::store::decisions::{GENESIS_HASH, chain_hash};
            use $crate::store::rows::{DecisionRow, PriceRow, convert_all};
            use $crate::store::{CurrentPrice, NewDecision, StoreError, StoredDecision, now};

            #[async_trait::async_trait]
            impl $crate::store::DecisionStore for $store {
                async fn append_decisions(
                    &self,
                    merchant: MerchantId,
                    decisions: &[NewDecision<'_>],
                ) -> Result<Vec<(StoredDecision, Option<CurrentPrice>)>, StoreError> {
                    if decisions.is_empty() {
                        return Ok(Vec::new());
                    }
                    let merchant_id = merchant.to_string();
                    let at = now();
                    let mut tx = self.pool.begin().await?;
                    // Writing the chain head first takes the merchant's lock (and SQLite's
                    // write lock) before anything is read.
                    sqlx::query(
                        "INSERT INTO chain_heads (merchant_id, seq, head_hash) VALUES ($1, 0, $2)
                         ON CONFLICT (merchant_id) DO NOTHING",
                    )
                    .bind(&merchant_id)
                    .bind(GENESIS_HASH)
                    .execute(&mut *tx)
                    .await?;
                    let (last_seq, mut prev_hash): (i64, String) = sqlx::query_as(
                        "UPDATE chain_heads SET seq = seq + $2 WHERE merchant_id = $1 RETURNING seq, head_hash",
                    )
                    .bind(&merchant_id)
                    .bind(decisions.len() as i64)
                    .fetch_one(&mut *tx)
                    .await?;
                    let mut seq = last_seq - decisions.len() as i64;
                    let mut appended = Vec::with_capacity(decisions.len());
                    for decision in decisions {
                        seq += 1;
                        let record = (decision.record)(seq, at);
                        let hash = chain_hash(&prev_hash, &record);
                        let stored = sqlx::query_as::<_, DecisionRow>(
                            "INSERT INTO decisions (merchant_id, seq, sku, trigger_kind, outcome, currency, old_price_minor,
                                                    new_price_minor, rule_version, rule_sha256, record, created_at,
                                                    prev_hash, hash)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                             RETURNING seq, sku, trigger_kind, outcome, currency, old_price_minor, new_price_minor,
                                       rule_version, rule_sha256, record, created_at, prev_hash, hash",
                        )
                        .bind(&merchant_id)
                        .bind(seq)
                        .bind(decision.sku.as_str())
                        .bind(decision.trigger)
                        .bind(decision.outcome)
                        .bind(decision.currency)
                        .bind(decision.old_price_minor)
                        .bind(decision.new_price_minor)
                        .bind(decision.rule_version)
                        .bind(decision.rule_sha256)
                        .bind(&record)
                        .bind(at.timestamp_micros())
                        .bind(&prev_hash)
                        .bind(&hash)
                        .fetch_one(&mut *tx)
                        .await?;
                        prev_hash = hash;
                        let moved = if decision.new_price_minor != decision.old_price_minor {
                            sqlx::query_as::<_, PriceRow>(
                                "UPDATE current_prices SET price_minor = $3, version = version + 1, effective_at = $4,
                                                           source = 'rule'
                                 WHERE merchant_id = $1 AND sku = $2
                                 RETURNING sku, price_minor, currency, version, effective_at",
                            )
                            .bind(&merchant_id)
                            .bind(decision.sku.as_str())
                            .bind(decision.new_price_minor)
                            .bind(at.timestamp_micros())
                            .fetch_optional(&mut *tx)
                            .await?
                            .map(CurrentPrice::try_from)
                            .transpose()?
                        } else {
                            None
                        };
                        appended.push((StoredDecision::try_from(stored)?, moved));
                    }
                    sqlx::query("UPDATE chain_heads SET head_hash = $2 WHERE merchant_id = $1")
                        .bind(&merchant_id)
                        .bind(&prev_hash)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(appended)
                }

                async fn decisions(
                    &self,
                    merchant: MerchantId,
                    sku: Option<&Sku>,
                    before_seq: Option<i64>,
                    limit: u32,
                ) -> Result<Vec<StoredDecision>, StoreError> {
                    let rows = sqlx::query_as::<_, DecisionRow>(
                        "SELECT seq, sku, trigger_kind, outcome, currency, old_price_minor, new_price_minor, rule_version,
                                rule_sha256, record, created_at, prev_hash, hash
                         FROM decisions
                         WHERE merchant_id = $1 AND ($2 = '' OR sku = $2) AND seq < $3
                         ORDER BY seq DESC LIMIT $4",
                    )
                    .bind(merchant.to_string())
                    .bind(sku.map_or("", Sku::as_str))
                    .bind(before_seq.unwrap_or(i64::MAX))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    convert_all(rows)
                }

                async fn chain_head(&self, merchant: MerchantId) -> Result<Option<(i64, String)>, StoreError> {
                    Ok(sqlx::query_as("SELECT seq, head_hash FROM chain_heads WHERE merchant_id = $1")
                        .bind(merchant.to_string())
                        .fetch_optional(&self.pool)
                        .await?)
                }

                async fn chain(
                    &self,
                    merchant: MerchantId,
                    after_seq: i64,
                    limit: u32,
                ) -> Result<Vec<StoredDecision>, StoreError> {
                    let rows = sqlx::query_as::<_, DecisionRow>(
                        "SELECT seq, sku, trigger_kind, outcome, currency, old_price_minor, new_price_minor, rule_version,
                                rule_sha256, record, created_at, prev_hash, hash
                         FROM decisions WHERE merchant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    )
                    .bind(merchant.to_string())
                    .bind(after_seq)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    convert_all(rows)
                }
            }
        };
    };
}

pub(crate) use impl_decision_store;
