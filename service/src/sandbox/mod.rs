//! The sandbox that runs merchants' pricing rules: wasmtime with the component model.
//!
//! One [`Engine`] per process with the pooling allocator; a rule is compiled once, at upload
//! ([`Sandbox::compile`]), into an `InstancePre` ([`PreparedRule`]) and a serialized artifact
//! that a restart loads without recompiling ([`Sandbox::load`]). Each evaluation gets a fresh
//! `Store` with fuel (a deterministic stop), an epoch deadline (a wall-clock stop, ticked every
//! millisecond by a background thread), memory and table limits, and a bounded log. A trap
//! never escapes: it becomes an [`EvalError`] of its own kind. A batch of contexts runs in one
//! call of the rule's batch entry point, each context with its own fuel, deadline and log
//! ([`Sandbox::evaluate_attributed`]; the design is in `run.rs`).

mod batch;
mod bindings;
mod context;
mod encoding;
mod host;
mod outcome;
mod run;
mod schema;
mod upload;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use bindings::Context as GuestContext;
pub use context::{CompetitorOffer, Demand, OutputError, OutputLimits, RuleContext, RuleDecision, check_decision};
pub use outcome::{EvalError, EvalStats, Evaluation};
pub use upload::{CompiledRule, PreparedRule, UploadError};

use crate::config::SandboxSettings;
use host::HostState;

/// Tags a decision may carry, and their size.
pub const MAX_TAGS: usize = 16;
pub const MAX_TAG_BYTES: usize = 64;

/// Epoch ticks per millisecond of deadline: the ticker advances the epoch once a millisecond.
const TICK: Duration = Duration::from_millis(1);

#[derive(Debug, thiserror::Error)]
#[error("the rule sandbox cannot start: {0}")]
pub struct SandboxError(String);

pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    settings: SandboxSettings,
    ticker_stop: Arc<AtomicBool>,
}

impl Sandbox {
    pub fn new(settings: &SandboxSettings) -> Result<Self, SandboxError> {
        let slots = settings.instance_pool.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // A component made from a wit-bindgen module holds up to three core instances (the
        // module and the shims that lower `log`), one memory and two tables.
        pool.total_component_instances(slots)
            .total_core_instances(slots * 4)
            .total_memories(slots)
            .total_tables(slots * 3)
            .max_core_instances_per_component(4)
            .max_memories_per_component(1)
            .max_tables_per_component(3)
            .max_memories_per_module(1)
            .max_memory_size(settings.memory_bytes)
            .table_elements(settings.table_elements)
            // Reset a returned slot's first pages by zeroing them rather than unmapping them, so
            // the next instance does not page-fault its small heap back in: cheaper for rules,
            // which touch little memory.
            .linear_memory_keep_resident(256 << 10)
            .table_keep_resident(64 << 10);
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(settings.stack_bytes)
            .wasm_multi_memory(false)
            .memory_reservation(settings.memory_bytes as u64)
            .memory_reservation_for_growth(0)
            .memory_guard_size(64 * 1024)
            // Replays must decide as the original run did, on any machine: NaNs come out in
            // one canonical form, and relaxed SIMD takes its deterministic semantics.
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| SandboxError(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker).map_err(|e| SandboxError(format!("{e:#}")))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        start_epoch_ticker(engine.clone(), ticker_stop.clone());
        Ok(Self { engine, linker, settings: settings.clone(), ticker_stop })
    }

    pub fn settings(&self) -> &SandboxSettings {
        &self.settings
    }

    fn output_limits(&self) -> OutputLimits {
        OutputLimits {
            explanation_bytes: self.settings.explanation_bytes,
            max_tags: MAX_TAGS,
            tag_bytes: MAX_TAG_BYTES,
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Advances the engine's epoch every millisecond, so a deadline of N ms is N ticks.
fn start_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("rule-epoch-ticker".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                engine.increment_epoch();
            }
        })
        .expect("a thread for the epoch ticker starts");
}
