//! Merchants' rules as the service manages them: upload (checked and compiled in the
//! sandbox, off the async threads), versions and their parameters, activation and rollback,
//! a cache of compiled rules per version (an `InstancePre` each, loaded from the stored
//! artifact on a miss), the one way to evaluate ([`evaluate`]), and dry runs.

mod dry_run;
mod evaluate;
mod limits;
mod sample;
pub mod stock;

pub use dry_run::DryRunResult;
pub use evaluate::{Mode, evaluate};
pub use limits::{Admitted, RequestLimits};
pub use sample::{ActivationCheck, SampleReport};

use std::sync::Arc;

use crate::domain::{Invalid, MerchantId};
use crate::sandbox::{CompiledRule, PreparedRule, Sandbox, UploadError};
use crate::store::{NewRuleVersion, RuleVersion, Store, StoreError};

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
    /// Too many dry runs or uploads at once (`scope`: of this merchant, or of the service).
    #[error("too many rule requests at once for this {scope} (limit {limit}); try again shortly")]
    Throttled { limit: usize, scope: &'static str },
    /// The activation's dry run over a sample of the catalogue failed too often.
    #[error(
        "{} of the {} sampled products failed with this version (more than {} bp); fix it, or activate with force=true",
        .0.failed, .0.sampled, .0.max_failed_bps
    )]
    SampleFailed(Box<SampleReport>),
    /// The merchant keeps as many rule versions, or as many bytes of them, as allowed.
    #[error("the merchant's rules are at their quota of {limit} {what}")]
    OverQuota { what: &'static str, limit: u64 },
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

pub struct Rules {
    store: Store,
    sandbox: Arc<Sandbox>,
    stale_after_secs: u64,
    limits: RequestLimits,
    activation: ActivationCheck,
    compiled: moka::sync::Cache<(MerchantId, i64), PreparedRule>,
    /// Stock policies compiled once per process: the same build for every merchant.
    stock: moka::sync::Cache<&'static str, Arc<CompiledRule>>,
}

impl Rules {
    pub fn new(
        store: Store,
        sandbox: Arc<Sandbox>,
        stale_after_secs: u64,
        limits: RequestLimits,
        activation: ActivationCheck,
    ) -> Self {
        let compiled = moka::sync::Cache::builder().max_capacity(1_000).build();
        let stock = moka::sync::Cache::builder().max_capacity(stock::POLICIES.len() as u64).build();
        Self { store, sandbox, stale_after_secs, limits, activation, compiled, stock }
    }

    /// A place for request-path rule work of the merchant (see [`limits`]), held while it runs.
    pub fn admit(&self, merchant: MerchantId) -> Result<Admitted<'_>, RuleError> {
        self.limits.admit(merchant)
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
        let _admitted = self.admit(merchant)?;
        let sha256 = crate::domain::sha256_hex(&bytes);
        // The same bytes again are the same version: nothing to check, compile or store.
        if let Some(existing) = self.store.rule_version_by_sha(merchant, &sha256).await? {
            return Ok((existing, false));
        }
        self.check_quota(merchant, bytes.len()).await?;
        let compiled = self.compile(bytes.clone()).await?;
        self.keep_version(merchant, &bytes, &sha256, &compiled, None).await
    }

    /// Uploads, for `merchant`, the stock policy of that name (see [`stock`]): an ordinary
    /// version whose sha256 names the build that ships with this service. Each stock policy is
    /// compiled once per process, whichever merchant uses it first.
    pub async fn use_stock(&self, merchant: MerchantId, name: &str) -> Result<(RuleVersion, bool), RuleError> {
        let policy = stock::find(name).ok_or_else(|| {
            let names: Vec<&str> = stock::POLICIES.iter().map(|p| p.name).collect();
            let message = format!("no stock policy `{name}` (there are: {})", names.join(", "));
            RuleError::Invalid(Invalid::one("stock", message))
        })?;
        let _admitted = self.admit(merchant)?;
        let sha256 = crate::domain::sha256_hex(policy.wasm);
        if let Some(existing) = self.store.rule_version_by_sha(merchant, &sha256).await? {
            return Ok((existing, false));
        }
        self.check_quota(merchant, policy.wasm.len()).await?;
        let compiled = match self.stock.get(policy.name) {
            Some(compiled) => compiled,
            None => {
                let compiled = Arc::new(self.compile(policy.wasm.to_vec()).await?);
                self.stock.insert(policy.name, compiled.clone());
                compiled
            }
        };
        self.keep_version(merchant, policy.wasm, &sha256, &compiled, Some(policy.name)).await
    }

    /// Refuses a new version of `size` bytes over the merchant's quota of versions or bytes.
    async fn check_quota(&self, merchant: MerchantId, size: usize) -> Result<(), RuleError> {
        let quota = self.sandbox.settings();
        let (versions, stored) = self.store.rule_storage(merchant).await?;
        if versions >= quota.max_rule_versions as i64 {
            return Err(RuleError::OverQuota { what: "versions", limit: quota.max_rule_versions });
        }
        // A version stores about four times its upload (component and compiled code beside it).
        if stored + 4 * size as i64 > quota.max_rule_bytes as i64 {
            return Err(RuleError::OverQuota { what: "bytes", limit: quota.max_rule_bytes });
        }
        Ok(())
    }

    /// Compiles `bytes` in the sandbox, off the async threads.
    async fn compile(&self, bytes: Vec<u8>) -> Result<CompiledRule, RuleError> {
        let sandbox = self.sandbox.clone();
        let compiled = tokio::task::spawn_blocking(move || sandbox.compile(&bytes))
            .await
            .expect("rule compilation does not panic")?;
        Ok(compiled)
    }

    /// Stores a compiled version and keeps it loaded.
    async fn keep_version(
        &self,
        merchant: MerchantId,
        bytes: &[u8],
        sha256: &str,
        compiled: &CompiledRule,
        stock: Option<&str>,
    ) -> Result<(RuleVersion, bool), RuleError> {
        let new = NewRuleVersion {
            sha256,
            wasm: bytes,
            component: &compiled.component,
            artifact: &compiled.artifact,
            compile_ms: compiled.compile_time.as_millis() as i64,
            params_schema: compiled.schema.as_ref(),
            stock,
        };
        let (version, created) = self.store.insert_rule_version(merchant, &new).await?;
        self.compiled.insert((merchant, version.version), compiled.rule.clone());
        Ok((version, created))
    }

    pub async fn version(&self, merchant: MerchantId, version: i64) -> Result<RuleVersion, RuleError> {
        self.store.rule_version(merchant, version).await?.ok_or(RuleError::UnknownVersion(version))
    }

    /// The compiled rule of a version, from the cache or loaded from the store.
    pub async fn prepared(&self, merchant: MerchantId, version: i64) -> Result<PreparedRule, RuleError> {
        if let Some(rule) = self.compiled.get(&(merchant, version)) {
            return Ok(rule);
        }
        let code = self.store.rule_code(merchant, version).await?.ok_or(RuleError::UnknownVersion(version))?;
        let sandbox = self.sandbox.clone();
        let (rule, recompiled) =
            tokio::task::spawn_blocking(move || sandbox.load_or_recompile(&code.artifact, &code.component))
                .await
                .expect("rule loading does not panic")?;
        if let Some(artifact) = recompiled {
            // Kept, so that the next start (and every other replica) loads instead of compiling.
            if let Err(e) = self.store.replace_rule_artifact(merchant, version, &artifact).await {
                tracing::warn!(error = %e, version, "keeping a recompiled rule artifact failed");
            }
        }
        self.compiled.insert((merchant, version), rule.clone());
        Ok(rule)
    }
}
