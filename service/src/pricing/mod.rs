//! Pricing: turning a rule's decision into the price in force: guardrails, the decision
//! record, and the repricer that runs rules off the request path.

pub mod audit;
mod catalogue;
pub mod checkpoint;
pub mod context;
pub mod guardrails;
mod judge;
pub mod prior;
pub mod record;
pub mod replay;
pub mod repricer;

pub use guardrails::{Clip, Guarded, Situation, apply as apply_guardrails};
pub use record::DecisionRecord;
pub use repricer::{Repricer, Trigger};
