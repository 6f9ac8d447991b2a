//! The write side: the one owner of "commit, then cache, then tell the replicas, then
//! reprice". Handlers and the engine change prices only through [`Prices`]; each operation
//! commits its transaction (chain head locked first, see [`crate::store::chain`]), then lands
//! what moved in this replica's price cache, publishes it to the other replicas, and queues the
//! repricing it calls for.
//!
//! Operations run detached from their caller (a spawned task the caller awaits), so a request
//! that times out or whose client goes away still finishes its post-commit work: a committed
//! change always reaches the cache.

pub mod catalogue;
mod decisions;
mod gate;
mod intents;
mod settings;

use std::future::Future;
use std::sync::Arc;

use crate::cache::PriceCache;
use crate::domain::{MerchantId, Product, ProductDraft, Sku, Trigger};
use crate::pricing::Judged;
use crate::replication::{Change, Replication};
use crate::store::{CurrentPrice, DemandEvent, Observation, RuleVersion, Store, StoreError, Upserted};

pub use decisions::Applied;
pub use gate::Gate;
pub use intents::{Intents, Pending};

struct Inner {
    store: Store,
    cache: Arc<PriceCache>,
    replication: Replication,
    intents: Intents,
}

/// The write side; cloning shares it.
#[derive(Clone)]
pub struct Prices {
    inner: Arc<Inner>,
}

impl Prices {
    pub fn new(store: Store, cache: Arc<PriceCache>, replication: Replication) -> Self {
        Self { inner: Arc::new(Inner { store, cache, replication, intents: Intents::default() }) }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn replication(&self) -> &Replication {
        &self.inner.replication
    }

    /// The repricing work queued so far (the engine takes it from here).
    pub fn intents(&self) -> &Intents {
        &self.inner.intents
    }

    /// Runs `work` on a task of its own: it commits only while the caller still waits (see
    /// [`Gate`]), and once committed runs to its end whatever happens to the caller.
    async fn detached<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
        &self,
        work: impl FnOnce(Gate) -> F,
    ) -> T {
        let gate = Gate::default();
        let _abandon_if_dropped = gate::AbandonOnDrop(gate.clone());
        match tokio::spawn(work(gate)).await {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Creates or replaces a product; returns it, what was done, and the price in force.
    pub async fn put_product(
        &self,
        merchant: MerchantId,
        draft: ProductDraft,
    ) -> Result<(Product, Upserted, Option<CurrentPrice>), StoreError> {
        let this = self.clone();
        self.detached(move |gate| async move {
            let inner = &this.inner;
            let (product, upserted, price) = catalogue::put(&inner.store, merchant, &draft, &gate).await?;
            if let Some(price) = &price {
                inner.cache.put(merchant, price);
            }
            if upserted != Upserted::Unchanged {
                let version = price.as_ref().map_or(0, |p| p.version);
                inner.replication.publish(Change::Skus(merchant, vec![(product.sku.clone(), version)]));
                // Cost, guardrails or attributes changed: the active rule decides again.
                inner.intents.request(merchant, [product.sku.clone()], Trigger::ProductChanged);
            }
            Ok((product, upserted, price))
        })
        .await
    }

    /// Deletes a product (its history stays); false when there was none.
    pub async fn delete_product(&self, merchant: MerchantId, sku: Sku) -> Result<bool, StoreError> {
        let this = self.clone();
        self.detached(move |gate| async move {
            let inner = &this.inner;
            let deleted = catalogue::delete(&inner.store, merchant, &sku, &gate).await?;
            if deleted {
                inner.cache.remove(merchant, &sku);
                inner.replication.publish(Change::Skus(merchant, vec![(sku, 0)]));
            }
            Ok(deleted)
        })
        .await
    }

    /// Turns the prior price in lookups on or off (filling or clearing it for every price in
    /// force); returns how many prices it touched.
    pub async fn set_show_prior_price(&self, merchant: MerchantId, show: bool) -> Result<usize, StoreError> {
        let this = self.clone();
        self.detached(move |gate| async move {
            let inner = &this.inner;
            let prices = settings::set_show_prior_price(&inner.store, merchant, show, &gate).await?;
            for price in &prices {
                inner.cache.put(merchant, price);
            }
            // The prior price changes without a new version: every replica re-reads the merchant.
            inner.replication.publish(Change::Merchant(merchant));
            Ok(prices.len())
        })
        .await
    }

    /// Records competitor observations (the latest per competitor wins) and queues the SKUs
    /// whose offers changed for repricing; returns how many changed.
    pub async fn record_observations(
        &self,
        merchant: MerchantId,
        observations: Vec<Observation>,
    ) -> Result<usize, StoreError> {
        let this = self.clone();
        self.detached(move |gate| async move {
            let changed = {
                gate.check()?;
                this.inner.store.record_observations(merchant, &observations).await?
            };
            let count = changed.len();
            this.inner.intents.request(merchant, changed, Trigger::CompetitorPrices);
            Ok(count)
        })
        .await
    }

    /// Records demand events (each id once) and queues their SKUs for repricing; returns how
    /// many SKUs had new events.
    pub async fn record_demand(&self, merchant: MerchantId, events: Vec<DemandEvent>) -> Result<usize, StoreError> {
        let this = self.clone();
        self.detached(move |gate| async move {
            let changed = {
                gate.check()?;
                this.inner.store.record_demand(merchant, &events).await?
            };
            let count = changed.len();
            this.inner.intents.request(merchant, changed, Trigger::Demand);
            Ok(count)
        })
        .await
    }

    /// Appends a judged batch's decisions and moves its prices in one transaction, then
    /// updates the cache. Decisions whose product or price changed since they were evaluated
    /// are not appended: they come back as superseded, to be evaluated again.
    pub async fn apply(
        &self,
        merchant: MerchantId,
        version: &RuleVersion,
        judged: &[Judged],
    ) -> Result<Applied, StoreError> {
        let applied = decisions::apply(&self.inner.store, merchant, version, judged).await?;
        for price in &applied.moved {
            self.inner.cache.put(merchant, price);
        }
        Ok(applied)
    }

    /// Tells the other replicas that prices changed (after [`Self::apply`]).
    pub fn publish(&self, change: Change) {
        self.inner.replication.publish(change);
    }

    /// Queues products for repricing.
    pub fn request(&self, merchant: MerchantId, skus: impl IntoIterator<Item = Sku>, trigger: Trigger) {
        self.inner.intents.request(merchant, skus, trigger);
    }

    /// Queues a merchant's whole catalogue for repricing.
    pub fn request_all(&self, merchant: MerchantId, trigger: Trigger) {
        self.inner.intents.request_all(merchant, trigger);
    }
}
