//! Applying a judged batch: its decisions appended to the chain and the prices they move, in
//! one transaction. Under the chain head's lock no other writer of the merchant runs, so a
//! decision is checked against the product and price versions it evaluated: one that a
//! product change or another decision overtook is not appended but handed back (superseded),
//! so a stale evaluation never writes a price or a history record.

use std::collections::HashMap;

use crate::domain::{MerchantId, Outcome, Sku};
use crate::pricing::Judged;
use crate::pricing::prior::prior_price;
use crate::store::prices::{self, MovedPrice};
use crate::store::{CurrentPrice, RuleVersion, Store, StoreError, chain};

/// What applying a batch did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Decisions appended.
    pub recorded: usize,
    /// Prices that moved, as they now are.
    pub moved: Vec<CurrentPrice>,
    /// SKUs whose evaluation was overtaken by a change (deleted products are dropped).
    pub superseded: Vec<Sku>,
}

pub(super) async fn apply(
    store: &Store,
    merchant: MerchantId,
    version: &RuleVersion,
    judged: &[Judged],
) -> Result<Applied, StoreError> {
    let mut applied = Applied::default();
    let (Some(first), Some(last)) =
        (judged.iter().map(|j| &j.product.sku).min(), judged.iter().map(|j| &j.product.sku).max())
    else {
        return Ok(applied);
    };
    let mut tx = store.begin().await?;
    let mut head = chain::lock_head(&mut tx, merchant).await?;
    let current = prices::versions_between(&mut tx, merchant, first.as_str(), last.as_str()).await?;
    // One decision per SKU: the last judged wins should a batch hold a SKU twice.
    let mut latest: HashMap<&Sku, &Judged> = HashMap::with_capacity(judged.len());
    for j in judged {
        latest.insert(&j.product.sku, j);
    }
    let mut fresh: Vec<&Judged> = Vec::with_capacity(latest.len());
    for j in judged {
        if !std::ptr::eq(latest[&j.product.sku], j) {
            continue;
        }
        match current.get(j.product.sku.as_str()) {
            Some(&(product_version, price_version))
                if product_version == j.product.version && price_version == j.current.version =>
            {
                fresh.push(j)
            }
            Some(_) => applied.superseded.push(j.product.sku.clone()),
            None => {} // deleted since: nothing to decide
        }
    }
    let decisions: Vec<_> = fresh.iter().map(|j| j.new_decision(merchant, version)).collect();
    chain::append(&mut tx, store.backend(), &mut head, &decisions).await?;
    let at = head.at();
    let show_prior = prices::shows_prior_price(&mut tx, merchant).await?;
    let mut moving = Vec::new();
    for j in fresh.iter().filter(|j| j.outcome() == Outcome::Changed) {
        let prior_minor = if show_prior { prior_price(&mut *tx, merchant, &j.product.sku, at).await? } else { None };
        moving.push(MovedPrice { sku: &j.product.sku, price_minor: j.decided.new_price_minor, prior_minor });
    }
    applied.moved = prices::move_prices(&mut tx, merchant, at, &moving).await?;
    tx.commit().await?;
    applied.recorded = decisions.len();
    Ok(applied)
}
