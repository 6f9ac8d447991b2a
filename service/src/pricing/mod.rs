//! Pricing's own rules, pure: the guardrails, deciding on a rule's answer, the decision's
//! record, the catalogue's price events, and a rule's context built from signals already
//! read. Everything that evaluates or decides (the engine, dry runs, replays) comes here.

pub mod breaker;
pub mod context;
pub mod decide;
pub mod events;
pub mod guardrails;
pub mod judged;
pub mod plausible;
pub mod prior;
pub mod record;

pub use decide::{Decided, decide};
pub use guardrails::{Clip, Guarded, Situation, apply as apply_guardrails};
pub use judged::Judged;
pub use record::{DecisionRecord, Hold, OverrideNote, Resolution};
