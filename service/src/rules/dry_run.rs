//! Dry runs: a version evaluated on the merchant's products as they stand (or on contexts given
//! in full), persisting nothing. A product's result is decided as the engine would decide it
//! ([`decide`]: its guardrails, in its situation now), and looked at by the safety net as the
//! write path would look at it were the version live (an override in force, a freeze, a tripped
//! breaker, the approval policy, in that order; the breaker's window is not simulated), so the
//! dry run shows the price that would go live, or why it would be held; a context given in full
//! has no guardrails and shows the rule's answer.

use std::collections::HashSet;

use chrono::Utc;

use super::{Mode, RuleError, Rules, evaluate};
use crate::domain::safety::{ApprovalPolicy, Change, HoldReason};
use crate::domain::{Guardrails, Outcome};
use crate::domain::{Invalid, MerchantId, Sku};
use crate::pricing::context::{context, rule_now};
use crate::pricing::{Clip, Situation, decide};
use crate::sandbox::{EvalError, EvalStats, Evaluation, RuleContext, RuleDecision};
use crate::store::StoreError;

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
    /// Why the safety net would hold the change instead of moving the price (`override`,
    /// `frozen`, `breaker`, or an approval policy's reason); absent when it would go live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<HoldReason>,
}

/// What the safety net would make of a change going live now.
struct Net {
    overridden: HashSet<String>,
    frozen: bool,
    tripped: bool,
    approval: ApprovalPolicy,
    /// Seconds since the dry-run version's activation (0 when it is not the active one: it
    /// would be new if activated).
    version_age_secs: i64,
}

impl Net {
    fn held(&self, sku: &str, guarded: &GuardedPrice, old_minor: i64, cost_minor: i64) -> Option<HoldReason> {
        if guarded.outcome != Outcome::Changed {
            return None;
        }
        let change = Change {
            old_minor,
            new_minor: guarded.new_price_minor,
            cost_minor,
            version_age_secs: self.version_age_secs,
        };
        match () {
            _ if self.overridden.contains(sku) => Some(HoldReason::Override),
            _ if self.frozen => Some(HoldReason::Frozen),
            _ if self.tripped => Some(HoldReason::Breaker),
            _ => self.approval.hold(change),
        }
    }
}

/// A context to dry-run, with its product's guardrails and when its price took effect (for a
/// product of the merchant's; `None` for a context given in full).
pub type DryRunInput = (RuleContext, Option<(Guardrails, chrono::DateTime<Utc>)>);

impl Rules {
    /// Evaluates `version` on each context, persisting nothing (a request's: within the
    /// merchant's and the service's limits on rule work at once).
    pub async fn dry_run(
        &self,
        merchant: MerchantId,
        version: i64,
        inputs: Vec<DryRunInput>,
    ) -> Result<Vec<DryRunResult>, RuleError> {
        let _admitted = self.admit(merchant)?;
        self.dry_run_admitted(merchant, version, inputs).await
    }

    /// [`Self::dry_run`] for work already bounded by its caller (an activation's sample).
    pub(super) async fn dry_run_admitted(
        &self,
        merchant: MerchantId,
        version: i64,
        inputs: Vec<DryRunInput>,
    ) -> Result<Vec<DryRunResult>, RuleError> {
        let params = self.version(merchant, version).await?.params;
        let rule = self.prepared(merchant, version).await?;
        let contexts: Vec<RuleContext> = inputs.iter().map(|(ctx, _)| ctx.clone()).collect();
        let evaluations =
            evaluate(self.sandbox(), &rule, &params, &contexts, Mode::Alone).await.map_err(RuleError::Invalid)?;
        let net = self.net(merchant, version, &inputs).await?;
        Ok(inputs
            .into_iter()
            .zip(evaluations)
            .map(|((ctx, guard), evaluation)| dry_run_result(ctx, guard, evaluation, &net))
            .collect())
    }

    /// The safety net as it stands, for the products among `inputs`.
    async fn net(&self, merchant: MerchantId, version: i64, inputs: &[DryRunInput]) -> Result<Net, RuleError> {
        let products = inputs.iter().filter(|(_, guard)| guard.is_some()).map(|(ctx, _)| ctx.sku.as_str());
        let (first, last) = (products.clone().min(), products.max());
        let overridden = match (first, last) {
            (Some(first), Some(last)) => self.store.overridden_skus(merchant, first, last).await?.into_iter().collect(),
            _ => HashSet::new(),
        };
        let row = self.store.safety(merchant).await?;
        let approval = match row.approval.as_deref() {
            Some(json) => {
                serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("stored approval policy: {e}")))?
            }
            None => ApprovalPolicy::default(),
        };
        let version_age_secs = match self.store.active_rule(merchant).await? {
            Some(active) if active.version == version => (Utc::now() - active.activated_at).num_seconds(),
            _ => 0,
        };
        Ok(Net { overridden, frozen: row.frozen.is_some(), tripped: row.tripped.is_some(), approval, version_age_secs })
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
    net: &Net,
) -> DryRunResult {
    let guarded = guard.map(|(guardrails, effective_at)| {
        let situation = Situation {
            current_minor: ctx.current_price_minor,
            cost_minor: ctx.cost_minor,
            effective_at,
            now: ctx.now,
        };
        let decided = decide(&evaluation.result, &guardrails, situation);
        let mut guarded = GuardedPrice {
            outcome: decided.outcome,
            new_price_minor: decided.new_price_minor,
            clips: decided.clips,
            held: None,
        };
        guarded.held = net.held(&ctx.sku, &guarded, ctx.current_price_minor, ctx.cost_minor);
        guarded
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
