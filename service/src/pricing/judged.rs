//! One product's evaluation, judged: the rule's answer decided on (see [`super::decide`]) and
//! everything the decision's record must say about it.

use chrono::{DateTime, Utc};

use super::decide::{Decided, decide};
use super::guardrails::Situation;
use super::record::{DecisionRecord, Hold};
use crate::domain::{MerchantId, Outcome, Product, Trigger};
use crate::sandbox::{Evaluation, RuleContext};
use crate::store::{CurrentPrice, NewDecision, RuleVersion};

pub struct Judged {
    pub product: Product,
    pub trigger: Trigger,
    pub ctx: RuleContext,
    pub evaluation: Evaluation,
    /// The price in force that was evaluated.
    pub current: CurrentPrice,
    pub decided: Decided,
    currency: String,
}

impl Judged {
    pub fn new(
        product: Product,
        current: CurrentPrice,
        trigger: Trigger,
        ctx: RuleContext,
        evaluation: Evaluation,
    ) -> Self {
        let situation = Situation {
            current_minor: current.price.minor(),
            cost_minor: product.cost.minor(),
            effective_at: current.effective_at,
            now: ctx.now,
        };
        let decided = decide(&evaluation.result, &product.guardrails, situation);
        let currency = product.currency().to_string();
        Self { product, trigger, ctx, evaluation, current, decided, currency }
    }

    pub fn currency(&self) -> &str {
        &self.currency
    }

    pub fn outcome(&self) -> Outcome {
        self.decided.outcome
    }

    /// The decision to append to the chain, its record built once its place is known. A held
    /// change (`hold`) keeps the price in force: its record says what it would have set.
    pub fn new_decision<'a>(
        &'a self,
        merchant: MerchantId,
        version: &'a RuleVersion,
        hold: Option<&'a Hold>,
    ) -> NewDecision<'a> {
        let current = self.current.price.minor();
        let (outcome, new_price_minor) = match hold {
            Some(_) => (Outcome::Held, current),
            None => (self.decided.outcome, self.decided.new_price_minor),
        };
        let record = move |seq: i64, created_at: DateTime<Utc>| {
            let decision = self.evaluation.result.as_ref().ok();
            let error = self.evaluation.result.as_ref().err();
            DecisionRecord {
                seq,
                merchant_id: merchant.to_string(),
                sku: self.product.sku.to_string(),
                trigger: self.trigger,
                outcome,
                currency: self.currency.clone(),
                old_price_minor: Some(current),
                new_price_minor: Some(new_price_minor),
                rule_version: Some(version.version),
                rule_sha256: Some(version.sha256.clone()),
                inputs: Some(self.ctx.clone()),
                params: version.params.clone(),
                rule_price_minor: decision.and_then(|d| d.price_minor),
                explanation: decision.map(|d| d.explanation.clone()).unwrap_or_default(),
                tags: decision.map(|d| d.tags.clone()).unwrap_or_default(),
                log: self.evaluation.stats.log.clone(),
                clips: self.decided.clips.clone(),
                error: error.map(|e| e.kind().to_owned()),
                error_message: error.map(|e| e.to_string()),
                fuel_used: self.evaluation.stats.fuel_used,
                guardrails: Some(self.product.guardrails.as_input().clone()),
                price_effective_at: Some(self.current.effective_at),
                created_at,
                hold: hold.cloned(),
                resolution: None,
                override_note: None,
            }
            .to_canonical_json()
        };
        NewDecision {
            sku: &self.product.sku,
            trigger: self.trigger,
            outcome,
            currency: &self.currency,
            old_price_minor: Some(current),
            new_price_minor: Some(new_price_minor),
            clipped: !self.decided.clips.is_empty(),
            rule_version: Some(version.version),
            rule_sha256: Some(&version.sha256),
            record: Box::new(record),
        }
    }
}
