//! The price cache that checkout reads: every product's price in force, in memory (moka),
//! warmed from the store at start and updated on every write before that write is
//! acknowledged. It holds every price, so a SKU that is not in it does not exist: a lookup
//! never falls through to the store, and unknown SKUs cannot become a storm of queries.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::{Currency, MerchantId, Sku};
use crate::store::{CurrentPrice, Store, StoreError};

/// Rows read per store round trip while warming.
const WARM_PAGE: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedPrice {
    pub price_minor: i64,
    pub currency: Currency,
    pub version: i64,
    pub effective_at: DateTime<Utc>,
    /// The prior price, for merchants that show it (see [`crate::pricing::prior`]).
    pub prior_minor: Option<i64>,
}

impl From<&CurrentPrice> for CachedPrice {
    fn from(p: &CurrentPrice) -> Self {
        Self {
            price_minor: p.price.minor(),
            currency: p.price.currency(),
            version: p.version,
            effective_at: p.effective_at,
            prior_minor: p.prior_minor,
        }
    }
}

pub struct PriceCache {
    prices: moka::sync::Cache<(MerchantId, Sku), CachedPrice>,
}

impl Default for PriceCache {
    fn default() -> Self {
        Self::new()
    }
}

impl PriceCache {
    pub fn new() -> Self {
        // No capacity bound and no expiry: a missing entry must mean a missing product.
        Self { prices: moka::sync::Cache::builder().build() }
    }

    /// Loads every price in force; returns how many.
    pub async fn warm(&self, store: &Arc<dyn Store>) -> Result<usize, StoreError> {
        let mut loaded = 0;
        let mut after: Option<(MerchantId, Sku)> = None;
        loop {
            let page = store.current_prices_after(after.as_ref().map(|(m, s)| (*m, s)), WARM_PAGE).await?;
            let Some((merchant, last)) = page.last() else { break };
            after = Some((*merchant, last.sku.clone()));
            loaded += page.len();
            let full = page.len() == WARM_PAGE as usize;
            for (merchant, price) in page {
                self.prices.insert((merchant, price.sku.clone()), CachedPrice::from(&price));
            }
            if !full {
                break;
            }
        }
        Ok(loaded)
    }

    pub fn get(&self, merchant: MerchantId, sku: Sku) -> Option<CachedPrice> {
        self.prices.get(&(merchant, sku))
    }

    /// Records a price that is now in force (never moves back to an older version; the same
    /// version is replaced, which is how a change of the prior price setting lands).
    pub fn put(&self, merchant: MerchantId, price: &CurrentPrice) {
        let fresh = CachedPrice::from(price);
        self.prices.entry((merchant, price.sku.clone())).and_upsert_with(|existing| {
            match existing.map(|e| e.into_value()) {
                Some(cached) if cached.version > fresh.version => cached,
                _ => fresh,
            }
        });
    }

    pub fn remove(&self, merchant: MerchantId, sku: &Sku) {
        self.prices.invalidate(&(merchant, sku.clone()));
    }
}
