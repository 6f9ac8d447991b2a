//! Repricing a merchant's whole catalogue (rule activation, parameters, schedule) as a
//! two-stage pipeline over pages of products in SKU order: while one page's decisions are
//! written (the store's work), the next page is read and evaluated (the sandbox's work), so
//! the two overlap. One write is in flight at a time, and pages are written in order. Each
//! page is a contiguous SKU range, whose signals are read in a few range queries and which is
//! published to other replicas as one range.

use chrono::Utc;

use super::batch::{self, Active};
use super::{BATCH, Inner};
use crate::domain::{Sku, Trigger};
use crate::pricing::Judged;
use crate::pricing::context::rule_now;
use crate::replication::Change;
use crate::store::StoreError;

/// A page evaluated and waiting to be written.
struct Evaluated {
    judged: Vec<Judged>,
    from: Sku,
    to: Sku,
    /// Whether a page may follow it.
    full: bool,
}

pub(super) async fn reprice_catalogue(inner: &Inner, active: &Active, trigger: Trigger) -> Result<(), StoreError> {
    let mut waiting = next_page(inner, active, trigger, None).await?;
    while let Some(page) = waiting.take() {
        let after = page.full.then(|| page.to.clone());
        let write = async {
            if !batch::write(inner, active, &page.judged).await?.moved.is_empty() {
                inner.prices.publish(Change::Range(active.merchant, page.from.clone(), page.to.clone()));
            }
            Ok::<_, StoreError>(())
        };
        let read = async {
            match &after {
                Some(after) => next_page(inner, active, trigger, Some(after)).await,
                None => Ok(None),
            }
        };
        let (written, next) = tokio::join!(write, read);
        written?;
        waiting = next?;
    }
    Ok(())
}

/// Reads the page after `after` with its signals and evaluates it.
async fn next_page(
    inner: &Inner,
    active: &Active,
    trigger: Trigger,
    after: Option<&Sku>,
) -> Result<Option<Evaluated>, StoreError> {
    let store = inner.prices.store();
    let products = store.products(active.merchant, after, BATCH).await?;
    let (Some(first), Some(last)) = (products.first(), products.last()) else { return Ok(None) };
    let (from, to) = (first.sku.clone(), last.sku.clone());
    let full = products.len() == BATCH as usize;
    let now = rule_now(Utc::now());
    let signals = store.signals_between(active.merchant, &from, &to, now).await?;
    let batch = products.into_iter().filter_map(|p| batch::candidate(inner, p, &signals, now, trigger)).collect();
    let judged = batch::judge(inner, active, batch).await;
    Ok(Some(Evaluated { judged, from, to, full }))
}
