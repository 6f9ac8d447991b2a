//! The price in force for each product: read by checkout's cache and by rule contexts, written
//! only inside transactions that append the decision explaining the change.

use chrono::{DateTime, Utc};

use std::collections::HashMap;

use super::bulk::{Cell, Kind, Rows};
use super::rows::{MerchantPriceRow, PriceRow, convert_all};
use super::{Backend, Store, StoreError, Tx};
use crate::domain::{MerchantId, Money, Sku};

/// The price in force for a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentPrice {
    pub sku: Sku,
    pub price: Money,
    /// Incremented on every change of the price in force.
    pub version: i64,
    pub effective_at: DateTime<Utc>,
    /// The lowest price in force during the 30 days before this one took effect, kept for
    /// merchants that show it (EU price-indication rules); `None` otherwise, or when no
    /// earlier price was in force in that window.
    pub prior_minor: Option<i64>,
}

/// Who set the price in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    /// The product's base price (no rule has set one since it was created).
    Base,
    /// A rule's decision.
    Rule,
}

impl PriceSource {
    fn as_str(self) -> &'static str {
        match self {
            PriceSource::Base => "base",
            PriceSource::Rule => "rule",
        }
    }
}

const PRICE_COLUMNS: &str = "sku, price_minor, currency, version, effective_at, prior_price_minor";

/// The price in force and who set it, read in the writer's transaction.
pub async fn in_force(tx: &mut Tx, merchant: MerchantId, sku: &Sku) -> Result<Option<(i64, PriceSource)>, StoreError> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT price_minor, source FROM current_prices WHERE merchant_id = $1 AND sku = $2")
            .bind(merchant.to_string())
            .bind(sku.as_str())
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|(price, source)| (price, if source == "base" { PriceSource::Base } else { PriceSource::Rule })))
}

/// A price put in force by its product (created, or its base price changed).
pub struct BasePrice<'a> {
    pub sku: &'a Sku,
    pub price: Money,
    pub effective_at: DateTime<Utc>,
    pub prior_minor: Option<i64>,
}

/// Puts a product's base price in force (a new row at version 1, or the next version).
pub async fn put_base(tx: &mut Tx, merchant: MerchantId, base: &BasePrice<'_>) -> Result<CurrentPrice, StoreError> {
    let sql = format!(
        "INSERT INTO current_prices (merchant_id, sku, price_minor, currency, version, effective_at, source,
                                     prior_price_minor)
         VALUES ($1, $2, $3, $4, 1, $5, '{}', $6)
         ON CONFLICT (merchant_id, sku) DO UPDATE SET
             price_minor = excluded.price_minor,
             version = current_prices.version + 1,
             effective_at = excluded.effective_at,
             prior_price_minor = excluded.prior_price_minor,
             source = excluded.source
         RETURNING {PRICE_COLUMNS}",
        PriceSource::Base.as_str()
    );
    let row: PriceRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(merchant.to_string())
        .bind(base.sku.as_str())
        .bind(base.price.minor())
        .bind(base.price.currency().code())
        .bind(base.effective_at.timestamp_micros())
        .bind(base.prior_minor)
        .fetch_one(&mut **tx)
        .await?;
    CurrentPrice::try_from(row)
}

/// `skus` as a list of rows to select by.
fn sku_list<'a>(skus: &[&'a Sku]) -> Rows<'a> {
    let mut list = Rows::new(&[("sku", Kind::Text)]);
    for sku in skus {
        list.push([Cell::Text(sku.as_str())]);
    }
    list
}

/// The prices in force of `skus` and who set them, read in the writer's transaction (SKUs
/// without one are absent).
pub async fn in_force_many(
    tx: &mut Tx,
    merchant: MerchantId,
    skus: &[&Sku],
) -> Result<HashMap<String, (i64, PriceSource)>, StoreError> {
    let list = sku_list(skus);
    let mut found = HashMap::with_capacity(skus.len());
    for chunk in list.chunks(tx.backend()) {
        let sql = format!(
            "SELECT sku, price_minor, source FROM current_prices
             WHERE merchant_id = $1 AND sku IN (SELECT u.sku FROM {})",
            chunk.source(2)
        );
        let query = sqlx::query_as::<_, (String, i64, String)>(sqlx::AssertSqlSafe(sql)).bind(merchant.to_string());
        for (sku, price, source) in chunk.bind(query).fetch_all(&mut **tx).await? {
            found.insert(sku, (price, if source == "base" { PriceSource::Base } else { PriceSource::Rule }));
        }
    }
    Ok(found)
}

/// The prices in force of `skus` and who set them, read in the writer's transaction (SKUs
/// without one are absent).
pub async fn current_many(
    tx: &mut Tx,
    merchant: MerchantId,
    skus: &[&Sku],
) -> Result<HashMap<String, (CurrentPrice, PriceSource)>, StoreError> {
    let sources = in_force_many(tx, merchant, skus).await?;
    let list = sku_list(skus);
    let mut found = HashMap::with_capacity(skus.len());
    for chunk in list.chunks(tx.backend()) {
        let sql = format!(
            "SELECT {PRICE_COLUMNS} FROM current_prices WHERE merchant_id = $1 AND sku IN (SELECT u.sku FROM {})",
            chunk.source(2)
        );
        let query = sqlx::query_as::<_, PriceRow>(sqlx::AssertSqlSafe(sql)).bind(merchant.to_string());
        for price in convert_all::<_, CurrentPrice>(chunk.bind(query).fetch_all(&mut **tx).await?)? {
            let source = sources.get(price.sku.as_str()).map_or(PriceSource::Rule, |(_, source)| *source);
            found.insert(price.sku.to_string(), (price, source));
        }
    }
    Ok(found)
}

/// Puts many products' base prices in force at once (each SKU at most once), all taking
/// effect at `effective_at`; returns them as they now are.
pub async fn put_base_many(
    tx: &mut Tx,
    merchant: MerchantId,
    bases: &[BasePrice<'_>],
) -> Result<Vec<CurrentPrice>, StoreError> {
    const COLUMNS: &[(&str, Kind)] = &[
        ("sku", Kind::Text),
        ("price_minor", Kind::BigInt),
        ("currency", Kind::Text),
        ("effective_at", Kind::BigInt),
        ("prior_price_minor", Kind::BigInt),
    ];
    let currencies: Vec<_> = bases.iter().map(|b| b.price.currency()).collect();
    let mut rows = Rows::new(COLUMNS);
    for (base, currency) in bases.iter().zip(&currencies) {
        rows.push([
            Cell::Text(base.sku.as_str()),
            Cell::BigInt(base.price.minor()),
            Cell::Text(currency.code()),
            Cell::BigInt(base.effective_at.timestamp_micros()),
            Cell::opt_bigint(base.prior_minor),
        ]);
    }
    let mut written = Vec::with_capacity(bases.len());
    for chunk in rows.chunks(tx.backend()) {
        let sql = format!(
            "INSERT INTO current_prices (merchant_id, sku, price_minor, currency, version, effective_at, source,
                                         prior_price_minor)
             SELECT $1, u.sku, u.price_minor, u.currency, 1, u.effective_at, '{}', u.prior_price_minor
             FROM {} WHERE true
             ON CONFLICT (merchant_id, sku) DO UPDATE SET
                 price_minor = excluded.price_minor,
                 version = current_prices.version + 1,
                 effective_at = excluded.effective_at,
                 prior_price_minor = excluded.prior_price_minor
             RETURNING {PRICE_COLUMNS}",
            PriceSource::Base.as_str(),
            chunk.source(2)
        );
        let query = sqlx::query_as::<_, PriceRow>(sqlx::AssertSqlSafe(sql)).bind(merchant.to_string());
        written.extend(chunk.bind(query).fetch_all(&mut **tx).await?);
    }
    convert_all(written)
}

/// Ends a product's price in force; returns it (price, currency) when there was one.
pub async fn remove(tx: &mut Tx, merchant: MerchantId, sku: &Sku) -> Result<Option<(i64, String)>, StoreError> {
    Ok(sqlx::query_as("DELETE FROM current_prices WHERE merchant_id = $1 AND sku = $2 RETURNING price_minor, currency")
        .bind(merchant.to_string())
        .bind(sku.as_str())
        .fetch_optional(&mut **tx)
        .await?)
}

/// A price a rule moved: the SKU, the new price and its prior price.
pub struct MovedPrice<'a> {
    pub sku: &'a Sku,
    pub price_minor: i64,
    pub prior_minor: Option<i64>,
}

/// What [`move_prices`] sets, from the moved rows `u`, which rows it sets it in, and what it
/// returns.
const MOVE: &str = "price_minor = u.price_minor, prior_price_minor = u.prior_price_minor, \
     version = current_prices.version + 1, effective_at = $2, source = 'rule'";
const MOVED: &str = "current_prices.merchant_id = $1 AND current_prices.sku = u.sku";
const MOVED_COLUMNS: &str = "current_prices.sku, current_prices.price_minor, current_prices.currency, \
     current_prices.version, current_prices.effective_at, current_prices.prior_price_minor";

/// Moves the prices a rule set (each SKU at most once), many per statement (see `bulk`);
/// returns them as they now are. A SKU without a price in force (deleted meanwhile) is left
/// out.
pub async fn move_prices(
    tx: &mut Tx,
    merchant: MerchantId,
    at: DateTime<Utc>,
    moving: &[MovedPrice<'_>],
) -> Result<Vec<CurrentPrice>, StoreError> {
    const COLUMNS: &[(&str, Kind)] =
        &[("sku", Kind::Text), ("price_minor", Kind::BigInt), ("prior_price_minor", Kind::BigInt)];
    let mut rows = Rows::new(COLUMNS);
    for row in moving {
        rows.push([Cell::Text(row.sku.as_str()), Cell::BigInt(row.price_minor), Cell::opt_bigint(row.prior_minor)]);
    }
    let mut moved = Vec::with_capacity(moving.len());
    for chunk in rows.chunks(tx.backend()) {
        // A join that walks the primary key for each listed row. SQLite needs the rows
        // materialized (a join against `json_each` parses the JSON again for every row it
        // meets) and the `IN` (or it joins the whole catalogue against the list); PostgreSQL
        // needs neither, and the `IN` would cost it a hashed copy of the rows.
        let sql = match tx.backend() {
            Backend::Postgres => format!(
                "UPDATE current_prices SET {MOVE} FROM {} WHERE {MOVED} RETURNING {MOVED_COLUMNS}",
                chunk.source(3)
            ),
            Backend::Sqlite => format!(
                "WITH u AS MATERIALIZED (SELECT u.sku, u.price_minor, u.prior_price_minor FROM {})
                 UPDATE current_prices SET {MOVE} FROM u WHERE {MOVED} AND current_prices.sku IN (SELECT sku FROM u)
                 RETURNING {MOVED_COLUMNS}",
                chunk.source(3)
            ),
        };
        let query = sqlx::query_as::<_, PriceRow>(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(at.timestamp_micros());
        moved.extend(convert_all::<_, CurrentPrice>(chunk.bind(query).fetch_all(&mut **tx).await?)?);
    }
    Ok(moved)
}

/// Marks a price as set by hand or by a rule (not the base price), without a new version: an
/// override put in force at the price already in force.
pub async fn mark_set(tx: &mut Tx, merchant: MerchantId, sku: &Sku) -> Result<(), StoreError> {
    sqlx::query("UPDATE current_prices SET source = 'rule' WHERE merchant_id = $1 AND sku = $2")
        .bind(merchant.to_string())
        .bind(sku.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether the merchant's lookups carry the prior price, read in the writer's transaction.
pub async fn shows_prior_price(tx: &mut Tx, merchant: MerchantId) -> Result<bool, StoreError> {
    let shown: Option<(i64,)> =
        sqlx::query_as("SELECT CASE WHEN show_prior_price THEN 1 ELSE 0 END FROM merchants WHERE id = $1")
            .bind(merchant.to_string())
            .fetch_optional(&mut **tx)
            .await?;
    Ok(shown.is_some_and(|(shown,)| shown != 0))
}

/// Sets whether the merchant's lookups carry the prior price.
pub async fn set_shows_prior_price(tx: &mut Tx, merchant: MerchantId, show: bool) -> Result<(), StoreError> {
    sqlx::query("UPDATE merchants SET show_prior_price = $2 WHERE id = $1")
        .bind(merchant.to_string())
        .bind(show)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A page of the merchant's prices in force after `after`, in SKU order, read in the writer's
/// transaction.
pub async fn page_in(
    tx: &mut Tx,
    merchant: MerchantId,
    after: &str,
    limit: u32,
) -> Result<Vec<CurrentPrice>, StoreError> {
    let sql =
        format!("SELECT {PRICE_COLUMNS} FROM current_prices WHERE merchant_id = $1 AND sku > $2 ORDER BY sku LIMIT $3");
    let rows = sqlx::query_as::<_, PriceRow>(sqlx::AssertSqlSafe(sql))
        .bind(merchant.to_string())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut **tx)
        .await?;
    convert_all(rows)
}

/// One product's price in force, read in the writer's transaction.
pub async fn current(tx: &mut Tx, merchant: MerchantId, sku: &Sku) -> Result<Option<CurrentPrice>, StoreError> {
    let sql = format!("SELECT {PRICE_COLUMNS} FROM current_prices WHERE merchant_id = $1 AND sku = $2");
    let row = sqlx::query_as::<_, PriceRow>(sqlx::AssertSqlSafe(sql))
        .bind(merchant.to_string())
        .bind(sku.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(convert_all(row.into_iter().collect())?.pop())
}

/// Sets a price's prior price (without a new version: the price itself did not change).
pub async fn set_prior(tx: &mut Tx, merchant: MerchantId, sku: &Sku, prior: Option<i64>) -> Result<(), StoreError> {
    sqlx::query("UPDATE current_prices SET prior_price_minor = $3 WHERE merchant_id = $1 AND sku = $2")
        .bind(merchant.to_string())
        .bind(sku.as_str())
        .bind(prior)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    pub async fn current_price(&self, merchant: MerchantId, sku: &Sku) -> Result<Option<CurrentPrice>, StoreError> {
        let sql = format!("SELECT {PRICE_COLUMNS} FROM current_prices WHERE merchant_id = $1 AND sku = $2");
        sqlx::query_as::<_, PriceRow>(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(sku.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(CurrentPrice::try_from)
            .transpose()
    }

    /// The merchant's prices in force for SKUs in `first..=last`.
    pub async fn prices_between(
        &self,
        merchant: MerchantId,
        first: &str,
        last: &str,
    ) -> Result<Vec<CurrentPrice>, StoreError> {
        let sql =
            format!("SELECT {PRICE_COLUMNS} FROM current_prices WHERE merchant_id = $1 AND sku >= $2 AND sku <= $3");
        let rows = sqlx::query_as::<_, PriceRow>(sqlx::AssertSqlSafe(sql))
            .bind(merchant.to_string())
            .bind(first)
            .bind(last)
            .fetch_all(&self.pool)
            .await?;
        convert_all(rows)
    }

    /// Every merchant's prices in force, a page at a time in (merchant, SKU) order, after the
    /// given key: for warming the price cache and re-reading a replica's notes. A row-value
    /// comparison, not `merchant_id > $1 OR (merchant_id = $1 AND sku > $2)`: with the `OR`,
    /// PostgreSQL scanned the primary key from the merchant's first SKU on every page, so
    /// re-reading a large range cost the square of its pages (40 % of the database's time
    /// during a catalogue import, logged with `log_min_duration_statement`).
    pub async fn current_prices_after(
        &self,
        after: Option<(MerchantId, &Sku)>,
        limit: u32,
    ) -> Result<Vec<(MerchantId, CurrentPrice)>, StoreError> {
        let (merchant, sku) = after.map_or((String::new(), ""), |(m, s)| (m.to_string(), s.as_str()));
        let sql = format!(
            "SELECT merchant_id, {PRICE_COLUMNS} FROM current_prices
             WHERE (merchant_id, sku) > ($1, $2)
             ORDER BY merchant_id, sku LIMIT $3"
        );
        let rows = sqlx::query_as::<_, MerchantPriceRow>(sqlx::AssertSqlSafe(sql))
            .bind(merchant)
            .bind(sku)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        convert_all(rows)
    }
}

/// The product version and price version of the merchant's SKUs in `first..=last`, read in
/// the writer's transaction: a decision applies only to the versions it evaluated.
pub async fn versions_between(
    tx: &mut Tx,
    merchant: MerchantId,
    first: &str,
    last: &str,
) -> Result<std::collections::HashMap<String, Versions>, StoreError> {
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT p.sku, p.version, p.created_at, c.version FROM products p
         JOIN current_prices c ON c.merchant_id = p.merchant_id AND c.sku = p.sku
         WHERE p.merchant_id = $1 AND p.sku >= $2 AND p.sku <= $3",
    )
    .bind(merchant.to_string())
    .bind(first)
    .bind(last)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(sku, product, created, price)| (sku, Versions { product, created, price })).collect())
}

/// What a decision must have evaluated to still apply: the product's version and its
/// incarnation (`created_at` in microseconds: a product deleted and made again starts at
/// version 1 once more), and the price's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub product: i64,
    pub created: i64,
    pub price: i64,
}

/// [`versions_between`] for a list of SKUs (a targeted batch, which may be sparse).
pub async fn versions_of(
    tx: &mut Tx,
    merchant: MerchantId,
    skus: &[&Sku],
) -> Result<std::collections::HashMap<String, Versions>, StoreError> {
    let merchant_id = merchant.to_string();
    let mut versions = std::collections::HashMap::with_capacity(skus.len());
    for chunk in skus.chunks(500) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT p.sku, p.version, p.created_at, c.version FROM products p
             JOIN current_prices c ON c.merchant_id = p.merchant_id AND c.sku = p.sku
             WHERE p.merchant_id = $1 AND p.sku IN ({})",
            list.join(", ")
        );
        let mut query = sqlx::query_as::<_, (String, i64, i64, i64)>(sqlx::AssertSqlSafe(sql)).bind(&merchant_id);
        for sku in chunk {
            query = query.bind(sku.as_str());
        }
        for (sku, product, created, price) in query.fetch_all(&mut **tx).await? {
            versions.insert(sku, Versions { product, created, price });
        }
    }
    Ok(versions)
}
