//! Many contexts in one call of the rule's `evaluate-batch`: attributed context by context
//! for rules that mark their contexts, with a fallback to one call per context (the design is
//! in `run.rs`).
//!
//! What a crafted rule can get from one batch is bounded: each context has one evaluation's
//! fuel and time; the work outside the contexts (before the first mark and after the last,
//! together) has one evaluation's and a 64th of one per context; a call that stops inside a
//! context fails that context alone and re-runs only the others, one call each; and a call
//! that fails outside its contexts sends that rule version to one call per context for good,
//! so its fallback is paid once, not on every batch. In all, a batch of n costs at most about
//! 2n + 1 evaluations' allowance, and after the first failure n.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::bindings;
use super::context::{RuleDecision, check_decision};
use super::host::Marks;
use super::outcome::{EvalError, EvalStats, Evaluation};
use super::run::{Phase, classify, stats_of};
use super::{PreparedRule, Sandbox};

/// Why a batch call gave no answers, and the context it stopped in, when it stopped in one.
struct BatchFailure {
    error: EvalError,
    in_context: Option<(usize, EvalStats)>,
}

impl BatchFailure {
    fn outside(error: EvalError) -> Self {
        Self { error, in_context: None }
    }
}

impl Sandbox {
    /// Evaluates contexts for decision records: each result with its own fuel, log and
    /// failure kind. Through the batch entry point, in one call on one instance, when the
    /// rule marks its contexts; otherwise, or when that call fails as a whole, one call per
    /// context ([`Sandbox::evaluate_many`]).
    pub fn evaluate_attributed(&self, rule: &PreparedRule, ctxs: &[bindings::Context]) -> Vec<Evaluation> {
        if ctxs.is_empty() {
            return Vec::new();
        }
        if !rule.marks_contexts || rule.batch_unusable.load(Ordering::Relaxed) {
            return self.evaluate_many(rule, ctxs);
        }
        match self.attributed_batch(rule, ctxs) {
            Ok(evaluations) => evaluations,
            // A full pool is the service's trouble, for every context alike: the caller
            // tries again later, and one call per context would only meet the same pool.
            Err(BatchFailure { error: error @ EvalError::Busy, .. }) => {
                ctxs.iter().map(|_| Evaluation { result: Err(error.clone()), stats: EvalStats::default() }).collect()
            }
            // One context failed (a trap, its fuel or time): it keeps its failure, and only the
            // others are evaluated again, one call each (their answers went down with the call).
            Err(BatchFailure { error, in_context: Some((index, stats)) }) => {
                let others: Vec<_> =
                    ctxs.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, c)| c.clone()).collect();
                let mut evaluations = self.evaluate_many(rule, &others);
                evaluations.insert(index, Evaluation { result: Err(error), stats });
                evaluations
            }
            Err(BatchFailure { error, in_context: None }) => {
                tracing::debug!(
                    contexts = ctxs.len(),
                    kind = error.kind(),
                    error = %error,
                    "the batch call failed outside its contexts; this rule is evaluated one context per call from now on"
                );
                rule.batch_unusable.store(true, Ordering::Relaxed);
                self.evaluate_many(rule, ctxs)
            }
        }
    }

    /// One `evaluate-batch` call, split at the guest's marks. An error means the call as a
    /// whole gave nothing attributable, except to the context it stopped in.
    fn attributed_batch(
        &self,
        rule: &PreparedRule,
        ctxs: &[bindings::Context],
    ) -> Result<Vec<Evaluation>, BatchFailure> {
        let n = ctxs.len() as u64;
        // Taking the inputs in and handing the answers back grow with the batch, but a little:
        // that work has a bounded allowance of its own; each context has one evaluation's.
        let outside = self.outside_allowance(n);
        let (mut store, policy) = self.instantiate(rule, n).map_err(|(error, _)| BatchFailure::outside(error))?;
        store.set_fuel(outside.fuel).expect("fuel is enabled on the engine");
        store.set_epoch_deadline(outside.ticks);
        store.data_mut().marks = Some(Marks::new(ctxs.len(), self.allowance(1), outside));
        let deadline_ms = self.settings.deadline_ms;
        let decisions = match policy.call_batch(&mut store, ctxs) {
            Ok(decisions) => decisions,
            Err(e) => {
                let error = classify(e, &store, self.settings.fuel_per_evaluation, deadline_ms, Phase::Call);
                let state = store.data();
                let in_context = state.marks.as_ref().filter(|m| m.violation.is_none()).and_then(|marks| {
                    let index = marks.current()? as usize;
                    let stats = marks.partial(store.get_fuel().unwrap_or(0), &state.log, state.limiter.peak_memory);
                    Some((index, stats))
                });
                return Err(BatchFailure { error, in_context });
            }
        };
        if decisions.len() != ctxs.len() {
            let error = EvalError::InvalidOutput(format!("{} decisions for {} contexts", decisions.len(), ctxs.len()));
            return Err(BatchFailure::outside(error));
        }
        let marks = store.data_mut().marks.take().expect("the marks were set above");
        let spans = marks.finish().map_err(|e| BatchFailure::outside(EvalError::InvalidOutput(e)))?;
        let limits = self.output_limits();
        Ok(decisions
            .into_iter()
            .zip(ctxs)
            .zip(spans)
            .map(|((decision, ctx), stats)| Evaluation {
                result: check_decision(decision, &ctx.currency, &limits).map_err(EvalError::from),
                stats,
            })
            .collect())
    }

    /// Evaluates many contexts in one call of the rule's batch entry point as one evaluation
    /// with the fuel, time and log allowance of that many: no attribution (the log covers the
    /// whole batch). A trap fails the whole batch; a refused answer fails only its own entry.
    /// Decision records need [`Sandbox::evaluate_attributed`]; this is the baseline it is
    /// measured against.
    pub fn evaluate_batch(
        &self,
        rule: &PreparedRule,
        ctxs: &[bindings::Context],
    ) -> (Result<Vec<Result<RuleDecision, EvalError>>, EvalError>, EvalStats) {
        let started = Instant::now();
        let n = ctxs.len().max(1) as u64;
        let allowance = self.allowance(n);
        let deadline_ms = self.settings.deadline_ms.saturating_mul(n);
        let (mut store, policy) = match self.instantiate(rule, n) {
            Ok(instance) => instance,
            Err((error, stats)) => return (Err(error), stats),
        };
        store.set_fuel(allowance.fuel).expect("fuel is enabled on the engine");
        store.set_epoch_deadline(allowance.ticks);
        store.data_mut().log_limit = self.settings.log_bytes.saturating_mul(n as usize);
        let limits = self.output_limits();
        let result = match policy.call_batch(&mut store, ctxs) {
            Err(e) => Err(classify(e, &store, allowance.fuel, deadline_ms, Phase::Call)),
            Ok(decisions) if decisions.len() != ctxs.len() => {
                Err(EvalError::InvalidOutput(format!("{} decisions for {} contexts", decisions.len(), ctxs.len())))
            }
            Ok(decisions) => Ok(decisions
                .into_iter()
                .zip(ctxs)
                .map(|(d, ctx)| check_decision(d, &ctx.currency, &limits).map_err(EvalError::from))
                .collect()),
        };
        (result, stats_of(store, allowance.fuel, started))
    }
}
