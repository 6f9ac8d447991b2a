//! Trials of a rule version before it goes live: shadows and backtests, and their reports.
//!
//! - **Shadow**: after the engine records a batch of live decisions, the batch (the same
//!   contexts, the same guardrails, the same situations) is offered to the shadow of the
//!   merchant's running shadow version. The offer never waits: it goes into a bounded queue
//!   (`trials.queue_batches`), and when the queue is full the batch is counted as skipped.
//!   One task evaluates the queue, one batch at a time, and sleeps after each batch so that
//!   shadows take at most `trials.share_percent` of one core's time; its evaluations have the
//!   sandbox's own fuel, deadline and memory limits, and are metered apart
//!   (`pricing_trial_evaluations_total`, `pricing_trial_busy_seconds_total`). So a shadow can
//!   neither fail a live decision (it runs after the decision is committed, on another task)
//!   nor slow it by more than its share of the machine, however hostile it is.
//! - **Backtest**: the version runs over the recorded inputs of the merchant's rule
//!   decisions in a time range, with the recorded guardrails and situations, page by page
//!   (oldest first), under the same share and one backtest at a time per merchant. Its
//!   progress (the last decision looked at) is stored with each page, so a restart resumes
//!   it; cancelling stops it after the page in flight.
//! - Both keep their comparisons apart from the chain, and both reports are
//!   [`report::Report::of`] the stored comparisons.

pub mod backtest;
pub mod report;
mod shadow;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::TrialSettings;
use crate::domain::{MerchantId, Sku};
use crate::metrics::Metrics;
use crate::pricing::Judged;
use crate::rules::{RuleError, Rules};
use crate::store::trials::{StartError, Trial, TrialKind, TrialState};
use crate::store::{Store, StoreError};
use report::{Comparison, Report};

#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    #[error("trial {0} was not found")]
    Unknown(i64),
    #[error("{0}")]
    AlreadyRunning(String),
    #[error("trial {0} is not running")]
    NotRunning(i64),
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<StartError> for TrialError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::AlreadyRunning(_) => TrialError::AlreadyRunning(e.to_string()),
            StartError::Store(e) => TrialError::Store(e),
        }
    }
}

/// A trial with its report so far.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TrialView {
    pub id: i64,
    pub kind: TrialKind,
    pub version: i64,
    pub state: TrialState,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// A backtest's range: from (inclusive) and to (exclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// Decisions compared so far.
    pub done: i64,
    /// A backtest's decisions to look at (0 for a shadow).
    pub total: i64,
    /// Live evaluations a shadow let pass while over its share of the machine.
    pub skipped: i64,
    /// A running backtest's comparisons per second, and the seconds it expects to need still.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub report: Report,
}

/// A running shadow, as the rider knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Running {
    id: i64,
    version: i64,
}

/// The trials of every merchant (cloning shares them).
#[derive(Clone)]
pub struct Trials {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    rules: Arc<Rules>,
    /// Weak: the metrics' readings of the engine hold the engine, which holds this (a strong
    /// reference would keep every stopped service's connection pool open).
    metrics: std::sync::Weak<Metrics>,
    settings: TrialSettings,
    /// Running shadows by merchant, as last read (every replica reads them every second).
    shadows: Mutex<HashMap<MerchantId, Running>>,
    queue: tokio::sync::mpsc::Sender<shadow::Offered>,
    /// Backtests this process is running.
    backtests: Mutex<std::collections::HashSet<(MerchantId, i64)>>,
}

impl Inner {
    /// Meters trial work, apart from live repricing's metrics.
    fn record(&self, kind: &'static str, result: &'static str, count: u64, busy: Duration) {
        if let Some(metrics) = self.metrics.upgrade() {
            metrics.record_trial(kind, result, count, busy);
        }
    }
}

impl Trials {
    /// Starts the shadow task and resumes the backtests left running.
    pub async fn start(
        store: Store,
        rules: Arc<Rules>,
        metrics: Arc<Metrics>,
        settings: TrialSettings,
    ) -> Result<Self, StoreError> {
        let (queue, offered) = tokio::sync::mpsc::channel(settings.queue_batches.max(1));
        let inner = Arc::new(Inner {
            store,
            rules,
            metrics: Arc::downgrade(&metrics),
            settings,
            shadows: Mutex::new(HashMap::new()),
            queue,
            backtests: Mutex::new(Default::default()),
        });
        let trials = Self { inner };
        trials.refresh_shadows().await?;
        tokio::spawn(shadow::run(Arc::downgrade(&trials.inner), offered));
        let weak = Arc::downgrade(&trials.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(inner) = weak.upgrade() else { return };
                let trials = Trials { inner };
                if let Err(e) = trials.refresh_shadows().await {
                    tracing::warn!(error = %e, "reading the running shadows failed");
                }
                if let Err(e) = trials.resume_backtests().await {
                    tracing::warn!(error = %e, "resuming backtests failed");
                }
            }
        });
        trials.resume_backtests().await?;
        Ok(trials)
    }

    async fn refresh_shadows(&self) -> Result<(), StoreError> {
        let running = self.inner.store.running_trials(TrialKind::Shadow).await?;
        let shadows = running.into_iter().map(|t| (t.merchant, Running { id: t.id, version: t.version })).collect();
        *self.inner.shadows.lock().expect("the shadow list is never poisoned") = shadows;
        Ok(())
    }

    async fn resume_backtests(&self) -> Result<(), StoreError> {
        for trial in self.inner.store.running_trials(TrialKind::Backtest).await? {
            self.run_backtest(trial);
        }
        Ok(())
    }

    fn run_backtest(&self, trial: Trial) {
        let key = (trial.merchant, trial.id);
        if !self.inner.backtests.lock().expect("never poisoned").insert(key) {
            return; // already running here
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            backtest::run(&inner, &trial).await;
            inner.backtests.lock().expect("never poisoned").remove(&key);
        });
    }

    /// Offers a batch of live decisions (the judged batch and the sequence numbers the chain
    /// gave them) to the merchant's running shadow, if any. Never waits.
    pub fn offer(&self, merchant: MerchantId, judged: &[Judged], recorded: &[(Sku, i64)]) {
        if recorded.is_empty() {
            return;
        }
        let running = self.inner.shadows.lock().expect("never poisoned").get(&merchant).copied();
        let Some(running) = running else { return };
        let seqs: HashMap<&Sku, i64> = recorded.iter().map(|(sku, seq)| (sku, *seq)).collect();
        let items: Vec<backtest::Recorded> =
            judged.iter().filter_map(|j| Some(shadow::item(j, *seqs.get(&j.product.sku)?))).collect();
        let count = items.len() as u64;
        let offered = shadow::Offered { merchant, trial: running.id, version: running.version, items };
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(offered)) = self.inner.queue.try_send(offered) {
            shadow::skip(&self.inner, &offered);
            self.inner.record("shadow", "skipped", count, Duration::ZERO);
        }
    }

    /// Starts a shadow of `version` (one per merchant at a time).
    pub async fn start_shadow(&self, merchant: MerchantId, version: i64) -> Result<TrialView, TrialError> {
        self.inner.rules.prepared(merchant, version).await?;
        let trial = self.inner.store.start_trial(merchant, TrialKind::Shadow, version, None).await?;
        self.refresh_shadows().await?;
        self.view(merchant, trial.id, TrialKind::Shadow).await
    }

    /// Starts a backtest of `version` over the decisions made from `from` to `to`.
    pub async fn start_backtest(
        &self,
        merchant: MerchantId,
        version: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<TrialView, TrialError> {
        self.inner.rules.prepared(merchant, version).await?;
        let trial = self.inner.store.start_trial(merchant, TrialKind::Backtest, version, Some((from, to))).await?;
        let id = trial.id;
        self.run_backtest(trial);
        self.view(merchant, id, TrialKind::Backtest).await
    }

    /// Stops a shadow or cancels a backtest (what it compared stays, with its report).
    pub async fn stop(&self, merchant: MerchantId, id: i64, kind: TrialKind) -> Result<TrialView, TrialError> {
        let trial = self.trial(merchant, id, kind).await?;
        let state = match kind {
            TrialKind::Shadow => TrialState::Stopped,
            TrialKind::Backtest => TrialState::Cancelled,
        };
        if !self.inner.store.end_trial(merchant, trial.id, state, None).await? {
            return Err(TrialError::NotRunning(id));
        }
        self.refresh_shadows().await?;
        self.view(merchant, id, kind).await
    }

    /// A trial of `kind`, or `Unknown`.
    pub async fn trial(&self, merchant: MerchantId, id: i64, kind: TrialKind) -> Result<Trial, TrialError> {
        match self.inner.store.trial(merchant, id).await? {
            Some(trial) if trial.kind == kind => Ok(trial),
            _ => Err(TrialError::Unknown(id)),
        }
    }

    /// A trial with its report.
    pub async fn view(&self, merchant: MerchantId, id: i64, kind: TrialKind) -> Result<TrialView, TrialError> {
        let trial = self.trial(merchant, id, kind).await?;
        let comparisons = self.comparisons(merchant, id).await?;
        Ok(view(trial, Report::of(&comparisons)))
    }

    /// The merchant's trials of a kind, newest first, with their reports.
    pub async fn list(&self, merchant: MerchantId, kind: TrialKind) -> Result<Vec<TrialView>, TrialError> {
        let mut views = Vec::new();
        for trial in self.inner.store.trials(merchant, kind).await? {
            let comparisons = self.comparisons(merchant, trial.id).await?;
            views.push(view(trial, Report::of(&comparisons)));
        }
        Ok(views)
    }

    async fn comparisons(&self, merchant: MerchantId, id: i64) -> Result<Vec<Comparison>, TrialError> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self.inner.store.comparisons(merchant, id, after, 5_000).await?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (seq, json) in page {
                let comparison = serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("trial {id} comparison {seq}: {e}")))?;
                all.push(comparison);
            }
        }
        Ok(all)
    }
}

fn view(trial: Trial, report: Report) -> TrialView {
    let elapsed = (trial.ended_at.unwrap_or_else(Utc::now) - trial.started_at).num_milliseconds().max(1) as f64 / 1e3;
    let backtest = trial.kind == TrialKind::Backtest;
    let rate = (backtest && trial.done > 0).then(|| trial.done as f64 / elapsed);
    let eta = match (trial.state, rate) {
        (TrialState::Running, Some(rate)) if rate > 0.0 => {
            Some((((trial.total - trial.done).max(0)) as f64 / rate).ceil() as i64)
        }
        _ => None,
    };
    TrialView {
        id: trial.id,
        kind: trial.kind,
        version: trial.version,
        state: trial.state,
        started_at: trial.started_at,
        ended_at: trial.ended_at,
        from: trial.range.map(|(from, _)| from),
        to: trial.range.map(|(_, to)| to),
        done: trial.done,
        total: trial.total,
        skipped: trial.skipped,
        rate_per_sec: rate,
        eta_secs: eta,
        reason: trial.reason,
        report,
    }
}

/// Sleeps so that work that took `busy` uses at most `share_percent` of one core.
async fn pace(busy: Duration, share_percent: u32) {
    let share = share_percent.clamp(1, 100);
    let rest = busy.mul_f64(f64::from(100 - share) / f64::from(share));
    if !rest.is_zero() {
        tokio::time::sleep(rest.min(Duration::from_secs(30))).await;
    }
}
