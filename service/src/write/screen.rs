//! Observations checked against their products, in the writer's transaction: one in another
//! currency than its product is refused (a rule could not compare it, and it was silently
//! ignored before), and one implausibly far from the product's base price is stored but flagged
//! (see [`crate::pricing::plausible`]; the context builder keeps it out of rules until it is
//! confirmed). Observations of SKUs without a product are not checked: there is nothing to
//! check them against yet, and the context builder leaves out a currency that does not match.

use std::collections::HashSet;

use crate::domain::{MerchantId, Sku};
use crate::pricing::plausible::plausible;
use crate::store::{Observation, StoreError, Tx, WrongCurrency, quotas};

/// An observation stored but kept out of rules until confirmed: its index in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flagged {
    pub index: usize,
    pub sku: Sku,
    pub competitor: String,
    pub price_minor: i64,
    pub base_price_minor: i64,
}

/// What the screen found in a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Screened {
    pub wrong_currency: Vec<WrongCurrency>,
    pub flagged: Vec<Flagged>,
    /// The batch's SKUs that have a product (for the quota on SKUs without one).
    pub(super) with_product: HashSet<String>,
}

pub(super) async fn screen(
    tx: &mut Tx,
    merchant: MerchantId,
    observations: &[Observation],
) -> Result<Screened, StoreError> {
    let mut skus: Vec<Sku> = observations.iter().map(|o| o.sku.clone()).collect();
    skus.sort();
    skus.dedup();
    let references = quotas::product_references(tx, merchant, &skus).await?;
    let ratio: i64 = sqlx::query_scalar("SELECT max_competitor_ratio FROM merchants WHERE id = $1")
        .bind(merchant.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .unwrap_or(0);
    let mut screened = Screened { with_product: references.keys().cloned().collect(), ..Screened::default() };
    for (index, o) in observations.iter().enumerate() {
        let Some((currency, base)) = references.get(o.sku.as_str()) else { continue };
        if currency != o.price.currency().code() {
            screened.wrong_currency.push(WrongCurrency {
                index,
                sku: o.sku.clone(),
                product_currency: currency.clone(),
                currency: o.price.currency(),
            });
        } else if !plausible(o.price.minor(), *base, ratio) {
            screened.flagged.push(Flagged {
                index,
                sku: o.sku.clone(),
                competitor: o.competitor.clone(),
                price_minor: o.price.minor(),
                base_price_minor: *base,
            });
        }
    }
    Ok(screened)
}
