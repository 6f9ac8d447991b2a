//! The catalogue: products, and the price in force for each.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{MerchantId, Money, Product, ProductDraft, Sku};

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    /// The stored product already had exactly these values; nothing was written.
    Unchanged,
}

/// The price in force for a product.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentPrice {
    pub sku: Sku,
    pub price: Money,
    /// Incremented on every change of the price; starts at 1.
    pub version: i64,
    pub effective_at: DateTime<Utc>,
    /// The lowest price in force during the 30 days before this one took effect, kept for
    /// merchants that show it (EU price-indication rules); `None` otherwise, or when no
    /// earlier price was in force in that window.
    pub prior_minor: Option<i64>,
}

#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// Creates or replaces a product, and keeps its base price in force until a rule sets one.
    async fn upsert_product(
        &self,
        merchant: MerchantId,
        draft: &ProductDraft,
    ) -> Result<(Product, Upserted), StoreError>;
    async fn product(&self, merchant: MerchantId, sku: &Sku) -> Result<Option<Product>, StoreError>;
    /// Up to `limit` products with a SKU after `after`, in SKU byte order.
    async fn products(&self, merchant: MerchantId, after: Option<&Sku>, limit: u32)
    -> Result<Vec<Product>, StoreError>;
    /// Deletes a product and its current price; its decision history stays. False when absent.
    async fn delete_product(&self, merchant: MerchantId, sku: &Sku) -> Result<bool, StoreError>;

    async fn current_price(&self, merchant: MerchantId, sku: &Sku) -> Result<Option<CurrentPrice>, StoreError>;
    /// Every merchant's prices in force, a page at a time in (merchant, SKU) order, after the
    /// given key: for warming the price cache.
    async fn current_prices_after(
        &self,
        after: Option<(MerchantId, &Sku)>,
        limit: u32,
    ) -> Result<Vec<(MerchantId, CurrentPrice)>, StoreError>;
}

/// Implements [`CatalogStore`] for a backend's store type (which has a `pool` field) with the
/// SQL text both backends accept.
macro_rules! impl_catalog_store {
    ($store:ty) => {
        const _: () = {
            use $crate::domain::{MerchantId, Product, ProductDraft, Sku};
            use $crate::store::rows::{MerchantPriceRow, PriceRow, ProductRow, convert_all};
            use $crate::pricing::record::{BASE_PRICE_CHANGED, DecisionRecord, PRODUCT_CREATED, PRODUCT_DELETED};
            use $crate::store::decisions::append_chain;
            use $crate::store::history::{prior_price_in, show_prior_price_in};
            use $crate::store::{CurrentPrice, NewDecision, StoreError, Upserted, now};

        #[async_trait::async_trait]
        impl $crate::store::CatalogStore for $store {
            async fn upsert_product(
                &self,
                merchant: MerchantId,
                draft: &ProductDraft,
            ) -> Result<(Product, Upserted), StoreError> {
                let merchant_id = merchant.to_string();
                let sku = draft.sku.as_str();
                let at = now().timestamp_micros();
                let guardrails = serde_json::to_string(draft.guardrails.as_input()).expect("guardrails serialize");
                let attributes = serde_json::to_string(draft.attributes.as_map()).expect("attributes serialize");
                // The first statement writes, so SQLite takes its write lock at once and never
                // has to upgrade a read snapshot (which would fail instead of waiting).
                let mut tx = self.pool.begin().await?;
                let written = sqlx::query_as::<_, ProductRow>(
                    "INSERT INTO products (merchant_id, sku, currency, cost_minor, base_price_minor,
                                           guardrails, attributes, version, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)
                     ON CONFLICT (merchant_id, sku) DO UPDATE SET
                         cost_minor = excluded.cost_minor,
                         base_price_minor = excluded.base_price_minor,
                         guardrails = excluded.guardrails,
                         attributes = excluded.attributes,
                         version = products.version + 1,
                         updated_at = excluded.updated_at
                     WHERE products.currency = excluded.currency
                       AND (products.cost_minor <> excluded.cost_minor
                            OR products.base_price_minor <> excluded.base_price_minor
                            OR products.guardrails <> excluded.guardrails
                            OR products.attributes <> excluded.attributes)
                     RETURNING sku, currency, cost_minor, base_price_minor, guardrails, attributes,
                               version, created_at, updated_at",
                )
                .bind(&merchant_id)
                .bind(sku)
                .bind(draft.currency().code())
                .bind(draft.cost.minor())
                .bind(draft.base_price.minor())
                .bind(&guardrails)
                .bind(&attributes)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(written) = written else {
                    // Nothing written: either nothing changed or the currency differs.
                    let existing = sqlx::query_as::<_, ProductRow>(
                        "SELECT sku, currency, cost_minor, base_price_minor, guardrails, attributes,
                                version, created_at, updated_at
                         FROM products WHERE merchant_id = $1 AND sku = $2",
                    )
                    .bind(&merchant_id)
                    .bind(sku)
                    .fetch_one(&mut *tx)
                    .await?;
                    let existing = Product::try_from(existing)?;
                    if existing.currency() != draft.currency() {
                        return Err(StoreError::CurrencyMismatch {
                            sku: draft.sku.clone(),
                            existing: existing.currency(),
                        });
                    }
                    return Ok((existing, Upserted::Unchanged));
                };
                let product = Product::try_from(written)?;
                // The base price is the price in force until a rule sets another. Putting it in
                // force is a price change like any other, so it is appended to the chain.
                let in_force: Option<(i64, String)> = sqlx::query_as(
                    "SELECT price_minor, source FROM current_prices WHERE merchant_id = $1 AND sku = $2",
                )
                .bind(&merchant_id)
                .bind(sku)
                .fetch_optional(&mut *tx)
                .await?;
                let base = draft.base_price.minor();
                let event = match &in_force {
                    None => Some((PRODUCT_CREATED, None, "the product was created at its base price")),
                    Some((price, source)) if source == "base" && *price != base => {
                        Some((BASE_PRICE_CHANGED, Some(*price), "the base price changed while no rule had set a price"))
                    }
                    _ => None,
                };
                if let Some((trigger, old_price_minor, explanation)) = event {
                    let currency = product.currency().to_string();
                    let record = |seq, created_at| {
                        DecisionRecord::price_event(
                            seq,
                            merchant_id.clone(),
                            sku.to_owned(),
                            trigger,
                            currency.clone(),
                            old_price_minor,
                            Some(base),
                            explanation.to_owned(),
                            created_at,
                        )
                        .to_canonical_json()
                    };
                    let decision = NewDecision {
                        sku: &draft.sku,
                        trigger,
                        outcome: "changed",
                        currency: &currency,
                        old_price_minor,
                        new_price_minor: Some(base),
                        clipped: false,
                        rule_version: None,
                        rule_sha256: None,
                        record: Box::new(record),
                    };
                    let (_, effective_at) = append_chain!(tx, &merchant_id, std::slice::from_ref(&decision));
                    let prior = if show_prior_price_in!(tx, &merchant_id) {
                        prior_price_in!(tx, &merchant_id, sku, effective_at)
                    } else {
                        None
                    };
                    sqlx::query(
                        "INSERT INTO current_prices (merchant_id, sku, price_minor, currency, version, effective_at,
                                                     source, prior_price_minor)
                         VALUES ($1, $2, $3, $4, 1, $5, 'base', $6)
                         ON CONFLICT (merchant_id, sku) DO UPDATE SET
                             price_minor = excluded.price_minor,
                             version = current_prices.version + 1,
                             effective_at = excluded.effective_at,
                             prior_price_minor = excluded.prior_price_minor",
                    )
                    .bind(&merchant_id)
                    .bind(sku)
                    .bind(base)
                    .bind(&currency)
                    .bind(effective_at.timestamp_micros())
                    .bind(prior)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                let outcome = if product.version == 1 { Upserted::Created } else { Upserted::Updated };
                Ok((product, outcome))
            }

            async fn product(&self, merchant: MerchantId, sku: &Sku) -> Result<Option<Product>, StoreError> {
                sqlx::query_as::<_, ProductRow>(
                    "SELECT sku, currency, cost_minor, base_price_minor, guardrails, attributes,
                            version, created_at, updated_at
                     FROM products WHERE merchant_id = $1 AND sku = $2",
                )
                .bind(merchant.to_string())
                .bind(sku.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(Product::try_from)
                .transpose()
            }

            async fn products(
                &self,
                merchant: MerchantId,
                after: Option<&Sku>,
                limit: u32,
            ) -> Result<Vec<Product>, StoreError> {
                // Every SKU sorts after the empty string.
                let rows = sqlx::query_as::<_, ProductRow>(
                    "SELECT sku, currency, cost_minor, base_price_minor, guardrails, attributes,
                            version, created_at, updated_at
                     FROM products WHERE merchant_id = $1 AND sku > $2 ORDER BY sku LIMIT $3",
                )
                .bind(merchant.to_string())
                .bind(after.map_or("", Sku::as_str))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                convert_all(rows)
            }

            async fn delete_product(&self, merchant: MerchantId, sku: &Sku) -> Result<bool, StoreError> {
                let merchant_id = merchant.to_string();
                let mut tx = self.pool.begin().await?;
                // Deleting first takes SQLite's write lock at once.
                let in_force: Option<(i64, String)> = sqlx::query_as(
                    "DELETE FROM current_prices WHERE merchant_id = $1 AND sku = $2 RETURNING price_minor, currency",
                )
                .bind(&merchant_id)
                .bind(sku.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((price, currency)) = in_force {
                    // The end of the price in force belongs to the history too.
                    let record = |seq, created_at| {
                        DecisionRecord::price_event(
                            seq,
                            merchant_id.clone(),
                            sku.to_string(),
                            PRODUCT_DELETED,
                            currency.clone(),
                            Some(price),
                            None,
                            "the product was deleted".to_owned(),
                            created_at,
                        )
                        .to_canonical_json()
                    };
                    let decision = NewDecision {
                        sku,
                        trigger: PRODUCT_DELETED,
                        outcome: "changed",
                        currency: &currency,
                        old_price_minor: Some(price),
                        new_price_minor: None,
                        clipped: false,
                        rule_version: None,
                        rule_sha256: None,
                        record: Box::new(record),
                    };
                    append_chain!(tx, &merchant_id, std::slice::from_ref(&decision));
                }
                let deleted = sqlx::query("DELETE FROM products WHERE merchant_id = $1 AND sku = $2")
                    .bind(&merchant_id)
                    .bind(sku.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(deleted > 0)
            }

            async fn current_prices_after(
                &self,
                after: Option<(MerchantId, &Sku)>,
                limit: u32,
            ) -> Result<Vec<(MerchantId, CurrentPrice)>, StoreError> {
                let (merchant, sku) = after.map_or((String::new(), ""), |(m, s)| (m.to_string(), s.as_str()));
                let rows = sqlx::query_as::<_, MerchantPriceRow>(
                    "SELECT merchant_id, sku, price_minor, currency, version, effective_at, prior_price_minor FROM current_prices
                     WHERE merchant_id > $1 OR (merchant_id = $1 AND sku > $2)
                     ORDER BY merchant_id, sku LIMIT $3",
                )
                .bind(merchant)
                .bind(sku)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                convert_all(rows)
            }

            async fn current_price(&self, merchant: MerchantId, sku: &Sku) -> Result<Option<CurrentPrice>, StoreError> {
                sqlx::query_as::<_, PriceRow>(
                    "SELECT sku, price_minor, currency, version, effective_at, prior_price_minor
                     FROM current_prices WHERE merchant_id = $1 AND sku = $2",
                )
                .bind(merchant.to_string())
                .bind(sku.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(CurrentPrice::try_from)
                .transpose()
            }
        }
        };
    };
}

pub(crate) use impl_catalog_store;
