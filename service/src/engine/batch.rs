//! One batch of a merchant's products: contexts built from signals already read, evaluated in
//! one call of the active rule, judged, and handed to the write side.

use chrono::{DateTime, Utc};

use super::Inner;
use crate::domain::{MerchantId, Product, Trigger};
use crate::pricing::Judged;
use crate::pricing::context::context;
use crate::rules::{Mode, evaluate};
use crate::sandbox::{PreparedRule, RuleContext};
use crate::store::{CurrentPrice, RuleVersion, Signals, StoreError};
use crate::write::Applied;

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
}

/// The product's candidate, when it has a price in force.
pub(super) fn candidate(
    inner: &Inner,
    product: Product,
    signals: &Signals,
    now: DateTime<Utc>,
    trigger: Trigger,
) -> Option<Candidate> {
    let (ctx, price) = context(&product, signals, now, inner.rules.stale_after_secs())?;
    Some(Candidate { product, price, trigger, ctx })
}

/// Runs the rule on a batch and judges each result (no store access).
pub(super) async fn judge(inner: &Inner, active: &Active, batch: Vec<Candidate>) -> Vec<Judged> {
    let contexts: Vec<RuleContext> = batch.iter().map(|c| c.ctx.clone()).collect();
    let evaluations = match evaluate(
        inner.rules.sandbox(),
        &active.rule,
        &active.version.params,
        &contexts,
        Mode::Batch,
    )
    .await
    {
        Ok(evaluations) => evaluations,
        Err(e) => {
            tracing::error!(merchant_id = %active.merchant, error = %e, "stored data gave a context the rule interface refuses");
            return Vec::new();
        }
    };
    inner.evaluations.fetch_add(evaluations.len() as u64, std::sync::atomic::Ordering::Relaxed);
    batch
        .into_iter()
        .zip(evaluations)
        .map(|(c, evaluation)| Judged::new(c.product, c.price, c.trigger, c.ctx, evaluation))
        .collect()
}

/// Records a judged batch; evaluations overtaken by a change are queued again.
pub(super) async fn write(inner: &Inner, active: &Active, judged: &[Judged]) -> Result<Applied, StoreError> {
    let applied = inner.prices.apply(active.merchant, &active.version, judged).await?;
    if !applied.superseded.is_empty() {
        let trigger = judged.first().map_or(Trigger::ProductChanged, |j| j.trigger);
        inner.prices.request(active.merchant, applied.superseded.iter().cloned(), trigger);
    }
    Ok(applied)
}
