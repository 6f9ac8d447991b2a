//! `pricing rule run`: what the service would do with a rule, on an author's machine. The
//! rule is checked and compiled exactly as at upload and evaluated with the same sandbox and
//! limits (from the same settings), and the report shows the decision or the failure with its
//! kind, the fuel used, peak memory, wall time and the rule's log.

pub mod replay;

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::SandboxSettings;
use crate::sandbox::{EvalStats, RuleContext, RuleDecision, Sandbox};

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub decision: Option<RuleDecision>,
    pub error: Option<RunFailure>,
    pub compile_ms: u128,
    #[serde(flatten)]
    pub stats: EvalStats,
}

#[derive(Debug, Serialize)]
pub struct RunFailure {
    /// `refused` at upload, or the evaluation error's kind (`timeout`, `out_of_fuel`, ...).
    pub kind: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a valid {what}: {message}")]
    Parse { path: String, what: &'static str, message: String },
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
}

fn read(path: &Path) -> Result<Vec<u8>, RunError> {
    std::fs::read(path).map_err(|source| RunError::Read { path: path.display().to_string(), source })
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, RunError> {
    serde_json::from_slice(&read(path)?).map_err(|e| RunError::Parse {
        path: path.display().to_string(),
        what,
        message: e.to_string(),
    })
}

/// Runs the rule once, offers without `stale` judged against `stale_after_secs` (the service's
/// `pricing.stale_after_secs`). `Ok` holds the report whether the rule decided or failed.
pub async fn run(
    settings: &SandboxSettings,
    wasm: &Path,
    input: &Path,
    params: Option<&Path>,
    stale_after_secs: u64,
) -> Result<RunReport, RunError> {
    let module = read(wasm)?;
    let mut context: RuleContext = parse_json(input, "rule context")?;
    context.judge_staleness(stale_after_secs);
    let params: Map<String, Value> = match params {
        Some(path) => parse_json(path, "parameter object")?,
        None => Map::new(),
    };
    let sandbox = std::sync::Arc::new(Sandbox::new(settings)?);
    let compiled = match sandbox.compile(&module) {
        Ok(compiled) => compiled,
        Err(e) => {
            return Ok(RunReport {
                decision: None,
                error: Some(RunFailure { kind: "refused".into(), message: e.to_string() }),
                compile_ms: 0,
                stats: EvalStats::default(),
            });
        }
    };
    let evaluation = crate::rules::evaluate(
        &sandbox,
        &compiled.rule,
        &params,
        std::slice::from_ref(&context),
        crate::rules::Mode::Alone,
    )
    .await
    .map_err(|e| RunError::Parse { path: input.display().to_string(), what: "rule context", message: e.to_string() })?
    .pop()
    .expect("one evaluation per context");
    let (decision, error) = match evaluation.result {
        Ok(decision) => (Some(decision), None),
        Err(e) => (None, Some(RunFailure { kind: e.kind().into(), message: e.to_string() })),
    };
    Ok(RunReport { decision, error, compile_ms: compiled.compile_time.as_millis(), stats: evaluation.stats })
}
