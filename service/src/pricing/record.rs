//! The full record of one decision, as hashed into the merchant's chain: everything needed to
//! say why the price was what it was, and to replay the decision later.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Clip;
use crate::sandbox::RuleContext;

/// Field order is fixed (serde follows the struct), so the JSON, and so the hash, is canonical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub seq: i64,
    pub merchant_id: String,
    pub sku: String,
    pub trigger: String,
    /// `changed`, `kept` or `failed`.
    pub outcome: String,
    pub currency: String,
    pub old_price_minor: i64,
    pub new_price_minor: i64,
    pub rule_version: Option<i64>,
    pub rule_sha256: Option<String>,
    /// The rule's inputs, exactly as evaluated.
    pub inputs: RuleContext,
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
    pub created_at: DateTime<Utc>,
}
