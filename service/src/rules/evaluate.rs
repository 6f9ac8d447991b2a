//! The one way the service evaluates a rule: contexts lowered into the guest's types with the
//! version's parameters, then run on a blocking thread, either as one call of the rule's batch
//! entry point (each context's result, fuel and log its own; see
//! [`Sandbox::evaluate_attributed`]) or each context alone. The engine, dry runs, replays and
//! the local runner all evaluate through [`evaluate`].

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::domain::Invalid;
use crate::sandbox::{Evaluation, PreparedRule, RuleContext, Sandbox};

/// How a list of contexts runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One call of the batch entry point for all (repricing): the cheapest. A context's fuel
    /// differs a little from the same context run alone, since the guest's allocator shares
    /// its heap with the rest of the batch.
    Batch,
    /// Each context on its own (dry runs, replays, the local runner): a context's fuel is the
    /// same on every run, whatever runs beside it.
    Alone,
}

/// Evaluates `rule` with `params` on each context, in order. A context the rule interface
/// cannot carry is refused before anything runs (its field named `contexts[i]`).
pub async fn evaluate(
    sandbox: &Arc<Sandbox>,
    rule: &PreparedRule,
    params: &Map<String, Value>,
    contexts: &[RuleContext],
    mode: Mode,
) -> Result<Vec<Evaluation>, Invalid> {
    if contexts.is_empty() {
        return Ok(Vec::new());
    }
    let mut invalid = Invalid::new();
    let guest: Vec<_> = contexts
        .iter()
        .enumerate()
        .filter_map(|(i, ctx)| ctx.to_guest(params).map_err(|e| invalid.absorb(&format!("contexts[{i}]"), e)).ok())
        .collect();
    if !invalid.is_empty() {
        return Err(invalid);
    }
    let (sandbox, rule) = (sandbox.clone(), rule.clone());
    Ok(tokio::task::spawn_blocking(move || match mode {
        Mode::Batch => sandbox.evaluate_attributed(&rule, &guest),
        Mode::Alone => guest.iter().map(|ctx| sandbox.evaluate(&rule, ctx)).collect(),
    })
    .await
    .expect("evaluation does not panic"))
}
