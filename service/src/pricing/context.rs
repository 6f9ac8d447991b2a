//! Assembling a rule's context from the store: the product, its price in force, the latest
//! observation of each competitor (with its age, marked stale past the staleness window), and
//! demand over trailing windows, all as of one `now`.

use chrono::{DateTime, Utc};

use crate::domain::{MerchantId, Product};
use crate::sandbox::{CompetitorOffer, Demand, RuleContext};
use crate::store::{CurrentPrice, Store, StoreError};

pub async fn assemble(
    store: &dyn Store,
    merchant: MerchantId,
    product: &Product,
    price: Option<&CurrentPrice>,
    now: DateTime<Utc>,
    stale_after_secs: u64,
) -> Result<RuleContext, StoreError> {
    // Millisecond precision: what the rule receives, so what a replay must give it.
    let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    let observations = store.observations(merchant, &product.sku).await?;
    let demand = store.demand_summary(merchant, &product.sku, now).await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(RuleContext {
        sku: product.sku.to_string(),
        currency: product.currency().to_string(),
        cost_minor: product.cost.minor(),
        current_price_minor: price.map_or(product.base_price.minor(), |p| p.price.minor()),
        base_price_minor: product.base_price.minor(),
        competitors: observations
            .into_iter()
            .map(|o| {
                let age_seconds = (now - o.observed_at).num_seconds().max(0);
                CompetitorOffer {
                    competitor: o.competitor,
                    price_minor: o.price.minor(),
                    currency: Some(o.price.currency().to_string()),
                    in_stock: o.in_stock,
                    age_seconds,
                    stale: u64::try_from(age_seconds).unwrap_or(0) > stale_after_secs,
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
    })
}
