//! The repricing engine, off the request path.
//!
//! **Durable intent.** Whatever asks for a reprice stores its intent in the transaction of the
//! change itself ([`crate::store::work`]): a targeted intent per product (product changes,
//! signals) or a sweep of the whole catalogue (activation, rollback, parameters, schedule).
//! The transaction that appends a decision clears the intent it answers, and a sweep's
//! position moves in the transaction that writes its page. So a crash at any instant leaves
//! the work in the store, and the engine, which always works from the store, finishes it after
//! a restart. Every product is evaluated at least once after its last change, and its inputs
//! are read after that change was committed (a request made during an evaluation bumps the
//! intent's generation, so the intent stays for another evaluation).
//!
//! **Fairness.** Each merchant with work has a lane ([`lane`]): it takes the merchant's
//! targeted work first, in batches, and its sweep page by page, serving targeted work between
//! pages. Lanes run side by side and share the workers ([`pool`]), which serve batches first
//! come, first served. A sweeping merchant has at most `workers + 2` pages waiting for or on a
//! worker, so another merchant's targeted batch waits for at most that many pages per busy
//! merchant (and for the write in flight of each), never for a whole catalogue.
//!
//! **Every core.** `pricing.workers` evaluations run at once (default: one per core). A sweep
//! reads and evaluates its next pages while the current one is written; one merchant's pages
//! are written in order, one at a time (its chain is sequential); different merchants' writes
//! run side by side.
//!
//! **Replicas.** Work is claimed from the store for `pricing.lease_secs` (PostgreSQL skips rows
//! another replica is claiming), so two replicas never evaluate one product at once and an
//! idle replica takes work that another has not reached. The work of a replica that dies is
//! taken over once its claims expire (at most `lease_secs`, plus `poll_ms` until a replica
//! looks). A decision is appended only while its claim is still held, and only for the
//! product and price versions it evaluated, so guardrails that depend on the previous decision
//! (minimum interval, maximum step) see the price in force. SQLite has one process, which frees
//! its earlier run's claims at start.
//!
//! **Failures.** A rule that fails is a recorded decision (the price stays). A failure of the
//! service's own (a full instance pool, a deadline missed on a busy machine, a lost database
//! connection) is not the rule's: the work is put back and tried again after a pause.
//!
//! **Shutdown.** [`Engine::shutdown`] lets the batches in flight finish and leaves the rest in
//! the store. Signals are never refused because the engine is busy: their intent waits.

mod batch;
mod lane;
mod lanes;
mod pool;
mod sweep;
mod targeted;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::Utc;

use crate::config::PricingSettings;
use crate::domain::{MerchantId, Sku, Trigger};
use crate::metrics::RepricingReadings;
use crate::rules::Rules;
use crate::store::{Backend, Backlog, Store, StoreError};
use crate::trials::Trials;
use crate::write::Prices;

use self::lanes::Lanes;
use self::pool::Pool;

/// How the engine runs (from `[pricing]`).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub workers: usize,
    pub batch_size: u32,
    pub lease: Duration,
    pub poll: Duration,
}

impl From<&PricingSettings> for EngineSettings {
    fn from(s: &PricingSettings) -> Self {
        Self {
            workers: s.worker_count(),
            batch_size: s.batch_size,
            lease: Duration::from_secs(s.lease_secs.max(1)),
            poll: Duration::from_millis(s.poll_ms.max(10)),
        }
    }
}

pub(crate) struct Inner {
    prices: Prices,
    rules: Arc<Rules>,
    /// Shadows ride on the decisions the engine records.
    trials: Trials,
    settings: EngineSettings,
    pool: Pool,
    lanes: Lanes,
    stopping: AtomicBool,
    evaluations: AtomicU64,
    /// This process's name in claim tokens.
    replica: String,
    backlog: Mutex<Backlog>,
}

impl Inner {
    fn store(&self) -> &Store {
        self.prices.store()
    }

    /// A token for one claim.
    fn token(&self) -> String {
        format!("{}:{}", self.replica, uuid::Uuid::new_v4().simple())
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// A handle on the running engine; cloning shares it.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Starts the engine on the current tokio runtime: it picks up whatever work is stored.
    pub async fn start(prices: Prices, mut settings: EngineSettings, trials: Trials) -> Result<Self, StoreError> {
        let backend = prices.store().backend();
        if settings.batch_size == 0 {
            settings.batch_size = default_batch_size(backend);
        }
        if backend == Backend::Sqlite {
            prices.store().release_all_claims().await?;
        }
        let wakeups = prices.wakeups().take_receiver();
        let inner = Arc::new(Inner {
            rules: prices.rules().clone(),
            trials,
            prices,
            pool: Pool::new(settings.workers),
            settings,
            lanes: Lanes::default(),
            stopping: AtomicBool::new(false),
            evaluations: AtomicU64::new(0),
            replica: uuid::Uuid::new_v4().simple().to_string(),
            backlog: Mutex::new(Backlog::default()),
        });
        if let Some(mut wakeups) = wakeups {
            let weak = Arc::downgrade(&inner);
            tokio::spawn(async move {
                while let Some(merchant) = wakeups.recv().await {
                    let Some(inner) = weak.upgrade() else { return };
                    lanes::wake(&inner, merchant);
                }
            });
        }
        tokio::spawn(poll(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// Queues a sweep of every merchant with an active rule every `period`, until the
    /// engine is dropped.
    pub fn start_schedule(&self, period: Duration) {
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.tick().await; // the first tick is immediate: wait a whole period first
            loop {
                ticks.tick().await;
                let Some(strong) = inner.upgrade() else { return };
                if let Err(e) = strong.prices.request_scheduled_sweeps().await {
                    tracing::warn!(error = %e, "scheduled repricing could not be queued");
                }
            }
        });
    }

    /// Queues products for repricing, as a change would (tools and tests).
    pub async fn request(&self, merchant: MerchantId, skus: &[Sku], trigger: Trigger) -> Result<(), StoreError> {
        self.inner.prices.request_reprice(merchant, skus, trigger).await
    }

    /// Rule evaluations run so far.
    pub fn evaluations(&self) -> u64 {
        self.inner.evaluations.load(Ordering::Relaxed)
    }

    /// What the engine has done and has waiting (the backlog as last read, at most a second
    /// ago), for the metrics.
    pub fn readings(&self) -> RepricingReadings {
        let backlog = self.inner.backlog.lock().expect("the backlog lock is not poisoned").clone();
        RepricingReadings {
            evaluations: self.evaluations(),
            worker_busy_seconds: self.inner.pool.busy_seconds(),
            queued: backlog.intents.iter().map(|(m, n)| (m.to_string(), *n)).collect(),
            sweeps: backlog.sweeps,
            oldest_seconds: backlog.oldest.map_or(0.0, |at| (Utc::now() - at).num_milliseconds().max(0) as f64 / 1e3),
        }
    }

    /// Waits until no work is stored or running (for tests and tools).
    pub async fn settled(&self) {
        loop {
            let idle = self.inner.lanes.is_empty();
            if idle && matches!(self.inner.store().has_work().await, Ok(false)) && self.inner.lanes.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops taking work: the batches in flight finish (for at most `grace`), the rest stays
    /// in the store for the next start or another replica.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        while !self.inner.lanes.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Products per batch when `pricing.batch_size` is 0 (the default). SQLite writes one
/// transaction at a time for every merchant, so a page's write is what another merchant's
/// change waits for: 200 products (about 9 ms to write on the 2-core machine) keep that wait
/// within the 50 ms target, at a tenth more time for a whole catalogue than 500 (measured with
/// the reprice bench: 48.6 s against 44.1 s for a million SKUs, and the other merchant's p99
/// 48 ms against 95 ms). PostgreSQL locks one merchant's chain only, so its pages are larger.
fn default_batch_size(backend: Backend) -> u32 {
    match backend {
        Backend::Sqlite => 200,
        Backend::Postgres => 500,
    }
}

/// Looks in the store for work nobody told this process about (other replicas' requests,
/// expired claims, retries that are due), and now and then reads the backlog for the metrics.
async fn poll(inner: Weak<Inner>) {
    let mut last_backlog = tokio::time::Instant::now() - Duration::from_secs(60);
    loop {
        let Some(strong) = inner.upgrade() else { return };
        if strong.stopping() {
            return;
        }
        let period = strong.settings.poll;
        match strong.store().merchants_with_work(Utc::now()).await {
            Ok(merchants) => merchants.into_iter().for_each(|m| lanes::wake(&strong, m)),
            Err(e) => tracing::debug!(error = %e, "looking for repricing work failed"),
        }
        if last_backlog.elapsed() >= Duration::from_secs(1) {
            last_backlog = tokio::time::Instant::now();
            if let Ok(backlog) = strong.store().backlog().await {
                *strong.backlog.lock().expect("the backlog lock is not poisoned") = backlog;
            }
        }
        drop(strong);
        tokio::time::sleep(period).await;
    }
}
