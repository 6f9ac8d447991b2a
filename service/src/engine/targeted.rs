//! One batch of a merchant's targeted intents: claimed, evaluated, judged and applied. Claims
//! that end without a decision are given back: at once when the work can be done again now
//! (the rule changed), after a pause when the service itself failed (see [`RETRY_PAUSE`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Inner;
use super::batch::{self, Active};
use crate::domain::Trigger;
use crate::pricing::context::rule_now;
use crate::store::{Intent, StoreError};
use crate::write::{Claimed, Retry};

/// The first pause before work that failed for a reason of the service's own is tried again;
/// it doubles with each attempt, up to [`MAX_RETRY_PAUSE`].
pub(super) const RETRY_PAUSE: Duration = Duration::from_millis(50);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

pub(super) fn retry_at(attempts: i64) -> DateTime<Utc> {
    let pause = RETRY_PAUSE.saturating_mul(1 << attempts.clamp(0, 10) as u32).min(MAX_RETRY_PAUSE);
    Utc::now() + pause
}

/// Claims and decides one batch of the merchant's targeted intents; false when none was
/// claimable.
pub(super) async fn targeted(inner: &Arc<Inner>, active: &Arc<Active>) -> Result<bool, StoreError> {
    let (store, merchant) = (inner.store(), active.merchant);
    let token = inner.token();
    let now = Utc::now();
    let until = now + inner.settings.lease;
    let intents = store.claim_intents(merchant, &token, now, until, inner.settings.batch_size).await?;
    if intents.is_empty() {
        return Ok(false);
    }
    if let Err(e) = decide(inner, active, &token, &intents).await {
        let attempts = intents.iter().map(|i| i.attempts).max().unwrap_or(0);
        let _ = store.release_intents(merchant, &token, Some(retry_at(attempts)), true).await;
        return Err(e);
    }
    Ok(true)
}

async fn decide(inner: &Arc<Inner>, active: &Active, token: &str, intents: &[Intent]) -> Result<(), StoreError> {
    let (store, merchant) = (inner.store(), active.merchant);
    let now = rule_now(Utc::now());
    let mut candidates = Vec::with_capacity(intents.len());
    for intent in intents {
        if let Some(product) = store.product(merchant, &intent.sku).await? {
            let signals = store.signals_between(merchant, &intent.sku, &intent.sku, now).await?;
            candidates.extend(batch::candidate(inner, product, &signals, now, intent.trigger, intent.attempts));
        }
    }
    let outcome = batch::judge(inner, active, candidates).await;
    let attempts = intents.iter().map(|i| i.attempts).max().unwrap_or(0);
    let trigger = intents.first().map_or(Trigger::ProductChanged, |i| i.trigger);
    let retry = Retry { skus: &outcome.retry, trigger, at: retry_at(attempts) };
    let claimed = Claimed::Intents { token, intents };
    let applied = inner.prices.apply(merchant, &active.version, &claimed, &outcome.record, &retry).await?;
    inner.trials.offer(merchant, &outcome.record, &applied.decided);
    if applied.lost {
        // The active rule changed meanwhile: evaluate again with the new one, now.
        store.release_intents(merchant, token, None, false).await?;
    }
    Ok(())
}
