//! What the signal quotas are checked against, read in the writer's transaction: the
//! competitors stored per SKU, which SKUs have a product, and how many SKUs have signals but
//! no product. The limits themselves are the write side's (`write::signals`).

use std::collections::{HashMap, HashSet};

use super::{StoreError, Tx};
use crate::domain::{MerchantId, Sku};

/// SKUs per `IN (...)` list: far below either backend's limit on bound parameters.
const CHUNK: usize = 500;

/// `$2, $3, ...` for `n` parameters after the merchant's `$1`.
fn placeholders(n: usize) -> String {
    (2..n + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `(sku, value)` rows of `sql`, whose `{skus}` is replaced by the list of `skus`, chunk by chunk.
async fn per_sku(
    tx: &mut Tx,
    sql: &str,
    merchant: MerchantId,
    skus: &[Sku],
) -> Result<Vec<(String, String)>, StoreError> {
    let mut rows = Vec::new();
    for chunk in skus.chunks(CHUNK) {
        let sql = sql.replace("{skus}", &placeholders(chunk.len()));
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(merchant.to_string());
        for sku in chunk {
            query = query.bind(sku.as_str());
        }
        let found: Vec<(String, String)> = query.fetch_all(&mut **tx).await?;
        rows.extend(found);
    }
    Ok(rows)
}

/// The competitors stored for each of `skus` (SKUs without any are absent).
pub async fn competitors_of(
    tx: &mut Tx,
    merchant: MerchantId,
    skus: &[Sku],
) -> Result<HashMap<String, HashSet<String>>, StoreError> {
    let sql = "SELECT sku, competitor FROM competitor_observations WHERE merchant_id = $1 AND sku IN ({skus})";
    let mut competitors: HashMap<String, HashSet<String>> = HashMap::new();
    for (sku, competitor) in per_sku(tx, sql, merchant, skus).await? {
        competitors.entry(sku).or_default().insert(competitor);
    }
    Ok(competitors)
}

/// Which of `skus` have no product.
pub async fn without_product(tx: &mut Tx, merchant: MerchantId, skus: &[Sku]) -> Result<Vec<Sku>, StoreError> {
    let sql = "SELECT sku, sku FROM products WHERE merchant_id = $1 AND sku IN ({skus})";
    let known: HashSet<String> = per_sku(tx, sql, merchant, skus).await?.into_iter().map(|(sku, _)| sku).collect();
    Ok(skus.iter().filter(|sku| !known.contains(sku.as_str())).cloned().collect())
}

/// Which of `skus` already have signals stored (competitor offers or demand events).
pub async fn with_signals(tx: &mut Tx, merchant: MerchantId, skus: &[Sku]) -> Result<HashSet<String>, StoreError> {
    let sql = "SELECT DISTINCT sku, sku FROM competitor_observations WHERE merchant_id = $1 AND sku IN ({skus})
               UNION SELECT DISTINCT sku, sku FROM demand_buckets WHERE merchant_id = $1 AND sku IN ({skus})
               UNION SELECT sku, sku FROM inventory_levels WHERE merchant_id = $1 AND sku IN ({skus})";
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
