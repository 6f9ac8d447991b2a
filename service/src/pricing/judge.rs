//! Judging one evaluation: the guardrails applied to the rule's price, the outcome (changed,
//! kept, failed), and the decision to append, whose record says everything about it.

use chrono::Utc;

use super::record::DecisionRecord;
use super::repricer::Trigger;
use super::{Clip, Situation, apply_guardrails};
use crate::domain::{MerchantId, Product};
use crate::sandbox::{Evaluation, RuleContext};
use crate::store::{CurrentPrice, NewDecision, RuleVersion};

/// One product's evaluation, judged: guardrails applied, outcome decided.
pub(super) struct Judged {
    product: Product,
    trigger: Trigger,
    ctx: RuleContext,
    evaluation: Evaluation,
    current: i64,
    effective_at: chrono::DateTime<Utc>,
    new_price: i64,
    outcome: &'static str,
    clips: Vec<Clip>,
    currency: String,
}

pub(super) fn judge(
    product: Product,
    price: CurrentPrice,
    trigger: Trigger,
    ctx: RuleContext,
    evaluation: Evaluation,
) -> Judged {
    let current = price.price.minor();
    let (outcome, new_price, clips) = match &evaluation.result {
        Ok(decision) => {
            let proposed = decision.price_minor.unwrap_or(current);
            let situation = Situation {
                current_minor: current,
                cost_minor: product.cost.minor(),
                effective_at: price.effective_at,
                now: ctx.now,
            };
            let guarded = apply_guardrails(&product.guardrails, proposed, situation);
            let outcome = if guarded.price_minor != current { "changed" } else { "kept" };
            (outcome, guarded.price_minor, guarded.clips)
        }
        Err(_) => ("failed", current, Vec::new()),
    };
    let currency = product.currency().to_string();
    let effective_at = price.effective_at;
    Judged { product, trigger, ctx, evaluation, current, effective_at, new_price, outcome, clips, currency }
}

impl Judged {
    pub(super) fn new_decision<'a>(&'a self, merchant: MerchantId, version: &'a RuleVersion) -> NewDecision<'a> {
        let record = move |seq: i64, created_at: chrono::DateTime<Utc>| {
            let decision = self.evaluation.result.as_ref().ok();
            let error = self.evaluation.result.as_ref().err();
            let record = DecisionRecord {
                seq,
                merchant_id: merchant.to_string(),
                sku: self.product.sku.to_string(),
                trigger: self.trigger.as_str().to_owned(),
                outcome: self.outcome.to_owned(),
                currency: self.currency.clone(),
                old_price_minor: Some(self.current),
                new_price_minor: Some(self.new_price),
                rule_version: Some(version.version),
                rule_sha256: Some(version.sha256.clone()),
                inputs: Some(self.ctx.clone()),
                params: version.params.clone(),
                rule_price_minor: decision.and_then(|d| d.price_minor),
                explanation: decision.map(|d| d.explanation.clone()).unwrap_or_default(),
                tags: decision.map(|d| d.tags.clone()).unwrap_or_default(),
                log: self.evaluation.stats.log.clone(),
                clips: self.clips.clone(),
                error: error.map(|e| e.kind().to_owned()),
                error_message: error.map(|e| e.to_string()),
                fuel_used: self.evaluation.stats.fuel_used,
                guardrails: Some(self.product.guardrails.as_input().clone()),
                price_effective_at: Some(self.effective_at),
                created_at,
            };
            record.to_canonical_json()
        };
        NewDecision {
            sku: &self.product.sku,
            trigger: self.trigger.as_str(),
            outcome: self.outcome,
            currency: &self.currency,
            old_price_minor: Some(self.current),
            new_price_minor: Some(self.new_price),
            clipped: !self.clips.is_empty(),
            rule_version: Some(version.version),
            rule_sha256: Some(&version.sha256),
            record: Box::new(record),
        }
    }
}
