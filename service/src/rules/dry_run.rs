//! Dry runs: a version evaluated on the merchant's products as they stand (or on contexts given
//! in full), persisting nothing. A product's result is decided as the engine would decide it
//! ([`decide`]: its guardrails, in its situation now), so the dry run shows the price that
//! would be in force; a context given in full has no guardrails and shows the rule's answer.

use chrono::Utc;

use super::{Mode, RuleError, Rules, evaluate};
use crate::domain::{Guardrails, Outcome};
use crate::domain::{Invalid, MerchantId, Sku};
use crate::pricing::context::{context, rule_now};
use crate::pricing::{Clip, Situation, decide};
use crate::sandbox::{EvalError, EvalStats, Evaluation, RuleContext, RuleDecision};

/// One dry-run evaluation: what the rule would do to one product, and what it cost.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DryRunResult {
    pub sku: String,
    pub currency: String,
    pub current_price_minor: i64,
    /// The rule's checked decision, when it produced one.
    pub decision: Option<RuleDecision>,
    /// The change the decision asks for, in minor units (0 to keep).
    pub change_minor: Option<i64>,
    /// The kind of failure (`timeout`, `out_of_fuel`, `guest_panic`, ...), when it failed.
    pub error: Option<String>,
    pub error_message: Option<String>,
    pub stats: EvalStats,
    /// For a product: what the engine would make of the decision (its guardrails applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guarded: Option<GuardedPrice>,
}

/// What a dry-run decision would do to a product's price in force.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct GuardedPrice {
    pub outcome: Outcome,
    pub new_price_minor: i64,
    pub clips: Vec<Clip>,
}

/// A context to dry-run, with its product's guardrails and when its price took effect (for a
/// product of the merchant's; `None` for a context given in full).
pub type DryRunInput = (RuleContext, Option<(Guardrails, chrono::DateTime<Utc>)>);

impl Rules {
    /// Evaluates `version` on each context, persisting nothing.
    pub async fn dry_run(
        &self,
        merchant: MerchantId,
        version: i64,
        inputs: Vec<DryRunInput>,
    ) -> Result<Vec<DryRunResult>, RuleError> {
        let _admitted = self.admit(merchant)?;
        let params = self.version(merchant, version).await?.params;
        let rule = self.prepared(merchant, version).await?;
        let contexts: Vec<RuleContext> = inputs.iter().map(|(ctx, _)| ctx.clone()).collect();
        let evaluations =
            evaluate(self.sandbox(), &rule, &params, &contexts, Mode::Alone).await.map_err(RuleError::Invalid)?;
        Ok(inputs
            .into_iter()
            .zip(evaluations)
            .map(|((ctx, guard), evaluation)| dry_run_result(ctx, guard, evaluation))
            .collect())
    }

    /// Contexts for a merchant's products as they stand now, signals included.
    pub async fn contexts_for(&self, merchant: MerchantId, skus: &[String]) -> Result<Vec<DryRunInput>, RuleError> {
        let mut invalid = Invalid::new();
        let mut contexts = Vec::with_capacity(skus.len());
        let now = rule_now(Utc::now());
        for (i, text) in skus.iter().enumerate() {
            let field = format!("skus[{i}]");
            let Ok(sku) = Sku::parse(text) else {
                invalid.push(field, "not a valid SKU");
                continue;
            };
            let assembled = match self.store.product(merchant, &sku).await? {
                Some(product) => {
                    let signals = self.store.signals_between(merchant, &sku, &sku, now).await?;
                    context(&product, &signals, now, self.stale_after_secs)
                        .map(|(ctx, price)| (ctx, Some((product.guardrails.clone(), price.effective_at))))
                }
                None => None,
            };
            match assembled {
                Some(input) => contexts.push(input),
                None => invalid.push(field, format!("no product {sku}")),
            }
        }
        invalid.or_ok(|| contexts).map_err(RuleError::Invalid)
    }
}

fn dry_run_result(
    ctx: RuleContext,
    guard: Option<(Guardrails, chrono::DateTime<Utc>)>,
    evaluation: Evaluation,
) -> DryRunResult {
    let guarded = guard.map(|(guardrails, effective_at)| {
        let situation = Situation {
            current_minor: ctx.current_price_minor,
            cost_minor: ctx.cost_minor,
            effective_at,
            now: ctx.now,
        };
        let decided = decide(&evaluation.result, &guardrails, situation);
        GuardedPrice { outcome: decided.outcome, new_price_minor: decided.new_price_minor, clips: decided.clips }
    });
    let (decision, error): (Option<RuleDecision>, Option<EvalError>) = match evaluation.result {
        Ok(decision) => (Some(decision), None),
        Err(e) => (None, Some(e)),
    };
    let change_minor = decision.as_ref().map(|d| d.price_minor.map_or(0, |p| p - ctx.current_price_minor));
    DryRunResult {
        sku: ctx.sku,
        currency: ctx.currency,
        current_price_minor: ctx.current_price_minor,
        decision,
        change_minor,
        error: error.as_ref().map(|e| e.kind().to_owned()),
        error_message: error.map(|e| e.to_string()),
        stats: evaluation.stats,
        guarded,
    }
}
