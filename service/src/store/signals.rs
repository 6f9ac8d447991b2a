//! Market and demand signals as stored: the latest competitor observation per (product,
//! competitor), demand as hourly counters per kind (each event counted once, by its id, within
//! the deduplication window) read over trailing windows, and the latest inventory level.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::bulk::{Cell, Kind, Rows};
use super::rows::corrupt;
use super::{CurrentPrice, Store, StoreError, Tx, from_micros, now};
use crate::domain::{Currency, MerchantId, Money, Sku};

/// One competitor's offer for one of the merchant's SKUs, as a feed saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The feed's id for the observation.
    pub id: String,
    pub sku: Sku,
    pub competitor: String,
    pub price: Money,
    pub in_stock: bool,
    pub observed_at: DateTime<Utc>,
}

/// An observation in another currency than its product's: its index in its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrongCurrency {
    pub index: usize,
    pub sku: Sku,
    pub product_currency: String,
    pub currency: Currency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DemandKind {
    View,
    AddToCart,
    /// Units sold.
    Sale,
    /// The stock level at that time (not an increment).
    Inventory,
}

impl DemandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DemandKind::View => "view",
            DemandKind::AddToCart => "add_to_cart",
            DemandKind::Sale => "sale",
            DemandKind::Inventory => "inventory",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemandEvent {
    pub id: String,
    pub sku: Sku,
    pub kind: DemandKind,
    pub quantity: i64,
    pub occurred_at: DateTime<Utc>,
}

/// Demand over trailing windows ending at a given time.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct DemandSummary {
    pub views_1d: i64,
    pub views_7d: i64,
    pub add_to_carts_1d: i64,
    pub add_to_carts_7d: i64,
    pub units_sold_1d: i64,
    pub units_sold_7d: i64,
    pub units_sold_30d: i64,
    #[sqlx(skip)]
    pub inventory: Option<i64>,
}

/// What rules need beyond the product, for every SKU of a range, read in a few queries.
#[derive(Debug, Default)]
pub struct Signals {
    pub prices: HashMap<Sku, CurrentPrice>,
    /// The latest observation of each competitor, by SKU.
    pub observations: HashMap<Sku, Vec<Observation>>,
    /// The (SKU, competitor) observations the merchant confirmed although implausible.
    pub confirmed: HashSet<(Sku, String)>,
    /// The merchant's plausibility ratio (0: no check), see `pricing::plausible`.
    pub max_competitor_ratio: i64,
    pub demand: HashMap<Sku, DemandSummary>,
}

const DAY_MICROS: i64 = 86_400_000_000;

/// Marks the stored observations of these (SKU, competitor) pairs confirmed, in the writer's
/// transaction; returns the SKUs of those that were not confirmed before.
pub async fn confirm_observations(
    tx: &mut Tx,
    merchant: MerchantId,
    pairs: &[(Sku, String)],
) -> Result<Vec<Sku>, StoreError> {
    let mut changed = Vec::new();
    for (sku, competitor) in pairs {
        let updated = sqlx::query(
            "UPDATE competitor_observations SET confirmed = TRUE
             WHERE merchant_id = $1 AND sku = $2 AND competitor = $3 AND confirmed = FALSE",
        )
        .bind(merchant.to_string())
        .bind(sku.as_str())
        .bind(competitor)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if updated > 0 && !changed.contains(sku) {
            changed.push(sku.clone());
        }
    }
    Ok(changed)
}

/// Sets the merchant's plausibility ratio, in the writer's transaction.
pub async fn set_max_competitor_ratio(tx: &mut Tx, merchant: MerchantId, ratio: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE merchants SET max_competitor_ratio = $2 WHERE id = $1")
        .bind(merchant.to_string())
        .bind(ratio)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records competitor observations in the writer's transaction (the latest per competitor
/// wins; an older or replayed one changes nothing); returns the SKUs whose offers changed.
///
/// Within the batch, the newest observation of each (SKU, competitor) is the one written (the
/// first of equally new ones), then one bulk upsert per chunk applies it where it is newer
/// than the stored one: the same outcome as writing the batch in order, one row at a time.
pub async fn record_observations(
    tx: &mut Tx,
    merchant: MerchantId,
    observations: &[Observation],
) -> Result<Vec<Sku>, StoreError> {
    const COLUMNS: &[(&str, Kind)] = &[
        ("sku", Kind::Text),
        ("competitor", Kind::Text),
        ("price_minor", Kind::BigInt),
        ("currency", Kind::Text),
        ("in_stock", Kind::Bool),
        ("observed_at", Kind::BigInt),
        ("observation_id", Kind::Text),
    ];
    let mut newest: BTreeMap<(&Sku, &str), &Observation> = BTreeMap::new();
    for o in observations {
        newest
            .entry((&o.sku, o.competitor.as_str()))
            .and_modify(|kept| {
                if o.observed_at > kept.observed_at {
                    *kept = o;
                }
            })
            .or_insert(o);
    }
    let currencies: Vec<Currency> = newest.values().map(|o| o.price.currency()).collect();
    let mut rows = Rows::new(COLUMNS);
    for (o, currency) in newest.values().zip(&currencies) {
        rows.push([
            Cell::Text(o.sku.as_str()),
            Cell::Text(&o.competitor),
            Cell::BigInt(o.price.minor()),
            Cell::Text(currency.code()),
            Cell::Bool(o.in_stock),
            Cell::BigInt(o.observed_at.timestamp_micros()),
            Cell::Text(&o.id),
        ]);
    }
    let merchant_id = merchant.to_string();
    let received = now().timestamp_micros();
    let mut changed = BTreeSet::new();
    for chunk in rows.chunks(tx.backend()) {
        let sql = format!(
            "INSERT INTO competitor_observations (merchant_id, sku, competitor, price_minor, currency,
                                                  in_stock, observed_at, observation_id, received_at)
             SELECT $1, u.sku, u.competitor, u.price_minor, u.currency, u.in_stock, u.observed_at,
                    u.observation_id, $2
             FROM {} WHERE true
             ON CONFLICT (merchant_id, sku, competitor) DO UPDATE SET
                 price_minor = excluded.price_minor, currency = excluded.currency,
                 in_stock = excluded.in_stock, observed_at = excluded.observed_at,
                 observation_id = excluded.observation_id, received_at = excluded.received_at,
                 confirmed = FALSE
             WHERE excluded.observed_at > competitor_observations.observed_at
             RETURNING sku",
            chunk.source(3)
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&merchant_id).bind(received);
        for row in chunk.bind(query).fetch_all(&mut **tx).await? {
            changed.insert(row.try_get::<String, _>(0)?);
        }
    }
    parse_skus(changed)
}

fn parse_skus(skus: BTreeSet<String>) -> Result<Vec<Sku>, StoreError> {
    skus.into_iter().map(|sku| Sku::parse(&sku).map_err(|e| corrupt("sku", e))).collect()
}

/// Demand is kept in hourly buckets (see the migration `0009_demand_buckets.sql`).
pub const BUCKET_MICROS: i64 = 3_600_000_000;
/// How long a counted event's id is kept, so that a replay within it never counts twice. An
/// event older than this is outside every window (the longest is 30 days) and is not counted.
pub const DEDUP_DAYS: i64 = 35;
/// The longest demand window a context reads.
pub const LONGEST_WINDOW_DAYS: i64 = 30;

fn bucket_of(micros: i64) -> i64 {
    micros.div_euclid(BUCKET_MICROS) * BUCKET_MICROS
}

/// Records demand events in the writer's transaction: a counted event (view, add to cart,
/// sale) once per id, into its hour's bucket; an inventory level when it is newer than the
/// stored one. Returns the SKUs whose demand changed.
///
/// In bulk, with the outcome of writing the batch in order one event at a time: the ids of the
/// counted events are inserted first (the first event of an id in the batch is the one that
/// counts), and those that were new are summed per bucket and added; of a SKU's inventory
/// levels, the newest (by time, then id) is written where it is newer than the stored one.
pub async fn record_demand(tx: &mut Tx, merchant: MerchantId, events: &[DemandEvent]) -> Result<Vec<Sku>, StoreError> {
    let merchant_id = merchant.to_string();
    let backend = tx.backend();
    let dedup_from = now().timestamp_micros() - DEDUP_DAYS * DAY_MICROS;
    let mut changed = BTreeSet::new();

    // Counted events: each id once, the first in the batch; those older than the window never.
    let mut counted: BTreeMap<&str, &DemandEvent> = BTreeMap::new();
    let mut newest_level: BTreeMap<&Sku, &DemandEvent> = BTreeMap::new();
    for e in events {
        if e.kind == DemandKind::Inventory {
            newest_level
                .entry(&e.sku)
                .and_modify(|kept| {
                    if (e.occurred_at, e.id.as_str()) > (kept.occurred_at, kept.id.as_str()) {
                        *kept = e;
                    }
                })
                .or_insert(e);
        } else if e.occurred_at.timestamp_micros() >= dedup_from {
            counted.entry(e.id.as_str()).or_insert(e);
        }
    }
    let mut ids = Rows::new(&[("event_id", Kind::Text), ("occurred_at", Kind::BigInt)]);
    for e in counted.values() {
        ids.push([Cell::Text(&e.id), Cell::BigInt(e.occurred_at.timestamp_micros())]);
    }
    let mut first_seen = BTreeSet::new();
    for chunk in ids.chunks(backend) {
        let sql = format!(
            "INSERT INTO demand_event_ids (merchant_id, event_id, occurred_at)
             SELECT $1, u.event_id, u.occurred_at FROM {} WHERE true
             ON CONFLICT (merchant_id, event_id) DO NOTHING
             RETURNING event_id",
            chunk.source(2)
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&merchant_id);
        for row in chunk.bind(query).fetch_all(&mut **tx).await? {
            first_seen.insert(row.try_get::<String, _>(0)?);
        }
    }
    let mut sums: BTreeMap<(&str, &str, i64), i64> = BTreeMap::new();
    for e in counted.values().filter(|e| first_seen.contains(&e.id)) {
        *sums.entry((e.sku.as_str(), e.kind.as_str(), bucket_of(e.occurred_at.timestamp_micros()))).or_default() +=
            e.quantity;
        changed.insert(e.sku.as_str().to_owned());
    }
    let mut buckets = Rows::new(&[
        ("sku", Kind::Text),
        ("kind", Kind::Text),
        ("bucket_start", Kind::BigInt),
        ("quantity", Kind::BigInt),
    ]);
    for ((sku, kind, bucket), quantity) in &sums {
        buckets.push([Cell::Text(sku), Cell::Text(kind), Cell::BigInt(*bucket), Cell::BigInt(*quantity)]);
    }
    for chunk in buckets.chunks(backend) {
        let sql = format!(
            "INSERT INTO demand_buckets (merchant_id, sku, kind, bucket_start, quantity)
             SELECT $1, u.sku, u.kind, u.bucket_start, u.quantity FROM {} WHERE true
             ON CONFLICT (merchant_id, sku, kind, bucket_start) DO UPDATE SET
                 quantity = demand_buckets.quantity + excluded.quantity",
            chunk.source(2)
        );
        chunk.bind(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&merchant_id)).execute(&mut **tx).await?;
    }

    let mut levels = Rows::new(&[
        ("sku", Kind::Text),
        ("quantity", Kind::BigInt),
        ("occurred_at", Kind::BigInt),
        ("event_id", Kind::Text),
    ]);
    for e in newest_level.values() {
        levels.push([
            Cell::Text(e.sku.as_str()),
            Cell::BigInt(e.quantity),
            Cell::BigInt(e.occurred_at.timestamp_micros()),
            Cell::Text(&e.id),
        ]);
    }
    for chunk in levels.chunks(backend) {
        let sql = format!(
            "INSERT INTO inventory_levels (merchant_id, sku, quantity, occurred_at, event_id)
             SELECT $1, u.sku, u.quantity, u.occurred_at, u.event_id FROM {} WHERE true
             ON CONFLICT (merchant_id, sku) DO UPDATE SET
                 quantity = excluded.quantity, occurred_at = excluded.occurred_at, event_id = excluded.event_id
             WHERE excluded.occurred_at > inventory_levels.occurred_at
                OR (excluded.occurred_at = inventory_levels.occurred_at AND excluded.event_id > inventory_levels.event_id)
             RETURNING sku",
            chunk.source(2)
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&merchant_id);
        for row in chunk.bind(query).fetch_all(&mut **tx).await? {
            changed.insert(row.try_get::<String, _>(0)?);
        }
    }
    parse_skus(changed)
}

impl Store {
    /// Forgets demand that no window and no deduplication needs any more: buckets older than
    /// the longest window, ids older than the deduplication window. Returns the rows removed.
    pub async fn prune_demand(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let at = at.timestamp_micros();
        let buckets = sqlx::query("DELETE FROM demand_buckets WHERE bucket_start <= $1")
            .bind(bucket_of(at) - LONGEST_WINDOW_DAYS * DAY_MICROS)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let ids = sqlx::query("DELETE FROM demand_event_ids WHERE occurred_at < $1")
            .bind(at - DEDUP_DAYS * DAY_MICROS)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(buckets + ids)
    }

    /// The merchant's plausibility ratio for competitor prices (0: no check).
    pub async fn max_competitor_ratio(&self, merchant: MerchantId) -> Result<i64, StoreError> {
        let ratio: Option<i64> = sqlx::query_scalar("SELECT max_competitor_ratio FROM merchants WHERE id = $1")
            .bind(merchant.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(ratio.unwrap_or(0))
    }

    pub async fn signals_between(
        &self,
        merchant: MerchantId,
        first: &Sku,
        last: &Sku,
        now: DateTime<Utc>,
    ) -> Result<Signals, StoreError> {
        let merchant_id = merchant.to_string();
        let (first, last, end) = (first.as_str(), last.as_str(), now.timestamp_micros());
        let mut signals = Signals::default();
        for price in self.prices_between(merchant, first, last).await? {
            signals.prices.insert(price.sku.clone(), price);
        }
        signals.max_competitor_ratio = self.max_competitor_ratio(merchant).await?;
        let observations = sqlx::query_as::<_, ObservationRow>(
            "SELECT observation_id, sku, competitor, price_minor, currency,
                CASE WHEN in_stock THEN 1 ELSE 0 END AS in_stock, observed_at,
                CASE WHEN confirmed THEN 1 ELSE 0 END AS confirmed
             FROM competitor_observations WHERE merchant_id = $1 AND sku >= $2 AND sku <= $3
             ORDER BY sku, competitor",
        )
        .bind(&merchant_id)
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        for row in observations {
            let confirmed = row.confirmed != 0;
            let observation = Observation::try_from(row)?;
            if confirmed {
                signals.confirmed.insert((observation.sku.clone(), observation.competitor.clone()));
            }
            signals.observations.entry(observation.sku.clone()).or_default().push(observation);
        }
        // A window of D days is the last D x 24 hourly buckets, the current one included.
        let current = bucket_of(end);
        let demand = sqlx::query_as::<_, DemandRow>(
            "SELECT sku,
               CAST(COALESCE(SUM(CASE WHEN kind = 'view' AND bucket_start > $4 THEN quantity ELSE 0 END), 0) AS BIGINT) AS views_1d,
               CAST(COALESCE(SUM(CASE WHEN kind = 'view' AND bucket_start > $5 THEN quantity ELSE 0 END), 0) AS BIGINT) AS views_7d,
               CAST(COALESCE(SUM(CASE WHEN kind = 'add_to_cart' AND bucket_start > $4 THEN quantity ELSE 0 END), 0) AS BIGINT) AS add_to_carts_1d,
               CAST(COALESCE(SUM(CASE WHEN kind = 'add_to_cart' AND bucket_start > $5 THEN quantity ELSE 0 END), 0) AS BIGINT) AS add_to_carts_7d,
               CAST(COALESCE(SUM(CASE WHEN kind = 'sale' AND bucket_start > $4 THEN quantity ELSE 0 END), 0) AS BIGINT) AS units_sold_1d,
               CAST(COALESCE(SUM(CASE WHEN kind = 'sale' AND bucket_start > $5 THEN quantity ELSE 0 END), 0) AS BIGINT) AS units_sold_7d,
               CAST(COALESCE(SUM(CASE WHEN kind = 'sale' THEN quantity ELSE 0 END), 0) AS BIGINT) AS units_sold_30d
             FROM demand_buckets
             WHERE merchant_id = $1 AND sku >= $2 AND sku <= $3 AND bucket_start > $6 AND bucket_start <= $7
             GROUP BY sku",
        )
        .bind(&merchant_id)
        .bind(first)
        .bind(last)
        .bind(current - DAY_MICROS)
        .bind(current - 7 * DAY_MICROS)
        .bind(current - LONGEST_WINDOW_DAYS * DAY_MICROS)
        .bind(current)
        .fetch_all(&self.pool)
        .await?;
        for row in demand {
            let sku = Sku::parse(&row.sku).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            signals.demand.insert(sku, row.summary);
        }
        let levels: Vec<(String, i64)> = sqlx::query_as(
            "SELECT sku, quantity FROM inventory_levels WHERE merchant_id = $1 AND sku >= $2 AND sku <= $3",
        )
        .bind(&merchant_id)
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        for (sku, quantity) in levels {
            let sku = Sku::parse(&sku).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            signals.demand.entry(sku).or_default().inventory = Some(quantity);
        }
        Ok(signals)
    }
}

// Rows as the databases return them.

#[derive(sqlx::FromRow)]
pub(super) struct ObservationRow {
    observation_id: String,
    sku: String,
    competitor: String,
    price_minor: i64,
    currency: String,
    /// 0 or 1.
    in_stock: i64,
    observed_at: i64,
    /// 0 or 1; 0 where the query does not ask.
    #[sqlx(default)]
    confirmed: i64,
}

impl TryFrom<ObservationRow> for Observation {
    type Error = StoreError;
    fn try_from(row: ObservationRow) -> Result<Self, StoreError> {
        let currency = Currency::parse(&row.currency).map_err(|e| corrupt("observation currency", e))?;
        Ok(Observation {
            id: row.observation_id,
            sku: Sku::parse(&row.sku).map_err(|e| corrupt("sku", e))?,
            competitor: row.competitor,
            price: Money::new(row.price_minor, currency),
            in_stock: row.in_stock != 0,
            observed_at: from_micros(row.observed_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DemandRow {
    pub(super) sku: String,
    #[sqlx(flatten)]
    pub(super) summary: DemandSummary,
}
