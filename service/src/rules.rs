//! Merchants' rules as the service manages them: upload (checked and compiled in the
//! sandbox, off the async threads), versions and their parameters, activation and rollback,
//! a cache of compiled rules per version (an `InstancePre` each, loaded from the stored
//! artifact on a miss), and dry runs that evaluate without persisting anything.

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value};

use crate::domain::{Attributes, Invalid, MerchantId};
use crate::pricing::context::assemble;
use crate::sandbox::{EvalError, EvalStats, PreparedRule, RuleContext, RuleDecision, Sandbox, UploadError};
use crate::store::{Activation, NewRuleVersion, RuleVersion, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error(transparent)]
    Refused(#[from] UploadError),
    #[error("rule version {0} does not exist")]
    UnknownVersion(i64),
    #[error("{0}")]
    Invalid(Invalid),
    #[error("there is no earlier activation to roll back to")]
    NothingToRollBack,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RuleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownRuleVersion(v) => RuleError::UnknownVersion(v),
            StoreError::NothingToRollBack => RuleError::NothingToRollBack,
            other => RuleError::Store(other),
        }
    }
}

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

pub struct Rules {
    store: Arc<dyn Store>,
    sandbox: Arc<Sandbox>,
    stale_after_secs: u64,
    compiled: moka::sync::Cache<(MerchantId, i64), PreparedRule>,
}

impl Rules {
    pub fn new(store: Arc<dyn Store>, sandbox: Arc<Sandbox>, stale_after_secs: u64) -> Self {
        Self { store, sandbox, stale_after_secs, compiled: moka::sync::Cache::builder().max_capacity(1_000).build() }
    }

    /// Observations older than this reach rules marked stale.
    pub fn stale_after_secs(&self) -> u64 {
        self.stale_after_secs
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Checks, compiles and stores an upload: `(version, created)`; the same bytes again give
    /// the existing version.
    pub async fn upload(&self, merchant: MerchantId, bytes: Vec<u8>) -> Result<(RuleVersion, bool), RuleError> {
        let sha256 = hex::encode(crate::auth::sha256(&bytes));
        let sandbox = self.sandbox.clone();
        let (compiled, bytes) = tokio::task::spawn_blocking(move || (sandbox.compile(&bytes), bytes))
            .await
            .expect("rule compilation does not panic");
        let compiled = compiled?;
        let new = NewRuleVersion {
            sha256: &sha256,
            wasm: &bytes,
            component: &compiled.component,
            artifact: &compiled.artifact,
            compile_ms: compiled.compile_time.as_millis() as i64,
        };
        let (version, created) = self.store.insert_rule_version(merchant, &new).await?;
        self.compiled.insert((merchant, version.version), compiled.rule);
        Ok((version, created))
    }

    pub async fn version(&self, merchant: MerchantId, version: i64) -> Result<RuleVersion, RuleError> {
        self.store.rule_version(merchant, version).await?.ok_or(RuleError::UnknownVersion(version))
    }

    pub async fn set_params(
        &self,
        merchant: MerchantId,
        version: i64,
        params: Map<String, Value>,
    ) -> Result<RuleVersion, RuleError> {
        Attributes::check_named("params", &params).map_err(RuleError::Invalid)?;
        self.store.set_rule_params(merchant, version, &params).await?.ok_or(RuleError::UnknownVersion(version))
    }

    pub async fn activate(&self, merchant: MerchantId, version: i64) -> Result<Activation, RuleError> {
        // Loading first means a version that cannot run is never made active.
        self.prepared(merchant, version).await?;
        Ok(self.store.activate_rule(merchant, version).await?)
    }

    pub async fn roll_back(&self, merchant: MerchantId) -> Result<Activation, RuleError> {
        Ok(self.store.roll_back_rule(merchant).await?)
    }

    /// The compiled rule of a version, from the cache or loaded from the store.
    pub async fn prepared(&self, merchant: MerchantId, version: i64) -> Result<PreparedRule, RuleError> {
        if let Some(rule) = self.compiled.get(&(merchant, version)) {
            return Ok(rule);
        }
        let code = self.store.rule_code(merchant, version).await?.ok_or(RuleError::UnknownVersion(version))?;
        let sandbox = self.sandbox.clone();
        let rule = tokio::task::spawn_blocking(move || sandbox.load(&code.artifact, &code.component))
            .await
            .expect("rule loading does not panic")?;
        self.compiled.insert((merchant, version), rule.clone());
        Ok(rule)
    }

    /// Evaluates `version` on each context, persisting nothing.
    pub async fn dry_run(
        &self,
        merchant: MerchantId,
        version: i64,
        contexts: Vec<RuleContext>,
    ) -> Result<Vec<DryRunResult>, RuleError> {
        let params = self.version(merchant, version).await?.params;
        let mut invalid = Invalid::new();
        let guest: Vec<_> = contexts
            .iter()
            .enumerate()
            .filter_map(|(i, ctx)| ctx.to_guest(&params).map_err(|e| invalid.absorb(&format!("contexts[{i}]"), e)).ok())
            .collect();
        if !invalid.is_empty() {
            return Err(RuleError::Invalid(invalid));
        }
        let rule = self.prepared(merchant, version).await?;
        let sandbox = self.sandbox.clone();
        let evaluations = tokio::task::spawn_blocking(move || {
            guest.iter().map(|ctx| sandbox.evaluate(&rule, ctx)).collect::<Vec<_>>()
        })
        .await
        .expect("evaluation does not panic");
        Ok(contexts.into_iter().zip(evaluations).map(|(ctx, evaluation)| dry_run_result(ctx, evaluation)).collect())
    }

    /// Contexts for a merchant's products as they stand now, signals included.
    pub async fn contexts_for(&self, merchant: MerchantId, skus: &[String]) -> Result<Vec<RuleContext>, RuleError> {
        let mut invalid = Invalid::new();
        let mut contexts = Vec::with_capacity(skus.len());
        for (i, text) in skus.iter().enumerate() {
            let field = format!("skus[{i}]");
            let Ok(sku) = crate::domain::Sku::parse(text) else {
                invalid.push(field, "not a valid SKU");
                continue;
            };
            let assembled = match self.store.product(merchant, &sku).await? {
                Some(product) => {
                    assemble(self.store.as_ref(), merchant, &product, Utc::now(), self.stale_after_secs).await?
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

fn dry_run_result(ctx: RuleContext, evaluation: crate::sandbox::Evaluation) -> DryRunResult {
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
