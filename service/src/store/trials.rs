//! Trials as stored (`0016_trials.sql`): shadows and backtests of a rule version, their
//! progress, and the comparisons they made (as JSON; [`crate::trials`] owns their shape).
//! Apart from the chain: nothing here moves a price or enters a hash.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::chain::MERCHANT_NUMBER;
use super::{Store, StoreError, from_micros, now};
use crate::domain::MerchantId;

/// Shadow (beside live evaluations) or backtest (over recorded decisions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrialKind {
    Shadow,
    Backtest,
}

impl TrialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialKind::Shadow => "shadow",
            TrialKind::Backtest => "backtest",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "shadow" => Ok(TrialKind::Shadow),
            "backtest" => Ok(TrialKind::Backtest),
            other => Err(StoreError::Corrupt(format!("trial kind `{other}`"))),
        }
    }
}

/// Where a trial is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    Running,
    /// A shadow stopped by the merchant (or by activating its version).
    Stopped,
    /// A backtest that went through its whole range.
    Completed,
    Cancelled,
    Failed,
}

impl TrialState {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Running => "running",
            TrialState::Stopped => "stopped",
            TrialState::Completed => "completed",
            TrialState::Cancelled => "cancelled",
            TrialState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "running" => TrialState::Running,
            "stopped" => TrialState::Stopped,
            "completed" => TrialState::Completed,
            "cancelled" => TrialState::Cancelled,
            "failed" => TrialState::Failed,
            other => return Err(StoreError::Corrupt(format!("trial state `{other}`"))),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub merchant: MerchantId,
    pub id: i64,
    pub kind: TrialKind,
    pub version: i64,
    pub state: TrialState,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// A backtest's range of decision times: from inclusive, to exclusive.
    pub range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// A backtest's progress: the last decision looked at.
    pub cursor_seq: i64,
    /// Decisions a backtest has to look at (a shadow: 0).
    pub total: i64,
    /// Comparisons made.
    pub done: i64,
    /// Live evaluations a shadow let pass, over its budget.
    pub skipped: i64,
    /// Why it failed, or what stopped it.
    pub reason: Option<String>,
}

const TRIAL_COLUMNS: &str = "merchant_id, id, kind, version, state, started_at, ended_at, range_from, range_to, \
                             cursor_seq, total, done, skipped, reason";

fn trial(row: &sqlx::any::AnyRow) -> Result<Trial, StoreError> {
    let merchant: String = row.try_get("merchant_id")?;
    let range = match (row.try_get::<Option<i64>, _>("range_from")?, row.try_get::<Option<i64>, _>("range_to")?) {
        (Some(from), Some(to)) => Some((from_micros(from), from_micros(to))),
        _ => None,
    };
    Ok(Trial {
        merchant: MerchantId::parse(&merchant).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        id: row.try_get("id")?,
        kind: TrialKind::parse(&row.try_get::<String, _>("kind")?)?,
        version: row.try_get("version")?,
        state: TrialState::parse(&row.try_get::<String, _>("state")?)?,
        started_at: from_micros(row.try_get("started_at")?),
        ended_at: row.try_get::<Option<i64>, _>("ended_at")?.map(from_micros),
        range,
        cursor_seq: row.try_get("cursor_seq")?,
        total: row.try_get("total")?,
        done: row.try_get("done")?,
        skipped: row.try_get("skipped")?,
        reason: row.try_get("reason")?,
    })
}

/// A new trial could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("trial {0} of this kind is already running; stop it first")]
    AlreadyRunning(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for StartError {
    fn from(e: sqlx::Error) -> Self {
        StartError::Store(e.into())
    }
}

impl Store {
    /// Starts a trial of `version` (one running trial of each kind per merchant); a backtest's
    /// `total` is the number of rule decisions in its range.
    pub async fn start_trial(
        &self,
        merchant: MerchantId,
        kind: TrialKind,
        version: i64,
        range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<Trial, StartError> {
        let merchant_id = merchant.to_string();
        let mut tx = self.begin().await?;
        // Taken first, so SQLite holds its write lock before reading (and two starts at once
        // on PostgreSQL wait for each other on the merchant's row).
        sqlx::query("UPDATE merchants SET id = id WHERE id = $1").bind(&merchant_id).execute(&mut *tx).await?;
        let running: Option<i64> =
            sqlx::query_scalar("SELECT id FROM rule_trials WHERE merchant_id = $1 AND kind = $2 AND state = 'running'")
                .bind(&merchant_id)
                .bind(kind.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(id) = running {
            return Err(StartError::AlreadyRunning(id));
        }
        let total: i64 = match range {
            Some((from, to)) => {
                let sql = format!(
                    "SELECT COUNT(*) FROM decisions WHERE merchant_number = {MERCHANT_NUMBER}
                       AND rule_version IS NOT NULL AND created_at >= $2 AND created_at < $3"
                );
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(&merchant_id)
                    .bind(from.timestamp_micros())
                    .bind(to.timestamp_micros())
                    .fetch_one(&mut *tx)
                    .await?
            }
            None => 0,
        };
        let sql = format!(
            "INSERT INTO rule_trials (merchant_id, id, kind, version, state, started_at, range_from, range_to, total)
             SELECT $1, COALESCE(MAX(id), 0) + 1, $2, $3, 'running', $4, $5, $6, $7
             FROM rule_trials WHERE merchant_id = $1
             RETURNING {TRIAL_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&merchant_id)
            .bind(kind.as_str())
            .bind(version)
            .bind(now().timestamp_micros())
            .bind(range.map(|(from, _)| from.timestamp_micros()))
            .bind(range.map(|(_, to)| to.timestamp_micros()))
            .bind(total)
            .fetch_one(&mut *tx)
            .await?;
        let started = trial(&row)?;
        tx.commit().await?;
        Ok(started)
    }

    pub async fn trial(&self, merchant: MerchantId, id: i64) -> Result<Option<Trial>, StoreError> {
        let sql = format!("SELECT {TRIAL_COLUMNS} FROM rule_trials WHERE merchant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(trial).transpose()
    }

    /// The merchant's trials of one kind, newest first.
    pub async fn trials(&self, merchant: MerchantId, kind: TrialKind) -> Result<Vec<Trial>, StoreError> {
        let sql = format!(
            "SELECT {TRIAL_COLUMNS} FROM rule_trials WHERE merchant_id = $1 AND kind = $2 ORDER BY id DESC LIMIT 100"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(kind.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(trial).collect()
    }

    /// Every running trial of a kind, of every merchant.
    pub async fn running_trials(&self, kind: TrialKind) -> Result<Vec<Trial>, StoreError> {
        let sql = format!(
            "SELECT {TRIAL_COLUMNS} FROM rule_trials WHERE state = 'running' AND kind = $1 ORDER BY merchant_id, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(kind.as_str()).fetch_all(&self.pool).await?;
        rows.iter().map(trial).collect()
    }

    /// Ends a running trial; false when it was not running.
    pub async fn end_trial(
        &self,
        merchant: MerchantId,
        id: i64,
        state: TrialState,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let ended = sqlx::query(
            "UPDATE rule_trials SET state = $3, ended_at = $4, reason = $5
             WHERE merchant_id = $1 AND id = $2 AND state = 'running'",
        )
        .bind(merchant.to_string())
        .bind(id)
        .bind(state.as_str())
        .bind(now().timestamp_micros())
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(ended.rows_affected() == 1)
    }

    /// Keeps comparisons `(seq, json)` of a running trial, moves its cursor to `cursor_seq`
    /// (when larger) and counts `skipped`, in one transaction. A comparison already kept (a
    /// resumed backtest's page) is kept once. False when the trial is no longer running.
    pub async fn add_comparisons(
        &self,
        merchant: MerchantId,
        id: i64,
        comparisons: &[(i64, String)],
        cursor_seq: i64,
        skipped: i64,
    ) -> Result<bool, StoreError> {
        let merchant_id = merchant.to_string();
        let mut tx = self.begin().await?;
        let running = sqlx::query(
            "UPDATE rule_trials SET skipped = skipped + $3, cursor_seq = CASE WHEN cursor_seq < $4 THEN $4 ELSE cursor_seq END
             WHERE merchant_id = $1 AND id = $2 AND state = 'running'",
        )
        .bind(&merchant_id)
        .bind(id)
        .bind(skipped)
        .bind(cursor_seq)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !running {
            return Ok(false);
        }
        let mut added = 0i64;
        for (seq, json) in comparisons {
            added += sqlx::query(
                "INSERT INTO trial_comparisons (merchant_id, trial_id, seq, comparison) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (merchant_id, trial_id, seq) DO NOTHING",
            )
            .bind(&merchant_id)
            .bind(id)
            .bind(seq)
            .bind(json)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64;
        }
        sqlx::query("UPDATE rule_trials SET done = done + $3 WHERE merchant_id = $1 AND id = $2")
            .bind(&merchant_id)
            .bind(id)
            .bind(added)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A page of a trial's comparisons (JSON) in sequence order, after `after_seq`.
    pub async fn comparisons(
        &self,
        merchant: MerchantId,
        id: i64,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT seq, comparison FROM trial_comparisons WHERE merchant_id = $1 AND trial_id = $2 AND seq > $3
             ORDER BY seq LIMIT $4",
        )
        .bind(merchant.to_string())
        .bind(id)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
}
