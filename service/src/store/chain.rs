//! The decision history as stored: append-only, hash-chained per merchant (the hashing rules
//! are [`crate::domain::chain`]'s). Appending needs the merchant's [`ChainHead`], taken first
//! in the writer's transaction: every transaction that appends locks the head before it
//! touches anything else, so all writers of one merchant take their locks in one order, and
//! SQLite's write lock is taken by the first statement instead of an upgrade that would fail.

use chrono::{DateTime, Utc};

use super::bulk::{Cell, Kind, Rows};
use super::packing;
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

/// The merchant's number, which decision rows carry instead of its id (migration 0020), for a
/// query whose `$1` is the merchant id.
pub(super) const MERCHANT_NUMBER: &str = "(SELECT m.number FROM merchants m WHERE m.id = $1)";

/// A decision row's merchant id, from the number it carries.
const MERCHANT_ID_COLUMN: &str =
    "(SELECT m.id FROM merchants m WHERE m.number = decisions.merchant_number) AS merchant_id";

/// A decision row's rule hash: rows written since records are packed leave it to the rule
/// version they name (versions are immutable, and never deleted), rows before hold it.
pub(super) const RULE_SHA256_COLUMN: &str = "COALESCE(rule_sha256, (SELECT r.sha256 FROM rule_versions r \
     JOIN merchants m ON m.id = r.merchant_id \
     WHERE m.number = decisions.merchant_number AND r.version = decisions.rule_version)) AS rule_sha256";

/// A decision row's previous hash (bytes; see [`super::rows::hash_of`]): rows written since
/// records are packed leave it empty, as it is the hash of the record before; NULL for the
/// first record, whose previous hash is the genesis hash. A missing record before leaves it
/// empty, which nothing matches: verification reports the gap where it is.
const PREV_HASH_COLUMN: &str = "CASE WHEN length(prev_hash) > 0 THEN prev_hash WHEN seq = 1 THEN NULL \
     ELSE COALESCE((SELECT p.hash FROM decisions p WHERE p.merchant_number = decisions.merchant_number \
                    AND p.seq = decisions.seq - 1), prev_hash) END AS prev_hash";

/// The columns of a stored decision, in [`StoredDecision`]'s order (with what a packed record
/// needs to be read back: see [`super::packing`]), for a query `FROM decisions`.
pub(super) static DECISION_COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "seq, sku, trigger_kind, outcome, currency, old_price_minor, new_price_minor, rule_version, \
         {RULE_SHA256_COLUMN}, CASE WHEN clipped THEN 1 ELSE 0 END AS clipped, record, created_at, \
         {PREV_HASH_COLUMN}, hash, {MERCHANT_ID_COLUMN}, packed"
    )
});

/// A merchant's chain head, locked in a write transaction: where the next record goes.
pub struct ChainHead {
    merchant_id: String,
    /// The merchant's number, which its decision rows carry.
    merchant_number: i64,
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
    let merchant_number: i64 = sqlx::query_scalar("SELECT number FROM merchants WHERE id = $1")
        .bind(&merchant_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(ChainHead { merchant_id, merchant_number, seq, hash, at: now().max(from_micros(last_at)) })
}

/// The columns of an appended decision, after the merchant.
const APPENDED_COLUMNS: &[(&str, Kind)] = &[
    ("seq", Kind::BigInt),
    ("sku", Kind::Text),
    ("trigger_kind", Kind::Text),
    ("outcome", Kind::Text),
    ("currency", Kind::Text),
    ("old_price_minor", Kind::BigInt),
    ("new_price_minor", Kind::BigInt),
    ("rule_version", Kind::BigInt),
    ("rule_sha256", Kind::Text),
    ("clipped", Kind::Bool),
    ("record", Kind::Text),
    ("packed", Kind::Text),
    ("prev_hash", Kind::Text),
    ("hash", Kind::Text),
];

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
    // Records are stored packed (hex on the way: the rows travel as text) where they pack.
    let to_pack = appended
        .iter()
        .map(|d| packing::ToPack { record: d.record.clone(), sku: d.sku.clone(), rule_sha256: d.rule_sha256.clone() })
        .collect();
    let packed = packing::pack_many(to_pack, &head.merchant_id, at).await;
    // Many rows per statement (see `bulk`): one round trip per chunk instead of one a decision.
    let mut rows = Rows::new(APPENDED_COLUMNS);
    for (d, packed) in appended.iter().zip(&packed) {
        rows.push([
            Cell::BigInt(d.seq),
            Cell::Text(&d.sku),
            Cell::Text(d.trigger.as_str()),
            Cell::Text(d.outcome.as_str()),
            Cell::Text(&d.currency),
            Cell::opt_bigint(d.old_price_minor),
            Cell::opt_bigint(d.new_price_minor),
            Cell::opt_bigint(d.rule_version),
            // The version's own hash stands for it (see `RULE_SHA256_COLUMN`).
            Cell::opt_text(if d.rule_version.is_some() { None } else { d.rule_sha256.as_deref() }),
            Cell::Bool(d.clipped),
            Cell::Text(if packed.is_some() { "" } else { &d.record }),
            Cell::opt_text(packed.as_deref()),
            // The record before's hash stands for it (see `prev_hash_column`).
            Cell::Text(""),
            Cell::Text(&d.hash),
        ]);
    }
    // Bytes travel as hex (the rows are text), and are stored as bytes.
    let unhex = |column: &str| match backend {
        Backend::Sqlite => format!("unhex(u.{column})"),
        Backend::Postgres => format!("decode(u.{column}, 'hex')"),
    };
    for chunk in rows.chunks(backend) {
        let sql = format!(
            "INSERT INTO decisions (merchant_number, seq, sku, trigger_kind, outcome, currency, old_price_minor,
                                    new_price_minor, rule_version, rule_sha256, clipped, record, packed, created_at,
                                    prev_hash, hash)
             SELECT $1, u.seq, u.sku, u.trigger_kind, u.outcome, u.currency, u.old_price_minor, u.new_price_minor,
                    u.rule_version, u.rule_sha256, u.clipped, u.record, {packed}, $2, {prev_hash}, {hash}
             FROM {source}",
            packed = unhex("packed"),
            prev_hash = unhex("prev_hash"),
            hash = unhex("hash"),
            source = chunk.source(3)
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(head.merchant_number).bind(at.timestamp_micros());
        chunk.bind(query).execute(&mut **tx).await?;
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
            "SELECT {columns} FROM decisions WHERE merchant_number = {MERCHANT_NUMBER} AND seq > $2 ORDER BY seq LIMIT $3",
            columns = *DECISION_COLUMNS
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
