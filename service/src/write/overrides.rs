//! Overrides on the write path (see [`crate::domain::overrides`] for what one is and which
//! wins). The catalogue is brought to the clock by [`settle`]: for each override whose phase by
//! the clock is ahead of the phase the catalogue was brought to, its SKUs are visited a page per
//! transaction (under the merchant's chain head lock, like every writer) and each is given what
//! is true now:
//! - an override wins it that did not before: a decision `override_started` puts the
//!   override's price in force (within the product's bounds unless `force`, recorded with the
//!   override in the record's `override`), and the SKU is marked as under that override with
//!   the price to return to: the price in force before the first override;
//! - no override wins it any more: a decision `override_ended` puts that price back (the base
//!   price as it is now when the price was the base price), and the rule is asked to decide
//!   again (an intent with trigger `override_ended`).
//!
//! A start visits the products its selector matches; an end visits the SKUs under it. The
//! progress (phase and last SKU) is stored with each page, so a crash or a restart resumes the
//! pass; a pass whose target phase changed on the way (an override cancelled while it started)
//! starts again. A service that was down across a boundary applies it when it is back, its
//! decisions dated then; an override whose whole span passed while nothing ran is recorded as
//! ended and moved no price. While a SKU is under an override, the rule's changes to it are held
//! (reason `override`; see [`super::safety`]); a proposal pending at its start is superseded. A
//! product put while overrides are live is brought under the one that covers it in its own
//! transaction, and so are the products an import writes, piece by piece.
//! Overrides are the merchant's own act: a freeze or a tripped breaker does not stop them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::Gate;
use crate::domain::overrides::{Override, Phase, Selector, winner};
use crate::domain::{MerchantId, Money, Outcome, Product, Sku, Trigger};
use crate::pricing::guardrails::within_bounds;
use crate::pricing::prior::prior_price;
use crate::pricing::{Clip, DecisionRecord, OverrideNote};
use crate::store::chain::ChainHead;
use crate::store::overrides::{self, Overridden, StoredOverride};
use crate::store::prices::{self, BasePrice, MovedPrice, PriceSource};
use crate::store::products::{self, ProductFilter};
use crate::store::{Backend, CurrentPrice, NewDecision, Store, StoreError, Tx, chain, safety, work};

/// SKUs visited per transaction.
const PAGE: u32 = 200;

/// Brings the merchant's catalogue to the clock for every override whose phase changed; returns
/// the prices that moved.
pub(super) async fn settle(store: &Store, merchant: MerchantId, gate: &Gate) -> Result<Vec<CurrentPrice>, StoreError> {
    let mut moved = Vec::new();
    // Bounded: each page either finishes a pass or moves its cursor forward; a pass that must
    // start again does so at most once per phase change.
    for _ in 0..1_000_000 {
        match settle_page(store, merchant, gate).await? {
            Some(page) => moved.extend(page),
            None => break,
        }
    }
    Ok(moved)
}

/// One page of the first unsettled override's pass; `None` when none is left.
async fn settle_page(
    store: &Store,
    merchant: MerchantId,
    gate: &Gate,
) -> Result<Option<Vec<CurrentPrice>>, StoreError> {
    let mut tx = store.begin().await?;
    let mut head = chain::lock_head(&mut tx, merchant).await?;
    let now = head.at();
    let Some(next) = overrides::unsettled(&mut tx, merchant, now).await?.into_iter().next() else {
        return Ok(None);
    };
    let target = next.item.phase_at(now);
    let (pass, after) = match (&next.pass, &next.cursor) {
        (Some(pass), Some(after)) if *pass == target => (target, after.clone()),
        _ => (target, String::new()),
    };
    let page = visit(&mut tx, merchant, &next, target, &after).await?;
    let live = overrides::live(&mut tx, merchant, now).await?;
    let moved = bring(&mut tx, store.backend(), &mut head, merchant, &page.products, &live).await?;
    match &page.last {
        Some(last) if page.more => {
            overrides::set_progress(&mut tx, merchant, next.item.id, next.applied_phase, Some((pass, last))).await?
        }
        _ => overrides::set_progress(&mut tx, merchant, next.item.id, pass, None).await?,
    }
    gate.check()?;
    tx.commit().await?;
    Ok(Some(moved))
}

/// One page of a pass: the products to bring to the clock, the last SKU looked at, and whether
/// more may follow.
struct Visit {
    products: Vec<Product>,
    last: Option<String>,
    more: bool,
}

/// The products a pass visits after `after`: a start those the selector matches, an end those
/// under the override.
async fn visit(
    tx: &mut Tx,
    merchant: MerchantId,
    o: &StoredOverride,
    target: Phase,
    after: &str,
) -> Result<Visit, StoreError> {
    if target == Phase::Ended {
        let skus = overrides::skus_under(tx, merchant, o.item.id, after, PAGE).await?;
        let mut products = Vec::with_capacity(skus.len());
        for sku in &skus {
            // A deleted product's mark went with it.
            products.extend(products::get(tx, merchant, sku).await?);
        }
        let more = skus.len() == PAGE as usize;
        return Ok(Visit { products, last: skus.last().map(|s| s.to_string()), more });
    }
    let products = match &o.item.selector {
        Selector::Sku(sku) if after.is_empty() => products::get(tx, merchant, sku).await?.into_iter().collect(),
        Selector::Sku(_) => Vec::new(),
        Selector::Attributes(wanted) => {
            let filter = ProductFilter {
                attributes: wanted.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                ..ProductFilter::default()
            };
            products::matching_in(tx, merchant, &filter, after, PAGE).await?
        }
    };
    let more = products.len() == PAGE as usize;
    Ok(Visit { last: products.last().map(|p| p.sku.to_string()), products, more })
}

/// Brings one product under the override that covers it now, if that changed (a product put
/// while overrides are live); returns the price when it moved.
pub(super) async fn cover(
    tx: &mut Tx,
    backend: Backend,
    head: &mut ChainHead,
    merchant: MerchantId,
    product: &Product,
) -> Result<Option<CurrentPrice>, StoreError> {
    let live = overrides::live(tx, merchant, head.at()).await?;
    if live.is_empty() {
        return Ok(None);
    }
    Ok(bring(tx, backend, head, merchant, std::slice::from_ref(product), &live).await?.pop())
}

/// [`cover`] for the products a batch wrote (an import's piece): one read of the live
/// overrides, and when there are any, the products read again and brought under them.
pub(super) async fn cover_many(
    tx: &mut Tx,
    backend: Backend,
    head: &mut ChainHead,
    merchant: MerchantId,
    skus: &[&Sku],
) -> Result<Vec<CurrentPrice>, StoreError> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let live = overrides::live(tx, merchant, head.at()).await?;
    if live.is_empty() {
        return Ok(Vec::new());
    }
    let mut page = Vec::with_capacity(skus.len());
    for sku in skus {
        page.extend(products::get(tx, merchant, sku).await?);
    }
    page.sort_by(|a, b| a.sku.as_str().cmp(b.sku.as_str()));
    bring(tx, backend, head, merchant, &page, &live).await
}

/// What one SKU's override decision is.
struct Step<'a> {
    product: &'a Product,
    current: CurrentPrice,
    currency: String,
    trigger: Trigger,
    note: OverrideNote,
    new_price_minor: i64,
    clips: Vec<Clip>,
    /// An end back to the base price (the price then follows the base price again).
    to_base: bool,
}

impl Step<'_> {
    fn outcome(&self) -> Outcome {
        if self.new_price_minor == self.current.price.minor() { Outcome::Kept } else { Outcome::Changed }
    }
}

fn note(o: &Override) -> OverrideNote {
    OverrideNote {
        id: o.id,
        reason: o.reason.clone(),
        price: o.price.clone(),
        starts_at: o.starts_at,
        ends_at: o.ends_at,
        force: o.force,
    }
}

/// Gives each product (in SKU order, each once) what the live overrides say now: decisions,
/// prices, marks.
async fn bring(
    tx: &mut Tx,
    backend: Backend,
    head: &mut ChainHead,
    merchant: MerchantId,
    page: &[Product],
    live: &[Override],
) -> Result<Vec<CurrentPrice>, StoreError> {
    let (Some(first), Some(last)) = (page.first(), page.last()) else { return Ok(Vec::new()) };
    let now = head.at();
    let under = overrides::overridden_between(tx, merchant, first.sku.as_str(), last.sku.as_str()).await?;
    let skus: Vec<&Sku> = page.iter().map(|p| &p.sku).collect();
    let mut current = prices::current_many(tx, merchant, &skus).await?;
    let mut steps = Vec::new();
    let mut ended = Vec::new();
    let mut notes: HashMap<i64, OverrideNote> = HashMap::new();
    for product in page {
        let Some((price, source)) = current.remove(product.sku.as_str()) else { continue };
        let cost = product.cost.minor();
        match (winner(live, product, now), under.get(product.sku.as_str())) {
            (Some((o, _)), Some(mark)) if mark.override_id == o.id => {}
            (Some((o, wanted)), mark) => {
                let guarded = if o.force {
                    crate::pricing::Guarded { price_minor: wanted, clips: Vec::new() }
                } else {
                    within_bounds(&product.guardrails, wanted, cost)
                };
                let restore = mark.copied().unwrap_or(Overridden {
                    override_id: o.id,
                    restore_minor: price.price.minor(),
                    restore_base: source == PriceSource::Base,
                });
                overrides::put_overridden(tx, merchant, &product.sku, Overridden { override_id: o.id, ..restore })
                    .await?;
                // A proposal would move the price away from the override's.
                safety::forget(tx, merchant, &product.sku, now).await?;
                steps.push(Step {
                    product,
                    currency: price.price.currency().code().to_owned(),
                    current: price,
                    trigger: Trigger::OverrideStarted,
                    note: note(o),
                    new_price_minor: guarded.price_minor,
                    clips: guarded.clips,
                    to_base: false,
                });
            }
            (None, Some(mark)) => {
                // A page of an end's pass is mostly one override's SKUs: read each override once.
                let ending = match notes.get(&mark.override_id) {
                    Some(note) => note.clone(),
                    None => {
                        let ending = note(&overrides::find(tx, merchant, mark.override_id).await?);
                        notes.insert(mark.override_id, ending.clone());
                        ending
                    }
                };
                let back = if mark.restore_base { product.base_price.minor() } else { mark.restore_minor };
                let guarded = within_bounds(&product.guardrails, back, cost);
                overrides::forget(tx, merchant, &product.sku).await?;
                ended.push(product.sku.clone());
                steps.push(Step {
                    product,
                    currency: price.price.currency().code().to_owned(),
                    current: price,
                    trigger: Trigger::OverrideEnded,
                    note: ending,
                    new_price_minor: guarded.price_minor,
                    clips: guarded.clips,
                    to_base: mark.restore_base,
                });
            }
            (None, None) => {}
        }
    }
    let decisions: Vec<NewDecision<'_>> = steps.iter().map(|s| new_decision(merchant, s)).collect();
    chain::append(tx, backend, head, &decisions).await?;
    drop(decisions);
    let show_prior = prices::shows_prior_price(tx, merchant).await?;
    let mut moved = Vec::new();
    let mut moving = Vec::new();
    for step in &steps {
        let sku = &step.product.sku;
        let changed = step.outcome() == Outcome::Changed;
        let prior_minor = match show_prior && (changed || step.to_base) {
            true => prior_price(&mut **tx, merchant, sku, now).await?,
            false => None,
        };
        if step.to_base {
            // Back to the base price: set by the product again, so it follows its base price.
            let price = Money::new(step.new_price_minor, step.product.currency());
            let base = BasePrice { sku, price, effective_at: now, prior_minor };
            let put = prices::put_base(tx, merchant, &base).await?;
            if changed {
                moved.push(put);
            }
        } else if changed {
            moving.push(MovedPrice { sku, price_minor: step.new_price_minor, prior_minor });
        } else if step.trigger == Trigger::OverrideStarted {
            // In force without moving: still set by hand now, so a base price change waits.
            prices::mark_set(tx, merchant, sku).await?;
        }
    }
    moved.extend(prices::move_prices(tx, merchant, now, &moving).await?);
    if !ended.is_empty() {
        work::request(tx, merchant, &ended, Trigger::OverrideEnded, now).await?;
    }
    Ok(moved)
}

fn new_decision<'a>(merchant: MerchantId, step: &'a Step<'a>) -> NewDecision<'a> {
    let old = step.current.price.minor();
    let outcome = step.outcome();
    let currency = step.currency.as_str();
    let record = move |seq: i64, created_at: DateTime<Utc>| {
        let verb = if step.trigger == Trigger::OverrideStarted { "in force" } else { "ended" };
        DecisionRecord {
            outcome,
            clips: step.clips.clone(),
            guardrails: Some(step.product.guardrails.as_input().clone()),
            price_effective_at: Some(step.current.effective_at),
            override_note: Some(step.note.clone()),
            ..DecisionRecord::price_event(
                seq,
                merchant.to_string(),
                step.product.sku.to_string(),
                step.trigger,
                currency.to_owned(),
                Some(old),
                Some(step.new_price_minor),
                format!("override {} {verb}: {}", step.note.id, step.note.reason),
                created_at,
            )
        }
        .to_canonical_json()
    };
    NewDecision {
        sku: &step.product.sku,
        trigger: step.trigger,
        outcome,
        currency,
        old_price_minor: Some(old),
        new_price_minor: Some(step.new_price_minor),
        clipped: !step.clips.is_empty(),
        rule_version: None,
        rule_sha256: None,
        record: Box::new(record),
    }
}
