//! Catalogue writes as transactions: a product and, when it moves the price in force, the
//! price event (see [`crate::pricing::events`]) and the new price, and the repricing the
//! change calls for (see [`crate::store::work`]), all or nothing.

use std::collections::HashMap;

use super::Gate;
use crate::domain::{MerchantId, Product, ProductDraft, Sku, Trigger};
use crate::pricing::events;
use crate::pricing::prior::prior_price;
use crate::store::chain::ChainHead;
use crate::store::prices::{self, BasePrice};
use crate::store::{
    Backend, CurrentPrice, Store, StoreError, Tx, Upserted, chain, overrides, products, quotas, safety, work,
};

pub async fn put(
    store: &Store,
    merchant: MerchantId,
    draft: &ProductDraft,
    gate: &Gate,
) -> Result<(Product, Upserted, Option<CurrentPrice>), StoreError> {
    let mut tx = store.begin().await?;
    let mut head = chain::lock_head(&mut tx, merchant).await?;
    let (product, upserted) = products::upsert(&mut tx, merchant, draft).await?;
    let mut moved = None;
    if upserted != Upserted::Unchanged {
        let in_force = prices::in_force(&mut tx, merchant, &product.sku).await?;
        if let Some(event) = events::on_put(in_force, product.base_price.minor()) {
            let currency = product.currency().to_string();
            chain::append(
                &mut tx,
                store.backend(),
                &mut head,
                &[event.new_decision(merchant, &product.sku, &currency)],
            )
            .await?;
            let effective_at = head.at();
            let prior_minor = if prices::shows_prior_price(&mut tx, merchant).await? {
                prior_price(&mut *tx, merchant, &product.sku, effective_at).await?
            } else {
                None
            };
            let base = BasePrice { sku: &product.sku, price: product.base_price, effective_at, prior_minor };
            moved = Some(prices::put_base(&mut tx, merchant, &base).await?);
        }
        // A live override may cover the product now (or no longer).
        if let Some(price) = super::overrides::cover(&mut tx, store.backend(), &mut head, merchant, &product).await? {
            moved = Some(price);
        }
        // Cost, guardrails or attributes changed: the active rule decides again.
        work::request(&mut tx, merchant, std::slice::from_ref(&product.sku), Trigger::ProductChanged, head.at())
            .await?;
    }
    gate.check()?;
    tx.commit().await?;
    let price = match moved {
        Some(price) => Some(price),
        None => store.current_price(merchant, &product.sku).await?,
    };
    Ok((product, upserted, price))
}

pub async fn delete(store: &Store, merchant: MerchantId, sku: &Sku, gate: &Gate) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let mut head = chain::lock_head(&mut tx, merchant).await?;
    if let Some((price, currency)) = prices::remove(&mut tx, merchant, sku).await? {
        let event = events::on_delete(price);
        chain::append(&mut tx, store.backend(), &mut head, &[event.new_decision(merchant, sku, &currency)]).await?;
    }
    let deleted = products::delete(&mut tx, merchant, sku).await?;
    work::forget(&mut tx, merchant, sku).await?;
    safety::forget(&mut tx, merchant, sku, head.at()).await?;
    overrides::forget(&mut tx, merchant, sku).await?;
    gate.check()?;
    tx.commit().await?;
    Ok(deleted)
}

/// What writing one product of a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    Written(Upserted),
    /// Refused: the product exists in another currency (nothing written for it).
    WrongCurrency {
        existing: String,
    },
}

/// What a batch of products did: an outcome per draft (in order), and the prices it moved.
#[derive(Debug, Default)]
pub struct BatchWritten {
    pub outcomes: Vec<BatchOutcome>,
    pub prices: Vec<CurrentPrice>,
    /// The products created or changed, with their price's version (0: none moved).
    pub changed: Vec<(Sku, i64)>,
}

/// Writes many products in the writer's transaction, under the merchant's locked head, as if
/// each were put in turn: products in bulk, the price events of those whose base price moves
/// the price in force appended to the chain in one go, their prices put in force in bulk. A
/// SKU named twice is written as its last draft says (the earlier ones are `Unchanged`).
/// Repricing is the caller's to request (an import asks for one sweep when it ends).
pub async fn put_batch(
    tx: &mut Tx,
    backend: Backend,
    head: &mut ChainHead,
    merchant: MerchantId,
    drafts: &[&ProductDraft],
) -> Result<BatchWritten, StoreError> {
    let mut last: HashMap<&Sku, usize> = HashMap::with_capacity(drafts.len());
    for (i, d) in drafts.iter().enumerate() {
        last.insert(&d.sku, i);
    }
    let mut outcomes = vec![BatchOutcome::Written(Upserted::Unchanged); drafts.len()];
    let skus: Vec<Sku> = last.keys().map(|sku| (*sku).clone()).collect();
    let existing = quotas::product_references(tx, merchant, &skus).await?;
    let mut eligible: Vec<&ProductDraft> = Vec::with_capacity(last.len());
    for (i, &d) in drafts.iter().enumerate() {
        if last.get(&d.sku) != Some(&i) {
            continue;
        }
        match existing.get(d.sku.as_str()) {
            Some((currency, _)) if currency != d.currency().code() => {
                outcomes[i] = BatchOutcome::WrongCurrency { existing: currency.clone() };
            }
            _ => eligible.push(d),
        }
    }
    // The drafts written (created or changed), with the version each product now has.
    let written: Vec<(&ProductDraft, i64)> = products::upsert_many(tx, merchant, &eligible)
        .await?
        .into_iter()
        .map(|(sku, version)| (drafts[last[&sku]], version))
        .collect();
    let written_skus: Vec<&Sku> = written.iter().map(|(d, _)| &d.sku).collect();
    let in_force = prices::in_force_many(tx, merchant, &written_skus).await?;
    let mut moving = Vec::new();
    for &(product, version) in &written {
        outcomes[last[&product.sku]] =
            BatchOutcome::Written(if version == 1 { Upserted::Created } else { Upserted::Updated });
        let before = in_force.get(product.sku.as_str()).copied();
        if let Some(event) = events::on_put(before, product.base_price.minor()) {
            moving.push((product, event, product.currency().to_string()));
        }
    }
    let decisions: Vec<_> =
        moving.iter().map(|(product, event, currency)| event.new_decision(merchant, &product.sku, currency)).collect();
    chain::append(tx, backend, head, &decisions).await?;
    drop(decisions);
    let effective_at = head.at();
    let shows_prior = !moving.is_empty() && prices::shows_prior_price(tx, merchant).await?;
    let mut bases = Vec::with_capacity(moving.len());
    for (product, _, _) in &moving {
        let prior_minor =
            if shows_prior { prior_price(&mut **tx, merchant, &product.sku, effective_at).await? } else { None };
        bases.push(BasePrice { sku: &product.sku, price: product.base_price, effective_at, prior_minor });
    }
    let mut moved = prices::put_base_many(tx, merchant, &bases).await?;
    // A live override covers what the batch wrote as it would each product put alone.
    let covered = super::overrides::cover_many(tx, backend, head, merchant, &written_skus).await?;
    if !covered.is_empty() {
        let mut by_sku: HashMap<Sku, CurrentPrice> = moved.into_iter().map(|p| (p.sku.clone(), p)).collect();
        by_sku.extend(covered.into_iter().map(|p| (p.sku.clone(), p)));
        moved = by_sku.into_values().collect();
    }
    let versions: HashMap<&Sku, i64> = moved.iter().map(|p| (&p.sku, p.version)).collect();
    let changed = written.iter().map(|(d, _)| (d.sku.clone(), versions.get(&d.sku).copied().unwrap_or(0))).collect();
    Ok(BatchWritten { outcomes, prices: moved, changed })
}

/// Deletes products in the writer's transaction, under the locked head, as
/// [`delete`] does one: their prices end (a price event each, appended in one go), the
/// products and their queued work go. Returns the products as they were, with the price that
/// was in force.
pub async fn delete_batch(
    tx: &mut Tx,
    backend: Backend,
    head: &mut ChainHead,
    merchant: MerchantId,
    skus: &[Sku],
) -> Result<Vec<(Product, Option<i64>)>, StoreError> {
    let mut ended = Vec::new();
    let mut gone = Vec::with_capacity(skus.len());
    for sku in skus {
        let product = products::get(tx, merchant, sku).await?;
        let removed = prices::remove(tx, merchant, sku).await?;
        if let Some(product) = product {
            gone.push((product, removed.as_ref().map(|(price, _)| *price)));
        }
        if let Some((price, currency)) = removed {
            ended.push((sku, events::on_delete(price), currency));
        }
        products::delete(tx, merchant, sku).await?;
        work::forget(tx, merchant, sku).await?;
        safety::forget(tx, merchant, sku, head.at()).await?;
        overrides::forget(tx, merchant, sku).await?;
    }
    let decisions: Vec<_> =
        ended.iter().map(|(sku, event, currency)| event.new_decision(merchant, sku, currency)).collect();
    chain::append(tx, backend, head, &decisions).await?;
    Ok(gone)
}
