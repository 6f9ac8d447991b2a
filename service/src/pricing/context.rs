//! Assembling a rule's context: the product, its price in force, the latest observation of
//! each competitor (with its age, marked stale past the staleness window; left out when it is
//! in another currency than the product, or implausible and not confirmed, see
//! [`super::plausible`]), and demand over
//! trailing windows, all as of one `now`. Signals are read for a whole range of SKUs at once
//! (a repricing batch is a contiguous range), or for one SKU as the range `[sku, sku]`.

use chrono::{DateTime, Utc};

use super::plausible::plausible;
use crate::domain::Product;
use crate::sandbox::{CompetitorOffer, Demand, RuleContext};
use crate::store::{CurrentPrice, Signals};

/// `now` at the millisecond precision the rule receives, so that a replay can give it the same.
pub fn rule_now(now: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// A product's context from signals already read; `None` when it has no price in force.
pub fn context(
    product: &Product,
    signals: &Signals,
    now: DateTime<Utc>,
    stale_after_secs: u64,
) -> Option<(RuleContext, CurrentPrice)> {
    let price = signals.prices.get(&product.sku)?.clone();
    let demand = signals.demand.get(&product.sku).cloned().unwrap_or_default();
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let competitors = signals.observations.get(&product.sku).map(Vec::as_slice).unwrap_or_default();
    let ctx = RuleContext {
        sku: product.sku.to_string(),
        currency: product.currency().to_string(),
        cost_minor: product.cost.minor(),
        current_price_minor: price.price.minor(),
        base_price_minor: product.base_price.minor(),
        competitors: competitors
            .iter()
            .filter(|o| o.price.currency() == product.currency())
            .filter(|o| {
                plausible(o.price.minor(), product.base_price.minor(), signals.max_competitor_ratio)
                    || signals.confirmed.contains(&(o.sku.clone(), o.competitor.clone()))
            })
            .map(|o| {
                let age_seconds = (now - o.observed_at).num_seconds().max(0);
                CompetitorOffer {
                    competitor: o.competitor.clone(),
                    price_minor: o.price.minor(),
                    currency: Some(o.price.currency().to_string()),
                    in_stock: o.in_stock,
                    age_seconds,
                    stale: Some(u64::try_from(age_seconds).unwrap_or(0) > stale_after_secs),
                }
            })
            .collect(),
        demand: Demand {
            views_1d: count(demand.views_1d),
            views_7d: count(demand.views_7d),
            add_to_carts_1d: count(demand.add_to_carts_1d),
            add_to_carts_7d: count(demand.add_to_carts_7d),
            units_sold_1d: count(demand.units_sold_1d),
            units_sold_7d: count(demand.units_sold_7d),
            units_sold_30d: count(demand.units_sold_30d),
            inventory: demand.inventory,
        },
        attributes: product.attributes.as_map().clone(),
        now,
    };
    Some((ctx, price))
}
