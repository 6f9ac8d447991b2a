//! Durable repricing work as stored (the tables of `0006_reprice_work.sql`): targeted intents
//! (one row per product to evaluate again) and catalogue sweeps (one row per merchant, with
//! the SKU it has reached). Requests are written in the writer's transaction, beside the change
//! that calls for them; claims give a worker a row for a while; settling, in the transaction
//! that appends the decisions, clears what was decided. What the rows mean for scheduling is
//! the engine's business ([`crate::engine`]); this module only reads and writes them.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::{Backend, Store, StoreError, Tx};
use crate::domain::{MerchantId, Sku, Trigger};

/// A claimed targeted intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub sku: Sku,
    pub trigger: Trigger,
    /// The request it answers: a later request for the same product bumps it.
    pub generation: i64,
    /// Earlier claims released after failures of the service's own.
    pub attempts: i64,
}

/// A claimed catalogue sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweep {
    pub trigger: Trigger,
    pub generation: i64,
    /// The last SKU written so far (`None`: the sweep starts at the top).
    pub after: Option<Sku>,
}

/// How queued work looks to an operator (metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Targeted intents per merchant.
    pub intents: Vec<(MerchantId, i64)>,
    /// Merchants with a sweep pending.
    pub sweeps: i64,
    /// When the oldest request was made.
    pub oldest: Option<DateTime<Utc>>,
}

/// Rows per multi-row statement (5 parameters a row).
const ROWS_PER_STATEMENT: usize = 100;

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn parse_sku(raw: String) -> Result<Sku, StoreError> {
    Sku::parse(&raw).map_err(|e| StoreError::Corrupt(format!("queued sku: {e}")))
}

fn parse_trigger(raw: &str) -> Result<Trigger, StoreError> {
    raw.parse().map_err(|e| StoreError::Corrupt(format!("queued trigger: {e}")))
}

/// Whether the merchant has an active rule (work for a merchant without one would decide
/// nothing: its products keep their set prices, and an activation sweeps them all).
async fn has_active_rule(tx: &mut Tx, merchant_id: &str) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM rule_activations WHERE merchant_id = $1 LIMIT 1")
        .bind(merchant_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(found.is_some())
}

/// Queues products for evaluation in the writer's transaction (when the merchant has an
/// active rule); returns how many were queued. A product already queued is requested again:
/// its generation moves, so an evaluation that started before this request cannot clear it.
pub async fn request(
    tx: &mut Tx,
    merchant: MerchantId,
    skus: &[Sku],
    trigger: Trigger,
    at: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let merchant_id = merchant.to_string();
    if skus.is_empty() || !has_active_rule(tx, &merchant_id).await? {
        return Ok(0);
    }
    // Each product once (one statement may not touch a row twice), in SKU order: concurrent
    // writers lock the rows in one order.
    let skus: Vec<&Sku> = skus.iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    for chunk in skus.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO reprice_intents (merchant_id, sku, trigger_kind, generation, requested_at) VALUES ",
        );
        for row in 0..chunk.len() {
            let p = row * 2;
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("($1, ${}, $2, 1, ${})", p + 4, p + 3));
        }
        sql.push_str(
            " ON CONFLICT (merchant_id, sku) DO UPDATE SET generation = reprice_intents.generation + 1, \
             trigger_kind = excluded.trigger_kind, attempts = 0",
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&merchant_id).bind(trigger.as_str());
        for sku in chunk {
            insert = insert.bind(micros(at)).bind(sku.as_str());
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(skus.len())
}

/// Queues a sweep of the merchant's whole catalogue in the writer's transaction. `restart`
/// (a new rule or new parameters) starts a pending sweep again at the top; otherwise (the
/// schedule) a pending sweep is left as it is. A sweep that starts (anew) takes over the
/// merchant's queued retries.
pub async fn request_sweep(
    tx: &mut Tx,
    merchant: MerchantId,
    trigger: Trigger,
    restart: bool,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let merchant_id = merchant.to_string();
    if !has_active_rule(tx, &merchant_id).await? {
        return Ok(());
    }
    let on_conflict = if restart {
        "DO UPDATE SET generation = reprice_sweeps.generation + 1, after_sku = NULL, \
         trigger_kind = excluded.trigger_kind"
    } else {
        "DO NOTHING"
    };
    let sql = format!(
        "INSERT INTO reprice_sweeps (merchant_id, trigger_kind, generation, requested_at) VALUES ($1, $2, 1, $3)
         ON CONFLICT (merchant_id) {on_conflict}"
    );
    let started = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&merchant_id)
        .bind(trigger.as_str())
        .bind(micros(at))
        .execute(&mut **tx)
        .await?
        .rows_affected()
        > 0;
    if started {
        // Retries of earlier work (rows released after a failure of the service's own) ask
        // only for an evaluation under the active rule, which the sweep now starting gives
        // every product: kept, they would decide a product a second time after the sweep
        // passed it. Requests that never failed stay, so recent changes are still served
        // ahead of the sweep.
        sqlx::query("DELETE FROM reprice_intents WHERE merchant_id = $1 AND attempts > 0")
            .bind(&merchant_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Queues products again for `retry_at`, counting an attempt, in the writer's transaction:
/// their evaluation failed for a reason of the service's own. Rows claimed by another worker
/// are left to it.
pub async fn retry_later(
    tx: &mut Tx,
    merchant: MerchantId,
    token: &str,
    skus: &[Sku],
    trigger: Trigger,
    retry_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let merchant_id = merchant.to_string();
    for chunk in skus.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO reprice_intents (merchant_id, sku, trigger_kind, generation, requested_at, attempts, \
             claimed_until) VALUES ",
        );
        for row in 0..chunk.len() {
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("($1, ${}, $2, 1, $3, 1, $3)", row + 5));
        }
        sql.push_str(
            " ON CONFLICT (merchant_id, sku) DO UPDATE SET claim_token = NULL, \
             claimed_until = excluded.claimed_until, attempts = reprice_intents.attempts + 1 \
             WHERE reprice_intents.claim_token IS NULL OR reprice_intents.claim_token = $4",
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&merchant_id)
            .bind(trigger.as_str())
            .bind(micros(retry_at))
            .bind(token);
        for sku in chunk {
            insert = insert.bind(sku.as_str());
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Drops a deleted product's queued work, in the deleting transaction.
pub async fn forget(tx: &mut Tx, merchant: MerchantId, sku: &Sku) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM reprice_intents WHERE merchant_id = $1 AND sku = $2")
        .bind(merchant.to_string())
        .bind(sku.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Of the intents `token` claimed, settles those decided in this transaction: an intent whose
/// generation is still the one claimed is cleared; one requested again meanwhile is released
/// (its decision stands, and the new request is evaluated again). Returns the SKUs still held
/// by this claim, whose decisions may be appended; the others were taken over by another
/// worker after the claim expired, and their decisions must be dropped.
pub async fn settle_intents(
    tx: &mut Tx,
    merchant: MerchantId,
    token: &str,
    decided: &[(&Sku, i64)],
) -> Result<HashSet<Sku>, StoreError> {
    let merchant_id = merchant.to_string();
    let mut held = HashSet::with_capacity(decided.len());
    for chunk in decided.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "DELETE FROM reprice_intents WHERE merchant_id = $1 AND claim_token = $2 AND (sku, generation) IN (VALUES ",
        );
        for row in 0..chunk.len() {
            let p = 3 + row * 2;
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${p}, ${})", p + 1));
        }
        sql.push_str(") RETURNING sku");
        let mut delete = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(&merchant_id).bind(token);
        for (sku, generation) in chunk {
            delete = delete.bind(sku.as_str()).bind(*generation);
        }
        for sku in delete.fetch_all(&mut **tx).await? {
            held.insert(parse_sku(sku)?);
        }
    }
    // What is left under this claim was requested again: release it for a new evaluation.
    let released: Vec<String> = sqlx::query_scalar(
        "UPDATE reprice_intents SET claim_token = NULL, claimed_until = NULL, attempts = 0
         WHERE merchant_id = $1 AND claim_token = $2 RETURNING sku",
    )
    .bind(&merchant_id)
    .bind(token)
    .fetch_all(&mut **tx)
    .await?;
    for sku in released {
        held.insert(parse_sku(sku)?);
    }
    Ok(held)
}

/// Moves a sweep on past `to` (or ends it when `to` is `None`) in the transaction that appends
/// the page's decisions. False when the sweep is no longer this claim's or no longer at
/// `from` (requested again, or taken over): the page's decisions must then be dropped.
pub async fn advance_sweep(
    tx: &mut Tx,
    merchant: MerchantId,
    token: &str,
    sweep: &Sweep,
    to: Option<&Sku>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let sql = match to {
        Some(_) => {
            "UPDATE reprice_sweeps SET after_sku = $5, claimed_until = $6
             WHERE merchant_id = $1 AND claim_token = $2 AND generation = $3 AND after_sku IS NOT DISTINCT FROM $4"
        }
        None => {
            "DELETE FROM reprice_sweeps
             WHERE merchant_id = $1 AND claim_token = $2 AND generation = $3 AND after_sku IS NOT DISTINCT FROM $4"
        }
    };
    let mut query = sqlx::query(sql)
        .bind(merchant.to_string())
        .bind(token)
        .bind(sweep.generation)
        .bind(sweep.after.as_ref().map(Sku::as_str));
    if let Some(to) = to {
        query = query.bind(to.as_str()).bind(micros(until));
    }
    Ok(query.execute(&mut **tx).await?.rows_affected() == 1)
}

impl Store {
    /// Merchants with work that nobody holds (never claimed, released, or whose claim has
    /// expired), oldest request first.
    pub async fn merchants_with_work(&self, now: DateTime<Utc>) -> Result<Vec<MerchantId>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT merchant_id FROM (
                 SELECT merchant_id, MIN(requested_at) AS since FROM reprice_intents
                 WHERE claimed_until IS NULL OR claimed_until < $1 GROUP BY merchant_id
                 UNION ALL
                 SELECT merchant_id, requested_at AS since FROM reprice_sweeps
                 WHERE claimed_until IS NULL OR claimed_until < $1
             ) AS waiting GROUP BY merchant_id ORDER BY MIN(since)",
        )
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|id| MerchantId::parse(id).map_err(|e| StoreError::Corrupt(format!("queued merchant: {e}"))))
            .collect()
    }

    /// Claims up to `limit` of the merchant's targeted intents, oldest first, for `token`
    /// until `until`. On PostgreSQL, rows another replica is claiming are skipped, not waited
    /// for.
    pub async fn claim_intents(
        &self,
        merchant: MerchantId,
        token: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Intent>, StoreError> {
        // A read first: most looks find nothing, and a read takes no write lock (SQLite has
        // one for the whole file).
        let claimable: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM reprice_intents
             WHERE merchant_id = $1 AND (claimed_until IS NULL OR claimed_until < $2) LIMIT 1",
        )
        .bind(merchant.to_string())
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await?;
        if claimable.is_none() {
            return Ok(Vec::new());
        }
        let skip_locked = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE reprice_intents SET claim_token = $2, claimed_until = $3
             WHERE merchant_id = $1 AND sku IN (
                 SELECT sku FROM reprice_intents
                 WHERE merchant_id = $1 AND (claimed_until IS NULL OR claimed_until < $4)
                 ORDER BY requested_at LIMIT $5 {skip_locked})
               AND (claimed_until IS NULL OR claimed_until < $4)
             RETURNING sku, trigger_kind, generation, attempts"
        );
        let mut tx = self.begin().await?;
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(token)
            .bind(micros(until))
            .bind(micros(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut intents = rows
            .into_iter()
            .map(|(sku, trigger, generation, attempts)| {
                Ok(Intent { sku: parse_sku(sku)?, trigger: parse_trigger(&trigger)?, generation, attempts })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        intents.sort_by(|a, b| a.sku.cmp(&b.sku));
        Ok(intents)
    }

    /// Claims the merchant's sweep for `token` until `until` (or renews this token's claim).
    pub async fn claim_sweep(
        &self,
        merchant: MerchantId,
        token: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Sweep>, StoreError> {
        let pending: Option<i64> = sqlx::query_scalar("SELECT 1 FROM reprice_sweeps WHERE merchant_id = $1")
            .bind(merchant.to_string())
            .fetch_optional(&self.pool)
            .await?;
        if pending.is_none() {
            return Ok(None);
        }
        let mut tx = self.begin().await?;
        let row: Option<(String, i64, Option<String>)> = sqlx::query_as(
            "UPDATE reprice_sweeps SET claim_token = $2, claimed_until = $3
             WHERE merchant_id = $1 AND (claimed_until IS NULL OR claimed_until < $4 OR claim_token = $2)
             RETURNING trigger_kind, generation, after_sku",
        )
        .bind(merchant.to_string())
        .bind(token)
        .bind(micros(until))
        .bind(micros(now))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|(trigger, generation, after)| {
            Ok(Sweep { trigger: parse_trigger(&trigger)?, generation, after: after.map(parse_sku).transpose()? })
        })
        .transpose()
    }

    /// Gives claimed intents back, to be claimed again from `retry_at` (now: at once). With
    /// `attempted`, the release counts as a failed attempt (a failure of the service's own).
    pub async fn release_intents(
        &self,
        merchant: MerchantId,
        token: &str,
        retry_at: Option<DateTime<Utc>>,
        attempted: bool,
    ) -> Result<(), StoreError> {
        let attempts = if attempted { "attempts = attempts + 1" } else { "attempts = attempts" };
        self.release("reprice_intents", attempts, merchant, token, retry_at).await
    }

    /// Gives a claimed sweep back, to be claimed again from `retry_at` (now: at once).
    pub async fn release_sweep(
        &self,
        merchant: MerchantId,
        token: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.release("reprice_sweeps", "after_sku = after_sku", merchant, token, retry_at).await
    }

    /// Ends `token`'s claims in `table` (a constant), setting `also` (a constant assignment).
    async fn release(
        &self,
        table: &str,
        also: &str,
        merchant: MerchantId,
        token: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE {table} SET claim_token = NULL, claimed_until = $3, {also} WHERE merchant_id = $1 AND claim_token = $2"
        );
        let mut tx = self.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(token)
            .bind(retry_at.map(micros))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Frees every claim: at the start of a process that is the store's only user (SQLite),
    /// whose earlier run's claims died with it.
    pub async fn release_all_claims(&self) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE reprice_intents SET claim_token = NULL, claimed_until = NULL WHERE claim_token IS NOT NULL",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE reprice_sweeps SET claim_token = NULL, claimed_until = NULL WHERE claim_token IS NOT NULL")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queued work, for metrics.
    pub async fn backlog(&self) -> Result<Backlog, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT merchant_id, COUNT(*) FROM reprice_intents GROUP BY merchant_id")
                .fetch_all(&self.pool)
                .await?;
        let mut intents = Vec::with_capacity(rows.len());
        for (id, count) in rows {
            let merchant = MerchantId::parse(&id).map_err(|e| StoreError::Corrupt(format!("queued merchant: {e}")))?;
            intents.push((merchant, count));
        }
        let (sweeps, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM reprice_sweeps),
                    (SELECT MIN(at) FROM (SELECT MIN(requested_at) AS at FROM reprice_intents
                                          UNION ALL SELECT MIN(requested_at) FROM reprice_sweeps) AS both_kinds)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Backlog { intents, sweeps, oldest: oldest.map(super::from_micros) })
    }

    /// Whether any work is stored, claimed or not (tests and shutdown wait on it).
    pub async fn has_work(&self) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM reprice_intents UNION ALL SELECT 1 FROM reprice_sweeps LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }
}
