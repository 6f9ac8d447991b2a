//! The price cache that checkout reads: every product's price in force, in memory, warmed
//! from the store at start and updated on every write before that write is acknowledged. It
//! holds every price, so a SKU that is not in it does not exist: a lookup never falls through
//! to the store, and unknown SKUs cannot become a storm of queries.
//!
//! Why not moka (which the service used here before, and still uses for the key cache): this
//! cache never evicts and never expires, so everything moka keeps per entry for its eviction
//! policy (an entry header with atomics and timestamps, the key shared behind a reference
//! count, access-order queue nodes, a frequency sketch) is paid for nothing, and every read
//! records itself in a channel that some later read must drain on checkout's thread. Here an
//! entry is the key (merchant, SKU text) and a 40-byte packed price in a plain hash table,
//! split into [`SHARDS`] shards behind reader-writer locks so that writers of one shard do
//! not stop readers of the others. `cargo bench -p pricing-service --bench cache_memory`
//! measures resident memory per cached price at 1,000,000 SKUs against moka in the same run.

use std::hash::BuildHasher;

use chrono::{DateTime, Utc};
use hashbrown::{DefaultHashBuilder, Equivalent, HashMap};
use parking_lot::RwLock;

use crate::domain::{Currency, MerchantId, Sku};
use crate::store::{CurrentPrice, Store, StoreError};

/// Rows read per store round trip while warming.
const WARM_PAGE: u32 = 10_000;

/// Independent tables; a power of two, as the shard is picked from a hash's top bits.
pub const SHARDS: usize = 64;

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

/// A [`CachedPrice`] as stored: 40 bytes instead of 48, the prior price's absence written as
/// a value no amount can take (every amount is within ±[`MAX_AMOUNT_MINOR`]).
///
/// [`MAX_AMOUNT_MINOR`]: crate::domain::MAX_AMOUNT_MINOR
#[derive(Clone, Copy)]
struct Packed {
    price_minor: i64,
    version: i64,
    prior_minor: i64,
    effective_at: DateTime<Utc>,
    currency: Currency,
}

const NO_PRIOR: i64 = i64::MIN;
const _: () = assert!(std::mem::size_of::<Packed>() == 40);

impl From<CachedPrice> for Packed {
    fn from(p: CachedPrice) -> Self {
        Self {
            price_minor: p.price_minor,
            version: p.version,
            prior_minor: p.prior_minor.unwrap_or(NO_PRIOR),
            effective_at: p.effective_at,
            currency: p.currency,
        }
    }
}

impl From<Packed> for CachedPrice {
    fn from(p: Packed) -> Self {
        Self {
            price_minor: p.price_minor,
            currency: p.currency,
            version: p.version,
            effective_at: p.effective_at,
            prior_minor: (p.prior_minor != NO_PRIOR).then_some(p.prior_minor),
        }
    }
}

type Key = (MerchantId, Box<str>);

/// A borrowed [`Key`]: hashes as the owned key does (a tuple hashes its fields in order, and
/// a `Box<str>` hashes as its `str`), so lookups copy nothing.
#[derive(Hash)]
struct KeyRef<'a>(MerchantId, &'a str);

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == key.0 && self.1 == &*key.1
    }
}

pub struct PriceCache {
    shards: Box<[RwLock<HashMap<Key, Packed>>]>,
    /// Picks a key's shard; the tables hash with their own seeds.
    router: DefaultHashBuilder,
}

impl Default for PriceCache {
    fn default() -> Self {
        Self::new()
    }
}

impl PriceCache {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            router: DefaultHashBuilder::default(),
        }
    }

    fn shard(&self, merchant: MerchantId, sku: &str) -> &RwLock<HashMap<Key, Packed>> {
        let hash = self.router.hash_one(KeyRef(merchant, sku));
        &self.shards[(hash >> (u64::BITS - SHARDS.trailing_zeros())) as usize]
    }

    /// How many prices are cached.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
                self.put(merchant, &price);
            }
            if !full {
                break;
            }
        }
        Ok(loaded)
    }

    pub fn get(&self, merchant: MerchantId, sku: Sku) -> Option<CachedPrice> {
        self.get_text(merchant, sku.as_str())
    }

    /// [`Self::get`] for SKU text as it came in, without copying it into a [`Sku`]. Text that
    /// is not a valid SKU finds nothing, as every key in the cache is one.
    pub fn get_text(&self, merchant: MerchantId, sku: &str) -> Option<CachedPrice> {
        let key = KeyRef(merchant, sku);
        self.shard(merchant, sku).read().get(&key).map(|packed| CachedPrice::from(*packed))
    }

    /// Records a price that is now in force (never moves back to an older version; the same
    /// version is replaced, which is how a change of the prior price setting lands).
    pub fn put(&self, merchant: MerchantId, price: &CurrentPrice) {
        let fresh = Packed::from(CachedPrice::from(price));
        let sku = price.sku.as_str();
        let mut shard = self.shard(merchant, sku).write();
        match shard.get_mut(&KeyRef(merchant, sku)) {
            Some(cached) if cached.version > fresh.version => {}
            Some(cached) => *cached = fresh,
            None => {
                shard.insert((merchant, sku.into()), fresh);
            }
        }
    }

    pub fn remove(&self, merchant: MerchantId, sku: &Sku) {
        self.shard(merchant, sku.as_str()).write().remove(&KeyRef(merchant, sku.as_str()));
    }

    /// Every cached key that `keep` refuses, one shard at a time.
    fn keys_where(&self, keep: impl Fn(MerchantId, &str) -> bool) -> Vec<(MerchantId, Sku)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.read();
            out.extend(
                shard
                    .keys()
                    .filter(|(merchant, sku)| !keep(*merchant, sku))
                    .filter_map(|(merchant, sku)| Sku::parse(sku).ok().map(|sku| (*merchant, sku))),
            );
        }
        out
    }

    /// Brings the cache back to the store, whatever went missing on the way (a change whose
    /// note another replica lost, a deletion while the listener was down): every price in
    /// force is landed (never moving a version back), and every cached price the store no
    /// longer has is removed, after a second look at the store (a product created while the
    /// pass ran is not removed). Returns (landed, removed).
    pub async fn reconcile(&self, store: &Store) -> Result<(usize, usize), StoreError> {
        let mut seen: hashbrown::HashSet<Key> = hashbrown::HashSet::new();
        let mut after: Option<(MerchantId, Sku)> = None;
        loop {
            let page = store.current_prices_after(after.as_ref().map(|(m, s)| (*m, s)), WARM_PAGE).await?;
            let full = page.len() == WARM_PAGE as usize;
            for (merchant, price) in page {
                self.put(merchant, &price);
                seen.insert((merchant, price.sku.as_str().into()));
                after = Some((merchant, price.sku));
            }
            if !full {
                break;
            }
        }
        let stale = self.keys_where(|merchant, sku| seen.contains(&KeyRef(merchant, sku)));
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

    fn price(sku: &str, minor: i64, version: i64, prior_minor: Option<i64>) -> CurrentPrice {
        CurrentPrice {
            sku: Sku::parse(sku).unwrap(),
            price: Money::new(minor, "JPY".parse().unwrap()),
            version,
            effective_at: Utc::now() + chrono::Duration::nanoseconds(version * 7),
            prior_minor,
        }
    }

    #[test]
    fn what_is_put_comes_back_exactly_and_versions_never_go_back() {
        let cache = PriceCache::new();
        let merchant = MerchantId::generate();
        for prior in [None, Some(0), Some(-1), Some(crate::domain::MAX_AMOUNT_MINOR)] {
            let put = price("a", 500, 3, prior);
            cache.put(merchant, &put);
            assert_eq!(cache.get_text(merchant, "a"), Some(CachedPrice::from(&put)));
        }
        cache.put(merchant, &price("a", 400, 2, None));
        assert_eq!(cache.get_text(merchant, "a").map(|p| (p.price_minor, p.version)), Some((500, 3)));
        cache.put(merchant, &price("a", 600, 4, None));
        assert_eq!(cache.get_text(merchant, "a").map(|p| (p.price_minor, p.version)), Some((600, 4)));
    }

    #[test]
    fn keys_spread_over_shards_and_each_is_found_in_its_own() {
        let cache = PriceCache::new();
        let (a, b) = (MerchantId::generate(), MerchantId::generate());
        for i in 0..2_000 {
            cache.put(a, &price(&format!("sku-{i}"), i, 1, None));
            cache.put(b, &price(&format!("sku-{i}"), i + 1, 1, None));
        }
        assert_eq!(cache.len(), 4_000);
        assert!(cache.shards.iter().all(|shard| !shard.read().is_empty()), "every shard holds keys");
        for i in (0..2_000).step_by(2) {
            cache.remove(a, &Sku::parse(&format!("sku-{i}")).unwrap());
        }
        for i in 0..2_000 {
            let found = cache.get_text(a, &format!("sku-{i}")).map(|p| p.price_minor);
            assert_eq!(found, (i % 2 == 1).then_some(i));
            assert_eq!(cache.get_text(b, &format!("sku-{i}")).map(|p| p.price_minor), Some(i + 1));
        }
        let odd_of_a = cache.keys_where(|merchant, _| merchant == b);
        assert_eq!(odd_of_a.len(), 1_000);
        assert!(odd_of_a.iter().all(|(merchant, sku)| *merchant == a && cache.get(*merchant, sku.clone()).is_some()));
    }
}
