//! Reading the decision history for audit review: filtered, paged decisions (one SKU or the
//! whole merchant), one decision, the price in force at an instant, and the prior price (see
//! [`crate::pricing::prior`]). Pages are keyed by sequence number, which only grows, so paging
//! while decisions are appended never skips or repeats a record.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{CurrentPrice, StoreError, StoredDecision};
use crate::domain::{MerchantId, Sku};

/// The `outcome` filter: the three outcomes, and `clipped` (a guardrail changed the rule's
/// price, whatever the outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeFilter {
    Changed,
    Kept,
    Failed,
    Clipped,
}

/// Which decisions, in which order. Empty filters match everything.
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    pub sku: Option<Sku>,
    /// From this instant, inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Up to this instant, exclusive.
    pub to: Option<DateTime<Utc>>,
    pub trigger: Option<String>,
    pub rule_version: Option<i64>,
    pub outcome: Option<OutcomeFilter>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// A page of decisions matching `filter`, after the cursor (the last `seq` of the
    /// previous page) in the filter's order.
    async fn decisions(
        &self,
        merchant: MerchantId,
        filter: &DecisionFilter,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredDecision>, StoreError>;
    async fn decision(&self, merchant: MerchantId, seq: i64) -> Result<Option<StoredDecision>, StoreError>;
    /// The last decision that changed the SKU's price at or before `at`: its new price was in
    /// force then (none: the product did not exist yet; a deletion: no price).
    async fn price_change_at(
        &self,
        merchant: MerchantId,
        sku: &Sku,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredDecision>, StoreError>;
    /// The lowest price in force during the 30 days before `at`.
    async fn prior_price(&self, merchant: MerchantId, sku: &Sku, at: DateTime<Utc>) -> Result<Option<i64>, StoreError>;
    /// Turns the prior price in lookups on or off, and fills (or clears) it for every price
    /// in force; returns the merchant's prices as they now are, for the cache.
    async fn set_show_prior_price(&self, merchant: MerchantId, show: bool) -> Result<Vec<CurrentPrice>, StoreError>;
    /// The service's checkpoint signing key: the stored one, or `candidate`, stored now, when
    /// there is none yet (replicas starting together all end up with the first one stored).
    async fn signing_key(&self, candidate: &SigningKeyRecord) -> Result<SigningKeyRecord, StoreError>;
}

/// The service's checkpoint signing key as stored (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub algorithm: String,
    pub secret_key_hex: String,
    pub public_key_hex: String,
}

/// Whether the merchant shows prior prices, read with `$executor`.
macro_rules! show_prior_price_in {
    ($tx:expr, $merchant_id:expr) => {{
        let shown: Option<(bool,)> = sqlx::query_as("SELECT show_prior_price FROM merchants WHERE id = $1")
            .bind($merchant_id)
            .fetch_optional(&mut *$tx)
            .await?;
        shown.is_some_and(|(shown,)| shown)
    }};
}

/// The prior price of a SKU for a price taking effect at `$at`, read with `$executor` (inside
/// the transaction that appends the decision, so it sees the chain as that decision does).
macro_rules! prior_price_in {
    ($executor:expr, $merchant_id:expr, $sku:expr, $at:expr) => {{
        let at: chrono::DateTime<chrono::Utc> = $at;
        let window_start = at - $crate::pricing::prior::PRIOR_WINDOW;
        // The last change at or before the window opens, and every change after it, before `at`.
        let rows: Vec<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT created_at, new_price_minor FROM decisions
             WHERE merchant_id = $1 AND sku = $2 AND outcome = 'changed' AND created_at < $4
               AND created_at >= COALESCE((SELECT MAX(created_at) FROM decisions
                                           WHERE merchant_id = $1 AND sku = $2 AND outcome = 'changed'
                                             AND created_at <= $3), $3)
             ORDER BY created_at, seq",
        )
        .bind($merchant_id)
        .bind($sku)
        .bind(window_start.timestamp_micros())
        .bind(at.timestamp_micros())
        .fetch_all(&mut *$executor)
        .await?;
        let changes: Vec<$crate::pricing::prior::PriceChange> = rows
            .into_iter()
            .map(|(at, price_minor)| $crate::pricing::prior::PriceChange {
                at: $crate::store::from_micros(at),
                price_minor,
            })
            .collect();
        $crate::pricing::prior::lowest_in_force(&changes, at)
    }};
}

/// The columns of a stored decision, in `DecisionRow`'s order: `concat!` it into queries.
macro_rules! decision_columns {
    () => {
        "seq, sku, trigger_kind, outcome, currency, old_price_minor, new_price_minor, rule_version, rule_sha256, \
         clipped, record, created_at, prev_hash, hash"
    };
}

/// The filtered decisions query in one order. Filters are bound as `$2..$8`: an empty text,
/// -1 or FALSE matches everything; `$9` and `$10` bound the sequence numbers (the cursor).
macro_rules! filtered_decisions {
    ($order:literal) => {
        concat!(
            "SELECT ",
            $crate::store::history::decision_columns!(),
            " FROM decisions
             WHERE merchant_id = $1 AND ($2 = '' OR sku = $2) AND created_at >= $3 AND created_at < $4
               AND ($5 = '' OR trigger_kind = $5) AND ($6 = -1 OR rule_version = $6)
               AND ($7 = '' OR outcome = $7) AND ($8 = FALSE OR clipped = TRUE)
               AND seq > $9 AND seq < $10
             ORDER BY seq ",
            $order,
            " LIMIT $11"
        )
    };
}

pub(crate) use {decision_columns, filtered_decisions, prior_price_in, show_prior_price_in};

/// Implements [`HistoryStore`] for a backend's store type with the SQL both backends accept.
macro_rules! impl_history_store {
    ($store:ty) => {
        const _: () = {
            use chrono::{DateTime, Utc};
            use $crate::domain::{MerchantId, Sku};
            use $crate::store::history::{
                DecisionFilter, OutcomeFilter, SigningKeyRecord, decision_columns, filtered_decisions, prior_price_in,
            };
            use $crate::store::rows::{DecisionRow, MerchantPriceRow, convert_all};
            use $crate::store::{CurrentPrice, StoreError, StoredDecision};

            #[async_trait::async_trait]
            impl $crate::store::HistoryStore for $store {
                async fn decisions(
                    &self,
                    merchant: MerchantId,
                    filter: &DecisionFilter,
                    cursor: Option<i64>,
                    limit: u32,
                ) -> Result<Vec<StoredDecision>, StoreError> {
                    let (sql, after, before) = if filter.oldest_first {
                        (filtered_decisions!("ASC"), cursor.unwrap_or(0), i64::MAX)
                    } else {
                        (filtered_decisions!("DESC"), 0, cursor.unwrap_or(i64::MAX))
                    };
                    let outcome = match filter.outcome {
                        Some(OutcomeFilter::Changed) => "changed",
                        Some(OutcomeFilter::Kept) => "kept",
                        Some(OutcomeFilter::Failed) => "failed",
                        Some(OutcomeFilter::Clipped) | None => "",
                    };
                    let rows = sqlx::query_as::<_, DecisionRow>(sql)
                        .bind(merchant.to_string())
                        .bind(filter.sku.as_ref().map_or("", Sku::as_str))
                        .bind(filter.from.map_or(i64::MIN, |t| t.timestamp_micros()))
                        .bind(filter.to.map_or(i64::MAX, |t| t.timestamp_micros()))
                        .bind(filter.trigger.as_deref().unwrap_or(""))
                        .bind(filter.rule_version.unwrap_or(-1))
                        .bind(outcome)
                        .bind(filter.outcome == Some(OutcomeFilter::Clipped))
                        .bind(after)
                        .bind(before)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                    convert_all(rows)
                }

                async fn decision(&self, merchant: MerchantId, seq: i64) -> Result<Option<StoredDecision>, StoreError> {
                    sqlx::query_as::<_, DecisionRow>(concat!(
                        "SELECT ",
                        decision_columns!(),
                        " FROM decisions WHERE merchant_id = $1 AND seq = $2"
                    ))
                    .bind(merchant.to_string())
                    .bind(seq)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(StoredDecision::try_from)
                    .transpose()
                }

                async fn price_change_at(
                    &self,
                    merchant: MerchantId,
                    sku: &Sku,
                    at: DateTime<Utc>,
                ) -> Result<Option<StoredDecision>, StoreError> {
                    sqlx::query_as::<_, DecisionRow>(concat!(
                        "SELECT ",
                        decision_columns!(),
                        " FROM decisions
                         WHERE merchant_id = $1 AND sku = $2 AND outcome = 'changed' AND created_at <= $3
                         ORDER BY created_at DESC, seq DESC LIMIT 1"
                    ))
                    .bind(merchant.to_string())
                    .bind(sku.as_str())
                    .bind(at.timestamp_micros())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(StoredDecision::try_from)
                    .transpose()
                }

                async fn prior_price(
                    &self,
                    merchant: MerchantId,
                    sku: &Sku,
                    at: DateTime<Utc>,
                ) -> Result<Option<i64>, StoreError> {
                    let mut conn = self.pool.acquire().await?;
                    Ok(prior_price_in!(conn, merchant.to_string(), sku.as_str(), at))
                }

                async fn set_show_prior_price(
                    &self,
                    merchant: MerchantId,
                    show: bool,
                ) -> Result<Vec<CurrentPrice>, StoreError> {
                    const PAGE: i64 = 1_000;
                    let merchant_id = merchant.to_string();
                    // A page per transaction: a large catalogue never holds the write lock for
                    // long. Prices that move meanwhile get their prior price from the repricer,
                    // which reads the flag set above.
                    let mut prices = Vec::new();
                    let mut after = String::new();
                    loop {
                        let mut tx = self.pool.begin().await?;
                        // Writing first: SQLite takes its write lock at once instead of failing
                        // to upgrade a read snapshot later.
                        sqlx::query("UPDATE merchants SET show_prior_price = $2 WHERE id = $1")
                            .bind(&merchant_id)
                            .bind(show)
                            .execute(&mut *tx)
                            .await?;
                        if !show {
                            sqlx::query(
                                "UPDATE current_prices SET prior_price_minor = NULL
                                 WHERE merchant_id = $1 AND sku > $2 AND sku IN (
                                     SELECT sku FROM current_prices WHERE merchant_id = $1 AND sku > $2
                                     ORDER BY sku LIMIT $3)",
                            )
                            .bind(&merchant_id)
                            .bind(&after)
                            .bind(PAGE)
                            .execute(&mut *tx)
                            .await?;
                        }
                        let page: Vec<CurrentPrice> = convert_all::<MerchantPriceRow, (MerchantId, CurrentPrice)>(
                            sqlx::query_as::<_, MerchantPriceRow>(
                                "SELECT merchant_id, sku, price_minor, currency, version, effective_at,
                                        prior_price_minor
                                 FROM current_prices WHERE merchant_id = $1 AND sku > $2 ORDER BY sku LIMIT $3",
                            )
                            .bind(&merchant_id)
                            .bind(&after)
                            .bind(PAGE)
                            .fetch_all(&mut *tx)
                            .await?,
                        )?
                        .into_iter()
                        .map(|(_, price)| price)
                        .collect();
                        let full = page.len() == PAGE as usize;
                        for mut price in page {
                            if show {
                                price.prior_minor =
                                    prior_price_in!(tx, &merchant_id, price.sku.as_str(), price.effective_at);
                                sqlx::query(
                                    "UPDATE current_prices SET prior_price_minor = $3 WHERE merchant_id = $1 AND sku = $2",
                                )
                                .bind(&merchant_id)
                                .bind(price.sku.as_str())
                                .bind(price.prior_minor)
                                .execute(&mut *tx)
                                .await?;
                            }
                            after = price.sku.to_string();
                            prices.push(price);
                        }
                        tx.commit().await?;
                        if !full {
                            break;
                        }
                    }
                    Ok(prices)
                }

                async fn signing_key(&self, candidate: &SigningKeyRecord) -> Result<SigningKeyRecord, StoreError> {
                    sqlx::query(
                        "INSERT INTO signing_keys (id, algorithm, secret_key, public_key, created_at)
                         VALUES ('checkpoints', $1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&candidate.algorithm)
                    .bind(&candidate.secret_key_hex)
                    .bind(&candidate.public_key_hex)
                    .bind($crate::store::now().timestamp_micros())
                    .execute(&self.pool)
                    .await?;
                    let (algorithm, secret_key_hex, public_key_hex): (String, String, String) = sqlx::query_as(
                        "SELECT algorithm, secret_key, public_key FROM signing_keys WHERE id = 'checkpoints'",
                    )
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(SigningKeyRecord { algorithm, secret_key_hex, public_key_hex })
                }
            }
        };
    };
}

pub(crate) use impl_history_store;
