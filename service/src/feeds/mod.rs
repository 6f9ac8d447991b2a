//! Signals from feeds: what they send and how it is checked ([`input`]), and the JetStream
//! consumer that takes them from a stream ([`jetstream`]). The HTTP endpoints are `api::signals`.

pub mod input;
pub mod jetstream;

pub use input::{DemandBatch, DemandInput, MAX_PARSED_BATCH, ObservationBatch, ObservationInput};
