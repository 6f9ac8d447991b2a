//! Catalogue writes as transactions: a product and, when it moves the price in force, the
//! price event (see [`crate::pricing::events`]) and the new price, and the repricing the
//! change calls for (see [`crate::store::work`]), all or nothing.

use super::Gate;
use crate::domain::{MerchantId, Product, ProductDraft, Sku, Trigger};
use crate::pricing::events;
use crate::pricing::prior::prior_price;
use crate::store::prices::{self, BasePrice};
use crate::store::{CurrentPrice, Store, StoreError, Upserted, chain, products, work};

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
    gate.check()?;
    tx.commit().await?;
    Ok(deleted)
}
