//! The shadow's rider: batches of live decisions, offered after they were committed, evaluated
//! with the shadowed version on the same contexts, guardrails and situations, one batch at a
//! time and paced to the trials' share of one core (see the module above).

use std::sync::Weak;
use std::time::Instant;

use super::backtest::Recorded;
use super::report::Side;
use super::{Inner, pace};
use crate::domain::MerchantId;
use crate::pricing::{Judged, Situation};
use crate::rules::{Mode, evaluate};
use crate::sandbox::{EvalError, Evaluation, RuleContext};

/// One live decision, as the shadow needs it (the live rule's parameters play no part).
pub(super) fn item(judged: &Judged, seq: i64) -> Recorded {
    Recorded {
        seq,
        ctx: judged.ctx.clone(),
        params: Default::default(),
        guardrails: judged.product.guardrails.clone(),
        situation: Situation {
            current_minor: judged.current.price.minor(),
            cost_minor: judged.product.cost.minor(),
            effective_at: judged.current.effective_at,
            now: judged.ctx.now,
        },
        live: Side::of(&judged.evaluation, &judged.decided),
    }
}

/// A batch offered to a running shadow.
pub(super) struct Offered {
    pub(super) merchant: MerchantId,
    pub(super) trial: i64,
    pub(super) version: i64,
    pub(super) items: Vec<Recorded>,
}

/// Counts a batch the full queue turned away.
pub(super) fn skip(inner: &Inner, offered: &Offered) {
    let (store, merchant, trial, skipped) =
        (inner.store.clone(), offered.merchant, offered.trial, offered.items.len() as i64);
    tokio::spawn(async move {
        if let Err(e) = store.add_comparisons(merchant, trial, &[], 0, skipped).await {
            tracing::warn!(error = %e, trial, "counting a shadow's skipped evaluations failed");
        }
    });
}

/// Evaluates the offered batches until the service stops.
pub(super) async fn run(inner: Weak<Inner>, mut offered: tokio::sync::mpsc::Receiver<Offered>) {
    while let Some(batch) = offered.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        let started = Instant::now();
        let count = batch.items.len() as u64;
        if let Err(e) = shadow(&inner, batch).await {
            tracing::warn!(error = %e, "a shadow batch could not be evaluated");
        }
        let busy = started.elapsed();
        inner.record("shadow", "compared", count, busy);
        pace(busy, inner.settings.share_percent).await;
    }
}

async fn shadow(inner: &Inner, batch: Offered) -> Result<(), super::TrialError> {
    let Offered { merchant, trial, version, items } = batch;
    let rule = inner.rules.prepared(merchant, version).await?;
    let params = inner.rules.version(merchant, version).await?.params;
    let contexts: Vec<RuleContext> = items.iter().map(|item| item.ctx.clone()).collect();
    let evaluations = match evaluate(inner.rules.sandbox(), &rule, &params, &contexts, Mode::Batch).await {
        Ok(evaluations) => evaluations,
        Err(invalid) => {
            let why = EvalError::InvalidInput(invalid.to_string());
            contexts.iter().map(|_| Evaluation::failed(why.clone())).collect()
        }
    };
    let mut comparisons = Vec::with_capacity(items.len());
    for (item, evaluation) in items.into_iter().zip(evaluations) {
        let comparison = item.compare(&evaluation);
        let json = serde_json::to_string(&comparison).expect("a comparison serializes");
        comparisons.push((comparison.seq, json));
    }
    let last = comparisons.iter().map(|(seq, _)| *seq).max().unwrap_or(0);
    inner.store.add_comparisons(merchant, trial, &comparisons, last, 0).await?;
    Ok(())
}
