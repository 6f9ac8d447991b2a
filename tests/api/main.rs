//! Black-box tests of the HTTP API: the service bound to port 0, real HTTP over a socket, a
//! fresh database per test (SQLite file or PostgreSQL database).

#[path = "../common/mod.rs"]
mod common;

mod activation;
mod audit;
mod catalogue;
mod crash;
mod errors;
mod events;
mod fairness;
mod feeds;
mod full_disk;
mod health;
mod helpers;
mod isolation;
mod legacy;
mod merchants;
mod noisy;
mod outage;
mod overrides;
mod own_rule;
mod pipeline;
mod policies;
mod prices;
mod process;
mod products;
mod races;
mod readme;
mod replicas;
mod restart;
mod rules;
mod safety;
mod signals;
mod trials;
mod typed_rules;
mod ui;
