//! The decision history as stored: append-only, hash-chained per merchant (the hashing rules
//! are [`crate::domain::chain`]'s). Appending needs the merchant's [`ChainHead`], taken first
//! in the writer's transaction: every transaction that appends locks the head before it
//! touches anything else, so all writers of one merchant take their locks in one order, and
//! SQLite's write lock is taken by the first statement instead of an upgrade that would fail.

use chrono::{DateTime, Utc};

use super::{Backend, Store, StoreError, Tx, from_micros, now};
use crate::domain::chain::{GENESIS_HASH, chain_hash};
use crate::domain::{MerchantId, Outcome, Sku, Trigger};

/// A decision to append: the searchable columns, and the full record as canonical JSON.
pub struct NewDecision<'a> {
    pub sku: &'a Sku,
    pub trigger: Trigger,
    pub outcome: Outcome,
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
    pub trigger: Trigger,
    pub outcome: Outcome,
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

/// The columns of a stored decision, in [`StoredDecision`]'s order.
pub(super) const DECISION_COLUMNS: &str = "seq, sku, trigger_kind, outcome, currency, old_price_minor, \
     new_price_minor, rule_version, rule_sha256, CASE WHEN clipped THEN 1 ELSE 0 END AS clipped, record, \
     created_at, prev_hash, hash";

/// A merchant's chain head, locked in a write transaction: where the next record goes.
pub struct ChainHead {
    merchant_id: String,
    seq: i64,
    hash: String,
    /// The time the next records carry: now, but never before the last record's.
    at: DateTime<Utc>,
}

impl ChainHead {
    /// The time of the records appended under this lock (also the time a price they move
    /// takes effect).
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }
}

/// Locks the merchant's chain head (creating it at genesis): the first statement of every
/// transaction that appends.
pub async fn lock_head(tx: &mut Tx, merchant: MerchantId) -> Result<ChainHead, StoreError> {
    let merchant_id = merchant.to_string();
    sqlx::query(
        "INSERT INTO chain_heads (merchant_id, seq, head_hash) VALUES ($1, 0, $2)
         ON CONFLICT (merchant_id) DO NOTHING",
    )
    .bind(&merchant_id)
    .bind(GENESIS_HASH)
    .execute(&mut **tx)
    .await?;
    // A write to the row takes its lock on PostgreSQL (held to the end of the transaction).
    let (seq, hash, last_at): (i64, String, i64) =
        sqlx::query_as("UPDATE chain_heads SET seq = seq WHERE merchant_id = $1 RETURNING seq, head_hash, last_at")
            .bind(&merchant_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(ChainHead { merchant_id, seq, hash, at: now().max(from_micros(last_at)) })
}

/// Decisions per multi-row INSERT. PostgreSQL gains from large statements (fewer round trips);
/// SQLite's binding looks each parameter up by name, which grows with the statement, so it
/// takes small ones. Both stay far below the backends' limits on parameters per statement.
fn insert_chunk(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => 100,
        Backend::Sqlite => 20,
    }
}

/// `INSERT INTO decisions (...) VALUES (...), (...)` for `rows` rows of 15 parameters. Built
/// from constants only; the values are bound.
fn insert_decisions_sql(rows: usize) -> String {
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

/// Appends decisions, in order, under the locked head, and moves the head. The records carry
/// the head's time, so one merchant's history is in time order as well as sequence order.
pub async fn append(
    tx: &mut Tx,
    backend: Backend,
    head: &mut ChainHead,
    decisions: &[NewDecision<'_>],
) -> Result<Vec<StoredDecision>, StoreError> {
    if decisions.is_empty() {
        return Ok(Vec::new());
    }
    let at = head.at;
    let mut appended = Vec::with_capacity(decisions.len());
    for decision in decisions {
        head.seq += 1;
        let record = (decision.record)(head.seq, at);
        let hash = chain_hash(&head.hash, &record);
        appended.push(StoredDecision {
            seq: head.seq,
            sku: decision.sku.to_string(),
            trigger: decision.trigger,
            outcome: decision.outcome,
            currency: decision.currency.to_owned(),
            old_price_minor: decision.old_price_minor,
            new_price_minor: decision.new_price_minor,
            rule_version: decision.rule_version,
            rule_sha256: decision.rule_sha256.map(str::to_owned),
            clipped: decision.clipped,
            record,
            created_at: at,
            prev_hash: std::mem::replace(&mut head.hash, hash.clone()),
            hash,
        });
    }
    // Many rows per statement: one round trip per chunk instead of one per decision.
    for chunk in appended.chunks(insert_chunk(backend)) {
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(insert_decisions_sql(chunk.len())));
        for d in chunk {
            insert = insert
                .bind(head.merchant_id.as_str())
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
        insert.execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE chain_heads SET seq = $2, head_hash = $3, last_at = $4 WHERE merchant_id = $1")
        .bind(head.merchant_id.as_str())
        .bind(head.seq)
        .bind(head.hash.as_str())
        .bind(at.timestamp_micros())
        .execute(&mut **tx)
        .await?;
    Ok(appended)
}

impl Store {
    /// The chain in order, after `after_seq`.
    pub async fn chain(
        &self,
        merchant: MerchantId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        let sql = format!(
            "SELECT {DECISION_COLUMNS} FROM decisions WHERE merchant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
    }

    /// The chain's head: its last sequence number and hash (`None` before any decision).
    pub async fn chain_head(&self, merchant: MerchantId) -> Result<Option<(i64, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT seq, head_hash FROM chain_heads WHERE merchant_id = $1")
            .bind(merchant.to_string())
            .fetch_optional(&self.pool)
            .await?)
    }
}
