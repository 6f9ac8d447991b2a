//! The full record of one decision, as hashed into the merchant's chain: everything needed to
//! say why the price was what it was, and to replay the decision later.
//!
//! Two kinds of decisions share the chain, so that the history holds every price that was ever
//! in force (price at time T and the prior price are read from it alone):
//! - a rule's evaluation, judged by the guardrails (`inputs` and `guardrails` set);
//! - a price event from the catalogue: a product created, its base price changed while no rule
//!   had set a price, or the product deleted (`inputs` absent; no old price on creation, no new
//!   price on deletion).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Clip;
use super::breaker::Trip;
use crate::domain::safety::HoldReason;
use crate::domain::{GuardrailsInput, Outcome, Trigger};
use crate::sandbox::RuleContext;

/// Field order is fixed (serde follows the struct), so the JSON, and so the hash, is canonical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub seq: i64,
    pub merchant_id: String,
    pub sku: String,
    pub trigger: Trigger,
    pub outcome: Outcome,
    pub currency: String,
    /// The price in force before (`None`: the product did not exist).
    pub old_price_minor: Option<i64>,
    /// The price in force after (`None`: the product was deleted).
    pub new_price_minor: Option<i64>,
    pub rule_version: Option<i64>,
    pub rule_sha256: Option<String>,
    /// The rule's inputs, exactly as evaluated (`None` for a catalogue price event).
    pub inputs: Option<RuleContext>,
    pub params: Map<String, Value>,
    /// The price the rule asked for, before guardrails (`None`: keep, or a failure).
    pub rule_price_minor: Option<i64>,
    pub explanation: String,
    pub tags: Vec<String>,
    pub log: String,
    /// Guardrails that changed the rule's price.
    pub clips: Vec<Clip>,
    /// The failure's kind and message, when the rule failed.
    pub error: Option<String>,
    pub error_message: Option<String>,
    pub fuel_used: u64,
    /// The product's guardrails as they were applied, and when the price in force had taken
    /// effect (the minimum interval counts from it): with `inputs`, enough to replay the
    /// decision through the guardrails.
    #[serde(default)]
    pub guardrails: Option<GuardrailsInput>,
    #[serde(default)]
    pub price_effective_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// A held decision's reason and the price it would have set (records of other outcomes,
    /// and every record written before holds existed, have none: the JSON is unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// A person's decision on a proposal: which one, and whose key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// The override whose start or end this decision is.
    #[serde(rename = "override", default, skip_serializing_if = "Option::is_none")]
    pub override_note: Option<OverrideNote>,
}

/// An override, as its decisions record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OverrideNote {
    pub id: i64,
    pub reason: String,
    pub price: crate::domain::overrides::OverridePrice,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    /// The product's bounds were not applied.
    pub force: bool,
}

/// Why a rule's change was held, and what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hold {
    pub reason: HoldReason,
    /// The price the rule's decision would have put in force (after guardrails).
    pub proposed_price_minor: i64,
    /// A proposal's expiry (approval holds only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The limit this decision made the breaker cross (the decision that tripped it only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tripped: Option<Trip>,
}

/// A proposal approved or rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resolution {
    /// The held decision's sequence number.
    pub proposal_seq: i64,
    /// The id of the key that decided.
    pub key_id: String,
    pub proposed_price_minor: i64,
}

impl DecisionRecord {
    /// The record of a catalogue price event (no rule involved).
    #[allow(clippy::too_many_arguments)]
    pub fn price_event(
        seq: i64,
        merchant_id: String,
        sku: String,
        trigger: Trigger,
        currency: String,
        old_price_minor: Option<i64>,
        new_price_minor: Option<i64>,
        explanation: String,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            seq,
            merchant_id,
            sku,
            trigger,
            outcome: Outcome::Changed,
            currency,
            old_price_minor,
            new_price_minor,
            rule_version: None,
            rule_sha256: None,
            inputs: None,
            params: Map::new(),
            rule_price_minor: None,
            explanation,
            tags: Vec::new(),
            log: String::new(),
            clips: Vec::new(),
            error: None,
            error_message: None,
            fuel_used: 0,
            guardrails: None,
            price_effective_at: None,
            created_at,
            hold: None,
            resolution: None,
            override_note: None,
        }
    }

    /// The canonical JSON that the chain hashes.
    pub fn to_canonical_json(&self) -> String {
        serde_json::to_string(self).expect("a decision record serializes")
    }
}
