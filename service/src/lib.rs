//! The dynamic pricing service as a library: the `pricing` binary is a thin shell around it,
//! and the black-box tests start it in-process with [`startup::Application`].
//!
//! Layers, top to bottom (each module imports only from those below it; `scripts/check-layers`
//! enforces it):
//! - `api`: HTTP and nothing else, one file per resource;
//! - `audit`: the read side of the history (verify, checkpoints, replay);
//! - `engine`: repricing off the request path (queued work, batches, catalogue sweeps);
//! - `write`: the one owner of "commit, cache, publish, reprice" ([`write::Prices`]);
//! - `rules`: rule versions, the compiled-rule cache, evaluation, dry runs;
//! - `pricing`: pure pricing (guardrails, deciding, records, price events, contexts);
//! - `replication`, `cache`: replicas' fan-out, the checkout price cache;
//! - `sandbox`: the wasmtime host;
//! - `store`: persistence;
//! - `auth`, `domain`: keys and the types that parse; `config`, `telemetry`, `metrics` beside.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod metrics;
pub mod pricing;
pub mod replication;
pub mod rules;
pub mod runner;
pub mod sandbox;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod write;
