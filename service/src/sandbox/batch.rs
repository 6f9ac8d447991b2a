//! Many contexts in one call of the rule's `evaluate-batch`: attributed context by context
//! for rules that mark their contexts, with a fallback to one call per context (the design is
//! in `run.rs`).

use std::time::Instant;

use super::bindings;
use super::context::{RuleDecision, check_decision};
use super::host::Marks;
use super::outcome::{EvalError, EvalStats, Evaluation};
use super::run::{Phase, classify, stats_of};
use super::{PreparedRule, Sandbox};

impl Sandbox {
    /// Evaluates contexts for decision records: each result with its own fuel, log and
    /// failure kind. Through the batch entry point, in one call on one instance, when the
    /// rule marks its contexts; otherwise, or when that call fails as a whole, one call per
    /// context ([`Sandbox::evaluate_many`]).
    pub fn evaluate_attributed(&self, rule: &PreparedRule, ctxs: &[bindings::Context]) -> Vec<Evaluation> {
        if ctxs.is_empty() {
            return Vec::new();
        }
        if !rule.marks_contexts {
            return self.evaluate_many(rule, ctxs);
        }
        match self.attributed_batch(rule, ctxs) {
            Ok(evaluations) => evaluations,
            Err(error) => {
                tracing::debug!(
                    contexts = ctxs.len(),
                    kind = error.kind(),
                    error = %error,
                    "the batch call failed as a whole; evaluating its contexts one by one"
                );
                self.evaluate_many(rule, ctxs)
            }
        }
    }

    /// One `evaluate-batch` call, split at the guest's marks. An error means the call as a
    /// whole gave nothing attributable.
    fn attributed_batch(&self, rule: &PreparedRule, ctxs: &[bindings::Context]) -> Result<Vec<Evaluation>, EvalError> {
        let n = ctxs.len() as u64;
        // Taking the inputs in and handing the answers back grow with the batch: that work
        // has the whole batch's allowance; each context has one evaluation's.
        let outside = self.allowance(n);
        let (mut store, policy) = self.instantiate(rule, n).map_err(|(error, _)| error)?;
        store.set_fuel(outside.fuel).expect("fuel is enabled on the engine");
        store.set_epoch_deadline(outside.ticks);
        store.data_mut().marks = Some(Marks::new(ctxs.len(), self.allowance(1), outside));
        let deadline_ms = self.settings.deadline_ms;
        let decisions = policy
            .call_evaluate_batch(&mut store, ctxs)
            .map_err(|e| classify(e, &store, self.settings.fuel_per_evaluation, deadline_ms, Phase::Call))?;
        if decisions.len() != ctxs.len() {
            return Err(EvalError::InvalidOutput(format!("{} decisions for {} contexts", decisions.len(), ctxs.len())));
        }
        let marks = store.data_mut().marks.take().expect("the marks were set above");
        let spans = marks.finish().map_err(EvalError::InvalidOutput)?;
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
        let result = match policy.call_evaluate_batch(&mut store, ctxs) {
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
