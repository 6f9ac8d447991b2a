//! `pricing rule replay`: a local build of a rule over decisions exported from the service
//! (`GET /v1/decisions/export?format=ndjson`), each through its recorded guardrails in its
//! recorded situation, as a backtest does; prints the decisions whose outcome, price, rule
//! price, failure or explanation differ, with both sides. The export is read line by line.
//!
//! Records that are no rule's evaluation (catalogue events, approvals, overrides) are
//! counted as passed over. Each decision runs with the parameters its record holds, unless
//! `--params` gives others (checked against the build's declared parameters, if it declares
//! any, with their defaults filled in).

use std::io::BufRead;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{RunError, parse_json, read};
use crate::config::SandboxSettings;
use crate::rules::{Mode, evaluate};
use crate::sandbox::Sandbox;
use crate::trials::backtest::{Recorded, recorded};
use crate::trials::report::Comparison;

/// Decisions evaluated at once.
const CHUNK: usize = 100;

#[derive(Debug, Default, Serialize)]
pub struct ReplaySummary {
    pub replayed: u64,
    pub same: u64,
    pub passed_over: u64,
    /// The decisions that differ, in the export's order.
    pub differences: Vec<Comparison>,
}

/// One difference, for people: both sides' outcome, price and explanation.
pub fn describe(c: &Comparison) -> String {
    let side = |s: &crate::trials::report::Side| {
        let what = match &s.error {
            Some(kind) => format!("failed: {kind}"),
            None => format!("{:?}", s.outcome).to_lowercase(),
        };
        format!("{} ({what}, {:?})", s.price_minor, s.explanation)
    };
    format!("decision {} {}: recorded {} -> local {}", c.seq, c.sku, side(&c.live), side(&c.candidate))
}

/// Replays `wasm` over the export at `decisions`.
pub async fn replay(
    settings: &SandboxSettings,
    wasm: &Path,
    decisions: &Path,
    params: Option<&Path>,
) -> Result<ReplaySummary, RunError> {
    let module = read(wasm)?;
    let sandbox = std::sync::Arc::new(Sandbox::new(settings)?);
    let compiled = sandbox.compile(&module).map_err(|e| RunError::Parse {
        path: wasm.display().to_string(),
        what: "rule",
        message: e.to_string(),
    })?;
    let given: Option<Map<String, Value>> = match params {
        Some(path) => {
            let object: Map<String, Value> = parse_json(path, "parameter object")?;
            Some(match &compiled.schema {
                Some(schema) => schema.validate(&object).map_err(|e| RunError::Parse {
                    path: path.display().to_string(),
                    what: "parameter object for this rule",
                    message: e.to_string(),
                })?,
                None => object,
            })
        }
        None => None,
    };
    let path = decisions.display().to_string();
    let file = std::fs::File::open(decisions).map_err(|source| RunError::Read { path: path.clone(), source })?;
    let mut summary = ReplaySummary::default();
    let mut chunk: Vec<Recorded> = Vec::with_capacity(CHUNK);
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| RunError::Read { path: path.clone(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| RunError::Parse {
            path: format!("{path}, line {}", index + 1),
            what: "exported decision",
            message,
        };
        let view: Value = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        let seq = view["seq"].as_i64().ok_or_else(|| bad("no `seq`".into()))?;
        let record = view.get("record").ok_or_else(|| bad("no `record`".into()))?.to_string();
        match recorded(seq, &record).map_err(|e| bad(e.to_string()))? {
            Some(decision) => chunk.push(decision),
            None => summary.passed_over += 1,
        }
        if chunk.len() == CHUNK {
            run_chunk(&sandbox, &compiled.rule, given.as_ref(), std::mem::take(&mut chunk), &mut summary).await?;
        }
    }
    run_chunk(&sandbox, &compiled.rule, given.as_ref(), chunk, &mut summary).await?;
    Ok(summary)
}

async fn run_chunk(
    sandbox: &std::sync::Arc<Sandbox>,
    rule: &crate::sandbox::PreparedRule,
    given: Option<&Map<String, Value>>,
    chunk: Vec<Recorded>,
    summary: &mut ReplaySummary,
) -> Result<(), RunError> {
    // Decisions made with the same parameters run together.
    let mut rest = chunk;
    while !rest.is_empty() {
        let params = given.cloned().unwrap_or_else(|| rest[0].params.clone());
        let (group, others): (Vec<Recorded>, Vec<Recorded>) =
            rest.into_iter().partition(|r| given.is_some() || r.params == params);
        rest = others;
        let contexts: Vec<_> = group.iter().map(|r| r.ctx.clone()).collect();
        let evaluations = evaluate(sandbox, rule, &params, &contexts, Mode::Alone).await.map_err(|e| {
            RunError::Parse { path: "the export".into(), what: "recorded context", message: e.to_string() }
        })?;
        for (decision, evaluation) in group.into_iter().zip(evaluations) {
            let comparison = decision.compare(&evaluation);
            summary.replayed += 1;
            if comparison.live == comparison.candidate {
                summary.same += 1;
            } else {
                summary.differences.push(comparison);
            }
        }
    }
    Ok(())
}
