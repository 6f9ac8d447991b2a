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
    /// The price in force before (`None`: the product did not exist yet).
    pub old_price_minor: Option<i64>,
    /// The price in force after the decision (the old one unless it changed; `None`: the
    /// product was deleted).
    pub new_price_minor: Option<i64>,
    /// Whether a guardrail changed the rule's price.
    pub clipped: bool,
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
    pub clipped: bool,
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
    /// The chain in order, after `after_seq`.
    async fn chain(&self, merchant: MerchantId, after_seq: i64, limit: u32) -> Result<Vec<StoredDecision>, StoreError>;
    /// The chain's head: its last sequence number and hash (`None` before any decision).
    async fn chain_head(&self, merchant: MerchantId) -> Result<Option<(i64, String)>, StoreError>;
}

/// Decisions per multi-row INSERT. PostgreSQL gains from large statements (fewer round trips);
/// SQLite's binding looks each parameter up by name, which grows with the statement, so it
/// takes small ones. Both stay far below the backends' limits on parameters per statement.
pub(crate) fn insert_chunk<DB: sqlx::Database>(_: &sqlx::Transaction<'_, DB>) -> usize {
    if DB::NAME == "PostgreSQL" { 100 } else { 20 }
}

/// `INSERT INTO decisions (...) VALUES (...), (...)` for `rows` rows of 15 parameters. Built
/// from constants only; the values are bound.
pub(crate) fn insert_decisions_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO decisions (merchant_id, seq, sku, trigger_kind, outcome, currency, old_price_minor, \
         new_price_minor, rule_version, rule_sha256, clipped, record, created_at, prev_hash, hash) VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..15 {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * 15 + column + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// Moved prices per multi-row UPDATE (3 parameters a row, after the merchant and the time).
pub(crate) const UPDATE_CHUNK: usize = 300;

/// Moves the prices of many SKUs at once: `$1` the merchant, `$2` the time, then (SKU, price,
/// prior price) per row. Casts give PostgreSQL the parameters' types inside `VALUES`.
pub(crate) fn move_prices_sql(rows: usize) -> String {
    let mut sql = String::from("WITH moved (sku, price_minor, prior_price_minor) AS (VALUES ");
    for row in 0..rows {
        let first = 3 + row * 3;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(CAST(${first} AS TEXT), CAST(${} AS BIGINT), CAST(${} AS BIGINT))",
            first + 1,
            first + 2
        ));
    }
    // A join (PostgreSQL hashes it), restricted by `IN` so that SQLite walks the primary key
    // for the listed SKUs instead of joining the whole catalogue against the list.
    sql.push_str(
        ") UPDATE current_prices SET price_minor = moved.price_minor, prior_price_minor = moved.prior_price_minor, \
         version = current_prices.version + 1, effective_at = $2, source = 'rule' FROM moved \
         WHERE current_prices.merchant_id = $1 AND current_prices.sku = moved.sku \
         AND current_prices.sku IN (SELECT sku FROM moved) \
         RETURNING current_prices.sku, current_prices.price_minor, current_prices.currency, current_prices.version, \
         current_prices.effective_at, current_prices.prior_price_minor",
    );
    sql
}

/// Appends `$decisions` to the merchant's chain inside the caller's transaction `$tx` and
/// evaluates to the stored decisions and their time (microseconds); `?` returns errors from
/// the caller. Locking the chain head comes first, and the time is read under that lock and
/// never earlier than the chain's last record, so one merchant's history is in time order as
/// well as in sequence order.
macro_rules! append_chain {
    ($tx:expr, $merchant_id:expr, $decisions:expr) => {{
        use $crate::store::decisions::{GENESIS_HASH, chain_hash};
        let merchant_id: &str = $merchant_id;
        let decisions: &[$crate::store::NewDecision<'_>] = $decisions;
        sqlx::query(
            "INSERT INTO chain_heads (merchant_id, seq, head_hash) VALUES ($1, 0, $2)
             ON CONFLICT (merchant_id) DO NOTHING",
        )
        .bind(merchant_id)
        .bind(GENESIS_HASH)
        .execute(&mut *$tx)
        .await?;
        let (last_seq, mut prev_hash, last_at): (i64, String, i64) = sqlx::query_as(
            "UPDATE chain_heads SET seq = seq + $2 WHERE merchant_id = $1 RETURNING seq, head_hash, last_at",
        )
        .bind(merchant_id)
        .bind(decisions.len() as i64)
        .fetch_one(&mut *$tx)
        .await?;
        let at = $crate::store::now().max($crate::store::from_micros(last_at));
        let mut seq = last_seq - decisions.len() as i64;
        let mut appended = Vec::with_capacity(decisions.len());
        for decision in decisions {
            seq += 1;
            let record = (decision.record)(seq, at);
            let hash = chain_hash(&prev_hash, &record);
            appended.push($crate::store::StoredDecision {
                seq,
                sku: decision.sku.to_string(),
                trigger: decision.trigger.to_owned(),
                outcome: decision.outcome.to_owned(),
                currency: decision.currency.to_owned(),
                old_price_minor: decision.old_price_minor,
                new_price_minor: decision.new_price_minor,
                rule_version: decision.rule_version,
                rule_sha256: decision.rule_sha256.map(str::to_owned),
                clipped: decision.clipped,
                record,
                created_at: at,
                prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
                hash,
            });
        }
        // Many rows per statement: one round trip per chunk instead of one per decision.
        for chunk in appended.chunks($crate::store::decisions::insert_chunk(&$tx)) {
            let sql = $crate::store::decisions::insert_decisions_sql(chunk.len());
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
            for d in chunk {
                insert = insert
                    .bind(merchant_id)
                    .bind(d.seq)
                    .bind(d.sku.as_str())
                    .bind(d.trigger.as_str())
                    .bind(d.outcome.as_str())
                    .bind(d.currency.as_str())
                    .bind(d.old_price_minor)
                    .bind(d.new_price_minor)
                    .bind(d.rule_version)
                    .bind(d.rule_sha256.as_deref())
                    .bind(d.clipped)
                    .bind(d.record.as_str())
                    .bind(at.timestamp_micros())
                    .bind(d.prev_hash.as_str())
                    .bind(d.hash.as_str());
            }
            insert.execute(&mut *$tx).await?;
        }
        sqlx::query("UPDATE chain_heads SET head_hash = $2, last_at = $3 WHERE merchant_id = $1")
            .bind(merchant_id)
            .bind(&prev_hash)
            .bind(at.timestamp_micros())
            .execute(&mut *$tx)
            .await?;
        (appended, at)
    }};
}

pub(crate) use append_chain;

/// Implements [`DecisionStore`] for a backend's store type with the SQL both backends accept.
macro_rules! impl_decision_store {
    ($store:ty) => {
        const _: () = {
            use $crate::domain::MerchantId;
            use $crate::store::decisions::{UPDATE_CHUNK, append_chain, move_prices_sql};
            use $crate::store::history::{prior_price_in, show_prior_price_in};
            use $crate::store::rows::{DecisionRow, PriceRow, convert_all};
            use $crate::store::{CurrentPrice, NewDecision, StoreError, StoredDecision};

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
                    let mut tx = self.pool.begin().await?;
                    // Appending writes the chain head first, which takes the merchant's lock (and
                    // SQLite's write lock) before anything is read.
                    let (stored, at) = append_chain!(tx, &merchant_id, decisions);
                    let show_prior = show_prior_price_in!(tx, &merchant_id);
                    // The prices that move: at most one decision per SKU in a batch (the
                    // repricer coalesces), so one row per SKU in the multi-row update.
                    let mut moving: Vec<(&str, i64, Option<i64>)> = Vec::new();
                    for decision in decisions {
                        if let Some(new_price) = decision.new_price_minor
                            && decision.new_price_minor != decision.old_price_minor
                        {
                            let prior = if show_prior {
                                prior_price_in!(tx, &merchant_id, decision.sku.as_str(), at)
                            } else {
                                None
                            };
                            moving.push((decision.sku.as_str(), new_price, prior));
                        }
                    }
                    let distinct: std::collections::HashSet<&str> = moving.iter().map(|m| m.0).collect();
                    let chunk = if distinct.len() == moving.len() { UPDATE_CHUNK } else { 1 };
                    let mut moved: std::collections::HashMap<String, CurrentPrice> = std::collections::HashMap::new();
                    for rows in moving.chunks(chunk) {
                        let mut update =
                            sqlx::query_as::<_, PriceRow>(sqlx::AssertSqlSafe(move_prices_sql(rows.len())))
                                .bind(&merchant_id)
                                .bind(at.timestamp_micros());
                        for (sku, price, prior) in rows {
                            update = update.bind(*sku).bind(*price).bind(*prior);
                        }
                        for row in update.fetch_all(&mut *tx).await? {
                            let price = CurrentPrice::try_from(row)?;
                            moved.insert(price.sku.to_string(), price);
                        }
                    }
                    let appended = stored
                        .into_iter()
                        .map(|stored| {
                            let price = if stored.new_price_minor != stored.old_price_minor {
                                moved.remove(&stored.sku)
                            } else {
                                None
                            };
                            (stored, price)
                        })
                        .collect();
                    tx.commit().await?;
                    Ok(appended)
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
                    let rows = sqlx::query_as::<_, DecisionRow>(concat!(
                        "SELECT ",
                        $crate::store::history::decision_columns!(),
                        " FROM decisions WHERE merchant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                    ))
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
