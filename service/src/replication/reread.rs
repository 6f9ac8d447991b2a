//! Applying a note: re-read what it names from the store and land it in the price cache.

use std::sync::Arc;

use super::Change;
use crate::cache::PriceCache;
use crate::domain::{MerchantId, Sku};
use crate::store::{CurrentPrice, Store, StoreError};

/// Rows per re-read page, and point reads running at once for a list.
const PAGE: u32 = 1_000;
const READERS: usize = 4;

/// Puts a re-read price in the cache (see the replication notes on re-created products).
fn land(cache: &PriceCache, merchant: MerchantId, price: &CurrentPrice) {
    if let Some(cached) = cache.get(merchant, price.sku.clone())
        && cached.version > price.version
        && price.effective_at > cached.effective_at
    {
        cache.remove(merchant, &price.sku);
    }
    cache.put(merchant, price);
}

pub(super) async fn apply(store: &Store, cache: &Arc<PriceCache>, change: Change) -> Result<(), StoreError> {
    match change {
        Change::Skus(merchant, skus) => {
            let stale: Vec<Sku> = skus
                .into_iter()
                .filter(|(sku, version)| {
                    *version == 0 || cache.get(merchant, sku.clone()).is_none_or(|c| c.version < *version)
                })
                .map(|(sku, _)| sku)
                .collect();
            let mut readers = tokio::task::JoinSet::new();
            for part in stale.chunks(stale.len().div_ceil(READERS).max(1)) {
                let (store, cache, part) = (store.clone(), cache.clone(), part.to_vec());
                readers.spawn(async move {
                    for sku in part {
                        match store.current_price(merchant, &sku).await? {
                            Some(price) => land(&cache, merchant, &price),
                            None => cache.remove(merchant, &sku),
                        }
                    }
                    Ok::<_, StoreError>(())
                });
            }
            while let Some(done) = readers.join_next().await {
                done.expect("a re-read does not panic")?;
            }
        }
        Change::Range(merchant, from, to) => reread_merchant(store, cache, merchant, from, Some(&to)).await?,
        Change::Merchant(merchant) => {
            if let Some(first) = store.products(merchant, None, 1).await?.pop() {
                reread_merchant(store, cache, merchant, first.sku, None).await?;
            }
        }
    }
    Ok(())
}

/// Re-reads a merchant's prices from `from` (included) up to `to` (included, or the end).
async fn reread_merchant(
    store: &Store,
    cache: &PriceCache,
    merchant: MerchantId,
    from: Sku,
    to: Option<&Sku>,
) -> Result<(), StoreError> {
    if let Some(price) = store.current_price(merchant, &from).await? {
        land(cache, merchant, &price);
    }
    let mut after = from;
    loop {
        let page = store.current_prices_after(Some((merchant, &after)), PAGE).await?;
        let full = page.len() == PAGE as usize;
        for (owner, price) in page {
            if owner != merchant || to.is_some_and(|to| price.sku > *to) {
                return Ok(());
            }
            land(cache, merchant, &price);
            after = price.sku;
        }
        if !full {
            return Ok(());
        }
    }
}

pub(super) async fn rewarm(store: &Store, cache: &PriceCache) -> Result<(), StoreError> {
    let mut after: Option<(MerchantId, Sku)> = None;
    let mut read = 0;
    loop {
        let page = store.current_prices_after(after.as_ref().map(|(m, s)| (*m, s)), PAGE).await?;
        let full = page.len() == PAGE as usize;
        read += page.len();
        for (merchant, price) in page {
            land(cache, merchant, &price);
            after = Some((merchant, price.sku));
        }
        if !full {
            tracing::info!(prices = read, "price cache re-warmed");
            return Ok(());
        }
    }
}
