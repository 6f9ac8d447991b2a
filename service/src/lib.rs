//! The dynamic pricing service as a library: the `pricing` binary is a thin shell around it,
//! and the black-box tests start it in-process with [`startup::Application`].
//!
//! Layers, top to bottom (each module imports only from those below it or beside it, without
//! cycles, and only `api` and the shell above it use actix; `scripts/check-layers` enforces it):
//! - `cli`, `startup`, `runner`: the shell (the command line, the wiring, `pricing rule run`);
//! - `api`: HTTP and nothing else, one file per resource; `api::access` admits callers;
//! - `feeds`: signals from feeds, as sent and checked, and the JetStream consumer;
//! - `events`: price events out (JetStream, webhooks) from the chain as outbox;
//! - `catalogue`: catalogue import jobs (pieces of a stored body, workers that apply them);
//! - `audit`: the read side of the history (verify, checkpoints, replay);
//! - `engine`: repricing off the request path (queued work, batches, catalogue sweeps);
//! - `trials`: shadows and backtests of a version beside the live one, and their reports;
//! - `write`: the one owner of "commit, cache, publish, reprice" ([`write::Prices`]);
//! - `rules`: rule versions, the compiled-rule cache, evaluation, dry runs;
//! - `pricing`: pure pricing (guardrails, deciding, records, price events, contexts);
//! - `replication`, `cache`: replicas' fan-out, the checkout price cache;
//! - `sandbox`: the wasmtime host;
//! - `auth`: bearer keys, verified against the store;
//! - `store`: persistence;
//! - `domain`: the types that parse; `config`, `telemetry`, `metrics` beside, for all.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod events;
pub mod feeds;
pub mod metrics;
pub mod pricing;
pub mod replication;
pub mod rules;
pub mod runner;
pub mod sandbox;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod trials;
pub mod write;
