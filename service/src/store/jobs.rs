//! Catalogue jobs as stored (`0012_jobs.sql`): the job, its body in pieces, its rejected lines,
//! and for a replace import the SKUs it holds and the products it deleted. What a job does is
//! [`crate::catalogue`]'s business; the writes that must land with a piece's products take the
//! writer's transaction.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::bulk::{Cell, Kind, Rows};
use super::{Store, StoreError, Tx, from_micros, now};
use crate::domain::{JobId, MerchantId, Sku};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Its body is still arriving.
    Receiving,
    /// Waiting for a worker.
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Receiving => "receiving",
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "receiving" => JobState::Receiving,
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "completed" => JobState::Completed,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            other => return Err(StoreError::Corrupt(format!("job state `{other}`"))),
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, JobState::Completed | JobState::Failed | JobState::Cancelled)
    }
}

/// An import's body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobFormat {
    Csv,
    Ndjson,
}

impl JobFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            JobFormat::Csv => "csv",
            JobFormat::Ndjson => "ndjson",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "csv" => Ok(JobFormat::Csv),
            "ndjson" => Ok(JobFormat::Ndjson),
            other => Err(StoreError::Corrupt(format!("job format `{other}`"))),
        }
    }
}

/// What an import does to the products its file does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Leaves them as they are.
    #[default]
    Upsert,
    /// Deletes them (only when no line of the file was rejected).
    Replace,
}

impl ImportMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportMode::Upsert => "upsert",
            ImportMode::Replace => "replace",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "upsert" => Ok(ImportMode::Upsert),
            "replace" => Ok(ImportMode::Replace),
            other => Err(StoreError::Corrupt(format!("import mode `{other}`"))),
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub merchant: MerchantId,
    pub format: JobFormat,
    pub mode: ImportMode,
    pub atomic: bool,
    pub state: JobState,
    pub header: Option<String>,
    pub pieces: i64,
    pub pieces_done: i64,
    pub bytes_total: i64,
    pub bytes_done: i64,
    pub lines_total: i64,
    pub lines_read: i64,
    pub applied: i64,
    pub changed: i64,
    pub rejected: i64,
    pub deleted: i64,
    pub note: Option<String>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A rejected line: its number (from 1) and its error in the API's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub line: i64,
    pub code: String,
    pub message: String,
    /// The error shape's `details`, as JSON text.
    pub details: String,
}

/// A piece of a job's body: whole records, starting at physical line `first_line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub first_line: i64,
    pub body: Vec<u8>,
}

/// What applying one piece did, added to the job's counts with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PieceCounts {
    /// Pieces applied (more than one for an atomic import, written whole).
    pub pieces: i64,
    pub lines: i64,
    pub applied: i64,
    pub changed: i64,
    pub rejected: i64,
    pub bytes: i64,
}

/// Rejected lines kept per job.
pub const KEPT_REJECTIONS: i64 = 1_000;

const COLUMNS: &str = "id, merchant_id, format, mode, CASE WHEN atomic THEN 1 ELSE 0 END AS atomic, state, header, \
     pieces, pieces_done, bytes_total, bytes_done, lines_total, lines_read, applied, changed, rejected, deleted, \
     note, error, CASE WHEN cancel_requested THEN 1 ELSE 0 END AS cancel_requested, created_at, started_at, \
     finished_at";

fn job_from_row(row: sqlx::any::AnyRow) -> Result<Job, StoreError> {
    let corrupt = |what: &str, e: crate::domain::IdError| StoreError::Corrupt(format!("job {what}: {e}"));
    let id: String = row.try_get("id")?;
    let merchant: String = row.try_get("merchant_id")?;
    Ok(Job {
        id: JobId::parse(&id).map_err(|e| corrupt("id", e))?,
        merchant: MerchantId::parse(&merchant).map_err(|e| corrupt("merchant", e))?,
        format: JobFormat::parse(&row.try_get::<String, _>("format")?)?,
        mode: ImportMode::parse(&row.try_get::<String, _>("mode")?)?,
        atomic: row.try_get::<i64, _>("atomic")? != 0,
        state: JobState::parse(&row.try_get::<String, _>("state")?)?,
        header: row.try_get("header")?,
        pieces: row.try_get("pieces")?,
        pieces_done: row.try_get("pieces_done")?,
        bytes_total: row.try_get("bytes_total")?,
        bytes_done: row.try_get("bytes_done")?,
        lines_total: row.try_get("lines_total")?,
        lines_read: row.try_get("lines_read")?,
        applied: row.try_get("applied")?,
        changed: row.try_get("changed")?,
        rejected: row.try_get("rejected")?,
        deleted: row.try_get("deleted")?,
        note: row.try_get("note")?,
        error: row.try_get("error")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        created_at: from_micros(row.try_get("created_at")?),
        started_at: row.try_get::<Option<i64>, _>("started_at")?.map(from_micros),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(from_micros),
    })
}

/// A new import job, receiving its body (leased to `owner` while it does).
pub struct NewJob<'a> {
    pub id: JobId,
    pub merchant: MerchantId,
    pub format: JobFormat,
    pub mode: ImportMode,
    pub atomic: bool,
    pub header: Option<&'a str>,
    pub owner: &'a str,
    pub lease_until: DateTime<Utc>,
}

impl Store {
    pub async fn create_job(&self, job: &NewJob<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO jobs (id, merchant_id, kind, format, mode, atomic, state, header, created_at,
                               lease_owner, lease_until)
             VALUES ($1, $2, 'import', $3, $4, $5, 'receiving', $6, $7, $8, $9)",
        )
        .bind(job.id.to_string())
        .bind(job.merchant.to_string())
        .bind(job.format.as_str())
        .bind(job.mode.as_str())
        .bind(job.atomic)
        .bind(job.header)
        .bind(now().timestamp_micros())
        .bind(job.owner)
        .bind(job.lease_until.timestamp_micros())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores the next piece of a receiving job's body (`lines`: the records it holds) and
    /// extends the upload's lease.
    pub async fn add_piece(
        &self,
        job: JobId,
        n: i64,
        first_line: i64,
        body: &[u8],
        lines: i64,
        lease_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO job_pieces (job_id, n, first_line, body) VALUES ($1, $2, $3, $4)")
            .bind(job.to_string())
            .bind(n)
            .bind(first_line)
            .bind(body.to_vec())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE jobs SET pieces = pieces + 1, bytes_total = bytes_total + $2, lines_total = lines_total + $3,
                             lease_until = $4
             WHERE id = $1",
        )
        .bind(job.to_string())
        .bind(body.len() as i64)
        .bind(lines)
        .bind(lease_until.timestamp_micros())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The whole body arrived (a CSV body's header with it): the job waits for a worker.
    pub async fn queue_job(&self, job: JobId, header: Option<&str>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET state = 'queued', header = $2, lease_owner = NULL, lease_until = 0
             WHERE id = $1 AND state = 'receiving'",
        )
        .bind(job.to_string())
        .bind(header)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An upload refused or broken off: the job fails with the reason, and its pieces go.
    pub async fn fail_upload(&self, job: JobId, reason: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        finish(&mut tx, &job.to_string(), JobState::Failed, None, Some(reason)).await?;
        tx.commit().await
    }

    /// Takes the oldest job that is waiting, or whose worker's lease ran out (a worker that
    /// died), for `owner` until `lease_until`; at most one job of a merchant runs at a time.
    /// A receiving job whose upload's lease ran out is failed first (its upload never ended).
    pub async fn claim_job(&self, owner: &str, lease_until: DateTime<Utc>) -> Result<Option<Job>, StoreError> {
        let at = now().timestamp_micros();
        let abandoned: Vec<String> =
            sqlx::query_scalar("SELECT id FROM jobs WHERE state = 'receiving' AND lease_until < $1")
                .bind(at)
                .fetch_all(&self.pool)
                .await?;
        for id in abandoned {
            let mut tx = self.begin().await?;
            finish(&mut tx, &id, JobState::Failed, None, Some("the upload did not finish")).await?;
            tx.commit().await?;
        }
        let candidates: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM jobs j WHERE state IN ('queued', 'running') AND lease_until < $1
               AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.merchant_id = j.merchant_id AND o.id <> j.id
                                 AND o.state = 'running' AND o.lease_until >= $1)
             ORDER BY created_at LIMIT 5",
        )
        .bind(at)
        .fetch_all(&self.pool)
        .await?;
        for id in candidates {
            let claimed = sqlx::query(
                "UPDATE jobs SET state = 'running', lease_owner = $2, lease_until = $3,
                                 started_at = COALESCE(started_at, $4)
                 WHERE id = $1 AND state IN ('queued', 'running') AND lease_until < $4",
            )
            .bind(&id)
            .bind(owner)
            .bind(lease_until.timestamp_micros())
            .bind(at)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if claimed == 1 {
                return self.job_by_id(&id).await;
            }
        }
        Ok(None)
    }

    async fn job_by_id(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?.map(job_from_row).transpose()
    }

    /// Extends a worker's lease; false when the job is no longer its own (or has ended).
    pub async fn renew_job_lease(&self, job: JobId, owner: &str, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let renewed =
            sqlx::query("UPDATE jobs SET lease_until = $3 WHERE id = $1 AND lease_owner = $2 AND state = 'running'")
                .bind(job.to_string())
                .bind(owner)
                .bind(until.timestamp_micros())
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(renewed == 1)
    }

    /// A merchant's job; another merchant's is `None`.
    pub async fn job(&self, merchant: MerchantId, id: JobId) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1 AND merchant_id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(merchant.to_string())
            .fetch_optional(&self.pool)
            .await?
            .map(job_from_row)
            .transpose()
    }

    /// A job as its worker sees it (cancellation asked for, state).
    pub async fn job_for_worker(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.job_by_id(&id.to_string()).await
    }

    /// A merchant's latest jobs, newest first.
    pub async fn jobs(&self, merchant: MerchantId, limit: u32) -> Result<Vec<Job>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM jobs WHERE merchant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(job_from_row)
            .collect()
    }

    /// Asks a job to stop: one that has not started ends at once (`cancelled`), a running one
    /// stops after its current piece. Returns the job as it now is.
    pub async fn cancel_job(&self, merchant: MerchantId, id: JobId) -> Result<Option<Job>, StoreError> {
        let mut tx = self.begin().await?;
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1 AND merchant_id = $2")
            .bind(id.to_string())
            .bind(merchant.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        match state.as_deref().map(JobState::parse).transpose()? {
            None => return Ok(None),
            Some(JobState::Queued) | Some(JobState::Receiving) => {
                finish(&mut tx, &id.to_string(), JobState::Cancelled, Some("cancelled before it started"), None)
                    .await?;
            }
            Some(JobState::Running) => {
                sqlx::query("UPDATE jobs SET cancel_requested = TRUE WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            Some(_) => {}
        }
        tx.commit().await?;
        self.job(merchant, id).await
    }

    /// Piece `n` of a job's body (`None`: there is no such piece, or the job has ended).
    pub async fn job_piece(&self, job: JobId, n: i64) -> Result<Option<Piece>, StoreError> {
        let row: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT first_line, body FROM job_pieces WHERE job_id = $1 AND n = $2")
                .bind(job.to_string())
                .bind(n)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(first_line, body)| Piece { first_line, body }))
    }

    /// A job's first rejected lines, in order.
    pub async fn job_rejections(&self, job: JobId) -> Result<Vec<Rejection>, StoreError> {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT line, code, message, details FROM job_rejections WHERE job_id = $1 ORDER BY line LIMIT $2",
        )
        .bind(job.to_string())
        .bind(KEPT_REJECTIONS)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(line, code, message, details)| Rejection { line, code, message, details }).collect())
    }

    /// The products a replace import deleted, after `after` in SKU order: NDJSON import lines.
    pub async fn job_deleted(&self, job: JobId, after: &str, limit: u32) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT sku, product FROM job_deleted WHERE job_id = $1 AND sku > $2 ORDER BY sku LIMIT $3")
            .bind(job.to_string())
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
    }
}

/// Adds an applied piece's counts and rejected lines (the first [`KEPT_REJECTIONS`] of the
/// job) to its job, in the transaction that wrote the piece's products.
pub async fn record_piece(
    tx: &mut Tx,
    job: JobId,
    counts: PieceCounts,
    rejections: &[Rejection],
) -> Result<(), StoreError> {
    let id = job.to_string();
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_rejections WHERE job_id = $1")
        .bind(&id)
        .fetch_one(&mut **tx)
        .await?;
    let room = usize::try_from((KEPT_REJECTIONS - kept).max(0)).unwrap_or(0);
    for r in rejections.iter().take(room) {
        sqlx::query(
            "INSERT INTO job_rejections (job_id, line, code, message, details) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (job_id, line) DO NOTHING",
        )
        .bind(&id)
        .bind(r.line)
        .bind(&r.code)
        .bind(&r.message)
        .bind(&r.details)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "UPDATE jobs SET pieces_done = pieces_done + $7, lines_read = lines_read + $2, applied = applied + $3,
                         changed = changed + $4, rejected = rejected + $5, bytes_done = bytes_done + $6
         WHERE id = $1",
    )
    .bind(&id)
    .bind(counts.lines)
    .bind(counts.applied)
    .bind(counts.changed)
    .bind(counts.rejected)
    .bind(counts.bytes)
    .bind(counts.pieces)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Remembers SKUs a replace import's file holds (accepted or not), in the piece's transaction.
pub async fn record_skus(tx: &mut Tx, job: JobId, skus: &[&str]) -> Result<(), StoreError> {
    let mut rows = Rows::new(&[("sku", Kind::Text)]);
    for sku in skus {
        rows.push([Cell::Text(sku)]);
    }
    for chunk in rows.chunks(tx.backend()) {
        let sql = format!(
            "INSERT INTO job_skus (job_id, sku) SELECT $1, u.sku FROM {} WHERE true ON CONFLICT DO NOTHING",
            chunk.source(2)
        );
        chunk.bind(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(job.to_string())).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Up to `limit` of the merchant's SKUs after `after` that a replace import's file does not
/// hold, in SKU order.
pub async fn absent_skus(
    tx: &mut Tx,
    merchant: MerchantId,
    job: JobId,
    after: &str,
    limit: u32,
) -> Result<Vec<Sku>, StoreError> {
    let skus: Vec<String> = sqlx::query_scalar(
        "SELECT p.sku FROM products p WHERE p.merchant_id = $1 AND p.sku > $3
           AND NOT EXISTS (SELECT 1 FROM job_skus s WHERE s.job_id = $2 AND s.sku = p.sku)
         ORDER BY p.sku LIMIT $4",
    )
    .bind(merchant.to_string())
    .bind(job.to_string())
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(&mut **tx)
    .await?;
    skus.into_iter().map(|s| Sku::parse(&s).map_err(|e| StoreError::Corrupt(format!("sku: {e}")))).collect()
}

/// Keeps a product a replace import deleted (as an NDJSON import line), in the transaction
/// that deleted it, and counts it.
pub async fn record_deleted(tx: &mut Tx, job: JobId, sku: &Sku, line: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO job_deleted (job_id, sku, product) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(job.to_string())
        .bind(sku.as_str())
        .bind(line)
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE jobs SET deleted = deleted + 1 WHERE id = $1").bind(job.to_string()).execute(&mut **tx).await?;
    Ok(())
}

/// Ends a job in `state`, with a note or an error; its body and SKU list go (the rejected
/// lines and the deleted products stay with it).
pub async fn finish(
    tx: &mut Tx,
    id: &str,
    state: JobState,
    note: Option<&str>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET state = $2, note = COALESCE($3, note), error = $4, finished_at = $5, lease_owner = NULL,
                         lease_until = 0
         WHERE id = $1",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(note)
    .bind(error)
    .bind(now().timestamp_micros())
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM job_pieces WHERE job_id = $1").bind(id).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM job_skus WHERE job_id = $1").bind(id).execute(&mut **tx).await?;
    Ok(())
}
