//! The repricing engine, off the request path: it takes the work queued with the write side
//! ([`crate::write::Intents`]), runs each merchant's active rule on it in batches
//! ([`batch`]; a whole catalogue as a pipelined [`sweep`]), and hands the judged batches to
//! the write side, which records them and moves the prices. Products of a merchant with no
//! active rule keep their set price. With several replicas, a merchant's work runs under its
//! repricing lock (see [`crate::replication`]); work whose merchant is locked elsewhere waits
//! and is tried again.

mod batch;
mod sweep;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;

use crate::domain::{MerchantId, Sku, Trigger};
use crate::pricing::context::rule_now;
use crate::replication::Change;
use crate::rules::Rules;
use crate::store::StoreError;
use crate::write::{Pending, Prices};

/// Products evaluated per batch (one rule instance each).
const BATCH: u32 = 500;
/// How long work waits when another replica holds its merchant's lock.
const LOCKED_RETRY: Duration = Duration::from_millis(25);

struct Inner {
    prices: Prices,
    rules: Arc<Rules>,
    busy: AtomicBool,
    evaluations: AtomicU64,
    /// Merchants' work waiting out another replica's lock.
    deferred: AtomicUsize,
}

/// A handle on the running engine; cloning shares it.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Starts the worker on the current tokio runtime.
    pub fn start(prices: Prices, rules: Arc<Rules>) -> Self {
        let inner = Arc::new(Inner {
            prices,
            rules,
            busy: AtomicBool::new(false),
            evaluations: AtomicU64::new(0),
            deferred: AtomicUsize::new(0),
        });
        tokio::spawn(work(Arc::downgrade(&inner), inner.prices.intents().waker()));
        Self { inner }
    }

    /// Reprices every merchant with an active rule every `period`, until the engine is dropped.
    pub fn start_schedule(&self, period: Duration) {
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.tick().await; // the first tick is immediate: wait a whole period first
            loop {
                ticks.tick().await;
                let Some(strong) = inner.upgrade() else { return };
                match strong.prices.store().merchants_with_rules().await {
                    Ok(merchants) => {
                        for merchant in merchants {
                            strong.prices.request_all(merchant, Trigger::Schedule);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "scheduled repricing could not list merchants"),
                }
            }
        });
    }

    /// Queues products for repricing (as the write side does after a change).
    pub fn request(&self, merchant: MerchantId, skus: impl IntoIterator<Item = Sku>, trigger: Trigger) {
        self.inner.prices.request(merchant, skus, trigger);
    }

    /// Rule evaluations run so far.
    pub fn evaluations(&self) -> u64 {
        self.inner.evaluations.load(Ordering::Relaxed)
    }

    /// Waits until nothing is queued or running (for tests and orderly shutdown).
    pub async fn settled(&self) {
        loop {
            let queued = !self.inner.prices.intents().is_empty();
            let deferred = self.inner.deferred.load(Ordering::SeqCst) > 0;
            if !queued && !deferred && !self.inner.busy.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The worker holds the engine only weakly, so it ends when the service drops it.
async fn work(inner: std::sync::Weak<Inner>, wake: Arc<tokio::sync::Notify>) {
    loop {
        let notified = wake.notified();
        let Some(strong) = inner.upgrade() else { return };
        strong.busy.store(true, Ordering::SeqCst);
        let work = strong.prices.intents().take();
        if work.is_empty() {
            strong.busy.store(false, Ordering::SeqCst);
            drop(strong);
            // Wake on a request, or now and then to notice that the service has gone.
            let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
            continue;
        }
        for (merchant, pending) in work {
            let lock = match strong.prices.replication().try_lock_merchant(merchant).await {
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
        inner.prices.intents().put_back(merchant, pending);
        inner.deferred.fetch_sub(1, Ordering::SeqCst);
    });
}

async fn reprice_merchant(inner: &Inner, merchant: MerchantId, pending: Pending) -> Result<(), StoreError> {
    let store = inner.prices.store();
    let Some(active) = store.active_rule(merchant).await? else {
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
    let active = batch::Active { merchant, version, rule };
    if let Some(trigger) = pending.all {
        return sweep::reprice_catalogue(inner, &active, trigger).await;
    }
    let mut skus: Vec<(Sku, Trigger)> = pending.skus.into_iter().collect();
    skus.sort_by(|a, b| a.0.cmp(&b.0));
    for chunk in skus.chunks(BATCH as usize) {
        let now = rule_now(Utc::now());
        let mut candidates = Vec::with_capacity(chunk.len());
        for (sku, trigger) in chunk {
            if let Some(product) = store.product(merchant, sku).await? {
                let signals = store.signals_between(merchant, sku, sku, now).await?;
                candidates.extend(batch::candidate(inner, product, &signals, now, *trigger));
            }
        }
        let judged = batch::judge(inner, &active, candidates).await;
        let applied = batch::write(inner, &active, &judged).await?;
        let moved = applied.moved.iter().map(|p| (p.sku.clone(), p.version)).collect();
        inner.prices.publish(Change::Skus(merchant, moved));
    }
    Ok(())
}
