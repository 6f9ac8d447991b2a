//! Price events out, as stored (`0010_outbox.sql`): the decision chain is the outbox. Every
//! change of a price in force (a rule's, a product put or deleted) is a decision with outcome
//! `changed`, appended in the transaction that made the change; a channel's cursor per merchant
//! says how far it has published. So a crash after a commit loses no event (the decision is
//! there, past the cursor), and a restart cannot reorder them (they are read in `seq` order).
//! The held decision that trips a merchant's circuit breaker is published too, as the event that
//! tells the merchant automation paused (its record's `hold.tripped`, matched in the record's
//! text only among held decisions, which are few).
//! A publisher leases a (merchant, channel) cursor before it publishes, so one replica publishes
//! a merchant's events at a time; an event published again after a crash carries the same
//! decision `seq`, which consumers use to drop it.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::chain::{MERCHANT_NUMBER, RULE_SHA256_COLUMN};
use super::{Store, StoreError, from_micros, now};
use crate::domain::{MerchantId, Sku, Trigger};

/// One change of a price in force, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceChange {
    pub merchant: MerchantId,
    /// The decision's sequence number in the merchant's chain.
    pub seq: i64,
    pub sku: Sku,
    pub trigger: Trigger,
    pub currency: String,
    /// `None`: the product was created.
    pub old_price_minor: Option<i64>,
    /// `None`: the product was deleted.
    pub new_price_minor: Option<i64>,
    pub rule_version: Option<i64>,
    pub at: DateTime<Utc>,
    /// For the held decision that tripped the merchant's circuit breaker (published so the
    /// merchant hears of it at once): the JSON of the limit it crossed. `None` for a change.
    pub breaker_trip: Option<serde_json::Value>,
}

/// A merchant whose chain has records past a channel's cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    pub merchant: MerchantId,
    pub published_through: i64,
    pub head: i64,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl Store {
    /// Opens a channel the first time it is used: its cursors start at each merchant's current
    /// head (events from now on; a merchant that has no records yet starts at its first).
    /// Opening it again does nothing.
    pub async fn open_channel(&self, channel: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let opened =
            sqlx::query("INSERT INTO outbox_channels (channel, opened_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(channel)
                .bind(now().timestamp_micros())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if opened == 1 {
            sqlx::query(
                "INSERT INTO outbox_cursors (merchant_id, channel, published_through)
                 SELECT merchant_id, $1, seq FROM chain_heads WHERE true
                 ON CONFLICT (merchant_id, channel) DO NOTHING",
            )
            .bind(channel)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Starts a merchant's cursor of `channel` at its current head (a webhook made now
    /// delivers what changes from now on).
    pub async fn start_cursor_at_head(&self, merchant: MerchantId, channel: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbox_cursors (merchant_id, channel, published_through)
             VALUES ($1, $2, COALESCE((SELECT seq FROM chain_heads WHERE merchant_id = $1), 0))
             ON CONFLICT (merchant_id, channel) DO NOTHING",
        )
        .bind(merchant.to_string())
        .bind(channel)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Merchants whose chains have records that `channel` has not published (a merchant without
    /// a cursor has published nothing).
    pub async fn behind(&self, channel: &str) -> Result<Vec<Behind>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.merchant_id, h.seq, COALESCE(c.published_through, 0) AS published_through
             FROM chain_heads h
             LEFT JOIN outbox_cursors c ON c.merchant_id = h.merchant_id AND c.channel = $1
             WHERE h.seq > COALESCE(c.published_through, 0)
             ORDER BY h.merchant_id",
        )
        .bind(channel)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let merchant: String = row.try_get("merchant_id")?;
                Ok(Behind {
                    merchant: merchant.parse().map_err(|e| corrupt("outbox merchant", e))?,
                    published_through: row.try_get("published_through")?,
                    head: row.try_get("seq")?,
                })
            })
            .collect()
    }

    /// The merchant's cursor of `channel` beside its chain head; `None` without a cursor.
    pub async fn cursor(&self, merchant: MerchantId, channel: &str) -> Result<Option<Behind>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT c.published_through, COALESCE(h.seq, 0)
             FROM outbox_cursors c LEFT JOIN chain_heads h ON h.merchant_id = c.merchant_id
             WHERE c.merchant_id = $1 AND c.channel = $2",
        )
        .bind(merchant.to_string())
        .bind(channel)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(published_through, head)| Behind { merchant, published_through, head }))
    }

    /// How many chain records `channel` has yet to look at, over all merchants (its depth).
    pub async fn outbox_depth(&self, channel: &str) -> Result<i64, StoreError> {
        let depth: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(h.seq - COALESCE(c.published_through, 0)) AS BIGINT)
             FROM chain_heads h
             LEFT JOIN outbox_cursors c ON c.merchant_id = h.merchant_id AND c.channel = $1
             WHERE h.seq > COALESCE(c.published_through, 0)",
        )
        .bind(channel)
        .fetch_one(self.pool())
        .await?;
        Ok(depth.unwrap_or(0))
    }

    /// Leases the merchant's cursor of `channel` to `owner` until `until` (creating it at 0
    /// when missing); false when another owner holds an unexpired lease.
    pub async fn lease_cursor(
        &self,
        merchant: MerchantId,
        channel: &str,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let merchant_id = merchant.to_string();
        sqlx::query(
            "INSERT INTO outbox_cursors (merchant_id, channel, published_through) VALUES ($1, $2, 0)
             ON CONFLICT (merchant_id, channel) DO NOTHING",
        )
        .bind(&merchant_id)
        .bind(channel)
        .execute(self.pool())
        .await?;
        let leased = sqlx::query(
            "UPDATE outbox_cursors SET lease_owner = $3, lease_until = $4
             WHERE merchant_id = $1 AND channel = $2 AND (lease_owner IS NULL OR lease_owner = $3 OR lease_until < $5)",
        )
        .bind(&merchant_id)
        .bind(channel)
        .bind(owner)
        .bind(until.timestamp_micros())
        .bind(now().timestamp_micros())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(leased == 1)
    }

    /// Moves the leased cursor to `through` (never back); false when the lease was lost, and
    /// then nothing moved.
    pub async fn advance_cursor(
        &self,
        merchant: MerchantId,
        channel: &str,
        owner: &str,
        through: i64,
    ) -> Result<bool, StoreError> {
        let moved = sqlx::query(
            "UPDATE outbox_cursors SET published_through = $4
             WHERE merchant_id = $1 AND channel = $2 AND lease_owner = $3 AND published_through <= $4",
        )
        .bind(merchant.to_string())
        .bind(channel)
        .bind(owner)
        .bind(through)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(moved == 1)
    }

    /// The price changes in the merchant's chain after `after` and up to `through`, from at
    /// most `limit` rows of changed or held decisions, in order; and the last sequence number
    /// they cover (`through` when fewer than `limit` rows were found: the records between are
    /// not changes of a price in force).
    pub async fn price_changes(
        &self,
        merchant: MerchantId,
        after: i64,
        through: i64,
        limit: usize,
    ) -> Result<(Vec<PriceChange>, i64), StoreError> {
        let sql = format!(
            "SELECT seq, sku, trigger_kind, outcome, currency, old_price_minor, new_price_minor, rule_version,
                    created_at, $1 AS merchant_id, {RULE_SHA256_COLUMN}, record, packed
             FROM decisions
             WHERE merchant_number = {MERCHANT_NUMBER} AND seq > $2 AND seq <= $3 AND outcome IN ('changed', 'held')
             ORDER BY seq LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(after)
            .bind(through)
            .bind(limit as i64)
            .fetch_all(self.pool())
            .await?;
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
            let sku: String = row.try_get("sku")?;
            let trigger: String = row.try_get("trigger_kind")?;
            let outcome: String = row.try_get("outcome")?;
            // A held decision is an event only when it tripped the breaker (its record says).
            let breaker_trip = if outcome == "held" {
                let record = super::rows::record_of(row)?;
                let record: serde_json::Value =
                    serde_json::from_str(&record).map_err(|e| corrupt("decision record", e))?;
                match Some(record["hold"]["tripped"].clone()).filter(|trip| trip.is_object()) {
                    Some(trip) => Some(trip),
                    None => continue,
                }
            } else {
                None
            };
            changes.push(PriceChange {
                merchant,
                seq: row.try_get("seq")?,
                sku: Sku::parse(&sku).map_err(|e| corrupt("decision sku", e))?,
                trigger: trigger.parse().map_err(|e| corrupt("decision trigger", e))?,
                currency: row.try_get("currency")?,
                old_price_minor: row.try_get("old_price_minor")?,
                new_price_minor: row.try_get("new_price_minor")?,
                rule_version: row.try_get("rule_version")?,
                at: from_micros(row.try_get("created_at")?),
                breaker_trip,
            });
        }
        // A full page covers up to its last row (held rows that are no event included).
        let covered = match rows.last() {
            Some(last) if rows.len() == limit => last.try_get("seq")?,
            _ => through,
        };
        Ok((changes, covered))
    }
}
