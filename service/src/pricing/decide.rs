//! Deciding what one evaluation does to a price: the guardrails applied to the rule's price
//! in the product's situation, and the outcome. Pure: the repricer, dry runs and replays all
//! decide through [`decide`], so a replay runs the code path that made the decision.

use super::guardrails::{Clip, Situation, apply};
use crate::domain::{Guardrails, Outcome};
use crate::sandbox::{EvalError, RuleDecision};

/// What the host made of a rule's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub outcome: Outcome,
    /// The price in force after the decision (the current one unless it changed).
    pub new_price_minor: i64,
    /// Guardrails that changed the rule's price.
    pub clips: Vec<Clip>,
}

/// Decides on a rule's answer for a product whose price `current_minor` took effect at
/// `effective_at`: a failed evaluation keeps the price; otherwise the guardrails bound the
/// rule's price (or the current one, for "keep").
pub fn decide(result: &Result<RuleDecision, EvalError>, guardrails: &Guardrails, situation: Situation) -> Decided {
    match result {
        Ok(decision) => {
            let proposed = decision.price_minor.unwrap_or(situation.current_minor);
            let guarded = apply(guardrails, proposed, situation);
            let outcome = if guarded.price_minor != situation.current_minor { Outcome::Changed } else { Outcome::Kept };
            Decided { outcome, new_price_minor: guarded.price_minor, clips: guarded.clips }
        }
        Err(_) => Decided { outcome: Outcome::Failed, new_price_minor: situation.current_minor, clips: Vec::new() },
    }
}
