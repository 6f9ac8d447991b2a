//! Applying a judged batch: its decisions appended to the chain, the prices they move, and
//! the claimed work they settle, in one transaction. Under the chain head's lock no other
//! writer of the merchant runs, so the batch is checked against what it evaluated:
//! - the rule version must still be the active one, with the parameters evaluated (an
//!   activation or new parameters since drop the batch: it is evaluated again);
//! - the claim must still be this worker's (work taken over after an expired claim is the
//!   new holder's to decide: nothing is appended twice for one request);
//! - each decision must be for the product and price versions it evaluated (one that a
//!   product change or another decision overtook is superseded: not appended, evaluated
//!   again), so a stale evaluation never writes a price or a history record.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::safety::Gatekeeper;
use crate::domain::safety::HoldReason;
use crate::domain::{MerchantId, Outcome, Sku, Trigger};
use crate::pricing::breaker::Trip;
use crate::pricing::prior::prior_price;
use crate::pricing::{Hold, Judged};
use crate::store::prices::{self, MovedPrice};
use crate::store::safety::{self, NewProposal};
use crate::store::{CurrentPrice, Intent, RuleVersion, Store, StoreError, Sweep, Tx, chain, rules, work};

/// The claimed work a batch answers.
pub enum Claimed<'a> {
    /// Targeted intents, claimed with `token`.
    Intents { token: &'a str, intents: &'a [Intent] },
    /// One page of a sweep: the products after `sweep.after` up to `to` (`None`: the last
    /// page). Applying it moves the sweep on, and renews its claim until `until`.
    Sweep { token: &'a str, sweep: &'a Sweep, to: Option<&'a Sku>, until: DateTime<Utc> },
}

/// Products whose evaluation failed for a reason of the service's own (a full instance pool,
/// a deadline missed on a busy machine): not decided now, queued to be evaluated again.
pub struct Retry<'a> {
    pub skus: &'a [Sku],
    pub trigger: Trigger,
    pub at: DateTime<Utc>,
}

/// What applying a batch did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Decisions appended.
    pub recorded: usize,
    /// Prices that moved, as they now are.
    pub moved: Vec<CurrentPrice>,
    /// SKUs whose evaluation was overtaken by a change (deleted products are dropped).
    pub superseded: Vec<Sku>,
    /// Nothing was written: the rule is no longer active, or the work is no longer this
    /// claim's (taken over, or requested again from the start).
    pub lost: bool,
    /// Why each held change was held.
    pub held: Vec<HoldReason>,
    /// The limit that tripped the breaker in this batch.
    pub tripped: Option<Trip>,
    /// The sequence number of each decision appended, by SKU.
    pub decided: Vec<(Sku, i64)>,
    /// The recorded evaluations that failed: each failure's kind, SKU and message.
    pub failed: Vec<(&'static str, Sku, String)>,
}

impl Applied {
    fn lost() -> Self {
        Self { lost: true, ..Self::default() }
    }
}

pub(super) async fn apply(
    store: &Store,
    merchant: MerchantId,
    version: &RuleVersion,
    claimed: &Claimed<'_>,
    judged: &[Judged],
    retry: &Retry<'_>,
    catalogue: i64,
) -> Result<Applied, StoreError> {
    let mut tx = store.begin().await?;
    let mut head = chain::lock_head(&mut tx, merchant).await?;
    if rules::active_state(&mut tx, merchant).await? != Some((version.version, version.params_updated_at)) {
        return Ok(Applied::lost());
    }
    let mut applied = Applied::default();
    let fresh = match claimed {
        Claimed::Intents { token, intents } => {
            let skus: Vec<&Sku> = judged.iter().map(|j| &j.product.sku).collect();
            let current = prices::versions_of(&mut tx, merchant, &skus).await?;
            let fresh = classify(judged, &current, &mut applied.superseded);
            work::retry_later(&mut tx, merchant, token, retry.skus, retry.trigger, retry.at).await?;
            let waiting: HashSet<&Sku> = applied.superseded.iter().chain(retry.skus).collect();
            let done: Vec<(&Sku, i64)> =
                intents.iter().filter(|i| !waiting.contains(&i.sku)).map(|i| (&i.sku, i.generation)).collect();
            let held = work::settle_intents(&mut tx, merchant, token, &done).await?;
            fresh.into_iter().filter(|j| held.contains(&j.product.sku)).collect()
        }
        Claimed::Sweep { token, sweep, to, until } => {
            if !work::advance_sweep(&mut tx, merchant, token, sweep, *to, *until).await? {
                return Ok(Applied::lost());
            }
            work::retry_later(&mut tx, merchant, token, retry.skus, retry.trigger, retry.at).await?;
            let (Some(first), Some(last)) =
                (judged.iter().map(|j| &j.product.sku).min(), judged.iter().map(|j| &j.product.sku).max())
            else {
                tx.commit().await?;
                return Ok(applied);
            };
            let current = prices::versions_between(&mut tx, merchant, first.as_str(), last.as_str()).await?;
            classify(judged, &current, &mut applied.superseded)
        }
    };
    let span = (fresh.iter().map(|j| j.product.sku.as_str()).min(), fresh.iter().map(|j| j.product.sku.as_str()).max());
    let mut keeper = Gatekeeper::load(&mut tx, merchant, catalogue, span, head.at()).await?;
    let mut holds = Vec::with_capacity(fresh.len());
    for j in &fresh {
        holds.push(keeper.judge(&mut tx, merchant, j).await?);
    }
    keeper.save(&mut tx, merchant).await?;
    (applied.moved, applied.decided) = append(&mut tx, store, &mut head, merchant, version, &fresh, &holds).await?;
    tx.commit().await?;
    applied.recorded = fresh.len();
    applied.held = holds.iter().flatten().map(|h| h.reason).collect();
    applied.failed = fresh
        .iter()
        .filter_map(|j| j.evaluation.result.as_ref().err().map(|e| (e.kind(), j.product.sku.clone(), e.to_string())))
        .collect();
    applied.tripped = keeper.tripped_now;
    Ok(applied)
}

/// The judged decisions still current (one per SKU: the last judged wins should a batch hold
/// a SKU twice); the overtaken ones go to `superseded`, deleted products nowhere.
fn classify<'a>(
    judged: &'a [Judged],
    current: &HashMap<String, prices::Versions>,
    superseded: &mut Vec<Sku>,
) -> Vec<&'a Judged> {
    let mut latest: HashMap<&Sku, &Judged> = HashMap::with_capacity(judged.len());
    for j in judged {
        latest.insert(&j.product.sku, j);
    }
    let mut fresh = Vec::with_capacity(latest.len());
    for j in judged {
        if !std::ptr::eq(latest[&j.product.sku], j) {
            continue;
        }
        let evaluated = prices::Versions {
            product: j.product.version,
            created: j.product.created_at.timestamp_micros(),
            price: j.current.version,
        };
        match current.get(j.product.sku.as_str()) {
            Some(&now) if now == evaluated => fresh.push(j),
            Some(_) => superseded.push(j.product.sku.clone()),
            None => {} // deleted since: nothing to decide
        }
    }
    fresh
}

/// Appends the decisions (held ones as `held`, their proposals written, and the pending
/// proposals they supersede closed) and moves the prices that changed; returns the moved
/// prices, and each decision's sequence number.
#[allow(clippy::too_many_arguments)]
async fn append(
    tx: &mut Tx,
    store: &Store,
    head: &mut chain::ChainHead,
    merchant: MerchantId,
    version: &RuleVersion,
    fresh: &[&Judged],
    holds: &[Option<Hold>],
) -> Result<(Vec<CurrentPrice>, Vec<(Sku, i64)>), StoreError> {
    let decisions: Vec<_> =
        fresh.iter().zip(holds).map(|(j, h)| j.new_decision(merchant, version, h.as_ref())).collect();
    let stored = chain::append(tx, store.backend(), head, &decisions).await?;
    let at = head.at();
    let superseding: Vec<(&Sku, i64)> = fresh.iter().zip(&stored).map(|(j, d)| (&j.product.sku, d.seq)).collect();
    let proposals: Vec<NewProposal<'_>> = fresh
        .iter()
        .zip(holds)
        .zip(&stored)
        .filter_map(|((j, hold), d)| {
            let hold = hold.as_ref().filter(|h| h.reason.is_proposal())?;
            Some(NewProposal {
                seq: d.seq,
                sku: &j.product.sku,
                reason: hold.reason,
                trigger: j.trigger,
                currency: j.currency(),
                price_minor: j.current.price.minor(),
                proposed_price_minor: hold.proposed_price_minor,
                rule_version: version.version,
                expires_at: hold.expires_at.unwrap_or(at),
            })
        })
        .collect();
    safety::propose(tx, merchant, &superseding, &proposals, at).await?;
    let show_prior = prices::shows_prior_price(tx, merchant).await?;
    let mut moving = Vec::new();
    let moves = fresh.iter().zip(holds).filter(|(j, hold)| hold.is_none() && j.outcome() == Outcome::Changed);
    for (j, _) in moves {
        let prior_minor = if show_prior { prior_price(&mut **tx, merchant, &j.product.sku, at).await? } else { None };
        moving.push(MovedPrice { sku: &j.product.sku, price_minor: j.decided.new_price_minor, prior_minor });
    }
    let moved = prices::move_prices(tx, merchant, at, &moving).await?;
    Ok((moved, fresh.iter().zip(&stored).map(|(j, d)| (j.product.sku.clone(), d.seq)).collect()))
}
