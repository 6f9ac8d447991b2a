//! Overrides as stored (`0014_overrides.sql`): the merchant's overrides with how far the
//! catalogue has been brought to each one's phase, and the SKUs an override's price is in force
//! for. Writes take the writer's transaction (the merchant's chain head locked first).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::Row;

use super::{Store, StoreError, Tx, from_micros};
use crate::domain::overrides::{Override, OverrideDraft, OverridePrice, Phase, Selector};
use crate::domain::{Currency, MerchantId, Sku};

const COLUMNS: &str = "id, sku, attributes, price_minor, currency, percent_off_bps, starts_at, ends_at, forced, \
                       reason, created_at, created_by, cancelled_at, applied_phase, pass_phase, cursor_sku";

/// An override with its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOverride {
    pub item: Override,
    /// The key that made it.
    pub created_by: String,
    /// The phase the catalogue has been brought to.
    pub applied_phase: Phase,
    /// While a change of phase is under way: the phase it brings the catalogue to, and the
    /// last SKU it has brought there.
    pub pass: Option<Phase>,
    pub cursor: Option<String>,
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stored override: {what}"))
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<StoredOverride, StoreError> {
    let sku: Option<String> = row.try_get("sku")?;
    let attributes: Option<String> = row.try_get("attributes")?;
    let selector = match (sku, attributes) {
        (Some(sku), _) => Selector::Sku(Sku::parse(&sku).map_err(corrupt)?),
        (None, Some(json)) => Selector::Attributes(serde_json::from_str::<Map<String, Value>>(&json).map_err(corrupt)?),
        (None, None) => return Err(corrupt("neither a SKU nor attributes")),
    };
    let price_minor: Option<i64> = row.try_get("price_minor")?;
    let currency: Option<String> = row.try_get("currency")?;
    let off: Option<i64> = row.try_get("percent_off_bps")?;
    let price = match (price_minor, currency, off) {
        (Some(price_minor), Some(code), _) => {
            OverridePrice::Fixed { price_minor, currency: Currency::parse(&code).map_err(corrupt)? }
        }
        (_, _, Some(off_bps)) => OverridePrice::PercentOff { off_bps },
        _ => return Err(corrupt("no price")),
    };
    let phase: String = row.try_get("applied_phase")?;
    Ok(StoredOverride {
        item: Override {
            id: row.try_get("id")?,
            selector,
            price,
            starts_at: from_micros(row.try_get("starts_at")?),
            ends_at: row.try_get::<Option<i64>, _>("ends_at")?.map(from_micros),
            force: row.try_get::<i64, _>("forced")? != 0,
            reason: row.try_get("reason")?,
            created_at: from_micros(row.try_get("created_at")?),
            cancelled_at: row.try_get::<Option<i64>, _>("cancelled_at")?.map(from_micros),
        },
        created_by: row.try_get("created_by")?,
        applied_phase: phase.parse().map_err(corrupt)?,
        pass: row.try_get::<Option<String>, _>("pass_phase")?.map(|p| p.parse().map_err(corrupt)).transpose()?,
        cursor: row.try_get("cursor_sku")?,
    })
}

fn all(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<StoredOverride>, StoreError> {
    rows.iter().map(from_row).collect()
}

/// Stores a new override (scheduled: the catalogue is brought to it by [`unsettled`]'s user).
pub async fn insert(
    tx: &mut Tx,
    merchant: MerchantId,
    draft: &OverrideDraft,
    by: &str,
    at: DateTime<Utc>,
) -> Result<StoredOverride, StoreError> {
    let (sku, attributes) = match &draft.selector {
        Selector::Sku(sku) => (Some(sku.to_string()), None),
        Selector::Attributes(map) => (None, Some(serde_json::to_string(map).expect("attributes serialize"))),
    };
    let (price_minor, currency, off) = match &draft.price {
        OverridePrice::Fixed { price_minor, currency } => (Some(*price_minor), Some(currency.code().to_owned()), None),
        OverridePrice::PercentOff { off_bps } => (None, None, Some(*off_bps)),
    };
    let sql = format!(
        "INSERT INTO price_overrides (merchant_id, id, sku, attributes, price_minor, currency, percent_off_bps,
             starts_at, ends_at, forced, reason, created_at, created_by, applied_phase)
         SELECT $1, COALESCE(MAX(id), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'scheduled'
         FROM price_overrides WHERE merchant_id = $1
         RETURNING {COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.to_string())
        .bind(sku)
        .bind(attributes)
        .bind(price_minor)
        .bind(currency)
        .bind(off)
        .bind(draft.starts_at.timestamp_micros())
        .bind(draft.ends_at.map(|t| t.timestamp_micros()))
        .bind(i64::from(draft.force))
        .bind(&draft.reason)
        .bind(at.timestamp_micros())
        .bind(by)
        .fetch_one(&mut **tx)
        .await?;
    from_row(&row)
}

/// Ends an override now (false when it had already ended).
pub async fn cancel(tx: &mut Tx, merchant: MerchantId, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE price_overrides SET cancelled_at = $3
         WHERE merchant_id = $1 AND id = $2 AND cancelled_at IS NULL AND (ends_at IS NULL OR ends_at > $3)",
    )
    .bind(merchant.to_string())
    .bind(id)
    .bind(at.timestamp_micros())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The condition of an override whose phase by the clock (`$2`) is ahead of the catalogue's.
const UNSETTLED: &str = "applied_phase <> 'ended' AND (cancelled_at IS NOT NULL \
                         OR (ends_at IS NOT NULL AND ends_at <= $2) \
                         OR (applied_phase = 'scheduled' AND starts_at <= $2))";

/// The merchant's overrides whose phase by the clock is ahead of the catalogue's, oldest first.
pub async fn unsettled(
    tx: &mut Tx,
    merchant: MerchantId,
    now: DateTime<Utc>,
) -> Result<Vec<StoredOverride>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM price_overrides WHERE merchant_id = $1 AND {UNSETTLED} ORDER BY id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.to_string())
        .bind(now.timestamp_micros())
        .fetch_all(&mut **tx)
        .await?;
    all(rows)
}

/// The overrides not yet ended by the clock (scheduled or in force), read in the writer's
/// transaction.
pub async fn live(tx: &mut Tx, merchant: MerchantId, now: DateTime<Utc>) -> Result<Vec<Override>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM price_overrides
         WHERE merchant_id = $1 AND cancelled_at IS NULL AND (ends_at IS NULL OR ends_at > $2) ORDER BY id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.to_string())
        .bind(now.timestamp_micros())
        .fetch_all(&mut **tx)
        .await?;
    Ok(all(rows)?.into_iter().map(|o| o.item).collect())
}

/// Records how far a pass has got (`pass`: its phase and last SKU), or (`None`) that the
/// catalogue is at `applied`.
pub async fn set_progress(
    tx: &mut Tx,
    merchant: MerchantId,
    id: i64,
    applied: Phase,
    pass: Option<(Phase, &str)>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE price_overrides SET applied_phase = $3, pass_phase = $4, cursor_sku = $5
         WHERE merchant_id = $1 AND id = $2",
    )
    .bind(merchant.to_string())
    .bind(id)
    .bind(applied.as_str())
    .bind(pass.map(|(phase, _)| phase.as_str()))
    .bind(pass.map(|(_, sku)| sku.to_owned()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One override, read in the writer's transaction.
pub async fn find(tx: &mut Tx, merchant: MerchantId, id: i64) -> Result<Override, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM price_overrides WHERE merchant_id = $1 AND id = $2");
    let row =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(merchant.to_string()).bind(id).fetch_optional(&mut **tx).await?;
    match row {
        Some(row) => Ok(from_row(&row)?.item),
        None => Err(corrupt(format!("a SKU is under override {id}, which does not exist"))),
    }
}

/// Up to `limit` SKUs under override `id` after `after`, in SKU order.
pub async fn skus_under(
    tx: &mut Tx,
    merchant: MerchantId,
    id: i64,
    after: &str,
    limit: u32,
) -> Result<Vec<Sku>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT sku FROM overridden_prices WHERE merchant_id = $1 AND override_id = $2 AND sku > $3
         ORDER BY sku LIMIT $4",
    )
    .bind(merchant.to_string())
    .bind(id)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter().map(|(sku,)| Sku::parse(&sku).map_err(corrupt)).collect()
}

/// A SKU under an override: which one, and the price to return to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overridden {
    pub override_id: i64,
    pub restore_minor: i64,
    /// The price to return to was the base price (so it follows the base price).
    pub restore_base: bool,
}

/// The SKUs from `first` to `last` (inclusive) under an override, read in the writer's
/// transaction.
pub async fn overridden_between(
    tx: &mut Tx,
    merchant: MerchantId,
    first: &str,
    last: &str,
) -> Result<HashMap<String, Overridden>, StoreError> {
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT sku, override_id, restore_minor, restore_base FROM overridden_prices
         WHERE merchant_id = $1 AND sku >= $2 AND sku <= $3",
    )
    .bind(merchant.to_string())
    .bind(first)
    .bind(last)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(sku, override_id, restore_minor, base)| {
            (sku, Overridden { override_id, restore_minor, restore_base: base != 0 })
        })
        .collect())
}

/// Puts a SKU under an override.
pub async fn put_overridden(tx: &mut Tx, merchant: MerchantId, sku: &Sku, o: Overridden) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO overridden_prices (merchant_id, sku, override_id, restore_minor, restore_base)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (merchant_id, sku) DO UPDATE SET override_id = excluded.override_id,
             restore_minor = excluded.restore_minor, restore_base = excluded.restore_base",
    )
    .bind(merchant.to_string())
    .bind(sku.as_str())
    .bind(o.override_id)
    .bind(o.restore_minor)
    .bind(i64::from(o.restore_base))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes a SKU out from under its override (it ended, or the product was deleted).
pub async fn forget(tx: &mut Tx, merchant: MerchantId, sku: &Sku) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM overridden_prices WHERE merchant_id = $1 AND sku = $2")
        .bind(merchant.to_string())
        .bind(sku.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Which overrides a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideState {
    Phase(Phase),
    All,
}

impl Store {
    /// The SKUs from `first` to `last` under an override now (for dry runs).
    pub async fn overridden_skus(
        &self,
        merchant: MerchantId,
        first: &str,
        last: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin().await?;
        let found = overridden_between(&mut tx, merchant, first, last).await?;
        tx.commit().await?;
        Ok(found.into_keys().collect())
    }

    /// The merchants with an override whose phase by the clock is ahead of the catalogue's.
    pub async fn merchants_with_unsettled_overrides(&self, now: DateTime<Utc>) -> Result<Vec<MerchantId>, StoreError> {
        let sql = format!("SELECT DISTINCT merchant_id FROM price_overrides WHERE {}", UNSETTLED.replace("$2", "$1"));
        let ids: Vec<(String,)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now.timestamp_micros()).fetch_all(&self.pool).await?;
        ids.into_iter().map(|(id,)| MerchantId::parse(&id).map_err(|_| corrupt(format!("merchant id {id}")))).collect()
    }

    pub async fn price_override(&self, merchant: MerchantId, id: i64) -> Result<Option<StoredOverride>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM price_overrides WHERE merchant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The merchant's overrides in `state` (by the clock at `now`), newest first, before
    /// `before` (an id).
    pub async fn price_overrides(
        &self,
        merchant: MerchantId,
        state: OverrideState,
        before: Option<i64>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<StoredOverride>, StoreError> {
        let condition = match state {
            OverrideState::All => "",
            OverrideState::Phase(Phase::Ended) => {
                " AND (cancelled_at IS NOT NULL OR (ends_at IS NOT NULL AND ends_at <= $2))"
            }
            OverrideState::Phase(Phase::Active) => {
                " AND cancelled_at IS NULL AND starts_at <= $2 AND (ends_at IS NULL OR ends_at > $2)"
            }
            OverrideState::Phase(Phase::Scheduled) => " AND cancelled_at IS NULL AND starts_at > $2",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM price_overrides WHERE merchant_id = $1 AND $2 = $2 AND id < $3{condition}
             ORDER BY id DESC LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(now.timestamp_micros())
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        all(rows)
    }
}
