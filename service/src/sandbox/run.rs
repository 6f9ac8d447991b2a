//! Evaluating a rule: a fresh `Store` per call with fuel, an epoch deadline, memory and table
//! limits and a bounded log; every way a guest can fail becomes an [`EvalError`] of its own
//! kind, and every answer is checked by the host before anyone sees it.

use std::time::Instant;

use wasmtime::{ResourceLimiter, Store, Trap};

use super::bindings::{self, Policy, PolicyImports};
use super::context::{RuleDecision, check_decision};
use super::outcome::{EvalError, EvalStats, Evaluation};
use super::{PreparedRule, Sandbox};

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
