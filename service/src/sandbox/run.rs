//! Evaluating a rule: a fresh `Store` per call with fuel, an epoch deadline, memory and table
//! limits and a bounded log; every way a guest can fail becomes an [`EvalError`] of its own
//! kind, and every answer is checked by the host before anyone sees it.

use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, Trap};

use super::bindings::{self, Policy, PolicyImports};
use super::context::{OutputError, RuleDecision, check_decision};
use super::{PreparedRule, Sandbox};

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

/// A store's data: the limiter and the log of one evaluation (or one batch).
pub struct HostState {
    limiter: RuleLimiter,
    log: String,
    log_limit: usize,
    log_overflowed: bool,
}

struct RuleLimiter {
    memory_bytes: usize,
    table_elements: usize,
    peak_memory: usize,
    exceeded: Option<&'static str>,
}

impl ResourceLimiter for RuleLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.exceeded = Some("memory");
            // Trapping (rather than failing the grow) stops a guest that ignores the failure.
            return Err(wasmtime::Error::msg("memory limit reached"));
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.exceeded = Some("table");
            return Err(wasmtime::Error::msg("table limit reached"));
        }
        Ok(true)
    }
}

/// The `types` interface has only types; its host trait is empty.
impl bindings::pricing::policy::types::Host for HostState {}

impl PolicyImports for HostState {
    fn log(&mut self, message: String) -> wasmtime::Result<()> {
        let needed = self.log.len() + message.len() + usize::from(!self.log.is_empty());
        if needed > self.log_limit {
            self.log_overflowed = true;
            return Err(wasmtime::Error::msg("log limit reached"));
        }
        if !self.log.is_empty() {
            self.log.push('\n');
        }
        self.log.push_str(&message);
        Ok(())
    }
}

impl Sandbox {
    /// Evaluates one context.
    pub fn evaluate(&self, rule: &PreparedRule, ctx: &bindings::Context) -> Evaluation {
        let (result, stats) = self.run(rule, 1, |policy, store| policy.call_evaluate(store, ctx));
        let limits = self.output_limits();
        let result = result.and_then(|d| check_decision(d, &ctx.currency, &limits).map_err(EvalError::from));
        Evaluation { result, stats }
    }

    /// Evaluates many contexts in one call of the rule's batch entry point, with the fuel,
    /// time and log allowance of that many evaluations. A trap fails the whole batch; a
    /// refused answer fails only its own entry. The log covers the whole batch.
    pub fn evaluate_batch(
        &self,
        rule: &PreparedRule,
        ctxs: &[bindings::Context],
    ) -> (Result<Vec<Result<RuleDecision, EvalError>>, EvalError>, EvalStats) {
        let n = ctxs.len().max(1) as u64;
        let (result, stats) = self.run(rule, n, |policy, store| policy.call_evaluate_batch(store, ctxs));
        let limits = self.output_limits();
        let result = result.and_then(|decisions| {
            if decisions.len() != ctxs.len() {
                return Err(EvalError::InvalidOutput(format!(
                    "{} decisions for {} contexts",
                    decisions.len(),
                    ctxs.len()
                )));
            }
            Ok(decisions
                .into_iter()
                .zip(ctxs)
                .map(|(d, ctx)| check_decision(d, &ctx.currency, &limits).map_err(EvalError::from))
                .collect())
        });
        (result, stats)
    }

    /// Evaluates each context with its own fuel, deadline and log, reusing one instance for
    /// the whole sequence: every result is attributable to its context, as a decision record
    /// needs. An instance that traps cannot be entered again, so the next context gets a
    /// fresh one. (A rule that keeps state between calls can tell the contexts apart; replay
    /// on a fresh instance is what exposes that.)
    pub fn evaluate_many(&self, rule: &PreparedRule, ctxs: &[bindings::Context]) -> Vec<Evaluation> {
        let settings = &self.settings;
        let limits = self.output_limits();
        let mut live: Option<(Store<HostState>, Policy)> = None;
        let mut evaluations = Vec::with_capacity(ctxs.len());
        for ctx in ctxs {
            let started = Instant::now();
            let (mut store, policy) = match live.take() {
                Some(instance) => instance,
                None => {
                    let mut store = self.new_store(settings.log_bytes);
                    store.set_fuel(settings.fuel_per_evaluation).expect("fuel is enabled on the engine");
                    store.set_epoch_deadline(ticks(settings.deadline_ms));
                    match rule.pre.instantiate(&mut store) {
                        Ok(policy) => (store, policy),
                        Err(e) => {
                            let error = classify(
                                e,
                                &store,
                                settings.fuel_per_evaluation,
                                settings.deadline_ms,
                                Phase::Instantiate,
                            );
                            evaluations.push(Evaluation {
                                result: Err(error),
                                stats: stats_of(store, settings.fuel_per_evaluation, started),
                            });
                            continue;
                        }
                    }
                }
            };
            // Each call starts with a full allowance, whatever instantiation or earlier calls used.
            store.set_fuel(settings.fuel_per_evaluation).expect("fuel is enabled on the engine");
            store.set_epoch_deadline(ticks(settings.deadline_ms));
            let state = store.data_mut();
            state.log.clear();
            state.log_overflowed = false;
            let outcome = policy.call_evaluate(&mut store, ctx);
            let remaining = store.get_fuel().unwrap_or(0);
            let stats = EvalStats {
                fuel_used: settings.fuel_per_evaluation - remaining,
                peak_memory_bytes: store.data().limiter.peak_memory,
                wall_time_us: started.elapsed(),
                log: std::mem::take(&mut store.data_mut().log),
            };
            let result = match outcome {
                Ok(decision) => {
                    live = Some((store, policy));
                    check_decision(decision, &ctx.currency, &limits).map_err(EvalError::from)
                }
                Err(e) => Err(classify(e, &store, settings.fuel_per_evaluation, settings.deadline_ms, Phase::Call)),
            };
            evaluations.push(Evaluation { result, stats });
        }
        evaluations
    }

    fn new_store(&self, log_limit: usize) -> Store<HostState> {
        let state = HostState {
            limiter: RuleLimiter {
                memory_bytes: self.settings.memory_bytes,
                table_elements: self.settings.table_elements,
                peak_memory: 0,
                exceeded: None,
            },
            log: String::new(),
            log_limit,
            log_overflowed: false,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store
    }

    /// Instantiates `rule` in a fresh store with the limits of `evaluations` evaluations and
    /// runs `call` against it.
    fn run<R>(
        &self,
        rule: &PreparedRule,
        evaluations: u64,
        call: impl FnOnce(&Policy, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> (Result<R, EvalError>, EvalStats) {
        let started = Instant::now();
        let settings = &self.settings;
        let fuel = settings.fuel_per_evaluation.saturating_mul(evaluations);
        let deadline_ms = settings.deadline_ms.saturating_mul(evaluations);
        let mut store = self.new_store(settings.log_bytes.saturating_mul(evaluations as usize));
        store.set_fuel(fuel).expect("fuel is enabled on the engine");
        store.set_epoch_deadline(ticks(deadline_ms));
        let result = match rule.pre.instantiate(&mut store) {
            Ok(policy) => call(&policy, &mut store).map_err(|e| classify(e, &store, fuel, deadline_ms, Phase::Call)),
            Err(e) => Err(classify(e, &store, fuel, deadline_ms, Phase::Instantiate)),
        };
        (result, stats_of(store, fuel, started))
    }
}

/// Epoch ticks for a deadline in milliseconds (at least one).
fn ticks(deadline_ms: u64) -> u64 {
    deadline_ms.div_ceil(super::TICK.as_millis() as u64).max(1)
}

/// The cost of a store's whole life, which began at `started` with `fuel`.
fn stats_of(store: Store<HostState>, fuel: u64, started: Instant) -> EvalStats {
    let remaining = store.get_fuel().unwrap_or(0);
    let state = store.into_data();
    EvalStats {
        fuel_used: fuel - remaining,
        peak_memory_bytes: state.limiter.peak_memory,
        wall_time_us: started.elapsed(),
        log: state.log,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Instantiate,
    Call,
}

/// Names what stopped a guest. The host's own limits are checked first: a guest stopped by
/// the memory limiter or the log allowance traps with a host error, not a wasm trap code.
fn classify(error: wasmtime::Error, store: &Store<HostState>, fuel: u64, deadline_ms: u64, phase: Phase) -> EvalError {
    let state = store.data();
    if let Some(what) = state.limiter.exceeded {
        return EvalError::OutOfMemory(what);
    }
    if state.log_overflowed {
        return EvalError::OutputTooLarge(format!("the log is limited to {} bytes", state.log_limit));
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => EvalError::OutOfFuel(fuel),
        Some(Trap::Interrupt) => EvalError::Timeout(deadline_ms),
        Some(Trap::StackOverflow) => EvalError::StackOverflow,
        Some(Trap::UnreachableCodeReached) => EvalError::GuestPanic,
        Some(trap) => EvalError::Trap(trap.to_string()),
        None if phase == Phase::Instantiate && format!("{error:#}").contains("concurrent") => EvalError::Busy,
        None if phase == Phase::Instantiate => EvalError::Trap(format!("{error:#}")),
        // Not a trap during the call: the guest's answer could not be read (a bad variant
        // tag, a string out of bounds or not UTF-8, ...).
        None => EvalError::InvalidOutput(format!("{error:#}")),
    }
}
