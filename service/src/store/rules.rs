//! Merchants' rules: immutable versions, their parameters, and the activation history.
//!
//! Versions number from 1 per merchant; the same bytes uploaded twice are one version.
//! Each activation records the activation it replaced, so a rollback returns to the version
//! that was active before, and repeated rollbacks keep walking back.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::rows::{ActivationRow, RuleCodeRow, RuleVersionRow, convert_all};
use super::{Store, StoreError, Tx, now};
use crate::domain::MerchantId;
use crate::domain::params::ParamsSchema;

/// The columns of a [`RuleVersion`], in [`RuleVersionRow`]'s order.
macro_rules! version_columns {
    () => {
        "version, sha256, size_bytes, compile_ms, params, created_at, params_updated_at, params_schema, stock"
    };
}

/// A rule version's metadata (its code is fetched separately, only when it is loaded).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleVersion {
    pub version: i64,
    /// Hex SHA-256 of the bytes as uploaded.
    pub sha256: String,
    pub size_bytes: i64,
    pub compile_ms: i64,
    /// Merchant parameters handed to the rule on every evaluation.
    pub params: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub params_updated_at: DateTime<Utc>,
    /// The parameters the rule declares (1.1.0); `None` takes an untyped object.
    pub params_schema: Option<ParamsSchema>,
    /// The stock policy this version was made from, if it was.
    pub stock: Option<String>,
}

pub struct NewRuleVersion<'a> {
    pub sha256: &'a str,
    pub wasm: &'a [u8],
    pub component: &'a [u8],
    pub artifact: &'a [u8],
    pub compile_ms: i64,
    pub params_schema: Option<&'a ParamsSchema>,
    pub stock: Option<&'a str>,
}

/// What the sandbox needs to load a version.
pub struct RuleCode {
    pub component: Vec<u8>,
    pub artifact: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    pub seq: i64,
    pub version: i64,
    /// `activate` or `rollback`.
    pub kind: String,
    pub previous_seq: Option<i64>,
    pub activated_at: DateTime<Utc>,
}

pub async fn set_params(
    tx: &mut Tx,
    merchant: MerchantId,
    version: i64,
    params: &Map<String, Value>,
) -> Result<Option<RuleVersion>, StoreError> {
    let params = serde_json::to_string(params).expect("parameters serialize");
    sqlx::query_as::<_, RuleVersionRow>(concat!(
        "UPDATE rule_versions SET params = $3, params_updated_at = $4
         WHERE merchant_id = $1 AND version = $2
         RETURNING ",
        version_columns!()
    ))
    .bind(merchant.to_string())
    .bind(version)
    .bind(params)
    .bind(now().timestamp_micros())
    .fetch_optional(&mut **tx)
    .await?
    .map(RuleVersion::try_from)
    .transpose()
}

pub async fn activate(tx: &mut Tx, merchant: MerchantId, version: i64) -> Result<Activation, StoreError> {
    let merchant_id = merchant.to_string();
    // Written first, so SQLite takes its write lock before reading anything.
    let inserted = sqlx::query_as::<_, ActivationRow>(
        "INSERT INTO rule_activations (merchant_id, seq, version, kind, previous_seq, activated_at)
         SELECT $1, COALESCE(MAX(a.seq), 0) + 1, $2, 'activate', MAX(a.seq), $3
         FROM rule_activations a WHERE a.merchant_id = $1
         HAVING EXISTS (SELECT 1 FROM rule_versions WHERE merchant_id = $1 AND version = $2)
            AND COALESCE((SELECT version FROM rule_activations WHERE merchant_id = $1
                          ORDER BY seq DESC LIMIT 1), -1) <> $2
         RETURNING seq, version, kind, previous_seq, activated_at",
    )
    .bind(&merchant_id)
    .bind(version)
    .bind(now().timestamp_micros())
    .fetch_optional(&mut **tx)
    .await?;
    let activation = match inserted {
        Some(row) => Activation::try_from(row)?,
        None => {
            // Nothing written: the version is unknown, or already active.
            let current = sqlx::query_as::<_, ActivationRow>(
                "SELECT seq, version, kind, previous_seq, activated_at FROM rule_activations
                 WHERE merchant_id = $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(&merchant_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(Activation::try_from)
            .transpose()?;
            match current {
                Some(current) if current.version == version => current,
                _ => return Err(StoreError::UnknownRuleVersion(version)),
            }
        }
    };
    Ok(activation)
}

pub async fn roll_back(tx: &mut Tx, merchant: MerchantId) -> Result<Activation, StoreError> {
    sqlx::query_as::<_, ActivationRow>(
        "INSERT INTO rule_activations (merchant_id, seq, version, kind, previous_seq, activated_at)
         SELECT cur.merchant_id, cur.seq + 1, prev.version, 'rollback', prev.previous_seq, $2
         FROM rule_activations cur
         JOIN rule_activations prev ON prev.merchant_id = cur.merchant_id AND prev.seq = cur.previous_seq
         WHERE cur.merchant_id = $1
           AND cur.seq = (SELECT MAX(seq) FROM rule_activations WHERE merchant_id = $1)
         RETURNING seq, version, kind, previous_seq, activated_at",
    )
    .bind(merchant.to_string())
    .bind(now().timestamp_micros())
    .fetch_optional(&mut **tx)
    .await?
    .map(Activation::try_from)
    .transpose()?
    .ok_or(StoreError::NothingToRollBack)
}

/// The active version in the writer's transaction (`None` before the first activation).
pub async fn active_version(tx: &mut Tx, merchant: MerchantId) -> Result<Option<i64>, StoreError> {
    Ok(active_state(tx, merchant).await?.map(|(version, _)| version))
}

/// The active version and when its parameters last changed, in the writer's transaction.
pub async fn active_state(tx: &mut Tx, merchant: MerchantId) -> Result<Option<(i64, DateTime<Utc>)>, StoreError> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT v.version, v.params_updated_at FROM rule_versions v
         WHERE v.merchant_id = $1 AND v.version =
             (SELECT version FROM rule_activations WHERE merchant_id = $1 ORDER BY seq DESC LIMIT 1)",
    )
    .bind(merchant.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(version, updated)| (version, super::from_micros(updated))))
}

/// When the active version was last made active (activated or rolled back to), in the
/// writer's transaction.
pub async fn activated_at(tx: &mut Tx, merchant: MerchantId) -> Result<Option<DateTime<Utc>>, StoreError> {
    let at: Option<i64> = sqlx::query_scalar(
        "SELECT activated_at FROM rule_activations WHERE merchant_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(merchant.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(at.map(super::from_micros))
}

impl Store {
    pub async fn insert_rule_version(
        &self,
        merchant: MerchantId,
        new: &NewRuleVersion<'_>,
    ) -> Result<(RuleVersion, bool), StoreError> {
        let merchant_id = merchant.to_string();
        // Two different uploads at once may pick the same number: try again.
        for _ in 0..5 {
            let inserted = sqlx::query_as::<_, RuleVersionRow>(concat!(
                "INSERT INTO rule_versions (merchant_id, version, sha256, size_bytes, wasm, component,
                                            artifact, compile_ms, params, created_at, params_updated_at,
                                            params_schema, stock)
                 SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6, $7, $9, $8, $8, $10, $11
                 FROM rule_versions WHERE merchant_id = $1
                 ON CONFLICT (merchant_id, sha256) DO NOTHING
                 RETURNING ",
                version_columns!()
            ))
            .bind(&merchant_id)
            .bind(new.sha256)
            .bind(new.wasm.len() as i64)
            .bind(new.wasm)
            .bind(new.component)
            .bind(new.artifact)
            .bind(new.compile_ms)
            .bind(now().timestamp_micros())
            // A new version starts with its declared defaults (none for an untyped rule).
            .bind(
                serde_json::to_string(&new.params_schema.map(ParamsSchema::defaults).unwrap_or_default())
                    .expect("parameters serialize"),
            )
            .bind(new.params_schema.map(|schema| serde_json::to_string(schema).expect("a schema serializes")))
            .bind(new.stock)
            .fetch_optional(&self.pool)
            .await;
            match inserted {
                Ok(Some(row)) => return Ok((RuleVersion::try_from(row)?, true)),
                Ok(None) => {
                    let existing = sqlx::query_as::<_, RuleVersionRow>(concat!(
                        "SELECT ",
                        version_columns!(),
                        "
                         FROM rule_versions WHERE merchant_id = $1 AND sha256 = $2"
                    ))
                    .bind(&merchant_id)
                    .bind(new.sha256)
                    .fetch_one(&self.pool)
                    .await?;
                    return Ok((RuleVersion::try_from(existing)?, false));
                }
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Unavailable("too many concurrent rule uploads".into()))
    }

    /// Replaces a version's compiled artifact (compiled again by a newer engine); the upload
    /// and the component, which the history's hash names, never change.
    pub async fn replace_rule_artifact(
        &self,
        merchant: MerchantId,
        version: i64,
        artifact: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE rule_versions SET artifact = $3 WHERE merchant_id = $1 AND version = $2")
            .bind(merchant.to_string())
            .bind(version)
            .bind(artifact)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The version whose upload had this SHA-256, if any.
    pub async fn rule_version_by_sha(
        &self,
        merchant: MerchantId,
        sha256: &str,
    ) -> Result<Option<RuleVersion>, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM rule_versions WHERE merchant_id = $1 AND sha256 = $2")
                .bind(merchant.to_string())
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await?;
        match version {
            Some(version) => self.rule_version(merchant, version).await,
            None => Ok(None),
        }
    }

    /// How many versions the merchant keeps, and the bytes they take (upload, component and
    /// compiled artifact).
    pub async fn rule_storage(&self, merchant: MerchantId) -> Result<(i64, i64), StoreError> {
        Ok(sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(wasm) + LENGTH(component) + LENGTH(artifact)), 0) AS BIGINT)
             FROM rule_versions WHERE merchant_id = $1",
        )
        .bind(merchant.to_string())
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn rule_version(&self, merchant: MerchantId, version: i64) -> Result<Option<RuleVersion>, StoreError> {
        sqlx::query_as::<_, RuleVersionRow>(concat!(
            "SELECT ",
            version_columns!(),
            "
             FROM rule_versions WHERE merchant_id = $1 AND version = $2"
        ))
        .bind(merchant.to_string())
        .bind(version)
        .fetch_optional(&self.pool)
        .await?
        .map(RuleVersion::try_from)
        .transpose()
    }

    pub async fn rule_versions(&self, merchant: MerchantId) -> Result<Vec<RuleVersion>, StoreError> {
        let rows = sqlx::query_as::<_, RuleVersionRow>(concat!(
            "SELECT ",
            version_columns!(),
            "
             FROM rule_versions WHERE merchant_id = $1 ORDER BY version"
        ))
        .bind(merchant.to_string())
        .fetch_all(&self.pool)
        .await?;
        convert_all(rows)
    }

    pub async fn rule_code(&self, merchant: MerchantId, version: i64) -> Result<Option<RuleCode>, StoreError> {
        let row = sqlx::query_as::<_, RuleCodeRow>(
            "SELECT component, artifact FROM rule_versions WHERE merchant_id = $1 AND version = $2",
        )
        .bind(merchant.to_string())
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(RuleCode::from))
    }

    pub async fn merchants_with_rules(&self) -> Result<Vec<MerchantId>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT merchant_id FROM rule_activations ORDER BY merchant_id")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(|(id,)| MerchantId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
    }

    pub async fn active_rule(&self, merchant: MerchantId) -> Result<Option<Activation>, StoreError> {
        sqlx::query_as::<_, ActivationRow>(
            "SELECT seq, version, kind, previous_seq, activated_at FROM rule_activations
             WHERE merchant_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(merchant.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(Activation::try_from)
        .transpose()
    }
}
