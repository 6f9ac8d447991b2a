//! What the signal quotas are checked against, read in the writer's transaction: the
//! competitors stored per SKU, which SKUs have a product, and how many SKUs have signals but
//! no product. The limits themselves are the write side's (`write::signals`).

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::bulk::{Cell, Kind, Rows};
use super::{StoreError, Tx};
use crate::domain::{MerchantId, Sku};

/// `(sku, value)` rows of `sql`, whose `{skus}` is replaced by a derived table `u` of the SKUs
/// (column `sku`), chunk by chunk. A derived table rather than an `IN` list of parameters: on
/// PostgreSQL, a cached generic plan for a long `IN` list scanned the whole table (280 ms a
/// query at 200,000 observations), where a join on the array's rows uses the key.
async fn per_sku(
    tx: &mut Tx,
    sql: &str,
    merchant: MerchantId,
    skus: &[Sku],
) -> Result<Vec<(String, String)>, StoreError> {
    let mut list = Rows::new(&[("sku", Kind::Text)]);
    for sku in skus {
        list.push([Cell::Text(sku.as_str())]);
    }
    let mut rows = Vec::new();
    for chunk in list.chunks(tx.backend()) {
        let sql = sql.replace("{skus}", &format!("(SELECT u.sku FROM {})", chunk.source(2)));
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(merchant.to_string());
        for row in chunk.bind(query).fetch_all(&mut **tx).await? {
            rows.push((row.try_get(0)?, row.try_get(1)?));
        }
    }
    Ok(rows)
}

/// How many competitors are stored for each of `skus` (SKUs without any are absent).
pub async fn competitor_counts(
    tx: &mut Tx,
    merchant: MerchantId,
    skus: &[Sku],
) -> Result<HashMap<String, u64>, StoreError> {
    let sql = "SELECT sku, CAST(COUNT(*) AS TEXT) FROM competitor_observations
               WHERE merchant_id = $1 AND sku IN {skus} GROUP BY sku";
    let mut counts = HashMap::new();
    for (sku, count) in per_sku(tx, sql, merchant, skus).await? {
        counts.insert(sku, count.parse().map_err(|e| StoreError::Corrupt(format!("competitor count: {e}")))?);
    }
    Ok(counts)
}

/// The competitors stored for each of `skus` (SKUs without any are absent).
pub async fn competitors_of(
    tx: &mut Tx,
    merchant: MerchantId,
    skus: &[Sku],
) -> Result<HashMap<String, HashSet<String>>, StoreError> {
    let sql = "SELECT sku, competitor FROM competitor_observations WHERE merchant_id = $1 AND sku IN {skus}";
    let mut competitors: HashMap<String, HashSet<String>> = HashMap::new();
    for (sku, competitor) in per_sku(tx, sql, merchant, skus).await? {
        competitors.entry(sku).or_default().insert(competitor);
    }
    Ok(competitors)
}

/// The currency and base price of each of `skus` that has a product (what an observation of
/// it is checked against).
pub async fn product_references(
    tx: &mut Tx,
    merchant: MerchantId,
    skus: &[Sku],
) -> Result<HashMap<String, (String, i64)>, StoreError> {
    let sql = "SELECT sku, currency || ' ' || CAST(base_price_minor AS TEXT) FROM products
               WHERE merchant_id = $1 AND sku IN {skus}";
    let mut references = HashMap::new();
    for (sku, reference) in per_sku(tx, sql, merchant, skus).await? {
        let parsed =
            reference.split_once(' ').and_then(|(currency, base)| Some((currency.to_owned(), base.parse().ok()?)));
        let (currency, base) = parsed.ok_or_else(|| StoreError::Corrupt(format!("product reference `{reference}`")))?;
        references.insert(sku, (currency, base));
    }
    Ok(references)
}

/// Which of `skus` have no product.
pub async fn without_product(tx: &mut Tx, merchant: MerchantId, skus: &[Sku]) -> Result<Vec<Sku>, StoreError> {
    let sql = "SELECT sku, sku FROM products WHERE merchant_id = $1 AND sku IN {skus}";
    let known: HashSet<String> = per_sku(tx, sql, merchant, skus).await?.into_iter().map(|(sku, _)| sku).collect();
    Ok(skus.iter().filter(|sku| !known.contains(sku.as_str())).cloned().collect())
}

/// Which of `skus` already have signals stored (competitor offers or demand events).
pub async fn with_signals(tx: &mut Tx, merchant: MerchantId, skus: &[Sku]) -> Result<HashSet<String>, StoreError> {
    let sql = "SELECT DISTINCT sku, sku FROM competitor_observations WHERE merchant_id = $1 AND sku IN {skus}
               UNION SELECT DISTINCT sku, sku FROM demand_buckets WHERE merchant_id = $1 AND sku IN {skus}
               UNION SELECT sku, sku FROM inventory_levels WHERE merchant_id = $1 AND sku IN {skus}";
    Ok(per_sku(tx, sql, merchant, skus).await?.into_iter().map(|(sku, _)| sku).collect())
}

/// How many SKUs have signals stored but no product.
pub async fn skus_with_signals_only(tx: &mut Tx, merchant: MerchantId) -> Result<i64, StoreError> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (
             SELECT sku FROM competitor_observations o WHERE merchant_id = $1
               AND NOT EXISTS (SELECT 1 FROM products p WHERE p.merchant_id = o.merchant_id AND p.sku = o.sku)
             UNION
             SELECT sku FROM demand_buckets d WHERE merchant_id = $1
               AND NOT EXISTS (SELECT 1 FROM products p WHERE p.merchant_id = d.merchant_id AND p.sku = d.sku)
             UNION
             SELECT sku FROM inventory_levels i WHERE merchant_id = $1
               AND NOT EXISTS (SELECT 1 FROM products p WHERE p.merchant_id = i.merchant_id AND p.sku = i.sku)
         ) AS orphaned",
    )
    .bind(merchant.to_string())
    .fetch_one(&mut **tx)
    .await?;
    Ok(count)
}
