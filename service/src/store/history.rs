//! Reading the decision history for audit review: filtered, paged decisions (one SKU or the
//! whole merchant), one decision, the price in force at an instant, and the prior price (see
//! [`crate::domain::prior`]). Pages are keyed by sequence number, which only grows, so paging
//! while decisions are appended never skips or repeats a record.

use chrono::{DateTime, Utc};

use super::chain::{DECISION_COLUMNS, MERCHANT_NUMBER};
use super::{Store, StoreError, StoredDecision};
use crate::domain::prior::PriceChange;
use crate::domain::{MerchantId, Outcome, Sku, Trigger};

/// The `outcome` filter: the outcomes, and `clipped` (a guardrail changed the rule's price,
/// whatever the outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeFilter {
    Changed,
    Kept,
    Failed,
    Held,
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
    pub trigger: Option<Trigger>,
    pub rule_version: Option<i64>,
    pub outcome: Option<OutcomeFilter>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

/// The checkpoint signing key an earlier release stored in the database (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub algorithm: String,
    pub secret_key_hex: String,
    pub public_key_hex: String,
}

impl Store {
    /// A page of decisions matching `filter`, after the cursor (the last `seq` of the
    /// previous page) in the filter's order. Filters are bound as `$2..$8`: an empty text,
    /// -1 or FALSE matches everything; `$9` and `$10` bound the sequence numbers.
    pub async fn decisions(
        &self,
        merchant: MerchantId,
        filter: &DecisionFilter,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        let (order, after, before) = if filter.oldest_first {
            ("ASC", cursor.unwrap_or(0), i64::MAX)
        } else {
            ("DESC", 0, cursor.unwrap_or(i64::MAX))
        };
        let outcome = match filter.outcome {
            Some(OutcomeFilter::Changed) => Outcome::Changed.as_str(),
            Some(OutcomeFilter::Kept) => Outcome::Kept.as_str(),
            Some(OutcomeFilter::Failed) => Outcome::Failed.as_str(),
            Some(OutcomeFilter::Held) => Outcome::Held.as_str(),
            Some(OutcomeFilter::Clipped) | None => "",
        };
        // `sku = $2` stands alone when a SKU is asked for, and the order is then by time, so
        // that the planner reads the index that leads with (merchant, SKU, time): SQLite never
        // uses an index for a term inside an OR with a parameter test, and scanned the
        // merchant's whole history for one SKU's page. A merchant's records are in time order
        // as in sequence order (each carries its chain head's time, never before the last),
        // so both orders give the same pages.
        let (sku, order_by) = match filter.sku {
            Some(_) => ("sku = $2", format!("created_at {order}, seq {order}")),
            None => ("$2 = ''", format!("seq {order}")),
        };
        let sql = format!(
            "SELECT {columns} FROM decisions
             WHERE merchant_number = {MERCHANT_NUMBER} AND {sku} AND created_at >= $3 AND created_at < $4
               AND ($5 = '' OR trigger_kind = $5) AND ($6 = -1 OR rule_version = $6)
               AND ($7 = '' OR outcome = $7) AND ($8 = 0 OR clipped = TRUE)
               AND seq > $9 AND seq < $10
             ORDER BY {order_by} LIMIT $11",
            columns = *DECISION_COLUMNS
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(filter.sku.as_ref().map_or("", Sku::as_str))
            .bind(filter.from.map_or(i64::MIN, |t| t.timestamp_micros()))
            .bind(filter.to.map_or(i64::MAX, |t| t.timestamp_micros()))
            .bind(filter.trigger.map_or("", Trigger::as_str))
            .bind(filter.rule_version.unwrap_or(-1))
            .bind(outcome)
            .bind(i64::from(filter.outcome == Some(OutcomeFilter::Clipped)))
            .bind(after)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn decision(&self, merchant: MerchantId, seq: i64) -> Result<Option<StoredDecision>, StoreError> {
        let sql = format!(
            "SELECT {} FROM decisions WHERE merchant_number = {MERCHANT_NUMBER} AND seq = $2",
            *DECISION_COLUMNS
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The last decision that changed the SKU's price at or before `at`: its new price was in
    /// force then (none: the product did not exist yet; a deletion: no price).
    pub async fn price_change_at(
        &self,
        merchant: MerchantId,
        sku: &Sku,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredDecision>, StoreError> {
        let sql = format!(
            "SELECT {columns} FROM decisions
             WHERE merchant_number = {MERCHANT_NUMBER} AND sku = $2 AND outcome = 'changed' AND created_at <= $3
             ORDER BY created_at DESC, seq DESC LIMIT 1",
            columns = *DECISION_COLUMNS
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(sku.as_str())
            .bind(at.timestamp_micros())
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The checkpoint signing key that a release before the key folder kept here, while its
    /// secret is still stored (see `audit::keys`).
    pub async fn legacy_signing_key(&self) -> Result<Option<SigningKeyRecord>, StoreError> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT algorithm, secret_key, public_key FROM signing_keys WHERE id = 'checkpoints' AND secret_key <> ''",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(algorithm, secret_key_hex, public_key_hex)| SigningKeyRecord {
            algorithm,
            secret_key_hex,
            public_key_hex,
        }))
    }

    /// Forgets the legacy key's secret once it lives in the key folder; its public half stays.
    pub async fn erase_legacy_signing_secret(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE signing_keys SET secret_key = '' WHERE id = 'checkpoints'").execute(&self.pool).await?;
        Ok(())
    }
}

/// The changes of a SKU's price in force that decide its prior price at `at`: the last change
/// at or before `window_start`, and every change after it, before `at`, in history order.
/// Read with the caller's executor (inside the transaction that moves a price, so it sees the
/// chain as that move does).
pub async fn price_changes<'c>(
    executor: impl sqlx::AnyExecutor<'c>,
    merchant: MerchantId,
    sku: &Sku,
    window_start: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<Vec<PriceChange>, StoreError> {
    let sql = format!(
        "SELECT created_at, new_price_minor FROM decisions
         WHERE merchant_number = {MERCHANT_NUMBER} AND sku = $2 AND outcome = 'changed' AND created_at < $4
           AND created_at >= COALESCE((SELECT MAX(created_at) FROM decisions
                                       WHERE merchant_number = {MERCHANT_NUMBER} AND sku = $2
                                         AND outcome = 'changed' AND created_at <= $3), $3)
         ORDER BY created_at, seq"
    );
    let rows: Vec<(i64, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(merchant.to_string())
        .bind(sku.as_str())
        .bind(window_start.timestamp_micros())
        .bind(at.timestamp_micros())
        .fetch_all(executor)
        .await?;
    Ok(rows.into_iter().map(|(at, price_minor)| PriceChange { at: super::from_micros(at), price_minor }).collect())
}
