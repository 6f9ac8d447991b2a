//! Repricing a merchant's whole catalogue (rule activation, parameters, schedule) as a
//! two-stage pipeline over pages of products in SKU order: while one page's decisions are
//! written (the store's work), the next page is read and evaluated (the sandbox's work), so
//! the two overlap. One write is in flight at a time, and pages are written in order. Each
//! page is a contiguous SKU range, whose signals are read in a few range queries and which is
//! published to other replicas as one range.

use chrono::Utc;

use super::Trigger;
use super::context::{context, rule_now};
use super::judge::Judged;
use super::repricer::{BATCH, Inner, evaluate_batch, write_batch};
use crate::domain::{MerchantId, Sku};
use crate::replication::Change;
use crate::sandbox::PreparedRule;
use crate::store::{RuleVersion, StoreError};

/// A page evaluated and waiting to be written.
struct Evaluated {
    judged: Vec<Judged>,
    from: Sku,
    to: Sku,
    /// Whether a page may follow it.
    full: bool,
}

pub(super) async fn reprice_catalogue(
    inner: &Inner,
    merchant: MerchantId,
    version: &RuleVersion,
    rule: &PreparedRule,
    trigger: Trigger,
) -> Result<(), StoreError> {
    let mut waiting = next_page(inner, merchant, version, rule, trigger, None).await?;
    while let Some(page) = waiting.take() {
        let after = page.full.then(|| page.to.clone());
        let write = async {
            if !write_batch(inner, merchant, version, &page.judged).await?.is_empty() {
                inner.replication.publish(Change::Range(merchant, page.from.clone(), page.to.clone()));
            }
            Ok::<_, StoreError>(())
        };
        let read = async {
            match &after {
                Some(after) => next_page(inner, merchant, version, rule, trigger, Some(after)).await,
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
    merchant: MerchantId,
    version: &RuleVersion,
    rule: &PreparedRule,
    trigger: Trigger,
    after: Option<&Sku>,
) -> Result<Option<Evaluated>, StoreError> {
    let products = inner.store.products(merchant, after, BATCH).await?;
    let (Some(first), Some(last)) = (products.first(), products.last()) else { return Ok(None) };
    let (from, to) = (first.sku.clone(), last.sku.clone());
    let full = products.len() == BATCH as usize;
    let now = rule_now(Utc::now());
    let stale_after = inner.rules.stale_after_secs();
    let signals = inner.store.signals_between(merchant, &from, &to, now).await?;
    let batch = products
        .into_iter()
        .filter_map(|p| context(&p, &signals, now, stale_after).map(|(ctx, price)| (p, price, trigger, ctx)))
        .collect();
    let judged = evaluate_batch(inner, merchant, version, rule, batch).await;
    Ok(Some(Evaluated { judged, from, to, full }))
}
