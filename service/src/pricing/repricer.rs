//! Repricing, off the request path: signals name the (merchant, SKU) keys they affect; keys
//! wait in a per-merchant set (so a burst of signals for one SKU becomes one evaluation) until
//! the worker takes them, runs the merchant's active rule on them (one reused instance per
//! batch, each result and log its own), applies the guardrails, and appends each decision with
//! its price change in one transaction, then updates the price cache. Products of a merchant
//! with no active rule keep their set price. With several replicas, a merchant's work runs
//! under its repricing lock and moved prices are published to the other replicas' caches
//! (see [`crate::replication`]); work whose merchant is locked elsewhere waits and retries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;

use super::context::assemble;
use super::judge::{Judged, judge};
use crate::cache::PriceCache;
use crate::domain::{MerchantId, Product, Sku};
use crate::replication::{Change, Replication};
use crate::rules::Rules;
use crate::sandbox::{PreparedRule, RuleContext};
use crate::store::{CurrentPrice, NewDecision, RuleVersion, Store, StoreError};

/// Products evaluated per batch (one rule instance each).
pub(super) const BATCH: u32 = 500;
/// How long work waits when another replica holds its merchant's lock.
const LOCKED_RETRY: Duration = Duration::from_millis(25);

/// Why a product is being repriced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    ProductChanged,
    CompetitorPrices,
    Demand,
    RuleActivated,
    ParamsChanged,
    Schedule,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::ProductChanged => "product_changed",
            Trigger::CompetitorPrices => "competitor_prices",
            Trigger::Demand => "demand",
            Trigger::RuleActivated => "rule_activated",
            Trigger::ParamsChanged => "params_changed",
            Trigger::Schedule => "schedule",
        }
    }
}

#[derive(Default)]
struct Pending {
    /// The whole catalogue, and why.
    all: Option<Trigger>,
    skus: HashMap<Sku, Trigger>,
}

pub(super) struct Inner {
    pub(super) store: Arc<dyn Store>,
    pub(super) rules: Arc<Rules>,
    cache: Arc<PriceCache>,
    pending: Mutex<HashMap<MerchantId, Pending>>,
    wake: Arc<Notify>,
    busy: AtomicBool,
    evaluations: AtomicU64,
    pub(super) replication: Replication,
    /// Merchants' work waiting out another replica's lock.
    deferred: AtomicUsize,
}

#[derive(Clone)]
pub struct Repricer {
    inner: Arc<Inner>,
}

impl Repricer {
    /// Starts the worker on the current tokio runtime.
    pub fn start(store: Arc<dyn Store>, rules: Arc<Rules>, cache: Arc<PriceCache>) -> Self {
        Self::start_replicated(store, rules, cache, Replication::local())
    }

    /// Starts the worker, locking and publishing through `replication`.
    pub fn start_replicated(
        store: Arc<dyn Store>,
        rules: Arc<Rules>,
        cache: Arc<PriceCache>,
        replication: Replication,
    ) -> Self {
        let inner = Arc::new(Inner {
            store,
            rules,
            cache,
            pending: Mutex::new(HashMap::new()),
            wake: Arc::new(Notify::new()),
            busy: AtomicBool::new(false),
            evaluations: AtomicU64::new(0),
            replication,
            deferred: AtomicUsize::new(0),
        });
        tokio::spawn(work(Arc::downgrade(&inner), inner.wake.clone()));
        Self { inner }
    }

    /// Queues products for repricing; returns at once.
    pub fn request(&self, merchant: MerchantId, skus: impl IntoIterator<Item = Sku>, trigger: Trigger) {
        let mut pending = self.inner.pending.lock().expect("the queue lock is not poisoned");
        let entry = pending.entry(merchant).or_default();
        for sku in skus {
            entry.skus.insert(sku, trigger);
        }
        drop(pending);
        self.inner.wake.notify_one();
    }

    /// Queues a merchant's whole catalogue.
    pub fn request_all(&self, merchant: MerchantId, trigger: Trigger) {
        self.inner.pending.lock().expect("the queue lock is not poisoned").entry(merchant).or_default().all =
            Some(trigger);
        self.inner.wake.notify_one();
    }

    /// Reprices every merchant with an active rule every `period`, until the repricer is dropped.
    pub fn start_schedule(&self, period: Duration) {
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.tick().await; // the first tick is immediate: wait a whole period first
            loop {
                ticks.tick().await;
                let Some(strong) = inner.upgrade() else { return };
                match strong.store.merchants_with_rules().await {
                    Ok(merchants) => {
                        let repricer = Repricer { inner: strong };
                        for merchant in merchants {
                            repricer.request_all(merchant, Trigger::Schedule);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "scheduled repricing could not list merchants"),
                }
            }
        });
    }

    pub fn replication(&self) -> &Replication {
        &self.inner.replication
    }

    /// Rule evaluations run so far.
    pub fn evaluations(&self) -> u64 {
        self.inner.evaluations.load(Ordering::Relaxed)
    }

    /// Waits until nothing is queued or running (for tests and orderly shutdown).
    pub async fn settled(&self) {
        loop {
            let queued = !self.inner.pending.lock().expect("the queue lock is not poisoned").is_empty();
            let deferred = self.inner.deferred.load(Ordering::SeqCst) > 0;
            if !queued && !deferred && !self.inner.busy.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The worker holds the repricer only weakly, so it ends when the service drops it.
async fn work(inner: std::sync::Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        let Some(strong) = inner.upgrade() else { return };
        let work = {
            let mut pending = strong.pending.lock().expect("the queue lock is not poisoned");
            strong.busy.store(!pending.is_empty(), Ordering::SeqCst);
            std::mem::take(&mut *pending)
        };
        if work.is_empty() {
            drop(strong);
            // Wake on a request, or now and then to notice that the service has gone.
            let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
            continue;
        }
        for (merchant, pending) in work {
            let lock = match strong.replication.try_lock_merchant(merchant).await {
                Ok(Some(lock)) => lock,
                held_or_failed => {
                    if let Err(e) = held_or_failed {
                        tracing::warn!(merchant_id = %merchant, error = %e, "the repricing lock is unavailable");
                    }
                    defer(&strong, merchant, pending);
                    continue;
                }
            };
            if let Err(e) = reprice_merchant(&strong, merchant, pending).await {
                tracing::error!(merchant_id = %merchant, error = %e, "repricing failed");
            }
            lock.release().await;
        }
        strong.busy.store(false, Ordering::SeqCst);
    }
}

/// Puts work back after a short wait (another replica reprices the merchant meanwhile; its
/// evaluation may not have seen the signals behind this work, so they are evaluated again).
fn defer(inner: &Arc<Inner>, merchant: MerchantId, pending: Pending) {
    inner.deferred.fetch_add(1, Ordering::SeqCst);
    let inner = inner.clone();
    tokio::spawn(async move {
        tokio::time::sleep(LOCKED_RETRY).await;
        let mut queue = inner.pending.lock().expect("the queue lock is not poisoned");
        let entry = queue.entry(merchant).or_default();
        // Anything queued since is newer and wins.
        entry.all = entry.all.or(pending.all);
        for (sku, trigger) in pending.skus {
            entry.skus.entry(sku).or_insert(trigger);
        }
        drop(queue);
        inner.deferred.fetch_sub(1, Ordering::SeqCst);
        inner.wake.notify_one();
    });
}

async fn reprice_merchant(inner: &Inner, merchant: MerchantId, pending: Pending) -> Result<(), StoreError> {
    let Some(active) = inner.store.active_rule(merchant).await? else {
        return Ok(()); // no rule: products keep their set price
    };
    let (version, rule) = match (
        inner.rules.version(merchant, active.version).await,
        inner.rules.prepared(merchant, active.version).await,
    ) {
        (Ok(version), Ok(rule)) => (version, rule),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(merchant_id = %merchant, error = %e, "the active rule cannot be loaded");
            return Ok(());
        }
    };
    let stale_after = inner.rules.stale_after_secs();
    if let Some(trigger) = pending.all {
        return super::catalogue::reprice_catalogue(inner, merchant, &version, &rule, trigger).await;
    }
    let mut skus: Vec<(Sku, Trigger)> = pending.skus.into_iter().collect();
    skus.sort_by(|a, b| a.0.cmp(&b.0));
    for chunk in skus.chunks(BATCH as usize) {
        let mut batch = Vec::with_capacity(chunk.len());
        for (sku, trigger) in chunk {
            if let Some(product) = inner.store.product(merchant, sku).await?
                && let Some((ctx, price)) =
                    assemble(inner.store.as_ref(), merchant, &product, Utc::now(), stale_after).await?
            {
                batch.push((product, price, *trigger, ctx));
            }
        }
        let moved = reprice_batch(inner, merchant, &version, &rule, batch).await?;
        inner.replication.publish(Change::Skus(merchant, moved));
    }
    Ok(())
}

async fn reprice_batch(
    inner: &Inner,
    merchant: MerchantId,
    version: &RuleVersion,
    rule: &PreparedRule,
    batch: Vec<Candidate>,
) -> Result<Vec<(Sku, i64)>, StoreError> {
    let judged = evaluate_batch(inner, merchant, version, rule, batch).await;
    write_batch(inner, merchant, version, &judged).await
}

/// A product to evaluate: with its price in force, why, and its context.
pub(super) type Candidate = (Product, CurrentPrice, Trigger, RuleContext);

/// Runs the rule on a batch and judges each result (no store access).
pub(super) async fn evaluate_batch(
    inner: &Inner,
    merchant: MerchantId,
    version: &RuleVersion,
    rule: &PreparedRule,
    batch: Vec<Candidate>,
) -> Vec<Judged> {
    if batch.is_empty() {
        return Vec::new();
    }
    let guest: Vec<_> = batch.iter().filter_map(|(_, _, _, ctx)| ctx.to_guest(&version.params).ok()).collect();
    if guest.len() != batch.len() {
        tracing::error!(merchant_id = %merchant, "stored data gave a context the rule interface refuses");
        return Vec::new();
    }
    let sandbox = inner.rules.sandbox().clone();
    let rule = rule.clone();
    // One call of the rule's batch entry point, split into each context's own result, fuel
    // and log (one call per context for rules that cannot be split, or a batch that fails).
    let evaluations = tokio::task::spawn_blocking(move || sandbox.evaluate_attributed(&rule, &guest))
        .await
        .expect("evaluation does not panic");
    inner.evaluations.fetch_add(evaluations.len() as u64, Ordering::Relaxed);
    batch
        .into_iter()
        .zip(evaluations)
        .map(|((product, price, trigger, ctx), evaluation)| judge(product, price, trigger, ctx, evaluation))
        .collect()
}

/// Appends a judged batch's decisions and moves its prices in one transaction, then updates
/// the cache; returns the prices that moved, for the caller to publish to other replicas.
pub(super) async fn write_batch(
    inner: &Inner,
    merchant: MerchantId,
    version: &RuleVersion,
    judged: &[Judged],
) -> Result<Vec<(Sku, i64)>, StoreError> {
    if judged.is_empty() {
        return Ok(Vec::new());
    }
    let decisions: Vec<NewDecision> = judged.iter().map(|j| j.new_decision(merchant, version)).collect();
    let mut published = Vec::new();
    for (_, moved) in inner.store.append_decisions(merchant, &decisions).await? {
        if let Some(moved) = moved {
            inner.cache.put(merchant, &moved);
            published.push((moved.sku, moved.version));
        }
    }
    Ok(published)
}
