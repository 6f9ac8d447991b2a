//! A merchant's lane: claims the merchant's work from the store and does it, a targeted
//! batch first ([`super::targeted`]), then its sweep (which serves a targeted batch between
//! two of its pages), until nothing claimable is left.

use std::sync::Arc;

use super::batch::Active;
use super::targeted::{RETRY_PAUSE, targeted};
use super::{Inner, sweep};
use crate::domain::MerchantId;
use crate::store::StoreError;

pub(super) async fn run(inner: Arc<Inner>, merchant: MerchantId) {
    loop {
        if inner.stopping() {
            inner.lanes.end(merchant);
            return;
        }
        let found = match step(&inner, merchant).await {
            Ok(found) => found,
            Err(e) => {
                // The work was given back; the poll brings the lane back once it is due.
                tracing::warn!(merchant_id = %merchant, error = %e, "repricing paused after a failure");
                tokio::time::sleep(RETRY_PAUSE).await;
                false
            }
        };
        if !found && inner.lanes.finish(merchant) {
            return;
        }
    }
}

/// Does one piece of the merchant's work: a targeted batch, then the sweep (which serves a
/// targeted batch between two of its pages); false when there was none to claim. Taking turns
/// both ways is what keeps either from starving the other: targeted work waits at most one
/// page of its merchant's sweep, and a steady stream of targeted changes cannot hold a sweep
/// back by more than one targeted batch per page.
async fn step(inner: &Arc<Inner>, merchant: MerchantId) -> Result<bool, StoreError> {
    let Some(active) = load_active(inner, merchant).await? else { return Ok(false) };
    let active = Arc::new(active);
    let targeted = targeted(inner, &active).await?;
    let swept = sweep::run(inner, &active).await?;
    Ok(targeted || swept)
}

/// The merchant's active rule, loaded; `None` when it has none (nothing is requested then).
async fn load_active(inner: &Inner, merchant: MerchantId) -> Result<Option<Active>, StoreError> {
    let Some(activation) = inner.store().active_rule(merchant).await? else { return Ok(None) };
    let loaded = match inner.rules.version(merchant, activation.version).await {
        Ok(version) => inner.rules.prepared(merchant, version.version).await.map(|rule| (version, rule)),
        Err(e) => Err(e),
    };
    match loaded {
        Ok((version, rule)) => Ok(Some(Active { merchant, version, rule })),
        Err(e) => Err(StoreError::Unavailable(format!("the active rule cannot be loaded: {e}"))),
    }
}
