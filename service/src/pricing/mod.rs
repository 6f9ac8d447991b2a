//! Pricing: turning a rule's decision into the price in force (guardrails now; context
//! assembly and repricing as the pipeline grows).

pub mod guardrails;

pub use guardrails::{Clip, Guarded, Situation, apply as apply_guardrails};
