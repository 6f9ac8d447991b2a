//! Dry runs: a version evaluated on the merchant's products as they stand (or on contexts given
//! in full), persisting nothing.

use chrono::Utc;

use super::{Mode, RuleError, Rules, evaluate};
use crate::domain::{Invalid, MerchantId, Sku};
use crate::pricing::context::{context, rule_now};
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
}

impl Rules {
    /// Evaluates `version` on each context, persisting nothing.
    pub async fn dry_run(
        &self,
        merchant: MerchantId,
        version: i64,
        contexts: Vec<RuleContext>,
    ) -> Result<Vec<DryRunResult>, RuleError> {
        let _admitted = self.admit(merchant)?;
        let params = self.version(merchant, version).await?.params;
        let rule = self.prepared(merchant, version).await?;
        let evaluations =
            evaluate(self.sandbox(), &rule, &params, &contexts, Mode::Alone).await.map_err(RuleError::Invalid)?;
        Ok(contexts.into_iter().zip(evaluations).map(|(ctx, evaluation)| dry_run_result(ctx, evaluation)).collect())
    }

    /// Contexts for a merchant's products as they stand now, signals included.
    pub async fn contexts_for(&self, merchant: MerchantId, skus: &[String]) -> Result<Vec<RuleContext>, RuleError> {
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
                }
                None => None,
            };
            match assembled {
                Some((ctx, _)) => contexts.push(ctx),
                None => invalid.push(field, format!("no product {sku}")),
            }
        }
        invalid.or_ok(|| contexts).map_err(RuleError::Invalid)
    }
}

fn dry_run_result(ctx: RuleContext, evaluation: Evaluation) -> DryRunResult {
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
    }
}
