//! The safety net as stored (`0013_safety.sql`): a merchant's policy, freeze and breaker state,
//! the breaker's per-minute counts, and proposals. Policies and counts travel as the JSON the
//! write side makes of them (their types and rules live above the store); writes that must land
//! with the decisions they concern take the writer's transaction.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::bulk::{Cell, Kind, Rows};
use super::products::{Bound, attribute_conditions};
use super::{Store, StoreError, Tx, from_micros};
use crate::domain::safety::{HoldReason, ProposalState};
use crate::domain::{MerchantId, Sku, Trigger};

/// A merchant's stored safety settings and state (`None` fields: the defaults, not frozen, not
/// tripped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafetyRow {
    /// JSON of the approval policy.
    pub approval: Option<String>,
    /// JSON of the breaker limits.
    pub breaker: Option<String>,
    pub frozen: Option<Frozen>,
    /// When the breaker tripped, and the JSON of the limit it crossed.
    pub tripped: Option<(DateTime<Utc>, String)>,
}

/// Who froze automated changes, when, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen {
    pub at: DateTime<Utc>,
    /// The key's id.
    pub by: String,
    pub reason: String,
}

const SAFETY_COLUMNS: &str = "approval, breaker, frozen_at, frozen_by, frozen_reason, tripped_at, tripped_by";

fn safety_row(row: &sqlx::any::AnyRow) -> Result<SafetyRow, StoreError> {
    let frozen_at: Option<i64> = row.try_get("frozen_at")?;
    let tripped_at: Option<i64> = row.try_get("tripped_at")?;
    let tripped_by: Option<String> = row.try_get("tripped_by")?;
    Ok(SafetyRow {
        approval: row.try_get("approval")?,
        breaker: row.try_get("breaker")?,
        frozen: match frozen_at {
            Some(at) => Some(Frozen {
                at: from_micros(at),
                by: row.try_get::<Option<String>, _>("frozen_by")?.unwrap_or_default(),
                reason: row.try_get::<Option<String>, _>("frozen_reason")?.unwrap_or_default(),
            }),
            None => None,
        },
        tripped: tripped_at.map(|at| (from_micros(at), tripped_by.unwrap_or_default())),
    })
}

/// The merchant's safety row, in the writer's transaction.
pub async fn row(tx: &mut Tx, merchant: MerchantId) -> Result<SafetyRow, StoreError> {
    let sql = format!("SELECT {SAFETY_COLUMNS} FROM merchant_safety WHERE merchant_id = $1");
    let found = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(merchant.to_string()).fetch_optional(&mut **tx).await?;
    found.as_ref().map_or(Ok(SafetyRow::default()), safety_row)
}

/// Replaces the approval policy and breaker limits (JSON).
pub async fn set_policies(tx: &mut Tx, merchant: MerchantId, approval: &str, breaker: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO merchant_safety (merchant_id, approval, breaker) VALUES ($1, $2, $3)
         ON CONFLICT (merchant_id) DO UPDATE SET approval = excluded.approval, breaker = excluded.breaker",
    )
    .bind(merchant.to_string())
    .bind(approval)
    .bind(breaker)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Freezes automated changes (`Some`), or lifts the freeze.
pub async fn set_frozen(tx: &mut Tx, merchant: MerchantId, frozen: Option<&Frozen>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO merchant_safety (merchant_id, frozen_at, frozen_by, frozen_reason) VALUES ($1, $2, $3, $4)
         ON CONFLICT (merchant_id) DO UPDATE SET
             frozen_at = excluded.frozen_at, frozen_by = excluded.frozen_by, frozen_reason = excluded.frozen_reason",
    )
    .bind(merchant.to_string())
    .bind(frozen.map(|f| f.at.timestamp_micros()))
    .bind(frozen.map(|f| f.by.clone()))
    .bind(frozen.map(|f| f.reason.clone()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records the breaker's trip (`Some`: when, and the JSON of the limit crossed), or clears it
/// together with the window's counts (a resumed breaker starts a new window).
pub async fn set_tripped(
    tx: &mut Tx,
    merchant: MerchantId,
    tripped: Option<(DateTime<Utc>, &str)>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO merchant_safety (merchant_id, tripped_at, tripped_by) VALUES ($1, $2, $3)
         ON CONFLICT (merchant_id) DO UPDATE SET tripped_at = excluded.tripped_at, tripped_by = excluded.tripped_by",
    )
    .bind(merchant.to_string())
    .bind(tripped.map(|(at, _)| at.timestamp_micros()))
    .bind(tripped.map(|(_, by)| by.to_owned()))
    .execute(&mut **tx)
    .await?;
    if tripped.is_none() {
        sqlx::query("DELETE FROM breaker_minutes WHERE merchant_id = $1")
            .bind(merchant.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The breaker's counts (JSON) for the minutes from `since` on.
pub async fn minutes(tx: &mut Tx, merchant: MerchantId, since: i64) -> Result<Vec<(i64, String)>, StoreError> {
    Ok(sqlx::query_as("SELECT minute, counts FROM breaker_minutes WHERE merchant_id = $1 AND minute >= $2")
        .bind(merchant.to_string())
        .bind(since)
        .fetch_all(&mut **tx)
        .await?)
}

/// Replaces a minute's counts (JSON), and forgets the minutes before `keep_since`.
pub async fn put_minute(
    tx: &mut Tx,
    merchant: MerchantId,
    minute: i64,
    counts: &str,
    keep_since: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO breaker_minutes (merchant_id, minute, counts) VALUES ($1, $2, $3)
         ON CONFLICT (merchant_id, minute) DO UPDATE SET counts = excluded.counts",
    )
    .bind(merchant.to_string())
    .bind(minute)
    .bind(counts)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM breaker_minutes WHERE merchant_id = $1 AND minute < $2")
        .bind(merchant.to_string())
        .bind(keep_since)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A held change that waits for a person, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The held decision's sequence number.
    pub seq: i64,
    pub sku: Sku,
    /// `Expired` for a pending proposal past its time.
    pub state: ProposalState,
    pub reason: HoldReason,
    pub trigger: Trigger,
    pub currency: String,
    /// The price in force when it was proposed.
    pub price_minor: i64,
    pub proposed_price_minor: i64,
    pub rule_version: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The decision that approved, rejected or superseded it.
    pub resolved_seq: Option<i64>,
    /// The key that approved or rejected it.
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A new proposal, written with its held decision.
pub struct NewProposal<'a> {
    pub seq: i64,
    pub sku: &'a Sku,
    pub reason: HoldReason,
    pub trigger: Trigger,
    pub currency: &'a str,
    pub price_minor: i64,
    pub proposed_price_minor: i64,
    pub rule_version: i64,
    pub expires_at: DateTime<Utc>,
}

/// Supersedes the pending proposals of these SKUs (each with the decision that takes its
/// place), then writes the new ones; returns how many were superseded.
pub async fn propose(
    tx: &mut Tx,
    merchant: MerchantId,
    superseding: &[(&Sku, i64)],
    proposals: &[NewProposal<'_>],
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut superseded = 0;
    if !superseding.is_empty() && has_pending(tx, merchant).await? {
        let mut rows = Rows::new(&[("sku", Kind::Text), ("seq", Kind::BigInt)]);
        for (sku, seq) in superseding {
            rows.push([Cell::Text(sku.as_str()), Cell::BigInt(*seq)]);
        }
        for chunk in rows.chunks(tx.backend()) {
            let sql = format!(
                // Materialized: SQLite would otherwise parse the rows' JSON again for each
                // pending proposal it joins (see `prices::move_prices`).
                "WITH u AS MATERIALIZED (SELECT u.sku, u.seq FROM {})
                 UPDATE proposals SET state = 'superseded', resolved_seq = u.seq, resolved_at = $2
                 FROM u WHERE proposals.merchant_id = $1 AND proposals.sku = u.sku AND proposals.state = 'pending'",
                chunk.source(3)
            );
            let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(merchant.to_string()).bind(at.timestamp_micros());
            superseded += chunk.bind(query).execute(&mut **tx).await?.rows_affected();
        }
    }
    if proposals.is_empty() {
        return Ok(superseded);
    }
    const COLUMNS: &[(&str, Kind)] = &[
        ("seq", Kind::BigInt),
        ("sku", Kind::Text),
        ("reason", Kind::Text),
        ("trigger_kind", Kind::Text),
        ("currency", Kind::Text),
        ("price_minor", Kind::BigInt),
        ("proposed_price_minor", Kind::BigInt),
        ("rule_version", Kind::BigInt),
        ("expires_at", Kind::BigInt),
    ];
    let mut rows = Rows::new(COLUMNS);
    for p in proposals {
        rows.push([
            Cell::BigInt(p.seq),
            Cell::Text(p.sku.as_str()),
            Cell::Text(p.reason.as_str()),
            Cell::Text(p.trigger.as_str()),
            Cell::Text(p.currency),
            Cell::BigInt(p.price_minor),
            Cell::BigInt(p.proposed_price_minor),
            Cell::BigInt(p.rule_version),
            Cell::BigInt(p.expires_at.timestamp_micros()),
        ]);
    }
    for chunk in rows.chunks(tx.backend()) {
        let sql = format!(
            "INSERT INTO proposals (merchant_id, seq, sku, state, reason, trigger_kind, currency, price_minor,
                                    proposed_price_minor, rule_version, created_at, expires_at)
             SELECT $1, u.seq, u.sku, 'pending', u.reason, u.trigger_kind, u.currency, u.price_minor,
                    u.proposed_price_minor, u.rule_version, $2, u.expires_at
             FROM {}",
            chunk.source(3)
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(merchant.to_string()).bind(at.timestamp_micros());
        chunk.bind(query).execute(&mut **tx).await?;
    }
    Ok(superseded)
}

/// Whether the merchant has any pending proposal (most batches of most merchants find none,
/// and skip the supersede).
async fn has_pending(tx: &mut Tx, merchant: MerchantId) -> Result<bool, StoreError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM proposals WHERE merchant_id = $1 AND state = 'pending' LIMIT 1")
            .bind(merchant.to_string())
            .fetch_optional(&mut **tx)
            .await?;
    Ok(found.is_some())
}

/// Supersedes the pending proposal of a deleted product.
pub async fn forget(tx: &mut Tx, merchant: MerchantId, sku: &Sku, at: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE proposals SET state = 'superseded', resolved_at = $3
         WHERE merchant_id = $1 AND sku = $2 AND state = 'pending'",
    )
    .bind(merchant.to_string())
    .bind(sku.as_str())
    .bind(at.timestamp_micros())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks a pending proposal approved or rejected by `seq`'s decision; false when it was no
/// longer pending.
pub async fn resolve(
    tx: &mut Tx,
    merchant: MerchantId,
    proposal: i64,
    state: ProposalState,
    resolved_seq: i64,
    by: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE proposals SET state = $3, resolved_seq = $4, resolved_by = $5, resolved_at = $6
         WHERE merchant_id = $1 AND seq = $2 AND state = 'pending'",
    )
    .bind(merchant.to_string())
    .bind(proposal)
    .bind(state.as_str())
    .bind(resolved_seq)
    .bind(by)
    .bind(at.timestamp_micros())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Which proposals a list or a decision by filter selects.
#[derive(Debug, Clone, Default)]
pub struct ProposalFilter {
    /// `None`: every state.
    pub state: Option<ProposalState>,
    pub sku: Option<Sku>,
    pub reason: Option<HoldReason>,
    pub trigger: Option<Trigger>,
    pub rule_version: Option<i64>,
    /// Proposed from this instant, inclusive, up to `to`, exclusive.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The product's attributes with exactly these values.
    pub attributes: Vec<(String, serde_json::Value)>,
}

const PROPOSAL_COLUMNS: &str = "pr.seq, pr.sku, pr.state, pr.reason, pr.trigger_kind, pr.currency, pr.price_minor, \
     pr.proposed_price_minor, pr.rule_version, pr.created_at, pr.expires_at, pr.resolved_seq, pr.resolved_by, \
     pr.resolved_at";

fn proposal(row: &sqlx::any::AnyRow, now: DateTime<Utc>) -> Result<Proposal, StoreError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("proposal {what}: {e}"));
    let sku: String = row.try_get("sku")?;
    let state: String = row.try_get("state")?;
    let reason: String = row.try_get("reason")?;
    let trigger: String = row.try_get("trigger_kind")?;
    let expires_at = from_micros(row.try_get("expires_at")?);
    let mut state: ProposalState = state.parse().map_err(|e| corrupt("state", &e))?;
    if state == ProposalState::Pending && expires_at <= now {
        state = ProposalState::Expired;
    }
    Ok(Proposal {
        seq: row.try_get("seq")?,
        sku: Sku::parse(&sku).map_err(|e| corrupt("sku", &e))?,
        state,
        reason: reason.parse().map_err(|e| corrupt("reason", &e))?,
        trigger: trigger.parse().map_err(|e| corrupt("trigger", &e))?,
        currency: row.try_get("currency")?,
        price_minor: row.try_get("price_minor")?,
        proposed_price_minor: row.try_get("proposed_price_minor")?,
        rule_version: row.try_get("rule_version")?,
        created_at: from_micros(row.try_get("created_at")?),
        expires_at,
        resolved_seq: row.try_get("resolved_seq")?,
        resolved_by: row.try_get("resolved_by")?,
        resolved_at: row.try_get::<Option<i64>, _>("resolved_at")?.map(from_micros),
    })
}

/// The proposals that `filter` selects, newest first, before `before` (a sequence number), at
/// most `limit`; read in the writer's transaction when one is given.
pub async fn matching(
    tx: &mut Tx,
    merchant: MerchantId,
    filter: &ProposalFilter,
    before: Option<i64>,
    limit: u32,
    now: DateTime<Utc>,
) -> Result<Vec<Proposal>, StoreError> {
    let backend = tx.backend();
    // `$1` merchant, `$2` cursor, `$3` limit, `$4` now.
    let mut binds: Vec<Bound> = Vec::new();
    let mut next = |value: Bound| {
        binds.push(value);
        format!("${}", 4 + binds.len())
    };
    let mut conditions = String::new();
    match filter.state {
        Some(ProposalState::Pending) => conditions.push_str(" AND pr.state = 'pending' AND pr.expires_at > $4"),
        Some(ProposalState::Expired) => conditions.push_str(" AND pr.state = 'pending' AND pr.expires_at <= $4"),
        Some(state) => {
            conditions.push_str(&format!(" AND pr.state = {}", next(Bound::Text(state.as_str().to_owned()))))
        }
        None => {}
    }
    if let Some(sku) = &filter.sku {
        conditions.push_str(&format!(" AND pr.sku = {}", next(Bound::Text(sku.to_string()))));
    }
    if let Some(reason) = filter.reason {
        conditions.push_str(&format!(" AND pr.reason = {}", next(Bound::Text(reason.as_str().to_owned()))));
    }
    if let Some(trigger) = filter.trigger {
        conditions.push_str(&format!(" AND pr.trigger_kind = {}", next(Bound::Text(trigger.as_str().to_owned()))));
    }
    if let Some(version) = filter.rule_version {
        conditions.push_str(&format!(" AND pr.rule_version = {}", next(Bound::Int(version))));
    }
    if let Some(from) = filter.from {
        conditions.push_str(&format!(" AND pr.created_at >= {}", next(Bound::Int(from.timestamp_micros()))));
    }
    if let Some(to) = filter.to {
        conditions.push_str(&format!(" AND pr.created_at < {}", next(Bound::Int(to.timestamp_micros()))));
    }
    let join = if filter.attributes.is_empty() {
        ""
    } else {
        conditions.push_str(&attribute_conditions(backend, &filter.attributes, &mut next));
        " JOIN products p ON p.merchant_id = pr.merchant_id AND p.sku = pr.sku"
    };
    let sql = format!(
        "SELECT {PROPOSAL_COLUMNS} FROM proposals pr{join}
         WHERE pr.merchant_id = $1 AND pr.seq < $2{conditions} ORDER BY pr.seq DESC LIMIT $3"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.to_string())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .bind(now.timestamp_micros());
    for bound in binds {
        query = match bound {
            Bound::Int(n) => query.bind(n),
            Bound::Text(text) => query.bind(text),
        };
    }
    query.fetch_all(&mut **tx).await?.iter().map(|row| proposal(row, now)).collect()
}

impl Store {
    /// The merchant's safety row.
    pub async fn safety(&self, merchant: MerchantId) -> Result<SafetyRow, StoreError> {
        let mut tx = self.begin().await?;
        let found = row(&mut tx, merchant).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// The proposals that `filter` selects, newest first (see [`matching`]).
    pub async fn proposals(
        &self,
        merchant: MerchantId,
        filter: &ProposalFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Proposal>, StoreError> {
        let mut tx = self.begin().await?;
        let found = matching(&mut tx, merchant, filter, before, limit, super::now()).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// One proposal by its held decision's sequence number.
    pub async fn proposal(&self, merchant: MerchantId, seq: i64) -> Result<Option<Proposal>, StoreError> {
        let sql = format!("SELECT {PROPOSAL_COLUMNS} FROM proposals pr WHERE pr.merchant_id = $1 AND pr.seq = $2");
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(seq)
            .fetch_optional(self.pool())
            .await?;
        found.as_ref().map(|row| proposal(row, super::now())).transpose()
    }
}
