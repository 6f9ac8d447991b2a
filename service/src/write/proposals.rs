//! A person's decision on proposals (held changes waiting for approval, see [`super::safety`]).
//! Approving re-checks the product's guardrails as they are at that moment, in the situation of
//! the price in force then, and moves the price through the chain like any decision (trigger
//! `proposal_approved`; outcome `kept` when the guardrails now keep the price where it is).
//! Rejecting appends a record too (`proposal_rejected`, outcome `kept`). Both records name the
//! proposal and the id of the key that decided, and close the proposal in the same
//! transaction; a proposal no longer pending (decided, superseded, expired) is left alone.

use chrono::{DateTime, Utc};

use super::Gate;
use crate::domain::safety::ProposalState;
use crate::domain::{MerchantId, Outcome, Trigger};
use crate::pricing::prior::prior_price;
use crate::pricing::{DecisionRecord, Resolution, Situation, apply_guardrails};
use crate::store::prices::{self, MovedPrice};
use crate::store::safety::{self, Proposal, ProposalFilter};
use crate::store::{CurrentPrice, NewDecision, Store, StoreError, chain, products};

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Reject,
}

/// One proposal decided.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub proposal: i64,
    /// The decision appended.
    pub seq: i64,
    pub outcome: Outcome,
    /// The price in force afterwards.
    pub price_minor: i64,
}

/// What deciding a set of proposals did.
#[derive(Debug, Default)]
pub struct Decided {
    pub resolved: Vec<Resolved>,
    /// Asked for, but no longer pending (or their product is gone): left as they are.
    pub skipped: Vec<i64>,
    /// Prices that moved, as they now are.
    pub moved: Vec<CurrentPrice>,
}

/// One proposal's decision, before it is appended.
struct Pending {
    proposal: Proposal,
    current: CurrentPrice,
    outcome: Outcome,
    new_price_minor: i64,
    clips: Vec<crate::pricing::Clip>,
    guardrails: crate::domain::GuardrailsInput,
}

/// Decides the proposals with these sequence numbers (those still pending) in one transaction.
pub(super) async fn decide(
    store: &Store,
    merchant: MerchantId,
    proposals: &[i64],
    verdict: Verdict,
    key_id: &str,
    gate: &Gate,
) -> Result<Decided, StoreError> {
    let mut tx = store.begin().await?;
    let mut head = chain::lock_head(&mut tx, merchant).await?;
    let at = head.at();
    let mut decided = Decided::default();
    let mut pending = Vec::new();
    for &seq in proposals {
        let filter = ProposalFilter { state: Some(ProposalState::Pending), ..ProposalFilter::default() };
        let found = safety::matching(&mut tx, merchant, &filter, Some(seq + 1), 1, at).await?;
        let Some(proposal) = found.into_iter().find(|p| p.seq == seq) else {
            decided.skipped.push(seq);
            continue;
        };
        let (Some(product), Some(current)) = (
            products::get(&mut tx, merchant, &proposal.sku).await?,
            prices::current(&mut tx, merchant, &proposal.sku).await?,
        ) else {
            decided.skipped.push(seq);
            continue;
        };
        let (outcome, new_price_minor, clips) = match verdict {
            Verdict::Approve => {
                let situation = Situation {
                    current_minor: current.price.minor(),
                    cost_minor: product.cost.minor(),
                    effective_at: current.effective_at,
                    now: at,
                };
                let guarded = apply_guardrails(&product.guardrails, proposal.proposed_price_minor, situation);
                let outcome =
                    if guarded.price_minor == current.price.minor() { Outcome::Kept } else { Outcome::Changed };
                (outcome, guarded.price_minor, guarded.clips)
            }
            Verdict::Reject => (Outcome::Kept, current.price.minor(), Vec::new()),
        };
        let guardrails = product.guardrails.as_input().clone();
        pending.push(Pending { proposal, current, outcome, new_price_minor, clips, guardrails });
    }
    let trigger = match verdict {
        Verdict::Approve => Trigger::ProposalApproved,
        Verdict::Reject => Trigger::ProposalRejected,
    };
    let decisions: Vec<NewDecision<'_>> = pending.iter().map(|p| new_decision(merchant, p, trigger, key_id)).collect();
    let stored = chain::append(&mut tx, store.backend(), &mut head, &decisions).await?;
    drop(decisions);
    let state = match verdict {
        Verdict::Approve => ProposalState::Approved,
        Verdict::Reject => ProposalState::Rejected,
    };
    let show_prior = prices::shows_prior_price(&mut tx, merchant).await?;
    let mut moving = Vec::new();
    for (p, d) in pending.iter().zip(&stored) {
        safety::resolve(&mut tx, merchant, p.proposal.seq, state, d.seq, key_id, at).await?;
        decided.resolved.push(Resolved {
            proposal: p.proposal.seq,
            seq: d.seq,
            outcome: p.outcome,
            price_minor: p.new_price_minor,
        });
        if p.outcome == Outcome::Changed {
            let prior_minor =
                if show_prior { prior_price(&mut *tx, merchant, &p.proposal.sku, at).await? } else { None };
            moving.push(MovedPrice { sku: &p.proposal.sku, price_minor: p.new_price_minor, prior_minor });
        }
    }
    decided.moved = prices::move_prices(&mut tx, merchant, at, &moving).await?;
    gate.check()?;
    tx.commit().await?;
    Ok(decided)
}

fn new_decision<'a>(merchant: MerchantId, p: &'a Pending, trigger: Trigger, key_id: &'a str) -> NewDecision<'a> {
    let old = p.current.price.minor();
    let record = move |seq: i64, created_at: DateTime<Utc>| {
        let verb = if trigger == Trigger::ProposalApproved { "approved" } else { "rejected" };
        DecisionRecord {
            clips: p.clips.clone(),
            guardrails: Some(p.guardrails.clone()),
            price_effective_at: Some(p.current.effective_at),
            outcome: p.outcome,
            resolution: Some(Resolution {
                proposal_seq: p.proposal.seq,
                key_id: key_id.to_owned(),
                proposed_price_minor: p.proposal.proposed_price_minor,
            }),
            ..DecisionRecord::price_event(
                seq,
                merchant.to_string(),
                p.proposal.sku.to_string(),
                trigger,
                p.proposal.currency.clone(),
                Some(old),
                Some(p.new_price_minor),
                format!("proposal {} {verb}", p.proposal.seq),
                created_at,
            )
        }
        .to_canonical_json()
    };
    NewDecision {
        sku: &p.proposal.sku,
        trigger,
        outcome: p.outcome,
        currency: &p.proposal.currency,
        old_price_minor: Some(old),
        new_price_minor: Some(p.new_price_minor),
        clipped: !p.clips.is_empty(),
        rule_version: None,
        rule_sha256: None,
        record: Box::new(record),
    }
}
