//! The check before an activation: the version dry-run on a random sample of the merchant's
//! catalogue (`pricing.activation_sample` products, as they stand), and its failures counted
//! by kind. More failed than `pricing.activation_max_failed_bps` of the sample refuses the
//! activation unless it is forced; the report goes with the activation either way, so a
//! merchant sees what a forced one will do.

use std::collections::BTreeMap;

use super::{RuleError, Rules};
use crate::domain::MerchantId;

/// How an activation is checked.
#[derive(Debug, Clone, Copy)]
pub struct ActivationCheck {
    /// Products sampled (0: no check).
    pub sample: usize,
    pub max_failed_bps: u32,
}

/// What the sample found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SampleReport {
    pub sampled: usize,
    pub failed: usize,
    /// Failures by kind (`guest_panic`, `out_of_fuel`, ...).
    pub failures: BTreeMap<String, usize>,
    /// A few of the failures: the SKU, the kind and the message.
    pub examples: Vec<SampleFailure>,
    /// The share of failures allowed, in basis points.
    pub max_failed_bps: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SampleFailure {
    pub sku: String,
    pub error: String,
    pub message: String,
}

/// Failures shown in a report.
const EXAMPLES: usize = 5;

impl SampleReport {
    /// Whether the failures are over the allowed share.
    pub fn too_many(&self) -> bool {
        self.failed as u128 * 10_000 > self.sampled as u128 * u128::from(self.max_failed_bps)
    }
}

impl Rules {
    /// Dry-runs `version` on a sample of the merchant's catalogue and counts its failures.
    pub async fn sample_run(&self, merchant: MerchantId, version: i64) -> Result<SampleReport, RuleError> {
        let check = self.activation;
        let mut report = SampleReport {
            sampled: 0,
            failed: 0,
            failures: BTreeMap::new(),
            examples: Vec::new(),
            max_failed_bps: check.max_failed_bps,
        };
        if check.sample == 0 {
            return Ok(report);
        }
        let skus: Vec<String> =
            self.store.sample_skus(merchant, check.sample).await?.into_iter().map(|s| s.as_str().to_owned()).collect();
        if skus.is_empty() {
            return Ok(report);
        }
        let inputs = self.contexts_for(merchant, &skus).await?;
        // Not held to the request limits on rule work: an activation is one merchant's rare
        // act, the sample is bounded, and another tenant's flood of dry runs must not make it
        // fail.
        let results = self.dry_run_admitted(merchant, version, inputs).await?;
        report.sampled = results.len();
        for result in results {
            let Some(kind) = result.error else { continue };
            report.failed += 1;
            *report.failures.entry(kind.clone()).or_insert(0) += 1;
            if report.examples.len() < EXAMPLES {
                let message = result.error_message.unwrap_or_default();
                report.examples.push(SampleFailure { sku: result.sku, error: kind, message });
            }
        }
        Ok(report)
    }
}
