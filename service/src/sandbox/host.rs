//! The host's side of a rule's store: resource limits, the bounded log, and the two imports
//! (`log` and `begin-context`), which are defined by hand rather than through the generated
//! bindings because `begin-context` must read and reset the store's fuel and deadline, which
//! a generated host trait (`&mut self` only) cannot reach.

use std::time::Instant;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{ResourceLimiter, StoreContextMut};

use super::bindings;
use super::outcome::EvalStats;

/// The interface's import names, as the component model and wit-bindgen's core modules
/// spell them.
pub(super) const LOG_IMPORT: &str = "log";
pub(super) const BEGIN_IMPORT: &str = "begin-context";

/// A store's data: the limiter, the log of the context (or call) in progress, and, for a
/// rule that marks its contexts, their accounting.
pub struct HostState {
    pub(super) limiter: RuleLimiter,
    pub(super) log: String,
    pub(super) log_limit: usize,
    pub(super) log_overflowed: bool,
    /// Present while a call of a marking rule is attributed context by context; absent, a
    /// `begin-context` is ignored (the whole call is one evaluation).
    pub(super) marks: Option<Marks>,
}

pub(super) struct RuleLimiter {
    pub(super) memory_bytes: usize,
    pub(super) table_elements: usize,
    pub(super) peak_memory: usize,
    pub(super) exceeded: Option<&'static str>,
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

/// Fuel and epoch ticks granted at once.
#[derive(Clone, Copy)]
pub(super) struct Allowance {
    pub(super) fuel: u64,
    pub(super) ticks: u64,
}

/// The accounting of one call that covers `count` contexts: the guest must announce 0, 1, ...,
/// `count` in order (the last meaning "done"); each announcement closes the previous
/// context's span and grants the next one a fresh allowance.
pub(super) struct Marks {
    count: u32,
    next: u32,
    per_context: Allowance,
    /// For the work outside any context, before the first mark (taking the inputs in) and
    /// after the last (handing the answers back), both together: what the first part leaves
    /// is all the second gets.
    outside: Allowance,
    span_fuel: u64,
    span_started: Instant,
    spans: Vec<EvalStats>,
    pub(super) violation: Option<String>,
}

impl Marks {
    pub(super) fn new(count: usize, per_context: Allowance, outside: Allowance) -> Self {
        Self {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            next: 0,
            per_context,
            outside,
            span_fuel: outside.fuel,
            span_started: Instant::now(),
            spans: Vec::with_capacity(count),
            violation: None,
        }
    }

    /// The index of the context in progress, if the guest is inside one.
    pub(super) fn current(&self) -> Option<u32> {
        (self.next > 0 && self.next <= self.count).then(|| self.next - 1)
    }

    /// What the context in progress has cost so far (after a trap in it).
    pub(super) fn partial(&self, remaining_fuel: u64, state_log: &str, peak_memory: usize) -> EvalStats {
        EvalStats {
            fuel_used: self.span_fuel.saturating_sub(remaining_fuel),
            peak_memory_bytes: peak_memory,
            wall_time_us: self.span_started.elapsed(),
            log: state_log.to_owned(),
        }
    }

    /// Each context's cost once the call has returned, or why the marks do not add up.
    pub(super) fn finish(self) -> Result<Vec<EvalStats>, String> {
        if self.next != self.count + 1 {
            return Err(format!("the rule marked {} of the {} contexts and their end", self.next, self.count));
        }
        Ok(self.spans)
    }
}

/// Defines the interface's imports in `linker`.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    bindings::pricing::policy::types::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    bindings::params_interface::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    let mut root = linker.root();
    root.func_wrap(LOG_IMPORT, |mut store: StoreContextMut<'_, HostState>, (message,): (String,)| {
        log(store.data_mut(), &message)
    })?;
    root.func_wrap(BEGIN_IMPORT, |store: StoreContextMut<'_, HostState>, (index,): (u32,)| {
        begin_context(store, index)
    })?;
    Ok(())
}

/// The `types` interface has only types; its host trait is empty.
impl bindings::pricing::policy::types::Host for HostState {}
impl bindings::params_interface::Host for HostState {}

fn log(state: &mut HostState, message: &str) -> wasmtime::Result<()> {
    let needed = state.log.len() + message.len() + usize::from(!state.log.is_empty());
    if needed > state.log_limit {
        state.log_overflowed = true;
        return Err(wasmtime::Error::msg("log limit reached"));
    }
    if !state.log.is_empty() {
        state.log.push('\n');
    }
    state.log.push_str(message);
    Ok(())
}

/// Closes the previous context's span (its fuel, memory, time and log) and opens the next
/// with a fresh allowance. A mark out of sequence stops the call: its answers could not be
/// told apart, so the caller treats the whole call as invalid.
fn begin_context(mut store: StoreContextMut<'_, HostState>, index: u32) -> wasmtime::Result<()> {
    let remaining = store.get_fuel()?;
    let state = store.data_mut();
    let Some(marks) = state.marks.as_mut() else {
        return Ok(()); // not attributing this call: the mark means nothing
    };
    if index != marks.next || index > marks.count {
        let violation =
            format!("the rule marked context {index} where {} was due (of {} contexts)", marks.next, marks.count);
        marks.violation = Some(violation.clone());
        return Err(wasmtime::Error::msg(violation));
    }
    if index > 0 {
        marks.spans.push(EvalStats {
            fuel_used: marks.span_fuel.saturating_sub(remaining),
            peak_memory_bytes: state.limiter.peak_memory,
            wall_time_us: marks.span_started.elapsed(),
            log: std::mem::take(&mut state.log),
        });
    } else {
        // Lines written before the first context belong to none of them.
        state.log.clear();
        let spent_ticks = marks.span_started.elapsed().as_millis().div_ceil(super::TICK.as_millis().max(1)) as u64;
        marks.outside = Allowance { fuel: remaining, ticks: marks.outside.ticks.saturating_sub(spent_ticks).max(1) };
    }
    marks.next += 1;
    let grant = if index < marks.count { marks.per_context } else { marks.outside };
    marks.span_fuel = grant.fuel;
    marks.span_started = Instant::now();
    store.set_fuel(grant.fuel)?;
    store.set_epoch_deadline(grant.ticks);
    Ok(())
}
