//! Evaluating a rule: a `Store` with fuel, an epoch deadline, memory and table limits and a
//! bounded log; every way a guest can fail becomes an [`EvalError`] of its own kind, and every
//! answer is checked by the host before anyone sees it.
//!
//! # Attribution: one context's cost, whichever entry point ran it
//!
//! A decision record holds the log and the fuel of its own context, so a batch can only be
//! used if the host can split one `evaluate-batch` call into contexts. The SDK does that by
//! calling the interface's `begin-context(i)` before context `i` and `begin-context(n)` after
//! the last (see `host.rs`). At each mark the host closes the previous context's span (fuel
//! used, peak memory, wall time, log) and grants the next one a full evaluation's fuel,
//! deadline and log allowance, so a context in a batch is bounded as if it ran alone. The
//! SDK's `evaluate` runs its one context through the same loop, and the host measures marking
//! rules by their span everywhere (here, [`Sandbox::evaluate_many`] and the batch in
//! `batch.rs`): a context's log and decision are the same in a dry run, the local runner and
//! the repricer, batch or not, and so is its fuel, except that inside a batch the guest's
//! allocator works on a heap that also holds the rest of the batch (measured with
//! competitor-match: up to a fifth for one context, under 5 % over a whole batch). The work
//! of taking the batch in and handing the answers back is no context's: it is bounded by the
//! batch's allowance and recorded nowhere.
//!
//! The mark is an import that older rules do not have: a component that does not import it
//! (rules built before it, hand-written ones) still loads, since a linker may define more
//! than a component imports, and is evaluated one context per call as before
//! ([`Sandbox::evaluate_many`]), its fuel being that of the whole call. A guest that marks
//! out of order, out of range, or not every context makes its call invalid (`invalid_output`);
//! a guest that marks in order but at the wrong moments misattributes only its own costs,
//! and each span is still bounded by one evaluation's allowance.
//!
//! When a batch call fails as a whole (a trap, a timeout, a bad mark, the wrong number of
//! decisions), the host cannot tell which decisions were good, so it runs that batch's
//! contexts again one per call ([`Sandbox::evaluate_many`], a fresh instance after a trap):
//! one bad SKU costs its neighbours some time, never their decisions, and gets its own
//! failure kind. The batch's `list<decision>` has no per-entry error (a failing context traps
//! the guest), so changing it would have broken every built rule; the host's check of each
//! answer still fails only its own entry.

use std::time::Instant;

use wasmtime::{PoolConcurrencyLimitError, Store, Trap};

use super::bindings::{self, EncodedPolicy, Policy};
use super::context::check_decision;
use super::encoding::encode;
use super::host::{Allowance, HostState, Marks, RuleLimiter};
use super::outcome::{EvalError, EvalStats, Evaluation};
use super::{PreparedRule, Sandbox};

impl Sandbox {
    /// Evaluates one context on a fresh instance.
    pub fn evaluate(&self, rule: &PreparedRule, ctx: &bindings::Context) -> Evaluation {
        let started = Instant::now();
        match self.instantiate(rule, 1) {
            Ok((mut store, policy)) => self.call_evaluate(rule, &mut store, &policy, ctx, started).0,
            Err((error, stats)) => Evaluation { result: Err(error), stats },
        }
    }

    /// Evaluates each context with its own call, fuel, deadline and log, reusing one instance
    /// for the whole sequence: every result is attributable to its context, as a decision record
    /// needs. An instance that traps cannot be entered again, so the next context gets a
    /// fresh one. (A rule that keeps state between calls can tell the contexts apart; replay
    /// on a fresh instance is what exposes that.)
    pub fn evaluate_many(&self, rule: &PreparedRule, ctxs: &[bindings::Context]) -> Vec<Evaluation> {
        let mut live: Option<(Store<HostState>, Instance)> = None;
        let mut evaluations = Vec::with_capacity(ctxs.len());
        for ctx in ctxs {
            let started = Instant::now();
            let (mut store, policy) = match live.take().map_or_else(|| self.instantiate(rule, 1), Ok) {
                Ok(instance) => instance,
                Err((error, stats)) => {
                    evaluations.push(Evaluation { result: Err(error), stats });
                    continue;
                }
            };
            let (evaluation, reusable) = self.call_evaluate(rule, &mut store, &policy, ctx, started);
            if reusable {
                live = Some((store, policy));
            }
            evaluations.push(evaluation);
        }
        evaluations
    }

    /// One call of `evaluate` with a full allowance, whatever instantiation or earlier calls
    /// used; says whether the instance may be entered again (it may not after a trap).
    fn call_evaluate(
        &self,
        rule: &PreparedRule,
        store: &mut Store<HostState>,
        policy: &Instance,
        ctx: &bindings::Context,
        started: Instant,
    ) -> (Evaluation, bool) {
        let settings = &self.settings;
        let allowance = self.allowance(1);
        store.set_fuel(allowance.fuel).expect("fuel is enabled on the engine");
        store.set_epoch_deadline(allowance.ticks);
        let state = store.data_mut();
        state.log.clear();
        state.log_overflowed = false;
        state.log_limit = settings.log_bytes;
        state.marks = rule.marks_contexts.then(|| Marks::new(1, allowance, allowance));
        let outcome = policy.call_one(&mut *store, ctx);
        let remaining = store.get_fuel().unwrap_or(0);
        let whole_call = |state: &mut HostState| EvalStats {
            fuel_used: allowance.fuel - remaining,
            peak_memory_bytes: state.limiter.peak_memory,
            wall_time_us: started.elapsed(),
            log: std::mem::take(&mut state.log),
        };
        match outcome {
            Ok(decision) => {
                let state = store.data_mut();
                let (marked, stats) = match state.marks.take().map(Marks::finish) {
                    None => (Ok(()), whole_call(state)),
                    Some(Ok(mut spans)) => (Ok(()), spans.pop().expect("one span per context")),
                    Some(Err(why)) => (Err(EvalError::InvalidOutput(why)), whole_call(state)),
                };
                let limits = self.output_limits();
                let result =
                    marked.and_then(|()| check_decision(decision, &ctx.currency, &limits).map_err(EvalError::from));
                (Evaluation { result, stats }, true)
            }
            Err(e) => {
                let error = classify(e, store, allowance.fuel, settings.deadline_ms, Phase::Call);
                let state = store.data_mut();
                let stats = match state.marks.take() {
                    Some(marks) if marks.current().is_some() => {
                        marks.partial(remaining, &state.log, state.limiter.peak_memory)
                    }
                    _ => whole_call(state),
                };
                (Evaluation { result: Err(error), stats }, false)
            }
        }
    }

    /// A fresh instance with the allowance of `evaluations` evaluations for its start-up.
    pub(super) fn instantiate(
        &self,
        rule: &PreparedRule,
        evaluations: u64,
    ) -> Result<(Store<HostState>, Instance), (EvalError, EvalStats)> {
        let started = Instant::now();
        let allowance = self.allowance(evaluations);
        let mut store = self.new_store(self.settings.log_bytes);
        store.set_fuel(allowance.fuel).expect("fuel is enabled on the engine");
        store.set_epoch_deadline(allowance.ticks);
        let instance = match &rule.encoded {
            Some(pre) => pre.instantiate(&mut store).map(Instance::Encoded),
            None => rule.pre.instantiate(&mut store).map(Instance::Lowered),
        };
        match instance {
            Ok(instance) => Ok((store, instance)),
            Err(e) => {
                let deadline_ms = self.settings.deadline_ms.saturating_mul(evaluations);
                let error = classify(e, &store, allowance.fuel, deadline_ms, Phase::Instantiate);
                Err((error, stats_of(store, allowance.fuel, started)))
            }
        }
    }

    /// The fuel and deadline of `evaluations` evaluations.
    /// What a batch call of `contexts` may spend outside its contexts (taking the inputs in
    /// before the first mark and handing the answers back after the last, together): one
    /// evaluation's allowance and a 64th of one per context. Lifting a context costs far less
    /// than that; a rule cannot hide work there.
    pub(super) fn outside_allowance(&self, contexts: u64) -> Allowance {
        let share = |per_evaluation: u64| per_evaluation.saturating_mul(64 + contexts) / 64;
        Allowance { fuel: share(self.settings.fuel_per_evaluation), ticks: ticks(share(self.settings.deadline_ms)) }
    }

    pub(super) fn allowance(&self, evaluations: u64) -> Allowance {
        Allowance {
            fuel: self.settings.fuel_per_evaluation.saturating_mul(evaluations),
            ticks: ticks(self.settings.deadline_ms.saturating_mul(evaluations)),
        }
    }

    pub(super) fn new_store(&self, log_limit: usize) -> Store<HostState> {
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
            marks: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store
    }
}

/// A rule's instance, and the entry point the host hands it contexts through.
pub(super) enum Instance {
    /// A rule built for 1.0.0 or 1.1.0: contexts lowered as the interface's records
    /// (`evaluate`, `evaluate-batch`).
    Lowered(Policy),
    /// A rule built for 1.2.0: contexts in one buffer (`evaluate-encoded`, see `encoding.rs`),
    /// for one context as for many, so a context costs the rule the same either way.
    Encoded(EncodedPolicy),
}

impl Instance {
    pub(super) fn call_one(
        &self,
        store: &mut Store<HostState>,
        ctx: &bindings::Context,
    ) -> wasmtime::Result<bindings::Decision> {
        match self {
            Instance::Lowered(policy) => policy.call_evaluate(store, ctx),
            Instance::Encoded(_) => {
                let mut decisions = self.call_batch(store, std::slice::from_ref(ctx))?;
                match (decisions.pop(), decisions.is_empty()) {
                    (Some(decision), true) => Ok(decision),
                    _ => Err(wasmtime::Error::msg(format!("{} decisions for 1 context", decisions.len() + 1))),
                }
            }
        }
    }

    pub(super) fn call_batch(
        &self,
        store: &mut Store<HostState>,
        ctxs: &[bindings::Context],
    ) -> wasmtime::Result<Vec<bindings::Decision>> {
        match self {
            Instance::Lowered(policy) => policy.call_evaluate_batch(store, ctxs),
            Instance::Encoded(policy) => policy.call_evaluate_encoded(store, &encode(ctxs)),
        }
    }
}

/// Epoch ticks for a deadline in milliseconds (at least one).
fn ticks(deadline_ms: u64) -> u64 {
    deadline_ms.div_ceil(super::TICK.as_millis() as u64).max(1)
}

/// The cost of a store's whole life, which began at `started` with `fuel`.
pub(super) fn stats_of(store: Store<HostState>, fuel: u64, started: Instant) -> EvalStats {
    let remaining = store.get_fuel().unwrap_or(0);
    let state = store.into_data();
    EvalStats {
        fuel_used: fuel.saturating_sub(remaining),
        peak_memory_bytes: state.limiter.peak_memory,
        wall_time_us: started.elapsed(),
        log: state.log,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Instantiate,
    Call,
}

/// Names what stopped a guest. The host's own limits are checked first: a guest stopped by
/// the memory limiter, the log allowance or a bad context mark traps with a host error, not
/// a wasm trap code.
pub(super) fn classify(
    error: wasmtime::Error,
    store: &Store<HostState>,
    fuel: u64,
    deadline_ms: u64,
    phase: Phase,
) -> EvalError {
    let state = store.data();
    if let Some(violation) = state.marks.as_ref().and_then(|m| m.violation.clone()) {
        return EvalError::InvalidOutput(violation);
    }
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
        // The pooling allocator has no free slot: the service is busy, not the rule at fault.
        None if error.downcast_ref::<PoolConcurrencyLimitError>().is_some() => EvalError::Busy,
        None if phase == Phase::Instantiate => EvalError::Trap(format!("{error:#}")),
        // Not a trap during the call: the guest's answer could not be read (a bad variant
        // tag, a string out of bounds or not UTF-8, ...).
        None => EvalError::InvalidOutput(format!("{error:#}")),
    }
}
