//! Market and demand signals as stored: the latest competitor observation per (product,
//! competitor), demand as hourly counters per kind (each event counted once, by its id, within
//! the deduplication window) read over trailing windows, and the latest inventory level.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::rows::{convert_all, corrupt};
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
    pub demand: HashMap<Sku, DemandSummary>,
}

const DAY_MICROS: i64 = 86_400_000_000;

/// Records competitor observations in the writer's transaction (the latest per competitor
/// wins; an older or replayed one changes nothing); returns the SKUs whose offers changed.
pub async fn record_observations(
    tx: &mut Tx,
    merchant: MerchantId,
    observations: &[Observation],
) -> Result<Vec<Sku>, StoreError> {
    let merchant_id = merchant.to_string();
    let received = now().timestamp_micros();
    let mut changed = BTreeSet::new();
    for o in observations {
        let applied = sqlx::query(
            "INSERT INTO competitor_observations (merchant_id, sku, competitor, price_minor, currency,
                                                  in_stock, observed_at, observation_id, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (merchant_id, sku, competitor) DO UPDATE SET
                 price_minor = excluded.price_minor, currency = excluded.currency,
                 in_stock = excluded.in_stock, observed_at = excluded.observed_at,
                 observation_id = excluded.observation_id, received_at = excluded.received_at
             WHERE excluded.observed_at > competitor_observations.observed_at",
        )
        .bind(&merchant_id)
        .bind(o.sku.as_str())
        .bind(&o.competitor)
        .bind(o.price.minor())
        .bind(o.price.currency().code())
        .bind(o.in_stock)
        .bind(o.observed_at.timestamp_micros())
        .bind(&o.id)
        .bind(received)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if applied > 0 {
            changed.insert(o.sku.clone());
        }
    }
    Ok(changed.into_iter().collect())
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
pub async fn record_demand(tx: &mut Tx, merchant: MerchantId, events: &[DemandEvent]) -> Result<Vec<Sku>, StoreError> {
    let merchant_id = merchant.to_string();
    let dedup_from = now().timestamp_micros() - DEDUP_DAYS * DAY_MICROS;
    let mut changed = BTreeSet::new();
    for e in events {
        let at = e.occurred_at.timestamp_micros();
        let applied = if e.kind == DemandKind::Inventory {
            sqlx::query(
                "INSERT INTO inventory_levels (merchant_id, sku, quantity, occurred_at, event_id)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (merchant_id, sku) DO UPDATE SET
                     quantity = excluded.quantity, occurred_at = excluded.occurred_at, event_id = excluded.event_id
                 WHERE excluded.occurred_at > inventory_levels.occurred_at
                    OR (excluded.occurred_at = inventory_levels.occurred_at AND excluded.event_id > inventory_levels.event_id)",
            )
            .bind(&merchant_id)
            .bind(e.sku.as_str())
            .bind(e.quantity)
            .bind(at)
            .bind(&e.id)
            .execute(&mut **tx)
            .await?
            .rows_affected()
        } else if at < dedup_from {
            0
        } else {
            let first_time = sqlx::query(
                "INSERT INTO demand_event_ids (merchant_id, event_id, occurred_at) VALUES ($1, $2, $3)
                 ON CONFLICT (merchant_id, event_id) DO NOTHING",
            )
            .bind(&merchant_id)
            .bind(&e.id)
            .bind(at)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if first_time > 0 {
                sqlx::query(
                    "INSERT INTO demand_buckets (merchant_id, sku, kind, bucket_start, quantity)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (merchant_id, sku, kind, bucket_start) DO UPDATE SET
                         quantity = demand_buckets.quantity + excluded.quantity",
                )
                .bind(&merchant_id)
                .bind(e.sku.as_str())
                .bind(e.kind.as_str())
                .bind(bucket_of(at))
                .bind(e.quantity)
                .execute(&mut **tx)
                .await?;
            }
            first_time
        };
        if applied > 0 {
            changed.insert(e.sku.clone());
        }
    }
    Ok(changed.into_iter().collect())
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
        let observations = sqlx::query_as::<_, ObservationRow>(
            "SELECT observation_id, sku, competitor, price_minor, currency,
                CASE WHEN in_stock THEN 1 ELSE 0 END AS in_stock, observed_at
             FROM competitor_observations WHERE merchant_id = $1 AND sku >= $2 AND sku <= $3
             ORDER BY sku, competitor",
        )
        .bind(&merchant_id)
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        for observation in convert_all::<_, Observation>(observations)? {
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
