//! A backtest: a version over the recorded inputs of the merchant's rule decisions in a time
//! range, oldest first, a page at a time, with each decision's recorded guardrails and
//! situation. The live side of each comparison is the record's own decision (a held change
//! at the price it proposed), so over the decisions a shadow rode on, a backtest gives the
//! shadow's report. Records of approvals and overrides are no rule's evaluation and are
//! passed over, as are records written before guardrails were recorded (nothing to replay
//! them through).

use std::time::Instant;

use super::report::{Comparison, Side};
use super::{Inner, TrialError, pace};
use crate::domain::{Guardrails, Outcome};
use crate::pricing::{Decided, DecisionRecord, Situation, decide};
use crate::rules::{Mode, evaluate};
use crate::sandbox::{Evaluation, RuleContext};
use crate::store::history::DecisionFilter;
use crate::store::trials::{Trial, TrialState};

/// Decisions read and evaluated at once.
pub const PAGE: u32 = 100;

/// Runs a backtest to its end (or until it is cancelled, or fails: then it says why).
pub(super) async fn run(inner: &Inner, trial: &Trial) {
    if let Err(e) = pages(inner, trial).await {
        tracing::warn!(error = %e, trial = trial.id, "backtest failed");
        let reason = e.to_string();
        if let Err(e) = inner.store.end_trial(trial.merchant, trial.id, TrialState::Failed, Some(&reason)).await {
            tracing::warn!(error = %e, trial = trial.id, "marking a failed backtest failed");
        }
    }
}

/// One decision to compare: its record's inputs, guardrails and situation, and what it did.
pub struct Recorded {
    pub seq: i64,
    pub ctx: RuleContext,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub guardrails: Guardrails,
    pub situation: Situation,
    pub live: Side,
}

impl Recorded {
    /// The comparison of this decision with a candidate's evaluation of its inputs, decided
    /// through its recorded guardrails in its recorded situation.
    pub fn compare(self, evaluation: &Evaluation) -> Comparison {
        let decided: Decided = decide(&evaluation.result, &self.guardrails, self.situation);
        Comparison {
            seq: self.seq,
            sku: self.ctx.sku.clone(),
            currency: self.ctx.currency.clone(),
            cost_minor: self.situation.cost_minor,
            current_minor: self.situation.current_minor,
            live: self.live,
            candidate: Side::of(evaluation, &decided),
        }
    }
}

/// A rule decision's record as a [`Recorded`]; `None` for a record that is no rule's
/// evaluation (a catalogue event, an approval, an override) or has no guardrails recorded.
pub fn recorded(seq: i64, json: &str) -> Result<Option<Recorded>, TrialError> {
    let record: DecisionRecord = serde_json::from_str(json)
        .map_err(|e| crate::store::StoreError::Corrupt(format!("decision {seq}'s record: {e}")))?;
    if record.resolution.is_some() || record.override_note.is_some() {
        return Ok(None);
    }
    let (Some(ctx), Some(_), Some(input), Some(effective_at)) =
        (record.inputs, record.rule_version, record.guardrails, record.price_effective_at)
    else {
        return Ok(None);
    };
    let Ok(guardrails) = Guardrails::parse(input) else { return Ok(None) };
    let situation =
        Situation { current_minor: ctx.current_price_minor, cost_minor: ctx.cost_minor, effective_at, now: ctx.now };
    let (outcome, price) = match &record.hold {
        Some(hold) => (Outcome::Changed, hold.proposed_price_minor),
        None => (record.outcome, record.new_price_minor.unwrap_or(ctx.current_price_minor)),
    };
    let live = Side {
        outcome,
        price_minor: price,
        rule_price_minor: record.rule_price_minor,
        explanation: record.explanation,
        error: record.error,
    };
    Ok(Some(Recorded { seq, ctx, params: record.params, guardrails, situation, live }))
}

async fn pages(inner: &Inner, trial: &Trial) -> Result<(), TrialError> {
    let merchant = trial.merchant;
    let Some((from, to)) = trial.range else { return Ok(()) };
    let filter = DecisionFilter { from: Some(from), to: Some(to), oldest_first: true, ..DecisionFilter::default() };
    let mut cursor = trial.cursor_seq;
    loop {
        let started = Instant::now();
        let page = inner.store.decisions(merchant, &filter, Some(cursor), PAGE).await?;
        let Some(last) = page.last().map(|d| d.seq) else {
            inner.store.end_trial(merchant, trial.id, TrialState::Completed, None).await?;
            return Ok(());
        };
        let mut batch = Vec::new();
        for decision in page.iter().filter(|d| d.rule_version.is_some()) {
            batch.extend(recorded(decision.seq, &decision.record)?);
        }
        let comparisons = compare(inner, trial, batch).await?;
        let count = comparisons.len() as u64;
        if !inner.store.add_comparisons(merchant, trial.id, &comparisons, last, 0).await? {
            return Ok(()); // cancelled
        }
        cursor = last;
        let busy = started.elapsed();
        inner.record("backtest", "compared", count, busy);
        pace(busy, inner.settings.share_percent).await;
    }
}

async fn compare(inner: &Inner, trial: &Trial, batch: Vec<Recorded>) -> Result<Vec<(i64, String)>, TrialError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let rule = inner.rules.prepared(trial.merchant, trial.version).await?;
    let params = inner.rules.version(trial.merchant, trial.version).await?.params;
    let contexts: Vec<RuleContext> = batch.iter().map(|r| r.ctx.clone()).collect();
    let evaluations = evaluate(inner.rules.sandbox(), &rule, &params, &contexts, Mode::Alone)
        .await
        .map_err(|e| crate::store::StoreError::Corrupt(format!("a recorded context the interface refuses: {e}")))?;
    Ok(batch
        .into_iter()
        .zip(evaluations)
        .map(|(r, evaluation)| {
            let comparison = r.compare(&evaluation);
            (comparison.seq, serde_json::to_string(&comparison).expect("a comparison serializes"))
        })
        .collect())
}
