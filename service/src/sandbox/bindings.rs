//! Host bindings of the rule interface, generated from `rule-sdk/wit` (the one definition).

wasmtime::component::bindgen!({
    world: "policy",
    path: "../rule-sdk/wit",
    // `log` traps once a rule writes more than its log allowance, stopping a log flood early.
    imports: { default: trappable },
});

pub use self::pricing::policy::types::{Action, CompetitorOffer, Demand, Entry, Money, Value};
