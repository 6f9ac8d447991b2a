//! Merchants' webhook endpoints and their delivery log, as stored (`0010_outbox.sql`). Each
//! webhook is an outbox channel of its own (`webhook:<id>`, see [`super::outbox`]), whose cursor
//! starts at the merchant's chain head when the webhook is made. Recording an attempt updates
//! the webhook's run of failures, its next attempt (backoff) and, past the limit, disables it,
//! in one transaction with the attempt's log entry.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, StoreError, from_micros};
use crate::domain::{MerchantId, WebhookId};

/// A webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: WebhookId,
    pub merchant: MerchantId,
    pub url: String,
    /// Signs the deliveries (HMAC-SHA256); shown to the merchant once.
    pub secret: String,
    pub created_at: DateTime<Utc>,
    /// Deliveries that failed in a row.
    pub failures: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
}

impl Webhook {
    /// Its outbox channel.
    pub fn channel(&self) -> String {
        channel(self.id)
    }
}

pub fn channel(id: WebhookId) -> String {
    format!("webhook:{id}")
}

/// One attempt to deliver a batch of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub attempt_at: DateTime<Utc>,
    /// The attempt's number for this batch (1 for the first).
    pub attempt: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub events: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub delivered: bool,
}

/// Deliveries kept per webhook.
const KEPT_DELIVERIES: i64 = 1_000;

const COLUMNS: &str =
    "id, merchant_id, url, secret, created_at, failures, next_attempt_at, disabled_at, disabled_reason";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn webhook(row: &sqlx::any::AnyRow) -> Result<Webhook, StoreError> {
    let id: String = row.try_get("id")?;
    let merchant: String = row.try_get("merchant_id")?;
    Ok(Webhook {
        id: id.parse().map_err(|e| corrupt("webhook id", e))?,
        merchant: merchant.parse().map_err(|e| corrupt("webhook merchant", e))?,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        created_at: from_micros(row.try_get("created_at")?),
        failures: row.try_get("failures")?,
        next_attempt_at: from_micros(row.try_get("next_attempt_at")?),
        disabled_at: row.try_get::<Option<i64>, _>("disabled_at")?.map(from_micros),
        disabled_reason: row.try_get("disabled_reason")?,
    })
}

impl Store {
    /// Stores a new webhook, its cursor at the merchant's chain head (it delivers the changes
    /// made from now on).
    pub async fn insert_webhook(&self, hook: &Webhook) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO webhooks (id, merchant_id, url, secret, created_at, failures, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, 0, 0)",
        )
        .bind(hook.id.to_string())
        .bind(hook.merchant.to_string())
        .bind(&hook.url)
        .bind(&hook.secret)
        .bind(hook.created_at.timestamp_micros())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO outbox_cursors (merchant_id, channel, published_through)
             VALUES ($1, $2, COALESCE((SELECT seq FROM chain_heads WHERE merchant_id = $1), 0))",
        )
        .bind(hook.merchant.to_string())
        .bind(hook.channel())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The merchant's webhooks, oldest first.
    pub async fn webhooks(&self, merchant: MerchantId) -> Result<Vec<Webhook>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE merchant_id = $1 ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(merchant.to_string()).fetch_all(self.pool()).await?;
        rows.iter().map(webhook).collect()
    }

    pub async fn webhook(&self, merchant: MerchantId, id: WebhookId) -> Result<Option<Webhook>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE merchant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(webhook).transpose()
    }

    /// Every enabled webhook whose next attempt is due, of all merchants.
    pub async fn due_webhooks(&self, at: DateTime<Utc>) -> Result<Vec<Webhook>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhooks WHERE disabled_at IS NULL AND next_attempt_at <= $1 ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at.timestamp_micros()).fetch_all(self.pool()).await?;
        rows.iter().map(webhook).collect()
    }

    /// Deletes a webhook with its log and cursor; false when there was none.
    pub async fn delete_webhook(&self, merchant: MerchantId, id: WebhookId) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM webhooks WHERE merchant_id = $1 AND id = $2")
            .bind(merchant.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM outbox_cursors WHERE merchant_id = $1 AND channel = $2")
            .bind(merchant.to_string())
            .bind(channel(id))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhooks WHERE merchant_id = $1 AND id = $2")
            .bind(merchant.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Enables a webhook again (its run of failures forgotten); it resumes where it stopped.
    pub async fn enable_webhook(&self, merchant: MerchantId, id: WebhookId) -> Result<Option<Webhook>, StoreError> {
        sqlx::query(
            "UPDATE webhooks SET disabled_at = NULL, disabled_reason = NULL, failures = 0, next_attempt_at = 0
             WHERE merchant_id = $1 AND id = $2",
        )
        .bind(merchant.to_string())
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        self.webhook(merchant, id).await
    }

    /// Logs an attempt and updates the webhook: a delivery ends its run of failures; a failure
    /// lengthens it, sets the next attempt to `retry_at`, and, when the run reaches
    /// `max_failures`, disables the webhook with the reason. Returns the webhook as it is now.
    pub async fn record_delivery(
        &self,
        hook: &Webhook,
        delivery: &Delivery,
        retry_at: DateTime<Utc>,
        max_failures: i64,
    ) -> Result<Webhook, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, attempt_at, attempt, first_seq, last_seq, events,
                                             status_code, error, duration_ms, delivered)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(hook.id.to_string())
        .bind(delivery.attempt_at.timestamp_micros())
        .bind(delivery.attempt)
        .bind(delivery.first_seq)
        .bind(delivery.last_seq)
        .bind(delivery.events)
        .bind(delivery.status_code)
        .bind(delivery.error.as_deref())
        .bind(delivery.duration_ms)
        .bind(delivery.delivered)
        .execute(&mut *tx)
        .await?;
        if delivery.delivered {
            sqlx::query("UPDATE webhooks SET failures = 0, next_attempt_at = 0 WHERE id = $1")
                .bind(hook.id.to_string())
                .execute(&mut *tx)
                .await?;
        } else {
            let failures = hook.failures + 1;
            let reason = (failures >= max_failures).then(|| {
                format!(
                    "{failures} deliveries failed in a row; the last: {}",
                    delivery.error.as_deref().unwrap_or("no answer")
                )
            });
            sqlx::query(
                "UPDATE webhooks SET failures = $2, next_attempt_at = $3,
                        disabled_at = $4, disabled_reason = $5
                 WHERE id = $1",
            )
            .bind(hook.id.to_string())
            .bind(failures)
            .bind(retry_at.timestamp_micros())
            .bind(reason.as_ref().map(|_| delivery.attempt_at.timestamp_micros()))
            .bind(reason.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        // The log keeps the newest attempts.
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND attempt_at < COALESCE(
                 (SELECT attempt_at FROM webhook_deliveries WHERE webhook_id = $1
                  ORDER BY attempt_at DESC LIMIT 1 OFFSET $2), -1)",
        )
        .bind(hook.id.to_string())
        .bind(KEPT_DELIVERIES - 1)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.webhook(hook.merchant, hook.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("webhook {} vanished while recording a delivery", hook.id)))
    }

    /// The webhook's newest attempts, newest first.
    pub async fn deliveries(&self, id: WebhookId, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt_at, attempt, first_seq, last_seq, events, status_code, error, duration_ms,
                    CASE WHEN delivered THEN 1 ELSE 0 END AS delivered
             FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY attempt_at DESC LIMIT $2",
        )
        .bind(id.to_string())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Delivery {
                    attempt_at: from_micros(row.try_get("attempt_at")?),
                    attempt: row.try_get("attempt")?,
                    first_seq: row.try_get("first_seq")?,
                    last_seq: row.try_get("last_seq")?,
                    events: row.try_get("events")?,
                    status_code: row.try_get("status_code")?,
                    error: row.try_get("error")?,
                    duration_ms: row.try_get("duration_ms")?,
                    delivered: row.try_get::<i64, _>("delivered")? == 1,
                })
            })
            .collect()
    }
}
