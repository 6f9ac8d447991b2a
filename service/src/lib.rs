//! The dynamic pricing service as a library: the `pricing` binary is a thin shell around it,
//! and the black-box tests start it in-process with [`startup::Application`].

pub mod api;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod domain;
pub mod metrics;
pub mod pricing;
pub mod replication;
pub mod rules;
pub mod runner;
pub mod sandbox;
pub mod startup;
pub mod store;
pub mod telemetry;
