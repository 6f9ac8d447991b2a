//! A merchant's catalogue sweep (activation, rollback, parameters, schedule), page by page in
//! SKU order, from where the stored sweep has reached. A reader task reads the next pages
//! and has them evaluated on the workers while the current page is written, so reading,
//! evaluating and writing overlap; pages are written in order, each in the transaction that
//! moves the sweep on (see [`crate::write::Claimed::Sweep`]), and the merchant's targeted
//! work is served between two pages.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Inner;
use super::batch::{self, Active, Outcome};
use super::targeted::{retry_at, targeted};
use crate::domain::{Sku, Trigger};
use crate::pricing::context::rule_now;
use crate::store::{StoreError, Sweep};
use crate::write::{Claimed, Retry};

/// A page read, its evaluation under way.
struct Page {
    /// The page's last SKU (`None`: the catalogue ended before it).
    last: Option<Sku>,
    /// Whether a page may follow it.
    full: bool,
    evaluation: JoinHandle<Outcome>,
}

/// Claims the merchant's sweep and runs it to its end, or until it is lost, fails, or the
/// engine stops; false when there was no sweep to claim.
pub(super) async fn run(inner: &Arc<Inner>, active: &Arc<Active>) -> Result<bool, StoreError> {
    let (store, merchant) = (inner.store(), active.merchant);
    let token = inner.token();
    let now = Utc::now();
    let Some(sweep) = store.claim_sweep(merchant, &token, now, now + inner.settings.lease).await? else {
        return Ok(false);
    };
    let result = pages(inner, active, &token, sweep).await;
    // Whatever is left of it (stopped, lost or failed) is anyone's again: a failure after a
    // pause. A finished sweep has no row left to release.
    let retry = result.is_err().then(|| retry_at(0));
    store.release_sweep(merchant, &token, retry).await?;
    result.map(|()| true)
}

async fn pages(inner: &Arc<Inner>, active: &Arc<Active>, token: &str, mut sweep: Sweep) -> Result<(), StoreError> {
    let (sender, mut pages) = mpsc::channel(inner.settings.workers.max(1));
    let reader = tokio::spawn(read(inner.clone(), active.clone(), sweep.after.clone(), sweep.trigger, sender));
    let _stop_reading = AbortOnDrop(reader);
    while let Some(page) = pages.recv().await {
        let page = page?;
        // The merchant's targeted work goes before the sweep's next page.
        targeted(inner, active).await?;
        if inner.stopping() {
            return Ok(());
        }
        let outcome = page.evaluation.await.map_err(|e| StoreError::Unavailable(format!("evaluation failed: {e}")))?;
        let to = if page.full { page.last.as_ref() } else { None };
        let claimed = Claimed::Sweep { token, sweep: &sweep, to, until: Utc::now() + inner.settings.lease };
        let retry = Retry { skus: &outcome.retry, trigger: sweep.trigger, at: retry_at(0) };
        let applied = inner.prices.apply(active.merchant, &active.version, &claimed, &outcome.record, &retry).await?;
        inner.trials.offer(active.merchant, &outcome.record, &applied.decided);
        if applied.lost || to.is_none() {
            return Ok(()); // requested again (the lane claims it anew), taken over, or done
        }
        sweep.after = page.last;
    }
    Ok(())
}

/// Reads pages after `after` and starts their evaluation, until the catalogue ends; at most
/// the channel's capacity of pages wait to be written.
async fn read(
    inner: Arc<Inner>,
    active: Arc<Active>,
    mut after: Option<Sku>,
    trigger: Trigger,
    pages: mpsc::Sender<Result<Page, StoreError>>,
) {
    let batch_size = inner.settings.batch_size;
    loop {
        let page = read_page(&inner, &active, after.as_ref(), trigger, batch_size).await;
        let next = match &page {
            Ok(page) if page.full => page.last.clone(),
            _ => None,
        };
        let ended = next.is_none();
        if pages.send(page).await.is_err() || ended {
            return;
        }
        after = next;
    }
}

async fn read_page(
    inner: &Arc<Inner>,
    active: &Arc<Active>,
    after: Option<&Sku>,
    trigger: Trigger,
    limit: u32,
) -> Result<Page, StoreError> {
    let store = inner.store();
    let products = store.products(active.merchant, after, limit).await?;
    let full = products.len() == limit as usize;
    let (Some(first), Some(last)) = (products.first(), products.last()) else {
        return Ok(Page { last: None, full: false, evaluation: tokio::spawn(async { Outcome::default() }) });
    };
    let (first, last) = (first.sku.clone(), last.sku.clone());
    let now = rule_now(Utc::now());
    let signals = store.signals_between(active.merchant, &first, &last, now).await?;
    let candidates: Vec<_> =
        products.into_iter().filter_map(|p| batch::candidate(inner, p, &signals, now, trigger, 0)).collect();
    let (inner, active) = (inner.clone(), active.clone());
    let evaluation = tokio::spawn(async move { batch::judge(&inner, &active, candidates).await });
    Ok(Page { last: Some(last), full, evaluation })
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
