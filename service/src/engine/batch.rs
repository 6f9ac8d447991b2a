//! One batch of a merchant's products: contexts built from signals already read, evaluated in
//! one call of the active rule on a worker, judged, and split into what is decided now and
//! what failed for a reason of the service's own (to be evaluated again later).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Inner;
use crate::domain::{MerchantId, Product, Sku, Trigger};
use crate::pricing::Judged;
use crate::pricing::context::context;
use crate::rules::{Mode, evaluate};
use crate::sandbox::{EvalError, Evaluation, PreparedRule, RuleContext};
use crate::store::{CurrentPrice, RuleVersion, Signals};

/// Times a deadline may pass on a busy machine before the rule is held responsible: fuel is
/// the deterministic limit, and the wall-clock deadline only a backstop.
pub(super) const DEADLINE_ATTEMPTS: i64 = 3;

/// A merchant's active rule, loaded.
pub(super) struct Active {
    pub merchant: MerchantId,
    pub version: RuleVersion,
    pub rule: PreparedRule,
}

/// A product to evaluate: with its price in force, why, and its context.
pub(super) struct Candidate {
    product: Product,
    price: CurrentPrice,
    trigger: Trigger,
    ctx: RuleContext,
    /// Earlier attempts that failed for a reason of the service's own.
    attempts: i64,
}

/// The product's candidate, when it has a price in force.
pub(super) fn candidate(
    inner: &Inner,
    product: Product,
    signals: &Signals,
    now: DateTime<Utc>,
    trigger: Trigger,
    attempts: i64,
) -> Option<Candidate> {
    let (ctx, price) = context(&product, signals, now, inner.rules.stale_after_secs())?;
    Some(Candidate { product, price, trigger, ctx, attempts })
}

/// A batch judged: decisions to record, and products to evaluate again later.
#[derive(Default)]
pub(super) struct Outcome {
    pub record: Vec<Judged>,
    pub retry: Vec<Sku>,
}

/// Runs the rule on a batch on one of the engine's workers and judges each result (no store
/// access).
pub(super) async fn judge(inner: &Arc<Inner>, active: &Active, batch: Vec<Candidate>) -> Outcome {
    if batch.is_empty() {
        return Outcome::default();
    }
    let contexts: Vec<RuleContext> = batch.iter().map(|c| c.ctx.clone()).collect();
    let params = &active.version.params;
    let sandbox = inner.rules.sandbox();
    let evaluations = inner
        .pool
        .run(async {
            match evaluate(sandbox, &active.rule, params, &contexts, Mode::Batch).await {
                Ok(evaluations) => evaluations,
                // A context the interface cannot carry fails alone: the others run.
                Err(_) => one_by_one(inner, active, &contexts).await,
            }
        })
        .await;
    inner.evaluations.fetch_add(evaluations.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let mut outcome = Outcome::default();
    for (c, evaluation) in batch.into_iter().zip(evaluations) {
        if is_service_failure(&evaluation, c.attempts) {
            outcome.retry.push(c.product.sku);
        } else {
            outcome.record.push(Judged::new(c.product, c.price, c.trigger, c.ctx, evaluation));
        }
    }
    outcome
}

/// Each context in a call of its own; one the interface refuses is a failed evaluation.
async fn one_by_one(inner: &Inner, active: &Active, contexts: &[RuleContext]) -> Vec<Evaluation> {
    let mut evaluations = Vec::with_capacity(contexts.len());
    for ctx in contexts {
        let alone = evaluate(
            inner.rules.sandbox(),
            &active.rule,
            &active.version.params,
            std::slice::from_ref(ctx),
            Mode::Batch,
        )
        .await;
        evaluations.push(match alone {
            Ok(mut one) if one.len() == 1 => one.remove(0),
            Ok(_) => Evaluation::failed(EvalError::InvalidOutput("the rule returned no result".into())),
            Err(invalid) => Evaluation::failed(EvalError::InvalidInput(invalid.to_string())),
        });
    }
    evaluations
}

/// A full instance pool is always the service's problem; a missed deadline is, too, until it
/// has happened [`DEADLINE_ATTEMPTS`] times (a rule that is really too slow runs out of fuel,
/// or keeps missing its deadline, and is then held responsible).
fn is_service_failure(evaluation: &Evaluation, attempts: i64) -> bool {
    match &evaluation.result {
        Err(EvalError::Busy) => true,
        Err(EvalError::Timeout(_)) => attempts + 1 < DEADLINE_ATTEMPTS,
        _ => false,
    }
}
