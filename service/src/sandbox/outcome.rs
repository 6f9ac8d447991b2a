//! What an evaluation gives: a checked decision or the kind of failure, and its cost.

use std::time::Duration;

use super::context::{OutputError, RuleDecision};

/// Why an evaluation produced no decision. Each kind is distinct so that the history and the
/// metrics can say what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("the rule ran past its deadline of {0} ms")]
    Timeout(u64),
    #[error("the rule used up its fuel ({0} units)")]
    OutOfFuel(u64),
    #[error("the rule tried to grow its {0} past the limit")]
    OutOfMemory(&'static str),
    #[error("the rule overflowed its stack")]
    StackOverflow,
    #[error("the rule panicked (reached `unreachable`)")]
    GuestPanic,
    #[error("the rule trapped: {0}")]
    Trap(String),
    #[error("the rule's answer was refused: {0}")]
    InvalidOutput(String),
    #[error("the rule's output is too large: {0}")]
    OutputTooLarge(String),
    #[error("the rule sandbox is at capacity; try again")]
    Busy,
    /// The stored inputs could not be handed to the rule (a value the interface cannot
    /// carry); the rule did not run.
    #[error("the product's context cannot be given to the rule: {0}")]
    InvalidInput(String),
}

impl EvalError {
    /// A stable snake_case name, for error codes, history records and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            EvalError::Timeout(_) => "timeout",
            EvalError::OutOfFuel(_) => "out_of_fuel",
            EvalError::OutOfMemory(_) => "out_of_memory",
            EvalError::StackOverflow => "stack_overflow",
            EvalError::GuestPanic => "guest_panic",
            EvalError::Trap(_) => "trap",
            EvalError::InvalidOutput(_) => "invalid_output",
            EvalError::OutputTooLarge(_) => "output_too_large",
            EvalError::Busy => "busy",
            EvalError::InvalidInput(_) => "invalid_input",
        }
    }
}

impl From<OutputError> for EvalError {
    fn from(e: OutputError) -> Self {
        match e {
            OutputError::Invalid(message) => EvalError::InvalidOutput(message),
            OutputError::TooLarge(message) => EvalError::OutputTooLarge(message),
        }
    }
}

/// What an evaluation cost, whatever its outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct EvalStats {
    pub fuel_used: u64,
    pub peak_memory_bytes: usize,
    #[serde(serialize_with = "micros")]
    #[schema(value_type = u64)]
    pub wall_time_us: Duration,
    /// What the rule logged (at most the log allowance).
    pub log: String,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

/// One evaluation's outcome and cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub result: Result<RuleDecision, EvalError>,
    pub stats: EvalStats,
}

impl Evaluation {
    /// An evaluation that failed before the rule ran (it cost nothing).
    pub fn failed(error: EvalError) -> Self {
        Self { result: Err(error), stats: EvalStats::default() }
    }
}
