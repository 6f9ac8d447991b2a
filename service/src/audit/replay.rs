//! Replaying a recorded decision: the recorded rule version runs again on the recorded inputs
//! and parameters, the recorded guardrails are applied in the recorded situation, and every
//! part of the result is compared with the record. Rules are deterministic by construction
//! (no clock, no randomness, no I/O; the host's `now` is an input), so any difference means
//! the record, the stored rule or the host changed.
//!
//! Fuel is reported but not compared: the repricer evaluates contexts in batches, where the
//! guest's allocator works on a heap that also holds the rest of the batch, so a context's
//! instruction count differs a little from the same context run alone, as a replay runs it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::domain::{Guardrails, MerchantId, Outcome};
use crate::pricing::{DecisionRecord, Situation, decide};
use crate::rules::{Mode, RuleError, Rules, evaluate};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("decision {0} was not found")]
    UnknownDecision(i64),
    #[error("decision {0} is a catalogue price event, not a rule's decision: there is nothing to replay")]
    NotARuleDecision(i64),
    #[error("decision {0}'s record cannot be read: {1}")]
    UnreadableRecord(i64, String),
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Difference {
    pub field: &'static str,
    #[schema(value_type = Object)]
    pub recorded: Value,
    #[schema(value_type = Object)]
    pub replayed: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Replay {
    pub seq: i64,
    pub rule_version: i64,
    /// True when every compared field is the same.
    pub identical: bool,
    pub differences: Vec<Difference>,
    pub fuel_recorded: u64,
    pub fuel_replayed: u64,
    pub replayed_at: DateTime<Utc>,
}

pub async fn replay(store: &Store, rules: &Rules, merchant: MerchantId, seq: i64) -> Result<Replay, ReplayError> {
    let stored = store.decision(merchant, seq).await?.ok_or(ReplayError::UnknownDecision(seq))?;
    let record: DecisionRecord =
        serde_json::from_str(&stored.record).map_err(|e| ReplayError::UnreadableRecord(seq, e.to_string()))?;
    let (Some(inputs), Some(version)) = (record.inputs.as_ref(), record.rule_version) else {
        return Err(ReplayError::NotARuleDecision(seq));
    };
    let _admitted = rules.admit(merchant)?;
    let rule_version = rules.version(merchant, version).await?;
    let prepared = rules.prepared(merchant, version).await?;
    let evaluation = evaluate(rules.sandbox(), &prepared, &record.params, std::slice::from_ref(inputs), Mode::Alone)
        .await
        .map_err(|e| ReplayError::UnreadableRecord(seq, e.to_string()))?
        .pop()
        .expect("one evaluation per context");

    let current = inputs.current_price_minor;
    let decision = evaluation.result.as_ref().ok();
    let error = evaluation.result.as_ref().err().map(|e| e.kind().to_owned());
    // The guardrails as recorded, in the recorded situation, decided as the engine decides; a
    // record without them (written before they were recorded) is compared on the rule's
    // answer alone, unless the rule failed (a failure keeps the price whatever the guardrails).
    let guardrails = record.guardrails.clone().and_then(|g| Guardrails::parse(g).ok());
    let judged = match (guardrails, record.price_effective_at) {
        (Some(guardrails), Some(effective_at)) => {
            let situation =
                Situation { current_minor: current, cost_minor: inputs.cost_minor, effective_at, now: inputs.now };
            Some(decide(&evaluation.result, &guardrails, situation))
        }
        _ if evaluation.result.is_err() => {
            Some(crate::pricing::Decided { outcome: Outcome::Failed, new_price_minor: current, clips: Vec::new() })
        }
        _ => None,
    };

    let mut differences = Vec::new();
    let mut compare = |field: &'static str, recorded: Value, replayed: Value| {
        if recorded != replayed {
            differences.push(Difference { field, recorded, replayed });
        }
    };
    compare("rule_sha256", json!(record.rule_sha256), json!(rule_version.sha256));
    compare("error", json!(record.error), json!(error));
    compare("rule_price_minor", json!(record.rule_price_minor), json!(decision.and_then(|d| d.price_minor)));
    compare("explanation", json!(record.explanation), json!(decision.map_or("", |d| d.explanation.as_str())));
    compare("tags", json!(record.tags), json!(decision.map_or(&[][..], |d| d.tags.as_slice())));
    compare("log", json!(record.log), json!(evaluation.stats.log));
    if let Some(decided) = judged {
        // A held change kept the price in force; what it would have set is in its hold.
        let (outcome, new_price) = match &record.hold {
            Some(hold) => (Outcome::Changed, Some(hold.proposed_price_minor)),
            None => (record.outcome, record.new_price_minor),
        };
        compare("outcome", json!(outcome), json!(decided.outcome));
        compare("new_price_minor", json!(new_price), json!(decided.new_price_minor));
        compare("clips", json!(record.clips), json!(decided.clips));
    }
    Ok(Replay {
        seq,
        rule_version: version,
        identical: differences.is_empty(),
        differences,
        fuel_recorded: record.fuel_used,
        fuel_replayed: evaluation.stats.fuel_used,
        replayed_at: Utc::now(),
    })
}
