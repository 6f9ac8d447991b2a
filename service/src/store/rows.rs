//! Rows as the databases return them, and their conversion into domain values. Stored data
//! is parsed again on the way out: a row that no longer parses is reported, never served.

use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::{
    Activation, CurrentPrice, Merchant, RuleCode, RuleVersion, StoreError, StoredDecision, StoredKey, from_micros,
};
use crate::domain::chain::GENESIS_HASH;
use crate::domain::{Attributes, Currency, Guardrails, KeyId, MerchantId, Money, Product, Roles, Sku};

pub(super) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

#[derive(sqlx::FromRow)]
pub(super) struct MerchantRow {
    id: String,
    name: String,
    created_at: i64,
    /// 0 or 1 (`Any` reads no booleans on SQLite).
    show_prior_price: i64,
}

impl TryFrom<MerchantRow> for Merchant {
    type Error = StoreError;
    fn try_from(row: MerchantRow) -> Result<Self, StoreError> {
        Ok(Merchant {
            id: MerchantId::parse(&row.id).map_err(|e| corrupt("merchant id", e))?,
            name: row.name,
            created_at: from_micros(row.created_at),
            show_prior_price: row.show_prior_price != 0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    id: String,
    merchant_id: Option<String>,
    roles: String,
    secret_sha256: String,
    label: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<KeyRow> for StoredKey {
    type Error = StoreError;
    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        let mut secret_sha256 = [0u8; 32];
        hex::decode_to_slice(&row.secret_sha256, &mut secret_sha256).map_err(|e| corrupt("key hash", e))?;
        Ok(StoredKey {
            id: KeyId::parse(&row.id).map_err(|e| corrupt("key id", e))?,
            merchant: row
                .merchant_id
                .as_deref()
                .map(MerchantId::parse)
                .transpose()
                .map_err(|e| corrupt("key merchant", e))?,
            roles: Roles::from_text(&row.roles).ok_or_else(|| corrupt("key roles", &row.roles))?,
            secret_sha256,
            label: row.label,
            created_at: from_micros(row.created_at),
            revoked_at: row.revoked_at.map(from_micros),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ProductRow {
    sku: String,
    currency: String,
    cost_minor: i64,
    base_price_minor: i64,
    guardrails: String,
    attributes: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ProductRow> for Product {
    type Error = StoreError;
    fn try_from(row: ProductRow) -> Result<Self, StoreError> {
        let currency = Currency::parse(&row.currency).map_err(|e| corrupt("product currency", e))?;
        let guardrails = serde_json::from_str(&row.guardrails)
            .map_err(|e| corrupt("guardrails", e))
            .and_then(|input| Guardrails::parse(input).map_err(|e| corrupt("guardrails", e)))?;
        let attributes = serde_json::from_str(&row.attributes)
            .map_err(|e| corrupt("attributes", e))
            .and_then(|map| Attributes::parse(map).map_err(|e| corrupt("attributes", e)))?;
        Ok(Product {
            sku: Sku::parse(&row.sku).map_err(|e| corrupt("sku", e))?,
            cost: Money::new(row.cost_minor, currency),
            base_price: Money::new(row.base_price_minor, currency),
            guardrails,
            attributes,
            version: row.version,
            created_at: from_micros(row.created_at),
            updated_at: from_micros(row.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PriceRow {
    sku: String,
    price_minor: i64,
    currency: String,
    version: i64,
    effective_at: i64,
    prior_price_minor: Option<i64>,
}

impl TryFrom<PriceRow> for CurrentPrice {
    type Error = StoreError;
    fn try_from(row: PriceRow) -> Result<Self, StoreError> {
        let currency = Currency::parse(&row.currency).map_err(|e| corrupt("price currency", e))?;
        Ok(CurrentPrice {
            sku: Sku::parse(&row.sku).map_err(|e| corrupt("sku", e))?,
            price: Money::new(row.price_minor, currency),
            version: row.version,
            effective_at: from_micros(row.effective_at),
            prior_minor: row.prior_price_minor,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct MerchantPriceRow {
    merchant_id: String,
    #[sqlx(flatten)]
    price: PriceRow,
}

impl TryFrom<MerchantPriceRow> for (MerchantId, CurrentPrice) {
    type Error = StoreError;
    fn try_from(row: MerchantPriceRow) -> Result<Self, StoreError> {
        let merchant = MerchantId::parse(&row.merchant_id).map_err(|e| corrupt("price merchant", e))?;
        Ok((merchant, CurrentPrice::try_from(row.price)?))
    }
}

/// Converts every row, failing on the first that does not parse.
pub(super) fn convert_all<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> Result<Vec<T>, StoreError> {
    rows.into_iter().map(T::try_from).collect()
}

#[derive(sqlx::FromRow)]
pub(super) struct RuleVersionRow {
    version: i64,
    sha256: String,
    size_bytes: i64,
    compile_ms: i64,
    params: String,
    created_at: i64,
    params_updated_at: i64,
    params_schema: Option<String>,
    stock: Option<String>,
}

impl TryFrom<RuleVersionRow> for RuleVersion {
    type Error = StoreError;
    fn try_from(row: RuleVersionRow) -> Result<Self, StoreError> {
        Ok(RuleVersion {
            version: row.version,
            sha256: row.sha256,
            size_bytes: row.size_bytes,
            compile_ms: row.compile_ms,
            params: serde_json::from_str(&row.params).map_err(|e| corrupt("rule parameters", e))?,
            created_at: from_micros(row.created_at),
            params_updated_at: from_micros(row.params_updated_at),
            params_schema: row
                .params_schema
                .map(|json| serde_json::from_str(&json).map_err(|e| corrupt("declared rule parameters", e)))
                .transpose()?,
            stock: row.stock,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RuleCodeRow {
    component: Vec<u8>,
    artifact: Vec<u8>,
}

impl From<RuleCodeRow> for RuleCode {
    fn from(row: RuleCodeRow) -> Self {
        RuleCode { component: row.component, artifact: row.artifact }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ActivationRow {
    seq: i64,
    version: i64,
    kind: String,
    previous_seq: Option<i64>,
    activated_at: i64,
}

impl TryFrom<ActivationRow> for Activation {
    type Error = StoreError;
    fn try_from(row: ActivationRow) -> Result<Self, StoreError> {
        Ok(Activation {
            seq: row.seq,
            version: row.version,
            kind: row.kind,
            previous_seq: row.previous_seq,
            activated_at: from_micros(row.activated_at),
        })
    }
}

/// A decision row, in the order of `chain::DECISION_COLUMNS`; its trigger and outcome must
/// be names of the vocabulary.
impl FromRow<'_, AnyRow> for StoredDecision {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let decode = |column: &str, e: crate::domain::UnknownName| sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: Box::new(e),
        };
        Ok(StoredDecision {
            seq: row.try_get("seq")?,
            sku: row.try_get("sku")?,
            trigger: row.try_get::<String, _>("trigger_kind")?.parse().map_err(|e| decode("trigger_kind", e))?,
            outcome: row.try_get::<String, _>("outcome")?.parse().map_err(|e| decode("outcome", e))?,
            currency: row.try_get("currency")?,
            old_price_minor: row.try_get("old_price_minor")?,
            new_price_minor: row.try_get("new_price_minor")?,
            rule_version: row.try_get("rule_version")?,
            rule_sha256: row.try_get("rule_sha256")?,
            clipped: row.try_get::<i64, _>("clipped")? != 0,
            record: record_of(row)?,
            created_at: from_micros(row.try_get("created_at")?),
            prev_hash: hash_of(row, "prev_hash")?.unwrap_or_else(|| GENESIS_HASH.to_owned()),
            hash: hash_of(row, "hash")?.unwrap_or_default(),
        })
    }
}

/// A hash column as hex: the store keeps hashes as their bytes (migration 0020). A value
/// stored as text (written by hand: the service never does) reads as it is, so that
/// verification reports it instead of the read failing.
pub(super) fn hash_of(row: &AnyRow, column: &str) -> Result<Option<String>, sqlx::Error> {
    match row.try_get::<Option<Vec<u8>>, _>(column) {
        Ok(bytes) => Ok(bytes.map(hex::encode)),
        Err(_) => row.try_get::<Option<String>, _>(column),
    }
}

/// A decision row's canonical record: its `record` text, or, when that is empty, its
/// `packed` form unpacked with the row's own columns (`merchant_id`, `sku`, `rule_sha256`,
/// `created_at`). A packed form that does not unpack reads as a text saying so, which no
/// hash matches: verification reports the record where it is, and the rest stays readable.
pub(super) fn record_of(row: &AnyRow) -> Result<String, sqlx::Error> {
    let record: String = row.try_get("record")?;
    let packed = match row.try_get::<Option<Vec<u8>>, _>("packed")? {
        Some(packed) if record.is_empty() => packed,
        _ => return Ok(record),
    };
    let merchant_id: String = row.try_get("merchant_id")?;
    let sku: String = row.try_get("sku")?;
    let rule_sha256: Option<String> = row.try_get("rule_sha256")?;
    let known = super::packing::Known {
        rule_sha256: rule_sha256.as_deref(),
        merchant_id: &merchant_id,
        sku: &sku,
        created_at: from_micros(row.try_get("created_at")?),
    };
    Ok(super::packing::unpack(&packed, &known).unwrap_or_else(|e| format!("unreadable packed record: {e}")))
}
