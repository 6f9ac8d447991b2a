//! Host bindings of the rule interface, generated from `rule-sdk/wit` (the one definition).
//!
//! The package is `pricing:policy@1.2.0`. Its `policy` world is the 1.0.0 contract unchanged
//! (`rule-sdk/wit-history/1.0.0`): every rule exports it. A rule built for 1.0.0 or 1.1.0
//! imports `pricing:policy/types@1.0.0` or `@1.1.0`, which the linker resolves to the 1.2.0
//! definition (semver-compatible, and the interface is the same). The `typed-policy` world
//! (1.1.0) adds `params-schema`, which the host calls once, at upload, for the rules that
//! export it ([`TypedPolicyPre`]). The `encoded-policy` world (1.2.0) adds `evaluate-encoded`,
//! a batch in one buffer: the host evaluates the rules that export it through it, one context
//! or many ([`EncodedPolicyPre`]), and every other rule through `policy`.

mod v1 {
    wasmtime::component::bindgen!({
        world: "policy",
        path: "../rule-sdk/wit",
        // `log` traps once a rule writes more than its log allowance, stopping a log flood early.
        imports: { default: trappable },
    });
}

mod typed {
    wasmtime::component::bindgen!({
        world: "typed-policy",
        path: "../rule-sdk/wit",
        imports: { default: trappable },
        with: { "pricing:policy/types": super::v1::pricing::policy::types },
    });
}

mod encoded {
    wasmtime::component::bindgen!({
        world: "encoded-policy",
        path: "../rule-sdk/wit",
        imports: { default: trappable },
        with: {
            "pricing:policy/types": super::v1::pricing::policy::types,
            "pricing:policy/params": super::typed::pricing::policy::params,
        },
    });
}

pub use self::encoded::{EncodedPolicy, EncodedPolicyPre};
pub use self::typed::TypedPolicyPre;
pub use self::typed::pricing::policy::params::{Bounds, ParamKind, ParamSpec};
pub use self::v1::pricing::policy::types::{Action, CompetitorOffer, Decision, Demand, Entry, Money, Value};
pub use self::v1::{Context, Policy, PolicyPre, pricing};

/// The interface's type-only instances, as the linker must define them.
pub mod params_interface {
    pub use super::typed::pricing::policy::params::{Host, add_to_linker};
}
