//! The catalogue's products as stored. Writes take the writer's transaction, which the write
//! side composes with the price in force and the chain.

use super::bulk::{Cell, Kind, Rows};
use super::rows::{ProductRow, convert_all};
use super::{Backend, Store, StoreError, Tx, now};
use crate::domain::{MerchantId, Product, ProductDraft, Sku};

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    /// The product was already exactly so: nothing was written.
    Unchanged,
}

const PRODUCT_COLUMNS: &str =
    "sku, currency, cost_minor, base_price_minor, guardrails, attributes, version, created_at, updated_at";

/// An upsert's conflict clause: a stored product in the same currency is replaced when anything
/// differs (its version moves); otherwise nothing is written and nothing returned.
const REPLACE_CHANGED: &str = "ON CONFLICT (merchant_id, sku) DO UPDATE SET
         cost_minor = excluded.cost_minor, base_price_minor = excluded.base_price_minor,
         guardrails = excluded.guardrails, attributes = excluded.attributes,
         version = products.version + 1, updated_at = excluded.updated_at
     WHERE products.currency = excluded.currency
       AND (products.cost_minor <> excluded.cost_minor OR products.base_price_minor <> excluded.base_price_minor
            OR products.guardrails <> excluded.guardrails OR products.attributes <> excluded.attributes)";

/// Creates or replaces a product in the writer's transaction. A product's currency never
/// changes ([`StoreError::CurrencyMismatch`], nothing written).
pub async fn upsert(
    tx: &mut Tx,
    merchant: MerchantId,
    draft: &ProductDraft,
) -> Result<(Product, Upserted), StoreError> {
    let merchant_id = merchant.to_string();
    let guardrails = serde_json::to_string(draft.guardrails.as_input()).expect("guardrails serialize");
    let attributes = serde_json::to_string(draft.attributes.as_map()).expect("attributes serialize");
    let sql = format!(
        "INSERT INTO products (merchant_id, sku, currency, cost_minor, base_price_minor,
                               guardrails, attributes, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)
         {REPLACE_CHANGED} RETURNING {PRODUCT_COLUMNS}"
    );
    let written = sqlx::query_as::<_, ProductRow>(sqlx::AssertSqlSafe(sql))
        .bind(&merchant_id)
        .bind(draft.sku.as_str())
        .bind(draft.currency().code())
        .bind(draft.cost.minor())
        .bind(draft.base_price.minor())
        .bind(&guardrails)
        .bind(&attributes)
        .bind(now().timestamp_micros())
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(written) = written {
        let product = Product::try_from(written)?;
        let outcome = if product.version == 1 { Upserted::Created } else { Upserted::Updated };
        return Ok((product, outcome));
    }
    // Nothing written: either nothing changed or the currency differs.
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE merchant_id = $1 AND sku = $2");
    let existing = sqlx::query_as::<_, ProductRow>(sqlx::AssertSqlSafe(sql))
        .bind(&merchant_id)
        .bind(draft.sku.as_str())
        .fetch_one(&mut **tx)
        .await?;
    let existing = Product::try_from(existing)?;
    if existing.currency() != draft.currency() {
        return Err(StoreError::CurrencyMismatch { sku: draft.sku.clone(), existing: existing.currency() });
    }
    Ok((existing, Upserted::Unchanged))
}

/// Creates or replaces many products in the writer's transaction, in bulk (each SKU at most
/// once, each in the currency it is stored in: the caller checked); returns the SKUs of the
/// products created or changed, with the version each now has (1: created). One already
/// exactly so is left alone and not returned.
pub async fn upsert_many(
    tx: &mut Tx,
    merchant: MerchantId,
    drafts: &[&ProductDraft],
) -> Result<Vec<(Sku, i64)>, StoreError> {
    const COLUMNS: &[(&str, Kind)] = &[
        ("sku", Kind::Text),
        ("currency", Kind::Text),
        ("cost_minor", Kind::BigInt),
        ("base_price_minor", Kind::BigInt),
        ("guardrails", Kind::Text),
        ("attributes", Kind::Text),
    ];
    let serialized: Vec<(String, String)> = drafts
        .iter()
        .map(|d| {
            (
                serde_json::to_string(d.guardrails.as_input()).expect("guardrails serialize"),
                serde_json::to_string(d.attributes.as_map()).expect("attributes serialize"),
            )
        })
        .collect();
    let currencies: Vec<_> = drafts.iter().map(|d| d.currency()).collect();
    let mut rows = Rows::new(COLUMNS);
    for ((d, (guardrails, attributes)), currency) in drafts.iter().zip(&serialized).zip(&currencies) {
        rows.push([
            Cell::Text(d.sku.as_str()),
            Cell::Text(currency.code()),
            Cell::BigInt(d.cost.minor()),
            Cell::BigInt(d.base_price.minor()),
            Cell::Text(guardrails),
            Cell::Text(attributes),
        ]);
    }
    let merchant_id = merchant.to_string();
    let at = now().timestamp_micros();
    let mut written = Vec::new();
    for chunk in rows.chunks(tx.backend()) {
        let sql = format!(
            "INSERT INTO products (merchant_id, sku, currency, cost_minor, base_price_minor,
                                   guardrails, attributes, version, created_at, updated_at)
             SELECT $1, u.sku, u.currency, u.cost_minor, u.base_price_minor, u.guardrails, u.attributes, 1, $2, $2
             FROM {} WHERE true
             {REPLACE_CHANGED} RETURNING sku, version",
            chunk.source(3)
        );
        let query = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql)).bind(&merchant_id).bind(at);
        for (sku, version) in chunk.bind(query).fetch_all(&mut **tx).await? {
            written.push((Sku::parse(&sku).map_err(|e| StoreError::Corrupt(format!("sku: {e}")))?, version));
        }
    }
    Ok(written)
}

/// A product, read in the writer's transaction.
pub async fn get(tx: &mut Tx, merchant: MerchantId, sku: &Sku) -> Result<Option<Product>, StoreError> {
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE merchant_id = $1 AND sku = $2");
    sqlx::query_as::<_, ProductRow>(sqlx::AssertSqlSafe(sql))
        .bind(merchant.to_string())
        .bind(sku.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .map(Product::try_from)
        .transpose()
}

/// Deletes a product in the writer's transaction; false when there was none.
pub async fn delete(tx: &mut Tx, merchant: MerchantId, sku: &Sku) -> Result<bool, StoreError> {
    let deleted = sqlx::query("DELETE FROM products WHERE merchant_id = $1 AND sku = $2")
        .bind(merchant.to_string())
        .bind(sku.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

impl Store {
    /// How many products the merchant has.
    pub async fn count_products(&self, merchant: MerchantId) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM products WHERE merchant_id = $1")
            .bind(merchant.to_string())
            .fetch_one(&self.pool)
            .await?)
    }

    /// Up to `size` of the merchant's SKUs, picked at random.
    pub async fn sample_skus(&self, merchant: MerchantId, size: usize) -> Result<Vec<Sku>, StoreError> {
        let skus: Vec<String> =
            sqlx::query_scalar("SELECT sku FROM products WHERE merchant_id = $1 ORDER BY RANDOM() LIMIT $2")
                .bind(merchant.to_string())
                .bind(size as i64)
                .fetch_all(&self.pool)
                .await?;
        skus.iter().map(|s| Sku::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
    }

    pub async fn product(&self, merchant: MerchantId, sku: &Sku) -> Result<Option<Product>, StoreError> {
        let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE merchant_id = $1 AND sku = $2");
        sqlx::query_as::<_, ProductRow>(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(sku.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(Product::try_from)
            .transpose()
    }

    /// Up to `limit` products with a SKU after `after`, in SKU byte order.
    pub async fn products(
        &self,
        merchant: MerchantId,
        after: Option<&Sku>,
        limit: u32,
    ) -> Result<Vec<Product>, StoreError> {
        self.products_matching(merchant, &ProductFilter::default(), after, limit).await
    }

    /// Up to `limit` products that match `filter`, with a SKU after `after`, in SKU byte order.
    pub async fn products_matching(
        &self,
        merchant: MerchantId,
        filter: &ProductFilter,
        after: Option<&Sku>,
        limit: u32,
    ) -> Result<Vec<Product>, StoreError> {
        let (sql, binds) = matching_sql(self.backend, filter);
        let query = bind_matching(&sql, binds, merchant, after.map_or("", Sku::as_str), limit);
        convert_all(query.fetch_all(&self.pool).await?)
    }
}

/// [`Store::products_matching`] in the writer's transaction (`after` a SKU, or "" for the first).
pub async fn matching_in(
    tx: &mut Tx,
    merchant: MerchantId,
    filter: &ProductFilter,
    after: &str,
    limit: u32,
) -> Result<Vec<Product>, StoreError> {
    let (sql, binds) = matching_sql(tx.backend(), filter);
    let query = bind_matching(&sql, binds, merchant, after, limit);
    convert_all(query.fetch_all(&mut **tx).await?)
}

type ProductQuery<'q> = sqlx::query::QueryAs<'q, sqlx::Any, ProductRow, sqlx::any::AnyArguments>;

fn bind_matching(sql: &str, binds: Vec<Bound>, merchant: MerchantId, after: &str, limit: u32) -> ProductQuery<'static> {
    let mut query = sqlx::query_as::<_, ProductRow>(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(merchant.to_string())
        .bind(after.to_owned())
        .bind(i64::from(limit));
    for bound in binds {
        query = match bound {
            Bound::Int(n) => query.bind(n),
            Bound::Text(text) => query.bind(text),
        };
    }
    query
}

/// The query of products matching `filter`: `$1` merchant, `$2` cursor (every SKU sorts after
/// the empty string), `$3` limit, then the filter's parameters.
fn matching_sql(backend: Backend, filter: &ProductFilter) -> (String, Vec<Bound>) {
    let columns: Vec<String> = PRODUCT_COLUMNS.split(", ").map(|c| format!("p.{c}")).collect();
    let mut conditions = String::new();
    let mut binds: Vec<Bound> = Vec::new();
    let next = |value: Bound, binds: &mut Vec<Bound>| {
        binds.push(value);
        format!("${}", 3 + binds.len())
    };
    let prices = filter.needs_prices();
    for (bound, sql) in [
        (filter.price_min, "c.price_minor >= "),
        (filter.price_max, "c.price_minor <= "),
        (filter.cost_min, "p.cost_minor >= "),
        (filter.cost_max, "p.cost_minor <= "),
    ] {
        if let Some(bound) = bound {
            conditions.push_str(&format!(" AND {sql}{}", next(Bound::Int(bound), &mut binds)));
        }
    }
    if let Some(since) = filter.moved_since {
        let at = next(Bound::Int(since.timestamp_micros()), &mut binds);
        conditions.push_str(&format!(" AND c.source = 'rule' AND c.effective_at >= {at}"));
    }
    conditions.push_str(&attribute_conditions(backend, &filter.attributes, &mut |b| next(b, &mut binds)));
    let join = if prices { " JOIN current_prices c ON c.merchant_id = p.merchant_id AND c.sku = p.sku" } else { "" };
    let sql = format!(
        "SELECT {} FROM products p{join} WHERE p.merchant_id = $1 AND p.sku > $2{conditions} ORDER BY p.sku LIMIT $3",
        columns.join(", ")
    );
    (sql, binds)
}

/// A filter's parameter.
pub(super) enum Bound {
    Int(i64),
    Text(String),
}

/// ` AND ...` for each attribute that products `p` must have with exactly its value, the
/// parameters given their numbers by `next`. The value is compared as JSON: a text "42" is not
/// the number 42.
pub(super) fn attribute_conditions(
    backend: Backend,
    attributes: &[(String, serde_json::Value)],
    next: &mut dyn FnMut(Bound) -> String,
) -> String {
    let mut conditions = String::new();
    for (key, value) in attributes {
        let json = serde_json::to_string(value).expect("a JSON value serializes");
        let condition = match backend {
            Backend::Sqlite => {
                let path = next(Bound::Text(format!("$.\"{key}\"")));
                format!("p.attributes -> {path} = {}", next(Bound::Text(json)))
            }
            Backend::Postgres => {
                let name = next(Bound::Text(key.clone()));
                format!("CAST(p.attributes AS jsonb) -> {name} = CAST({} AS jsonb)", next(Bound::Text(json)))
            }
        };
        conditions.push_str(&format!(" AND {condition}"));
    }
    conditions
}

/// Which products a list selects (all when empty): the filter language of `GET /v1/products`,
/// for the other places that select products by what they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductFilter {
    /// Attributes with exactly these values.
    pub attributes: Vec<(String, serde_json::Value)>,
    /// The price in force, in minor units, inclusive.
    pub price_min: Option<i64>,
    pub price_max: Option<i64>,
    /// The cost, in minor units, inclusive.
    pub cost_min: Option<i64>,
    pub cost_max: Option<i64>,
    /// A rule set the price in force at or after this instant.
    pub moved_since: Option<chrono::DateTime<chrono::Utc>>,
}

impl ProductFilter {
    fn needs_prices(&self) -> bool {
        self.price_min.is_some() || self.price_max.is_some() || self.moved_since.is_some()
    }
}
