//! The merchant's quotas on signals, checked in the transaction that records a batch, so a
//! batch over a quota is refused whole and nothing of it is stored:
//! - competitors per SKU (`pricing.max_competitors_per_sku`): a new competitor for a SKU that
//!   already has that many is refused; updates of known competitors always pass;
//! - SKUs with signals but no product (`pricing.max_skus_without_product`): feeds may run ahead
//!   of the catalogue, within this many SKUs; a SKU counts until its product is created.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::config::PricingSettings;
use crate::domain::{MerchantId, Sku};
use crate::store::{Observation, StoreError, Tx, quotas};

#[derive(Debug, Clone, Copy)]
pub struct SignalQuotas {
    pub competitors_per_sku: u64,
    pub skus_without_product: u64,
}

impl From<&PricingSettings> for SignalQuotas {
    fn from(settings: &PricingSettings) -> Self {
        Self {
            competitors_per_sku: settings.max_competitors_per_sku,
            skus_without_product: settings.max_skus_without_product,
        }
    }
}

fn over(what: &'static str, limit: u64, message: String) -> StoreError {
    StoreError::OverQuota { what, limit, message }
}

pub(super) async fn check_competitors(
    tx: &mut Tx,
    merchant: MerchantId,
    observations: &[Observation],
    limit: u64,
) -> Result<(), StoreError> {
    let mut sent: BTreeMap<&Sku, BTreeSet<&str>> = BTreeMap::new();
    for o in observations {
        sent.entry(&o.sku).or_default().insert(o.competitor.as_str());
    }
    // Counts first: only SKUs that could pass the limit (stored plus sent over it) need a look
    // at which competitors are stored.
    let skus: Vec<Sku> = sent.keys().map(|sku| (*sku).clone()).collect();
    let counts = quotas::competitor_counts(tx, merchant, &skus).await?;
    let near: Vec<Sku> = sent
        .iter()
        .filter(|(sku, competitors)| counts.get(sku.as_str()).copied().unwrap_or(0) + competitors.len() as u64 > limit)
        .map(|(sku, _)| (*sku).clone())
        .collect();
    if near.is_empty() {
        return Ok(());
    }
    let stored = quotas::competitors_of(tx, merchant, &near).await?;
    for (sku, competitors) in sent.into_iter().filter(|(sku, _)| near.contains(sku)) {
        let known = stored.get(sku.as_str());
        let new = competitors.iter().filter(|c| known.is_none_or(|k| !k.contains(**c))).count();
        let total = known.map_or(0, |k| k.len()) + new;
        if total as u64 > limit {
            return Err(over(
                "competitors_per_sku",
                limit,
                format!("SKU {sku} would have {total} competitors; a SKU has at most {limit}"),
            ));
        }
    }
    Ok(())
}

/// `products`: which of the SKUs have a product, when the caller has read it already.
pub(super) async fn check_skus_without_product(
    tx: &mut Tx,
    merchant: MerchantId,
    skus: impl IntoIterator<Item = &Sku>,
    products: Option<&HashSet<String>>,
    limit: u64,
) -> Result<(), StoreError> {
    let skus: Vec<Sku> = skus.into_iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    let missing = match products {
        Some(known) => skus.iter().filter(|sku| !known.contains(sku.as_str())).cloned().collect(),
        None => quotas::without_product(tx, merchant, &skus).await?,
    };
    if missing.is_empty() {
        return Ok(());
    }
    let counted = quotas::with_signals(tx, merchant, &missing).await?;
    let new = missing.iter().filter(|sku| !counted.contains(sku.as_str())).count() as u64;
    if new == 0 {
        return Ok(());
    }
    let total = quotas::skus_with_signals_only(tx, merchant).await? as u64 + new;
    if total > limit {
        return Err(over(
            "skus_without_product",
            limit,
            format!(
                "{total} SKUs would have signals but no product; at most {limit} may (create their products first)"
            ),
        ));
    }
    Ok(())
}
