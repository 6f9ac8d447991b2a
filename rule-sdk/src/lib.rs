//! The pricing-rule SDK: everything a merchant needs to write a pricing policy in Rust.
//!
//! A policy is a function from a [`Context`] to a [`Decision`], exported with
//! [`export_rule!`]:
//!
//! ```
//! use pricing_rule_sdk::{Context, Decision, export_rule, pricing};
//!
//! fn cost_plus(ctx: &Context) -> Decision {
//!     let margin = ctx.param_i64("margin_bps").unwrap_or(3000);
//!     match pricing::price_for_margin(ctx.cost.minor, margin) {
//!         Some(price) => Decision::set(price, format!("cost plus {margin} bp")),
//!         None => Decision::keep("the price for that margin is out of range"),
//!     }
//! }
//!
//! export_rule!(cost_plus);
//! ```
//!
//! Built for `wasm32-unknown-unknown`, the crate becomes a module that implements the
//! `pricing:policy@1.0.0` interface (`wit/policy.wit`); built natively, the same code runs in
//! plain `cargo test` with the builders of [`testing`]. The interface's generated types never
//! appear in a policy: the SDK converts them.

// Lets the generated bindings name this crate by its public name, from inside it too.
extern crate self as pricing_rule_sdk;

mod context;
mod decision;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod guest;
mod log;
pub mod pricing;
pub mod testing;

pub use context::{CompetitorOffer, Context, Demand, Money, Value};
pub use decision::{Action, Decision};
pub use log::log;

/// Exports a policy function `fn(&Context) -> Decision` as the rule's entry points (single
/// and batch). On native targets it only checks the function's signature, so the crate's
/// unit tests build and run with `cargo test`.
#[macro_export]
macro_rules! export_rule {
    ($policy:path) => {
        // A policy with the wrong signature fails here, pointing at the name passed in.
        const _: fn(&$crate::Context) -> $crate::Decision = $policy;

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct ExportedRule;

            impl $crate::guest::Guest for ExportedRule {
                fn evaluate(ctx: $crate::guest::GuestContext) -> $crate::guest::GuestDecision {
                    $crate::guest::evaluate(ctx, $policy)
                }

                fn evaluate_batch(
                    ctxs: ::std::vec::Vec<$crate::guest::GuestContext>,
                ) -> ::std::vec::Vec<$crate::guest::GuestDecision> {
                    ctxs.into_iter().map(|ctx| $crate::guest::evaluate(ctx, $policy)).collect()
                }
            }

    $crate::guest::export!(ExportedRule with_types_in $crate::guest);
        };
    };
}
