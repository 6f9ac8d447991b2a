//! The write side: the one owner of "commit, then cache, then tell the replicas, then
//! reprice". Handlers and the engine change prices only through [`Prices`]; each operation
//! commits its transaction (chain head locked first, see [`crate::store::chain`]) with the
//! repricing it calls for stored in it (see [`crate::store::work`]), then lands what moved in
//! this replica's price cache, publishes it to the other replicas, and wakes the engine.
//! A transaction that the database rolled back for contention (a deadlock, a serialization
//! failure, a busy SQLite file) is tried again a few times before the caller hears of it.
//!
//! Operations run detached from their caller (a spawned task the caller awaits), so a request
//! that times out or whose client goes away still finishes its post-commit work: a committed
//! change always reaches the cache.

pub mod catalogue;
mod decisions;
mod gate;
mod imports;
mod overrides;
mod proposals;
mod quotas;
mod rules;
pub mod safety;
mod screen;
mod settings;
mod wakeups;

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{Map, Value};

pub use quotas::SignalQuotas;
pub use screen::{Flagged, Screened};

/// What to do with observations in another currency than their product's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrongCurrencies {
    /// Store nothing ([`StoreError::WrongCurrency`] lists them): a batch checked whole.
    RefuseBatch,
    /// Store the others; the answer lists them (NDJSON lines).
    Skip,
}

/// What recording a batch of signals did.
#[derive(Debug, Default)]
pub struct Recorded {
    /// The SKUs whose signals changed (queued for repricing).
    pub changed: Vec<Sku>,
    /// Observations skipped for their currency, and those flagged as implausible.
    pub screened: Screened,
}

use crate::cache::PriceCache;
use crate::domain::overrides::OverrideDraft;
use crate::domain::{Attributes, Invalid, MerchantId, Product, ProductDraft, Sku, Trigger};
use crate::metrics::Metrics;
use crate::pricing::Judged;
use crate::replication::{Change, Replication};
use crate::rules::{RuleError, Rules, SampleReport};
use crate::store::overrides::StoredOverride;
use crate::store::{
    self, Activation, CurrentPrice, DemandEvent, Observation, RuleVersion, Store, StoreError, Upserted, chain, now,
    signals, work,
};

pub use decisions::{Applied, Claimed, Retry};
pub use gate::Gate;
pub use imports::{ParsedPiece, PieceResult};
pub use proposals::{Decided, Resolved, Verdict};
pub use safety::{Policies, SafetyState};
pub use wakeups::Wakeups;

/// A batch of signals, each kind recorded by its own store function.
enum SignalBatch {
    Observations(Vec<Observation>),
    Demand(Vec<DemandEvent>),
}

/// Attempts of a transaction that the database rolled back for contention.
const ATTEMPTS: u32 = 5;

struct Inner {
    store: Store,
    cache: Arc<PriceCache>,
    replication: Replication,
    rules: Arc<Rules>,
    wakeups: Wakeups,
    /// Weak: the metrics' readings of the engine hold the engine, which holds this.
    metrics: Weak<Metrics>,
    /// Products per merchant, for the breaker's share of the catalogue: counted at most once a
    /// minute (a count of a large catalogue costs a scan, and the share needs no precision).
    catalogue_sizes: moka::sync::Cache<MerchantId, i64>,
}

/// The write side; cloning shares it.
#[derive(Clone)]
pub struct Prices {
    inner: Arc<Inner>,
}

impl Prices {
    pub fn new(
        store: Store,
        cache: Arc<PriceCache>,
        replication: Replication,
        rules: Arc<Rules>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let metrics = Arc::downgrade(&metrics);
        let catalogue_sizes =
            moka::sync::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(60)).build();
        Self {
            inner: Arc::new(Inner {
                store,
                cache,
                replication,
                rules,
                wakeups: Wakeups::default(),
                metrics,
                catalogue_sizes,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn rules(&self) -> &Arc<Rules> {
        &self.inner.rules
    }

    /// How the engine hears of new work in this process.
    pub fn wakeups(&self) -> &Wakeups {
        &self.inner.wakeups
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
            let (product, upserted, price) =
                retrying(&gate, || catalogue::put(&inner.store, merchant, &draft, &gate)).await?;
            if let Some(price) = &price {
                inner.cache.put(merchant, price);
            }
            if upserted != Upserted::Unchanged {
                let version = price.as_ref().map_or(0, |p| p.version);
                inner.replication.publish(Change::Skus(merchant, vec![(product.sku.clone(), version)]));
                inner.wakeups.wake(merchant);
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
            let deleted = retrying(&gate, || catalogue::delete(&inner.store, merchant, &sku, &gate)).await?;
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
            let prices =
                retrying(&gate, || settings::set_show_prior_price(&inner.store, merchant, show, &gate)).await?;
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
    /// whose offers changed for repricing, in one transaction. Each is first checked against
    /// its product ([`screen`]): one in another currency is refused (the whole batch, or just
    /// it, as `wrong` says), an implausible one is stored and flagged.
    pub async fn record_observations(
        &self,
        merchant: MerchantId,
        observations: Vec<Observation>,
        quotas: SignalQuotas,
        wrong: WrongCurrencies,
    ) -> Result<Recorded, StoreError> {
        self.record_signals(merchant, SignalBatch::Observations(observations), quotas, wrong).await
    }

    /// Records demand events (each id once) and queues their SKUs for repricing, in one
    /// transaction; returns the SKUs whose demand changed.
    pub async fn record_demand(
        &self,
        merchant: MerchantId,
        events: Vec<DemandEvent>,
        quotas: SignalQuotas,
    ) -> Result<Recorded, StoreError> {
        self.record_signals(merchant, SignalBatch::Demand(events), quotas, WrongCurrencies::RefuseBatch).await
    }

    async fn record_signals(
        &self,
        merchant: MerchantId,
        batch: SignalBatch,
        limits: SignalQuotas,
        wrong: WrongCurrencies,
    ) -> Result<Recorded, StoreError> {
        let this = self.clone();
        let (kind, rows) = match &batch {
            SignalBatch::Observations(list) => ("competitor", list.len() as u64),
            SignalBatch::Demand(list) => ("demand", list.len() as u64),
        };
        self.detached(move |gate| async move {
            let store = &this.inner.store;
            let recorded = retrying(&gate, || async {
                let mut tx = store.begin().await?;
                let mut screened = Screened::default();
                let mut kept = None;
                if let SignalBatch::Observations(observations) = &batch {
                    screened = screen::screen(&mut tx, merchant, observations).await?;
                    if !screened.wrong_currency.is_empty() {
                        if wrong == WrongCurrencies::RefuseBatch {
                            return Err(StoreError::WrongCurrency(screened.wrong_currency));
                        }
                        let skipped: std::collections::HashSet<usize> =
                            screened.wrong_currency.iter().map(|w| w.index).collect();
                        let rest = observations.iter().enumerate().filter(|(i, _)| !skipped.contains(i));
                        kept = Some(SignalBatch::Observations(rest.map(|(_, o)| o.clone()).collect()));
                    }
                }
                let batch = kept.as_ref().unwrap_or(&batch);
                let skus: Vec<&Sku> = match batch {
                    SignalBatch::Observations(observations) => observations.iter().map(|o| &o.sku).collect(),
                    SignalBatch::Demand(events) => events.iter().map(|e| &e.sku).collect(),
                };
                let products = match batch {
                    SignalBatch::Observations(_) => Some(&screened.with_product),
                    SignalBatch::Demand(_) => None,
                };
                quotas::check_skus_without_product(&mut tx, merchant, skus, products, limits.skus_without_product)
                    .await?;
                if let SignalBatch::Observations(observations) = batch {
                    quotas::check_competitors(&mut tx, merchant, observations, limits.competitors_per_sku).await?;
                }
                let (changed, trigger) = match batch {
                    SignalBatch::Observations(observations) => (
                        signals::record_observations(&mut tx, merchant, observations).await?,
                        Trigger::CompetitorPrices,
                    ),
                    SignalBatch::Demand(events) => {
                        (signals::record_demand(&mut tx, merchant, events).await?, Trigger::Demand)
                    }
                };
                work::request(&mut tx, merchant, &changed, trigger, now()).await?;
                gate.check()?;
                tx.commit().await?;
                Ok(Recorded { changed, screened })
            })
            .await?;
            let stored = rows - recorded.screened.wrong_currency.len() as u64;
            if let Some(metrics) = this.inner.metrics.upgrade() {
                metrics.record_signals(kind, stored);
            }
            this.inner.wakeups.wake(merchant);
            Ok(recorded)
        })
        .await
    }

    /// Confirms the stored observations of these (SKU, competitor) pairs, implausible as they
    /// are, so that rules see them; their SKUs are queued for repricing. Returns the SKUs of the
    /// observations that were not confirmed before.
    pub async fn confirm_observations(
        &self,
        merchant: MerchantId,
        pairs: Vec<(Sku, String)>,
    ) -> Result<Vec<Sku>, StoreError> {
        let this = self.clone();
        self.detached(move |gate| async move {
            let store = &this.inner.store;
            let changed = retrying(&gate, || async {
                let mut tx = store.begin().await?;
                let changed = signals::confirm_observations(&mut tx, merchant, &pairs).await?;
                work::request(&mut tx, merchant, &changed, Trigger::CompetitorPrices, now()).await?;
                gate.check()?;
                tx.commit().await?;
                Ok(changed)
            })
            .await?;
            this.inner.wakeups.wake(merchant);
            Ok(changed)
        })
        .await
    }

    /// Sets the merchant's plausibility ratio for competitor prices; rule contexts change with
    /// it, so the catalogue is repriced.
    pub async fn set_max_competitor_ratio(&self, merchant: MerchantId, ratio: i64) -> Result<(), StoreError> {
        let this = self.clone();
        self.detached(move |gate| async move {
            let store = &this.inner.store;
            retrying(&gate, || async {
                let mut tx = store.begin().await?;
                if store.max_competitor_ratio(merchant).await? == ratio {
                    return Ok(());
                }
                signals::set_max_competitor_ratio(&mut tx, merchant, ratio).await?;
                work::request_sweep(&mut tx, merchant, Trigger::SettingsChanged, true, now()).await?;
                gate.check()?;
                tx.commit().await
            })
            .await?;
            this.inner.wakeups.wake(merchant);
            Ok(())
        })
        .await
    }

    /// Replaces a rule version's parameters (checked first); when it is the active version,
    /// the catalogue is repriced. Returns the version and the active version.
    pub async fn set_rule_params(
        &self,
        merchant: MerchantId,
        version: i64,
        params: Map<String, Value>,
    ) -> Result<(RuleVersion, Option<i64>), RuleError> {
        // A rule that declares its parameters gets only values that pass its declaration,
        // with the defaults of those left out; an untyped one, any flat object.
        let params = match self.inner.rules.version(merchant, version).await?.params_schema {
            Some(schema) => schema.validate(&params).map_err(RuleError::Invalid)?,
            None => {
                Attributes::check_named("params", &params).map_err(RuleError::Invalid)?;
                params
            }
        };
        let this = self.clone();
        let updated = self
            .detached(move |gate| async move {
                let store = &this.inner.store;
                retrying(&gate, || rules::set_params(store, merchant, version, &params, &gate)).await
            })
            .await?;
        self.inner.wakeups.wake(merchant);
        Ok(updated)
    }

    /// Makes a version the active one (once it loads, and once its dry run over a sample of
    /// the catalogue fails no more than allowed, unless `force`) and reprices the catalogue
    /// with it. Returns the activation and what the sample found.
    pub async fn activate_rule(
        &self,
        merchant: MerchantId,
        version: i64,
        force: bool,
    ) -> Result<(Activation, SampleReport), RuleError> {
        // Loading first means a version that cannot run is never made active.
        self.inner.rules.prepared(merchant, version).await?;
        let stored = self.inner.rules.version(merchant, version).await?;
        if let Some(schema) = &stored.params_schema {
            let mut invalid = Invalid::new();
            for name in schema.missing(&stored.params) {
                invalid.push(format!("params.{name}"), "required by the rule and not set (PUT /v1/rules/{v}/params)");
            }
            if !invalid.is_empty() {
                return Err(RuleError::Invalid(invalid));
            }
        }
        let sample = self.inner.rules.sample_run(merchant, version).await?;
        if sample.too_many() && !force {
            return Err(RuleError::SampleFailed(Box::new(sample)));
        }
        Ok((self.change_activation(merchant, Some(version)).await?, sample))
    }

    /// Returns to the version active before the current one, and reprices the catalogue.
    pub async fn roll_back_rule(&self, merchant: MerchantId) -> Result<Activation, RuleError> {
        self.change_activation(merchant, None).await
    }

    async fn change_activation(&self, merchant: MerchantId, version: Option<i64>) -> Result<Activation, RuleError> {
        let this = self.clone();
        let activation = self
            .detached(move |gate| async move {
                let store = &this.inner.store;
                retrying(&gate, || rules::activate(store, merchant, version, &gate)).await
            })
            .await?;
        self.inner.wakeups.wake(merchant);
        Ok(activation)
    }

    /// Queues products for repricing (tools and tests; changes queue their own).
    pub async fn request_reprice(
        &self,
        merchant: MerchantId,
        skus: &[Sku],
        trigger: Trigger,
    ) -> Result<(), StoreError> {
        let store = &self.inner.store;
        retrying(&Gate::open(), || async {
            let mut tx = store.begin().await?;
            work::request(&mut tx, merchant, skus, trigger, now()).await?;
            tx.commit().await?;
            Ok(())
        })
        .await?;
        self.inner.wakeups.wake(merchant);
        Ok(())
    }

    /// Queues a sweep of every merchant with an active rule that has none pending (the
    /// schedule).
    pub async fn request_scheduled_sweeps(&self) -> Result<(), StoreError> {
        let store = &self.inner.store;
        for merchant in store.merchants_with_rules().await? {
            let mut tx = store.begin().await?;
            work::request_sweep(&mut tx, merchant, Trigger::Schedule, false, now()).await?;
            tx.commit().await?;
            self.inner.wakeups.wake(merchant);
        }
        Ok(())
    }

    /// Appends a judged batch's decisions, moves its prices and settles the work it answers,
    /// in one transaction (see [`decisions`]), then updates the cache and tells the other
    /// replicas.
    pub async fn apply(
        &self,
        merchant: MerchantId,
        version: &RuleVersion,
        claimed: &Claimed<'_>,
        judged: &[Judged],
        retry: &Retry<'_>,
    ) -> Result<Applied, StoreError> {
        let open = Gate::open();
        let store = &self.inner.store;
        let catalogue = self.catalogue_size(merchant).await?;
        let applied =
            retrying(&open, || decisions::apply(store, merchant, version, claimed, judged, retry, catalogue)).await?;
        if let Some(metrics) = self.inner.metrics.upgrade() {
            for reason in &applied.held {
                metrics.record_held(reason.as_str(), 1);
            }
            if let Some(trip) = &applied.tripped {
                metrics.record_breaker_trip(trip.limit.clone());
            }
            let mut kinds: std::collections::BTreeMap<&'static str, u64> = std::collections::BTreeMap::new();
            for (kind, _, _) in &applied.failed {
                *kinds.entry(kind).or_default() += 1;
            }
            for (kind, failed) in kinds {
                metrics.record_rule_failures(kind, failed);
            }
        }
        // One line a batch, not one a SKU: a failing rule over a large catalogue would flood the log.
        if let Some((kind, sku, message)) = applied.failed.first() {
            tracing::warn!(merchant_id = %merchant, rule_version = version.version, failed = applied.failed.len(),
                recorded = applied.recorded, first_sku = %sku, first_kind = kind, first_error = %message,
                "rule evaluations failed; the prices in force stay");
        }
        if let Some(trip) = &applied.tripped {
            tracing::warn!(merchant_id = %merchant, limit = %trip.limit, threshold = trip.threshold,
                observed = trip.observed, sample = trip.sample, "circuit breaker tripped: automation paused");
        }
        for price in &applied.moved {
            self.inner.cache.put(merchant, price);
        }
        let (first, last) = (applied.moved.iter().map(|p| &p.sku).min(), applied.moved.iter().map(|p| &p.sku).max());
        if let (Claimed::Sweep { .. }, Some(first), Some(last)) = (claimed, first, last) {
            // A page of a sweep is a contiguous range: one short note for all of it.
            self.inner.replication.publish(Change::Range(merchant, first.clone(), last.clone()));
        } else if !applied.moved.is_empty() {
            let moved = applied.moved.iter().map(|p| (p.sku.clone(), p.version)).collect();
            self.inner.replication.publish(Change::Skus(merchant, moved));
        }
        Ok(applied)
    }
}

impl Prices {
    /// The merchant's number of products, as last counted (at most a minute ago).
    async fn catalogue_size(&self, merchant: MerchantId) -> Result<i64, StoreError> {
        if let Some(size) = self.inner.catalogue_sizes.get(&merchant) {
            return Ok(size);
        }
        let size = self.inner.store.count_products(merchant).await?;
        self.inner.catalogue_sizes.insert(merchant, size);
        Ok(size)
    }

    /// Replaces the merchant's approval policy and breaker limits (checked by the caller).
    pub async fn set_policies(&self, merchant: MerchantId, policies: Policies) -> Result<(), StoreError> {
        let this = self.clone();
        self.detached(move |gate| async move {
            retrying(&gate, || safety::set_policies(&this.inner.store, merchant, &policies, &gate)).await
        })
        .await
    }

    /// Freezes the merchant's automated changes (`Some`: who and why), or lifts the freeze, which
    /// sweeps the catalogue; false when it already was so.
    pub async fn set_frozen(
        &self,
        merchant: MerchantId,
        frozen: Option<store::safety::Frozen>,
    ) -> Result<bool, StoreError> {
        let this = self.clone();
        let changed = self
            .detached(move |gate| async move {
                retrying(&gate, || safety::set_frozen(&this.inner.store, merchant, frozen.as_ref(), &gate)).await
            })
            .await?;
        self.inner.wakeups.wake(merchant);
        Ok(changed)
    }

    /// Closes the merchant's tripped breaker and sweeps the catalogue; false when it had not
    /// tripped.
    pub async fn resume(&self, merchant: MerchantId) -> Result<bool, StoreError> {
        let this = self.clone();
        let resumed = self
            .detached(move |gate| async move {
                retrying(&gate, || safety::resume(&this.inner.store, merchant, &gate)).await
            })
            .await?;
        self.inner.wakeups.wake(merchant);
        Ok(resumed)
    }

    /// Approves or rejects proposals (those still pending), in one transaction, by `key_id`'s
    /// holder; then lands the moved prices like any decision's.
    pub async fn decide_proposals(
        &self,
        merchant: MerchantId,
        proposals: Vec<i64>,
        verdict: Verdict,
        key_id: String,
    ) -> Result<Decided, StoreError> {
        let this = self.clone();
        self.detached(move |gate| async move {
            let inner = &this.inner;
            let decided =
                retrying(&gate, || proposals::decide(&inner.store, merchant, &proposals, verdict, &key_id, &gate))
                    .await?;
            for price in &decided.moved {
                inner.cache.put(merchant, price);
            }
            if !decided.moved.is_empty() {
                let moved = decided.moved.iter().map(|p| (p.sku.clone(), p.version)).collect();
                inner.replication.publish(Change::Skus(merchant, moved));
            }
            Ok(decided)
        })
        .await
    }
}

impl Prices {
    /// Stores a new override made by `key_id`'s holder, and brings the catalogue to it at
    /// once when it starts now.
    pub async fn create_override(
        &self,
        merchant: MerchantId,
        draft: OverrideDraft,
        key_id: String,
    ) -> Result<StoredOverride, StoreError> {
        let this = self.clone();
        self.detached(move |gate| async move {
            let store = &this.inner.store;
            let made = retrying(&gate, || async {
                let mut tx = store.begin().await?;
                let head = chain::lock_head(&mut tx, merchant).await?;
                let made = store::overrides::insert(&mut tx, merchant, &draft, &key_id, head.at()).await?;
                gate.check()?;
                tx.commit().await?;
                Ok(made)
            })
            .await?;
            this.land_overrides(merchant).await?;
            Ok(made)
        })
        .await
    }

    /// Ends an override now (false when it had already ended) and brings the catalogue to it.
    pub async fn cancel_override(&self, merchant: MerchantId, id: i64) -> Result<bool, StoreError> {
        let this = self.clone();
        self.detached(move |gate| async move {
            let store = &this.inner.store;
            let cancelled = retrying(&gate, || async {
                let mut tx = store.begin().await?;
                let head = chain::lock_head(&mut tx, merchant).await?;
                let cancelled = store::overrides::cancel(&mut tx, merchant, id, head.at()).await?;
                gate.check()?;
                tx.commit().await?;
                Ok(cancelled)
            })
            .await?;
            this.land_overrides(merchant).await?;
            Ok(cancelled)
        })
        .await
    }

    /// Brings the catalogue of every merchant with an override due to the clock (the
    /// overrides' ticker; every replica runs one, and the chain head lock keeps them apart).
    pub async fn settle_overrides(&self) -> Result<(), StoreError> {
        for merchant in self.inner.store.merchants_with_unsettled_overrides(now()).await? {
            self.land_overrides(merchant).await?;
        }
        Ok(())
    }

    /// Brings one merchant's catalogue to its overrides, then lands the moved prices.
    async fn land_overrides(&self, merchant: MerchantId) -> Result<(), StoreError> {
        let open = Gate::open();
        let moved = retrying(&open, || overrides::settle(&self.inner.store, merchant, &open)).await?;
        for price in &moved {
            self.inner.cache.put(merchant, price);
        }
        if !moved.is_empty() {
            let moved = moved.iter().map(|p| (p.sku.clone(), p.version)).collect();
            self.inner.replication.publish(Change::Skus(merchant, moved));
        }
        // Ended overrides ask the rule to decide again.
        self.inner.wakeups.wake(merchant);
        Ok(())
    }
}

/// Runs a transaction again while the database rolls it back for contention (and the caller
/// still waits), after a short, growing pause.
async fn retrying<T, F, Fut>(gate: &Gate, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(StoreError::Contended(why)) if tries < ATTEMPTS && gate.check().is_ok() => {
                tracing::debug!(reason = %why, tries, "retrying a contended transaction");
                tokio::time::sleep(Duration::from_millis(2 << tries)).await;
                tries += 1;
            }
            done => return done,
        }
    }
}
