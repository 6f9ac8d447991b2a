//! The price cache that checkout reads: every product's price in force, in memory (moka),
//! warmed from the store at start and updated on every write before that write is
//! acknowledged. It holds every price, so a SKU that is not in it does not exist: a lookup
//! never falls through to the store, and unknown SKUs cannot become a storm of queries.

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
    /// The prior price, for merchants that show it (see [`crate::domain::prior`]).
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

/// A borrowed `(MerchantId, Sku)`: hashes as the owned key does (a tuple hashes its fields in
/// order, and a `Sku` hashes as its `String`, which hashes as its `str`).
#[derive(Hash)]
struct KeyRef<'a>(MerchantId, &'a str);

impl moka::Equivalent<(MerchantId, Sku)> for KeyRef<'_> {
    fn equivalent(&self, key: &(MerchantId, Sku)) -> bool {
        self.0 == key.0 && self.1 == key.1.as_str()
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
    pub async fn warm(&self, store: &Store) -> Result<usize, StoreError> {
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

    /// [`Self::get`] for SKU text as it came in, without copying it into a [`Sku`]. Text that
    /// is not a valid SKU finds nothing, as every key in the cache is one.
    pub fn get_text(&self, merchant: MerchantId, sku: &str) -> Option<CachedPrice> {
        self.prices.get(&KeyRef(merchant, sku))
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

    /// Brings the cache back to the store, whatever went missing on the way (a change whose
    /// note another replica lost, a deletion while the listener was down): every price in
    /// force is landed (never moving a version back), and every cached price the store no
    /// longer has is removed, after a second look at the store (a product created while the
    /// pass ran is not removed). Returns (landed, removed).
    pub async fn reconcile(&self, store: &Store) -> Result<(usize, usize), StoreError> {
        let mut seen = std::collections::HashSet::new();
        let mut after: Option<(MerchantId, Sku)> = None;
        loop {
            let page = store.current_prices_after(after.as_ref().map(|(m, s)| (*m, s)), WARM_PAGE).await?;
            let full = page.len() == WARM_PAGE as usize;
            for (merchant, price) in page {
                self.put(merchant, &price);
                seen.insert((merchant, price.sku.clone()));
                after = Some((merchant, price.sku));
            }
            if !full {
                break;
            }
        }
        let stale: Vec<(MerchantId, Sku)> =
            self.prices.iter().map(|(key, _)| (*key).clone()).filter(|key| !seen.contains(key)).collect();
        let mut removed = 0;
        for (merchant, sku) in stale {
            match store.current_price(merchant, &sku).await? {
                Some(price) => self.put(merchant, &price),
                None => {
                    self.remove(merchant, &sku);
                    removed += 1;
                }
            }
        }
        Ok((seen.len(), removed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;

    #[test]
    fn text_lookups_find_what_owned_keys_stored() {
        let cache = PriceCache::new();
        let merchant = MerchantId::generate();
        let price = CurrentPrice {
            sku: Sku::parse("tee-1").unwrap(),
            price: Money::new(1999, "EUR".parse().unwrap()),
            version: 1,
            effective_at: Utc::now(),
            prior_minor: None,
        };
        cache.put(merchant, &price);
        assert_eq!(cache.get_text(merchant, "tee-1"), cache.get(merchant, price.sku.clone()));
        assert_eq!(cache.get_text(merchant, "tee-1").map(|p| p.price_minor), Some(1999));
        for other in ["tee-2", "TEE-1", "tee-1 ", "", "not a sku!"] {
            assert_eq!(cache.get_text(merchant, other), None, "{other:?}");
        }
        assert_eq!(cache.get_text(MerchantId::generate(), "tee-1"), None);
        cache.remove(merchant, &price.sku);
        assert_eq!(cache.get_text(merchant, "tee-1"), None);
    }
}
